"""Per-coordinate second-moment scaling: RMSProp, centred RMSProp, AdaGrad, AdaDelta."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import abs_sq, zero_count
from gradtx.core import tree as gt

__all__ = [
    "ScaleByRmsState",
    "ScaleByRssState",
    "ScaleByAdaDeltaState",
    "ScaleByRms",
    "ScaleByRss",
    "ScaleByAdaDelta",
    "scale_by_rms",
    "scale_by_stddev",
    "scale_by_rss",
    "scale_by_adadelta",
]


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms` and :func:`scale_by_stddev`.

    Attributes:
      nu: EMA of squared gradients.
      mu: EMA of gradients (centred variant only, else None).
      count: updates so far, with ``bias_correction`` or a schedule (else None).
    """

    nu: Any
    mu: Any = None
    count: jax.Array | None = None


class ScaleByRssState(NamedTuple):
    """State of :func:`scale_by_rss`: the running sum of squared gradients."""

    sum_of_squares: Any
    count: jax.Array | None = None


class ScaleByAdaDeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`: EMAs of squared gradients and updates."""

    e_g: Any
    e_x: Any
    count: jax.Array | None = None


class ScaleByRms(GradientTransformation):
    r"""RMSProp scaling, optionally centred (see :func:`scale_by_rms`)."""

    gx_name = "scale_by_rms"
    decay: Hyper = hyper(0.9, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, POSITIVE)
    initial_scale: Hyper = hyper(0.0, NONNEGATIVE)
    eps_in_sqrt: bool = static(True)
    bias_correction: bool = static(False)
    centered: bool = static(False)

    def init(self, params):
        count = zero_count() if self.bias_correction else schedule_count(self)
        mu = gt.zeros_like(params) if self.centered else None
        return ScaleByRmsState(gt.full_like(params, self.initial_scale), mu, count)

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        nu = gt.update_moment_per_elem_norm(updates, state.nu, h.decay, 2)
        mu = gt.update_moment(updates, state.mu, h.decay, 1) if self.centered else None
        count = next_count(state.count)
        nu_hat, mu_hat = nu, mu
        if self.bias_correction:
            nu_hat = gt.bias_correction(nu, h.decay, count)
            mu_hat = gt.bias_correction(mu, h.decay, count) if self.centered else None
        if self.centered:
            var = gt.tree_map_none(lambda n, m: n - abs_sq(m), nu_hat, mu_hat)
        else:
            var = nu_hat
        if self.eps_in_sqrt:
            scaling = gt.tree_map_none(lambda v: jax.lax.rsqrt(v + h.eps), var)
        else:
            scaling = gt.tree_map_none(lambda v: 1 / (jnp.sqrt(v) + h.eps), var)
        out = gt.tree_map_none(lambda g, s: s * g, updates, scaling)
        # Where g^2 overflowed, nu is inf: the update is its limit sign(g) / sqrt(1 - decay)
        # (times sqrt(1 - decay^t) when debiased), not optax's 0 (or NaN, centred).
        b, one_minus = gt.ema_weights(h.decay)
        bound = jax.lax.rsqrt(one_minus)
        if self.bias_correction:
            bound = bound * jnp.sqrt(1 - b**count)
        out = _overflow_guard(out, updates, nu, bound)
        mu = gt.cast_like(mu, state.mu) if self.centered else None
        return out, ScaleByRmsState(gt.saturate_like(nu, state.nu), mu, count)


@fill
def scale_by_rms(
    decay: Hyper = 0.9,
    eps: Hyper = 1e-8,
    initial_scale: Hyper = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> ScaleByRms:
    r"""Divides updates by the root mean square of past gradients (RMSProp).

    .. math::
        \nu_t = \beta \nu_{t-1} + (1-\beta) g_t^2, \qquad
        u_t = g_t / \sqrt{\hat\nu_t + \epsilon}

    ($\hat\nu_t = \nu_t/(1-\beta^t)$ with ``bias_correction``, else $\nu_t$;
    with ``eps_in_sqrt=False`` the denominator is $\sqrt{\hat\nu_t}+\epsilon$.)

    Args:
      decay: $\beta \in [0, 1)$.
      eps: $\epsilon > 0$.
      initial_scale: initial value of $\nu$ (TensorFlow uses 1.0, PyTorch 0.0).
      eps_in_sqrt: put $\epsilon$ inside the square root.
      bias_correction: debias $\nu$ (keeps a step count in the state).

    References:
      Hinton, *Lecture 6.5 — RMSProp*, Coursera, 2012.
    """
    return ScaleByRms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=False)


def scale_by_stddev(
    decay: Hyper = 0.9,
    eps: Hyper = 1e-8,
    initial_scale: Hyper = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> ScaleByRms:
    r"""Centred RMSProp: divides by the running standard deviation of gradients.

    .. math::
        \mu_t = \beta\mu_{t-1} + (1-\beta) g_t, \quad
        \nu_t = \beta\nu_{t-1} + (1-\beta) g_t^2, \quad
        u_t = g_t / \sqrt{\nu_t - \mu_t^2 + \epsilon}

    Arguments as in :func:`scale_by_rms`.

    References:
      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013, eq. 38–45.
    """
    return ScaleByRms(decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=True)


class ScaleByRss(GradientTransformation):
    r"""AdaGrad scaling (see :func:`scale_by_rss`)."""

    gx_name = "scale_by_rss"
    initial_accumulator_value: Hyper = hyper(0.1, NONNEGATIVE)
    eps: Hyper = hyper(1e-7, POSITIVE)

    def init(self, params):
        return ScaleByRssState(gt.full_like(params, self.initial_accumulator_value), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        sos = gt.tree_map_none(lambda g, t: abs_sq(g) + t, updates, state.sum_of_squares)
        inv = gt.tree_map_none(lambda t: jnp.where(t > 0, jax.lax.rsqrt(t + h.eps), 0.0), sos)
        out = gt.tree_map_none(lambda g, s: s * g, updates, inv)
        out = _overflow_guard(out, updates, sos, 1.0)  # where g^2 overflowed: its limit, sign(g)
        return out, ScaleByRssState(gt.saturate_like(sos, state.sum_of_squares), next_count(state.count))


def _overflow_guard(out: Any, updates: Any, moment: Any, bound: Any) -> Any:
    r"""``out``, or $\mathrm{sign}(g) \cdot$ ``bound`` where the (unsaturated) ``moment`` is not below
    the dtype's largest value: where $|g|^2$ overflowed (above about $1.8\cdot10^{19}$ in float32).

    There the moment is dominated by $(1-\beta) g^2$ (AdaGrad: $g^2$), so the
    update's exact value is its limit $\mathrm{sign}(g)/\sqrt{1-\beta}$ (times
    $\sqrt{1-\beta^t}$ when debiased; AdaGrad: $\mathrm{sign}(g)$), which is
    also the bound every update of these rules satisfies. It reads only $g$
    and the new moment, as the update's loop does anyway. Elsewhere ``out`` is
    optax's arithmetic, bit for bit. NaN stays NaN.
    """
    def one(u, g, m):
        m = jnp.real(m)
        ok = m < jnp.finfo(m.dtype).max
        return jax.lax.select(ok, u, (jnp.sign(g) * bound).astype(u.dtype))

    return gt.tree_map_none(one, out, updates, moment)


def scale_by_rss(initial_accumulator_value: Hyper = 0.1, eps: Hyper = 1e-7) -> ScaleByRss:
    r"""Divides by the root of the sum of squared gradients (AdaGrad).

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad u_t = g_t / \sqrt{s_t + \epsilon}
        \;\;(0 \text{ where } s_t = 0)

    Args:
      initial_accumulator_value: $s_0 \ge 0$.
      eps: $\epsilon > 0$ (the seed's $\delta$).

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods*, JMLR 2011.
    """
    return ScaleByRss(initial_accumulator_value, eps)


class ScaleByAdaDelta(GradientTransformation):
    r"""AdaDelta scaling (see :func:`scale_by_adadelta`)."""

    gx_name = "scale_by_adadelta"
    rho: Hyper = hyper(0.9, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-6, POSITIVE)

    def init(self, params):
        return ScaleByAdaDeltaState(gt.zeros_like(params), gt.zeros_like(params), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        e_g = gt.update_moment(updates, state.e_g, h.rho, 2)
        updates = gt.tree_map_none(
            lambda g, eg, ex: (jnp.sqrt(ex + h.eps) / jnp.sqrt(eg + h.eps)) * g,
            updates,
            e_g,
            state.e_x,
        )
        e_x = gt.update_moment(updates, state.e_x, h.rho, 2)
        return updates, ScaleByAdaDeltaState(
            gt.cast_like(e_g, state.e_g), gt.cast_like(e_x, state.e_x), next_count(state.count)
        )


def scale_by_adadelta(rho: Hyper = 0.9, eps: Hyper = 1e-6) -> ScaleByAdaDelta:
    r"""AdaDelta: units-correct scaling by RMS of past updates over RMS of gradients.

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
        u_t = \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t,
        \quad E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) u_t^2

    Args:
      rho: $\rho \in [0, 1)$.
      eps: $\epsilon > 0$.

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    return ScaleByAdaDelta(rho, eps)
