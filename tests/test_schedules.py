"""Learning-rate schedules: parity with optax, closed forms, pytree behaviour, validation.

optax is only the oracle here. Counts: optimizer states count in int32, so
parity is checked on int32 counts (what training sees) and on int64 counts.
gx schedules compute in the precision of their own values (float64 here, for
either count dtype; see tests/test_schedule_precision.py). optax's follow the
count: with int32 counts several compute ``count / steps`` as an int32
true-divide, which JAX does in float32, and return float32. The oracle is
therefore optax on int64 counts (its formulas in float64), which gx matches to
float64 rounding; test_int32_counts_more_precise_than_optax documents the gap.
"""

from __future__ import annotations

import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jax
import jax.numpy as jnp

import gradtx as gx

RTOL = 1e-6
RTOL_F64 = 1e-12  # gx against optax's float64 values (int64 counts)
N_STEPS = 1001

# One compiled function per schedule tree structure: the schedule is an
# ordinary argument, so all of its numbers are traced leaves.
_traced_eval = jax.jit(lambda schedule, counts: jax.vmap(schedule)(counts))


def _counts(dtype):
    return jnp.arange(N_STEPS, dtype=dtype)


def _eager_eval(schedule, counts):
    return np.asarray(jax.vmap(schedule)(counts))


# ---------------------------------------------------------------------------
# 1. Parity with optax on steps 0..1000.
# ---------------------------------------------------------------------------

SGDR_CYCLES = [
    dict(init_value=0.0, peak_value=1.0, warmup_steps=20, decay_steps=300, end_value=1e-3),
    dict(init_value=1e-3, peak_value=0.5, warmup_steps=10, decay_steps=300),
    dict(init_value=0.0, peak_value=0.25, warmup_steps=5, decay_steps=500, exponent=2.0),
]

