"""Polyak, Rprop, Fromage and DoG: parity with optax, closed forms, and bad input.

Parity follows tests/test_parity.py (random nested pytrees, random hyperparameters,
100 steps, updates and state leaves at three steps; float64 rtol 1e-6, float32 1e-5),
with the loss ``value`` passed to every update where Polyak needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parity import (
    EXAMPLES,
    LR,
    STEPS,
    STRUCTURES,
    _at,
    _random_tree,
    _run_gx,
    _run_optax,
    _sorted_named,
)

import gradtx as gx

# optax's DoG turns a scalar leaf's update into shape (1,) (its sum of squares is a (1,)
# array), which breaks its own scan carry: compare it on trees without scalar leaves.
NO_SCALARS = [
    STRUCTURES[0],
    lambda r: {"layers": [r((2, 2)), r((3,))], "head": {"k": r((1, 3))}},
]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    gx_fn: Callable[..., Any]
    optax_fn: Callable[..., Any]
    hypers: dict
    with_value: bool = False
    structures: tuple = tuple(STRUCTURES)
    # optax computes some float32 results in float64 under x64 (a strongly typed
    # jnp.array(0.0) in Polyak's step, jnp.zeros(1) in DoG): compare values only.
    same_dtype: bool = True
    # optax 0.2.8's Rprop emits the previous step's update (google-deepmind/optax#1725);
    # gradtx emits the current one, which is optax's new state `prev_updates` (times this sign).
    current_from_state: float | None = None


def _scan_v(tx, params, grads, values):
    def step(carry, gv):
        params, state = carry
        g, v = gv
        u, state = tx.update(g, state, params, value=v)
        params = jax.tree.map(lambda p, w: (p + w).astype(p.dtype), params, u)
        return (params, state), (u, state)

    return jax.lax.scan(step, (params, tx.init(params)), (grads, values))[1]


_run_gx_v = jax.jit(_scan_v)


def _run_optax_v(tx, params, grads, values):
    return jax.jit(lambda p, g, v: _scan_v(tx, p, g, v))(params, grads, values)


POLYAK = {"f_min": st.floats(-1.0, 1.0), "max_learning_rate": st.floats(0.01, 2.0), "eps": st.floats(0.0, 1e-2),
          "variant": st.sampled_from(["sps", "sps+"])}
RPROP = {"learning_rate": LR, "eta_minus": st.floats(0.1, 0.9), "eta_plus": st.floats(1.0, 1.5),
         "min_step_size": st.floats(1e-6, 1e-3), "max_step_size": st.floats(0.5, 50.0)}

CASES = [
    Case("scale_by_polyak", gx.scale_by_polyak, optax.scale_by_polyak, POLYAK, with_value=True, same_dtype=False),
    Case("polyak_sgd", gx.polyak_sgd, optax.polyak_sgd, {**POLYAK, "scaling": st.floats(0.1, 2.0)},
         with_value=True, same_dtype=False),
    Case("scale_by_rprop", gx.scale_by_rprop, optax.scale_by_rprop, RPROP, current_from_state=1.0),
    Case("rprop", gx.rprop, optax.rprop, RPROP, current_from_state=-1.0),
    Case("fromage", gx.fromage, optax.fromage, {"learning_rate": LR, "min_norm": st.floats(0.0, 1e-3)}),
    Case("scale_by_distance_over_gradients", gx.scale_by_distance_over_gradients,
         optax.scale_by_distance_over_gradients,
         {"reps_rel": st.floats(1e-6, 1e-2), "eps": st.floats(1e-10, 1e-6), "global_scale": st.floats(-1.5, 1.5)},
         structures=tuple(NO_SCALARS), same_dtype=False),
]


def _rprop_state(state):
    return state if isinstance(state, optax.ScaleByRpropState) else state[0]


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax(c: Case, dtype, rtol):
    @settings(max_examples=EXAMPLES)
    @given(hp=st.fixed_dictionaries(c.hypers), which=st.integers(0, len(c.structures) - 1), seed=st.integers(0, 2**16))
    def check(hp, which, seed):
        rng = np.random.default_rng(seed)
        structure = c.structures[which]
        params = _random_tree(structure, rng, dtype)
        grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(structure, rng, dtype) for _ in range(STEPS)])
        if c.with_value:
            values = jnp.asarray(rng.uniform(0.0, 5.0, STEPS), dtype)
            ours = _run_gx_v(c.gx_fn(**hp), params, grads, values)
            theirs = _run_optax_v(c.optax_fn(**hp), params, grads, values)
        else:
            ours = _run_gx(c.gx_fn(**hp), params, grads)
            with jax.numpy_rank_promotion("allow"):  # optax's DoG broadcasts (1,) against each leaf
                theirs = _run_optax(c.optax_fn(**hp), params, grads)
        atol = 1e-12 if dtype == jnp.float64 else 1e-6
        for t in (0, STEPS // 2, STEPS - 1):
            ua, ub = jax.tree.leaves(_at(ours[0], t)), jax.tree.leaves(_at(theirs[0], t))
            if c.current_from_state is not None:
                ub = [c.current_from_state * x for x in jax.tree.leaves(_rprop_state(_at(theirs[1], t)).prev_updates)]
            assert len(ua) == len(ub)
            for a, b in zip(ua, ub):
                assert a.dtype == dtype and a.shape == b.shape
                if c.same_dtype:
                    assert a.dtype == b.dtype, (a.dtype, b.dtype)
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"updates, step {t}")
            sa, sb = _sorted_named(_at(ours[1], t)), _sorted_named(_at(theirs[1], t))
            assert [k for k, _ in sa] == [k for k, _ in sb], "state fields differ"
            for (k, a), (_, b) in zip(sa, sb):
                b = b.reshape(a.shape)  # DoG: optax's (1,) sums of squares, ours 0-d
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"state {k}, step {t}")

    check()


# ---------------------------------------------------------------- Polyak


def _tree():
    return {"w": jnp.array([[1.0, -2.0], [0.5, 0.0]]), "b": jnp.array([3.0])}


def test_polyak_closed_form():
    g = _tree()
    sq = 1 + 4 + 0.25 + 9
    tx = gx.scale_by_polyak(f_min=0.5, max_learning_rate=10.0, eps=0.75)
    u, _ = tx.update(g, tx.init(g), value=4.5)
    gamma = (4.5 - 0.5) / (sq + 0.75)
    np.testing.assert_allclose(u["w"], gamma * g["w"], rtol=1e-12)
    np.testing.assert_allclose(u["b"], gamma * g["b"], rtol=1e-12)
    # Capped at max_learning_rate.
    u, _ = gx.scale_by_polyak(max_learning_rate=0.1).update(g, tx.init(g), value=1e6)
    np.testing.assert_allclose(u["b"], 0.1 * g["b"], rtol=1e-12)


def test_polyak_sps_plus_never_ascends_and_zero_gradient_gives_zero():
    g = _tree()
    u, _ = gx.scale_by_polyak(f_min=2.0, variant="sps+").update(g, gx.EmptyState(), value=1.0)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
    u, _ = gx.scale_by_polyak(f_min=2.0, variant="sps").update(g, gx.EmptyState(), value=1.0)
    assert float(u["b"][0]) < 0  # the plain variant steps against the gradient here
    zeros = jax.tree.map(jnp.zeros_like, g)
    u, _ = gx.scale_by_polyak().update(zeros, gx.EmptyState(), value=1.0)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))  # no 0/0


def test_polyak_keeps_dtype_and_schedules_count():
    g = {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(2, jnp.bfloat16)}
    tx = gx.scale_by_polyak(max_learning_rate=gx.exponential_decay(1.0, 10, 0.5))
    state = tx.init(g)
    assert isinstance(state, gx.ScaleByScheduleState)
    u, state = jax.jit(lambda g, s: tx.update(g, s, value=jnp.asarray(2.0, jnp.float32)))(g, state)
    assert u["a"].dtype == jnp.float32 and u["b"].dtype == jnp.bfloat16
    assert int(state.count) == 1


def test_polyak_sgd_converges_on_a_quadratic():
    problem = gx.quadratic((1.0, -2.0), (1.0, 10.0))
    opt = gx.polyak_sgd(max_learning_rate=1.0)

    @jax.jit
    def run(p):
        def step(carry, _):
            p, s = carry
            f, g = jax.value_and_grad(problem.loss)(p)
            u, s = opt.update(g, s, p, value=f)
            return (gx.apply_updates(p, u), s), f

        return jax.lax.scan(step, (p, opt.init(p)), None, length=300)

    (p, _), _ = run(problem.params(jnp.float64))
    assert float(problem.loss(p)) < 1e-8
    np.testing.assert_allclose(np.asarray(p), problem.minimizer, atol=1e-4)


@pytest.mark.parametrize("make", [gx.scale_by_polyak, gx.polyak_sgd], ids=["scale_by_polyak", "polyak_sgd"])
def test_polyak_missing_value_is_a_clear_error(make):
    tx = make()
    g = _tree()
    with pytest.raises(TypeError, match=r"gx.scale_by_polyak: `update` needs the keyword argument `value`.*as_optax"):
        tx.update(g, tx.init(g), g)
    with pytest.raises(ValueError, match="scalar loss"):
        tx.update(g, tx.init(g), g, value=jnp.ones(2))


# ---------------------------------------------------------------- Rprop


def test_rprop_tiny_gradients_still_adapt_the_step():
    # optax's test g * prev underflows to 0 here (1e-36 * 1e-6 in float32), freezing the step.
    tx = gx.scale_by_rprop(learning_rate=1e-6, min_step_size=1e-8)
    g = jnp.full(2, 1e-36, jnp.float32)
    state = tx.init(g)
    _, state = tx.update(g, state)
    u, state = tx.update(g, state)
    np.testing.assert_allclose(state.step_sizes, 1.2e-6, rtol=1e-6)
    np.testing.assert_allclose(u, 1.2e-6, rtol=1e-6)


def test_rprop_emits_the_current_update_not_optaxs_stale_one():
    # The sequence of google-deepmind/optax#1725 (torch.optim.Rprop's numbers); optax 0.2.8
    # gives 0, 0.1, 0.12, 0, 0.
    tx = gx.scale_by_rprop(learning_rate=0.1, eta_minus=0.5, eta_plus=1.2)
    state = tx.init(jnp.zeros(1))
    seen = []
    for g in [1.0, 1.0, 1.0, -1.0, 1.0]:
        u, state = tx.update(jnp.array([g]), state)
        seen.append(float(u[0]))
    np.testing.assert_allclose(seen, [0.1, 0.12, 0.144, 0.0, 0.072], rtol=1e-12)


def test_rprop_skips_the_step_after_a_flip_and_restarts():
    tx = gx.scale_by_rprop(learning_rate=0.1, eta_minus=0.5, eta_plus=2.0, min_step_size=0.01, max_step_size=0.3)
    state = tx.init(jnp.zeros(1))
    seen = []
    for g in [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]:
        u, state = tx.update(jnp.array([g]), state)
        seen.append((float(u[0]), float(state.step_sizes[0])))
    # 0.1 -> 0.2 -> 0.3 (capped); flip: 0.15, skipped; restart keeps 0.15; then 0.3.
    want = [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.0, 0.15), (-0.15, 0.15), (-0.3, 0.3)]
    np.testing.assert_allclose(np.array(seen), np.array(want), rtol=1e-12)


# ---------------------------------------------------------------- Fromage


def test_fromage_moves_a_zero_layer_and_keeps_dtypes():
    lr = 0.5
    opt = gx.fromage(lr)
    params = {"w": jnp.array([3.0, 4.0], jnp.float32), "b": jnp.zeros(2, jnp.bfloat16)}
    grads = {"w": jnp.array([0.0, 1.0], jnp.float32), "b": jnp.ones(2, jnp.bfloat16)}
    u, _ = opt.update(grads, opt.init(params), params)
    mult = 1 / np.sqrt(1 + lr**2)
    np.testing.assert_allclose(u["b"].astype(jnp.float32), -lr * mult * np.ones(2), rtol=1e-2)
    new_w = gx.apply_updates(params, u)["w"]
    np.testing.assert_allclose(new_w, mult * (np.array([3.0, 4.0]) - lr * 5 * np.array([0.0, 1.0])), rtol=1e-6)
    assert u["w"].dtype == jnp.float32 and u["b"].dtype == jnp.bfloat16


# ---------------------------------------------------------------- DoG


def test_dog_first_steps_closed_form():
    tx = gx.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0)
    x0 = {"a": jnp.array([3.0, 4.0]), "s": jnp.asarray(2.0, jnp.float32)}
    g = {"a": jnp.array([1.0, 1.0]), "s": jnp.asarray(0.5, jnp.float32)}
    state = tx.init(x0)
    u, state = tx.update(g, state, x0)
    np.testing.assert_allclose(u["a"], 0.6 * np.array([1.0, 1.0]) / np.sqrt(2))
    np.testing.assert_allclose(u["s"], 0.3 * 0.5 / 0.5, rtol=1e-6)
    assert u["s"].shape == () and u["s"].dtype == jnp.float32  # optax: shape (1,), float64
    x1 = {"a": x0["a"] + jnp.array([0.0, 2.0]), "s": x0["s"]}
    u, state = tx.update(g, state, x1)  # r = max(0.6, 2) = 2, G = 4
    np.testing.assert_allclose(u["a"], 2.0 * np.array([1.0, 1.0]) / 2.0)
    np.testing.assert_allclose(state.max_dist["a"], 2.0)


def test_dog_zero_gradients_with_eps_zero_give_zero_not_nan():
    tx = gx.scale_by_distance_over_gradients(eps=0.0)
    x = jnp.ones(3)
    u, _ = tx.update(jnp.zeros(3), tx.init(x), x)
    np.testing.assert_array_equal(u, np.zeros(3))


def test_dog_needs_params():
    tx = gx.scale_by_distance_over_gradients()
    with pytest.raises(ValueError, match="gx.scale_by_distance_over_gradients: .*params"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_dog_vmaps_over_global_scale():
    x = jnp.ones(2, jnp.float32)
    scales = jnp.array([1.0, -1.0], jnp.float32)
    txs = jax.vmap(lambda s: gx.scale_by_distance_over_gradients(global_scale=s))(scales)
    u = jax.vmap(lambda tx: tx.update(x, tx.init(x), x)[0])(txs)
    np.testing.assert_allclose(u[0], -u[1])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gx.scale_by_polyak(variant="spsx"), "gx.scale_by_polyak: `variant`"),
        (lambda: gx.scale_by_polyak(max_learning_rate=-1.0), "gx.scale_by_polyak: `max_learning_rate` must be >= 0"),
        (lambda: gx.polyak_sgd(eps=-1.0), "gx.polyak_sgd: `eps` must be >= 0"),
        (lambda: gx.polyak_sgd(scaling=-1.0), "gx.polyak_sgd: `scaling` must be >= 0"),
        (lambda: gx.scale_by_rprop(0.1, eta_plus=0.5), "gx.scale_by_rprop: `eta_plus` must be >= 1, got 0.5"),
        (lambda: gx.rprop(0.1, eta_minus=2.0), "gx.rprop: `eta_minus` must be in \\[0, 1\\]"),
        (lambda: gx.rprop(-0.1), "gx.rprop: `learning_rate` must be >= 0"),
        (lambda: gx.rprop(0.1, min_step_size=1.0, max_step_size=0.5), "`min_step_size` must be <= `max_step_size`"),
        (lambda: gx.fromage(-1.0), "gx.fromage: `learning_rate` must be >= 0"),
        (lambda: gx.fromage(0.1, min_norm=-1.0), "gx.fromage: `min_norm` must be >= 0"),
        (lambda: gx.scale_by_distance_over_gradients(reps_rel=0.0), "`reps_rel` must be > 0"),
        (lambda: gx.scale_by_distance_over_gradients(eps=-1.0), "`eps` must be >= 0"),
    ],
)
def test_bad_input_names_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_polyak_sgd_one_trace_and_vmap_over_max_learning_rate():
    traces = 0
    params = {"a": jnp.array([1.0, -2.0], jnp.float32)}

    @jax.jit
    def step(opt, p):
        nonlocal traces
        traces += 1
        value, g = jax.value_and_grad(lambda q: jnp.sum(q["a"] ** 2))(p)
        return opt.update(g, opt.init(p), p, value=value)[0]

    for m in (0.01, 0.1, 1.0):
        step(gx.polyak_sgd(max_learning_rate=m, scaling=0.5), params)
    assert traces == 1
    ms = jnp.array([0.01, 0.1, 1.0], jnp.float32)
    batched = jax.vmap(step, in_axes=(0, None))(jax.vmap(lambda m: gx.polyak_sgd(max_learning_rate=m))(ms), params)
    for i, m in enumerate(ms):
        np.testing.assert_allclose(batched["a"][i], step(gx.polyak_sgd(max_learning_rate=float(m)), params)["a"], rtol=1e-6)


def test_dog_param_dtype_none_keeps_the_params_dtype():
    x = {"a": jnp.ones(2, jnp.float64), "b": jnp.ones(2, jnp.bfloat16)}
    state = gx.scale_by_distance_over_gradients(param_dtype=None).init(x)
    assert state.init_params["a"].dtype == jnp.float64 and state.init_params["b"].dtype == jnp.bfloat16
    state = gx.scale_by_distance_over_gradients().init(x)  # optax's default: float32 copies
    assert state.init_params["a"].dtype == jnp.float32
    assert state.max_dist["b"].dtype == jnp.bfloat16 and state.grad_sum_of_squares["b"].dtype == jnp.bfloat16
