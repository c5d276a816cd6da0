"""Smoke test: the benchmark suite's quick mode runs end to end and writes its JSON.

Timings are machine facts, recorded in benchmarks/results/ and the closing notes,
never asserted. What is asserted is structure the suite's reader relies on, and
that the quick mode finishes (within a generous timeout).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_benchmark_runs(tmp_path):
    out = tmp_path / "quick.json"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert {"step", "leaves", "compile", "memory", "onepass", "zoo", "environment"} <= set(res)
    workloads = {(r["workload"], r["n"]) for r in res["step"]["rows"]}
    assert workloads == {(w, n) for w in ("adam", "sgd_momentum", "adamw", "clip+adamw") for n in (10**4, 10**6)}
    for r in res["step"]["rows"]:
        assert all(r[k] > 0 for k in ("gradtx", "optax", "optax again", "roofline"))
        assert r["gradtx/optax paired"] > 0 and r["optax again/optax paired"] > 0
        # compiled-program facts (no timing): gradtx's step makes optax's passes over
        # memory; the clipped chain one fewer (no clipped copy of the gradients)
        gx_loops, optax_loops = r["loops"]
        if r["workload"] == "clip+adamw":
            assert gx_loops == optax_loops - 1 == 3 and r["bytes gx/optax"] < 0.8
        else:
            assert gx_loops == optax_loops and abs(r["bytes gx/optax"] - 1) < 1e-4
    mem = res["memory"]["rows"][0]
    assert mem["gradtx bf16 moments"] < mem["gradtx f32 moments"]  # bf16 moments are stored in bf16
    # the same array buffers as optax's step (they differ only in a few scalars)
    assert abs(mem["gradtx f32 moments"] - mem["optax f32 moments"]) < 1024
    onepass = res["onepass"]["rows"][0]
    # XLA emits one loop per output array: three for Adam's params, mu and nu (gradtx as
    # the bare arithmetic); the interleaved layout is one loop plus the copy back.
    assert onepass["loops"]["separate (3 arrays)"] == onepass["loops"]["gx.adam"] == 3
    assert onepass["loops"]["interleaved [N,3]"] == 2
    # the zoo section, quick: one optimizer per family at 1e4 params
    zoo_rows = res["zoo"]["rows"]
    assert [(r["optimizer"], r["n"]) for r in zoo_rows] == [(o, 10**4) for o in ("adabelief", "lion", "lamb")]
    for r in zoo_rows:
        assert r["gradtx/optax paired"] > 0 and r["A/A per trial"][0] <= r["A/A per trial"][1]
        # compiled-program facts: no more passes over memory than optax, the same bytes up to scalars
        assert r["verdict"]["passes <= optax"] and r["verdict"]["bytes <= optax"], r
    assert "## Step time" in proc.stdout and "## Peak memory" in proc.stdout and "## One-pass" in proc.stdout
    assert "## Optimizer zoo" in proc.stdout


def test_zoo_counts_reductions_and_conditional_branches():
    """zoo.memory_passes counts what compiled_cost's entry loops miss: norms (a reduction
    to a scalar reads a whole array) and loops inside optax's lax.cond branches."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import zoo

    facts = zoo.compiled_facts(*zoo.pair("novograd"), 10**4)
    # optax's novograd: its norm and moment loop sit in cond branches, so the entry
    # computation has one loop; with the branches it is a norm and two loops, as gradtx's
    assert facts["loops"] == [2, 1] and facts["passes"] == [3, 3]
    facts = zoo.compiled_facts(*zoo.pair("lamb"), 10**4)
    assert facts["loops"] == [4, 6] and facts["passes"] == [6, 10]  # + ||p|| and ||u||; optax: 4 norms


def test_bad_section_is_a_clear_error():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "steps"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--only" in proc.stderr and "steps" in proc.stderr
