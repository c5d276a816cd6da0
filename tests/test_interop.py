"""Duck-typing with optax, flax and equinox: gradtx in optax.chain (and `gx.as_optax`), optax in gx.chain, nnx tx, eqx models."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import equinox as eqx
import numpy as np
import optax
import pytest
from flax import nnx

import gradtx as gx


def _grads(n=5):
    rng = np.random.default_rng(0)
    return [{"w": jnp.asarray(rng.standard_normal((3, 2))), "b": jnp.asarray(rng.standard_normal(2))} for _ in range(n)]


def _run(tx, params, grads):
    state = tx.init(params)
    for g in grads:
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


def test_gradtx_inside_optax_chain():
    grads = _grads()
    params = jax.tree.map(jnp.zeros_like, grads[0])
    mixed = optax.chain(gx.clip_by_global_norm(1.0), gx.scale_by_adam(), optax.scale(-0.01))
    pure = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(), optax.scale(-0.01))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), _run(mixed, params, grads), _run(pure, params, grads))


def test_optax_inside_gx_chain():
    grads = _grads()
    params = jax.tree.map(jnp.zeros_like, grads[0])
    mixed = gx.chain(optax.clip_by_global_norm(1.0), gx.scale_by_adam(), optax.scale_by_learning_rate(0.01))
    pure = gx.chain(gx.clip_by_global_norm(1.0), gx.scale_by_adam(), gx.scale_by_learning_rate(0.01))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), _run(mixed, params, grads), _run(pure, params, grads))
    # The mixed chain is still a pytree usable as a jit argument: optax parts are static.
    assert jax.jit(lambda tx, p: tx.init(p))(mixed, params) is not None


def test_extra_args_reach_optax_transforms_that_accept_them():
    seen = {}

    def update(updates, state, params=None, **extra):
        seen.update(extra)
        return updates, state

    tx = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
    chain = gx.chain(gx.scale(2.0), tx)
    chain.update(jnp.ones(2), chain.init(jnp.ones(2)), None, loss=3.0)
    assert seen == {"loss": 3.0}


class _MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(2, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.tanh(self.l1(x)))


class _ValueOptimizer(nnx.Optimizer):
    """nnx.Optimizer with the transformation as nnx data: its hyperparameters are traced leaves."""

    tx: Any = nnx.data()


def _nnx_step(x, y, traces):
    @nnx.jit
    def step(model, opt):
        traces.append(1)
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    return step


@pytest.mark.parametrize("make", [gx.adamw, lambda lr: gx.sgd(gx.cosine_decay_schedule(lr, 100), momentum=0.9)],
                         ids=["adamw", "sgd-schedule"])
def test_nnx_optimizer_with_gradtx_tx(make):
    """The two documented ways into flax.nnx.Optimizer (which keeps `tx` as a static attribute,
    and gradtx's hyperparameters are arrays, i.e. nnx data): `gx.as_optax(tx)` (hyperparameters
    closed over, as optax's), or `tx` declared nnx data, where three learning rates share a trace."""
    x = jnp.linspace(-1, 1, 32, dtype=jnp.float32).reshape(16, 2)
    y = jnp.sum(x, axis=1, keepdims=True) ** 2
    traces: list = []
    step = _nnx_step(x, y, traces)
    model = _MLP(nnx.Rngs(0))
    opt = nnx.Optimizer(model, gx.as_optax(make(1e-2)), wrt=nnx.Param)
    losses = [float(step(model, opt)) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]

    traces.clear()
    for lr in (1e-2, 2e-2, 3e-2):
        model = _MLP(nnx.Rngs(0))
        opt = _ValueOptimizer(model, make(lr), wrt=nnx.Param)
        value_losses = [float(step(model, opt)) for _ in range(60)]
        assert value_losses[-1] < 0.5 * value_losses[0]
        if lr == 1e-2:
            np.testing.assert_allclose(value_losses, losses, rtol=1e-6)
    assert len(traces) == 1


def test_nnx_optimizer_rejects_a_bare_gradtx_tx_with_flaxs_message():
    """What a user who passes `gx.adam(...)` straight to nnx.Optimizer sees (README says the fix)."""
    with pytest.raises(ValueError, match="static attribute 'tx'"):
        nnx.Optimizer(_MLP(nnx.Rngs(0)), gx.adam(1e-3), wrt=nnx.Param)


# --- gx.as_optax: extra keyword arguments through optax's combinators -------------------------


def _plateau():
    return gx.reduce_on_plateau(factor=0.3, patience=2)


def _plateau_run(opt, steps=8):
    """sgd(0.1) on 10|w|^2 flips w -> -w: the loss is flat until the plateau scale drops."""
    loss = lambda w: 10 * jnp.sum(w**2)
    w = jnp.array([1.0, -0.5])
    state = opt.init(w)
    ws, scales = [], []
    for _ in range(steps):
        v, g = jax.value_and_grad(loss)(w)
        u, state = opt.update(g, state, w, value=v)
        w = optax.apply_updates(w, u)
        ws.append(w)
        scales.append(state[1].scale)
    return np.asarray(ws), np.asarray(scales)


def test_as_optax_passes_value_to_reduce_on_plateau_in_optax_chain():
    ws, scales = _plateau_run(optax.chain(gx.as_optax(gx.sgd(0.1)), gx.as_optax(_plateau())))
    ws_gx, scales_gx = _plateau_run(gx.chain(gx.sgd(0.1), _plateau()))
    np.testing.assert_allclose(scales, [1, 1, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])  # the plateau triggered
    np.testing.assert_allclose(scales, scales_gx, rtol=1e-12)
    np.testing.assert_allclose(ws, ws_gx, rtol=1e-12)
    assert np.all(np.abs(ws[-1]) < 0.1)  # after the drop, w -> 0.4 w


def test_as_optax_passes_value_fn_to_line_search_in_optax_chain():
    f = gx.rosenbrock().loss

    def run(opt):
        @jax.jit
        def step(w, state):
            v, g = jax.value_and_grad(f)(w)
            u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
            return optax.apply_updates(w, u), state

        w = jnp.array([-1.2, 1.0])
        state = opt.init(w)
        out = []
        for _ in range(5):
            w, state = step(w, state)
            out.append((w, state[1].learning_rate))
        return jax.tree.map(lambda *x: np.stack(x), *out)

    ls = gx.scale_by_backtracking_linesearch(15)
    ws, lrs = run(optax.chain(gx.as_optax(gx.sgd(1.0)), gx.as_optax(ls)))
    ws_gx, lrs_gx = run(gx.chain(gx.sgd(1.0), ls))
    assert np.all(lrs < 1)  # it backtracked
    np.testing.assert_allclose(lrs, lrs_gx, rtol=1e-12)
    np.testing.assert_allclose(ws, ws_gx, rtol=1e-12)


def test_without_as_optax_the_error_names_it():
    w = jnp.ones(2)
    opt = optax.chain(gx.sgd(0.1), gx.reduce_on_plateau())
    with pytest.raises(TypeError, match=r"reduce_on_plateau.*`value`.*gx\.as_optax\(tx\).*gx\.chain"):
        opt.update(w, opt.init(w), w, value=1.0)
    opt = optax.chain(gx.sgd(1.0), gx.scale_by_backtracking_linesearch(5))
    with pytest.raises(ValueError, match=r"`value`, `value_fn`.*gx\.as_optax\(tx\)"):
        opt.update(w, opt.init(w), w, value=1.0, value_fn=jnp.sum)


def test_as_optax_of_transforms_that_need_no_extra_args():
    grads = _grads()
    params = jax.tree.map(jnp.zeros_like, grads[0])
    wrapped = gx.as_optax(gx.adam(0.01))
    assert isinstance(wrapped, optax.GradientTransformationExtraArgs)
    state = wrapped.init(params)
    for g in grads:  # extra arguments are ignored
        u, state = wrapped.update(g, state, params, value=1.0)
        params = optax.apply_updates(params, u)
    expected = _run(optax.adam(0.01), jax.tree.map(jnp.zeros_like, grads[0]), grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), params, expected)
    # An optax transform comes back with extra-argument support.
    assert isinstance(gx.as_optax(optax.scale(2.0)), optax.GradientTransformationExtraArgs)
    with pytest.raises(TypeError, match="gx.as_optax"):
        gx.as_optax(3.0)


