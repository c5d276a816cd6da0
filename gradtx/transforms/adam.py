"""The Adam family: Adam (and NAdam via ``nesterov``), AdaMax, AMSGrad."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core import tree as gt

__all__ = [
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "ScaleByAdam",
    "ScaleByAdamax",
    "ScaleByAmsgrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_amsgrad",
    "direction_bound",
    "debiased_first_moment",
    "adam_direction",
]


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam` and :func:`scale_by_adamax`.

    Attributes:
      count: updates so far (int32).
      mu: first moment (EMA of gradients).
      nu: second moment (EMA of squared gradients; for AdaMax the infinity norm).
    """

    count: jax.Array
    mu: Any
    nu: Any


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_amsgrad`: Adam's plus the running max ``nu_max``."""

    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def _check_eps(module) -> None:
    """eps and eps_root may each be 0, not both: 0/0 is NaN for a zero gradient."""
    try:
        both_zero = float(module.eps) == 0.0 and float(module.eps_root) == 0.0
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced or scheduled: not checkable here
    if both_zero:
        raise ValueError(
            f"gx.{module.gx_name}: `eps` and `eps_root` cannot both be 0 (the update would be "
            "0/0 = NaN wherever a gradient is 0); set eps > 0, or eps_root > 0 for the "
            "seed's sqrt(v + delta) form."
        )


def direction_bound(b1: Any, b2: Any, count: Any, *, nesterov: bool = False,
                    bias_correction_mu: bool = True, bias_correction_nu: bool = True) -> jax.Array:
    r"""The largest $|\hat m_t| / \sqrt{\hat v_t}$ can be after ``count`` steps from zero state.

    By Cauchy-Schwarz on the two EMAs (constant $\beta$'s, zero-initialised moments):

    .. math::
        \frac{|\hat m_t|}{\sqrt{\hat v_t}} \le B_t =
        \frac{1-\beta_1}{\sqrt{1-\beta_2}}
        \sqrt{\sum_{k=0}^{t-1} (\beta_1^2/\beta_2)^k}\;
        \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}

    ($B_1 = 1$; $\times(1+\beta_1)$ for NAdam; the debiasing factors drop out
    when the corresponding bias correction is off). $\epsilon$ and
    $\epsilon_{root}$ only make the update smaller. Since a constant gradient
    attains ratio 1, $B_t \ge 1$: the sign-of-momentum step that
    :func:`scale_by_adam` and :func:`scale_by_amsgrad` take where $v$ overflows
    the dtype stays within it.

    Args:
      b1, b2: the EMA decay rates. count: the step $t \ge 1$.
      nesterov, bias_correction_mu, bias_correction_nu: as in the transforms.

    Example:
      >>> import gradtx as gx
      >>> round(float(gx.direction_bound(0.9, 0.999, 1)), 12)
      1.0
      >>> round(float(gx.direction_bound(0.9, 0.999, 10**6)), 2)  # the limit
      7.27
    """
    b1, b2 = jnp.asarray(b1), jnp.asarray(b2)
    t = jnp.asarray(count).astype(jnp.result_type(b1, b2, float))
    r = b1**2 / jnp.maximum(b2, 1e-30)
    s = jnp.where(jnp.abs(1 - r) < 1e-6, t, (1 - r**t) / jnp.where(jnp.abs(1 - r) < 1e-6, 1.0, 1 - r))
    bound = (1 - b1) / jnp.sqrt(1 - b2) * jnp.sqrt(s)
    if bias_correction_mu:
        bound = bound / (1 - b1**t)
    if bias_correction_nu:
        bound = bound * jnp.sqrt(1 - b2**t)
    return bound * (1 + b1) if nesterov else bound


def _as_computed(stored: Any, like: Any) -> Any:
    """A moment as stored (e.g. bfloat16), promoted back to the arithmetic's dtype (``like``'s).

    The update then reads the stored moment instead of re-deriving it from the
    old one, which with a low-precision moment made XLA keep a temporary copy.
    A float32 moment is unchanged (both casts are no-ops).
    """
    return gt.tree_map_none(lambda m, g: m.astype(jnp.promote_types(m.dtype, jnp.result_type(g))), stored, like)


def debiased_first_moment(mu: Any, updates: Any, b1: Any, count: jax.Array, nesterov: bool) -> Any:
    r"""$\hat m_t = m_t/(1-\beta_1^t)$, or with ``nesterov`` NAdam's look-ahead
    $\beta_1 m_t/(1-\beta_1^{t+1}) + (1-\beta_1) g_t/(1-\beta_1^t)$.

    ``count`` is $t$ (1 after the first update). $\beta_1$ and $1-\beta_1$
    come from :func:`~gradtx.core.tree.ema_weights`, as in the EMA itself.
    """
    if not nesterov:
        return gt.bias_correction(mu, b1, count)
    b, one_minus = gt.ema_weights(b1)
    return gt.tree_map_none(
        lambda m, g: b * m + one_minus * g,
        gt.bias_correction(mu, b, safe_increment(count)),
        gt.bias_correction(updates, b, count),
    )


def adam_direction(mu_hat: Any, nu: Any, nu_hat: Any, eps: Any, eps_root: Any) -> Any:
    r"""$\hat m / (\sqrt{\hat v + \epsilon_{root}} + \epsilon)$, shared by the family; overflow-safe.

    The one implementation of Adam's division: :func:`scale_by_adam`,
    :func:`scale_by_amsgrad` and the Adam-like primitives of
    :mod:`gradtx.transforms.adam_like` (AdaBelief, Yogi, RAdam, Adan) call it.
    ``nu`` is the stored moment (saturated by :func:`~gradtx.core.tree.saturate_like`)
    and ``nu_hat`` its debiased value in the arithmetic's dtype;
    ``eps_root=None`` leaves $\epsilon_{root}$ out (for a moment that already
    includes it). Where $\hat v$ (and so $v \le \hat v$) is below the
    dtype's largest value, this is exactly optax's arithmetic. Where $|g|^2$
    overflowed ($|g| \gtrsim 1.8\cdot10^{19}$ in float32, $256$ in float16,
    so the stored $v$ saturated), the denominator is $|\hat m|$: the update is
    the sign of the momentum, exactly $\mathrm{sign}(g)$ on a first step, and
    never above :func:`direction_bound` (which is at least 1). It reads only
    what the update's loop reads anyway ($\hat m$ and the new $v$), so it
    costs no pass over memory.
    """
    eps = gt.scalar_for(eps)
    eps_root = None if eps_root is None else gt.scalar_for(eps_root)

    def one(m, v, v_hat):
        v, v_hat = jnp.real(v), jnp.real(v_hat)
        # v_hat >= v, so "v_hat below the largest value" also means v did not
        # saturate (and is false for inf and NaN): one compare per element,
        # plus one on v when it is stored in a narrower dtype than v_hat's.
        ok = v_hat < jnp.finfo(v_hat.dtype).max
        if v.dtype != v_hat.dtype:
            ok = ok & (v < jnp.finfo(v.dtype).max)
        root = jnp.sqrt(v_hat if eps_root is None else v_hat + eps_root(v_hat))
        denom = jax.lax.select(ok, root, gt.cast(jnp.abs(m), root.dtype))
        return m / (denom + eps(denom))

    return gt.tree_map_none(one, mu_hat, nu, nu_hat)


class ScaleByAdam(GradientTransformation):
    r"""Adam's scaling (see :func:`scale_by_adam`)."""

    gx_name = "scale_by_adam"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    mu_dtype: Any = static(None)
    nu_dtype: Any = static(None)
    nesterov: bool = static(False)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByAdamState(
            zero_count(), gt.zeros_like(params, self.mu_dtype), gt.zeros_like(params, self.nu_dtype)
        )

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = _as_computed(gt.cast_like(gt.update_moment(updates, state.mu, h.b1, 1), state.mu), updates)
        nu = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2), state.nu)
        count = safe_increment(state.count)
        mu_hat = debiased_first_moment(mu, updates, h.b1, count, self.nesterov)
        nu_hat = gt.bias_correction(_as_computed(nu, mu_hat), h.b2, count)
        out = adam_direction(mu_hat, nu, nu_hat, h.eps, h.eps_root)
        return out, ScaleByAdamState(count, gt.cast_like(mu, state.mu), nu)


@fill
def scale_by_adam(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> ScaleByAdam:
    r"""Rescales updates by Adam's bias-corrected moment estimates.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \\
        \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t},
        \quad u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}.

    With ``nesterov=True`` (NAdam), $\hat m_t$ is replaced by
    $\beta_1 m_t/(1-\beta_1^{t+1}) + (1-\beta_1) g_t/(1-\beta_1^t)$.
    The first update is $g/(|g|+\epsilon)$ elementwise.

    Numerical range: every update satisfies $|u_t| \le B_t$ of
    :func:`direction_bound` ($B_1 = 1$; $\le 7.3$ for the defaults; times
    $1+\beta_1$ with ``nesterov``), for gradients of any finite magnitude. Where
    $|g|^2$ overflows the dtype ($|g|$ above about $1.8\cdot10^{19}$ in float32),
    the stored $v$ saturates at the dtype's largest finite value instead of
    becoming ``inf`` (which would freeze that coordinate forever), and the
    update there is $\hat m/|\hat m|$, the sign of the momentum (on a first step
    exactly $\mathrm{sign}(g)$, as Adam's rule gives). This costs no extra pass
    over memory; elsewhere the arithmetic is exactly optax's. Below about
    $10^{-19}$ $|g|^2$ underflows, which only matters if $\epsilon$ is smaller
    than $|g|$.

    Args:
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      {nesterov}
      {nu_dtype}

    Returns:
      {returns_tx} State: :class:`ScaleByAdamState`.

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """
    return ScaleByAdam(b1, b2, eps, eps_root, mu_dtype, nu_dtype, nesterov)


class ScaleByAdamax(GradientTransformation):
    r"""AdaMax's scaling (see :func:`scale_by_adamax`)."""

    gx_name = "scale_by_adamax"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, POSITIVE)

    def init(self, params):
        return ScaleByAdamState(zero_count(), gt.zeros_like(params), gt.zeros_like(params))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        count = safe_increment(state.count)
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        nu = gt.update_infinity_moment(updates, state.nu, h.b2, h.eps)
        mu_hat = gt.bias_correction(mu, h.b1, count)
        out = gt.tree_map_none(lambda m, v: m / v, mu_hat, nu)
        return out, ScaleByAdamState(count, gt.cast_like(mu, state.mu), gt.cast_like(nu, state.nu))


def scale_by_adamax(b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8) -> ScaleByAdamax:
    r"""AdaMax: Adam with the infinity norm in place of the second moment.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        u_t^{\infty} = \max(|g_t| + \epsilon,\; \beta_2 u_{t-1}^{\infty}), \quad
        u_t = \frac{m_t}{(1-\beta_1^t)\, u^{\infty}_t}

    References:
      Kingma & Ba, *Adam*, ICLR 2015, Sec. 7.1.
    """
    return ScaleByAdamax(b1, b2, eps)


class ScaleByAmsgrad(GradientTransformation):
    r"""AMSGrad's scaling (see :func:`scale_by_amsgrad`)."""

    gx_name = "scale_by_amsgrad"
    b1: Hyper = hyper(0.9, UNIT_INTERVAL)
    b2: Hyper = hyper(0.999, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    eps_root: Hyper = hyper(0.0, NONNEGATIVE)
    mu_dtype: Any = static(None)
    bias_correction_mu: bool = static(True)
    bias_correction_nu: bool = static(True)

    def __post_init__(self):
        super().__post_init__()
        _check_eps(self)

    def init(self, params):
        return ScaleByAmsgradState(
            zero_count(), gt.zeros_like(params, self.mu_dtype), gt.zeros_like(params), gt.zeros_like(params)
        )

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        mu = _as_computed(gt.cast_like(gt.update_moment(updates, state.mu, h.b1, 1), state.mu), updates)
        nu = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2), state.nu)
        count = safe_increment(state.count)
        mu_hat = gt.bias_correction(mu, h.b1, count) if self.bias_correction_mu else mu
        nu_c = _as_computed(nu, mu_hat)
        nu_eff = gt.bias_correction(nu_c, h.b2, count) if self.bias_correction_nu else nu_c
        nu_max = gt.saturate_like(gt.tree_map_none(jnp.maximum, state.nu_max, nu_eff), state.nu_max)
        out = adam_direction(mu_hat, nu_max, _as_computed(nu_max, mu_hat), h.eps, h.eps_root)
        return out, ScaleByAmsgradState(count, gt.cast_like(mu, state.mu), nu, nu_max)


@fill
def scale_by_amsgrad(
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> ScaleByAmsgrad:
    r"""AMSGrad: Adam with a non-decreasing second-moment estimate.

    .. math::
        \hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, \hat v_t), \qquad
        u_t = \hat m_t / (\sqrt{\hat v^{\max}_t + \epsilon_{root}} + \epsilon)

    Overflow-safe like :func:`scale_by_adam`: $|u_t| \le B_t$ of :func:`direction_bound`.

    Args:
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      bias_correction_mu: debias $m$.
      bias_correction_nu: debias $v$ before the running max.

    References:
      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    return ScaleByAmsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu)
