"""Packed params: one buffer per dtype, views for the model, same optimizer results."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx


def tree():
    k = jax.random.split(jax.random.key(0), 4)
    return {
        "layers": [
            {"w": jax.random.normal(k[0], (3, 4)), "b": jnp.zeros(4)},
            {"w": jax.random.normal(k[1], (4, 2)), "b": jnp.zeros(2)},
        ],
        "scale": jax.random.normal(k[2], ()),
        "half": jax.random.normal(k[3], (5,)).astype(jnp.bfloat16),
        "frozen": None,
    }


def loss(params):
    h = jnp.tanh(jnp.ones((1, 3)) @ params["layers"][0]["w"] + params["layers"][0]["b"][None])
    out = h @ params["layers"][1]["w"] + params["layers"][1]["b"][None]
    return jnp.sum(out**2) * params["scale"] ** 2 + jnp.sum(params["half"].astype(jnp.float32) ** 2)


def test_round_trip_layout_and_repr():
    params = tree()
    packed = gx.pack(params)
    # buffers in order of first appearance (dict keys sort: "half" comes first)
    assert [b.dtype for b in packed.buffers] == [jnp.bfloat16, jnp.float64]
    assert [b.shape for b in packed.buffers] == [(5,), (12 + 4 + 8 + 2 + 1,)]
    jax.tree.map(np.testing.assert_array_equal, packed.unpack(), params)
    assert packed.unpack()["frozen"] is None
    assert repr(packed) == "Packed(6 leaves in bfloat16[5], float64[27])"
    with pytest.raises(TypeError, match="already packed"):
        gx.pack(packed)


def test_gradient_is_packed_and_equals_the_tree_gradient():
    params = tree()
    packed = gx.pack(params)
    g_packed = jax.grad(lambda pk: loss(pk.unpack()))(packed)
    assert isinstance(g_packed, gx.Packed) and g_packed.layout == packed.layout
    jax.tree.map(np.testing.assert_array_equal, g_packed.unpack(), jax.grad(loss)(params))


@pytest.mark.parametrize("make", [lambda: gx.adam(0.1), lambda: gx.sgd(0.1, momentum=0.9),
                                  lambda: gx.chain(gx.clip_by_global_norm(0.5), gx.adamw(0.1))])
def test_optimizer_on_packed_params_equals_the_tree(make):
    """Elementwise math is identical; the global norm differs only in summation order."""
    opt, params = make(), tree()
    packed = gx.pack(params)

    @functools.partial(jax.jit, static_argnums=1)
    def train(p, unpack):
        def step(carry, _):
            p, s = carry
            g = jax.grad(lambda q: loss(q.unpack() if unpack else q))(p)
            u, s = opt.update(g, s, p)
            return (gx.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, opt.init(p)), None, length=5)[0]

    p_tree, _ = train(params, False)
    p_packed, s_packed = train(packed, True)
    assert isinstance(p_packed, gx.Packed)
    assert all(isinstance(x, gx.Packed) for x in jax.tree.leaves(s_packed, is_leaf=lambda x: isinstance(x, gx.Packed))
               if not isinstance(x, jax.Array))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                                         rtol=1e-12, atol=1e-12),
                 p_packed.unpack(), p_tree)


def test_global_norm_over_packed_is_one_reduction_per_buffer():
    params = tree()
    packed = gx.pack(params)
    np.testing.assert_allclose(gx.global_norm(packed), gx.global_norm(params), rtol=1e-12)
    hlo = jax.jit(gx.global_norm).lower(packed).as_text()
    # one sum of squares (a dot) per dtype buffer, not one per leaf
    assert hlo.count("stablehlo.dot_general") == 2 and "stablehlo.reduce" not in hlo


def test_vmap_over_a_batch_of_packed_params_and_batched_unpack():
    packed = gx.pack({"a": jnp.ones((2, 2)), "b": jnp.arange(3.0)})
    batch = jax.tree.map(lambda b: jnp.stack([b, 2 * b]), packed)
    out = batch.unpack()  # leading batch axis kept on every view
    assert out["a"].shape == (2, 2, 2) and out["b"].shape == (2, 3)
    np.testing.assert_array_equal(out["b"][1], 2 * jnp.arange(3.0))
    sums = jax.vmap(lambda pk: jnp.sum(pk.unpack()["b"]))(batch)
    np.testing.assert_array_equal(sums, [3.0, 6.0])


def test_sweep_trains_packed_params():
    target = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    params = gx.pack(jax.tree.map(jnp.zeros_like, target))

    def packed_loss(pk):
        p = pk.unpack()
        return jnp.sum((p["w"] - target["w"]) ** 2) + (p["b"] - target["b"]) ** 2

    res = gx.sweep(packed_loss, params, gx.Space(gx.sgd, learning_rate=[0.1, 0.3]), steps=60, progress=False)
    assert isinstance(res.params(1), gx.Packed)
    np.testing.assert_allclose(res.params(1).unpack()["w"], target["w"], atol=1e-6)