def test_as_optax_inside_jit_keeps_hyperparameters_as_arguments():
    traces = []

    @jax.jit
    def step(tx, w, v):
        traces.append(1)
        opt = optax.chain(optax.identity(), gx.as_optax(tx))
        return opt.update(w, opt.init(w), w, value=v)[0]

    w = jnp.ones(2)
    for lr in (0.1, 0.2, 0.3):
        np.testing.assert_allclose(step(gx.chain(gx.sgd(lr), gx.reduce_on_plateau()), w, 1.0), -lr * w, rtol=1e-6)
    assert len(traces) == 1


def test_gradtx_imports_and_runs_without_optax():
    code = (
        "import sys; sys.modules['optax'] = None\n"
        "import jax.numpy as jnp, gradtx as gx\n"
        "opt = gx.chain(gx.sgd(0.1), gx.reduce_on_plateau())\n"
        "w = jnp.ones(2); u, _ = opt.update(w, opt.init(w), w, value=1.0)\n"
        "assert abs(float(u[0]) + 0.1) < 1e-6\n"
        "try:\n    gx.as_optax(opt)\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "pip install optax" in out.stdout


# --- equinox: an eqx.Module model trained with a gradtx optimizer as a jit argument --------------


def test_equinox_model_with_gradtx_optimizer_equals_optax_and_traces_once():
    x = jnp.linspace(-1, 1, 32, dtype=jnp.float32).reshape(16, 2)
    y = jnp.sum(x, axis=1, keepdims=True) ** 2
    traces = []

    @eqx.filter_jit
    def step(model, state, opt):
        traces.append(type(opt).__name__)
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    def train(opt):
        model = eqx.nn.MLP(2, 1, 8, 1, dtype=jnp.float32, key=jax.random.key(0))
        state = opt.init(eqx.filter(model, eqx.is_array))
        losses = []
        for _ in range(10):
            model, state, loss = step(model, state, opt)
            losses.append(loss)
        return eqx.filter(model, eqx.is_array), np.asarray(losses)

    for lr in (1e-2, 3e-2, 1e-1):
        model, losses = train(gx.adam(lr))
        model_ref, losses_ref = train(optax.adam(lr))
        assert losses[-1] < losses[0]
        assert {l.dtype for l in jax.tree.leaves(model)} == {jnp.dtype(jnp.float32)}  # a float32 model stays float32
        np.testing.assert_allclose(losses, losses_ref, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), model, model_ref)
    gradtx_traces = [t for t in traces if t == type(gx.adam(0.1)).__name__]
    assert len(gradtx_traces) == 1  # three learning rates, one compile