# (name, args, kwargs): the same call is made on gx and on optax.
SHARED_CASES = [
    ("constant_schedule", (0.1,), {}),
    ("constant_schedule", (-2.5,), {}),
    ("linear_schedule", (1.0, 0.01, 300), {}),
    ("linear_schedule", (0.0, 1e-3, 50, 100), {}),  # transition_begin > 0
    ("linear_schedule", (0.5, 2.0, 7), dict(transition_begin=993)),  # increasing, ends at step 1000
    ("polynomial_schedule", (1.0, 0.01, 2, 100), {}),
    ("polynomial_schedule", (1.0, 0.1, 0.5, 250, 40), {}),
    ("polynomial_schedule", (0.0, 1.0, 3, 999), {}),
    ("polynomial_schedule", (1.0, 0.0, 1.5, 100, -5), {}),  # negative begin counts as 0
    ("exponential_decay", (1.0, 100, 0.5), {}),
    ("exponential_decay", (1.0, 100, 0.5), dict(staircase=True)),
    ("exponential_decay", (0.1, 50, 0.9), dict(transition_begin=200)),
    ("exponential_decay", (1.0, 30, 0.5), dict(end_value=0.05)),  # rate < 1: lower bound
    ("exponential_decay", (1.0, 30, 0.5), dict(transition_begin=10, staircase=True, end_value=0.05)),
    ("exponential_decay", (1e-3, 100, 1.5), dict(end_value=0.01)),  # rate > 1: upper bound
    ("exponential_decay", (1e-3, 100, 1.5), dict(transition_begin=20, staircase=True, end_value=0.01)),
    ("exponential_decay", (2.0, 7, 0.99), dict(transition_begin=-3)),
    ("cosine_decay_schedule", (1.0, 500), {}),
    ("cosine_decay_schedule", (0.1, 300, 0.1), {}),  # alpha > 0
    ("cosine_decay_schedule", (1.0, 700), dict(exponent=2.0)),
    ("cosine_decay_schedule", (0.5, 1000, 0.05, 0.5), {}),  # alpha > 0, exponent < 1
    ("cosine_decay_schedule", (1.0, 1), {}),
    ("warmup_cosine_decay_schedule", (0.0, 1e-3, 10, 100), {}),
    ("warmup_cosine_decay_schedule", (1e-4, 1.0, 100, 800, 1e-3), {}),
    ("warmup_cosine_decay_schedule", (0.0, 0.5, 0, 500), dict(exponent=2.0)),  # no warmup
    ("warmup_cosine_decay_schedule", (0.1, 1.0, 50, 1200, 0.01, 1.5), {}),  # longer than the range
    ("warmup_cosine_decay_schedule", (0.1, 0.0, 50, 600), {}),  # peak 0: alpha 0
    ("warmup_exponential_decay_schedule", (0.0, 1.0, 50, 100, 0.5), {}),
    ("warmup_exponential_decay_schedule", (0.0, 1.0, 50, 100, 0.5),
     dict(transition_begin=20, staircase=True, end_value=0.01)),
    ("warmup_exponential_decay_schedule", (1e-3, 1e-2, 10, 40, 1.2), dict(end_value=0.05)),
    ("piecewise_constant_schedule", (1.0,), {}),
    ("piecewise_constant_schedule", (1.0, {100: 0.1, 300: 0.5, 600: 0.2}), {}),
    ("piecewise_constant_schedule", (0.5, {600: 0.0, 200: 2.0, 400: 0.5}), {}),  # unsorted, a zero scale
    ("piecewise_constant_schedule", (1.0, {0: 0.5, 1000: 0.1}), {}),  # boundaries on the range's ends
    ("piecewise_interpolate_schedule", ("linear", 1.0, {100: 0.1, 300: 0.5, 600: 2.0}), {}),
    ("piecewise_interpolate_schedule", ("cosine", 1.0, {100: 0.1, 300: 0.5, 600: 2.0}), {}),
    ("piecewise_interpolate_schedule", ("linear", 2.0), {}),
    ("piecewise_interpolate_schedule", ("linear", 2.0, {}), {}),
    ("piecewise_interpolate_schedule", ("cosine", 0.3, {0: 0.5, 50: 0.1}), {}),
    ("piecewise_interpolate_schedule", ("linear", 1.0, {250: 0.1, 251: 10.0, 999: 0.0}), {}),
    ("linear_onecycle_schedule", (1000, 1.0), {}),
    ("linear_onecycle_schedule", (600, 0.1, 0.25, 0.75, 10.0, 100.0), {}),
    ("linear_onecycle_schedule", (1000, 1e-2, 0.29, 0.57, 5.0, 1e3), {}),
    ("linear_onecycle_schedule", (333, 2.0),
     dict(pct_start=0.4, pct_final=0.9, div_factor=4.0, final_div_factor=50.0)),
    # 0.29 * 100 == 28.999999999999996 in float64: optax's int() gives 28.
    ("linear_onecycle_schedule", (100, 1.0, 0.29, 0.58), {}),
    ("cosine_onecycle_schedule", (1000, 1.0), {}),
    ("cosine_onecycle_schedule", (500, 0.1, 0.2, 10.0, 100.0), {}),
    ("cosine_onecycle_schedule", (777, 1.0), dict(pct_start=0.29, div_factor=20.0, final_div_factor=1e3)),
    ("cosine_onecycle_schedule", (100, 1.0), dict(pct_start=0.57)),
    ("sgdr_schedule", (SGDR_CYCLES[:2],), {}),
    ("sgdr_schedule", (SGDR_CYCLES,), {}),
]


def _case_id(case):
    name, args, kwargs = case
    shown = [a if not isinstance(a, list) else f"{len(a)}cycles" for a in args]
    shown += [f"{k}={v}" for k, v in kwargs.items()]
    return f"{name}({','.join(map(str, shown))})".replace(" ", "")


def _join_pair(lib):
    return lib.join_schedules(
        [lib.linear_schedule(0.0, 1.0, 100), lib.linear_schedule(1.0, 1e-3, 500, 50)], [300]
    )


def _build(case, lib):
    name, args, kwargs = case
    if name == "join_schedules":
        return _join_pair(lib)
    return getattr(lib, name)(*args, **kwargs)


