r"""``gx.lr_range_test``: the learning-rate range test ("LR finder").

One short training run whose learning rate grows geometrically from ``min_lr``
to ``max_lr``; the smoothed loss against the learning rate shows where training
starts to make progress and where it blows up (Smith, 2017; fastai's
``lr_find``). The run is one jitted ``lax.scan``; the schedule's numbers, the
smoothing and the divergence factor are traced, so a new range compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import apply_updates
from gradtx.core.hyperparams import POSITIVE, Hyper, Schedule
from gradtx.core.module import hyper
from gradtx.schedules._precision import own_precision, precision_doc
from gradtx.sweeps.engine import metric_dtype, resolve_data, select_batch
from gradtx.sweeps.plotting import _pyplot
from gradtx.sweeps.runner import check_params
from gradtx.transforms.combine import as_transform

__all__ = ["GeometricSchedule", "LRRangeResult", "lr_range_test", "steepest_lr", "valley_lr"]


@precision_doc
class GeometricSchedule(Schedule):
    r"""$\eta_n = \eta_0 (\eta_1/\eta_0)^{n/N}$: from ``init_value`` at 0 to ``end_value`` at $N$.

    The exponential schedule of the range test (fastai's ``SchedExp``).

    {precision}
    """

    gx_name = "GeometricSchedule"
    init_value: Hyper = hyper(check=POSITIVE)
    end_value: Hyper = hyper(check=POSITIVE)
    transition_steps: Hyper = hyper(check=POSITIVE)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return self.init_value * (self.end_value / self.init_value) ** (count / self.transition_steps)


@dataclasses.dataclass(frozen=True)
class LRRangeResult:
    """The curve of a learning-rate range test and its suggestions.

    Attributes:
      lrs: ``(steps,)`` learning rates, $\\eta_t = \\eta_{min} (\\eta_{max}/\\eta_{min})^{t/(T-1)}$.
      losses: ``(steps,)`` raw loss at step ``t`` (at the parameters before the
        update that uses ``lrs[t]``, as fastai records it); NaN once stopped.
      smoothed: ``(steps,)`` debiased EMA of ``losses``; NaN once stopped.
      steepest: the learning rate where the smoothed loss falls fastest per
        unit of $\\log\\eta$ (NaN if fewer than two points were recorded).
      valley: fastai's "valley" suggestion (see :func:`valley_lr`).
      stopped_at: the step whose smoothed loss exceeded ``diverge_factor`` times
        the best (it is the last one recorded), or -1 if the run never diverged.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    steepest: float
    valley: float
    stopped_at: int

    def plot(self, path: Any = None):
        """Smoothed loss against learning rate (log x), with the suggestions marked.

        Needs matplotlib (``pip install "gradtx[plot]"``). Saves to ``path`` if
        given; returns the figure.
        """
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ok = np.isfinite(self.smoothed)
        ax.plot(self.lrs[ok], self.losses[ok], color="0.75", lw=0.8, label="loss")
        ax.plot(self.lrs[ok], self.smoothed[ok], lw=1.6, label="smoothed")
        for name, lr, marker in (("steepest", self.steepest, "o"), ("valley", self.valley, "s")):
            if np.isfinite(lr):
                y = np.interp(np.log(lr), np.log(self.lrs[ok]), self.smoothed[ok])
                ax.plot([lr], [y], marker, label=f"{name}: {lr:.3g}")
        ax.set_xscale("log")
        ax.set(xlabel="learning rate", ylabel="loss", title="learning-rate range test")
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def steepest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    r"""The learning rate at the most negative slope $\Delta L / \Delta \log\eta$.

    fastai's ``steep``: for consecutive points, $(L_{i+1} - L_i)/(\log\eta_{i+1} -
    \log\eta_i)$; returns $\eta_i$ at the minimum. NaN with fewer than two points.
    """
    lrs, smoothed = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    if lrs.size < 2:
        return float("nan")
    slopes = np.diff(smoothed) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def valley_lr(lrs: np.ndarray, smoothed: np.ndarray) -> float:
    r"""fastai's "valley" suggestion: part-way down the longest descending stretch.

    ``lds[i]`` is the length of the longest strictly decreasing subsequence of
    the curve ending at ``i``; the valley is the first ``i`` with the largest
    ``lds`` (its end) and starts ``lds[i]`` points earlier. With
    $s = (\text{end} - \text{start})/3$, the suggestion is the point
    $\text{start} + \lfloor s\rfloor + \lfloor s/2\rfloor$, about halfway down the
    valley in index (fastai, ``fastai/callback/schedule.py``, function
    ``valley``, 2021), clipped to the curve. NaN for an empty curve.
    """
    lrs, losses = np.asarray(lrs, np.float64), np.asarray(smoothed, np.float64)
    n = losses.size
    if n == 0:
        return float("nan")
    lds = np.ones(n, np.int64)
    for i in range(1, n):
        below = losses[i] < losses[:i]
        if below.any():
            lds[i] = max(lds[i], int(lds[:i][below].max()) + 1)
    end = int(np.argmax(lds))
    start = end - int(lds[end])
    s = (end - start) / 3
    idx = min(max(start + int(s) + int(s / 2), 0), n - 1)
    return float(lrs[idx])


@functools.partial(jax.jit, static_argnames=("loss_fn", "kind", "data_fn", "steps"))
def _run(opt, schedule, params, arrays, key, smooth, diverge_factor, *, loss_fn, kind, data_fn, steps):
    dt = metric_dtype()

    def loss(p, t):
        out = loss_fn(p) if kind == "none" else loss_fn(p, select_batch(kind, data_fn, arrays, key, t))
        if jnp.shape(out) != ():
            raise ValueError(f"lr_range_test: `loss_fn` must return a scalar, got shape {jnp.shape(out)}.")
        return out

    def body(carry, t):
        p, s, avg, best, stopped = carry
        value, grads = jax.value_and_grad(loss)(p, t)
        updates, new_s = opt.update(grads, s, p)
        value = jnp.real(value).astype(dt)
        avg = smooth * avg + (1 - smooth) * value
        sm = avg / (1 - smooth ** (t + 1).astype(dt))
        record = ~stopped
        best = jnp.where(record & (sm < best), sm, best)
        diverged = record & (~jnp.isfinite(sm) | (sm > diverge_factor * best))
        take = record & ~diverged  # freeze once stopped
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)  # noqa: E731
        nan = jnp.full([], jnp.nan, dt)
        out = (jnp.asarray(schedule(t), dt), jnp.where(record, value, nan), jnp.where(record, sm, nan), diverged)
        return (keep(apply_updates(p, updates), p), keep(new_s, s), avg, best, stopped | diverged), out

    init = (params, opt.init(params), jnp.zeros([], dt), jnp.full([], jnp.inf, dt), jnp.asarray(False))
    return jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.int32))[1]


