"""Contract tests for every optimizer in the registry (gx.OPTIMIZERS).

Each entry must: converge on a quadratic and on Rosenbrock; trace once for many
hyperparameter values; give under ``vmap`` over learning rates what separate
runs give; keep parameter dtypes (f32, bf16, f64, complex where supported);
and keep its state's structure and dtypes across jitted steps. An entry whose
``update`` needs extra arguments (``info.extra_args``: the loss ``value``, its
``grad``, the ``value_fn``) gets exactly those, and fails without them.
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


def _real_loss(w):
    return _loss(w).real


def _extra(info, params):
    """The extra ``update`` arguments ``info`` declares, for ``_loss`` at ``params``."""
    value, grad = jax.value_and_grad(_real_loss)(params)
    return info.update_kwargs(value=value, grad=grad, value_fn=_real_loss)


@functools.partial(jax.jit, static_argnames=("steps", "extra_args"))
def _train(opt, params, steps=20, extra_args=()):
    """Runs ``steps`` jitted updates; ``opt`` is an argument (a pytree)."""

    def step(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(_real_loss)(p)
        g = jax.tree.map(jnp.conj, grad)  # descent direction for complex params
        offered = {"value": value, "grad": grad, "value_fn": _real_loss}
        u, s = opt.update(g, s, p, **{k: offered[k] for k in extra_args})
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
        u, state = opt.update(params, state, params, **_extra(info, params))
        return gx.apply_updates(params, u), state

    params = _params(jnp.float32)
    for lr in (1e-3, 3e-2, 0.25):
        step(info.make(**{info.swept: lr}), params)
    assert traces == 1
    # Arrays are another (strongly typed) input type: one more trace, then none.
    for lr in (1e-3, 3e-2, 0.25):
        step(info.make(**{info.swept: jnp.asarray(lr, jnp.float32)}), params)
    assert traces == 2
    # chex agrees: a second value of every numeric hyperparameter does not retrace.
    chex.clear_trace_counter()
    checked = chex.assert_max_traces(n=1)(lambda opt, p: opt.update(p, opt.init(p), p, **_extra(info, p)))
    jitted = jax.jit(checked)
    jitted(info.make(), params)
    # Floats halved; integer leaves (a noise seed, a window length) moved by one, keeping their dtype.
    jitted(jax.tree.map(_another_value, info.make()), params)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_learning_rates_equals_separate_runs(name):
    info = gx.OPTIMIZERS[name]
    # Not 0.1: with it, L-BFGS's first trial step on this problem meets the curvature
    # condition |phi'(1)| <= 0.9 |phi'(0)| with equality, and float32 rounding (which differs
    # between a vmapped and a lone program) decides the tie. 0.08 meets no such tie here.
    lrs = jnp.array([1e-3, 1e-2, 3e-2, 8e-2], jnp.float32)
    params = _params(jnp.float32)
    batched = jax.vmap(lambda lr: info.make(**{info.swept: lr}))(lrs)
    train = functools.partial(_train, extra_args=info.extra_args)
    p_batched, _, loss_batched = jax.vmap(train, in_axes=(0, None))(batched, params)
    for i, lr in enumerate(lrs):
        p, _, losses = train(info.make(**{info.swept: float(lr)}), params)
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
    opt = info.make(**{info.swept: 1e-2})
    params = _params(dt)
    state0 = opt.init(params)
    p, state, losses = _train(opt, params, extra_args=info.extra_args)
    chex.assert_trees_all_equal_shapes_and_dtypes(p, params)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
    chex.assert_tree_all_finite(p)
    assert losses[-1] < losses[0], f"{name} in {dtype} did not reduce the loss"


@pytest.mark.parametrize("name", [n for n in NAMES if gx.OPTIMIZERS[n].extra_args])
def test_declared_extra_args_are_needed_and_named(name):
    """Each declared extra argument is really needed: without it ``update`` says which one is missing."""
    info = gx.OPTIMIZERS[name]
    params = _params(jnp.float32)
    opt = info.make()
    state = opt.init(params)
    full = _extra(info, params)
    opt.update(params, state, params, **full)  # all given: fine
    for missing in info.extra_args:
        if missing == "grad":  # optional where it can be recomputed from value_fn
            continue
        given = {k: v for k, v in full.items() if k != missing}
        with pytest.raises((TypeError, ValueError), match=f"`{missing}`"):
            opt.update(params, state, params, **given)
