"""gx.add_noise under jax.vmap over a batch of keys: typed keys, legacy uint32 keys and seeds."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx

N, STEPS = 4, 3
PARAMS = {"w": jnp.zeros(3), "b": jnp.zeros((2, 2))}
GRADS = jax.tree.map(jnp.ones_like, PARAMS)

KEYS = {
    "legacy": jax.random.split(jax.random.PRNGKey(0), N),  # uint32[4, 2]
    "typed": jax.random.split(jax.random.key(0), N),  # key<fry>[4]
}


def _run(tx):
    """STEPS noisy updates of GRADS from ``tx.init(PARAMS)``: the updates stacked."""
    state, out = tx.init(PARAMS), []
    for _ in range(STEPS):
        u, state = tx.update(GRADS, state)
        out.append(u)
    return jax.tree.map(lambda *u: jnp.stack(u), *out)


def _separate(keys):
    return [_run(gx.add_noise(0.01, 0.55, keys[i])) for i in range(N)]


def _assert_rows_equal(batched, separate):
    """Row i of ``batched`` is run i: the same draws, and sigma_t to the last bit or so.

    (The vectorised ``(1 + t) ** gamma`` may round differently from the scalar one in the
    last bit; a different key stream would differ by O(1).)
    """
    close = functools.partial(np.testing.assert_allclose, rtol=1e-14, atol=0)
    for i, one in enumerate(separate):
        jax.tree.map(close, jax.tree.map(lambda x: x[i], batched), one)


@pytest.mark.parametrize("kind", ["legacy", "typed"])
def test_vmap_over_keys_equals_separate_runs(kind):
    keys = KEYS[kind]
    txs = jax.vmap(lambda k: gx.add_noise(0.01, 0.55, k))(keys)
    batched = jax.vmap(_run)(txs)
    _assert_rows_equal(batched, _separate(keys))
    assert not np.allclose(batched["w"][0], batched["w"][1])  # each run has its own stream
    # and under jit, with the optimizer built inside the mapped function
    jitted = jax.jit(jax.vmap(lambda k: _run(gx.add_noise(0.01, 0.55, k))))(keys)
    _assert_rows_equal(jitted, _separate(keys))


@pytest.mark.parametrize("kind", ["legacy", "typed", "seeds"])
def test_a_batch_of_keys_given_directly_maps_with_the_other_leaves(kind):
    """The keys passed to add_noise as they are, with eta and gamma batched too (as a sweep does)."""
    keys = jnp.arange(N) if kind == "seeds" else KEYS[kind]
    tx = gx.add_noise(jnp.full(N, 0.01), jnp.full(N, 0.55), keys)
    separate = [_run(gx.add_noise(0.01, 0.55, int(keys[i]) if kind == "seeds" else keys[i])) for i in range(N)]
    _assert_rows_equal(jax.vmap(_run)(tx), separate)


def test_a_batch_of_keys_outside_vmap_gets_a_clear_error():
    tx = gx.add_noise(0.01, 0.55, KEYS["legacy"])
    with pytest.raises(ValueError, match=r"gx.add_noise: `key` holds a batch of keys \(shape \(4, 2\)\).*jax.vmap"):
        tx.init(PARAMS)
    with pytest.raises(ValueError, match=r"`key` holds a batch of keys \(shape \(4,\)\)"):
        gx.add_noise(0.01, 0.55, KEYS["typed"]).init(PARAMS)
    with pytest.raises(TypeError, match=r"gx.add_noise: `key` must be an integer seed or a JAX PRNG key"):
        gx.add_noise(0.01, 0.55, jnp.zeros((N, 2)))


@pytest.mark.parametrize("kind", ["legacy", "typed"])
def test_the_draws_are_bit_identical(kind):
    """With sigma_t = 1 exactly (gamma = 0), a mapped run is its separate run bit for bit."""
    keys = KEYS[kind]
    batched = jax.vmap(lambda k: _run(gx.add_noise(1.0, 0.0, k)))(keys)
    for i in range(N):
        one = _run(gx.add_noise(1.0, 0.0, keys[i]))
        jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda x: x[i], batched), one)
