"""Search spaces: grids, random dimensions, nesting, batched optimizers, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx


def test_grids_form_a_cartesian_product_and_random_dims_repeat_each_point():
    space = gx.Space(gx.adam, learning_rate=[0.1, 0.01], b1=gx.grid(0.8, 0.9, 3), b2=gx.uniform(0.9, 0.99))
    vals = space.sample(jax.random.key(0), num=4)
    assert space.size(4) == 2 * 3 * 4 and all(v.shape == (24,) for v in vals.values())
    pairs = {(float(a), round(float(b), 9)) for a, b in zip(vals["learning_rate"], vals["b1"])}
    assert pairs == {(lr, b1) for lr in (0.1, 0.01) for b1 in (0.8, 0.85, 0.9)}
    b2 = np.asarray(vals["b2"])
    assert np.all((b2 >= 0.9) & (b2 <= 0.99)) and len(set(b2.tolist())) == 24
    assert gx.Space(gx.sgd, learning_rate=[0.1, 0.2]).size(num=5) == 2  # a pure grid ignores num


def test_log_uniform_is_ten_to_a_uniform_exponent():
    """Seed 002: pick r in [a, b] uniformly and use 10^r."""
    x = np.asarray(gx.log_uniform(1e-4, 1.0).sample(jax.random.key(0), (20000,), jnp.float64))
    r = np.log10(x)
    assert r.min() >= -4 and r.max() <= 0
    counts, _ = np.histogram(r, bins=4, range=(-4, 0))
    np.testing.assert_allclose(counts / 20000, 0.25, atol=0.02)  # each decade equally likely
    assert gx.grid(1e-4, 1e-1, 4, log=True).values == pytest.approx((1e-4, 1e-3, 1e-2, 1e-1))


def test_choice_draws_only_given_values_and_keeps_integers():
    vals = gx.Space(gx.warmup_cosine_decay_schedule, init_value=0.0, peak_value=1.0, decay_steps=100,
                    warmup_steps=gx.choice([0, 10, 50])).sample(jax.random.key(1), num=30)
    assert vals["warmup_steps"].dtype == jnp.int32 and set(np.asarray(vals["warmup_steps"]).tolist()) == {0, 10, 50}


def test_nested_space_paths_and_batched_optimizer():
    space = gx.Space(gx.adam, b1=0.8, learning_rate=gx.Space(gx.exponential_decay, init_value=gx.log_uniform(1e-3, 1.0),
                                                             transition_steps=10, decay_rate=[0.5, 0.9]))
    assert list(space.dims) == ["learning_rate.init_value", "learning_rate.decay_rate"]
    vals = space.sample(jax.random.key(0), num=3)
    batched = space.batched(vals)
    leaves = dict((jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_leaves_with_path(batched))
    assert all(x.shape[0] == 6 for x in leaves.values())
    b1 = [x for k, x in leaves.items() if k.endswith(".b1")][0]
    assert b1.weak_type and np.all(np.asarray(b1) == 0.8)  # unswept Python floats stay weakly typed
    # The batched optimizer is a plain pytree: vmap its update over the run axis.
    g = jnp.ones((6, 2))
    states = jax.vmap(lambda o: o.init(jnp.zeros(2)))(batched)
    u, _ = jax.vmap(lambda o, g, s: o.update(g, s))(batched, g, states)
    lr0 = np.asarray(vals["learning_rate.init_value"])
    np.testing.assert_allclose(u[:, 0], -lr0 / (1 + 1e-8), rtol=1e-6)  # Adam's first step: -lr * g/(|g|+eps)
    assert space == gx.Space(gx.adam, b1=0.8, learning_rate=gx.Space(
        gx.exponential_decay, init_value=gx.log_uniform(1e-3, 1.0), transition_steps=10, decay_rate=[0.5, 0.9]))
    assert hash(space) == hash(gx.Space(gx.adam, b1=0.8, learning_rate=space.kwargs["learning_rate"]))


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: gx.Space(gx.adam, learning_rate=0.1), ValueError, "no dimension"),
        (lambda: gx.Space("adam", learning_rate=[0.1]), TypeError, "factory"),
        (lambda: gx.log_uniform(0.0, 1.0), ValueError, "low must be > 0"),
        (lambda: gx.uniform(1.0, 0.5), ValueError, "low must be <= high"),
        (lambda: gx.choice([]), ValueError, "non-empty"),
        (lambda: gx.choice([True, False]), TypeError, "separate families"),
        (lambda: gx.grid(0.1, 1.0), ValueError, "num"),
        (lambda: gx.Space(gx.sgd, learning_rate=gx.uniform(0, 1)).sample(None, 3), ValueError, "key is required"),
        (lambda: gx.Space(gx.sgd, learning_rate=gx.uniform(0, 1)).sample(jax.random.key(0)), ValueError, "num"),
        (lambda: gx.Space(gx.adam, learning_rate=[0.1], b1=[0.9, 1.5]).check({"learning_rate": np.array([0.1, 0.1]),
                                                                           "b1": np.array([0.9, 1.5])}),
         ValueError, r"run 1 .*b1"),
    ],
)
def test_errors_name_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
