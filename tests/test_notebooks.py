"""The notebooks run top to bottom, and their saved outputs are those of the code shown.

Each notebook states the seeds' numbers as ``assert``\\ s in its cells, so executing
it here is the check. The committed copy must carry outputs (plots render on the
code host) from exactly its current code cells: ``notebooks/execute.py --write``
stamps the digest of the sources it executed, and this test recomputes it.
"""

import importlib.util
import os
import pathlib
import re

import pytest

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's migration warning

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("nb_execute", ROOT / "notebooks" / "execute.py")
nbx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbx)

EXPECTED = [
    "01_quickstart.ipynb",
    "02_optimizer_zoo.ipynb",
    "03_conditioning.ipynb",
    "04_schedules.ipynb",
    "05_sweeps_and_pbt.ipynb",
    "06_regularization.ipynb",
    "07_averaging_noise_federated.ipynb",
]
PATHS = nbx.notebook_paths()
IDS = [p.stem for p in PATHS]


def _images(nb):
    """Indices of the code cells that display a PNG."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return [i for i, c in enumerate(cells) if any("image/png" in o.get("data", {}) for o in c.outputs)]


def _problems(nb):
    """Error outputs and warnings written to stderr, as (cell index, text)."""
    found = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        for out in cell.outputs:
            if out.output_type == "error":
                found.append((i, f"{out.ename}: {out.evalue}"))
            elif out.output_type == "stream" and out.name == "stderr" and re.search(
                r"Warning|Traceback|Error", out.text
            ):
                found.append((i, out.text[:300]))
    return found


def test_every_notebook_is_there():
    assert [p.name for p in PATHS] == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_committed_notebook_has_current_outputs(path):
    nb = nbx.read(path)
    stamp = nb.metadata.get("gradtx", {})
    assert stamp.get("sources_sha256") == nbx.sources_digest(nb), (
        f"{path.name}: its code cells changed since its outputs were saved; "
        f"re-run `python notebooks/execute.py --write {path.stem[:2]}`"
    )
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), "saved outputs must come from one top-to-bottom run"
    assert not _problems(nb), _problems(nb)
    assert _images(nb), f"{path.name} has no saved plot"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_opens_in_colab(path):
    nb = nbx.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and nbx.COLAB_URL + path.name in first.source
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert nbx.INSTALL_CELL_MARKER in install.source and nbx.REPO_URL in install.source
    assert "except ImportError" in install.source, "install only where gradtx is not importable"


def test_readme_links_every_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    for path in PATHS:
        line = next((ln for ln in readme.splitlines() if f"notebooks/{path.name}" in ln), None)
        assert line is not None, f"README does not link {path.name}"
        assert nbx.COLAB_URL + path.name in line and "colab-badge.svg" in line, line


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_executes(path):
    """Every cell runs (its asserts hold); the run matches the committed copy."""
    committed = nbx.read(path)
    executed, _ = nbx.execute(path)
    assert nbx.code_sources(executed) == nbx.code_sources(committed)
    assert not _problems(executed), _problems(executed)
    assert _images(executed) == _images(committed), "the cells that plot changed; re-run with --write"
