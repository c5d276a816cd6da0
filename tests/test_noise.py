"""Annealed gradient noise: variance schedule, vmap, determinism, optax parity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.transforms.combine import chain
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.noise import add_noise

N = 100_000
ZEROS = jnp.zeros(N, jnp.float32)


@jax.jit
def _noise_at(tx, count):
    """The noise added at step ``count`` (0 = first update) to N zero gradients."""
    state = tx.init(ZEROS)._replace(count=jnp.asarray(count, jnp.int32))
    u, _ = tx.update(ZEROS, state)
    return u


@pytest.mark.parametrize("t", [0, 100, 1000])
def test_sample_variance_follows_the_annealing(t):
    eta, gamma = 0.3, 0.55
    u = np.asarray(_noise_at(add_noise(eta, gamma, key=1), t), np.float64)
    expected = eta / (1 + t) ** gamma
    # 1e5 draws: the sample variance's relative std is sqrt(2/N) ~ 0.45%.
    np.testing.assert_allclose(u.var(), expected, rtol=0.05)
    assert abs(u.mean()) < 5 * np.sqrt(expected / N)


def test_vmap_over_eta_and_gamma():
    etas = jnp.array([0.01, 1.0, 4.0])
    gammas = jnp.array([0.55, 1.0, 0.0])
    batched = jax.vmap(lambda e, g: add_noise(e, g, key=2))(etas, gammas)
    u = np.asarray(jax.vmap(_noise_at, in_axes=(0, None))(batched, 9), np.float64)
    for i in range(3):
        expected = float(etas[i]) / 10.0 ** float(gammas[i])
        np.testing.assert_allclose(u[i].var(), expected, rtol=0.05)
        # Same key: the batch draws the same xi, scaled by each sigma.
        xi0 = u[0] / np.sqrt(etas[0] / 10**0.55)
        np.testing.assert_allclose(u[i] / np.sqrt(expected), xi0, rtol=1e-4, atol=1e-5)


def test_deterministic_for_a_fixed_key():
    g = jnp.ones(4, jnp.float32)

    def run(tx):
        s, out = tx.init(g), []
        for _ in range(3):
            u, s = tx.update(g, s)
            out.append(np.asarray(u))
        return np.stack(out)

    a, b = run(add_noise(0.1, 0.55, key=7)), run(add_noise(0.1, 0.55, key=7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])  # the key advances each step
    assert not np.allclose(a, run(add_noise(0.1, 0.55, key=8)))
    # A typed key, an int seed and optax's `seed=` name give the same stream.
    np.testing.assert_array_equal(a, run(add_noise(0.1, 0.55, jax.random.key(7))))
    np.testing.assert_array_equal(a, run(add_noise(0.1, 0.55, seed=7)))


def test_matches_optax_bit_for_bit():
    params = {"a": jnp.zeros(3, jnp.float32), "b": None, "c": jnp.zeros((2, 2), jnp.float32)}
    grads = {"a": jnp.ones(3, jnp.float32), "b": None, "c": jnp.full((2, 2), -1.0, jnp.float32)}
    ours = chain(add_noise(0.3, 0.55, key=3), scale_by_learning_rate(0.1))
    theirs = optax.chain(optax.add_noise(0.3, 0.55, key=3), optax.scale_by_learning_rate(0.1))
    s1, s2 = ours.init(params), theirs.init(params)
    for _ in range(4):
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = theirs.update(grads, s2, params)
        assert u1["b"] is None
        np.testing.assert_array_equal(u1["a"], u2["a"])
        np.testing.assert_array_equal(u1["c"], u2["c"])
    assert int(s1[0].count) == int(s2[0].count) == 4
    np.testing.assert_array_equal(jax.random.key_data(s1[0].rng_key), jax.random.key_data(s2[0].rng_key))


def test_new_eta_or_key_does_not_retrace():
    traces = 0

    @jax.jit
    def step(tx, g):
        nonlocal traces
        traces += 1
        return tx.update(g, tx.init(g))[0]

    g = jnp.zeros(3, jnp.float32)
    for eta, key in [(0.1, 0), (0.5, 1), (2.0, 5)]:
        step(add_noise(eta, 0.55, key=key), g)
    assert traces == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="gx.add_noise: `eta` must be >= 0"):
        add_noise(-0.1, 0.55)
    with pytest.raises(ValueError, match="gx.add_noise: `gamma` must be >= 0"):
        add_noise(0.1, -1.0)
    with pytest.raises(ValueError, match="either `key` or `seed`"):
        add_noise(0.1, 0.55, key=1, seed=2)
    with pytest.raises(TypeError, match="gx.add_noise: `key` must be an integer seed or a JAX PRNG key"):
        add_noise(0.1, 0.55, key=0.5)
