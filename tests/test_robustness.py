"""Adam family: finite, bounded updates for gradients from 1e-30 to 1e30 in float32;
bf16 params with f32 moments; empty trees, zero-size and None leaves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.adam_family import adam, adamax, adamaxw, adamw, amsgrad, nadam, nadamw

LR, B1, B2, STEPS = 0.5, 0.9, 0.999, 6
OPTS = {
    "adam": (adam, "adam"),
    "adamw": (adamw, "adam"),
    "nadam": (nadam, "nadam"),
    "nadamw": (nadamw, "nadam"),
    "amsgrad": (amsgrad, "adam"),
    "adamax": (adamax, "adamax"),
    "adamaxw": (adamaxw, "adamax"),
}


def bound(kind: str, t: int) -> float:
    """Hand-derived (Cauchy-Schwarz) bound on |m_hat| / sqrt(v_hat) after t steps."""
    if kind == "adamax":  # |m_t| <= (1-b1) sum b1^k |g|, u_t >= b2^k |g|
        return (1 - B1) * sum((B1 / B2) ** k for k in range(t)) / (1 - B1**t)
    s = sum((B1**2 / B2) ** k for k in range(t))
    b = (1 - B1) / np.sqrt(1 - B2) * np.sqrt(s) * np.sqrt(1 - B2**t) / (1 - B1**t)
    return b * (1 + B1) if kind == "nadam" else b


@pytest.mark.parametrize("name", list(OPTS))
def test_finite_and_bounded_for_any_magnitude(name):
    make, kind = OPTS[name]
    opt = make(LR)
    params = jnp.zeros(4, jnp.float32)  # zero params: weight decay adds nothing

    @jax.jit
    def run(g):
        def step(state, _):
            u, state = opt.update(g, state, params)
            return state, u

        return jax.lax.scan(step, opt.init(params), None, length=STEPS)[1]

    signs = jnp.array([1.0, -1.0, 0.5, 0.0], jnp.float32)
    for k in range(-30, 31, 5):
        us = np.asarray(run(signs * jnp.float32(10.0**k)))
        assert us.dtype == np.float32 and np.isfinite(us).all(), (k, us)
        for t in range(1, STEPS + 1):
            assert np.abs(us[t - 1]).max() <= LR * bound(kind, t) * (1 + 1e-5), (k, t, us[t - 1])
        assert (us[:, 3] == 0).all()
        if 10.0**k >= 1e-3:  # eps is negligible: a constant gradient moves ~lr per step, downhill
            assert (us[:, 0] < -0.3 * LR).all() and (us[:, 1] > 0.3 * LR).all(), (k, us)


def test_first_step_is_exactly_lr_times_sign_for_huge_gradients():
    opt = adam(LR)
    g = jnp.array([1e25, -1e30, 3e19], jnp.float32)
    u, _ = opt.update(g, opt.init(jnp.zeros(3, jnp.float32)))
    np.testing.assert_allclose(u, [-LR, LR, -LR], rtol=1e-6)


def test_bf16_params_with_f32_moments_train_on_a_quadratic():
    opt = adam(0.05, mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    params = jnp.zeros(3, jnp.bfloat16)
    target = jnp.array([3.0, -2.0, 1.0], jnp.bfloat16)

    @jax.jit
    def train(params):
        def step(carry, _):
            p, s = carry
            g = jax.grad(lambda x: 0.5 * jnp.sum((x - target) ** 2))(p)
            u, s = opt.update(g, s, p)
            return (apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=300)[0]

    p, s = train(params)
    assert p.dtype == jnp.bfloat16 and s[0].mu.dtype == jnp.float32 and s[0].nu.dtype == jnp.float32
    assert np.abs(np.asarray(p, np.float32) - np.asarray(target, np.float32)).max() < 0.15


@pytest.mark.parametrize("name", list(OPTS))
@pytest.mark.parametrize(
    "params",
    [{}, [], {"a": jnp.zeros((0, 3))}, {"a": jnp.ones(2), "frozen": None}],
    ids=["dict", "list", "zero_size", "none_leaf"],
)
def test_empty_zero_size_and_none_leaves(name, params):
    opt = OPTS[name][0](0.1)
    state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    u, state = opt.update(grads, state, params)
    assert jax.tree.structure(u, is_leaf=lambda x: x is None) == jax.tree.structure(
        params, is_leaf=lambda x: x is None
    )
    if isinstance(params, dict) and "frozen" in params:
        assert u["frozen"] is None and np.isfinite(u["a"]).all()
    if isinstance(params, dict) and "frozen" in params and name in ("adam", "amsgrad", "adamax"):
        np.testing.assert_allclose(u["a"], -0.1 * np.ones(2), rtol=1e-6)  # first step: -lr sign(g)
