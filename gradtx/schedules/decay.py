"""Decay schedules: exponential, inverse-time, cosine."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, POSITIVE, Hyper, Schedule
from gradtx.core.module import hyper, static
from gradtx.schedules._precision import own_precision, precision_doc
from gradtx.schedules.polynomial import cosine_value

__all__ = [
    "ExponentialDecay",
    "InverseTimeDecay",
    "CosineDecaySchedule",
    "exponential_decay",
    "inverse_time_decay",
    "cosine_decay_schedule",
    "exponential_value",
]


def exponential_value(count, init_value, transition_steps, decay_rate, transition_begin, staircase, end_value):
    r"""$v_0 r^{(n-n_0)/T}$ (floored exponent if staircase), clipped at ``end_value``."""
    constant = (transition_steps <= 0) | (decay_rate == 0)
    steps = jnp.where(transition_steps > 0, transition_steps, 1)
    n = count - jnp.maximum(transition_begin, 0)
    p = n / steps
    if staircase:
        p = jnp.floor(p)
    value = jnp.where(n <= 0, init_value, init_value * jnp.power(decay_rate, p))
    if end_value is not None:
        value = jnp.where(
            decay_rate < 1.0, jnp.maximum(value, end_value), jnp.minimum(value, end_value)
        )
    return jnp.where(constant, init_value, value)


class ExponentialDecay(Schedule):
    gx_name = "exponential_decay"
    init_value: Hyper = hyper(check=ANY_REAL)
    transition_steps: Hyper = hyper(check=ANY_REAL)
    decay_rate: Hyper = hyper(check=NONNEGATIVE)
    transition_begin: Hyper = hyper(0, ANY_REAL)
    staircase: bool = static(False)
    end_value: Hyper | None = hyper(None, ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return exponential_value(
            count, self.init_value, self.transition_steps, self.decay_rate,
            self.transition_begin, self.staircase, self.end_value,
        )


@precision_doc
def exponential_decay(
    init_value: Hyper,
    transition_steps: Hyper,
    decay_rate: Hyper,
    transition_begin: Hyper = 0,
    staircase: bool = False,
    end_value: Hyper | None = None,
) -> ExponentialDecay:
    r"""Exponential decay: $\eta_n = \eta_0\, r^{(n - n_0)/T}$ for $n > n_0$.

    With ``staircase`` the exponent is floored (a step every $T$ steps). With
    ``end_value`` the value is bounded below (above, if $r > 1$) by it.
    $T \le 0$ or $r = 0$ give the constant $\eta_0$, as in optax.

    {precision}
    """
    return ExponentialDecay(init_value, transition_steps, decay_rate, transition_begin, staircase, end_value)


class InverseTimeDecay(Schedule):
    gx_name = "inverse_time_decay"
    init_value: Hyper = hyper(check=ANY_REAL)
    decay_rate: Hyper = hyper(check=NONNEGATIVE)
    transition_steps: Hyper = hyper(1, POSITIVE)
    staircase: bool = static(False)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        p = count / self.transition_steps
        if self.staircase:
            p = jnp.floor(p)
        return self.init_value / (1 + self.decay_rate * p)


@precision_doc
def inverse_time_decay(
    init_value: Hyper, decay_rate: Hyper, transition_steps: Hyper = 1, staircase: bool = False
) -> InverseTimeDecay:
    r"""Inverse-time decay: $\eta_n = \eta_0 / (1 + d\, n / T)$.

    With ``staircase`` the ratio $n/T$ is floored. ($T = 1$ gives the seed's
    $\eta_0/(1+d\,n)$; the same rule as Keras' ``InverseTimeDecay``.)

    {precision}
    """
    return InverseTimeDecay(init_value, decay_rate, transition_steps, staircase)


class CosineDecaySchedule(Schedule):
    gx_name = "cosine_decay_schedule"
    init_value: Hyper = hyper(check=ANY_REAL)
    decay_steps: Hyper = hyper(check=POSITIVE)
    alpha: Hyper = hyper(0.0, ANY_REAL)
    exponent: Hyper = hyper(1.0, ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return cosine_value(count, self.init_value, self.decay_steps, self.alpha, self.exponent)


@precision_doc
def cosine_decay_schedule(
    init_value: Hyper, decay_steps: Hyper, alpha: Hyper = 0.0, exponent: Hyper = 1.0
) -> CosineDecaySchedule:
    r"""Cosine decay from $\eta_0$ to $\alpha\eta_0$ over ``decay_steps``.

    .. math::
        \eta_n = \eta_0\left[(1-\alpha)\left(\tfrac12\left(1+\cos\tfrac{\pi\min(n,T)}{T}\right)\right)^{p}
        + \alpha\right]

    {precision}

    References:
      Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.
    """
    return CosineDecaySchedule(init_value, decay_steps, alpha, exponent)
