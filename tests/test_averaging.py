"""Iterate averaging: exact window means, running means, EMAs, and unchanged training."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.classic import sgd
from gradtx.problems.stochastic import noisy_quadratic
from gradtx.schedules.polynomial import constant_schedule
from gradtx.transforms.clipping import clip
from gradtx.transforms.combine import chain
from gradtx.wrappers.averaging import (
    EmaParams,
    PolyakAveraging,
    averaged_params,
    ema_params,
    polyak_averaging,
)

STEPS = 20
THETA0 = {"a": np.array([1.0, -2.0, 0.5]), "b": np.array([[0.3, 0.1], [2.0, -1.0]]), "c": np.array(0.7)}
INNER = sgd(0.3, momentum=0.5)


def noise(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.normal(size=(steps, *x.shape)), THETA0)


@jax.jit
def trajectory(tx, xi):
    """Runs ``tx`` on g = theta/2 + xi_t; returns every iterate and every average."""

    def step(carry, xi_t):
        params, state = carry
        grads = jax.tree.map(lambda p, n: 0.5 * p + n, params, xi_t)
        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)
        avg = averaged_params(state) if isinstance(tx, (PolyakAveraging, EmaParams)) else None
        return (params, state), (params, avg)

    params0 = jax.tree.map(jnp.asarray, THETA0)
    _, (iterates, averages) = jax.lax.scan(step, (params0, tx.init(params0)), xi)
    return iterates, averages


def leaves_at(tree, t):
    return [np.asarray(x[t]) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("window", [1, 4, 9])
def test_window_average_is_exactly_the_mean_of_the_last_iterates(window):
    iterates, averages = trajectory(polyak_averaging(INNER, window=window), noise())
    stored = [leaves_at(iterates, t) for t in range(STEPS)]  # theta_1 .. theta_T
    for t in range(STEPS):
        last = stored[max(0, t + 1 - window) : t + 1]
        for got, xs in zip(leaves_at(averages, t), zip(*last)):
            # A plain left-to-right sum, then one division: the wrapper's arithmetic.
            np.testing.assert_array_equal(got, functools.reduce(np.add, xs) / len(xs))
            if got.ndim:  # NumPy sums a stack along axis 0 in the same order...
                np.testing.assert_array_equal(got, np.mean(np.stack(xs), axis=0))
            # ...but a 1-D stack (scalar leaf) of 8 or more pairwise, which can differ by 1 ulp.


def test_average_before_any_update_is_theta0():
    params = jax.tree.map(jnp.asarray, THETA0)
    for tx in (polyak_averaging(INNER), polyak_averaging(INNER, window=3), ema_params(INNER)):
        got = averaged_params(tx.init(params))
        jax.tree.map(np.testing.assert_array_equal, got, THETA0)


def test_running_average_is_the_mean_of_all_iterates():
    iterates, averages = trajectory(polyak_averaging(INNER), noise())
    jax.tree.map(lambda a, p: np.testing.assert_array_equal(a[0], p[0]), averages, iterates)
    for t in range(STEPS):
        for got, x in zip(leaves_at(averages, t), jax.tree.leaves(iterates)):
            np.testing.assert_allclose(got, np.mean(np.asarray(x[: t + 1]), axis=0), rtol=1e-12)


@pytest.mark.parametrize("debias", [False, True])
def test_ema_matches_numpy_recursion(debias):
    beta = 0.9
    iterates, averages = trajectory(ema_params(INNER, beta, debias=debias), noise())
    for x, got in zip(jax.tree.leaves(iterates), jax.tree.leaves(averages)):
        x = np.asarray(x)
        if debias:  # zero-started EMA m_t, divided by 1 - beta^t
            m, want = np.zeros_like(x[0]), []
            for t in range(STEPS):
                m = beta * m + (1 - beta) * x[t]
                want.append(m / (1 - beta ** (t + 1)))
        else:  # Keras: first iterate, then beta * e + (1 - beta) * theta
            want = [x[0]]
            for t in range(1, STEPS):
                want.append(beta * want[-1] + (1 - beta) * x[t])
        np.testing.assert_allclose(np.asarray(got), np.stack(want), rtol=1e-12)


def test_training_trajectory_is_bit_identical():
    plain, _ = trajectory(INNER, noise())
    for tx in (polyak_averaging(INNER), polyak_averaging(INNER, window=4), ema_params(INNER)):
        wrapped, _ = trajectory(tx, noise())
        jax.tree.map(np.testing.assert_array_equal, wrapped, plain)


@jax.jit
def noisy_quadratic_losses(tx, key):
    problem = noisy_quadratic(dim=8, kappa=10.0, start=1.0)
    params0 = problem.init(jnp.float64)

    def step(carry, k):
        params, state = carry
        grads = jax.grad(problem.batch_loss)(params, problem.data(k, 0))
        updates, state = tx.update(grads, state, params)
        return (apply_updates(params, updates), state), None

    (params, state), _ = jax.lax.scan(step, (params0, tx.init(params0)), jax.random.split(key, 300))
    return problem.loss(params), problem.loss(averaged_params(state))


@pytest.mark.parametrize("seed", [0, 1])
def test_averaged_iterate_beats_last_iterate_on_noisy_quadratic(seed):
    # Constant-rate SGD settles in a noise ball; averaging its iterates cancels the noise.
    for tx in (polyak_averaging(sgd(0.5)), polyak_averaging(sgd(0.5), window=100), ema_params(sgd(0.5))):
        last, avg = noisy_quadratic_losses(tx, jax.random.key(seed))
        assert avg < 0.5 * last, (type(tx).__name__, float(avg), float(last))


def test_vmap_over_decay_and_no_recompile():
    xi = noise(steps=6)
    decays = jnp.array([0.0, 0.5, 0.9])
    _, batched = jax.vmap(lambda d: trajectory(ema_params(INNER, d), xi))(decays)
    traces = trajectory._cache_size()
    for i, d in enumerate([0.0, 0.5, 0.9]):
        _, single = trajectory(ema_params(INNER, d), xi)
        jax.tree.map(lambda b, s: np.testing.assert_allclose(b[i], s, rtol=1e-14), batched, single)
    assert trajectory._cache_size() == traces + 1  # one compile for every decay


def test_decay_zero_tracks_the_last_iterate_and_schedules_work():
    xi = noise(steps=5)
    iterates, zero = trajectory(ema_params(INNER, 0.0), xi)
    jax.tree.map(np.testing.assert_array_equal, zero, iterates)
    _, const = trajectory(ema_params(INNER, 0.9), xi)
    _, sched = trajectory(ema_params(INNER, constant_schedule(0.9)), xi)
    jax.tree.map(np.testing.assert_array_equal, sched, const)


def test_nested_in_chain_and_kinds():
    tx = chain(clip(10.0), polyak_averaging(ema_params(INNER, 0.5), window=2))
    params = {"w": jnp.array([1.0, 2.0])}
    state = tx.init(params)
    for g in ([1.0, -1.0], [3.0, 0.0]):
        updates, state = tx.update({"w": jnp.array(g)}, state, params)
        params = apply_updates(params, updates)
    # sgd(0.3, momentum=0.5): theta_1 = [0.7, 2.3]; u_2 = -0.3 * ([3, 0] + 0.5 * [1, -1])
    theta1, theta2 = np.array([0.7, 2.3]), np.array([0.7 - 1.05, 2.3 + 0.15])
    np.testing.assert_allclose(params["w"], theta2, rtol=1e-14)
    np.testing.assert_allclose(averaged_params(state, "window")["w"], (theta1 + theta2) / 2, rtol=1e-14)
    np.testing.assert_allclose(averaged_params(state, "ema")["w"], (theta1 + theta2) / 2, rtol=1e-14)
    with pytest.raises(ValueError, match="kind="):
        averaged_params(state)
    with pytest.raises(ValueError, match="none is 'running'"):
        averaged_params(state, "running")
    with pytest.raises(ValueError, match="`kind` must be"):
        averaged_params(state, "mean")
    with pytest.raises(ValueError, match="no averaging state"):
        averaged_params(INNER.init(params))


def test_float32_optax_inner():
    tx = polyak_averaging(optax.sgd(0.5))
    params = jnp.array([1.0, 2.0], jnp.float32)
    state = tx.init(params)
    updates, state = tx.update(jnp.array([2.0, 2.0], jnp.float32), state, params)
    np.testing.assert_array_equal(updates, [-1.0, -1.0])  # passed through unchanged
    avg = averaged_params(state)
    assert avg.dtype == jnp.float32
    np.testing.assert_array_equal(avg, [0.0, 1.0])


def test_errors_name_the_argument():
    params = jnp.zeros(2)
    tx = ema_params(INNER)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError, match="`window` must be >= 1"):
        polyak_averaging(INNER, window=0)
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="`window` must be None or a positive int"):
            polyak_averaging(INNER, window=bad)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="`decay` must be in"):
            ema_params(INNER, bad)
    with pytest.raises(TypeError, match="gx.ema_params"):
        ema_params(object())