CASES = SHARED_CASES + [("join_schedules", (), {})]
CASE_IDS = [_case_id(c) for c in CASES]


@pytest.mark.parametrize("count_dtype", [jnp.int32, jnp.int64], ids=["int32", "int64"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parity_with_optax(case, count_dtype):
    # optax on int64 counts: its formulas in float64 (on int32 counts several
    # of them compute in float32; see test_int32_counts_more_precise_than_optax).
    got = _eager_eval(_build(case, gx), _counts(count_dtype))
    want = _eager_eval(_build(case, optax), _counts(jnp.int64))
    assert got.shape == want.shape == (N_STEPS,)
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=RTOL_F64, atol=0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parity_with_optax_traced_leaves(case):
    """Every number of the schedule traced by jit (the vmap/sweep path)."""
    counts = _counts(jnp.int64)
    got = np.asarray(_traced_eval(_build(case, gx), counts))
    want = _eager_eval(_build(case, optax), counts)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@pytest.mark.parametrize(
    "name, args, theirs_min_err",
    [
        # float32 rounding of pct, ~2e-4 at step 997 (the fraction (count - b) / size
        # is int32 / int32 in optax's piecewise_interpolate).
        ("cosine_onecycle_schedule", (1000, 1.0), 1e-5),
        # float32 cancellation in (v0 - v1) frac + v1 near the end of the ramp.
        ("linear_schedule", (0.0, 1e-3, 50, 100), 1e-6),
        ("warmup_cosine_decay_schedule", (1e-4, 1.0, 100, 800, 1e-3), 1e-5),
    ],
)
def test_int32_counts_more_precise_than_optax(name, args, theirs_min_err):
    """The one discrepancy left: on int32 counts optax computes in float32, gx in float64."""
    exact = _eager_eval(getattr(optax, name)(*args), _counts(jnp.int64))
    ours = _eager_eval(getattr(gx, name)(*args), _counts(jnp.int32))
    theirs = _eager_eval(getattr(optax, name)(*args), _counts(jnp.int32))
    assert ours.dtype == np.float64  # theirs: float32 arithmetic (onecycle returns it as float64)
    nonzero = exact != 0
    ours_err = np.max(np.abs(ours - exact)[nonzero] / np.abs(exact[nonzero]))
    theirs_err = np.max(np.abs(theirs - exact)[nonzero] / np.abs(exact[nonzero]))
    assert ours_err < 1e-12
    assert theirs_err > theirs_min_err


@given(
    pct_start=st.integers(1, 49).map(lambda k: k / 100),
    pct_final=st.integers(50, 99).map(lambda k: k / 100),
    steps=st.sampled_from([50, 100, 333, 600, 777, 1000]),
)
def test_onecycle_boundaries_floor_like_optax(pct_start, pct_final, steps):
    """The phase boundaries are int(pct * T) exactly as optax computes them."""
    counts = _counts(jnp.int64)
    gx_s = gx.linear_onecycle_schedule(steps, 1.0, pct_start, pct_final, 5.0, 100.0)
    want = _eager_eval(optax.linear_onecycle_schedule(steps, 1.0, pct_start, pct_final, 5.0, 100.0), counts)
    np.testing.assert_allclose(_eager_eval(gx_s, counts), want, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(_traced_eval(gx_s, counts)), want, rtol=RTOL)


# ---------------------------------------------------------------------------
# 2. Closed forms, independent of optax.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, staircase, expected",
    [
        (0, False, 0.1),
        (5, False, 0.1 / 1.25),
        (10, False, 0.1 / 1.5),
        (25, False, 0.1 / 2.25),
        (0, True, 0.1),
        (5, True, 0.1),
        (19, True, 0.1 / 1.5),
        (25, True, 0.1 / 2.0),
        (1000, True, 0.1 / 51.0),
    ],
)
def test_inverse_time_decay_values(n, staircase, expected):
    s = gx.inverse_time_decay(0.1, 0.5, transition_steps=10, staircase=staircase)
    np.testing.assert_allclose(float(s(n)), expected, rtol=1e-12)
    np.testing.assert_allclose(float(s(jnp.int32(n))), expected, rtol=1e-12)  # float64 on int32 counts too


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay_curve(staircase):
    init, rate, steps = 1e-2, 0.3, 7
    n = np.arange(N_STEPS)
    ratio = np.floor(n / steps) if staircase else n / steps
    expected = init / (1 + rate * ratio)
    s = gx.inverse_time_decay(init, rate, steps, staircase)
    np.testing.assert_allclose(_eager_eval(s, _counts(jnp.int64)), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(_traced_eval(s, _counts(jnp.int64))), expected, rtol=1e-12)


def test_inverse_time_decay_default_transition_steps():
    s = gx.inverse_time_decay(2.0, 0.1)  # eta_0 / (1 + d n)
    n = np.arange(N_STEPS)
    np.testing.assert_allclose(_eager_eval(s, _counts(jnp.int64)), 2.0 / (1 + 0.1 * n), rtol=1e-12)


@pytest.mark.parametrize("epochs", [1, 3, 10])
def test_linear_schedule_is_the_seed_rule(epochs):
    """alpha_i = (1 - i/tau) alpha_0 + (i/tau) alpha_tau for i < tau, alpha_tau after."""
    alpha_0 = 0.1
    tau = 100 * epochs  # epochs=3 -> tau=300
    alpha_tau = alpha_0 / 100
    i = np.arange(N_STEPS)
    beta = i / tau
    expected = np.where(i < tau, (1 - beta) * alpha_0 + beta * alpha_tau, alpha_tau)
    s = gx.linear_schedule(alpha_0, alpha_tau, tau)
    np.testing.assert_allclose(_eager_eval(s, _counts(jnp.int64)), expected, rtol=1e-12)
    # int32 counts: still float64 (optax would divide i / tau in float32 here).
    np.testing.assert_allclose(_eager_eval(s, _counts(jnp.int32)), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "schedule",
    [
        gx.polynomial_schedule(1.0, 0.0, 2, 0),
        gx.polynomial_schedule(1.0, 0.0, 2, -5, 10),
        gx.linear_schedule(1.0, 0.0, 0),
        gx.exponential_decay(1.0, 0, 0.5),
        gx.exponential_decay(1.0, -10, 0.5, staircase=True, end_value=0.1),
        gx.exponential_decay(1.0, 100, 0.0),
    ],
    ids=["poly_T0", "poly_Tneg", "linear_T0", "exp_T0", "exp_Tneg", "exp_rate0"],
)
def test_degenerate_transition_is_constant_init_value(schedule):
    """As optax (which logs and returns init_value): T <= 0 or rate 0 is a constant."""
    counts = _counts(jnp.int64)
    np.testing.assert_array_equal(_eager_eval(schedule, counts), np.ones(N_STEPS))
    np.testing.assert_array_equal(np.asarray(_traced_eval(schedule, counts)), np.ones(N_STEPS))


def test_warmup_cosine_closed_form():
    init, peak, warm, total, end = 0.0, 1e-3, 10, 100, 1e-5
    s = gx.warmup_cosine_decay_schedule(init, peak, warm, total, end)
    n = np.arange(N_STEPS)
    t = np.minimum(n - warm, total - warm) / (total - warm)
    cosine = end + (peak - end) * 0.5 * (1 + np.cos(np.pi * t))
    expected = np.where(n < warm, init + (peak - init) * n / warm, cosine)
    np.testing.assert_allclose(_eager_eval(s, _counts(jnp.int64)), expected, rtol=1e-12, atol=1e-18)


# ---------------------------------------------------------------------------
# 3. Schedules are pytrees: leaves, one trace, vmap.
# ---------------------------------------------------------------------------


def test_schedule_leaves_are_its_numbers():
    leaves = jax.tree.leaves(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100))
    for number in (0.0, 1e-3, 10, 100):
        assert any(leaf == number for leaf in leaves), (number, leaves)
    assert len(leaves) == 6  # + end_value, exponent
    # Step counts are leaves too, for every family.
    assert 250 in jax.tree.leaves(gx.piecewise_constant_schedule(1.0, {250: 0.1}))
    assert 123 in jax.tree.leaves(gx.exponential_decay(1.0, 123, 0.5))
    assert 77 in jax.tree.leaves(gx.linear_onecycle_schedule(77, 1.0))
    assert 300 in jax.tree.leaves(gx.sgdr_schedule(SGDR_CYCLES))


