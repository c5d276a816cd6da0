"""More adam-like scalings: NovoGrad (layer-wise second moment) and the optimistic gradient.

AdaBelief, Yogi, RAdam and Adan are in :mod:`gradtx.transforms.adam_like`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation, next_count, schedule_count
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, sum_of_squares, zero_count
from gradtx.core import tree as gt
from gradtx.transforms.adam import _check_eps

__all__ = [
    "ScaleByNovogradState",
    "ScaleByOptimisticGradientState",
    "ScaleByNovograd",
    "ScaleByOptimisticGradient",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
]


class ScaleByNovogradState(NamedTuple):
    """State of :func:`scale_by_novograd`.

    Attributes:
      count: updates so far (int32).
      mu: the momentum buffer, like the params (in ``mu_dtype`` if given).
      nu: one real scalar per params leaf: the EMA of $\\lVert g \\rVert^2$ over that leaf.
    """

    count: jax.Array
    mu: Any
    nu: Any


def _real_scalar_like(p: jax.Array) -> jax.Array:
    """A 0-d zero in the real dtype of ``p`` (float32 for complex64)."""
    return jnp.zeros([], jnp.finfo(jnp.result_type(p)).dtype)


class ScaleByNovograd(GradientTransformation):
    r"""NovoGrad's scaling (see :func:`scale_by_novograd`)."""

    gx_name = "scale_by_novograd"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.25, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    weight_decay: Hyper = hyper(0.0, NONNEGATIVE)
    mu_dtype: Any = static(None)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByNovogradState(
            zero_count(), gt.zeros_like(params, self.mu_dtype), gt.tree_map_none(_real_scalar_like, params)
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.{self.gx_name}: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        count = safe_increment(state.count)
        first = count == 1
        # On the first step nu = ||g||^2 and mu = the scaled gradient: EMAs with decay 0.
        b1 = jnp.where(first, 0.0, h.b1)
        b2 = jnp.where(first, 0.0, h.b2)
        sq_norms = gt.tree_map_none(sum_of_squares, updates)
        nu = gt.cast_like(gt.update_moment(sq_norms, state.nu, b2, 1), state.nu)
        scaled = gt.tree_map_none(
            lambda g, v, p: g / (jnp.sqrt(v + h.eps_root) + h.eps) + h.weight_decay * p, updates, nu, params
        )
        mu = gt.tree_map_none(lambda m, s: b1 * m + s, state.mu, scaled)
        mu = gt.cast_like(mu, state.mu)
        return mu, ScaleByNovogradState(count, mu, nu)


@fill
def scale_by_novograd(
    b1: Hyper = 0.9,
    b2: Hyper = 0.25,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    weight_decay: Hyper = 0.0,
    mu_dtype: Any = None,
) -> ScaleByNovograd:
    r"""NovoGrad: momentum on gradients normalised by a per-layer second moment.

    For each leaf (layer) $\ell$ of the params, with $g^\ell_t$ its gradient:

    .. math::
        v^\ell_t = \beta_2 v^\ell_{t-1} + (1-\beta_2) \lVert g^\ell_t \rVert^2
        \;\;(v^\ell_1 = \lVert g^\ell_1 \rVert^2), \\
        m^\ell_t = \beta_1 m^\ell_{t-1} + \frac{g^\ell_t}{\sqrt{v^\ell_t + \epsilon_{root}} + \epsilon}
        + \lambda\,\theta^\ell_t \;\;(m^\ell_0 = 0), \qquad u^\ell_t = m^\ell_t .

    $v$ is one scalar per leaf (half of Adam's memory), there is no bias
    correction (the first step initialises $v$ instead), and the momentum is
    a plain trace ($\beta_1 m + \dots$, not an EMA). The weight decay is
    inside the momentum, so ``update`` always needs ``params``.

    Compared with optax: $\lVert g \rVert^2$ is summed directly (optax squares
    ``jnp.linalg.norm``, rounding through a square root), and for complex
    params $v$ is stored real (optax stores it complex, with zero imaginary part).

    Args:
      b1: momentum $\beta_1 \in [0, 1)$.
      b2: decay $\beta_2 \in [0, 1)$ of the per-layer EMA of $\lVert g \rVert^2$.
      {eps}
      {eps_root}
      weight_decay: $\lambda \ge 0$, added to the normalised gradient inside the momentum.
      {mu_dtype}

    Returns:
      {returns_tx} State: :class:`ScaleByNovogradState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_novograd()
      >>> params = {"w": jnp.zeros(2, jnp.float32)}
      >>> u, state = tx.update({"w": jnp.array([3.0, -4.0], jnp.float32)}, tx.init(params), params)
      >>> [round(float(x), 4) for x in u["w"]]  # g / ||g||
      [0.6, -0.8]

    References:
      Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive
      Moments for Training of Deep Networks*, 2019 (arXiv:1905.11286).
    """
    return ScaleByNovograd(b1, b2, eps, eps_root, weight_decay, mu_dtype)


class ScaleByOptimisticGradientState(NamedTuple):
    """State of :func:`scale_by_optimistic_gradient`.

    Attributes:
      is_initial_step: True until the first update (a boolean scalar).
      previous_gradient: the last incoming update, like the params.
      count: updates so far when ``alpha`` or ``beta`` is scheduled, else None.
    """

    is_initial_step: jax.Array
    previous_gradient: Any
    count: jax.Array | None = None


class ScaleByOptimisticGradient(GradientTransformation):
    r"""The generalised optimistic gradient (see :func:`scale_by_optimistic_gradient`)."""

    gx_name = "scale_by_optimistic_gradient"
    alpha: Hyper = hyper(1.0, NONNEGATIVE)
    beta: Hyper = hyper(1.0, NONNEGATIVE)

    def init(self, params):
        return ScaleByOptimisticGradientState(jnp.array(True), gt.zeros_like(params), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        first = state.is_initial_step

        def optimistic(g, prev):
            prev = jnp.where(first, g, prev)  # no previous gradient yet: use g itself
            return (h.alpha + h.beta) * g - h.beta * prev

        out = gt.tree_map_none(optimistic, updates, state.previous_gradient)
        return out, ScaleByOptimisticGradientState(
            jnp.zeros_like(first), gt.cast_like(updates, state.previous_gradient), next_count(state.count)
        )


@fill
def scale_by_optimistic_gradient(alpha: Hyper = 1.0, beta: Hyper = 1.0) -> ScaleByOptimisticGradient:
    r"""The generalised optimistic gradient: the current gradient plus a correction
    by its change since the last step.

    .. math::
        u_t = (\alpha + \beta)\, g_t - \beta\, g_{t-1}
            = \alpha g_t + \beta (g_t - g_{t-1}), \qquad g_0 := g_1 .

    The first update is $\alpha g_1$. With $\alpha = \beta = 1$ and a learning
    rate this is optimistic gradient descent, $\theta_{t+1} = \theta_t -
    \eta(2g_t - g_{t-1})$, which converges in last iterate on bilinear min-max
    games where plain gradient descent-ascent spirals out.

    Args:
      alpha: $\alpha \ge 0$, the weight of the current gradient.
      beta: $\beta \ge 0$, the weight of the gradient's change (the "optimism",
        a negative momentum).

    Returns:
      {returns_tx} State: :class:`ScaleByOptimisticGradientState` (with a step
      count only when ``alpha`` or ``beta`` is a schedule).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_optimistic_gradient(alpha=1.0, beta=0.5)
      >>> state = tx.init(jnp.zeros(2, jnp.float32))
      >>> u, state = tx.update(jnp.array([1.0, 2.0], jnp.float32), state)
      >>> u, state = tx.update(jnp.array([3.0, 2.0], jnp.float32), state)
      >>> print(u)  # g_2 + 0.5 (g_2 - g_1)
      [4. 2.]

    References:
      Mokhtari, Ozdaglar & Pattathil, *A Unified Analysis of Extra-gradient and
      Optimistic Gradient Methods for Saddle Point Problems: Proximal Point
      Approach*, AISTATS 2020. Daskalakis et al., *Training GANs with Optimism*, ICLR 2018.
    """
    return ScaleByOptimisticGradient(alpha, beta)
