"""Schedules evaluate in the precision of their own values (issue 14, point 3).

Optimizer states count in int32; a schedule converts the count to the dtype of
its own floating values (gradtx/schedules/_precision.py), so under x64

(a) a sweep (``jax.vmap`` over any one numeric argument, float64 values) equals
    the lone runs built from the Python values, to 1e-12 relative;
(b) the values equal an independent float64 NumPy implementation of the
    documented formula (optax's), to 1e-12 relative;
(c) float32 values give float32, float64 values (and Python floats) float64,
    whatever the count's dtype.

Every schedule class in the package is in ``CASES`` (checked by
``test_every_schedule_is_covered``). Steps 0..10,000, all in one vectorised
call per schedule; one compile per schedule for the sweeps, lone runs eager.

Tolerances: (a) is rtol 1e-12 with atol 0: both sides are XLA in float64, and
exact zeros (a cosine's end) must be exact on both. (b) is rtol 1e-12 plus an
absolute floor of 1e-14 times the curve's largest magnitude: near a zero of a
formula the relative error is not the schedule's but the formula's (the
cosine's $1 + \\cos(\\pi n/T)$ near $n = T$ amplifies a one-ulp difference
between XLA's and NumPy's ``cos`` by $1/(1 + \\cos)$); the floor is far below
the float32 error (~1e-7 relative) the issue was about.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx
from gradtx.core.hyperparams import FunctionSchedule, Schedule
from gradtx.schedules.piecewise import PiecewiseConstantSchedule, PiecewiseInterpolateSchedule

N = 10_001
COUNTS = jnp.arange(N, dtype=jnp.int32)
STEPS = np.arange(N, dtype=np.float64)
RTOL = 1e-12
FLOOR = 1e-14  # times the curve's largest |value|, for (b) only (see the module docstring)


# ---------------------------------------------------------------------------
# Independent float64 references, from the documented formulas.
# ---------------------------------------------------------------------------


def _poly_ref(n, init_value, end_value, power, transition_steps, transition_begin=0.0):
    k = np.clip(n - max(transition_begin, 0.0), 0.0, transition_steps)
    return (init_value - end_value) * (1.0 - k / transition_steps) ** power + end_value


def _exp_ref(n, init_value, transition_steps, decay_rate, transition_begin=0.0, staircase=False, end_value=None):
    k = n - max(transition_begin, 0.0)
    p = k / transition_steps
    if staircase:
        p = np.floor(p)
    out = np.where(k <= 0, init_value, init_value * decay_rate**p)
    if end_value is not None:
        out = np.maximum(out, end_value) if decay_rate < 1 else np.minimum(out, end_value)
    return out


def _cosine_ref(n, init_value, decay_steps, alpha=0.0, exponent=1.0):
    k = np.minimum(n, decay_steps)
    cosine = 0.5 * (1.0 + np.cos(np.pi * k / decay_steps))
    return init_value * ((1.0 - alpha) * cosine**exponent + alpha)


def _warmup_cosine_ref(n, init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0):
    warm = init_value + (peak_value - init_value) * n / max(warmup_steps, 1.0)
    decay = _cosine_ref(n - warmup_steps, peak_value, decay_steps - warmup_steps, end_value / peak_value, exponent)
    return np.where(n < warmup_steps, warm, decay)


def _warmup_exp_ref(n, init_value, peak_value, warmup_steps, transition_steps, decay_rate,
                    transition_begin=0.0, staircase=False, end_value=None):
    warm = init_value + (peak_value - init_value) * n / max(warmup_steps, 1.0)
    decay = _exp_ref(n - warmup_steps, peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value)
    return np.where(n < warmup_steps, warm, decay)


def _piecewise_constant_ref(n, init_value, boundaries, scales):
    out = np.full_like(n, init_value)
    for b, s in zip(boundaries, scales):
        out = np.where(n >= b, out * s, out)
    return out


def _interpolate_ref(n, kind, init_value, boundaries, scales):
    """Interpolates between init_value * prod(scales[:i]) at boundaries[i-1] (0 first)."""
    bounds = [0.0, *boundaries]
    values = [init_value]
    for s in scales:
        values.append(values[-1] * s)
    out = np.full_like(n, values[-1])  # from the last boundary on
    for i in range(len(bounds) - 1):
        lo, hi, a, b = bounds[i], bounds[i + 1], values[i], values[i + 1]
        pct = (n - lo) / max(hi - lo, 1.0)
        mid = a + (b - a) * pct if kind == "linear" else b + (a - b) / 2 * (np.cos(np.pi * pct) + 1)
        out = np.where((lo <= n) & (n < hi), mid, out)
    return out


def _onecycle_ref(n, kind, transition_steps, peak_value, pct_start, pct_final, div_factor, final_div_factor):
    """optax: piecewise_interpolate at int(pct * T), from peak / div up to peak and down."""
    t, up = transition_steps, float(int(pct_start * transition_steps))
    if kind == "linear":
        bounds = [up, float(int(pct_final * t)), t]
        scales = [div_factor, 1.0 / div_factor, 1.0 / final_div_factor]
    else:
        bounds, scales = [up, t], [div_factor, 1.0 / (div_factor * final_div_factor)]
    return _interpolate_ref(n, kind, peak_value / div_factor, bounds, scales)


# ---------------------------------------------------------------------------
# The cases: every schedule, its lone-run values, three float64 values per argument.
# ---------------------------------------------------------------------------


def _is_number(x) -> bool:
    return isinstance(x, (int, float))


def _piecewise_constant(init_value, b1, s1, b2, s2):
    if _is_number(b1) and _is_number(b2):
        return gx.piecewise_constant_schedule(init_value, {b1: s1, b2: s2})
    return PiecewiseConstantSchedule(init_value, (b1, b2), (s1, s2))  # an array cannot be a dict key


def _piecewise_interpolate(kind):
    def make(init_value, b1, s1, b2, s2, b3, s3):
        if all(map(_is_number, (b1, b2, b3))):
            return gx.piecewise_interpolate_schedule(kind, init_value, {b1: s1, b2: s2, b3: s3})
        return PiecewiseInterpolateSchedule(kind, init_value, (b1, b2, b3), (s1, s2, s3))

    return make


def _join(lin_end, boundary, cos_init, cos_steps, cos_alpha):
    return gx.join_schedules(
        [gx.linear_schedule(0.0, lin_end, 400), gx.cosine_decay_schedule(cos_init, cos_steps, cos_alpha)], [boundary]
    )


def _join_ref(n, lin_end, boundary, cos_init, cos_steps, cos_alpha):
    return np.where(n < boundary, _poly_ref(n, 0.0, lin_end, 1.0, 400.0),
                    _cosine_ref(n - boundary, cos_init, cos_steps, cos_alpha))


_CYCLE_KEYS = ("init_value", "peak_value", "warmup_steps", "decay_steps", "end_value", "exponent")


def _sgdr(**kw):
    return gx.sgdr_schedule([{k: kw[f"{k}{i}"] for k in _CYCLE_KEYS} for i in (0, 1)])


def _sgdr_ref(n, **kw):
    c0, c1 = ({k: kw[f"{k}{i}"] for k in _CYCLE_KEYS} for i in (0, 1))
    d0 = c0["decay_steps"]
    return np.where(n < d0, _warmup_cosine_ref(n, **c0), _warmup_cosine_ref(n - d0, **c1))


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable[..., Schedule]  # keyword arguments -> schedule
    reference: Callable[..., np.ndarray]  # (steps, **the same arguments) -> float64 values
    base: dict[str, float]  # the lone run's Python values (step counts as ints, as users write them)
    sweeps: dict[str, tuple[float, float, float]]  # argument -> three values swept

    def build(self, **changes: Any) -> Schedule:
        return self.make(**{**self.base, **changes})

    def ref(self, **changes: Any) -> np.ndarray:
        return np.asarray(self.reference(STEPS, **{**self.base, **changes}), np.float64)


CASES = [
    Case("constant_schedule", gx.constant_schedule, lambda n, value: np.full_like(n, value),
         dict(value=0.1), dict(value=(1e-3, 0.3, 7.0))),
    Case("polynomial_schedule", gx.polynomial_schedule, _poly_ref,
         dict(init_value=1.0, end_value=1e-3, power=2.0, transition_steps=7000, transition_begin=500),
         dict(init_value=(0.5, 2.0, 3.0), end_value=(1e-4, 0.01, 0.1), power=(0.5, 1.5, 3.0),
              transition_steps=(999.0, 5000.0, 9000.5), transition_begin=(0.0, 17.0, 2500.0))),
    Case("linear_schedule", gx.linear_schedule, lambda n, **kw: _poly_ref(n, power=1.0, **kw),
         dict(init_value=0.1, end_value=1e-3, transition_steps=3000, transition_begin=100),
         dict(init_value=(0.01, 0.5, 1.0), end_value=(1e-5, 1e-4, 0.2), transition_steps=(100.0, 2999.0, 9999.0),
              transition_begin=(0.0, 33.0, 7000.0))),
    Case("exponential_decay", gx.exponential_decay, _exp_ref,
         dict(init_value=1.0, transition_steps=1000, decay_rate=0.5, transition_begin=200, end_value=1e-3),
         dict(init_value=(0.1, 0.3, 2.0), transition_steps=(77.0, 500.0, 2500.5), decay_rate=(0.1, 0.9, 0.999),
              transition_begin=(0.0, 13.0, 5000.0), end_value=(1e-6, 1e-2, 0.2))),
    Case("exponential_decay(staircase)", functools.partial(gx.exponential_decay, staircase=True),
         functools.partial(_exp_ref, staircase=True),
         dict(init_value=1.0, transition_steps=300, decay_rate=0.8, transition_begin=10),
         dict(init_value=(0.1, 0.3, 2.0), transition_steps=(7.0, 333.0, 1000.0), decay_rate=(0.5, 0.95, 0.99),
              transition_begin=(0.0, 100.0, 6000.0))),
    Case("inverse_time_decay", gx.inverse_time_decay,
         lambda n, init_value, decay_rate, transition_steps: init_value / (1.0 + decay_rate * n / transition_steps),
         dict(init_value=0.1, decay_rate=0.5, transition_steps=100),
         dict(init_value=(1e-3, 0.3, 1.0), decay_rate=(0.01, 1.0, 3.0), transition_steps=(1.0, 7.0, 250.5))),
    Case("cosine_decay_schedule", gx.cosine_decay_schedule, _cosine_ref,
         dict(init_value=1.0, decay_steps=8000, alpha=0.01, exponent=1.0),
         dict(init_value=(1e-3, 0.1, 3.0), decay_steps=(100.0, 5000.0, 9999.0), alpha=(0.0, 0.1, 0.5),
              exponent=(0.5, 2.0, 3.0))),
    Case("warmup_cosine_decay_schedule", gx.warmup_cosine_decay_schedule, _warmup_cosine_ref,
         dict(init_value=1e-5, peak_value=1e-3, warmup_steps=500, decay_steps=9000, end_value=1e-6,
              exponent=1.0),
         dict(init_value=(0.0, 1e-4, 5e-4), peak_value=(3e-4, 0.01, 1.0), warmup_steps=(0.0, 17.0, 2000.0),
              decay_steps=(1000.0, 4321.0, 10000.0), end_value=(0.0, 1e-5, 1e-4), exponent=(0.5, 1.5, 2.0))),
    Case("warmup_exponential_decay_schedule", gx.warmup_exponential_decay_schedule, _warmup_exp_ref,
         dict(init_value=0.0, peak_value=1.0, warmup_steps=200, transition_steps=500, decay_rate=0.7,
              transition_begin=50, end_value=1e-4),
         dict(init_value=(1e-4, 0.01, 0.1), peak_value=(0.1, 0.5, 2.0), warmup_steps=(0.0, 33.0, 1000.0),
              transition_steps=(100.0, 777.0, 3000.0), decay_rate=(0.3, 0.9, 0.99),
              transition_begin=(0.0, 10.0, 4000.0), end_value=(1e-6, 1e-3, 0.05))),
    Case("piecewise_constant_schedule", _piecewise_constant,
         lambda n, init_value, b1, s1, b2, s2: _piecewise_constant_ref(n, init_value, (b1, b2), (s1, s2)),
         dict(init_value=1.0, b1=3000, s1=0.1, b2=7000, s2=0.5),
         dict(init_value=(0.01, 0.3, 2.0), b1=(0.0, 17.0, 5000.0), s1=(0.0, 0.25, 3.0), b2=(6000.0, 8888.0, 10000.0),
              s2=(0.1, 0.7, 2.0))),
    *[
        Case(f"piecewise_interpolate_schedule({kind})", _piecewise_interpolate(kind),
             lambda n, init_value, b1, s1, b2, s2, b3, s3, kind=kind:
             _interpolate_ref(n, kind, init_value, (b1, b2, b3), (s1, s2, s3)),
             dict(init_value=1.0, b1=1000, s1=0.1, b2=3000, s2=5.0, b3=8000, s3=0.01),
             dict(init_value=(0.01, 0.5, 3.0), b1=(1.0, 500.0, 2999.0), s1=(0.5, 2.0, 10.0),
                  b2=(1001.0, 4000.0, 7999.0), s2=(0.2, 1.0, 20.0), b3=(3001.0, 9000.0, 10000.0),
                  s3=(0.001, 0.3, 4.0)))
        for kind in ("linear", "cosine")
    ],
    Case("linear_onecycle_schedule", gx.linear_onecycle_schedule,
         lambda n, **kw: _onecycle_ref(n, "linear", **kw),
         dict(transition_steps=9000, peak_value=0.1, pct_start=0.3, pct_final=0.85, div_factor=25.0,
              final_div_factor=1e4),
         dict(transition_steps=(100.0, 3333.0, 10000.0), peak_value=(1e-3, 1.0, 3.0), pct_start=(0.1, 0.29, 0.45),
              pct_final=(0.5, 0.57, 0.99), div_factor=(2.0, 10.0, 100.0), final_div_factor=(3.0, 100.0, 1e5))),
    Case("cosine_onecycle_schedule", gx.cosine_onecycle_schedule,
         lambda n, **kw: _onecycle_ref(n, "cosine", pct_final=0.85, **kw),
         dict(transition_steps=9000, peak_value=0.1, pct_start=0.3, div_factor=25.0, final_div_factor=1e4),
         dict(transition_steps=(100.0, 7777.0, 10000.0), peak_value=(1e-3, 1.0, 3.0), pct_start=(0.1, 0.29, 0.57),
              div_factor=(2.0, 10.0, 100.0), final_div_factor=(3.0, 100.0, 1e5))),
    Case("join_schedules", _join, _join_ref,
         dict(lin_end=1.0, boundary=400, cos_init=1.0, cos_steps=9000, cos_alpha=0.01),
         dict(lin_end=(0.1, 0.5, 2.0), boundary=(0.0, 250.0, 5000.0), cos_init=(0.1, 0.5, 2.0),
              cos_steps=(100.0, 5000.0, 9999.0), cos_alpha=(0.0, 0.1, 0.5))),
    Case("sgdr_schedule", _sgdr, _sgdr_ref,
         dict(init_value0=0.0, peak_value0=1.0, warmup_steps0=100, decay_steps0=3000, end_value0=1e-3,
              exponent0=1.0, init_value1=1e-3, peak_value1=0.5, warmup_steps1=50, decay_steps1=7000,
              end_value1=1e-4, exponent1=2.0),
         dict(init_value0=(1e-4, 0.01, 0.1), peak_value0=(0.1, 0.5, 2.0), warmup_steps0=(0.0, 17.0, 1000.0),
              decay_steps0=(1500.0, 4000.0, 7500.0), end_value0=(0.0, 1e-4, 1e-2), exponent0=(0.5, 1.5, 3.0),
              init_value1=(0.0, 1e-2, 0.1), peak_value1=(0.1, 1.0, 3.0), warmup_steps1=(0.0, 9.0, 500.0),
              decay_steps1=(1000.0, 6000.0, 9000.0), end_value1=(0.0, 1e-3, 1e-2), exponent1=(0.5, 1.0, 3.0))),
    Case("GeometricSchedule", gx.GeometricSchedule,
         lambda n, init_value, end_value, transition_steps:
         init_value * (end_value / init_value) ** (n / transition_steps),
         dict(init_value=1e-7, end_value=10.0, transition_steps=10000),
         # (At most 1e50 at step 10,000: no overflow.)
         dict(init_value=(1e-8, 1e-5, 1e-3), end_value=(0.1, 1.0, 100.0), transition_steps=(2000.0, 4999.0, 9999.0))),
    Case("PowerOfCount", lambda power: gx.PowerOfCount(power), lambda n, power: n.astype(np.float64) ** power,
         dict(power=0.25), dict(power=(0.1, 0.5, 1.5))),
]
CASE_IDS = [c.name for c in CASES]


# One compiled function per case: every argument swept in its own vmap, each
# building the schedule from the batched (traced) value.
@functools.partial(jax.jit, static_argnums=0)
def _sweep(index: int, batches: dict[str, jax.Array]) -> dict[str, jax.Array]:
    case = CASES[index]
    return {
        name: jax.vmap(lambda v, name=name: jax.vmap(case.build(**{name: v}))(COUNTS))(values)
        for name, values in batches.items()
    }


def _lone(case: Case, **changes: float) -> np.ndarray:
    """The schedule built from Python values, evaluated eagerly on the int32 counts."""
    out = jax.vmap(case.build(**changes))(COUNTS)
    assert out.dtype == jnp.float64
    return np.asarray(out)


def _check_reference(got: np.ndarray, want: np.ndarray, what: str) -> None:
    floor = FLOOR * np.max(np.abs(want))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=floor, err_msg=what)


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_sweep_equals_lone_runs_and_reference(index):
    case = CASES[index]
    assert set(case.sweeps) <= set(case.base)
    batches = {name: jnp.asarray(values, jnp.float64) for name, values in case.sweeps.items()}
    swept = _sweep(index, batches)
    lone = _lone(case)
    _check_reference(lone, case.ref(), f"{case.name}{case.base}")  # (b)
    for name, values in case.sweeps.items():
        rows = np.asarray(swept[name])
        assert rows.shape == (3, N) and rows.dtype == np.float64
        for row, value in zip(rows, values):
            what = f"{case.name}, {name}={value}"
            lone = _lone(case, **{name: value})
            np.testing.assert_allclose(row, lone, rtol=RTOL, atol=0, err_msg=what)  # (a)
            _check_reference(lone, case.ref(**{name: value}), what)  # (b)


def test_warmup_cosine_peak_sweep_step_17():
    """The issue's example: a sweep over a warmup-cosine peak equals the lone runs at step 17 (int32 count)."""
    peaks = (1e-4, 3e-4, 1e-3)
    make = lambda p: gx.warmup_cosine_decay_schedule(0.0, p, 100, 1000)  # noqa: E731
    count = jnp.int32(17)
    swept = jax.jit(jax.vmap(lambda p: make(p)(count)))(jnp.asarray(peaks))
    for got, p in zip(np.asarray(swept), peaks):
        lone = make(p)(count)
        assert lone.dtype == jnp.float64
        np.testing.assert_allclose(got, lone, rtol=RTOL, atol=0)
        np.testing.assert_allclose(got, p * 17 / 100, rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------
# (c) dtypes.
# ---------------------------------------------------------------------------


_eval = jax.jit(lambda schedule, counts: jax.vmap(schedule)(counts))


@pytest.mark.parametrize("index", range(len(CASES)), ids=CASE_IDS)
def test_output_dtype_is_the_values_dtype(index):
    case = CASES[index]
    for dtype in (jnp.float32, jnp.float64):
        # Every listed argument as an array of `dtype`; defaults not listed stay
        # Python floats (weak: they do not widen a float32 schedule).
        # (Under jit, so that the leaves are traced; eager op-by-op dispatch is slower.)
        schedule = case.build(**{k: jnp.asarray(v, dtype) for k, v in case.base.items()})
        for counts in (COUNTS[:50], COUNTS[:50].astype(jnp.int64)):
            out = _eval(schedule, counts)
            assert out.dtype == dtype, (case.name, dtype, counts.dtype, out.dtype)
    # Python values: the default float (float64 under x64), on either count dtype.
    assert case.build()(COUNTS[3]).dtype == jnp.float64
    assert case.build()(COUNTS[3].astype(jnp.int64)).dtype == jnp.float64
    # A traced float32 value inside a vmap (the others Python floats) keeps float32.
    some = next(iter(case.sweeps))
    out = jax.jit(jax.vmap(lambda v: case.build(**{some: v})(COUNTS[5])))(jnp.asarray(case.sweeps[some], jnp.float32))
    assert out.dtype == jnp.float32, (case.name, some, out.dtype)


def test_float32_values_compute_in_float32():
    """Not only the output: a float32 schedule is float32 arithmetic (as a float32 NumPy run)."""
    n = np.arange(N, dtype=np.float32)
    got = np.asarray(jax.vmap(gx.linear_schedule(jnp.float32(0.1), jnp.float32(1e-3), 3000))(COUNTS))
    f32 = np.float32
    want = (f32(0.1) - f32(1e-3)) * (f32(1) - np.minimum(n, f32(3000)) / f32(3000)) + f32(1e-3)
    ulp = np.finfo(np.float32).eps * 0.1  # of the largest value
    np.testing.assert_allclose(got, want, rtol=0, atol=2 * ulp)  # up to operation order
    # Float64 arithmetic rounded to float32 would be within half an ulp of the
    # exact value (from the same float32 inputs); float32 arithmetic is not.
    exact = _poly_ref(STEPS, float(f32(0.1)), float(f32(1e-3)), 1.0, 3000.0)
    assert np.max(np.abs(got - exact) / exact) > np.finfo(np.float32).eps


def test_integer_values_give_the_default_float():
    """Integer leaves (step counts, an integer constant) do not decide the dtype."""
    assert gx.constant_schedule(3)(COUNTS[0]).dtype == jnp.float64
    assert gx.linear_schedule(1, 0, 10)(jnp.int32(5)) == 0.5
    s = gx.warmup_cosine_decay_schedule(jnp.float32(0.0), jnp.float32(1.0), jnp.int32(10), jnp.int64(100))
    assert s(jnp.int32(50)).dtype == jnp.float32


def test_every_schedule_is_covered():
    """Each Schedule subclass defined in gradtx is built by some case (FunctionSchedule wraps user code)."""

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    ours = {c for c in subclasses(Schedule) if c.__module__.startswith("gradtx.")} - {FunctionSchedule}
    covered = {type(case.build()) for case in CASES}
    assert ours <= covered, ours - covered
