"""Schedule-Free (schedule_free, schedule_free_sgd, schedule_free_adamw): parity with
optax.contrib, closed forms, one trace for many values, vmap sweeps, bad input.

Parity follows tests/test_parity.py (random nested pytrees, 100 steps, updates and
state leaves at three steps; float64 rtol 1e-6, float32 1e-5). optax is built inside
``jit`` from traced hyperparameters (gradtx's are runtime leaves; see
tests/test_zoo_lbfgs.py ``_check``) and float32 runs with x64 off (under x64 optax
computes some scalars in float64).
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_parity import STEPS, STRUCTURES, _random_tree, assert_same_trajectories

import gradtx as gx
from gradtx.optimizers.schedule_free import schedule_free_adamw, schedule_free_sgd
from gradtx.wrappers.schedule_free import (
    ScheduleFree,
    ScheduleFreeState,
    schedule_free,
    schedule_free_eval_params,
)

DTYPES = pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
EVAL_STEPS = (0, 1, 7, STEPS // 2, STEPS - 1)


def _scan(tx, eval_fn, params, grads):
    """``len(grads)`` updates; per step the updates, the state and the eval params."""

    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        p = jax.tree.map(lambda a, b: (a + b).astype(a.dtype), p, u)
        return (p, s), (u, s, eval_fn(s, p))

    return jax.lax.scan(step, (params, tx.init(params)), grads)[1]


@jax.jit
def _run_gx(tx, params, grads):
    return _scan(tx, schedule_free_eval_params, params, grads)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run_optax(make_optax, fixed, numbers, params, grads):
    # Built inside jit from traced numbers: optax, too, computes with runtime values.
    return _scan(make_optax(**numbers, **dict(fixed)), optax.contrib.schedule_free_eval_params, params, grads)


def _parity(make_gx, make_optax, numbers, fixed, dtype, rtol, which, seed):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(dtype == jnp.float64):
        params = _random_tree(STRUCTURES[which], rng, dtype)
        grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(STRUCTURES[which], rng, dtype) for _ in range(STEPS)])
        numbers = {k: jnp.asarray(v, dtype) for k, v in numbers.items()}
        ours = _run_gx(make_gx(**numbers, **fixed), params, grads)
        theirs = _run_optax(make_optax, tuple(sorted(fixed.items())), numbers, params, grads)
        assert_same_trajectories(ours[:2], theirs[:2], dtype, rtol)
        atol = 1e-12 if dtype == jnp.float64 else 1e-6
        for t in EVAL_STEPS:
            for a, b in zip(jax.tree.leaves(ours[2]), jax.tree.leaves(theirs[2])):
                assert a.dtype == b.dtype
                np.testing.assert_allclose(a[t], b[t], rtol=rtol, atol=atol, err_msg=f"eval params, step {t}")


def _draws(n, seed, **ranges):
    rng = np.random.default_rng(seed)
    return [
        ({k: float(rng.uniform(*r)) for k, r in ranges.items()}, i % len(STRUCTURES), int(rng.integers(2**16)))
        for i in range(n)
    ]


@DTYPES
@pytest.mark.parametrize("warmup_steps", [None, 4])
@pytest.mark.parametrize("decay", [False, True], ids=["no_decay", "decay"])
def test_sgd_parity(dtype, rtol, warmup_steps, decay):
    ranges = {"learning_rate": (1e-3, 0.3), "b1": (0.5, 0.99), "weight_lr_power": (0.0, 3.0)}
    if decay:
        ranges["weight_decay"] = (0.0, 0.1)
    for numbers, which, seed in _draws(2, 1, **ranges):
        _parity(schedule_free_sgd, optax.contrib.schedule_free_sgd, numbers, {"warmup_steps": warmup_steps},
                dtype, rtol, which, seed)


@DTYPES
@pytest.mark.parametrize("warmup_steps", [None, 8])
def test_adamw_parity(dtype, rtol, warmup_steps):
    ranges = {"learning_rate": (1e-3, 0.1), "b1": (0.5, 0.99), "b2": (0.9, 0.9999), "eps": (1e-8, 1e-3),
                  "weight_decay": (0.0, 0.1), "weight_lr_power": (0.0, 3.0)}
    for numbers, which, seed in _draws(2, 2, **ranges):
        _parity(schedule_free_adamw, optax.contrib.schedule_free_adamw, numbers, {"warmup_steps": warmup_steps},
                dtype, rtol, which, seed)


def _gx_over_adam(lr, b1, b2, weight_lr_power, decay_rate):
    # A schedule, evaluated at step_count. transition_steps = 1: optax divides the int32
    # count by it in float32 even under x64, exact only for 1 (gradtx: the schedule's dtype).
    sched = gx.exponential_decay(lr, 1, decay_rate)
    base = gx.chain(gx.clip_by_global_norm(2.0), gx.adam(sched, b1=0.0, b2=b2))
    return schedule_free(base, sched, b1=b1, weight_lr_power=weight_lr_power)


def _optax_over_adam(lr, b1, b2, weight_lr_power, decay_rate):
    sched = optax.exponential_decay(lr, 1, decay_rate)
    base = optax.chain(optax.clip_by_global_norm(2.0), optax.adam(sched, b1=0.0, b2=b2))
    return optax.contrib.schedule_free(base, sched, b1=b1, weight_lr_power=weight_lr_power)


@DTYPES
def test_wrapper_over_base_optimizer_parity(dtype, rtol):
    # optax's exponential_decay branches in Python on decay_rate: it stays a constant, a
    # NumPy scalar of the run's dtype (a Python float would make optax compute rate**p in
    # float32 under x64; gradtx computes a schedule in its own values' dtype).
    ranges = {"lr": (1e-3, 0.1), "b1": (0.5, 0.99), "b2": (0.9, 0.9999), "weight_lr_power": (0.0, 3.0)}
    for numbers, which, seed in _draws(2, 3, **ranges):
        _parity(_gx_over_adam, _optax_over_adam, numbers, {"decay_rate": np.dtype(dtype).type(0.99)}, dtype, rtol, which, seed)


def test_state_is_optax_shaped():
    params = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros((3,), jnp.float32)}
    state = schedule_free_adamw().init(params)
    assert isinstance(state, ScheduleFreeState)
    assert state._fields == optax.contrib.ScheduleFreeState._fields
    assert state.step_count.dtype == jnp.int32 and int(state.step_count) == 1
    assert state.b1.dtype == state.max_lr.dtype == state.weight_sum.dtype == jnp.float32
    # Mixed precision: the scalars take the lowest dtype (as optax), z the params'.
    mixed = {"w": jnp.ones((2,), jnp.float64), "b": jnp.ones((2,), jnp.bfloat16)}
    s = schedule_free_sgd().init(mixed)
    assert s.max_lr.dtype == jnp.bfloat16 and s.z["w"].dtype == jnp.float64
    s = schedule_free_sgd(state_dtype=jnp.float64).init({"w": jnp.ones((2,), jnp.float32)})
    assert s.z["w"].dtype == jnp.float64


# ----- closed forms -----------------------------------------------------------------


def _numpy_schedule_free_sgd(w0, grad, lr, b1, r, warmup, steps):
    """The paper's recurrences with an explicit x, in float64 NumPy."""
    z, x = w0.copy(), w0.copy()
    y = w0.copy()
    max_lr, weight_sum = 0.0, 0.0
    ys, xs, zs, weights = [], [], [z.copy()], []
    gamma = lambda n: lr if warmup is None else lr * min(n, warmup) / warmup
    for t in range(1, steps + 1):
        z = z - gamma(t - 1) * grad(y)  # the SGD step: the base optimizer's count is t - 1
        max_lr = max(max_lr, gamma(t))  # the weights: the wrapper's step_count is t
        w = max_lr**r
        weight_sum += w
        c = w / weight_sum if weight_sum > 0 else 0.0
        x = (1 - c) * x + c * z
        y = (1 - b1) * z + b1 * x
        ys.append(y), xs.append(x), zs.append(z.copy()), weights.append(w)
    return np.array(ys), np.array(xs), np.array(zs), np.array(weights)