def test_tree_map_round_trip():
    s = gx.warmup_exponential_decay_schedule(0.0, 1.0, 10, 50, 0.5, 5, True, 0.01)
    doubled = jax.tree.map(lambda x: 2 * x, s)
    assert type(doubled) is type(s) and doubled.staircase is True
    assert doubled.peak_value == 2.0 and doubled.warmup_steps == 20


def test_jit_traces_once_for_different_peaks():
    traces = []

    @jax.jit
    def lr_at(schedule, count):
        traces.append(None)
        return schedule(count)

    peaks = [1e-3, 3e-3, 1e-2]
    for peak in peaks:
        s = gx.warmup_cosine_decay_schedule(0.0, peak, 10, 100)
        np.testing.assert_allclose(float(lr_at(s, 50)), float(s(50)), rtol=1e-12)
    assert len(traces) == 1
    # A different warmup length is a new leaf value, not a new structure.
    lr_at(gx.warmup_cosine_decay_schedule(0.0, 1e-3, 20, 100), 50)
    assert len(traces) == 1


def test_vmap_over_peak_value_is_a_sweep():
    peaks = jnp.array([0.0, 1e-4, 1e-3, 0.1, 1.0])
    got = jax.vmap(lambda p: gx.warmup_cosine_decay_schedule(0.0, p, 10, 100)(50))(peaks)
    want = [float(gx.warmup_cosine_decay_schedule(0.0, float(p), 10, 100)(50)) for p in peaks]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    ref = [float(optax.warmup_cosine_decay_schedule(0.0, float(p), 10, 100)(50)) for p in peaks]
    np.testing.assert_allclose(np.asarray(got), ref, rtol=RTOL)


