"""`gradtx sweep`: a tiny configuration end to end, the files it writes, and its argument errors."""

import csv
import json

import pytest

from gradtx.cli import main


def _run(capsys, *args):
    code = main(["sweep", "--quiet", *args])
    return code, capsys.readouterr()


def test_sweep_writes_leaderboard_csv_json_and_plot(tmp_path, capsys):
    out = tmp_path / "o"
    code, cap = _run(capsys, "--problem", "quadratic", "--kappa", "10", "--optimizers", "sgd,adam", "--runs", "3",
                     "--steps", "40", "--lr", "1e-3:0.1", "--out", str(out))
    assert code == 0
    assert "6 runs, 40 steps" in cap.out and "best: " in cap.out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["family"] for r in rows} == {"sgd", "adam"}
    lrs = [float(r["learning_rate"]) for r in rows]
    assert all(1e-3 <= lr <= 0.1 for lr in lrs)
    losses = [float(r["final_loss"]) for r in rows if r["diverged"] == "False"]
    assert losses == sorted(losses)
    doc = json.loads((out / "results.json").read_text())
    assert doc["best"]["final_loss"] == pytest.approx(losses[0]) and len(doc["curves"]) == 6
    pytest.importorskip("matplotlib")
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_pbt_writes_lineage(tmp_path, capsys):
    out = tmp_path / "p"
    code, cap = _run(capsys, "--pbt", "--problem", "noisy-quadratic", "--optimizers", "sgd", "--runs", "4",
                     "--steps", "40", "--interval", "10", "--out", str(out))
    assert code == 0 and "PBT best final loss" in cap.out and "random search best" in cap.out
    doc = json.loads((out / "pbt.json").read_text())
    assert len(doc["sgd"]["pbt"]["history"]["learning_rate"]) == 5
    pytest.importorskip("matplotlib")
    assert (out / "pbt-sgd.png").exists()


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--lr", "1:0.1"], "--lr"),
        (["--lr", "abc"], "--lr"),
        (["--optimizers", "adamm"], "--optimizers"),
        (["--runs", "0"], "--runs"),
        (["--steps", "0"], "--steps"),
        (["--problem", "mnist"], "--problem"),
        (["--kappa", "0.5"], "--kappa"),
        (["--pbt", "--runs", "1"], "--runs"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and flag in err[-1] and err[-1].startswith("gradtx sweep: error:")


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for opt in ("--problem", "--kappa", "--optimizers", "--lr", "--runs", "--steps", "--seed", "--pbt", "--out",
                "--devices"):
        assert opt in text
    assert main([]) == 0 and "sweep" in capsys.readouterr().out