@pytest.mark.parametrize("warmup", [None, 4])
def test_sgd_matches_the_papers_recurrences(warmup):
    hess = np.diag([1.0, 10.0])
    target = np.array([1.0, -2.0])
    grad = lambda w: hess @ (w - target)
    w0 = np.array([3.0, 0.5])
    lr, b1, r, steps = 0.08, 0.8, 1.5, 40
    ys, xs, zs, weights = _numpy_schedule_free_sgd(w0, grad, lr, b1, r, warmup, steps)

    opt = schedule_free_sgd(lr, warmup_steps=warmup, b1=b1, weight_lr_power=r)
    p, s = jnp.asarray(w0), opt.init(jnp.asarray(w0))
    for t in range(steps):
        u, s = opt.update(jnp.asarray(grad(np.asarray(p))), s, p)
        p = gx.apply_updates(p, u)
        np.testing.assert_allclose(p, ys[t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s.z, zs[t + 1], rtol=1e-12, atol=1e-12)
        x = np.asarray(schedule_free_eval_params(s, p))
        np.testing.assert_allclose(x, xs[t], rtol=1e-10, atol=1e-12)
        # x is the c-weighted average of z_2 .. z_{t+2}: weights max_lr_i ** r.
        avg = (weights[: t + 1, None] * zs[1 : t + 2]).sum(0) / weights[: t + 1].sum()
        np.testing.assert_allclose(x, avg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(s.weight_sum), weights.sum(), rtol=1e-12)


def test_b1_one_is_polyak_averaged_sgd():
    # b1 = 1: gradients at x (y = x), z is plain SGD started there; with r = 0 and a
    # constant learning rate, x_{t+1} = mean(z_2 .. z_{t+1}).
    g = lambda w: 2.0 * w
    opt = schedule_free_sgd(0.1, b1=1.0, weight_lr_power=0.0)
    p = jnp.array([1.0, -3.0])
    s = opt.init(p)
    zs = []
    for _ in range(6):
        u, s = opt.update(g(p), s, p)
        p = gx.apply_updates(p, u)
        zs.append(np.asarray(s.z))
        np.testing.assert_allclose(p, np.mean(zs, axis=0), rtol=1e-12)
        np.testing.assert_allclose(schedule_free_eval_params(s, p), p, rtol=1e-12)


def test_adamw_first_step():
    # Step 1: z moves by -lr * (g / (|g| + eps) + wd * y) (the debiased RMS of one gradient
    # is |g|), c = 1 so x = z, and y = z.
    lr, wd, eps = 0.1, 0.01, 1e-3
    p = jnp.array([0.5, -2.0])
    g = jnp.array([3.0, -0.25])
    opt = schedule_free_adamw(lr, b1=0.9, weight_decay=wd, eps=eps)
    u, s = opt.update(g, opt.init(p), p)
    expected = np.asarray(p) - lr * (np.asarray(g) / (np.abs(g) + eps) + wd * np.asarray(p))
    np.testing.assert_allclose(gx.apply_updates(p, u), expected, rtol=1e-12)
    np.testing.assert_allclose(s.z, expected, rtol=1e-12)
    np.testing.assert_allclose(schedule_free_eval_params(s, gx.apply_updates(p, u)), expected, rtol=1e-12)


# ----- pytree hyperparameters: one trace, sweeps ----------------------------------------


def test_one_trace_for_every_numeric_hyperparameter():
    traces = 0

    @jax.jit
    def run(opt, params):
        nonlocal traces
        traces += 1
        s = opt.init(params)
        for _ in range(3):
            u, s = opt.update(jax.tree.map(lambda w: 2 * w, params), s, params)
            params = gx.apply_updates(params, u)
        return params, schedule_free_eval_params(s, params)

    params = {"a": jnp.ones((3,), jnp.float32), "b": jnp.full((2, 2), -0.5, jnp.float32)}
    outs = []
    for kw in (
        {"learning_rate": 0.01, "warmup_steps": 3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "weight_lr_power": 2.0},
        {"learning_rate": 0.2, "warmup_steps": 10, "b1": 0.5, "b2": 0.9, "eps": 1e-3, "weight_decay": 0.1, "weight_lr_power": 0.0},
        {"learning_rate": 0.05, "warmup_steps": 1, "b1": 1.0, "b2": 0.99, "eps": 1e-6, "weight_decay": 0.01, "weight_lr_power": 1.0},
    ):
        outs.append(run(schedule_free_adamw(**kw), params))
    assert traces == 1
    assert not np.allclose(outs[0][0]["a"], outs[1][0]["a"])
    for kw in (
        {"learning_rate": 0.1, "warmup_steps": 2, "b1": 0.9, "weight_decay": 0.0, "weight_lr_power": 2.0},
        {"learning_rate": 0.3, "warmup_steps": 5, "b1": 0.7, "weight_decay": 0.2, "weight_lr_power": 3.0},
    ):
        run(schedule_free_sgd(**kw), params)
    assert traces == 2
    base = gx.adam(0.1, b1=0.0)
    run(schedule_free(base, 0.1, b1=0.9, weight_lr_power=2.0), params)
    run(schedule_free(base.replace(transforms=(base.transforms[0].replace(b2=0.9), base.transforms[1])),
                      0.3, b1=0.6, weight_lr_power=1.0), params)
    assert traces == 3
    # chex agrees, for a second value of every leaf (integers moved by one).
    chex.clear_trace_counter()
    checked = jax.jit(chex.assert_max_traces(n=1)(lambda opt, p: opt.update(p, opt.init(p), p)))
    opt = schedule_free_adamw(0.1, warmup_steps=4, weight_decay=0.01)
    checked(opt, params)
    checked(jax.tree.map(lambda x: x + 1 if jnp.issubdtype(x.dtype, jnp.integer) else x * 0.5, opt), params)


def _train(opt, params, steps=30):
    def step(carry, _):
        p, s = carry
        g = jax.grad(lambda w: jnp.sum(jnp.abs(w - 1.0) ** 2 * jnp.arange(1.0, 4.0)).real)(p)
        u, s = opt.update(jnp.conj(g), s, p)
        p = gx.apply_updates(p, u)
        return (p, s), schedule_free_eval_params(s, p)

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)


