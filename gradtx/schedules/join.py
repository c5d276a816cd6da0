"""Joined schedules: ``join_schedules``, warmup + decay, and SGDR restarts."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp

from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, Hyper, Schedule, as_schedule
from gradtx.core.module import child, hyper, static
from gradtx.schedules._precision import own_precision, precision_doc, schedule_dtype, schedule_value
from gradtx.schedules.decay import exponential_value
from gradtx.schedules.polynomial import cosine_value, polynomial_value

__all__ = [
    "JoinSchedules",
    "WarmupCosineDecaySchedule",
    "WarmupExponentialDecaySchedule",
    "join_schedules",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "sgdr_schedule",
]


class JoinSchedules(Schedule):
    gx_name = "join_schedules"
    schedules: tuple = child()
    boundaries: tuple = hyper((), ANY_REAL)

    def __post_init__(self):
        if len(self.schedules) != len(self.boundaries) + 1:
            raise ValueError(
                f"gx.join_schedules: need one more schedule than boundaries, got "
                f"{len(self.schedules)} schedules and {len(self.boundaries)} boundaries."
            )
        super().__post_init__()

    def __call__(self, count: jax.Array) -> jax.Array:
        # The count is passed on as is: each schedule converts it to its own
        # dtype (and a plain function still gets an integer count). The value is
        # in the dtype of all the numbers, the schedules' included.
        out = self.schedules[0](count)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            out = jnp.where(count < boundary, out, schedule(count - boundary))
        return schedule_value(out, schedule_dtype(self))


@precision_doc
def join_schedules(schedules: Sequence[Any], boundaries: Sequence[Hyper]) -> JoinSchedules:
    """Runs ``schedules[i]`` from ``boundaries[i-1]`` on, each restarting its count at 0.

    Each schedule is evaluated in its own precision on ``count - boundary``; the
    value returned is in the dtype of all the numbers (the schedules' and the
    boundaries'), as for a single schedule:

    {precision}
    """
    return JoinSchedules(tuple(as_schedule(s) for s in schedules), tuple(boundaries))


class WarmupCosineDecaySchedule(Schedule):
    gx_name = "warmup_cosine_decay_schedule"
    init_value: Hyper = hyper(check=ANY_REAL)
    peak_value: Hyper = hyper(check=ANY_REAL)
    warmup_steps: Hyper = hyper(check=NONNEGATIVE)
    decay_steps: Hyper = hyper(check=ANY_REAL)
    end_value: Hyper = hyper(0.0, ANY_REAL)
    exponent: Hyper = hyper(1.0, ANY_REAL)

    def __post_init__(self):
        super().__post_init__()
        try:
            ok = bool(self.decay_steps > self.warmup_steps)
        except (jax.errors.ConcretizationTypeError, TypeError):
            return
        if not ok:
            raise ValueError(
                "gx.warmup_cosine_decay_schedule: `decay_steps` (the total length, warmup "
                f"included) must exceed `warmup_steps`, got {self.decay_steps} <= {self.warmup_steps}."
            )

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        warm = polynomial_value(count, self.init_value, self.peak_value, 1, self.warmup_steps, 0)
        alpha = jnp.where(self.peak_value == 0, 0.0, self.end_value / jnp.where(self.peak_value == 0, 1, self.peak_value))
        decay = cosine_value(
            count - self.warmup_steps, self.peak_value, self.decay_steps - self.warmup_steps, alpha, self.exponent
        )
        return jnp.where(count < self.warmup_steps, warm, decay)


@precision_doc
def warmup_cosine_decay_schedule(
    init_value: Hyper,
    peak_value: Hyper,
    warmup_steps: Hyper,
    decay_steps: Hyper,
    end_value: Hyper = 0.0,
    exponent: Hyper = 1.0,
) -> WarmupCosineDecaySchedule:
    r"""Linear warmup to ``peak_value``, then cosine decay to ``end_value``.

    Linear from $\eta_{init}$ to $\eta_{peak}$ over ``warmup_steps`` $W$, then
    cosine decay over the remaining ``decay_steps - W`` steps (``decay_steps``
    is the total length, as in optax) to $\eta_{end}$. All six numbers are
    leaves: ``jax.vmap`` over ``peak_value`` is a learning-rate sweep.

    {precision}

    References:
      Loshchilov & Hutter, *SGDR*, ICLR 2017; Goyal et al., *Accurate, Large
      Minibatch SGD*, 2017 (warmup).
    """
    return WarmupCosineDecaySchedule(init_value, peak_value, warmup_steps, decay_steps, end_value, exponent)


class WarmupExponentialDecaySchedule(Schedule):
    gx_name = "warmup_exponential_decay_schedule"
    init_value: Hyper = hyper(check=ANY_REAL)
    peak_value: Hyper = hyper(check=ANY_REAL)
    warmup_steps: Hyper = hyper(check=NONNEGATIVE)
    transition_steps: Hyper = hyper(check=ANY_REAL)
    decay_rate: Hyper = hyper(check=NONNEGATIVE)
    transition_begin: Hyper = hyper(0, ANY_REAL)
    staircase: bool = static(False)
    end_value: Hyper | None = hyper(None, ANY_REAL)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        warm = polynomial_value(count, self.init_value, self.peak_value, 1, self.warmup_steps, 0)
        decay = exponential_value(
            count - self.warmup_steps, self.peak_value, self.transition_steps, self.decay_rate,
            self.transition_begin, self.staircase, self.end_value,
        )
        return jnp.where(count < self.warmup_steps, warm, decay)


@precision_doc
def warmup_exponential_decay_schedule(
    init_value: Hyper,
    peak_value: Hyper,
    warmup_steps: Hyper,
    transition_steps: Hyper,
    decay_rate: Hyper,
    transition_begin: Hyper = 0,
    staircase: bool = False,
    end_value: Hyper | None = None,
) -> WarmupExponentialDecaySchedule:
    r"""Linear warmup to ``peak_value``, then :func:`exponential_decay` from it.

    The decay's count starts at 0 when the warmup ends.

    {precision}
    """
    return WarmupExponentialDecaySchedule(
        init_value, peak_value, warmup_steps, transition_steps, decay_rate, transition_begin, staircase, end_value
    )


def sgdr_schedule(cosine_kwargs: Iterable[Mapping[str, Hyper]]) -> JoinSchedules:
    r"""SGDR: warm restarts, one :func:`warmup_cosine_decay_schedule` per cycle.

    Args:
      cosine_kwargs: one dict of ``warmup_cosine_decay_schedule`` arguments
        per cycle; cycle $i$ lasts its ``decay_steps``.

    Returns:
      A :func:`join_schedules` of the cycles (see it for the precision).

    References:
      Loshchilov & Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*, ICLR 2017.
    """
    schedules, boundaries, step = [], [], 0
    for kwargs in cosine_kwargs:
        schedules.append(warmup_cosine_decay_schedule(**kwargs))
        step = step + kwargs["decay_steps"]
        boundaries.append(step)
    return JoinSchedules(tuple(schedules), tuple(boundaries[:-1]))
