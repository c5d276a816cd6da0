"""Matplotlib figures for sweeps and population-based training (optional extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_sweep", "plot_lineage"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError('plotting needs matplotlib: pip install "gradtx[plot]"') from None
    return plt


def _is_log(x: np.ndarray) -> bool:
    x = x[np.isfinite(x)]
    return x.size > 1 and bool(np.all(x > 0)) and x.max() / x.min() > 10


def plot_sweep(result: Any, path: Any = None, *, k: int = 5, metric: str = "final_loss"):
    """Left: loss curves of the top ``k`` runs. Right: ``metric`` against each swept value."""
    plt = _pyplot()
    dims = list(result.values)
    fig, axes = plt.subplots(1, 1 + len(dims), figsize=(4.5 * (1 + len(dims)), 3.6), squeeze=False)
    axes = axes[0]
    order = result.order(metric)
    curves_ok = result.curves.size and np.all(result.curves[np.isfinite(result.curves)] > 0)
    for i in order[:k]:
        r = result.row(int(i))
        label = ", ".join([r["family"]] + [f"{d.split('.')[-1]}={r[d]:.3g}" for d in result.spaces[r["family"]].dims])
        axes[0].plot(result.curve_steps, result.curves[i], label=label, lw=1.2)
    axes[0].set(xlabel="step", ylabel="loss", title=f"top {min(k, len(result))} runs by {metric}")
    if curves_ok:
        axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    y = np.asarray(result.metrics[metric], np.float64)
    div = result.metrics["diverged"].astype(bool)
    for ax, d in zip(axes[1:], dims):
        x = result.values[d]
        for fam in dict.fromkeys(result.family.tolist()):
            m = (result.family == fam) & np.isfinite(x)
            ax.scatter(x[m & ~div], y[m & ~div], s=14, label=fam)
            if np.any(m & div):
                ok = y[np.isfinite(y) & ~div]
                top = ok.max() if ok.size else 1.0
                ax.scatter(x[m & div], np.full(int(np.sum(m & div)), top), marker="x", s=14, color="gray")
        if _is_log(x):
            ax.set_xscale("log")
        if _is_log(y[~div]):
            ax.set_yscale("log")
        ax.set(xlabel=d, ylabel=metric, title=f"{metric} vs {d} (x: diverged)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_lineage(result: Any, path: Any = None, *, dim: str | None = None):
    """Each member's value of ``dim`` over training (PBT), and the population's losses."""
    plt = _pyplot()
    dim = dim or next(iter(result.history))
    h = result.history[dim]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for j in range(h.shape[1]):
        axes[0].step(result.history_steps, h[:, j], where="post", lw=0.9, alpha=0.8)
    if _is_log(h.ravel()):
        axes[0].set_yscale("log")
    axes[0].set(xlabel="step", ylabel=dim, title=f"PBT: {dim} of each member")
    scores = result.scores
    axes[1].plot(result.history_steps[1:], np.nanmin(scores, axis=1), label="best member")
    axes[1].plot(result.history_steps[1:], np.nanmedian(scores, axis=1), label="median member")
    if _is_log(scores.ravel()):
        axes[1].set_yscale("log")
    axes[1].set(xlabel="step", ylabel="score", title="population score at each exploit")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