@pytest.mark.parametrize("factory", [schedule_free_sgd, schedule_free_adamw])
def test_vmap_over_learning_rates_equals_separate_runs(factory):
    lrs = jnp.array([1e-2, 5e-2, 0.2], jnp.float32)
    params = jnp.zeros((3,), jnp.float32)
    make = lambda lr: factory(lr, warmup_steps=3, weight_decay=0.01)
    batched = jax.vmap(make)(lrs)
    (pb, sb), xb = jax.jit(jax.vmap(_train, in_axes=(0, None)))(batched, params)
    for i, lr in enumerate(lrs):
        (p, s), x = jax.jit(_train)(make(float(lr)), params)
        np.testing.assert_allclose(pb[i], p, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(xb[i], x, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(sb.weight_sum[i], s.weight_sum, rtol=2e-6)


def test_vmap_over_b1_weight_lr_power_and_warmup():
    params = jnp.zeros((3,), jnp.float32)
    b1s = jnp.array([0.5, 0.9, 1.0], jnp.float32)
    rs = jnp.array([0.0, 1.0, 2.0], jnp.float32)
    warmups = jnp.array([1, 4, 16], jnp.int32)
    make = lambda b, r, w: schedule_free_sgd(0.1, warmup_steps=w, b1=b, weight_lr_power=r)
    batched = jax.vmap(make)(b1s, rs, warmups)
    (pb, _), _ = jax.jit(jax.vmap(_train, in_axes=(0, None)))(batched, params)
    for i in range(3):
        (p, _), _ = jax.jit(_train)(make(float(b1s[i]), float(rs[i]), int(warmups[i])), params)
        np.testing.assert_allclose(pb[i], p, rtol=2e-6, atol=1e-7)


def test_dtypes_and_none_leaves():
    for dt in (jnp.float32, jnp.bfloat16, jnp.float64, jnp.complex64):
        params = jnp.zeros((3,), dt)
        for opt in (schedule_free_sgd(0.1), schedule_free_adamw(0.01, warmup_steps=2, weight_decay=0.01)):
            (p, s), x = jax.jit(_train)(opt, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(p, params)
            chex.assert_trees_all_equal_shapes_and_dtypes(jax.tree.map(lambda v: v[-1], x), params)
            assert s.max_lr.dtype == jnp.finfo(dt).dtype  # real scalars, complex params too
    params = {"a": jnp.ones((2,)), "frozen": None}
    opt = schedule_free_sgd(0.1)
    u, s = opt.update({"a": jnp.ones((2,)), "frozen": None}, opt.init(params), params)
    assert u["frozen"] is None and s.z["frozen"] is None
    assert schedule_free_eval_params(s, params)["frozen"] is None


def test_wraps_an_optax_base():
    opt = schedule_free(optax.sgd(0.1), 0.1)
    p = jnp.array([1.0, 2.0])
    u, _s = opt.update(p, opt.init(p), p)
    ref = schedule_free(gx.sgd(0.1), 0.1)
    u2, _ = ref.update(p, ref.init(p), p)
    np.testing.assert_allclose(u, u2, rtol=1e-12)
    assert isinstance(schedule_free_sgd(), ScheduleFree)


# ----- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: schedule_free_sgd(b1=0.0), r"gx\.schedule_free_sgd: `b1` must be in \(0, 1\], got 0\.0"),
        (lambda: schedule_free_sgd(b1=1.5), r"gx\.schedule_free_sgd: `b1` must be in \(0, 1\], got 1\.5"),
        (lambda: schedule_free_sgd(learning_rate=-0.1), r"gx\.schedule_free_sgd: `learning_rate` must be >= 0"),
        (lambda: schedule_free_sgd(weight_decay=-1.0), r"gx\.schedule_free_sgd: `weight_decay` must be >= 0"),
        (lambda: schedule_free_sgd(weight_lr_power=-2.0), r"gx\.schedule_free_sgd: `weight_lr_power` must be >= 0"),
        (lambda: schedule_free_sgd(warmup_steps=0), r"gx\.schedule_free_sgd: `warmup_steps` must be an integer in \[1, 2\*\*31\)"),
        (lambda: schedule_free_adamw(warmup_steps=2.5), r"gx\.schedule_free_adamw: `warmup_steps` must be an integer in \[1"),
        (lambda: schedule_free_adamw(b2=1.0), r"gx\.schedule_free_adamw: `b2` must be in \[0, 1\)"),
        (lambda: schedule_free_adamw(eps=-1e-8), r"gx\.schedule_free_adamw: `eps` must be > 0"),
        (lambda: schedule_free_adamw(b1=-0.1), r"gx\.schedule_free_adamw: `b1` must be in \(0, 1\]"),
        (lambda: schedule_free(gx.sgd(0.1), 0.1, b1=0.0), r"gx\.schedule_free: `b1` must be in \(0, 1\]"),
        (lambda: schedule_free(gx.sgd(0.1), -1.0), r"gx\.schedule_free: `learning_rate` must be >= 0"),
    ],
)
def test_bad_values_rejected_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types_and_calls():
    with pytest.raises(TypeError, match=r"gx\.schedule_free: expected gradient transformations"):
        schedule_free(0.1, 0.1)
    with pytest.raises(TypeError, match=r"gx\.schedule_free: `b1` cannot be a schedule"):
        schedule_free(gx.sgd(0.1), 0.1, b1=lambda n: 0.9)
    with pytest.raises(TypeError, match=r"gx\.schedule_free_sgd: `learning_rate` must be a number or an array"):
        schedule_free_sgd(gx.constant_schedule(0.1), warmup_steps=3)
    with pytest.raises(TypeError, match=r"gx\.schedule_free_adamw: `warmup_steps` cannot be a schedule"):
        schedule_free_adamw(warmup_steps=lambda n: 3)
    opt = schedule_free_sgd(0.1)
    p = jnp.ones((2,))
    with pytest.raises(ValueError, match=r"gx\.schedule_free: this transformation needs the current parameters"):
        opt.update(p, opt.init(p))
    with pytest.raises(ValueError, match=r"gx\.schedule_free_eval_params: `state` must be a ScheduleFreeState"):
        schedule_free_eval_params((opt.init(p),), p)
    # Traced values are not checked (sweeps), and a schedule for the learning rate is fine.
    jax.jit(lambda b: schedule_free_sgd(0.1, b1=b))(jnp.asarray(0.9))
    schedule_free_sgd(gx.constant_schedule(0.1))
