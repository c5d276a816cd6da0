"""``apply_every``: sum the updates of k steps and emit them on the k-th."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import POSITIVE_INTEGER, Hyper, Schedule, evaluate
from gradtx.core.module import hyper
from gradtx.core.numerics import as_int32, safe_increment, zero_count

__all__ = ["ApplyEvery", "ApplyEveryState", "apply_every"]


class ApplyEveryState(NamedTuple):
    """State of :func:`apply_every` (the fields of optax's ``ApplyEvery``).

    Attributes:
      count: the position in the current window, in ``[0, k)`` (int32).
      grad_acc: the sum of the window's updates so far, like the params.
    """

    count: jax.Array
    grad_acc: Any


class ApplyEvery(GradientTransformation):
    r"""Accumulates updates, emitting them every ``k`` steps (see :func:`apply_every`)."""

    gx_name = "apply_every"
    k: Hyper = hyper(1, POSITIVE_INTEGER)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.k, Schedule):
            raise TypeError(
                "gx.apply_every: `k` must be an integer or an integer array, not a schedule (the "
                "state's count is the position in the window, not the step)."
            )

    def init(self, params):
        return ApplyEveryState(zero_count(), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        k = as_int32(evaluate(self, None).k)
        position = state.count % k
        first, last = position == 0, position == k - 1
        # `where`, not optax's multiply-by-boolean: a NaN or inf summed into one window
        # does not leak into the next (0 * inf = NaN).
        grad_acc = gt.tree_map_none(lambda g, a: jnp.where(first, g, a + g), updates, state.grad_acc)
        out = gt.tree_map_none(lambda a: jnp.where(last, a, jnp.zeros_like(a)), grad_acc)
        count = safe_increment(state.count) % k
        return out, ApplyEveryState(count, gt.cast_like(grad_acc, state.grad_acc))


def apply_every(k: Hyper = 1) -> ApplyEvery:
    r"""Sums the updates over windows of ``k`` steps and emits the sum on each window's last step.

    .. math::
        a_t = \begin{cases} g_t & t \bmod k = 0 \\ a_{t-1} + g_t & \text{otherwise} \end{cases},
        \qquad
        u_t = \begin{cases} a_t & t \bmod k = k-1 \\ 0 & \text{otherwise} \end{cases}

    ($t = 0$ on the first update). Transformations before it in a chain
    still update their state every step; for exact large-batch equivalence
    wrap the optimizer in :func:`~gradtx.multi_steps` instead.

    Unlike optax, the window restarts with ``where`` rather than by
    multiplying the old sum by 0, so a non-finite update stays in its window.

    Args:
      k: the window length, an integer $k \ge 1$ (a pytree leaf: ``jax.vmap``
        maps over several; a schedule is refused).

    Returns:
      A :class:`~gradtx.GradientTransformation`; state :class:`ApplyEveryState`.

    Raises:
      ValueError: ``k`` is not a positive integer. TypeError: ``k`` is a schedule.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.apply_every(k=2)
      >>> state = tx.init(jnp.zeros(1))
      >>> u1, state = tx.update(jnp.ones(1), state)
      >>> u2, state = tx.update(2 * jnp.ones(1), state)
      >>> u1.tolist(), u2.tolist(), int(state.count)
      ([0.0], [3.0], 0)
    """
    return ApplyEvery(k)
