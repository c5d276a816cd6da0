"""EarlyStopping: hand-computed sequences, min_delta, modes, vmap and scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.classic import sgd
from gradtx.wrappers.early_stopping import EarlyStopping, EarlyStoppingState


@jax.jit
def run(es, values):
    """The state after each value (a scan over ``es.update``)."""

    def step(state, v):
        state = es.update(state, v)
        return state, state

    return jax.lax.scan(step, es.init(), jnp.asarray(values, float))[1]


def check(states, best, since_best, stopped, count):
    np.testing.assert_allclose(states.best, best)
    np.testing.assert_array_equal(states.since_best, since_best)
    np.testing.assert_array_equal(states.stopped, stopped)
    np.testing.assert_array_equal(states.count, count)


F, T = False, True


def test_min_mode_sequence():
    # 5, 4 improve; 4.5 no; 3 improves; 3 (not strictly better) and 3.5 no -> stop; 2 is ignored.
    states = run(EarlyStopping(2.0), [5, 4, 4.5, 3, 3, 3.5, 2])
    check(states, [5, 4, 4, 3, 3, 3, 3], [0, 0, 1, 0, 1, 2, 2], [F, F, F, F, F, T, T], [1, 2, 3, 4, 5, 6, 6])


def test_min_delta():
    # best 10: 9.6 is not below 9.5; 9.4 is; 9.0 is not below 8.9; 8.8 is.
    states = run(EarlyStopping(2.0, min_delta=0.5), [10, 9.6, 9.4, 9.0, 8.8])
    check(states, [10, 10, 9.4, 9.4, 8.8], [0, 1, 0, 1, 0], [F] * 5, [1, 2, 3, 4, 5])
    states = run(EarlyStopping(1.0, min_delta=0.5), [10, 9.6, 9.4, 9.0, 8.8])
    check(states, [10, 10, 10, 10, 10], [0, 1, 1, 1, 1], [F, T, T, T, T], [1, 2, 2, 2, 2])


def test_max_mode():
    values = [1, 1.25, 1.5, 1.75, 2.25]
    # min_delta .25: 1.25 and 1.75 are not above best + .25; 1.5 and 2.25 are.
    states = run(EarlyStopping(2.0, 0.25, mode="max"), values)
    check(states, [1, 1, 1.5, 1.5, 2.25], [0, 1, 0, 1, 0], [F] * 5, [1, 2, 3, 4, 5])
    states = run(EarlyStopping(1.0, 0.25, mode="max"), values)
    check(states, [1] * 5, [0, 1, 1, 1, 1], [F, T, T, T, T], [1, 2, 2, 2, 2])


def test_negative_values():
    states = run(EarlyStopping(2.0), [-1, -2, -2, -1.5, -3])
    check(states, [-1, -2, -2, -2, -2], [0, 0, 1, 2, 2], [F, F, F, T, T], [1, 2, 3, 4, 4])
    states = run(EarlyStopping(2.0, 0.25, mode="max"), [-3, -2, -1.8, -2.5, 0])
    check(states, [-3, -2, -2, -2, -2], [0, 0, 1, 2, 2], [F, F, F, T, T], [1, 2, 3, 4, 4])


def test_patience_zero_and_nan():
    # patience 0 stops at the first value that does not improve, never at an improvement.
    states = run(EarlyStopping(0.0), [3, 2, 2, 1])
    check(states, [3, 2, 2, 2], [0, 0, 1, 1], [F, F, T, T], [1, 2, 3, 3])
    # NaN never improves: it counts towards patience.
    states = run(EarlyStopping(2.0), [1, np.nan, np.nan, 0])
    check(states, [1, 1, 1, 1], [0, 1, 2, 2], [F, F, T, T], [1, 2, 3, 3])


def test_vmap_over_patience_and_min_delta_without_recompiles():
    before = run._cache_size()
    run(EarlyStopping(5.0, 0.1), [1.0] * 6)
    run(EarlyStopping(7.0, 0.3), [1.0] * 6)
    assert run._cache_size() - before <= 1
    batch = EarlyStopping(jnp.array([0, 1, 2, 3]), jnp.array([0.0, 0.0, 0.0, 1.5]))
    final = jax.vmap(lambda es: jax.tree.map(lambda x: x[-1], run(es, [3, 2, 2, 2, 2, 2])))(batch)
    # The first three stop after 1, 1 and 2 values without improvement; the last
    # (min_delta 1.5) never sees 2 improve on 3, so it stops after 3 such values.
    np.testing.assert_array_equal(final.count, [3, 3, 4, 4])
    np.testing.assert_array_equal(final.stopped, [T, T, T, T])
    np.testing.assert_allclose(final.best, [2, 2, 2, 3])


def test_freezes_training_inside_scan():
    opt, es = sgd(0.1), EarlyStopping(1.0, min_delta=0.2)
    loss_fn = lambda x: jnp.sum(x**2)

    @jax.jit
    def train(x0):
        def step(carry, _):
            x, opt_state, es_state = carry
            loss, g = jax.value_and_grad(loss_fn)(x)
            u, new_opt_state = opt.update(g, opt_state, x)
            es_state = es.update(es_state, loss)
            keep = lambda old, new: jnp.where(es_state.stopped, old, new)
            x, opt_state = jax.tree.map(keep, (x, opt_state), (apply_updates(x, u), new_opt_state))
            return (x, opt_state, es_state), loss

        return jax.lax.scan(step, (x0, opt.init(x0), es.init()), length=8)

    x0 = jnp.array([1.0, 0.0])
    (x, _, state), losses = train(x0)
    # x_k = 0.8^k: losses 1, .64, .4096 improve by > .2; .262144 does not -> stop, frozen at x_3.
    np.testing.assert_allclose(losses, [1, .64, .4096] + [.262144] * 5)
    np.testing.assert_allclose(x, [0.8**3, 0.0])
    assert bool(state.stopped) and int(state.count) == 4 and int(state.count - state.since_best) == 3


def test_dtype_and_errors():
    es = EarlyStopping(3)
    state = es.init(jnp.float32)
    assert state == EarlyStoppingState(state.best, state.since_best, state.stopped, state.count)
    assert state.best.dtype == jnp.float32 and state.count.dtype == jnp.int32
    assert state.stopped.dtype == jnp.bool_ and float(EarlyStopping(3, mode="max").init().best) == -np.inf
    new = es.update(state, jnp.float64(2.0))
    assert jax.tree.map(lambda x: x.dtype, new) == jax.tree.map(lambda x: x.dtype, state)
    with pytest.raises(ValueError, match="`value` must be a scalar"):
        es.update(state, jnp.ones(2))
    for kw, name in [(dict(patience=-1), "patience"), (dict(patience=1.5), "patience"),
                     (dict(patience=2, min_delta=-0.1), "min_delta"), (dict(patience=2, mode="avg"), "mode")]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            EarlyStopping(**kw)
    with pytest.raises(TypeError, match="schedules"):
        EarlyStopping(lambda count: 3)