def lr_range_test(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    optimizer_factory: Callable[..., Any],
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    data: Any = None,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
    key: jax.Array | None = None,
) -> LRRangeResult:
    r"""The learning-rate range test: train briefly with a geometrically growing rate.

    Step $t = 0, \dots, T-1$ uses

    .. math::
        \eta_t = \eta_{min} \left(\eta_{max}/\eta_{min}\right)^{t/(T-1)}, \qquad
        a_t = \beta a_{t-1} + (1-\beta) L_t, \qquad \bar L_t = a_t / (1 - \beta^{t+1}),

    with the optimizer ``optimizer_factory(learning_rate=schedule)``, ``schedule``
    a :class:`GeometricSchedule` (a pytree: ``min_lr``/``max_lr`` are leaves, so a
    new range does not recompile). $L_t$ is the loss before the update with $\eta_t$.
    Recording stops (NaN afterwards, parameters frozen) after the first step
    where $\bar L_t > k \min_{s \le t} \bar L_s$ ($k$ = ``diverge_factor``) or
    $\bar L_t$ is not finite, as fastai's ``LRFinder`` (which assumes positive
    losses). The suggestions follow fastai's ``lr_find``: they use the recorded
    smoothed curve without its first ``steps // 10`` and last 5 points (the whole
    recorded curve if that leaves fewer than 3):

    * ``steepest``: $\eta$ at the most negative $\Delta\bar L / \Delta\log\eta$;
    * ``valley``: fastai's valley rule (:func:`valley_lr`).

    A good learning rate is usually near these, well below where the curve blows
    up; on a quadratic, SGD diverges for $\eta > 2/\lambda_{max}$.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, or ``loss_fn(params, batch)`` with ``data``.
      params: the initial parameters.
      optimizer_factory: called as ``optimizer_factory(learning_rate=schedule)``,
        e.g. ``gx.sgd``, ``gx.adam`` or ``functools.partial(gx.sgd, momentum=0.9)``
        (optax factories work too).
      min_lr: the first learning rate (> 0). Default 1e-7, as fastai.
      max_lr: the last learning rate (> ``min_lr``). Default 10, as fastai.
      steps: number of steps $T \ge 2$ (static: the scan's length). Default 100.
      data: None; a pytree of arrays whose leading axis indexes batches (step
        ``t`` uses batch ``t % len``); or ``data(key, step) -> batch``, as
        :func:`gradtx.sweep`.
      smooth: EMA factor $\beta \in [0, 1)$ (0: no smoothing). Default 0.98.
      diverge_factor: $k > 1$. Default 4, as fastai.
      key: PRNG key for a ``data`` function (default ``jax.random.key(0)``).

    Returns:
      An :class:`LRRangeResult` (``lrs``, ``losses``, ``smoothed``, ``steepest``,
      ``valley``, ``stopped_at``, ``plot(path)``).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 10.0]) * w ** 2)
      >>> r = gx.lr_range_test(loss, jnp.ones(2), gx.sgd, steps=60)
      >>> r.lrs.shape, bool(r.stopped_at > 0), bool(r.lrs[r.stopped_at] > 2 / 10)
      ((60,), True, True)
      >>> bool(1e-7 < r.valley < 2 / 10)
      True

    References:
      Smith, *Cyclical Learning Rates for Training Neural Networks*, WACV 2017, Sec. 3.3.
      fastai, ``Learner.lr_find`` and ``LRFinder`` (``fastai/callback/schedule.py``).
    """
    if not callable(loss_fn):
        raise TypeError(f"lr_range_test: `loss_fn` must be a function of (params) or (params, batch), got {loss_fn!r}.")
    if not callable(optimizer_factory):
        raise TypeError(f"lr_range_test: `optimizer_factory` must be callable like gx.sgd, got {optimizer_factory!r}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"lr_range_test: `steps` must be an int >= 2, got {steps!r}.")
    if not min_lr > 0:
        raise ValueError(f"lr_range_test: `min_lr` must be > 0, got {min_lr!r}.")
    if not max_lr > min_lr:
        raise ValueError(f"lr_range_test: `max_lr` must be > `min_lr` ({min_lr!r}), got {max_lr!r}.")
    if not 0 <= smooth < 1:
        raise ValueError(f"lr_range_test: `smooth` must be in [0, 1), got {smooth!r}.")
    if not diverge_factor > 1:
        raise ValueError(f"lr_range_test: `diverge_factor` must be > 1, got {diverge_factor!r}.")
    check_params(params)
    kind, data_fn, arrays = resolve_data(data, "lr_range_test")
    schedule = GeometricSchedule(min_lr, max_lr, int(steps) - 1)
    opt = as_transform(optimizer_factory(learning_rate=schedule), "lr_range_test")
    dt = metric_dtype()
    lrs, losses, smoothed, diverged = jax.device_get(_run(
        opt, schedule, params, arrays, jax.random.key(0) if key is None else key,
        jnp.asarray(smooth, dt), jnp.asarray(diverge_factor, dt),
        loss_fn=loss_fn, kind=kind, data_fn=data_fn, steps=int(steps),
    ))
    stopped_at = int(np.argmax(diverged)) if diverged.any() else -1
    n = int(steps) if stopped_at < 0 else stopped_at + 1
    lo, hi = int(steps) // 10, n - 5
    if hi - lo < 3:
        lo, hi = 0, n
    finite = np.isfinite(smoothed[lo:hi])
    window = (lrs[lo:hi][finite], smoothed[lo:hi][finite])
    return LRRangeResult(
        lrs=np.asarray(lrs), losses=np.asarray(losses), smoothed=np.asarray(smoothed),
        steepest=steepest_lr(*window), valley=valley_lr(*window), stopped_at=stopped_at,
    )