@pytest.mark.parametrize("count", [0, 5, 15, 50, 99, 150])
def test_vmap_over_warmup_steps(count):
    warmups = jnp.array([0, 1, 10, 20, 60])
    got = jax.vmap(lambda w: gx.warmup_cosine_decay_schedule(0.1, 1.0, w, 100, 0.01)(count))(warmups)
    want = [float(gx.warmup_cosine_decay_schedule(0.1, 1.0, int(w), 100, 0.01)(count)) for w in warmups]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    ref = [float(optax.warmup_cosine_decay_schedule(0.1, 1.0, int(w), 100, 0.01)(count)) for w in warmups]
    np.testing.assert_allclose(np.asarray(got), ref, rtol=RTOL)


def test_vmap_over_step_leaves_of_other_families():
    """Boundaries, transition/decay steps batched, each compared with a Python loop."""
    # (The piecewise boundary is batched through the schedule pytree only.)
    count = 137
    cases = [
        (lambda b: gx.piecewise_constant_schedule(1.0, {b: 0.1, 400: 0.5}), [50, 137, 138, 300]),
        (lambda t: gx.exponential_decay(1.0, t, 0.5, staircase=True), [10, 50, 137, 200]),
        (lambda t: gx.cosine_decay_schedule(1.0, t, 0.1), [100, 137, 500]),
        (lambda t: gx.linear_onecycle_schedule(t, 1.0), [100, 300, 1000]),
        (lambda b: gx.join_schedules([gx.constant_schedule(1.0), gx.linear_schedule(1.0, 0.0, 100)], [b]),
         [0, 37, 137, 200]),
    ]
    for make, values in cases:
        want = [float(make(v)(count)) for v in values]
        # A batch of schedules of one structure, stacked leaf by leaf.
        batch = jax.tree.map(lambda *xs: jnp.asarray(xs), *[make(v) for v in values])
        got = jax.jit(jax.vmap(lambda s: s(count)))(batch)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, err_msg=str(values))
        if make is not cases[0][0]:  # a dict key cannot be a tracer
            got = jax.jit(jax.vmap(lambda v: make(v)(count)))(jnp.array(values))
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, err_msg=str(values))


