"""Prodigy, D-Adapt AdamW, DoG, DoWG and COCOB (optax.contrib's parameter-free optimizers).

Parity follows tests/test_parity.py (random nested pytrees, random hyperparameters,
100 steps, updates and state leaves at three steps; float64 rtol 1e-6, float32 1e-5),
with optax built inside ``jit`` from traced hyperparameters (as tests/test_zoo_lbfgs.py's
``_check``: both programs then see runtime values) and float32 compared without x64
(under x64 optax makes some float32 scalars float64). Then a closed form or an invariant
per method, one trace for new values of every numeric hyperparameter, ``vmap`` over
three configurations against three runs, and bad input named at construction.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from optax.contrib import (
    _dog as optax_dog,  # scale_by_dog and scale_by_dowg are not exported
)
from test_parity import STEPS, STRUCTURES, _random_tree, _scan, assert_same_trajectories

import gradtx as gx
from gradtx.optimizers.parameter_free import cocob, dadapt_adamw, dog, dowg, prodigy
from gradtx.transforms.parameter_free import ProdigyState
from gradtx.transforms.parameter_free_scaling import (
    COCOBState,
    DoGState,
    DoWGState,
    scale_by_cocob,
    scale_by_dog,
    scale_by_dowg,
)

EXAMPLES = 2  # per case and dtype: each example compiles optax anew
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
DTYPES = pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    make: Callable[..., Any]  # (lib, **numbers, **fixed) -> transformation
    numbers: dict  # traced hyperparameters: name -> strategy
    fixed: dict = dataclasses.field(default_factory=dict)  # static ones: name -> strategy


def _prodigy(lib, b1, b2, beta3=None, **kw):
    return (prodigy if lib is gx else optax.contrib.prodigy)(betas=(b1, b2), beta3=beta3, **kw)


def _dadapt(lib, b1, b2, **kw):
    return (dadapt_adamw if lib is gx else optax.contrib.dadapt_adamw)(betas=(b1, b2), **kw)


def _descend(lib, tx):
    # scale_by_dog and scale_by_dowg point along the gradient: descend for the quadratic.
    return lib.chain(tx, lib.scale(-1.0))


def _scale_by_dog(lib, tag, value, **kw):
    return _descend(lib, (scale_by_dog if lib is gx else optax_dog.scale_by_dog)((tag, value), **kw))


def _scale_by_dowg(lib, **kw):
    return _descend(lib, (scale_by_dowg if lib is gx else optax_dog.scale_by_dowg)(**kw))


def _dog(lib, tag, value, **kw):
    return (dog if lib is gx else optax.contrib.dog)(init_step=(tag, value), **kw)


def _pick(gx_fn, optax_fn):
    return lambda lib, **kw: (gx_fn if lib is gx else optax_fn)(**kw)


BETAS = {"b1": st.floats(0.0, 0.95), "b2": st.floats(0.9, 0.9999)}
MULT = st.floats(0.1, 1.5)
TAG = st.sampled_from(["heuristic", "distance", "learning_rate"])

CASES = [
    Case("prodigy", _prodigy,
         {**BETAS, "learning_rate": MULT, "eps": st.floats(1e-8, 1e-6), "estim_lr0": st.floats(1e-7, 1e-3),
          "estim_lr_coef": st.floats(0.5, 2.0), "weight_decay": st.floats(0.0, 0.1),
          "beta3": st.one_of(st.none(), st.floats(0.5, 0.99))},
         {"safeguard_warmup": st.booleans()}),
    Case("dadapt_adamw", _dadapt,
         {**BETAS, "learning_rate": MULT, "eps": st.floats(1e-8, 1e-6), "estim_lr0": st.floats(1e-7, 1e-3),
          "weight_decay": st.floats(0.0, 0.1)}),
    Case("scale_by_dog", _scale_by_dog, {"value": st.floats(1e-6, 1e-2), "eps": st.floats(1e-10, 1e-6)}, {"tag": TAG}),
    Case("dog", _dog,
         {"learning_rate": MULT, "value": st.floats(1e-6, 1e-2), "eps": st.floats(1e-10, 1e-6),
          "weight_decay": st.one_of(st.none(), st.floats(0.0, 0.1))},
         {"tag": TAG}),
    Case("scale_by_dowg", _scale_by_dowg,
         {"init_estim_sq_dist": st.one_of(st.none(), st.floats(1e-6, 1.0)), "eps": st.floats(1e-6, 1e-3)}),
    Case("dowg", _pick(dowg, optax.contrib.dowg),
         {"learning_rate": MULT, "init_estim_sq_dist": st.one_of(st.none(), st.floats(1e-6, 1.0)),
          "eps": st.floats(1e-6, 1e-3), "weight_decay": st.one_of(st.none(), st.floats(0.0, 0.1))}),
    Case("scale_by_cocob", _pick(scale_by_cocob, optax.contrib.scale_by_cocob),
         {"alpha": st.floats(1.0, 200.0), "eps": st.floats(1e-8, 1e-4)}),
    Case("cocob", _pick(cocob, optax.contrib.cocob),
         {"learning_rate": MULT, "alpha": st.floats(1.0, 200.0), "eps": st.floats(1e-8, 1e-4),
          "weight_decay": st.floats(0.0, 0.1)}),
]


def _scan_quadratic(tx, params, target, noise):
    """``_scan`` on a noisy quadratic: the gradient at ``p`` is ``p - target + noise_t``.

    Gradients that do not depend on the params (test_parity's) never let a distance
    estimate grow past its start, so they would test Prodigy's and D-Adaptation's
    estimates at their initial values only; a constant gradient makes them diverge.
    """

    def step(carry, n):
        params, state = carry
        g = jax.tree.map(lambda p, t, e: p - t + e, params, target, n)
        u, state = tx.update(g, state, params)
        params = jax.tree.map(lambda p, v: (p + v).astype(p.dtype), params, u)
        return (params, state), (u, state)

    return jax.lax.scan(step, (params, tx.init(params)), noise)[1]


_run_gx = jax.jit(_scan)
_run_gx_quadratic = jax.jit(_scan_quadratic)


@DTYPES
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax_contrib(c: Case, dtype, rtol):
    @settings(max_examples=EXAMPLES, deadline=None, phases=NO_SHRINK)
    @given(hp=st.fixed_dictionaries(c.numbers), fixed=st.fixed_dictionaries(c.fixed),
           which=st.integers(0, len(STRUCTURES) - 1), seed=st.integers(0, 2**16))
    def check(hp, fixed, which, seed):
        rng = np.random.default_rng(seed)
        with jax.enable_x64(dtype == jnp.float64):
            params = _random_tree(STRUCTURES[which], rng, dtype)
            target = _random_tree(STRUCTURES[which], rng, dtype)
            noise = jax.tree.map(lambda *xs: 0.1 * jnp.stack(xs),
                                 *[_random_tree(STRUCTURES[which], rng, dtype) for _ in range(STEPS)])
            numbers = {k: jnp.asarray(v) for k, v in hp.items() if v is not None}
            nones = {k: None for k, v in hp.items() if v is None}
            ours = _run_gx_quadratic(c.make(gx, **numbers, **nones, **fixed), params, target, noise)
            theirs = jax.jit(lambda n, p, t, e: _scan_quadratic(c.make(optax, **n, **nones, **fixed), p, t, e))(
                numbers, params, target, noise)
            assert_same_trajectories(ours, theirs, dtype, rtol)

    check()


# ----------------------------------------------------------------------------- closed forms


def _run(opt, params, grads):
    """Updates and states of a jitted run on a fixed gradient sequence."""
    return _run_gx(opt, params, grads)


def _grads(rng, shape=(5,), steps=30, dtype=jnp.float64):
    return jnp.asarray(rng.standard_normal((steps, *shape)), dtype)


def test_prodigy_first_step_and_d_never_decreases():
    rng = np.random.default_rng(0)
    x0 = jnp.asarray(rng.standard_normal(5))
    g = jnp.asarray(rng.standard_normal(5))
    lr, d0, b1, b2, eps = 0.7, 1e-3, 0.8, 0.99, 1e-8
    opt = prodigy(lr, betas=(b1, b2), eps=eps, estim_lr0=d0)
    u, state = opt.update(g, opt.init(x0), x0)
    # m = (1-b1) d0 g, v = (1-b2) d0^2 g^2, and x = x0 so d stays d0:
    expected = -lr * d0 * np.sqrt(1 - b2) * g / (np.sqrt(1 - b2) * np.abs(g) + eps)
    np.testing.assert_allclose(u, expected, rtol=1e-12)
    assert float(state.estim_lr) == d0
    # Along a run (here on f(x) = |x|^2 / 2), d never decreases, and it grows from d0.
    x, s, ds = x0, opt.init(x0), []
    for _ in range(50):
        u, s = opt.update(x, s, x)
        x = gx.apply_updates(x, u)
        ds.append(float(s.estim_lr))
    assert all(b >= a for a, b in itertools.pairwise(ds))
    assert ds[-1] > 10 * d0


def test_dadapt_first_step_and_d_never_decreases():
    rng = np.random.default_rng(1)
    x0 = jnp.asarray(rng.standard_normal(5))
    g = jnp.asarray(rng.standard_normal(5))
    lr, d0, b1, b2, eps = 0.7, 1e-3, 0.8, 0.99, 1e-8
    opt = dadapt_adamw(lr, betas=(b1, b2), eps=eps, estim_lr0=d0)
    u, state = opt.update(g, opt.init(x0), x0)
    dlr = d0 * lr * np.sqrt(1 - b2) / (1 - b1)
    np.testing.assert_allclose(u, -(1 - b1) * dlr * g / (np.sqrt(1 - b2) * np.abs(g) + eps), rtol=1e-12)
    assert float(state.estim_lr) == d0  # s_0 = 0: no estimate on the first step
    x, s, ds = x0, opt.init(x0), []
    for _ in range(100):
        u, s = opt.update(x, s, x)
        x = gx.apply_updates(x, u)
        ds.append(float(s.estim_lr))
    assert all(b >= a for a, b in itertools.pairwise(ds))
    assert ds[-1] > 10 * d0


@pytest.mark.parametrize("make", [prodigy, dadapt_adamw], ids=["prodigy", "dadapt_adamw"])
def test_zero_gradients_keep_d_finite(make):
    # optax's 0/0 makes d NaN for good after an all-zero first gradient; here d stays d0.
    opt = make()
    x = jnp.ones(3)
    u, s = opt.update(jnp.zeros(3), opt.init(x), x)
    assert float(s.estim_lr) == 1e-6 and np.all(np.asarray(u) == 0)
    u, s = opt.update(jnp.ones(3), s, x)
    assert np.all(np.isfinite(np.asarray(u))) and np.isfinite(float(s.estim_lr))


def test_dog_first_step_is_reps_rel_times_one_plus_norm_over_grad_norm():
    rng = np.random.default_rng(2)
    x0 = {"a": jnp.asarray(rng.standard_normal(3)), "b": jnp.asarray(rng.standard_normal((2, 2)))}
    g = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), x0)
    alpha, lr, eps = 1e-3, 0.5, 1e-10
    norm = lambda t: np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in jax.tree.leaves(t)))
    opt = dog(lr, init_step=("heuristic", alpha), eps=eps)
    u, _ = opt.update(g, opt.init(x0), x0)
    step = alpha * (1 + norm(x0)) / np.sqrt(norm(g) ** 2 + eps)
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
        np.testing.assert_allclose(a, -lr * step * b, rtol=1e-12)
    # "distance": r_0 is the value; "learning_rate": the first step is the value times g.
    opt = dog(lr, init_step=("distance", 0.3), eps=eps)
    u, _ = opt.update(g, opt.init(x0), x0)
    np.testing.assert_allclose(u["a"], -lr * 0.3 / np.sqrt(norm(g) ** 2 + eps) * g["a"], rtol=1e-12)
    opt = dog(lr, init_step=("learning_rate", 0.3), eps=eps)
    u, s = opt.update(g, opt.init(x0), x0)
    np.testing.assert_allclose(u["a"], -lr * 0.3 * g["a"], rtol=1e-12)
    assert not bool(s[1].is_init_step)


def test_dog_and_dowg_distances_never_decrease():
    rng = np.random.default_rng(3)
    x0 = jnp.asarray(rng.standard_normal(4))
    grads = _grads(rng, (4,), 40)
    _, states = _run(dog(init_step=("distance", 1e-3)), x0, grads)
    r = np.asarray(states[1].max_dist)
    assert np.all(np.diff(r) >= 0) and r[-1] > 1e-3
    assert np.all(np.diff(np.asarray(states[1].sum_sq_norm_grads)) > 0)
    _, states = _run(dowg(), x0, grads)
    r2 = np.asarray(states[1].estim_sq_dist)
    assert np.all(np.diff(r2) >= 0) and r2[-1] > 1e-4


def test_dowg_first_step():
    x0 = jnp.array([1.0, -1.0])
    g = jnp.array([3.0, 4.0])
    r2, eps = 0.25, 1e-12
    u, s = scale_by_dowg(r2, eps).update(g, scale_by_dowg(r2, eps).init(x0), x0)
    np.testing.assert_allclose(u, r2 / (np.sqrt(r2) * 5.0 + eps) * g, rtol=1e-12)
    np.testing.assert_allclose(s.weighted_sq_norm_grads, r2 * 25.0, rtol=1e-12)


def test_cocob_first_step_and_reward_nonnegative():
    x0 = jnp.array([1.0, -2.0, 0.5])
    g = jnp.array([2.0, -0.5, 1e-3])
    for alpha in (1.0, 10.0, 100.0):
        tx = scale_by_cocob(alpha)
        u, _ = tx.update(g, tx.init(x0), x0)
        np.testing.assert_allclose(u, -np.sign(g) / max(2.0, alpha), rtol=1e-6)
    rng = np.random.default_rng(4)
    _, states = _run(cocob(), x0, _grads(rng, (3,), 50))
    st_ = states[-1]
    assert np.all(np.asarray(st_.reward) >= 0)
    assert np.all(np.diff(np.asarray(st_.scale), axis=0) >= 0)


# ----------------------------------------------------------------------------- leaves, not constants

# Per optimizer: a factory from numbers (every numeric hyperparameter) and three configurations.
SWEEPS = {
    "prodigy": (lambda lr, b1, b2, b3, eps, d0, coef, wd: prodigy(lr, (b1, b2), b3, eps, d0, coef, wd),
                [(1.0, 0.9, 0.999, 0.95, 1e-8, 1e-6, 1.0, 0.0), (0.5, 0.8, 0.99, 0.9, 1e-6, 1e-4, 0.5, 0.01),
                 (1.5, 0.5, 0.9, 0.99, 1e-7, 1e-3, 2.0, 0.1)]),
    "dadapt_adamw": (lambda lr, b1, b2, eps, d0, wd: dadapt_adamw(lr, (b1, b2), eps, d0, wd),
                     [(1.0, 0.9, 0.999, 1e-8, 1e-6, 0.0), (0.5, 0.8, 0.99, 1e-6, 1e-4, 0.01),
                      (1.5, 0.5, 0.9, 1e-7, 1e-3, 0.1)]),
    "dog": (lambda lr, v, eps, wd: dog(lr, ("heuristic", v), eps, wd),
            [(1.0, 1e-6, 1e-8, 0.0), (0.5, 1e-3, 1e-6, 0.01), (1.5, 1e-2, 1e-10, 0.1)]),
    "dowg": (lambda lr, r2, eps, wd: dowg(lr, r2, eps, wd),
             [(1.0, 1e-4, 1e-4, 0.0), (0.5, 1e-2, 1e-3, 0.01), (1.5, 1.0, 1e-6, 0.1)]),
    "cocob": (lambda lr, alpha, eps, wd: cocob(lr, alpha, eps, wd),
              [(1.0, 100.0, 1e-8, 0.0), (0.5, 10.0, 1e-6, 0.01), (1.5, 1.0, 1e-4, 0.1)]),
}


def _params():
    return {"a": jnp.array([0.5, -1.0, 2.0], jnp.float32), "b": jnp.array([[1.0, 0.0], [-0.5, 0.25]], jnp.float32)}


def _quadratic_run(opt, params, steps=15):
    def step(carry, _):
        p, s = carry
        g = jax.tree.map(lambda x: 2.0 * (x - 0.3), p)
        u, s = opt.update(g, s, p)
        return (gx.apply_updates(p, u), s), p

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)


@pytest.mark.parametrize("name", list(SWEEPS))
def test_one_trace_for_every_hyperparameter_and_vmap_equals_runs(name):
    make, configs = SWEEPS[name]
    traces = 0

    def run(opt, params):
        nonlocal traces
        traces += 1
        return _quadratic_run(opt, params)

    jitted = jax.jit(run)
    params = _params()
    with jax.enable_x64(False):
        singles = [jitted(make(*cfg), params) for cfg in configs]
        assert traces == 1, f"{name}: new hyperparameter values retraced"
        columns = [jnp.asarray(col, jnp.float32) for col in zip(*configs)]
        batched = jax.vmap(lambda *numbers: make(*numbers))(*columns)
        out = jax.jit(jax.vmap(_quadratic_run, in_axes=(0, None)))(batched, params)
    for i, single in enumerate(singles):
        run_i = jax.tree.map(lambda x, i=i: x[i], out)
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(run_i)):
            np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=2e-5, atol=1e-6,
                                       err_msg=f"{name} config {i}")


def test_schedules_are_leaves_too():
    # A learning-rate schedule (prodigy's recommended use) traces once for new schedule numbers.
    traces = 0

    @jax.jit
    def run(opt, params):
        nonlocal traces
        traces += 1
        return _quadratic_run(opt, params)

    for peak in (1.0, 0.5):
        run(prodigy(gx.linear_schedule(peak, 0.0, 100)), _params())
        run(dog(gx.linear_schedule(peak, 0.0, 100)), _params())
    assert traces == 2


def test_states_are_optax_named_tuples():
    x = _params()
    assert ProdigyState._fields == optax.contrib.ProdigyState._fields
    assert isinstance(prodigy().init(x), ProdigyState)
    assert DoGState._fields[:4] == optax.contrib.DoGState._fields
    assert DoWGState._fields[:3] == optax.contrib.DoWGState._fields
    assert COCOBState._fields[:5] == optax.contrib.COCOBState._fields
    assert dog().init(x)[1].count is None  # the count exists only for schedules


# ----------------------------------------------------------------------------- bad input

BAD = [
    (lambda: prodigy(eps=0.0), "gx.prodigy: `eps` must be > 0"),
    (lambda: prodigy(betas=(0.9, 1.0)), "gx.prodigy: `betas` must be in \\[0, 1\\)"),
    (lambda: prodigy(beta3=-0.1), "gx.prodigy: `beta3` must be in \\[0, 1\\)"),
    (lambda: prodigy(betas=(0.9,)), "gx.prodigy: `betas` must be a pair"),
    (lambda: prodigy(estim_lr0=0.0), "gx.prodigy: `estim_lr0` must be > 0"),
    (lambda: prodigy(estim_lr_coef=-1.0), "gx.prodigy: `estim_lr_coef` must be > 0"),
    (lambda: prodigy(learning_rate=-1.0), "gx.prodigy: `learning_rate` must be >= 0"),
    (lambda: prodigy(weight_decay=-0.1), "gx.prodigy: `weight_decay` must be >= 0"),
    (lambda: dadapt_adamw(estim_lr0=-1.0), "gx.dadapt_adamw: `estim_lr0` must be > 0"),
    (lambda: dadapt_adamw(betas=(1.5, 0.9)), "gx.dadapt_adamw: `betas` must be in \\[0, 1\\)"),
    (lambda: dog(init_step=("sqrt", 1e-6)), "gx.dog: `init_step` must be a pair \\(tag, value\\) with tag one of"),
    (lambda: dog(init_step=("heuristic", -1.0)), "gx.dog: `init_step` must be > 0"),
    (lambda: dog(init_step=1e-6), "gx.dog: `init_step` must be a pair"),
    (lambda: dog(eps=-1.0), "gx.dog: `eps` must be >= 0"),
    (lambda: dog(learning_rate=-1.0), "gx.dog: `learning_rate` must be >= 0"),
    (lambda: scale_by_dog(("distance", 0.0)), "gx.scale_by_dog: `init_step` must be > 0"),
    (lambda: dowg(init_estim_sq_dist=0.0), "gx.dowg: `init_estim_sq_dist` must be > 0"),
    (lambda: dowg(eps=0.0), "gx.dowg: `eps` must be > 0"),
    (lambda: dowg(weight_decay=-1.0), "gx.dowg: `weight_decay` must be >= 0"),
    (lambda: cocob(alpha=0.0), "gx.cocob: `alpha` must be > 0"),
    (lambda: cocob(eps=0.0), "gx.cocob: `eps` must be > 0"),
    (lambda: scale_by_cocob(alpha=-1.0), "gx.scale_by_cocob: `alpha` must be > 0"),
]


@pytest.mark.parametrize("build,message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_named_at_construction(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_betas_cannot_be_schedules():
    with pytest.raises(TypeError, match="gx.prodigy: `betas` must be numbers or arrays, not schedules"):
        prodigy(betas=(lambda c: 0.9, 0.999))


@pytest.mark.parametrize("make", [prodigy, dadapt_adamw, dog, dowg, cocob])
def test_mixed_dtype_tree_keeps_state_dtypes(make):
    # The scalars of the state take the params' lowest dtype (as optax's); leaves keep their own.
    params = {"a": jnp.ones(3, jnp.float32), "b": jnp.full((2,), 0.5, jnp.float64), "c": jnp.ones(2, jnp.bfloat16)}
    opt = make()
    state0 = opt.init(params)
    step = jax.jit(lambda p, s: opt.update(jax.tree.map(lambda x: x - 0.25, p), s, p))
    u, state = step(params, state0)
    u, state = step(gx.apply_updates(params, u), state)
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, params)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), state) == jax.tree.map(lambda x: (x.shape, x.dtype), state0)


@pytest.mark.parametrize("make", [prodigy, dadapt_adamw, dog, dowg, cocob])
def test_update_needs_params(make):
    opt = make()
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="needs the current parameters"):
        opt.update(x, opt.init(x))
