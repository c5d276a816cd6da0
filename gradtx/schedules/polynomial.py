"""Constant and polynomial (incl. linear) schedules, and the shared curve math."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradtx.core.hyperparams import ANY_REAL, Hyper, Schedule
from gradtx.core.module import hyper
from gradtx.schedules._precision import own_precision, precision_doc

__all__ = [
    "ConstantSchedule",
    "PolynomialSchedule",
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "polynomial_value",
    "cosine_value",
]


def polynomial_value(count, init_value, end_value, power, transition_steps, transition_begin):
    r"""$(v_0 - v_1)(1 - \min(\max(n - n_0, 0), T)/T)^p + v_1$; $v_0$ when $T \le 0$."""
    steps_ok = transition_steps > 0
    steps = jnp.where(steps_ok, transition_steps, 1)
    begin = jnp.maximum(transition_begin, 0)
    n = jnp.clip(count - begin, 0, steps)
    # Exactly 0 at n == T: with a traced T, XLA may fuse 1 - n / T into -2e-17
    # there, and a negative base gives NaN for a fractional power.
    frac = jnp.where(n < steps, 1 - n / steps, 0.0)
    value = (init_value - end_value) * (frac**power) + end_value
    return jnp.where(steps_ok, value, init_value)


def cosine_value(count, init_value, decay_steps, alpha, exponent):
    r"""$v_0\left[(1-\alpha)\left(\tfrac{1}{2}(1+\cos(\pi \min(n, T)/T))\right)^{p} + \alpha\right]$."""
    steps = jnp.asarray(decay_steps, dtype=jnp.result_type(float))
    n = jnp.minimum(count, steps)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * n / steps))
    return init_value * ((1 - alpha) * cosine**exponent + alpha)


class ConstantSchedule(Schedule):
    gx_name = "constant_schedule"
    value: Hyper = hyper(check=ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return self.value


@precision_doc
def constant_schedule(value: Hyper) -> ConstantSchedule:
    """The same value at every step.

    {precision}
    """
    return ConstantSchedule(value)


class PolynomialSchedule(Schedule):
    gx_name = "polynomial_schedule"
    init_value: Hyper = hyper(check=ANY_REAL)
    end_value: Hyper = hyper(check=ANY_REAL)
    power: Hyper = hyper(check=ANY_REAL)
    transition_steps: Hyper = hyper(check=ANY_REAL)
    transition_begin: Hyper = hyper(0, ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return polynomial_value(
            count, self.init_value, self.end_value, self.power, self.transition_steps, self.transition_begin
        )


@precision_doc
def polynomial_schedule(
    init_value: Hyper,
    end_value: Hyper,
    power: Hyper,
    transition_steps: Hyper,
    transition_begin: Hyper = 0,
) -> PolynomialSchedule:
    r"""Polynomial decay from ``init_value`` to ``end_value`` over ``transition_steps``.

    .. math::
        \eta_n = (\eta_0 - \eta_T)\left(1 - \frac{\min(\max(n-n_0,0),T)}{T}\right)^p + \eta_T

    Constant ``init_value`` before ``transition_begin`` ($n_0$) and ``end_value``
    after $n_0 + T$. A non-positive $T$ gives the constant ``init_value`` (as
    in optax); a negative $n_0$ counts as 0.

    {precision}
    """
    return PolynomialSchedule(init_value, end_value, power, transition_steps, transition_begin)


@precision_doc
def linear_schedule(
    init_value: Hyper, end_value: Hyper, transition_steps: Hyper, transition_begin: Hyper = 0
) -> PolynomialSchedule:
    r"""Linear decay for $\tau$ steps, then constant (the seed's rule).

    .. math::
        \alpha_i = (1-\beta)\alpha_0 + \beta\alpha_\tau,\quad \beta = i/\tau
        \;\;(i < \tau), \qquad \alpha_i = \alpha_\tau \;\;(i \ge \tau)

    Rule of thumb from the seed: $\tau \approx 100 \times$ epochs (in steps) and
    $\alpha_\tau = \alpha_0/100$. A polynomial schedule with power 1.

    {precision}

    References:
      Goodfellow, Bengio & Courville, *Deep Learning*, 2016, Sec. 8.3.1.
    """
    return PolynomialSchedule(init_value, end_value, 1, transition_steps, transition_begin)
