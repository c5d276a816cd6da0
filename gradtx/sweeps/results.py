"""Sweep results: a leaderboard, files, the best configuration, and plots."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from gradtx.sweeps.space import Space

__all__ = ["SweepResult", "METRICS", "dump_json", "json_safe"]

#: Per-run metrics; all but ``diverged`` sort ascending (lower is better).
METRICS = ("final_loss", "best_loss", "steps_to_tol", "diverged", "stopped_at")


def _sort_key(metric: str, values: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.float64).copy()
    if metric == "steps_to_tol":
        v[v < 0] = np.inf  # never reached
    v[~np.isfinite(v)] = np.inf
    return np.lexsort((v, diverged.astype(np.int8)))  # finished runs first, then by metric


@dataclasses.dataclass
class SweepResult:
    """What :func:`gradtx.sweep` returns: one row per run.

    Attributes:
      family: (N,) family (optimizer) name of each run.
      values: ``{path: (N,)}`` swept values; NaN where a family lacks the dimension.
      metrics: ``{name: (N,)}``: ``final_loss`` (loss of the final params),
        ``best_loss``, ``steps_to_tol`` (loss evaluations until ``<= tol``; -1: never), ``diverged``, ``stopped_at`` (-1: never).
      curves: (N, T) recorded losses, NaN after a run stopped.
      curve_steps: (T,) the step of each curve column.
      steps: steps completed (less than asked for when ``interrupted``).
      interrupted: the sweep was stopped with Ctrl-C; finished chunks are kept.
      spaces: ``{family: Space}``.
      states: ``{family: RunState}`` final params and optimizer states, batched.
    """

    family: np.ndarray
    values: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    curves: np.ndarray
    curve_steps: np.ndarray
    steps: int
    interrupted: bool
    spaces: dict[str, Space]
    states: dict[str, Any]

    @classmethod
    def from_runs(cls, *, family, space, values, state, host, final_loss, curves, log_every, steps, interrupted):
        n = len(final_loss)
        metrics = {
            "final_loss": final_loss,
            "best_loss": host.best_loss,
            "steps_to_tol": host.steps_to_tol,
            "diverged": host.diverged,
            "stopped_at": host.stopped_at,
        }
        return cls(np.asarray([family] * n), values, metrics, curves, np.arange(curves.shape[1]) * log_every,
                   steps, interrupted, {family: space}, {family: state})

    @classmethod
    def concat(cls, parts: Sequence["SweepResult"]) -> "SweepResult":
        """Stacks the runs of several results (e.g. one per optimizer family)."""
        names = list(dict.fromkeys(k for p in parts for k in p.values))
        sizes = [len(p.family) for p in parts]
        values = {k: np.concatenate([p.values[k].astype(np.float64) if k in p.values else np.full(s, np.nan)
                                     for p, s in zip(parts, sizes)]) for k in names}
        width = max(p.curves.shape[1] for p in parts)
        curves = np.concatenate([np.pad(p.curves.astype(np.float64), ((0, 0), (0, width - p.curves.shape[1])),
                                        constant_values=np.nan) for p in parts])
        longest = max(parts, key=lambda p: p.curves.shape[1])
        spaces, states = {}, {}
        for p in parts:
            clash = set(p.spaces) & set(spaces)
            if clash:
                raise ValueError(f"family names must be unique, got {sorted(clash)} twice.")
            spaces.update(p.spaces)
            states.update(p.states)
        return cls(
            np.concatenate([p.family for p in parts]),
            values,
            {m: np.concatenate([p.metrics[m] for p in parts]) for m in METRICS},
            curves,
            longest.curve_steps,
            min(p.steps for p in parts),
            any(p.interrupted for p in parts),
            spaces,
            states,
        )

    def __len__(self) -> int:
        return len(self.family)

    # -- ranking -----------------------------------------------------------
    def order(self, metric: str = "final_loss") -> np.ndarray:
        """Run indices, best first: finished runs by ``metric``, then diverged ones."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
        return _sort_key(metric, self.metrics[metric], self.metrics["diverged"])

    def row(self, i: int) -> dict[str, Any]:
        """Run ``i`` as a dict: family, its swept values, its metrics."""
        fam = str(self.family[i])
        out: dict[str, Any] = {"run": int(i), "family": fam}
        for k in self.spaces[fam].dims:
            v = self.values[k][i]
            out[k] = int(v) if self.spaces[fam].dims[k].is_integer else float(v)
        for m in METRICS:
            v = self.metrics[m][i]
            out[m] = bool(v) if m == "diverged" else (int(v) if m in ("steps_to_tol", "stopped_at") else float(v))
        return out

    def table(self, metric: str = "final_loss", k: int | None = None) -> list[dict[str, Any]]:
        """Rows sorted by ``metric`` (best first), the top ``k`` if given."""
        idx = self.order(metric)
        return [self.row(int(i)) for i in (idx if k is None else idx[:k])]

    @property
    def best(self) -> dict[str, Any]:
        """The best run by final loss, as a row."""
        return self.table(k=1)[0]

    def optimizer(self, i: int | None = None) -> Any:
        """The optimizer of run ``i`` (default: the best), built with its values."""
        i = self.best["run"] if i is None else int(i)
        fam = str(self.family[i])
        space = self.spaces[fam]
        return space.build({k: self.row(i)[k] for k in space.dims})

    def params(self, i: int | None = None) -> Any:
        """Final parameters of run ``i`` (default: the best)."""
        i = self.best["run"] if i is None else int(i)
        fam = str(self.family[i])
        offset = int(np.argmax(self.family == fam))
        return jax.tree.map(lambda x: x[i - offset], self.states[fam].params)

    # -- output ------------------------------------------------------------
    def _columns(self) -> list[str]:
        return ["run", "family", *self.values, *METRICS]

    def __str__(self) -> str:
        return self.format()

    def format(self, metric: str = "final_loss", k: int | None = 10) -> str:
        """The leaderboard as text (``steps_to_tol``/``stopped_at`` only when some run has one)."""
        rows = self.table(metric, k)
        uninformative = {m for m in ("steps_to_tol", "stopped_at") if np.all(self.metrics[m] < 0)}
        cols = [c for c in self._columns() if c not in uninformative]
        never = lambda c, v: c in ("steps_to_tol", "stopped_at") and v == -1  # noqa: E731
        cells = [["" if never(c, r.get(c)) else _cell(r.get(c)) for c in cols] for r in rows]
        widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(cols)]
        line = lambda xs: "  ".join(x.rjust(w) for x, w in zip(xs, widths))  # noqa: E731
        head = f"{len(self)} runs, {self.steps} steps" + (" (interrupted)" if self.interrupted else "")
        shown = "" if k is None or k >= len(self) else f"; top {k} by {metric}"
        return "\n".join([head + shown, line(cols), *(line(c) for c in cells)])

    def to_csv(self, path: str | os.PathLike) -> None:
        """Writes every run, sorted by final loss, as CSV."""
        cols = self._columns()
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in self.table():
                w.writerow({c: r.get(c, "") for c in cols})

    def to_dict(self) -> dict[str, Any]:
        """Runs, best configuration and loss curves as plain Python values."""
        return {
            "steps": self.steps,
            "interrupted": self.interrupted,
            "families": {f: repr(s) for f, s in self.spaces.items()},
            "best": self.best,
            "runs": self.table(),
            "curve_steps": self.curve_steps.tolist(),
            "curves": self.curves.tolist(),
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """:meth:`to_dict` as JSON (NaN and infinities as null), written to ``path`` if given."""
        return dump_json(self.to_dict(), path)

    def plot(self, path: str | os.PathLike | None = None, *, k: int = 5, metric: str = "final_loss"):
        """Loss curves of the top ``k`` runs, and ``metric`` against each swept value.

        Needs matplotlib (``pip install "gradtx[plot]"``). Scale parameters
        (positive values spanning more than a decade) get log axes.

        Returns:
          The matplotlib figure; saved to ``path`` if given.
        """
        from gradtx.sweeps.plotting import plot_sweep

        return plot_sweep(self, path, k=k, metric=metric)


def dump_json(doc: Any, path: str | os.PathLike | None = None) -> str:
    """``doc`` as JSON text, NaN and infinities as null; written to ``path`` if given."""
    text = json.dumps(json_safe(doc), indent=1)
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
