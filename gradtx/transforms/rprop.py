"""Rprop: per-parameter step sizes adapted by the sign of successive gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import (
    NONNEGATIVE,
    POSITIVE,
    UNIT_CLOSED,
    Hyper,
    concrete_value,
    evaluate,
)
from gradtx.core.module import Check, hyper
from gradtx.core.numerics import zero_count

__all__ = ["ScaleByRprop", "ScaleByRpropState", "scale_by_rprop"]

AT_LEAST_ONE = Check(">= 1", lambda a: a >= 1)


class ScaleByRpropState(NamedTuple):
    """State of :func:`scale_by_rprop`.

    Attributes:
      step_sizes: the per-parameter step sizes $\\Delta$, like the params.
      prev_updates: the last update, $\\Delta\\,\\mathrm{sign}(g)$ (0 after a sign flip).
      count: updates so far when a hyperparameter is a schedule, else None.
    """

    step_sizes: Any
    prev_updates: Any
    count: jax.Array | None = None


class ScaleByRprop(GradientTransformation):
    r"""Rprop scaling (see :func:`scale_by_rprop`)."""

    gx_name = "scale_by_rprop"
    learning_rate: Hyper = hyper(check=NONNEGATIVE)
    eta_minus: Hyper = hyper(0.5, UNIT_CLOSED)
    eta_plus: Hyper = hyper(1.2, AT_LEAST_ONE)
    min_step_size: Hyper = hyper(1e-6, NONNEGATIVE)
    max_step_size: Hyper = hyper(50.0, POSITIVE)

    def __post_init__(self):
        super().__post_init__()
        lo, hi = concrete_value(self.min_step_size), concrete_value(self.max_step_size)
        concrete = lo is not None and hi is not None and lo.dtype.kind in "biuf" and hi.dtype.kind in "biuf"
        if concrete and not bool((lo <= hi).all()):
            raise ValueError(
                    f"gx.scale_by_rprop: `min_step_size` must be <= `max_step_size`, got {lo} > {hi}."
                )

    def init(self, params):
        h = evaluate(self, zero_count())
        return ScaleByRpropState(gt.full_like(params, h.learning_rate), gt.zeros_like(params), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)

        # The signs' product, not optax's g * prev: the same decision, but it cannot
        # underflow to 0 (a tiny gradient times a small step) and freeze the step size.
        signs = gt.tree_map_none(lambda g, prev: jnp.sign(g) * jnp.sign(prev), updates, state.prev_updates)

        def new_step(s, step):
            grown = jnp.clip(step * jnp.where(s > 0, h.eta_plus, h.eta_minus), h.min_step_size, h.max_step_size)
            return jnp.where(s == 0, step, grown).astype(step.dtype)

        def new_update(s, g, step):
            return jnp.where(s < 0, jnp.zeros_like(step), step * jnp.sign(g)).astype(step.dtype)

        steps = gt.tree_map_none(new_step, signs, state.step_sizes)
        prevs = gt.tree_map_none(new_update, signs, updates, steps)
        out = gt.cast_like(prevs, updates)
        return out, ScaleByRpropState(steps, prevs, next_count(state.count))


def scale_by_rprop(
    learning_rate: Hyper,
    eta_minus: Hyper = 0.5,
    eta_plus: Hyper = 1.2,
    min_step_size: Hyper = 1e-6,
    max_step_size: Hyper = 50.0,
) -> ScaleByRprop:
    r"""Rprop's update: a step size per parameter, grown or shrunk by the gradient's sign.

    Elementwise, with $\Delta_0 = $ ``learning_rate`` and $u_0 = 0$, let
    $s_t = \mathrm{sign}(g_t)\,\mathrm{sign}(u_{t-1})$. Then

    .. math::
        \Delta_t = \begin{cases}
            \mathrm{clip}(\eta^+ \Delta_{t-1}, \Delta_{\min}, \Delta_{\max}) & s_t > 0 \\
            \mathrm{clip}(\eta^- \Delta_{t-1}, \Delta_{\min}, \Delta_{\max}) & s_t < 0 \\
            \Delta_{t-1} & s_t = 0
        \end{cases}, \qquad
        u_t = \begin{cases} 0 & s_t < 0 \\ \Delta_t\,\mathrm{sign}(g_t) & \text{else} \end{cases}

    After a sign flip the step is skipped (and the next step starts afresh),
    as in Rprop without weight backtracking (Igel & Hüsken's Rprop-). The
    output points along the gradient; :func:`~gradtx.rprop` flips it for
    descent. Real parameters only (it compares signs).

    Better than optax 0.2.8, in two ways. (1) optax emits the *previous*
    step's update (its first update is 0 and every later one lags a step;
    google-deepmind/optax#1725); gradtx emits the current $u_t$, as the paper
    and ``torch.optim.Rprop`` do. The states are the same: $u_t$ is optax's new
    ``prev_updates``. (2) The sign test multiplies the signs, not
    $g_t u_{t-1}$, whose product underflows to 0 for tiny gradients and small
    steps (float32: below about $10^{-38}$), which optax then treats as "no
    sign information", never adapting the step.

    Args:
      learning_rate: $\Delta_0 \ge 0$, every parameter's initial step size.
      eta_minus: $\eta^- \in [0, 1]$, the factor applied after a sign flip.
      eta_plus: $\eta^+ \ge 1$, the factor applied while the sign is kept.
      min_step_size: $\Delta_{\min} \ge 0$.
      max_step_size: $\Delta_{\max} > 0$ (at least ``min_step_size``).

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state
      :class:`ScaleByRpropState`. Every argument is a pytree leaf of the result
      (a new ``eta_plus`` does not recompile) and may be a schedule
      (``learning_rate`` is read once, by ``init``, at count 0).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_rprop(learning_rate=0.1)
      >>> state = tx.init(jnp.zeros(2, jnp.float32))
      >>> u, state = tx.update(jnp.array([3.0, -1.0], jnp.float32), state)
      >>> u, state = tx.update(jnp.array([2.0, 5.0], jnp.float32), state)  # kept / flipped
      >>> u, state.step_sizes
      (Array([0.12, 0.  ], dtype=float32), Array([0.12, 0.05], dtype=float32))

    References:
      Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation
      Learning: The RPROP Algorithm*, IEEE ICNN 1993; Igel & Hüsken, *Empirical
      Evaluation of the Improved Rprop Learning Algorithms*, Neurocomputing 2003.
    """
    return ScaleByRprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)
