"""Piecewise schedules: constant, interpolated, and the one-cycle policies."""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, POSITIVE, UNIT_CLOSED, Hyper, Schedule, concrete_value
from gradtx.core.module import hyper, static
from gradtx.schedules._precision import own_precision, precision_doc

__all__ = [
    "PiecewiseConstantSchedule",
    "PiecewiseInterpolateSchedule",
    "OneCycleSchedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "linear_onecycle_schedule",
    "cosine_onecycle_schedule",
]


def _split(where: str, boundaries_and_scales: Mapping[int, float] | None) -> tuple[tuple, tuple]:
    if not boundaries_and_scales:
        return (), ()
    items = sorted(boundaries_and_scales.items())
    bounds, scales = tuple(b for b, _ in items), tuple(s for _, s in items)
    known = [a for a in map(concrete_value, scales) if a is not None]  # traced scales: unchecked
    if any(np.any(a < 0) for a in known):
        raise ValueError(f"gx.{where}: `boundaries_and_scales` must have scales >= 0, got {list(scales)}.")
    return bounds, scales


class PiecewiseConstantSchedule(Schedule):
    gx_name = "piecewise_constant_schedule"
    init_value: Hyper = hyper(check=ANY_REAL)
    boundaries: tuple = hyper((), ANY_REAL)
    scales: tuple = hyper((), NONNEGATIVE)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        v = self.init_value
        for b, s in zip(self.boundaries, self.scales):
            on = jnp.maximum(0.0, jnp.sign(b - count))
            v = v * on + (1 - on) * s * v
        return v


@precision_doc
def piecewise_constant_schedule(
    init_value: Hyper, boundaries_and_scales: Mapping[int, float] | None = None
) -> PiecewiseConstantSchedule:
    """Multiplies the value by ``scale`` from each ``boundary`` step on (step decay).

    Args:
      init_value: the value before the first boundary.
      boundaries_and_scales: ``{step: scale}``; from ``step`` on the value is
        multiplied by ``scale`` (>= 0). Steps and scales become leaves.

    {precision}
    """
    bounds, scales = _split("piecewise_constant_schedule", boundaries_and_scales)
    return PiecewiseConstantSchedule(init_value, bounds, scales)


def _linear(start, end, pct):
    return (end - start) * pct + start


def _cosine(start, end, pct):
    return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)


def interpolate_value(count, kind: str, init_value, boundaries, scales):
    """Interpolates between ``init_value * cumprod(scales)`` at the boundaries."""
    fn = _linear if kind == "linear" else _cosine
    bounds = jnp.stack([jnp.asarray(0)] + [jnp.asarray(b) for b in boundaries])
    values = jnp.cumprod(jnp.stack([jnp.asarray(init_value)] + [jnp.asarray(s) for s in scales]))
    sizes = jnp.maximum(bounds[1:] - bounds[:-1], 1)
    inside = (bounds[:-1] <= count) & (count < bounds[1:])
    pct = (count - bounds[:-1]) / sizes
    return inside.dot(fn(values[:-1], values[1:], pct)) + (bounds[-1] <= count) * values[-1]


class PiecewiseInterpolateSchedule(Schedule):
    gx_name = "piecewise_interpolate_schedule"
    interpolate_type: str = static()
    init_value: Hyper = hyper(check=ANY_REAL)
    boundaries: tuple = hyper((), ANY_REAL)
    scales: tuple = hyper((), NONNEGATIVE)

    def __post_init__(self):
        if self.interpolate_type not in ("linear", "cosine"):
            raise ValueError(
                "gx.piecewise_interpolate_schedule: `interpolate_type` must be 'linear' or "
                f"'cosine', got {self.interpolate_type!r}."
            )
        super().__post_init__()

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        return interpolate_value(count, self.interpolate_type, self.init_value, self.boundaries, self.scales)


