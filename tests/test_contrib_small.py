"""optax.contrib's small pieces: ``normalize`` and ``split_real_and_imaginary``.

Parity with optax.contrib on random trees (complex leaves for the split), closed forms,
and what gradtx does differently (zero updates stay zero).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx as gx


def _tree(rng, dtype):
    r = lambda *s: jnp.asarray(rng.standard_normal(s), dtype)  # noqa: E731
    return {"w": r(3, 2), "b": [r(2), r()], "k": (r(1, 3),)}


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-12), (jnp.float32, 1e-6)], ids=["f64", "f32"])
def test_normalize_matches_optax(dtype, rtol):
    rng = np.random.default_rng(0)
    for _ in range(3):
        g = _tree(rng, dtype)
        ours = gx.normalize().update(g, gx.normalize().init(g))[0]
        theirs = optax.contrib.normalize().update(g, optax.contrib.normalize().init(g))[0]
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=rtol)
        norm = np.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(ours)))
        assert norm == pytest.approx(1.0, rel=10 * rtol)


def test_normalize_keeps_zero_updates_zero():
    g = {"a": jnp.zeros(3)}
    u = gx.normalize().update(g, gx.normalize().init(g))[0]
    np.testing.assert_array_equal(u["a"], np.zeros(3))  # optax: NaN


def _complex_tree(rng, dtype):
    r = lambda *s: jnp.asarray(rng.standard_normal(s), dtype)  # noqa: E731
    c = lambda *s: (r(*s) + 1j * r(*s)).astype(jnp.result_type(dtype, jnp.complex64))  # noqa: E731
    return {"z": c(3, 2), "x": r(4), "mix": [c(2), r()]}


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize(
    "make",
    [lambda lib: lib.adam(0.05), lambda lib: lib.sign_sgd(0.1), lambda lib: lib.adafactor(0.01)],
    ids=["adam", "sign_sgd", "adafactor"],
)
def test_split_real_and_imaginary_matches_optax_over_steps(make, dtype, rtol):
    rng = np.random.default_rng(1)
    params = _complex_tree(rng, dtype)
    grads = [_complex_tree(rng, dtype) for _ in range(20)]

    def run(opt, lib_apply):
        @jax.jit
        def step(p, s, g):
            u, s = opt.update(g, s, p)
            return lib_apply(p, u), s, u

        p, s, out = params, opt.init(params), []
        for g in grads:
            p, s, u = step(p, s, g)
            out.append(u)
        return p, out

    ours_p, ours = run(gx.split_real_and_imaginary(make(gx)), gx.apply_updates)
    theirs_p, theirs = run(optax.contrib.split_real_and_imaginary(make(optax)), optax.apply_updates)
    for ua, ub in zip(ours, theirs):
        for a, b in zip(jax.tree.leaves(ua), jax.tree.leaves(ub)):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(ours_p)[0], jax.tree.leaves(params)[0])


def test_split_is_two_real_parameters():
    """Adam on z = x + iy, split, equals Adam on the real pair (x, y)."""
    rng = np.random.default_rng(2)
    z = jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4))
    gs = [jnp.asarray(rng.standard_normal(4) + 1j * rng.standard_normal(4)) for _ in range(5)]
    opt = gx.split_real_and_imaginary(gx.adam(0.1))
    real = gx.adam(0.1)
    s, r = opt.init(z), real.init((z.real, z.imag))
    for g in gs:
        u, s = opt.update(g, s, z)
        v, r = real.update((g.real, g.imag), r, (z.real, z.imag))
        np.testing.assert_allclose(u.real, v[0], rtol=1e-12)
        np.testing.assert_allclose(u.imag, v[1], rtol=1e-12)
    # The inner state holds the pair, never a complex array.
    assert all(not jnp.iscomplexobj(x) for x in jax.tree.leaves(s))
    pairs = jax.tree.leaves(s.inner_state, is_leaf=lambda x: isinstance(x, gx.SplitRealAndImaginaryArrays))
    assert sum(isinstance(x, gx.SplitRealAndImaginaryArrays) for x in pairs) == 2  # mu and nu


def test_split_hyperparameters_are_leaves_and_extra_args_pass_through():
    z = jnp.asarray([1.0 + 1.0j, 2.0 - 1.0j])
    traces = 0

    @jax.jit
    def step(opt, z):
        nonlocal traces
        traces += 1
        return opt.update(z, opt.init(z), z)[0]

    for lr in (0.1, 0.2, 0.3):
        step(gx.split_real_and_imaginary(gx.adam(lr)), z)
    assert traces == 1
    f = lambda w: jnp.sum(jnp.abs(w) ** 2)  # noqa: E731
    opt = gx.split_real_and_imaginary(gx.polyak_sgd())
    u, _ = opt.update(z, opt.init(z), z, value=f(z))
    assert np.all(np.isfinite(np.asarray(u)))
    with pytest.raises(TypeError, match="`value`"):
        opt.update(z, opt.init(z), z)


def test_split_rejects_a_non_transformation():
    with pytest.raises(TypeError, match="gx.split_real_and_imaginary: expected gradient transformations"):
        gx.split_real_and_imaginary("adam")
