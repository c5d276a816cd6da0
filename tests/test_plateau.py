"""reduce_on_plateau: hand-computed scale sequences, negative/zero losses, optax parity."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.classic import sgd
from gradtx.transforms.combine import chain
from gradtx.transforms.plateau import ReduceLROnPlateauState, reduce_on_plateau


@jax.jit
def run(tx, losses):
    """The state after each loss (scan over ``tx.update`` with unit updates)."""

    def step(state, loss):
        u, state = tx.update(jnp.ones([]), state, value=loss)
        return state, (state, u)

    _, (states, updates) = jax.lax.scan(step, tx.init(jnp.zeros([])), jnp.asarray(losses, float))
    return states._replace(avg_value=(states.avg_value, updates))


def states_of(tx, losses):
    states = run(tx, losses)
    avg, updates = states.avg_value
    np.testing.assert_array_equal(updates, states.scale)  # the updates are scale * 1
    return states._replace(avg_value=avg)


def scales(tx, losses):
    return np.asarray(states_of(tx, losses).scale)


def tx(**kw):
    """A transform with every knob a float leaf (one structure, so ``run`` compiles rarely)."""
    base = dict(factor=0.5, patience=1.0, rtol=0.0, atol=0.0, cooldown=0.0, accumulation_size=1.0, min_scale=0.0)
    return reduce_on_plateau(**{**base, **kw})


def test_patience_and_factor():
    losses = [3, 2, 2, 2, 2, 2, 2]
    # patience 2: windows 3 and 2 improve, then every second non-improving one reduces.
    np.testing.assert_allclose(scales(tx(patience=2.0), losses), [1, 1, 1, .5, .5, .25, .25])
    np.testing.assert_allclose(scales(tx(patience=1.0), losses), [1, 1, .5, .25, .125, .0625, .03125])
    np.testing.assert_allclose(scales(tx(patience=2.0, factor=0.1), losses), [1, 1, 1, .1, .1, .01, .01])
    # patience 0 acts as 1 (optax instead reduces only at improving windows).
    np.testing.assert_allclose(scales(tx(patience=0.0), losses), scales(tx(patience=1.0), losses))


def test_improvements_reset_the_plateau_count():
    states = states_of(tx(patience=2.0), [5, 5, 4, 4, 3, 3, 3])
    np.testing.assert_allclose(states.scale, [1, 1, 1, 1, 1, 1, .5])
    np.testing.assert_array_equal(states.plateau_count, [0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(states.best_value, [5, 5, 4, 4, 3, 3, 3])


def test_cooldown():
    losses = [1] * 7
    # reduce at the 3rd, ignore the 4th (cooldown), count 5th and 6th, reduce at 6th.
    states = states_of(tx(patience=2.0, cooldown=1.0), losses)
    np.testing.assert_allclose(states.scale, [1, 1, .5, .5, .5, .25, .25])
    np.testing.assert_array_equal(states.cooldown_count, [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_allclose(scales(tx(patience=2.0), losses), [1, 1, .5, .5, .25, .25, .125])
    # Improvements during the cooldown still update the best value.
    states = states_of(tx(patience=1.0, cooldown=2.0), [5, 5, 4, 3, 3])
    np.testing.assert_allclose(states.scale, [1, .5, .5, .5, .25])
    np.testing.assert_allclose(states.best_value, [5, 5, 4, 3, 3])


def test_rtol():
    # best 10: 9.5 is not below 9; 8.9 is; 8.0 < 8.9 - .89 = 8.01 is; 7.9 > 7.2 is not.
    np.testing.assert_allclose(scales(tx(rtol=0.1), [10, 9.5, 8.9, 8.0, 7.9]), [1, .5, .5, .5, .25])


def test_atol():
    # best 10: 9.6 > 9.5 no; 9.4 yes; 9.0 > 8.9 no; 8.8 yes.
    np.testing.assert_allclose(scales(tx(atol=0.5), [10, 9.6, 9.4, 9.0, 8.8]), [1, .5, .5, .25, .25])


def test_min_scale():
    np.testing.assert_allclose(scales(tx(factor=0.1, min_scale=0.05), [1, 1, 1, 1]), [1, .1, .05, .05])
    np.testing.assert_allclose(scales(tx(min_scale=1.0), [1, 1, 1]), [1, 1, 1])


def test_accumulation_size_averages_windows():
    # Windows (4, 2) -> 3 improves; (3, 3) -> 3 does not; (1, 6) -> 3.5 does not; (2, 2) -> 2 does.
    states = states_of(tx(accumulation_size=2.0), [4, 2, 3, 3, 1, 6, 2, 2])
    np.testing.assert_allclose(states.scale, [1, 1, 1, .5, .5, .25, .25, .25])
    np.testing.assert_array_equal(states.count, [1, 0] * 4)
    np.testing.assert_allclose(states.avg_value, [4, 0, 3, 0, 1, 0, 2, 0])
    np.testing.assert_allclose(states.best_value, [np.inf, 3, 3, 3, 3, 3, 3, 2])


def test_negative_losses_plateau_where_optax_does_not():
    losses = [-10, -10.5, -10.5, -10.5, -10.5, -10.5]
    ours = reduce_on_plateau(factor=0.5, patience=2, rtol=1e-4)
    # -10.5 < -10 - 1e-3 improves; then -10.5 is never below -10.5 - 1.05e-3.
    np.testing.assert_allclose(scales(ours, losses), [1, 1, 1, .5, .5, .25])
    theirs = optax.contrib.reduce_on_plateau(factor=0.5, patience=2, rtol=1e-4)
    s = theirs.init(jnp.zeros([]))
    for v in losses:
        _, s = theirs.update(jnp.ones([]), s, value=v)
    assert float(s.scale) == 1.0  # optax: (1 - rtol) * -10.5 > -10.5, a flat loss "improves"
    # A slightly worse loss is not an improvement either (optax takes it as one).
    states = states_of(tx(rtol=1e-4), [-10, -9.9995, -9.9995])
    np.testing.assert_allclose(states.scale, [1, .5, .25])
    np.testing.assert_allclose(states.best_value, [-10, -10, -10])


def test_zero_losses():
    np.testing.assert_allclose(scales(tx(rtol=1e-4), [0, 0, 0, 0]), [1, .5, .25, .125])
    # At best = 0 a relative tolerance is 0: only atol rejects a tiny improvement.
    np.testing.assert_allclose(scales(tx(rtol=1e-4), [0, 0, -1e-12]), [1, .5, .5])
    np.testing.assert_allclose(scales(tx(rtol=1e-4, atol=1e-6), [0, 0, -1e-12]), [1, .5, .25])


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(factor=0.5, patience=3, cooldown=2, rtol=1e-2),
        dict(factor=0.3, patience=2, accumulation_size=3, min_scale=0.05, atol=1e-3),
    ],
)
def test_parity_with_optax_on_positive_losses(kw):
    rng = np.random.default_rng(0)
    t = np.arange(80)
    losses = np.exp(-t / 10) + 0.5 + 0.05 * rng.random(80)  # decays, then plateaus noisily
    losses = jnp.asarray(losses, jnp.float32)
    params = {"w": jnp.zeros(2, jnp.float32), "b": jnp.zeros([], jnp.float32)}
    grads = jax.tree.map(jnp.ones_like, params)

    def scan(tx):
        def step(state, loss):
            u, state = tx.update(grads, state, params, value=loss)
            return state, (state, u)

        return jax.lax.scan(step, tx.init(params), losses)[1]

    ours, theirs = scan(reduce_on_plateau(**kw)), scan(optax.contrib.reduce_on_plateau(**kw))
    assert float(ours[0].scale[-1]) < 1  # the sequence does trigger reductions
    for f in ReduceLROnPlateauState._fields:
        a, b = getattr(ours[0], f), getattr(theirs[0], f)
        assert a.dtype == b.dtype, f
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=f)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours[1], theirs[1])


def test_in_a_chain_with_value_passed_through():
    opt = chain(sgd(0.1), reduce_on_plateau(factor=0.5, patience=1))
    x = jnp.array([1.0, -2.0])
    state = opt.init(x)
    step = jax.jit(lambda x, s, loss: opt.update(2 * x, s, x, value=loss))
    u1, state = step(x, state, 3.0)
    u2, state = step(x, state, 3.0)  # no improvement: scale 0.5
    np.testing.assert_allclose(u1, -0.2 * x)
    np.testing.assert_allclose(u2, -0.1 * x)
    assert float(state[1].scale) == 0.5
    np.testing.assert_allclose(apply_updates(x, u2), 0.9 * x)
    with pytest.raises(TypeError, match="value"):
        opt.update(2 * x, state, x)


def test_new_hyperparameters_do_not_recompile_and_vmap_works():
    before = run._cache_size()
    scales(tx(factor=0.25, patience=3.0, cooldown=1.0, min_scale=0.1), [1, 1])
    scales(tx(factor=0.75, rtol=0.2, atol=0.1, accumulation_size=2.0), [1, 1])
    assert run._cache_size() - before <= 1
    # A batch of transforms: different factors and (integer) patiences, one vmapped scan.
    batch = reduce_on_plateau(
        factor=jnp.array([0.5, 0.1]), patience=jnp.array([1, 2]), cooldown=jnp.array([0, 1])
    )
    axes = jax.tree.map(lambda x: 0 if jnp.ndim(x) else None, batch)
    out = jax.vmap(lambda t: run(t, jnp.ones(5)).scale, in_axes=(axes,))(batch)
    np.testing.assert_allclose(out[0], [1, .5, .25, .125, .0625])
    np.testing.assert_allclose(out[1], [1, 1, .1, .1, .1])


def test_dtypes():
    params = {"a": jnp.zeros(2, jnp.bfloat16), "b": jnp.zeros([], jnp.float32)}
    t = reduce_on_plateau()
    state = t.init(params)
    assert state.scale.dtype == jnp.bfloat16 and state.best_value.dtype == jnp.float32
    for f in ("plateau_count", "cooldown_count", "count"):
        assert getattr(state, f).dtype == jnp.int32
    u, new = t.update(params, state, value=jnp.float64(1.0))
    assert jax.tree.map(lambda x: x.dtype, u) == jax.tree.map(lambda x: x.dtype, params)
    assert jax.tree.map(lambda x: x.dtype, new) == jax.tree.map(lambda x: x.dtype, state)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(factor=0.0), "factor"),
        (dict(factor=1.5), "factor"),
        (dict(patience=-1), "patience"),
        (dict(patience=2.5), "patience"),
        (dict(patience=float("inf")), "patience"),
        (dict(rtol=-1e-3), "rtol"),
        (dict(atol=-1.0), "atol"),
        (dict(cooldown=0.5), "cooldown"),
        (dict(accumulation_size=0), "accumulation_size"),
        (dict(min_scale=1.5), "min_scale"),
    ],
)
def test_bad_hyperparameters(kw, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        reduce_on_plateau(**kw)


def test_bad_calls():
    with pytest.raises(TypeError, match="`factor` cannot be a schedule"):
        reduce_on_plateau(factor=lambda count: 0.5)
    t = reduce_on_plateau()
    state = t.init(jnp.zeros(2))
    with pytest.raises(TypeError, match="`value`"):
        t.update(jnp.ones(2), state)
    with pytest.raises(ValueError, match="`value` must be a scalar"):
        t.update(jnp.ones(2), state, value=jnp.ones(2))
