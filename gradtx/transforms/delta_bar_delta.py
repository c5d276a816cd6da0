"""Delta-bar-delta: per-parameter learning rates adapted by gradient-sign agreement."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import NONNEGATIVE, UNIT_INTERVAL, Hyper, Schedule, evaluate
from gradtx.core.module import hyper
from gradtx.core import tree as gt

__all__ = ["ScaleByDeltaBarDeltaState", "ScaleByDeltaBarDelta", "scale_by_delta_bar_delta"]


class ScaleByDeltaBarDeltaState(NamedTuple):
    """State of :func:`scale_by_delta_bar_delta`.

    Attributes:
      rates: the per-parameter learning rates $\\epsilon$, like the params (real
        dtype; for complex params their real counterpart).
      trace: $\\bar\\delta$, the exponential average of past gradients.
      count: updates so far when ``kappa``, ``phi`` or ``theta`` is scheduled, else None.
    """

    rates: Any
    trace: Any
    count: jax.Array | None = None


def _real_dtype(x: Any) -> Any:
    dtype = jnp.result_type(x)
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


def _agreement(g: jax.Array, t: jax.Array) -> jax.Array:
    """$\\mathrm{Re}(g\\,\\bar{t})$: the product $g\\,\\bar\\delta$ (real for complex leaves)."""
    return jnp.real(g * jnp.conj(t)) if jnp.iscomplexobj(g) else g * t


class ScaleByDeltaBarDelta(GradientTransformation):
    r"""Jacobs' delta-bar-delta scaling (see :func:`scale_by_delta_bar_delta`)."""

    gx_name = "scale_by_delta_bar_delta"
    initial_rate: Hyper = hyper(check=NONNEGATIVE)
    kappa: Hyper = hyper(check=NONNEGATIVE)
    phi: Hyper = hyper(check=UNIT_INTERVAL)
    theta: Hyper = hyper(check=UNIT_INTERVAL)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.initial_rate, Schedule):
            raise TypeError(
                "gx.scale_by_delta_bar_delta: `initial_rate` is used once, by `init`, and "
                "cannot be a schedule; pass a number (the rates then adapt on their own), "
                "or schedule `kappa`/`phi`/`theta` instead."
            )

    def init(self, params):
        rates = gt.tree_map_none(
            lambda p: jnp.full(jnp.shape(p), self.initial_rate, _real_dtype(p)), params
        )
        return ScaleByDeltaBarDeltaState(rates, gt.zeros_like(params), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)

        def new_rate(g, eps, t):
            agree = _agreement(g, t)
            grown = jnp.where(agree > 0, eps + h.kappa, eps)
            return jnp.where(agree < 0, (1 - h.phi) * eps, grown).astype(eps.dtype)

        rates = gt.tree_map_none(new_rate, updates, state.rates, state.trace)
        trace = gt.update_moment(updates, state.trace, h.theta, 1)
        out = gt.tree_map_none(lambda g, eps: (eps * g).astype(g.dtype), updates, rates)
        new_state = ScaleByDeltaBarDeltaState(
            rates, gt.cast_like(trace, state.trace), next_count(state.count)
        )
        return out, new_state


@fill
def scale_by_delta_bar_delta(
    initial_rate: Hyper = 0.01, kappa: Hyper = 1e-3, phi: Hyper = 0.1, theta: Hyper = 0.7
) -> ScaleByDeltaBarDelta:
    r"""Per-parameter learning rates that grow while the gradient keeps its sign.

    Jacobs' (1988) delta-bar-delta rule. With $g_t$ the incoming update and
    $\bar\delta_0 = 0$, $\epsilon_0 = $ ``initial_rate``, elementwise:

    .. math::
        \epsilon_t = \begin{cases}
            \epsilon_{t-1} + \kappa & g_t\,\bar\delta_{t-1} > 0 \\
            (1-\phi)\,\epsilon_{t-1} & g_t\,\bar\delta_{t-1} < 0 \\
            \epsilon_{t-1} & \text{otherwise}
        \end{cases}, \qquad
        \bar\delta_t = (1-\theta)\, g_t + \theta\, \bar\delta_{t-1}, \qquad
        u_t = \epsilon_t\, g_t .

    Rates grow *additively* (so they cannot blow up geometrically) and shrink
    *multiplicatively* (so they fall fast after an overshoot). The rate used at
    step $t$ already includes the adjustment from $g_t$, as in Jacobs' weight
    update $w(t+1) = w(t) - \epsilon(t+1)\,\delta(t)$. The first step is
    $\epsilon_0 g_0$ ($\bar\delta_0 = 0$ leaves the rates unchanged).

    Like every ``scale_by_*`` transform the output points *along* the
    gradient; :func:`~gradtx.delta_bar_delta` flips the sign for descent. Complex
    leaves use $\mathrm{Re}(g_t \overline{\bar\delta_{t-1}})$ and real rates.

    Args:
      initial_rate: $\epsilon_0 \ge 0$, every parameter's starting rate (a number
        or array; not a schedule, as it is used only by ``init``).
      kappa: $\kappa \ge 0$, the additive increase.
      phi: $\phi \in [0, 1)$, the fraction of the rate removed on a sign flip.
      theta: $\theta \in [0, 1)$, the decay of the gradient average $\bar\delta$.

    Every argument is a pytree leaf of the result; ``kappa``, ``phi`` and
    ``theta`` may be schedules (the state then carries a ``count``).

    Returns:
      {returns_tx} State:
      :class:`ScaleByDeltaBarDeltaState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_delta_bar_delta(initial_rate=0.1, kappa=0.05, phi=0.5, theta=0.5)
      >>> state = tx.init(jnp.zeros(2, jnp.float32))
      >>> u, state = tx.update(jnp.array([1.0, -1.0], jnp.float32), state)  # no history: 0.1
      >>> u, state = tx.update(jnp.array([1.0, 1.0], jnp.float32), state)   # agrees / flips
      >>> state.rates
      Array([0.15, 0.05], dtype=float32)

    References:
      Jacobs, *Increased rates of convergence through learning rate adaptation*,
      Neural Networks 1(4):295-307, 1988.
    """
    return ScaleByDeltaBarDelta(initial_rate, kappa, phi, theta)
