"""Sign-based scaling: Lion's interpolated-momentum sign (Chen et al., 2023).

The plain sign of the updates (signSGD) is :func:`~gradtx.scale_by_sign`;
Signum is ``ema(beta, debias=False)`` followed by it (see
:mod:`gradtx.optimizers.sign`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import POSITIVE, UNIT_CLOSED, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, zero_count

__all__ = ["ScaleByLion", "ScaleByLionState", "scale_by_lion"]

_MODES = ("hard", "smooth", "refined")


class ScaleByLionState(NamedTuple):
    """State of :func:`scale_by_lion` (optax's field names).

    Attributes:
      count: updates so far (int32).
      mu: the momentum $m$, an EMA of the gradients with decay $\\beta_2$.
    """

    count: jax.Array
    mu: Any


class ScaleByLion(GradientTransformation):
    r"""Lion's scaling (see :func:`scale_by_lion`)."""

    gx_name = "scale_by_lion"
    b1: Hyper = hyper(0.9, UNIT_CLOSED)
    b2: Hyper = hyper(0.99, UNIT_CLOSED)
    mu_dtype: Any = static(None)
    mode: str = static("hard")
    smooth_beta: Hyper = hyper(1.0, POSITIVE)

    def __post_init__(self):
        super().__post_init__()
        if self.mode not in _MODES:
            raise ValueError(f"gx.scale_by_lion: `mode` must be one of {_MODES}, got {self.mode!r}.")

    def init(self, params):
        return ScaleByLionState(zero_count(), gt.zeros_like(params, self.mu_dtype))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        # The interpolation c = (1 - b1) g + b1 m is an EMA step with decay b1: the one helper.
        interp = gt.update_moment(updates, state.mu, h.b1, 1)
        if self.mode == "hard":
            direction = gt.tree_map_none(jnp.sign, interp)
        elif self.mode == "smooth":
            beta = gt.scalar_for(h.smooth_beta)
            direction = gt.tree_map_none(lambda c: jnp.tanh(beta(c) * c), interp)
        else:  # refined: linear below 1 in magnitude, the sign above
            direction = gt.tree_map_none(lambda c: jnp.where(jnp.abs(c) < 1, c, jnp.sign(c)), interp)
        mu = gt.update_moment(updates, state.mu, h.b2, 1)
        # Each direction leaf in its update's dtype (a wider mu_dtype does not widen the updates).
        direction = gt.cast_like(direction, updates)
        return direction, ScaleByLionState(safe_increment(state.count), gt.cast_like(mu, state.mu))


@fill
def scale_by_lion(
    b1: Hyper = 0.9,
    b2: Hyper = 0.99,
    mu_dtype: Any = None,
    *,
    mode: str = "hard",
    smooth_beta: Hyper = 1.0,
) -> ScaleByLion:
    r"""Lion's direction: the sign of an interpolation of momentum and gradient.

    .. math::
        c_t = (1-\beta_1)\, g_t + \beta_1\, m_{t-1}, \qquad
        u_t = \mathrm{sign}(c_t), \qquad
        m_t = (1-\beta_2)\, g_t + \beta_2\, m_{t-1},

    with $m_0 = 0$. The momentum that is stored ($\beta_2$) decays more
    slowly than the one whose sign is taken ($\beta_1$). ``mode="smooth"``
    replaces $\mathrm{sign}(c)$ by $\tanh(\beta_s c)$ and ``mode="refined"``
    by $c$ where $|c| < 1$ (the sign elsewhere), as in optax.

    Unlike optax, each update leaf keeps its gradient's dtype when
    ``mu_dtype`` is wider (optax's float32 ``mu`` turns bfloat16 updates into
    float32 ones), and ``b1``, ``b2`` are checked to lie in $[0, 1]$.

    Args:
      b1: $\beta_1 \in [0, 1]$, the weight of the momentum in the sign.
      b2: $\beta_2 \in [0, 1]$, the decay of the stored momentum.
      {mu_dtype}
      mode: ``"hard"`` (the sign, the paper's), ``"smooth"`` or ``"refined"``.
      smooth_beta: $\beta_s > 0$, the slope of ``"smooth"``'s $\tanh$.

    {hyper}

    Returns:
      {returns_tx} State: :class:`ScaleByLionState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_lion()
      >>> state = tx.init(jnp.zeros(3))
      >>> u, state = tx.update(jnp.array([0.5, -2.0, 0.0]), state)
      >>> u.tolist()
      [1.0, -1.0, 0.0]

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*,
      arXiv:2302.06675, 2023.
    """
    return ScaleByLion(b1, b2, mu_dtype, mode, smooth_beta)
