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


def _adam_direction(mu_hat: Any, nu_hat: Any, eps: Any, eps_root: Any) -> Any:
    r"""$\hat m / (\sqrt{\hat v + \epsilon_{root}} + \epsilon)$, shared by the family."""
    return gt.tree_map_none(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)


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
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        nu = gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2)
        count = safe_increment(state.count)
        if self.nesterov:
            mu_hat = gt.tree_map_none(
                lambda m, g: h.b1 * m + (1 - h.b1) * g,
                gt.bias_correction(mu, h.b1, safe_increment(count)),
                gt.bias_correction(updates, h.b1, count),
            )
        else:
            mu_hat = gt.bias_correction(mu, h.b1, count)
        nu_hat = gt.bias_correction(nu, h.b2, count)
        out = _adam_direction(mu_hat, nu_hat, h.eps, h.eps_root)
        return out, ScaleByAdamState(count, gt.cast_like(mu, state.mu), gt.cast_like(nu, state.nu))


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
        mu = gt.update_moment(updates, state.mu, h.b1, 1)
        nu = gt.update_moment_per_elem_norm(updates, state.nu, h.b2, 2)
        count = safe_increment(state.count)
        mu_hat = gt.bias_correction(mu, h.b1, count) if self.bias_correction_mu else mu
        nu_eff = gt.bias_correction(nu, h.b2, count) if self.bias_correction_nu else nu
        nu_max = gt.tree_map_none(jnp.maximum, state.nu_max, nu_eff)
        out = _adam_direction(mu_hat, nu_max, h.eps, h.eps_root)
        return out, ScaleByAmsgradState(
            count, gt.cast_like(mu, state.mu), gt.cast_like(nu, state.nu), gt.cast_like(nu_max, state.nu_max)
        )


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
