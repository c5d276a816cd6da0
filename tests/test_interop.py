"""Duck-typing with optax and flax: gradtx in optax.chain, optax in gx.chain, nnx tx."""

from __future__ import annotations

import jax
import jax.numpy as jnp
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


@pytest.mark.parametrize("make", [lambda: gx.adamw(1e-2), lambda: gx.sgd(gx.cosine_decay_schedule(0.1, 100), momentum=0.9)], ids=["adamw", "sgd-schedule"])
def test_nnx_optimizer_with_gradtx_tx(make):
    x = jnp.linspace(-1, 1, 32, dtype=jnp.float32).reshape(16, 2)
    y = jnp.sum(x, axis=1, keepdims=True) ** 2
    model = _MLP(nnx.Rngs(0))
    opt = nnx.Optimizer(model, make(), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(60)]
    assert losses[-1] < 0.5 * losses[0]
