r"""Iterate averaging: Polyak–Ruppert, windowed and EMA averages of the parameters.

Averaging the iterates of a noisy optimizer cancels much of the noise: with a
constant learning rate SGD bounces around the minimum, and the mean of its
recent iterates lies closer to it than any single one. The wrappers below keep
the average in the optimizer state and never change the training trajectory:
``update`` returns the inner transformation's updates unchanged.

The tracked iterates are the parameters *after* each update,
$\theta_t = \theta_{t-1} + u_t$ for $t = 1, 2, \dots$ (computed like
:func:`~gradtx.apply_updates`); the initial $\theta_0$ is not part of any
average, and is what :func:`averaged_params` returns before the first update.
Wrap the whole optimizer: the inner transformation's output must be the
update that is applied to the parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation, apply_updates
from gradtx.core.docs import fill
from gradtx.core.hyperparams import UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import child, hyper, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core.tree import cast_like, tree_map_none

__all__ = [
    "PolyakAveragingState",
    "EmaParamsState",
    "PolyakAveraging",
    "EmaParams",
    "polyak_averaging",
    "ema_params",
    "averaged_params",
]

_KINDS = ("running", "window", "ema")


class PolyakAveragingState(NamedTuple):
    r"""State of :func:`polyak_averaging`.

    Attributes:
      inner_state: the wrapped transformation's state.
      count: the number of iterates averaged so far, $t$ (int32 scalar).
      average: the running mean $\bar\theta_t$ like the params ($\theta_0$
        before the first update), or None when a window is used.
      window: a ring buffer of the last ``window`` iterates, each leaf of shape
        ``(window, *param.shape)``, or None for the running mean. Slot
        ``(t - 1) % window`` holds $\theta_t$; unused slots hold $\theta_0$.
    """

    inner_state: Any
    count: jax.Array
    average: Any = None
    window: Any = None


class EmaParamsState(NamedTuple):
    r"""State of :func:`ema_params`.

    Attributes:
      inner_state: the wrapped transformation's state.
      count: the number of iterates averaged so far, $t$ (int32 scalar).
      ema: the (debiased, if asked) EMA of the iterates, like the params
        ($\theta_0$ before the first update).
    """

    inner_state: Any
    count: jax.Array
    ema: Any


def _next_iterate(name: str, inner: GradientTransformation, updates, state, params, extra_args):
    """Runs ``inner``; returns its updates, its new state and $\\theta_{t+1}$."""
    if params is None:
        raise ValueError(f"gx.{name}: {NO_PARAMS_MSG} It averages the iterates params + updates.")
    updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    return updates, inner_state, apply_updates(params, updates)


def _fold(average: Any, iterate: Any, keep: jax.Array, take: jax.Array | None = None) -> Any:
    """``keep * average + take * iterate`` per leaf, in the average's dtype.

    ``take`` defaults to ``1 - keep``, computed in that dtype (as Keras does).
    """

    def leaf(a, x):
        dt = jnp.result_type(a)
        k = keep.astype(dt)
        t = 1 - k if take is None else take.astype(dt)
        return (k * a + t * x).astype(dt)

    return tree_map_none(leaf, average, iterate)


def _window_mean(buffer: jax.Array, count: jax.Array) -> jax.Array:
    """The mean of the last ``min(count, N)`` iterates, summed oldest first.

    A sequential sum in time order (``((x_1 + x_2) + x_3) + ...``, then a true
    division), the arithmetic of ``np.mean(np.stack(iterates), axis=0)``;
    unused slots are skipped.
    """
    n = buffer.shape[0]
    used = jnp.minimum(count, n)
    order = (count + jnp.arange(n)) % n  # oldest slot first; unused slots lead

    def body(j, total):
        return jnp.where(j >= n - used, total + buffer[order[j]], total)

    total = lax.fori_loop(0, n, body, jnp.zeros(buffer.shape[1:], buffer.dtype))
    # XLA rewrites `x / broadcast(m)` as `x * (1/m)` (1 ulp off); the barrier keeps a true division.
    divisor = jnp.broadcast_to(jnp.maximum(used, 1).astype(buffer.dtype), total.shape)
    mean = total / lax.optimization_barrier(divisor)
    return jnp.where(count == 0, buffer[0], mean)


class PolyakAveraging(GradientTransformation):
    """See :func:`polyak_averaging`."""

    gx_name = "polyak_averaging"
    inner: GradientTransformation = child()
    window: int | None = static(None)

    def init(self, params):
        if self.window is None:
            average = tree_map_none(jnp.asarray, params)
            return PolyakAveragingState(self.inner.init(params), zero_count(), average, None)
        buffer = tree_map_none(
            lambda p: jnp.broadcast_to(jnp.asarray(p)[None], (self.window, *jnp.shape(p))), params
        )
        return PolyakAveragingState(self.inner.init(params), zero_count(), None, buffer)

    def update(self, updates, state, params=None, **extra_args):
        updates, inner_state, iterate = _next_iterate(
            self.gx_name, self.inner, updates, state, params, extra_args
        )
        count = safe_increment(state.count)
        if self.window is None:
            t = count.astype(jnp.result_type(float))
            average = _fold(state.average, iterate, (t - 1) / t, 1 / t)
            return updates, PolyakAveragingState(inner_state, count, average, None)
        slot = state.count % self.window
        buffer = tree_map_none(
            lambda b, x: lax.dynamic_update_index_in_dim(b, x.astype(b.dtype), slot, 0),
            state.window,
            iterate,
        )
        return updates, PolyakAveragingState(inner_state, count, None, buffer)


@fill
def polyak_averaging(inner: Any, *, window: int | None = None) -> PolyakAveraging:
    r"""Polyak–Ruppert averaging of the iterates: the running or windowed mean.

    With ``window=None``, the mean of every iterate so far,

    .. math::
        \bar\theta_t = \frac1t \sum_{i=1}^{t} \theta_i
        = \bar\theta_{t-1} + \frac{\theta_t - \bar\theta_{t-1}}{t},

    computed as $\tfrac{t-1}{t}\bar\theta_{t-1} + \tfrac1t\theta_t$ so that
    $\bar\theta_1 = \theta_1$ exactly. With ``window=N``, the seed's mean of the
    last $N$ iterates,
    $\bar\theta_t = \frac1N \sum_{i=0}^{N-1} \theta_{t-i}$ (over the
    $t$ iterates so far while $t < N$).

    Here $\theta_t$ is the parameters after the $t$-th update (``params +
    updates`` of the inner transformation, as :func:`~gradtx.apply_updates`);
    $\theta_0$ is never averaged. Read the average with
    :func:`~gradtx.averaged_params`; before the first update it is $\theta_0$.
    The updates pass through unchanged, so training is bit-identical to
    training with ``inner`` alone; ``update`` needs ``params``.

    Memory: the running mean costs one copy of the params. The window keeps a
    ring buffer of the last $N$ iterates ($N\times$ the params) and, when
    read, sums it oldest first and divides once: the result is exactly the
    left-to-right sum of the last $N$ iterates over $N$ (for array leaves, exactly
    ``np.mean(np.stack(last_N_iterates), axis=0)``); a running sum would drift
    by rounding. Reading costs $N$ additions per element.

    Args:
      inner: the optimizer whose iterates are averaged (its output must be the
        update applied to the params; optax transforms are accepted).
      window: None for the average of all iterates, or the number $N \ge 1$ of
        most recent iterates to average (static: it sets the buffer's shape).

    Returns:
      {returns_tx} State: :class:`PolyakAveragingState`.

    References:
      Polyak & Juditsky, *Acceleration of stochastic approximation by
      averaging*, SIAM J. Control Optim., 1992. Ruppert, *Efficient estimations
      from a slowly convergent Robbins–Monro process*, 1988.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradtx as gx
      >>> opt = gx.polyak_averaging(gx.sgd(1.0), window=2)
      >>> params = jnp.array([0.0])
      >>> state = opt.init(params)
      >>> for g in (-1.0, -2.0, -4.0):  # iterates 1, 3, 7
      ...     updates, state = opt.update(jnp.array([g]), state, params)
      ...     params = gx.apply_updates(params, updates)
      >>> print(gx.averaged_params(state))
      [5.]
    """
    from gradtx.transforms.combine import as_transform

    inner = as_transform(inner, "polyak_averaging")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
            raise TypeError(
                f"gx.polyak_averaging: `window` must be None or a positive int (the number of "
                f"iterates to average), got {window!r} of type {type(window).__name__}."
            )
        if window < 1:
            raise ValueError(
                f"gx.polyak_averaging: `window` must be >= 1, got {window}. Use None to "
                "average every iterate."
            )
        window = int(window)
    return PolyakAveraging(inner, window)


class EmaParams(GradientTransformation):
    """See :func:`ema_params`."""

    gx_name = "ema_params"
    inner: GradientTransformation = child()
    decay: Hyper = hyper(0.99, check=UNIT_INTERVAL)
    debias: bool = static(False)

    def init(self, params):
        return EmaParamsState(self.inner.init(params), zero_count(), tree_map_none(jnp.asarray, params))

    def update(self, updates, state, params=None, **extra_args):
        updates, inner_state, iterate = _next_iterate(
            self.gx_name, self.inner, updates, state, params, extra_args
        )
        beta = jnp.asarray(evaluate(self, state.count).decay)
        count = safe_increment(state.count)
        if self.debias:
            # Recursive form of m_t / (1 - beta^t) for m_t the zero-started EMA.
            take = (1 - beta) / (1 - beta**count)
            ema = _fold(state.ema, iterate, 1 - take, take)
        else:  # Keras: the first iterate replaces the average.
            ema = _fold(state.ema, iterate, jnp.where(state.count == 0, jnp.zeros_like(beta), beta))
        return updates, EmaParamsState(inner_state, count, cast_like(ema, state.ema))


@fill
def ema_params(inner: Any, decay: Hyper = 0.99, *, debias: bool = False) -> EmaParams:
    r"""An exponential moving average of the iterates (Keras's ``use_ema``).

    .. math::
        \tilde\theta_1 = \theta_1, \qquad
        \tilde\theta_t = \beta\,\tilde\theta_{t-1} + (1-\beta)\,\theta_t ,

    Keras's ``ema_momentum`` (default 0.99), also optax's
    ``incremental_update(new, old, step_size=1 - decay)`` applied each step.
    With ``debias=True`` it is instead the bias-corrected EMA started at zero,
    $\tilde\theta_t = m_t / (1-\beta^t)$ with $m_t = \beta m_{t-1} +
    (1-\beta)\theta_t$, $m_0 = 0$: a weighted mean of $\theta_1..\theta_t$
    with weights $\propto \beta^{t-i}$ (kept in the equivalent recursive form,
    so nothing is ever divided by a tiny $1-\beta^t$). Both give
    $\tilde\theta_1 = \theta_1$.

    $\theta_t$ is the parameters after the $t$-th update; $\theta_0$ is never
    averaged and is what :func:`~gradtx.averaged_params` returns before the
    first update. Updates pass through unchanged; ``update`` needs ``params``.
    Memory: one copy of the params.

    Args:
      inner: the optimizer whose iterates are averaged (optax transforms are
        accepted).
      decay: $\beta \in [0, 1)$, default 0.99 (Keras's default). A leaf of the
        transformation: a float, an array (``jax.vmap`` over a batch of them)
        or a schedule of the step count (debiasing then uses the current
        $\beta$, like :func:`~gradtx.ema`).
      debias: static; use the bias-corrected zero-started EMA.

    Returns:
      {returns_tx} State:
      :class:`EmaParamsState`.

    References:
      Polyak & Juditsky, 1992 (see :func:`polyak_averaging`). Keras
      ``Optimizer(use_ema=True, ema_momentum=0.99)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradtx as gx
      >>> opt = gx.ema_params(gx.sgd(1.0), decay=0.5)
      >>> params = jnp.array([0.0])
      >>> state = opt.init(params)
      >>> for g in (-2.0, -2.0):  # iterates 2, 4
      ...     updates, state = opt.update(jnp.array([g]), state, params)
      ...     params = gx.apply_updates(params, updates)
      >>> print(gx.averaged_params(state))  # 0.5 * 2 + 0.5 * 4
      [3.]
    """
    from gradtx.transforms.combine import as_transform

    return EmaParams(as_transform(inner, "ema_params"), decay, debias)


def _is_average_state(x: Any) -> bool:
    return isinstance(x, (PolyakAveragingState, EmaParamsState))


def _find(state: Any) -> list[Any]:
    """Every averaging state in ``state``, outermost first (nested ones included)."""
    found = []
    for x in jax.tree.leaves(state, is_leaf=_is_average_state):
        if _is_average_state(x):
            found.append(x)
            found.extend(_find(x.inner_state))
    return found


def _kind(s: Any) -> str:
    if isinstance(s, EmaParamsState):
        return "ema"
    return "running" if s.window is None else "window"


def averaged_params(state: Any, kind: str | None = None) -> Any:
    r"""The averaged parameters kept by :func:`polyak_averaging` or :func:`ema_params`.

    ``state`` may be the wrapper's own state or any optimizer state that
    contains it (e.g. inside a :func:`~gradtx.chain`); the state tree is
    searched. Before the first update the result is $\theta_0$.

    Args:
      state: an optimizer state containing one averaging state, or several of
        different kinds (nested wrappers) when ``kind`` is given.
      kind: which average to read when there are several: ``"running"``
        (``polyak_averaging()``), ``"window"`` (``polyak_averaging(window=N)``)
        or ``"ema"`` (``ema_params``). None: the only one.

    Returns:
      A pytree like the params, in their dtypes.

    Raises:
      ValueError: no averaging state is found, or ``kind`` does not pick
        exactly one.

    Example:
      >>> import jax.numpy as jnp
      >>> import gradtx as gx
      >>> opt = gx.chain(gx.clip(1.0), gx.polyak_averaging(gx.sgd(0.5)))
      >>> params = {"w": jnp.array([1.0, 2.0])}
      >>> state = opt.init(params)
      >>> print(gx.averaged_params(state)["w"])  # theta_0 before any update
      [1. 2.]
    """
    if kind is not None and kind not in _KINDS:
        raise ValueError(
            f"gx.averaged_params: `kind` must be None or one of {list(_KINDS)}, got {kind!r}."
        )
    found = _find(state)
    if kind is not None:
        found = [s for s in found if _kind(s) == kind]
    if len(found) != 1:
        kinds = [_kind(s) for s in _find(state)]
        if not kinds:
            raise ValueError(
                "gx.averaged_params: `state` holds no averaging state. Build the optimizer with "
                "gx.polyak_averaging(...) or gx.ema_params(...) and pass its state."
            )
        raise ValueError(
            f"gx.averaged_params: `state` holds averages of kinds {kinds}; "
            + (f"none is {kind!r}." if not found else "pass `kind=` to pick one, or pass the "
               "wrapper's own state.")
        )
    s = found[0]
    if isinstance(s, EmaParamsState):
        return s.ema
    if s.window is None:
        return s.average
    return tree_map_none(lambda b: _window_mean(b, s.count), s.window)
