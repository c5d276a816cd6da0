"""``EarlyStopping``: a pure, jittable stop flag for training loops and ``lax.scan``."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.hyperparams import NONNEGATIVE, NONNEGATIVE_INTEGER, Hyper, is_scheduled
from gradtx.core.module import Module, hyper, static
from gradtx.core.numerics import as_int32, safe_increment, zero_count

__all__ = ["EarlyStoppingState", "EarlyStopping"]


class EarlyStoppingState(NamedTuple):
    """State of :class:`EarlyStopping`.

    Attributes:
      best: the best monitored value so far (``inf`` for ``mode='min'``,
        ``-inf`` for ``'max'`` before the first one).
      since_best: values seen since the best one (int32); the best was value
        number ``count - since_best`` (1-based).
      stopped: whether to stop (bool); once True it stays True and the state
        no longer changes.
      count: values seen up to and including the one that stopped (int32).
    """

    best: jax.Array
    since_best: jax.Array
    stopped: jax.Array
    count: jax.Array


class EarlyStopping(Module):
    r"""Stops when a monitored value has not improved for ``patience`` values.

    For ``mode='min'`` a value $v$ improves on the best $b$ iff
    $v < b - \delta$ (``'max'``: $v > b + \delta$), with $\delta$ =
    ``min_delta``. An improvement sets $b \leftarrow v$ and ``since_best`` to
    0; any other value (NaN included) adds one, and the flag ``stopped`` is set
    when ``since_best >= patience``. Once stopped, ``update`` returns the state
    unchanged. This is the rule of Keras's and PyTorch Lightning's
    ``EarlyStopping`` callbacks (``patience=0`` stops at the first value that
    does not improve), written as pure functions so it runs inside ``jit``,
    ``lax.scan`` and ``vmap``: ``patience`` and ``min_delta`` are pytree leaves,
    so a batch of them under ``vmap`` needs no recompile.

    To freeze training inside ``lax.scan``, update the stopper with the
    step's validation loss and keep the old carry where it says stop,
    ``jnp.where(es_state.stopped, old, new)`` on every leaf (example below).
    The scan still runs all its steps; frozen steps are cheap no-ops on the
    parameters.

    Args:
      patience: values without improvement before stopping (an integer >= 0).
      min_delta: $\delta \ge 0$, the smallest change that counts as improving
        (default 0.0: any strict improvement).
      mode: ``'min'`` (a loss) or ``'max'`` (e.g. an accuracy); static.

    References:
      Prechelt, *Early Stopping -- But When?*, in Neural Networks: Tricks of the
      Trade, 1998. Keras ``callbacks.EarlyStopping``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> opt, es = gx.sgd(0.1), gx.EarlyStopping(patience=1, min_delta=0.2)
      >>> def step(carry, _):
      ...     x, opt_state, es_state = carry
      ...     loss, g = jax.value_and_grad(lambda x: jnp.sum(x ** 2))(x)
      ...     u, new_opt_state = opt.update(g, opt_state, x)
      ...     es_state = es.update(es_state, loss)
      ...     keep = lambda old, new: jnp.where(es_state.stopped, old, new)
      ...     x, opt_state = jax.tree.map(keep, (x, opt_state),
      ...                                 (gx.apply_updates(x, u), new_opt_state))
      ...     return (x, opt_state, es_state), loss
      >>> x0 = jnp.array([1.0])
      >>> (x, _, es_state), losses = jax.lax.scan(
      ...     step, (x0, opt.init(x0), es.init()), length=6)
      >>> [round(float(v), 3) for v in losses]     # frozen after the 4th loss
      [1.0, 0.64, 0.41, 0.262, 0.262, 0.262]
      >>> bool(es_state.stopped), int(es_state.count), round(float(x[0]), 3)
      (True, 4, 0.512)
    """

    gx_name = "EarlyStopping"
    patience: Hyper = hyper(check=NONNEGATIVE_INTEGER)
    min_delta: Hyper = hyper(0.0, check=NONNEGATIVE)
    mode: str = static("min")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("min", "max"):
            raise ValueError(f"gx.EarlyStopping: `mode` must be 'min' or 'max', got {self.mode!r}.")
        if is_scheduled(self):
            raise TypeError(
                "gx.EarlyStopping: `patience` and `min_delta` must be numbers or JAX "
                "arrays, not schedules."
            )

    def init(self, dtype=None) -> EarlyStoppingState:
        """The initial state; ``best`` has ``dtype`` (default: JAX's default float)."""
        inf = jnp.inf if self.mode == "min" else -jnp.inf
        return EarlyStoppingState(
            best=jnp.full([], inf, dtype or jnp.zeros([]).dtype),
            since_best=zero_count(),
            stopped=jnp.zeros([], bool),
            count=zero_count(),
        )

    def update(self, state: EarlyStoppingState, value: jax.Array) -> EarlyStoppingState:
        """The state after observing ``value`` (a scalar); unchanged once stopped."""
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"gx.EarlyStopping: `value` must be a scalar, got shape {jnp.shape(value)}; "
                "reduce it first (e.g. `loss.mean()`)."
            )
        value = jnp.asarray(value).astype(state.best.dtype)
        sign = 1 if self.mode == "min" else -1
        # +-inf best: inf - delta stays inf, so any finite value improves.
        improved = sign * value < sign * state.best - self.min_delta
        since_best = jnp.where(improved, 0, safe_increment(state.since_best)).astype(jnp.int32)
        new = EarlyStoppingState(
            best=jnp.where(improved, value, state.best),
            since_best=since_best,
            stopped=~improved & (since_best >= as_int32(self.patience)),
            count=safe_increment(state.count),
        )
        return jax.tree.map(lambda old, n: jnp.where(state.stopped, old, n), state, new)
