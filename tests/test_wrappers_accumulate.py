"""multi_steps, lookahead, conditionally_*, freeze, keep_params_nonnegative: parity with optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.optimizers.adam_family import adam
from gradtx.optimizers.classic import sgd
from gradtx.transforms.basic import scale
from gradtx.wrappers.accumulate import multi_steps
from gradtx.wrappers.conditional import (
    conditionally_mask,
    conditionally_transform,
    freeze,
    keep_params_nonnegative,
)
from gradtx.wrappers.lookahead import LookaheadParams, lookahead

GRADS = [jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]), jnp.array([-1.0, 1.0]),
         jnp.array([2.0, 0.25]), jnp.array([0.0, -1.5]), jnp.array([1.5, 1.0])]


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12, atol=1e-14)


def _run(tx, params, grads, jit=True):
    state = tx.init(params)
    step = jax.jit(tx.update) if jit else tx.update
    outs = []
    for g in grads:
        u, state = step(g, state, params)
        params = jax.tree.map(lambda p, d: p + d, params, u)
        outs.append(u)
    return outs, state, params


@pytest.mark.parametrize("use_grad_mean", [True, False])
def test_multi_steps_parity_with_optax(use_grad_mean):
    p = jnp.zeros(2)
    ours, s1, _ = _run(multi_steps(adam(0.1), 3, use_grad_mean=use_grad_mean), p, GRADS)
    ref = optax.MultiSteps(optax.adam(0.1), 3, use_grad_mean=use_grad_mean, accumulator_dtype=jnp.float64)
    theirs, s2, _ = _run(ref.gradient_transformation(), p, GRADS)
    _close(ours, theirs)
    assert int(s1.mini_step) == int(s2.mini_step) == 0 and int(s1.gradient_step) == int(s2.gradient_step) == 2
    _close(s1.inner_opt_state, s2.inner_opt_state)
    _close(s1.acc_grads, s2.acc_grads)


def test_multi_steps_equals_big_batch_sgd():
    # Loss 0.5 * mean_j |w - x_j|^2: the micro-batch gradient is w - x_j, frozen w between real steps.
    xs = jnp.array([[1.0], [3.0], [2.0], [6.0]])
    tx = multi_steps(sgd(0.5), every_k=4)
    w, state = jnp.zeros(1), tx.init(jnp.zeros(1))
    for j in range(4):
        u, state = tx.update(w - xs[j], state, w)
        assert (j == 3) or float(u[0]) == 0.0
        w = w + u
    # One big-batch step: w = 0 - 0.5 * (0 - mean(x)) = 0.5 * 3 = 1.5.
    np.testing.assert_allclose(w, [1.5])
    assert int(state.gradient_step) == 1 and bool(tx.has_updated(state))


def test_multi_steps_inner_state_advances_only_on_real_steps():
    tx = multi_steps(adam(0.1), 2)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(GRADS[0], state)
    assert int(state.inner_opt_state[0].count) == 0
    _, state = tx.update(GRADS[1], state)
    assert int(state.inner_opt_state[0].count) == 1


def test_multi_steps_bf16_grads_f32_accumulator():
    tx = multi_steps(sgd(1.0), 3, accumulator_dtype=jnp.float32)
    p = jnp.zeros(2, jnp.bfloat16)
    state = tx.init(p)
    assert state.acc_grads.dtype == jnp.float32
    g = jnp.array([1.0, 1 / 3], jnp.bfloat16)
    for _ in range(2):
        u, state = jax.jit(tx.update)(g, state)
        assert state.acc_grads.dtype == jnp.float32 and u.dtype == jnp.bfloat16
    u, state = tx.update(g, state)
    assert u.dtype == jnp.bfloat16 and state.acc_grads.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(u, np.float32), -np.asarray(g, np.float32), rtol=1e-2)


def test_multi_steps_vmap_over_every_k():
    ks = jnp.array([1, 2, 3], jnp.int32)
    g = jnp.ones(1)

    def run(k):
        tx = multi_steps(sgd(1.0), k)
        state = tx.init(jnp.zeros(1))
        total = jnp.zeros(1)
        for _ in range(6):
            u, state = tx.update(g, state)
            total = total + u
        return total, state.gradient_step

    totals, steps = jax.jit(jax.vmap(run))(ks)
    # k micro-steps per real step of -mean(g) = -1: 6 // k real steps.
    np.testing.assert_allclose(totals[:, 0], [-6.0, -3.0, -2.0])
    np.testing.assert_array_equal(steps, [6, 3, 2])


def test_multi_steps_schedule_of_gradient_step():
    tx = multi_steps(sgd(1.0), lambda step: jnp.where(step < 1, 1, 2), use_grad_mean=False)
    state = tx.init(jnp.zeros(1))
    outs = []
    for _ in range(3):
        u, state = tx.update(jnp.ones(1), state)
        outs.append(float(u[0]))
    assert outs == [-1.0, 0.0, -2.0]


def test_multi_steps_bad_arguments():
    with pytest.raises(ValueError, match="every_k"):
        multi_steps(sgd(1.0), 0)
    with pytest.raises(ValueError, match="every_k"):
        multi_steps(sgd(1.0), 2.5)
    with pytest.raises(TypeError, match="use_grad_mean"):
        multi_steps(sgd(1.0), 2, use_grad_mean="yes")
    with pytest.raises(TypeError, match="accumulator_dtype"):
        multi_steps(sgd(1.0), 2, accumulator_dtype="not-a-dtype")
    with pytest.raises(TypeError, match="multi_steps"):
        multi_steps(3.0, 2)


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_parity_with_optax(reset_state):
    p0 = jnp.array([1.0, -2.0])
    grads = [g * 0.1 for g in GRADS]
    ours, s1, p1 = _run(lookahead(adam(0.1), 2, 0.5, reset_state), LookaheadParams.init_synced(p0), grads)
    ref = optax.lookahead(optax.adam(0.1), 2, 0.5, reset_state)
    theirs, s2, p2 = _run(ref, optax.LookaheadParams.init_synced(p0), grads)
    _close(ours, theirs)
    _close(p1, p2)
    _close(s1, s2)


def test_lookahead_closed_form_and_optax_params():
    # SGD(1) on grad = 1 for 3 fast steps: fast = 0 - 3, slow = 0 + 0.5 * (-3 - 0).
    tx = lookahead(sgd(1.0), sync_period=3, slow_step_size=0.5)
    params = optax.LookaheadParams.init_synced(jnp.zeros(1))
    state = tx.init(params)
    for _ in range(3):
        u, state = tx.update(jnp.ones(1), state, params)
        assert isinstance(u, optax.LookaheadParams)
        params = jax.tree.map(lambda p, d: p + d, params, u)
    np.testing.assert_allclose(params.slow, [-1.5])
    np.testing.assert_allclose(params.fast, [-1.5])


def test_lookahead_bad_arguments():
    with pytest.raises(ValueError, match="sync_period"):
        lookahead(sgd(1.0), 0, 0.5)
    with pytest.raises(ValueError, match="slow_step_size"):
        lookahead(sgd(1.0), 2, 1.5)
    with pytest.raises(TypeError, match="slow_step_size"):
        lookahead(sgd(1.0), 2, lambda c: 0.5)
    tx = lookahead(sgd(1.0), 2, 0.5)
    with pytest.raises(ValueError, match="LookaheadParams"):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)), jnp.ones(1))


def test_conditionally_transform_and_mask_parity():
    fn = lambda step: step % 3 != 1  # noqa: E731
    p = jnp.zeros(2)
    for ours_f, theirs_f in [(conditionally_transform, optax.conditionally_transform),
                             (conditionally_mask, optax.conditionally_mask)]:
        ours, s1, _ = _run(ours_f(adam(0.1), fn), p, GRADS)
        theirs, s2, _ = _run(theirs_f(optax.adam(0.1), fn), p, GRADS)
        _close(ours, theirs)
        assert type(s1).__name__ == type(s2).__name__ and s1._fields == s2._fields
        _close(s1, s2)
    # Closed form: pass-through vs zeros at step 1.
    for wrap, expected in [(conditionally_transform, GRADS[1]), (conditionally_mask, 0 * GRADS[1])]:
        tx = wrap(scale(10.0), fn)
        u0, state = tx.update(GRADS[0], tx.init(p))
        u1, _ = tx.update(GRADS[1], state)
        np.testing.assert_allclose(u0, 10 * GRADS[0])
        np.testing.assert_allclose(u1, expected)


def test_conditional_forward_extra_args_and_errors():
    tx = conditionally_mask(scale(2.0), lambda step, loss: loss < 1.0, forward_extra_args=True)
    state = tx.init(jnp.ones(1))
    u, _ = tx.update(jnp.ones(1), state, loss=0.5)
    np.testing.assert_allclose(u, [2.0])
    u, _ = tx.update(jnp.ones(1), state, loss=5.0)
    np.testing.assert_allclose(u, [0.0])
    with pytest.raises(TypeError, match="should_transform_fn"):
        conditionally_transform(scale(2.0), True)
    with pytest.raises(TypeError, match="forward_extra_args"):
        conditionally_mask(scale(2.0), lambda s: True, forward_extra_args=1)
    bad = conditionally_mask(scale(2.0), lambda s: jnp.ones(2, bool))
    with pytest.raises(ValueError, match="should_transform_fn"):
        bad.update(jnp.ones(1), bad.init(jnp.ones(1)))


def test_freeze_parity_and_errors():
    g = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([-3.0])}
    for mask in [{"a": True, "b": False}, True, False]:
        u, _ = freeze(mask).update(g, freeze(mask).init(g))
        ref = optax.transforms.freeze(mask)
        v, _ = ref.update(g, ref.init(g))
        _close(u, v)
    u, _ = freeze({"a": True, "b": False}).update(g, freeze({"a": True, "b": False}).init(g))
    np.testing.assert_array_equal(u["a"], [0.0, 0.0])
    np.testing.assert_array_equal(u["b"], [-3.0])
    with pytest.raises(TypeError, match="mask"):
        freeze({"a": 0.5, "b": False})


def test_keep_params_nonnegative_parity_and_errors():
    p = jnp.array([0.5, 2.0, -1.0, 0.0])
    g = jnp.array([-1.0, -1.0, 0.5, 3.0])
    u, _ = keep_params_nonnegative().update(g, keep_params_nonnegative().init(p), p)
    v, _ = optax.keep_params_nonnegative().update(g, optax.keep_params_nonnegative().init(p), p)
    _close(u, v)
    np.testing.assert_allclose(p + u, [0.0, 1.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="params"):
        keep_params_nonnegative().update(g, keep_params_nonnegative().init(p))
