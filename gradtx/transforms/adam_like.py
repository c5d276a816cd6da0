"""Adam-like moment scalings: AdaBelief, Yogi, Rectified Adam (RAdam), Adan.

Each keeps Adam's first moment and changes the second one (or the debiasing).
All four divide with :func:`~gradtx.transforms.adam.adam_direction`, Adam's own
overflow-guarded division, and store their second moment saturated as Adam does.
NovoGrad and the optimistic gradient are in :mod:`gradtx.transforms.adam_like_extra`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import Check, hyper, static
from gradtx.core.numerics import abs_sq, safe_increment, zero_count
from gradtx.core import tree as gt
from gradtx.transforms.adam import ScaleByAdamState, _as_computed, _check_eps, adam_direction, debiased_first_moment

__all__ = [
    "ScaleByBeliefState",
    "ScaleByAdanState",
    "ScaleByBelief",
    "ScaleByYogi",
    "ScaleByRAdam",
    "ScaleByAdan",
    "scale_by_belief",
    "scale_by_yogi",
    "scale_by_radam",
    "scale_by_adan",
]

# RAdam's rectifier sqrt((rho-4)(rho-2)...) is real only for rho >= 4 (or rho <= 2).
AT_LEAST_4 = Check(">= 4", lambda a: np.asarray(a >= 4))


class ScaleByBeliefState(NamedTuple):
    """State of :func:`scale_by_belief`.

    Attributes:
      count: updates so far (int32).
      mu: EMA of gradients.
      nu: EMA of the squared prediction error $(g - m)^2$ (plus $\\epsilon_{root}$).
    """

    count: jax.Array
    mu: Any
    nu: Any


class ScaleByBelief(GradientTransformation):
    r"""AdaBelief's scaling (see :func:`scale_by_belief`)."""

    gx_name = "scale_by_belief"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-16, NONNEGATIVE)
    eps_root: Hyper = hyper(1e-16, NONNEGATIVE)
    nesterov: bool = static(False)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByBeliefState(zero_count(), gt.zeros_like(params), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        error = gt.tree_map_none(lambda g, m: g - m, updates, mu)
        nu = gt.update_moment_per_elem_norm(error, state.nu, h.b2, 2)
        nu = gt.tree_map_none(lambda v: v + h.eps_root, nu)
        stored = gt.saturate_like(nu, state.nu)
        count = safe_increment(state.count)
        mu_hat = debiased_first_moment(mu, updates, h.b1, count, self.nesterov)
        nu_hat = gt.bias_correction(_as_computed(stored, mu_hat), h.b2, count)  # stored: no copy of the old
        out = adam_direction(mu_hat, stored, nu_hat, h.eps, None)  # eps_root is already in nu
        return out, ScaleByBeliefState(count, gt.cast_like(mu, state.mu), stored)


@fill
def scale_by_belief(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-16,
    eps_root: Hyper = 1e-16,
    *,
    nesterov: bool = False,
) -> ScaleByBelief:
    r"""Rescales updates by AdaBelief's "belief": the spread of $g$ around its EMA.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1-\beta_2) |g_t - m_t|^2 + \epsilon_{root}, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat s_t = \frac{s_t}{1-\beta_2^t},
        \quad u_t = \frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}.

    Where Adam divides by the RMS of $g$, AdaBelief divides by the RMS of the
    prediction error $g_t - m_t$: a gradient close to its running mean (high
    belief) takes a large step. The stored $s_t$ includes $\epsilon_{root}$, as
    in the paper's code and optax. With ``nesterov=True``, $\hat m_t$ is
    NAdam's $\beta_1 m_t/(1-\beta_1^{t+1}) + (1-\beta_1) g_t/(1-\beta_1^t)$.
    Without ``nesterov`` the first update is $g/(\beta_1|g| + \epsilon)$ up to
    $\epsilon_{root}$: $\mathrm{sign}(g)/\beta_1$, larger than Adam's first step.

    The division is :func:`scale_by_adam`'s (overflow-guarded): where
    $|g_t - m_t|^2$ overflows the dtype, $s_t$ is stored saturated and the
    update is $\hat m_t/|\hat m_t|$, the sign of the momentum (optax's is 0).
    AdaBelief's ratio has no bound like :func:`~gradtx.direction_bound` (a
    steady gradient makes $s$ tiny), so this unit step is a safe fallback, close
    to the first step's $\mathrm{sign}(g)/\beta_1$, not the rule's limit.

    Args:
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the EMA of the squared prediction error.
      {eps}
      eps_root: $\epsilon_{root} \ge 0$ added to $s_t$ at every step (keep it
        positive when differentiating through the optimizer).
      {nesterov}

    Returns:
      {returns_tx} State: :class:`ScaleByBeliefState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_belief()
      >>> u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), tx.init(jnp.zeros(2, jnp.float32)))
      >>> print(jnp.round(u, 4))  # sign(g) / b1 on the first step
      [ 1.1111 -1.1111]

    References:
      Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in
      Observed Gradients*, NeurIPS 2020. (The paper's defaults are
      ``eps=1e-8, eps_root=0``; optax's, used here, are both ``1e-16``.)
    """
    return ScaleByBelief(b1, b2, eps, eps_root, nesterov)


class ScaleByYogi(GradientTransformation):
    r"""Yogi's scaling (see :func:`scale_by_yogi`)."""

    gx_name = "scale_by_yogi"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-3, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    initial_accumulator_value: Hyper = hyper(1e-6, NONNEGATIVE)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        v0 = evaluate(self, zero_count()).initial_accumulator_value  # a schedule's value at step 0
        return ScaleByAdamState(zero_count(), gt.full_like(params, v0), gt.full_like(params, v0))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        one_minus_b2 = gt.ema_weights(h.b2)[1]

        def additive(g, v):
            g2 = abs_sq(g)
            return v - one_minus_b2 * jnp.sign(v - g2) * g2

        nu = gt.tree_map_none(additive, updates, state.nu)
        stored = gt.saturate_like(nu, state.nu)  # never inf: inf - inf would make it NaN
        count = safe_increment(state.count)
        mu_hat = gt.bias_correction(mu, h.b1, count)
        nu_hat = gt.bias_correction(_as_computed(stored, mu_hat), h.b2, count)  # stored: no copy of the old
        out = adam_direction(mu_hat, stored, nu_hat, h.eps, h.eps_root)
        return out, ScaleByAdamState(count, gt.cast_like(mu, state.mu), stored)


@fill
def scale_by_yogi(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-3,
    eps_root: Hyper = 0.0,
    initial_accumulator_value: Hyper = 1e-6,
) -> ScaleByYogi:
    r"""Rescales updates by Yogi's additively updated second moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - |g_t|^2)\,|g_t|^2, \\
        u_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t) + \epsilon_{root}} + \epsilon}.

    Adam's $v_t - v_{t-1} = (1-\beta_2)(|g_t|^2 - v_{t-1})$ can shrink $v$
    (and so grow the step) fast; Yogi's change has size $(1-\beta_2)|g_t|^2$
    whatever $v_{t-1}$ is, only its sign depends on it. $v$ stays
    non-negative. As in optax, both $m_0$ and $v_0$ start at
    ``initial_accumulator_value`` (the paper starts $m_0 = 0$; the default
    $10^{-6}$ makes no practical difference) and both are debiased.

    The division is :func:`scale_by_adam`'s (overflow-guarded): where $|g_t|^2$
    overflows the dtype, $v_t$ is stored saturated (optax's becomes ``inf``, and
    NaN at a second overflow, $\infty - \infty$) and the update is the sign of
    the momentum, as Adam's. Yogi's additive change cannot bring a saturated
    $v$ back down (nor, in exact arithmetic, a $v$ of that size in any
    realistic number of steps), so that coordinate keeps taking such unit
    steps where optax's would stay frozen.

    Args:
      {b1}
      {b2}
      eps: $\epsilon \ge 0$ added to the denominator outside the square root
        (Yogi's default $10^{-3}$ is much larger than Adam's).
      {eps_root}
      initial_accumulator_value: $m_0 = v_0 \ge 0$.

    Returns:
      {returns_tx} State: :class:`~gradtx.ScaleByAdamState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_yogi(eps=1e-8, initial_accumulator_value=0.0)
      >>> u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), tx.init(jnp.zeros(2, jnp.float32)))
      >>> print(jnp.round(u, 4))  # from zero state the first step is Adam's, sign(g)
      [ 1. -1.]

    References:
      Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """
    return ScaleByYogi(b1, b2, eps, eps_root, initial_accumulator_value)


class ScaleByRAdam(GradientTransformation):
    r"""Rectified Adam's scaling (see :func:`scale_by_radam`)."""

    gx_name = "scale_by_radam"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    threshold: Hyper = hyper(5.0, AT_LEAST_4)
    nesterov: bool = static(False)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByAdamState(zero_count(), gt.zeros_like(params), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        nu = gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2)
        stored = gt.saturate_like(nu, state.nu)
        count = safe_increment(state.count)
        b2, one_minus_b2 = gt.ema_weights(h.b2)
        rho_inf = 2.0 / one_minus_b2 - 1.0
        b2t = b2**count
        rho = rho_inf - 2 * count * b2t / (1 - b2t)
        rectify = rho >= h.threshold
        r2 = (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho)
        # Evaluated only where it is used: no NaN in the unused branch (nor in its gradient).
        r = jnp.sqrt(jnp.where(rectify, r2, 1.0))
        mu_hat = debiased_first_moment(mu, updates, h.b1, count, self.nesterov)
        nu_hat = gt.bias_correction(_as_computed(stored, mu_hat), h.b2, count)  # stored: no copy of the old
        adaptive = adam_direction(mu_hat, stored, nu_hat, h.eps, h.eps_root)
        out = gt.tree_map_none(
            lambda a, m: jnp.where(rectify, gt.cast(r, m.dtype) * a, m), adaptive, mu_hat
        )
        return out, ScaleByAdamState(count, gt.cast_like(mu, state.mu), stored)


@fill
def scale_by_radam(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    threshold: Hyper = 5.0,
    *,
    nesterov: bool = False,
) -> ScaleByRAdam:
    r"""Rectified Adam: momentum SGD until the variance of Adam's scaling is tractable.

    .. math::
        \rho_\infty = \frac{2}{1-\beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t}, \quad
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}, \\
        u_t = \begin{cases}
          r_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon) & \rho_t \ge \tau \\
          \hat m_t & \text{otherwise}
        \end{cases}

    with Adam's $\hat m_t, \hat v_t$ (NAdam's $\hat m_t$ with ``nesterov``).
    $\rho_t$ (the length of the approximated simple moving average) grows from
    $\rho_1 = 1$ to $\rho_\infty$; for $\beta_2 = 0.999$ and $\tau = 5$ the
    adaptive step starts at $t = 6$. If $\rho_\infty < \tau$ (e.g.
    $\beta_2 \le 0.6$) it never starts.

    The adaptive branch divides as :func:`scale_by_adam` does (overflow-guarded,
    $v$ stored saturated): where $|g|^2$ overflowed it is $r_t$ times the sign
    of the momentum. The momentum phase has no division: it is $\hat m_t$ as is.

    Unlike optax, $r_t$ is computed only where it is used, so the unused branch
    (where $\rho_t \in (2, 4)$ makes the square root's argument negative) puts
    no NaN into gradients taken through the optimizer; and ``threshold`` must
    be at least 4, below which optax's updates are NaN on some steps.

    Args:
      {b1}
      {b2}
      {eps}
      {eps_root}
      threshold: $\tau \ge 4$: the adaptive step is taken once $\rho_t \ge \tau$.
      {nesterov}

    Returns:
      {returns_tx} State: :class:`~gradtx.ScaleByAdamState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_radam()
      >>> u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), tx.init(jnp.zeros(2, jnp.float32)))
      >>> print(u)  # rho_1 = 1 < 5: the debiased momentum, here g itself
      [ 1. -2.]

    References:
      Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020.
    """
    return ScaleByRAdam(b1, b2, eps, eps_root, threshold, nesterov)


class ScaleByAdanState(NamedTuple):
    """State of :func:`scale_by_adan` (optax's field names).

    Attributes:
      m: EMA of gradients.
      v: EMA of gradient differences $g_t - g_{t-1}$.
      n: EMA of $|g_t + (1-\\beta_2)(g_t - g_{t-1})|^2$.
      g: the previous gradient.
      t: updates so far (int32).
    """

    m: Any
    v: Any
    n: Any
    g: Any
    t: jax.Array


class ScaleByAdan(GradientTransformation):
    r"""Adan's scaling (see :func:`scale_by_adan`)."""

    gx_name = "scale_by_adan"
    b1: Hyper = hyper(0.98, UNIT_INTERVAL)
    b2: Hyper = hyper(0.92, UNIT_INTERVAL)
    b3: Hyper = hyper(0.99, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        z = gt.zeros_like
        return ScaleByAdanState(z(params), z(params), z(params), z(params), zero_count())

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.t)
        first = state.t == 0
        diff = gt.tree_map_none(
            lambda g, p: jnp.where(first, jnp.zeros_like(g), g - p), updates, state.g
        )
        m = gt.update_moment(updates, state.m, h.b1, 1)
        v = gt.update_moment(diff, state.v, h.b2, 1)
        one_minus_b2 = gt.ema_weights(h.b2)[1]
        look_ahead = gt.tree_map_none(lambda g, d: g + one_minus_b2 * d, updates, diff)
        n = gt.update_moment_per_elem_norm(look_ahead, state.n, h.b3, 2)
        n_stored = gt.saturate_like(n, state.n)
        t = safe_increment(state.t)
        m_hat = gt.bias_correction(m, h.b1, t)
        v_hat = gt.bias_correction(v, h.b2, t)
        n_hat = gt.bias_correction(_as_computed(n_stored, m_hat), h.b3, t)  # stored: no copy of the old
        direction = gt.tree_map_none(lambda a, b: a + one_minus_b2 * b, m_hat, v_hat)
        out = adam_direction(direction, n_stored, n_hat, h.eps, h.eps_root)
        cast = gt.cast_like
        return out, ScaleByAdanState(cast(m, state.m), cast(v, state.v), n_stored, cast(updates, state.g), t)


@fill
def scale_by_adan(
    b1: Hyper = 0.98,
    b2: Hyper = 0.92,
    b3: Hyper = 0.99,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
) -> ScaleByAdan:
    r"""Rescales updates by Adan's Nesterov momentum estimates.

    With $\Delta_t = g_t - g_{t-1}$ ($\Delta_1 = 0$):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) \Delta_t, \\
        n_t = \beta_3 n_{t-1} + (1-\beta_3) |g_t + (1-\beta_2)\Delta_t|^2, \quad
        u_t = \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon},

    where hats divide by $1-\beta_i^t$. The $\beta_i$ here weight the *old*
    value (optax's convention; the paper writes $1-\beta_i$): ``b1=0.98`` is
    the paper's $\beta_1 = 0.02$. The first update is
    $g/(|g| + \epsilon)$ elementwise.

    The division is :func:`scale_by_adam`'s with $\hat m_t + (1-\beta_2)\hat v_t$
    for $\hat m_t$ and $\hat n_t$ for $\hat v_t$: where the squared look-ahead
    gradient overflows the dtype, $n_t$ is stored saturated and the update is
    the unit step along that numerator (optax's is 0), the same as Adan's first step.

    Args:
      b1: decay $\beta_1 \in [0, 1)$ of the EMA of gradients.
      b2: decay $\beta_2 \in [0, 1)$ of the EMA of gradient differences.
      b3: decay $\beta_3 \in [0, 1)$ of the EMA of the squared look-ahead gradient.
      {eps}
      {eps_root}

    Returns:
      {returns_tx} State: :class:`ScaleByAdanState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_adan()
      >>> u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), tx.init(jnp.zeros(2, jnp.float32)))
      >>> print(u)
      [ 1. -1.]

    References:
      Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, 2022 (arXiv:2208.06677, Algorithm 1).
    """
    return ScaleByAdan(b1, b2, b3, eps, eps_root)
