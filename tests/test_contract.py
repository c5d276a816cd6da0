"""Contract tests for every optimizer in the registry (gx.OPTIMIZERS).

Each entry must: converge on a quadratic and on Rosenbrock; trace once for many
hyperparameter values; give under ``vmap`` over learning rates what separate
runs give; keep parameter dtypes (f32, bf16, f64, complex where supported);
and keep its state's structure and dtypes across jitted steps.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx

NAMES = sorted(gx.OPTIMIZERS)
QUADRATIC = gx.quadratic((1.0, -2.0), (1.0, 10.0))
ROSENBROCK = gx.rosenbrock()


def _loss(w):
    # A small problem on a two-leaf tree, real or complex parameters.
    return jnp.sum(jnp.abs(w["a"] - 1.0) ** 2) + 0.5 * jnp.sum(jnp.abs(w["b"] + 0.5) ** 2)


def _params(dtype):
    # Start at 0, where bf16 resolves small steps (AdaDelta's first steps are
    # ~lr*sqrt(eps), far below bf16's spacing of ~4e-4 near 0.1).
    return {"a": jnp.zeros((3,), dtype), "b": jnp.zeros((2, 2), dtype)}


@functools.partial(jax.jit, static_argnames="steps")
def _train(opt, params, steps=20):
    """Runs ``steps`` jitted updates; ``opt`` is an argument (a pytree)."""

    def step(carry, _):
        p, s = carry
        g = jax.grad(lambda q: _loss(q).real)(p)
        g = jax.tree.map(jnp.conj, g)  # descent direction for complex params
        u, s = opt.update(g, s, p)
        wide = jax.tree.map(lambda x: x.astype(jnp.promote_types(x.dtype, jnp.float32)), p)
        return (gx.apply_updates(p, u), s), _loss(wide).real  # loss read in >= f32

    (p, s), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return p, s, losses


@pytest.mark.parametrize("problem", [QUADRATIC, ROSENBROCK], ids=["quadratic", "rosenbrock"])
@pytest.mark.parametrize("name", NAMES)
def test_converges(name, problem):
    info = gx.OPTIMIZERS[name]
    r = gx.steps_to_tolerance(info.make(), problem, tol=1e-3, max_steps=10_000, bound=10.0)
    assert r.converged and not r.diverged, (name, r.steps, r.loss)
    np.testing.assert_allclose(np.asarray(r.params), problem.minimizer, atol=0.1)


def _another_value(x):
    return x + 1 if jnp.issubdtype(jnp.result_type(x), jnp.integer) else x * 0.5


@pytest.mark.parametrize("name", NAMES)
def test_one_trace_for_many_hyperparameter_values(name):
    info = gx.OPTIMIZERS[name]
    traces = 0

    @jax.jit
    def step(opt, params):
        nonlocal traces
        traces += 1
        state = opt.init(params)
        u, state = opt.update(params, state, params)
        return gx.apply_updates(params, u), state

    params = _params(jnp.float32)
    for lr in (1e-3, 3e-2, 0.25):
        step(info.make(learning_rate=lr), params)
    assert traces == 1
    # Arrays are another (strongly typed) input type: one more trace, then none.
    for lr in (1e-3, 3e-2, 0.25):
        step(info.make(learning_rate=jnp.asarray(lr, jnp.float32)), params)
    assert traces == 2
    # chex agrees: a second value of every numeric hyperparameter does not retrace.
    chex.clear_trace_counter()
    checked = chex.assert_max_traces(n=1)(lambda opt, p: opt.update(p, opt.init(p), p))
    jitted = jax.jit(checked)
    jitted(info.make(), params)
    # Floats halved; integer leaves (a noise seed, a window length) moved by one, keeping their dtype.
    jitted(jax.tree.map(_another_value, info.make()), params)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_learning_rates_equals_separate_runs(name):
    info = gx.OPTIMIZERS[name]
    lrs = jnp.array([1e-3, 1e-2, 3e-2, 1e-1], jnp.float32)
    params = _params(jnp.float32)
    batched = jax.vmap(lambda lr: info.make(learning_rate=lr))(lrs)
    p_batched, _, loss_batched = jax.vmap(_train, in_axes=(0, None))(batched, params)
    for i, lr in enumerate(lrs):
        p, _, losses = _train(info.make(learning_rate=float(lr)), params)
        np.testing.assert_allclose(loss_batched[i], losses, rtol=2e-5, atol=1e-6)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], p_batched), p, rtol=2e-5, atol=1e-6)


DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16, "f64": jnp.float64, "c64": jnp.complex64}


@pytest.mark.parametrize("dtype", list(DTYPES), ids=list(DTYPES))
@pytest.mark.parametrize("name", NAMES)
def test_dtype_preserved_and_state_stable(name, dtype):
    info = gx.OPTIMIZERS[name]
    dt = DTYPES[dtype]
    if jnp.issubdtype(dt, jnp.complexfloating) and not info.complex_ok:
        pytest.skip(f"{name} does not support complex parameters")
    opt = info.make(learning_rate=1e-2)
    params = _params(dt)
    state0 = opt.init(params)
    p, state, losses = _train(opt, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(p, params)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
    chex.assert_tree_all_finite(p)
    assert losses[-1] < losses[0], f"{name} in {dtype} did not reduce the loss"