@precision_doc
def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: Hyper, boundaries_and_scales: Mapping[int, float] | None = None
) -> PiecewiseInterpolateSchedule:
    """Interpolates (``'linear'`` or ``'cosine'``) between values set at boundaries.

    The value at each boundary is ``init_value`` times the product of the
    scales up to it; after the last boundary it stays constant.

    {precision}
    """
    bounds, scales = _split("piecewise_interpolate_schedule", boundaries_and_scales)
    return PiecewiseInterpolateSchedule(interpolate_type, init_value, bounds, scales)


def _floor_steps(x):
    # int(pct * T) as optax computes it in Python. Python numbers are floored in
    # Python (0.29 * 100 = 28.999999999999996 -> 28, as optax), and so are
    # float64 arrays (same IEEE product); only lower precisions get the 1e-4
    # that absorbs their rounding of pct, since boundaries are whole steps.
    if isinstance(x, (int, float)):
        return float(math.floor(x))
    x = jnp.asarray(x)
    return jnp.floor(x + (0.0 if x.dtype == jnp.float64 else 1e-4))


class OneCycleSchedule(Schedule):
    """The one-cycle policy (see :func:`linear_onecycle_schedule`)."""

    gx_name = "linear_onecycle_schedule"
    interpolate_type: str = static()
    transition_steps: Hyper = hyper(check=POSITIVE)
    peak_value: Hyper = hyper(check=ANY_REAL)
    pct_start: Hyper = hyper(0.3, UNIT_CLOSED)
    pct_final: Hyper = hyper(0.85, UNIT_CLOSED)
    div_factor: Hyper = hyper(25.0, POSITIVE)
    final_div_factor: Hyper = hyper(1e4, POSITIVE)

    @own_precision
    def __call__(self, count: jax.Array) -> jax.Array:
        t = self.transition_steps
        up = _floor_steps(self.pct_start * t)
        if self.interpolate_type == "linear":
            bounds = (up, _floor_steps(self.pct_final * t), t)
            scales = (self.div_factor, 1.0 / self.div_factor, 1.0 / self.final_div_factor)
        else:
            bounds = (up, t)
            scales = (self.div_factor, 1.0 / (self.div_factor * self.final_div_factor))
        return interpolate_value(count, self.interpolate_type, self.peak_value / self.div_factor, bounds, scales)


@precision_doc
def linear_onecycle_schedule(
    transition_steps: Hyper,
    peak_value: Hyper,
    pct_start: Hyper = 0.3,
    pct_final: Hyper = 0.85,
    div_factor: Hyper = 25.0,
    final_div_factor: Hyper = 1e4,
) -> OneCycleSchedule:
    r"""Linear one-cycle policy, in three linear pieces ($d$ = ``div_factor``,
    $f$ = ``final_div_factor``, $T$ = ``transition_steps``):

    $\eta_{peak}/d \to \eta_{peak}$ over steps $[0, p_s T)$, back to
    $\eta_{peak}/d$ over $[p_s T, p_f T)$, then down to $\eta_{peak}/(d f)$ at $T$;
    constant afterwards ($p_s$ = ``pct_start``, $p_f$ = ``pct_final``).

    {precision}

    References:
      Smith & Topin, *Super-Convergence*, 2017.
    """
    return OneCycleSchedule("linear", transition_steps, peak_value, pct_start, pct_final, div_factor, final_div_factor)


@precision_doc
def cosine_onecycle_schedule(
    transition_steps: Hyper,
    peak_value: Hyper,
    pct_start: Hyper = 0.3,
    div_factor: Hyper = 25.0,
    final_div_factor: Hyper = 1e4,
) -> OneCycleSchedule:
    r"""Cosine one-cycle: cosine up from $\eta_{peak}/d$ to $\eta_{peak}$ over
    ``pct_start`` of the steps, then cosine down to $\eta_{peak}/(d f)$.

    {precision}

    References:
      Smith & Topin, *Super-Convergence*, 2017.
    """
    return OneCycleSchedule("cosine", transition_steps, peak_value, pct_start, 0.85, div_factor, final_div_factor)
