"""The sign family and its neighbours from the optimizer zoo (issue 15).

Parity with optax on random nested pytrees (test_parity's harness), closed
forms, and bad input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import strategies as st
from test_parity import (
    LR,
    STEPS,
    STRUCTURES,
    _at,
    _mask,
    _random_tree,
    _run_gx,
    _run_optax,
    _sorted_named,
    case,
)
from test_parity import check_parity as _check_parity

import gradtx as gx

UNIT_CLOSED = st.floats(0.0, 1.0)

CASES = [
    case("scale_by_lion", gx.scale_by_lion, b1=UNIT_CLOSED, b2=UNIT_CLOSED),
    case("scale_by_lion_smooth", gx.scale_by_lion, optax.scale_by_lion, fixed={"mode": "smooth"},
         b1=UNIT_CLOSED, b2=UNIT_CLOSED, smooth_beta=st.floats(0.1, 5.0)),
    case("scale_by_lion_refined", gx.scale_by_lion, optax.scale_by_lion, fixed={"mode": "refined"},
         b1=UNIT_CLOSED, b2=UNIT_CLOSED),
    case("lion", gx.lion, needs_params=True, learning_rate=LR, b1=UNIT_CLOSED, b2=UNIT_CLOSED,
         weight_decay=st.floats(0.0, 0.1)),
    case("lion_masked", gx.lion, optax.lion, needs_params=True, fixed={"mask": _mask}, learning_rate=LR,
         weight_decay=st.floats(0.0, 0.1)),
    case("sign_sgd", gx.sign_sgd, learning_rate=LR),
    case("signum", gx.signum, learning_rate=LR, beta=st.floats(0.0, 0.99)),
    case("centralize", gx.centralize),
    case("normalize_by_update_norm", gx.normalize_by_update_norm,
         scale_factor=st.one_of(st.floats(-2.0, -0.1), st.floats(0.1, 2.0)), eps=st.floats(0.0, 1e-3)),
    case("scale_by_param_block_norm", gx.scale_by_param_block_norm, needs_params=True, min_scale=st.floats(1e-4, 2.0)),
    case("scale_by_param_block_rms", gx.scale_by_param_block_rms, needs_params=True, min_scale=st.floats(1e-4, 1.5)),
    case("apply_every", gx.apply_every, k=st.integers(1, 4)),
]


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax(c, dtype, rtol):
    _check_parity(c, dtype, rtol)


def _steps(tx, grads, params=None):
    state = tx.init(grads[0] if params is None else params)
    out = []
    for g in grads:
        u, state = tx.update(g, state, params)
        out.append(u)
    return out, state


def test_lion_closed_form():
    # m_0 = 0: the first direction is sign((1 - b1) g); the stored momentum is (1 - b2) g.
    g1, g2 = jnp.array([2.0, -3.0, 0.0]), jnp.array([-1.0, -1.0, 1.0])
    (u1, u2), state = _steps(gx.scale_by_lion(b1=0.5, b2=0.75), [g1, g2])
    np.testing.assert_array_equal(u1, [1.0, -1.0, 0.0])
    m1 = 0.25 * g1
    np.testing.assert_array_equal(u2, jnp.sign(0.5 * g2 + 0.5 * m1))  # [1, -1, 1]
    np.testing.assert_allclose(state.mu, 0.25 * g2 + 0.75 * m1)
    assert state.count.dtype == jnp.int32 and int(state.count) == 2


def test_lion_with_b1_one_is_sign_of_momentum_and_b2_one_freezes_it():
    # The closed interval: b1 = 1 steps along sign(m_{t-1}) (0 on the first step); b2 = 1 keeps m = 0.
    g = jnp.array([1.0, -2.0])
    (u1, u2), _ = _steps(gx.scale_by_lion(b1=1.0, b2=0.5), [g, g])
    np.testing.assert_array_equal(u1, [0.0, 0.0])
    np.testing.assert_array_equal(u2, [1.0, -1.0])
    _, state = _steps(gx.scale_by_lion(b2=1.0), [g, g])
    np.testing.assert_array_equal(state.mu, [0.0, 0.0])


def test_lion_keeps_update_dtype_with_wider_mu_dtype():
    tx = gx.scale_by_lion(mu_dtype=jnp.float32)
    p = jnp.ones(3, jnp.bfloat16)
    state = tx.init(p)
    assert state.mu.dtype == jnp.float32
    u, state = tx.update(p, state)
    assert u.dtype == jnp.bfloat16 and state.mu.dtype == jnp.float32


def test_sign_sgd_and_signum_closed_form():
    g1, g2 = jnp.array([2.0, -3.0]), jnp.array([-1.0, -1.0])
    (u1, u2), _ = _steps(gx.sign_sgd(0.1), [g1, g2])
    np.testing.assert_allclose(u1, [-0.1, 0.1])
    np.testing.assert_allclose(u2, [0.1, 0.1])
    # Signum: m_2 = 0.5 * 0.5 g1 + 0.5 g2 = [0, -1.25]; sign(0) = 0.
    (u1, u2), state = _steps(gx.signum(0.1, beta=0.5), [g1, g2])
    np.testing.assert_allclose(u2, [0.0, 0.1])
    np.testing.assert_allclose(state[0].ema, [0.0, -1.25])


def test_a_sweep_over_lion_learning_rates_is_one_vmap():
    lrs = jnp.array([1e-3, 1e-2])
    p = jnp.array([1.0, -2.0])

    def step(opt):
        u, _ = opt.update(p, opt.init(p), p)
        return u

    out = jax.vmap(lambda lr: step(gx.lion(lr, weight_decay=0.0)))(lrs)
    np.testing.assert_allclose(out, -lrs[:, None] * jnp.sign(p)[None, :])


@pytest.mark.parametrize(
    "make, where, arg, allowed",
    [
        (lambda: gx.lion(0.1, b1=2.0), "gx.lion", "b1", "[0, 1]"),
        (lambda: gx.lion(0.1, b2=-0.5), "gx.lion", "b2", "[0, 1]"),
        (lambda: gx.lion(-0.1), "gx.lion", "learning_rate", ">= 0"),
        (lambda: gx.lion(0.1, weight_decay=-1.0), "gx.lion", "weight_decay", ">= 0"),
        (lambda: gx.scale_by_lion(b1=1.5), "gx.scale_by_lion", "b1", "[0, 1]"),
        (lambda: gx.scale_by_lion(mode="smooth", smooth_beta=0.0), "gx.scale_by_lion", "smooth_beta", "> 0"),
        (lambda: gx.sign_sgd(-1.0), "gx.sign_sgd", "learning_rate", ">= 0"),
        (lambda: gx.signum(0.1, beta=1.0), "gx.signum", "beta", "[0, 1)"),
    ],
)
def test_bad_input_names_the_argument(make, where, arg, allowed):
    with pytest.raises(ValueError) as e:
        make()
    msg = str(e.value)
    assert msg.startswith(where + ":") and f"`{arg}`" in msg and allowed in msg, msg


def test_lion_unknown_mode():
    with pytest.raises(ValueError, match=r"gx.scale_by_lion: `mode` must be one of"):
        gx.scale_by_lion(mode="soft")


# ----- centralize, normalize_by_update_norm, block scalings, apply_every, scale_gradient


def test_centralize_closed_form_and_passthrough():
    g = {"m": jnp.arange(12.0).reshape(2, 3, 2), "v": jnp.array([1.0, 5.0]), "s": jnp.array(3.0)}
    u, _ = gx.centralize().update(g, gx.centralize().init(g))
    np.testing.assert_allclose(u["m"], g["m"] - jnp.array([2.5, 8.5])[:, None, None])
    np.testing.assert_array_equal(u["v"], g["v"])
    np.testing.assert_array_equal(u["s"], g["s"])


def test_normalize_by_update_norm_zero_cases():
    g = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}
    tx = gx.normalize_by_update_norm(eps=0.0)
    u, _ = tx.update(g, tx.init(g))
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(u))  # optax: NaN
    tx = gx.normalize_by_update_norm(scale_factor=0.0)
    u, _ = tx.update({"a": jnp.ones(2)}, tx.init(g))
    np.testing.assert_array_equal(u["a"], [0.0, 0.0])
    tx = gx.normalize_by_update_norm(scale_factor=-1.0, eps=0.0)
    u, _ = tx.update({"a": jnp.array([3.0, 0.0]), "b": jnp.array([[0.0, 4.0]])}, tx.init(g))
    np.testing.assert_allclose(u["a"], [-0.6, 0.0])
    np.testing.assert_allclose(u["b"], [[0.0, -0.8]])


def test_block_scalings_closed_form_and_finite_gradient_at_zero():
    p = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "z": jnp.zeros(3)}
    g = jax.tree.map(jnp.ones_like, p)
    u, _ = gx.scale_by_param_block_norm(0.1).update(g, gx.EmptyState(), p)
    np.testing.assert_allclose(u["w"], 5.0 * jnp.ones((2, 2)))
    np.testing.assert_allclose(u["z"], 0.1 * jnp.ones(3))
    u, _ = gx.scale_by_param_block_rms(0.1).update(g, gx.EmptyState(), p)
    np.testing.assert_allclose(u["w"], 2.5 * jnp.ones((2, 2)))
    np.testing.assert_allclose(u["z"], 0.1 * jnp.ones(3))
    for tx in (gx.scale_by_param_block_norm(0.0), gx.scale_by_param_block_rms(1e-3)):
        grad = jax.grad(lambda q, tx=tx: jnp.sum(tx.update(g, tx.init(q), q)[0]["z"]))(p)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grad))


def test_block_scalings_need_params():
    with pytest.raises(ValueError, match="gx.scale_by_param_block_rms: .*params"):
        gx.scale_by_param_block_rms().update(jnp.ones(2), gx.EmptyState())


def test_apply_every_closed_form_and_nonfinite_window():
    tx = gx.apply_every(3)
    gs = [jnp.array([1.0]), jnp.array([jnp.inf]), jnp.array([2.0]), jnp.array([4.0]), jnp.array([8.0]), jnp.array([16.0])]
    out, state = _steps(tx, gs)
    assert [float(u[0]) for u in out] == [0.0, 0.0, float("inf"), 0.0, 0.0, 28.0]
    assert state.count.dtype == jnp.int32 and int(state.count) == 0
    # A sweep over k is a vmap.
    ks = jnp.array([1, 2])
    u = jax.vmap(lambda k: gx.apply_every(k).update(jnp.ones(1), gx.apply_every(k).init(jnp.ones(1)))[0])(ks)
    np.testing.assert_array_equal(u, [[1.0], [0.0]])


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("scale", [0.0, 1.0, -0.5, 3.0])
def test_scale_gradient_matches_optax(dtype, scale):
    x = {"a": jnp.arange(3.0, dtype=dtype), "b": [jnp.ones((2, 2), dtype)]}

    def loss(fn, x):
        y = fn(x, scale)
        return jnp.sum(y["a"] ** 3) + jnp.sum(jnp.sin(y["b"][0]))

    ours = jax.grad(lambda x: loss(gx.scale_gradient, x))(x)
    theirs = jax.grad(lambda x: loss(optax.scale_gradient, x))(x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert gx.scale_gradient(x, scale) is x if scale == 1.0 else True


def test_scale_gradient_with_traced_scale_keeps_dtype():
    x = jnp.ones(2, jnp.float32)
    grad = jax.jit(jax.grad(lambda x, s: jnp.sum(gx.scale_gradient(x, s) ** 2)))(x, jnp.float64(-2.0))
    assert grad.dtype == jnp.float32
    np.testing.assert_allclose(grad, [-4.0, -4.0])


@pytest.mark.parametrize(
    "make, where, arg, allowed",
    [
        (lambda: gx.apply_every(0), "gx.apply_every", "k", "integer in [1"),
        (lambda: gx.apply_every(1.5), "gx.apply_every", "k", "integer in [1"),
        (lambda: gx.normalize_by_update_norm(eps=-1.0), "gx.normalize_by_update_norm", "eps", ">= 0"),
        (lambda: gx.scale_by_param_block_norm(-1.0), "gx.scale_by_param_block_norm", "min_scale", ">= 0"),
        (lambda: gx.scale_by_param_block_rms(-1.0), "gx.scale_by_param_block_rms", "min_scale", ">= 0"),
    ],
)
def test_bad_input_of_rescalings(make, where, arg, allowed):
    test_bad_input_names_the_argument(make, where, arg, allowed)


def test_apply_every_refuses_a_schedule():
    with pytest.raises(TypeError, match="gx.apply_every: `k`.*schedule"):
        gx.apply_every(gx.constant_schedule(2))


def test_noisy_sgd_is_sgd_without_noise_and_seed_alias():
    p = jnp.array([1.0, -2.0])
    u, _ = gx.noisy_sgd(0.1, eta=0.0).update(p, gx.noisy_sgd(0.1, eta=0.0).init(p))
    np.testing.assert_allclose(u, -0.1 * p)
    a, b = gx.noisy_sgd(0.1, key=3), gx.noisy_sgd(0.1, seed=3)
    np.testing.assert_array_equal(a.update(p, a.init(p))[0], b.update(p, b.init(p))[0])
    with pytest.raises(ValueError, match="gx.noisy_sgd: `eta` must be >= 0"):
        gx.noisy_sgd(0.1, eta=-1.0)


def _key_data(tree):
    is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("which,seed,lr,eta,gamma", [(0, 1, 0.1, 0.01, 0.55), (1, 7, 0.03, 0.5, 0.0), (2, 42, 0.2, 0.1, 1.0)])
def test_noisy_sgd_parity_with_optax(which, seed, lr, eta, gamma, dtype, rtol):
    # test_parity's harness, with the PRNG keys in the state compared as their data.
    rng = np.random.default_rng(seed)
    params = _random_tree(STRUCTURES[which], rng, dtype)
    grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(STRUCTURES[which], rng, dtype) for _ in range(STEPS)])
    ours = _key_data(_run_gx(gx.noisy_sgd(lr, eta, gamma, key=seed), params, grads))
    theirs = _key_data(_run_optax(optax.noisy_sgd(lr, eta, gamma, key=seed), params, grads))
    atol = 1e-12 if dtype == jnp.float64 else 1e-6
    for t in (0, STEPS // 2, STEPS - 1):
        for a, b in zip(jax.tree.leaves(_at(ours[0], t)), jax.tree.leaves(_at(theirs[0], t)), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        sa, sb = _sorted_named(_at(ours[1], t)), _sorted_named(_at(theirs[1], t))
        assert [k for k, _ in sa] == [k for k, _ in sb]
        for (k, a), (_, b) in zip(sa, sb):
            np.testing.assert_array_equal(a, b, err_msg=k) if k.endswith("rng_key") else np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