def test_vmap_over_schedules_themselves():
    """A stacked batch of schedules (same structure) vmaps as one pytree."""
    peaks = [1e-3, 1e-2, 1e-1]
    batch = jax.tree.map(
        lambda *xs: jnp.asarray(xs), *[gx.warmup_cosine_decay_schedule(0.0, p, 10, 100) for p in peaks]
    )
    counts = _counts(jnp.int64)
    got = jax.jit(jax.vmap(lambda s: jax.vmap(s)(counts)))(batch)
    for row, p in zip(np.asarray(got), peaks):
        want = _eager_eval(optax.warmup_cosine_decay_schedule(0.0, p, 10, 100), counts)
        np.testing.assert_allclose(row, want, rtol=RTOL)


# ---------------------------------------------------------------------------
# 4. Validation: clear errors naming the argument.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gx.piecewise_constant_schedule(1.0, {100: 0.5, 200: -0.1}),
         r"piecewise_constant_schedule.*`boundaries_and_scales`.*>= 0"),
        (lambda: gx.piecewise_interpolate_schedule("linear", 1.0, {100: -2.0}),
         r"piecewise_interpolate_schedule.*`boundaries_and_scales`"),
        (lambda: gx.cosine_decay_schedule(1.0, decay_steps=0), r"cosine_decay_schedule.*`decay_steps`.*> 0"),
        (lambda: gx.cosine_decay_schedule(1.0, decay_steps=-10), r"`decay_steps`"),
        (lambda: gx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 100),
         r"warmup_cosine_decay_schedule.*`decay_steps`.*`warmup_steps`"),
        (lambda: gx.warmup_cosine_decay_schedule(0.0, 1.0, 100, 50), r"`decay_steps`.*`warmup_steps`"),
        (lambda: gx.piecewise_interpolate_schedule("quadratic", 1.0, {10: 0.5}),
         r"piecewise_interpolate_schedule.*`interpolate_type`.*'quadratic'"),
        (lambda: gx.inverse_time_decay(1.0, 0.5, transition_steps=0), r"inverse_time_decay.*`transition_steps`"),
        (lambda: gx.inverse_time_decay(1.0, -0.5), r"`decay_rate`"),
        (lambda: gx.exponential_decay(1.0, 10, -0.5), r"exponential_decay.*`decay_rate`"),
        (lambda: gx.linear_onecycle_schedule(0, 1.0), r"linear_onecycle_schedule.*`transition_steps`"),
        (lambda: gx.linear_onecycle_schedule(100, 1.0, pct_start=1.5), r"`pct_start`"),
        (lambda: gx.join_schedules([gx.constant_schedule(1.0)], [10]), r"join_schedules.*boundaries"),
    ],
    ids=[
        "piecewise_constant_negative_scale",
        "piecewise_interpolate_negative_scale",
        "cosine_decay_steps_0",
        "cosine_decay_steps_negative",
        "warmup_cosine_decay_eq_warmup",
        "warmup_cosine_decay_lt_warmup",
        "interpolate_type_quadratic",
        "inverse_time_transition_steps_0",
        "inverse_time_negative_rate",
        "exponential_negative_rate",
        "onecycle_transition_steps_0",
        "onecycle_pct_start_gt_1",
        "join_count_mismatch",
    ],
)
def test_invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_traced_arguments_skip_validation():
    """Inside vmap the numbers are unknown: no error, the math just runs."""
    decay = jnp.array([100, 200])
    got = jax.jit(jax.vmap(lambda d: gx.warmup_cosine_decay_schedule(0.0, 1.0, 10, d)(50)))(decay)
    want = [float(gx.warmup_cosine_decay_schedule(0.0, 1.0, 10, int(d))(50)) for d in decay]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
