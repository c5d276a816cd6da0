"""optax.contrib's MADGRAD (dual averaging) and ACProp (asynchronous AdaBelief).

Same names, signatures, defaults, state layouts and numerics as
``optax.contrib``, with every numeric argument a pytree leaf. ACProp divides
with :func:`~gradtx.transforms.adam.adam_direction` (Adam's overflow-guarded
division); MADGRAD's cube root is not Adam's division (see its docstring).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper
from gradtx.core.numerics import abs_sq, safe_increment, zero_count
from gradtx.core import tree as gt
from gradtx.transforms.adam import _as_computed, _check_eps, adam_direction
from gradtx.transforms.adam_like import ScaleByBeliefState

__all__ = ["MadgradState", "ScaleByMadgrad", "ScaleByAcprop", "scale_by_madgrad", "scale_by_acprop"]


class MadgradState(NamedTuple):
    """State of :func:`scale_by_madgrad` (optax.contrib's fields).

    Attributes:
      count: updates so far (int32).
      grad_sum_sq: $G_k = \\sum_i \\lambda_i |g_i|^2$, like the params.
      s: $s_k = \\sum_i \\lambda_i g_i$, like the params.
      x0: the params ``init`` was given ($x_0$, the dual averaging's centre).
    """

    count: jax.Array
    grad_sum_sq: Any
    s: Any
    x0: Any


class ScaleByMadgrad(GradientTransformation):
    r"""MADGRAD's step (see :func:`scale_by_madgrad`)."""

    gx_name = "scale_by_madgrad"
    learning_rate: Hyper = hyper(check=NONNEGATIVE)
    momentum: Hyper = hyper(0.9, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-6, POSITIVE)

    def init(self, params):
        # x0 is a copy: the state may be donated while the params are still in use.
        x0 = gt.tree_map_none(lambda x: jnp.array(x, copy=True), params)
        return MadgradState(zero_count(), gt.zeros_like(params), gt.zeros_like(params), x0)

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.scale_by_madgrad: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        lr = h.learning_rate + h.eps  # as the reference implementation: never 0
        k = safe_increment(state.count)  # k + 1 (saturating)
        lam = gt.scalar_for(lr * jnp.sqrt(k.astype(lr.dtype)), promote=False)  # in the rate's precision
        g_sum_sq = gt.cast_like(
            gt.tree_map_none(lambda a, g: a + lam(g) * abs_sq(g), state.grad_sum_sq, updates), state.grad_sum_sq
        )
        s = gt.cast_like(gt.tree_map_none(lambda a, g: a + lam(g) * g, state.s, updates), state.s)
        eps = gt.scalar_for(h.eps)

        def dual(x0, s, a):
            sigma = jnp.cbrt(jnp.real(a))
            return x0 - s / (sigma + eps(sigma))

        z = gt.tree_map_none(dual, state.x0, s, g_sum_sq)
        x_new = gt.update_moment(z, params, h.momentum, 1)  # (1 - momentum) z + momentum x
        out = gt.tree_map_none(lambda n, x: n - x, x_new, params)
        return out, MadgradState(k, g_sum_sq, s, state.x0)


@fill
def scale_by_madgrad(learning_rate: Hyper, momentum: Hyper = 0.9, eps: Hyper = 1e-6) -> ScaleByMadgrad:
    r"""MADGRAD's step: momentumised dual averaging with a cube-root adaptive scale.

    With $\lambda_k = (\eta_k + \epsilon)\sqrt{k+1}$ at the $k$-th update ($k = 0, 1, \ldots$):

    .. math::
        s_{k+1} = s_k + \lambda_k g_k, \quad G_{k+1} = G_k + \lambda_k |g_k|^2, \quad
        z_{k+1} = x_0 - \frac{s_{k+1}}{G_{k+1}^{1/3} + \epsilon}, \\
        x_{k+1} = (1-\mu) z_{k+1} + \mu x_k, \qquad u_k = x_{k+1} - x_k

    The learning rate is inside this transform (as in optax): its output is
    the whole step, so chain no ``scale_by_learning_rate`` after it. $x_0$ is
    the params ``init`` was given, and ``update`` needs the current params.
    $\epsilon$ is added to the learning rate too, as in the reference
    implementation. For complex parameters $G$ sums $|g|^2$ (its real part is
    used; optax's would square $g$).

    Numerical range: MADGRAD's denominator is a cube root, not Adam's
    division, and its step is not scale-free ($\propto |g|^{1/3}$ for a
    steady gradient). Where $\lambda |g|^2$ overflows the dtype ($|g|$ above
    about $10^{19}/\sqrt{\lambda}$ in float32) $G$ becomes ``inf``, as in
    optax: $z = x_0$, so that coordinate's updates stay finite but move it
    back to $x_0$ (not against $g$) and keep it there. Clip or rescale such
    gradients first (e.g. :func:`~gradtx.clip_by_global_norm`).

    Args:
      learning_rate: $\eta \ge 0$: a float, a JAX array or a schedule of the
        step count.
      momentum: $\mu \in [0, 1)$, the weight of the previous iterate.
      eps: $\epsilon > 0$, added to $G^{1/3}$ and to $\eta$.

    Returns:
      {returns_tx} State: :class:`MadgradState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_madgrad(0.1, momentum=0.0, eps=1e-6)
      >>> x = jnp.array([1.0, -2.0], jnp.float32)
      >>> u, state = tx.update(jnp.array([8.0, 1.0], jnp.float32), tx.init(x), x)
      >>> [round(float(v), 3) for v in u]  # -lambda^(2/3) g^(1/3) on the first step
      [-0.431, -0.215]

    References:
      Defazio & Jelassi, *Adaptivity without Compromise: A Momentumized,
      Adaptive, Dual Averaged Gradient Method for Stochastic Optimization*,
      JMLR 2022 (arXiv:2101.11075).
    """
    return ScaleByMadgrad(learning_rate, momentum, eps)


class ScaleByAcprop(GradientTransformation):
    r"""ACProp's scaling (see :func:`scale_by_acprop`)."""

    gx_name = "scale_by_acprop"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-16, NONNEGATIVE)
    eps_root: Hyper = hyper(1e-16, NONNEGATIVE)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByBeliefState(zero_count(), gt.zeros_like(params), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        error = gt.tree_map_none(lambda g, m: g - m, updates, state.mu)  # against the *previous* mean
        nu = gt.update_moment_per_elem_norm(error, state.nu, h.b2, 2)
        stored = gt.saturate_like(gt.tree_map_none(lambda v: v + h.eps_root, nu), state.nu)
        count = safe_increment(state.count)
        # The denominator is the previous step's s, debiased; on the first step (s_0 = 0) it is 1.
        initial = state.count == 0
        s_hat = gt.bias_correction(_as_computed(state.nu, updates), h.b2, jnp.where(initial, count, state.count))
        s_hat = gt.tree_map_none(lambda v: jnp.where(initial, jnp.ones_like(v), v), s_hat)
        out = adam_direction(updates, state.nu, s_hat, h.eps, None)  # eps_root is already in s
        return out, ScaleByBeliefState(count, gt.cast_like(mu, state.mu), stored)


@fill
def scale_by_acprop(
    b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-16, eps_root: Hyper = 1e-16
) -> ScaleByAcprop:
    r"""Rescales updates by ACProp: AdaBelief's spread, asynchronous and without momentum in the step.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_{t-1}|^2 + \epsilon_{root}, \\
        u_t = \frac{g_t}{\sqrt{s_{t-1}/(1-\beta_2^{t-1})} + \epsilon} \quad (t > 1), \qquad
        u_1 = \frac{g_1}{1 + \epsilon}

    The denominator uses only the past ($s_{t-1}$, the spread of the gradients
    around their previous mean), the numerator only the present gradient: the
    asynchronous update that, with centring, lets ACProp converge where Adam
    and AdaBelief can fail. The first update is $g_1$ itself (up to
    $1/(1+\epsilon)$). As in optax, the prediction error is against
    $m_{t-1}$ (the paper's algorithm writes $m_t$).

    The division is :func:`~gradtx.scale_by_adam`'s (overflow-guarded): where
    $|g_t - m_{t-1}|^2$ overflows the dtype, $s_t$ is stored saturated (optax's
    becomes ``inf``) and the next update there is $\mathrm{sign}(g_{t+1})$,
    a unit step (optax's is 0). Elsewhere the arithmetic is exactly optax's.

    Args:
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the EMA of the squared prediction error.
      {eps}
      eps_root: $\epsilon_{root} \ge 0$ added to $s_t$ at every step (keep it
        positive when differentiating through the optimizer).

    Returns:
      {returns_tx} State: :class:`~gradtx.ScaleByBeliefState` (optax's).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_acprop(b1=0.0, b2=0.5)
      >>> u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), tx.init(jnp.zeros(2, jnp.float32)))
      >>> print(u)  # the first step is the gradient itself
      [ 1. -2.]
      >>> u, state = tx.update(jnp.array([3.0, 3.0], jnp.float32), state)
      >>> print(jnp.round(u, 4))  # g_2 / |g_1|
      [3.  1.5]

    References:
      Zhuang et al., *Momentum Centering and Asynchronous Update for Adaptive
      Gradient Methods*, NeurIPS 2021 (arXiv:2110.05454).
    """
    return ScaleByAcprop(b1, b2, eps, eps_root)
