"""Execute the gradtx notebooks top to bottom; with ``--write``, save them with outputs.

    python notebooks/execute.py               # run every notebook, print times, exit 1 on error
    python notebooks/execute.py --write       # ... and save each with its outputs
    python notebooks/execute.py --write 03    # only notebooks whose name contains "03"

A saved notebook is stamped with ``metadata.gradtx.sources_sha256``: the digest of the
code-cell sources it was executed from. ``tests/test_notebooks.py`` checks that the
committed sources still hash to it (so the saved outputs are those of the code shown),
and executes every notebook afresh in CI, where the seeds' numbers are ``assert``\\ s in
the cells themselves.

Needs the test extra (``nbclient``, ``nbformat``, ``ipykernel``). Kernels run in this
directory with this interpreter, in JAX's default float32 — as on Colab.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
CELL_TIMEOUT_S = 300

# The first code cell of every notebook: Colab has JAX but not gradtx.
REPO_URL = "https://github.com/gradtx/gradtx"
COLAB_URL = "https://colab.research.google.com/github/gradtx/gradtx/blob/main/notebooks/"
INSTALL_CELL_MARKER = "# Colab: install gradtx"


def notebook_paths(select: list[str] | None = None) -> list[pathlib.Path]:
    """The numbered notebooks, in order; ``select`` keeps names containing any string."""
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if select:
        paths = [p for p in paths if any(s in p.name for s in select)]
    return paths


def code_sources(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def sources_digest(nb) -> str:
    """SHA-256 over the code cells' sources (markdown edits don't invalidate outputs)."""
    h = hashlib.sha256()
    for src in code_sources(nb):
        h.update(src.encode())
        h.update(b"\0")
    return h.hexdigest()


def read(path: pathlib.Path):
    import nbformat

    return nbformat.read(path, as_version=4)


def execute(path: pathlib.Path, timeout: int = CELL_TIMEOUT_S):
    """Execute a copy of the notebook at ``path``; returns ``(executed_nb, seconds)``.

    Raises ``nbclient.exceptions.CellExecutionError`` (naming the cell) if a cell fails.
    """
    import nbclient

    nb = read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start


def stamp(nb, seconds: float) -> None:
    nb.metadata["gradtx"] = {
        "sources_sha256": sources_digest(nb),
        "execution_seconds": round(seconds, 1),
    }
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("colab", {"provenance": []})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="only notebooks whose name contains one of these")
    parser.add_argument("--write", action="store_true", help="save each notebook with its outputs")
    args = parser.parse_args(argv)

    import nbformat
    from nbclient.exceptions import CellExecutionError

    paths = notebook_paths(args.select)
    if not paths:
        print(f"no notebook matches {args.select}", file=sys.stderr)
        return 2
    failed, total = 0, 0.0
    for path in paths:
        try:
            nb, seconds = execute(path)
        except CellExecutionError as err:
            failed += 1
            print(f"FAIL {path.name}\n{err}", file=sys.stderr)
            continue
        total += seconds
        print(f"ok   {path.name:40s} {seconds:6.1f} s", flush=True)
        if args.write:
            stamp(nb, seconds)
            nbformat.write(nb, path)
    print(f"{len(paths) - failed}/{len(paths)} notebooks ran in {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
