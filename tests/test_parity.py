"""Parity with optax for every name both libraries share.

Random nested pytrees (dicts, lists, tuples, scalars, matrices), random
hyperparameters (hypothesis), random gradients, 100 steps; updates and state
leaves agree to rtol 1e-6 in float64 and 1e-5 in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradtx as gx
from helpers import named_leaves

STEPS = 100
EXAMPLES = 3  # per case and dtype: ~220 random configurations in all

# Nested pytrees: dict / list / tuple nodes, a scalar, vectors and a matrix.
STRUCTURES = [
    lambda r: {"w": r((3, 2)), "b": r((2,))},
    lambda r: {"layers": [r((2, 2)), (r(()), r((3,)))], "head": {"k": r((1, 3))}},
    lambda r: (r((4,)), [r(()), {"z": r((2, 1, 2))}]),
]


def unit(lo=0.0, hi=0.99):
    return st.floats(lo, hi)


LR = st.floats(1e-4, 0.3)
EPS = st.floats(1e-8, 1e-3)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    gx_fn: Callable[..., Any]
    optax_fn: Callable[..., Any]
    hypers: dict  # name -> strategy
    fixed: dict = dataclasses.field(default_factory=dict)
    needs_params: bool = False


def case(name, gx_fn, optax_fn=None, needs_params=False, fixed=None, **hypers):
    return Case(name, gx_fn, optax_fn or getattr(optax, gx_fn.__name__), hypers, fixed or {}, needs_params)


def _mask(params):
    # Decay only the matrices: a callable mask (static, like optax's).
    return jax.tree.map(lambda p: p.ndim >= 2, params)


CASES = [
    case("scale", gx.scale, step_size=st.floats(-2.0, 2.0)),
    case("scale_by_learning_rate", gx.scale_by_learning_rate, learning_rate=LR),
    case("scale_by_learning_rate_noflip", gx.scale_by_learning_rate, optax.scale_by_learning_rate,
         fixed={"flip_sign": False}, learning_rate=LR),
    case("scale_by_schedule", lambda init_value, decay_rate: gx.scale_by_schedule(gx.exponential_decay(init_value, 10, decay_rate)),
         lambda init_value, decay_rate: optax.scale_by_schedule(optax.exponential_decay(init_value, 10, decay_rate)),
         init_value=LR, decay_rate=st.floats(0.5, 0.99)),
    case("trace", gx.trace, decay=unit(), nesterov=st.booleans()),
    case("scale_by_momentum", lambda momentum, nesterov: gx.scale_by_momentum(momentum, nesterov=nesterov),
         lambda momentum, nesterov: optax.trace(momentum, nesterov), momentum=unit(), nesterov=st.booleans()),
    case("ema", gx.ema, decay=unit(), debias=st.booleans()),
    case("scale_by_rms", gx.scale_by_rms, decay=unit(0.5), eps=EPS, initial_scale=st.floats(0.0, 1.0),
         eps_in_sqrt=st.booleans(), bias_correction=st.booleans()),
    case("scale_by_stddev", gx.scale_by_stddev, decay=unit(0.5), eps=EPS, initial_scale=st.floats(0.0, 1.0),
         eps_in_sqrt=st.booleans(), bias_correction=st.booleans()),
    case("scale_by_rss", gx.scale_by_rss, initial_accumulator_value=st.floats(0.0, 1.0), eps=EPS),
    case("scale_by_adam", gx.scale_by_adam, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS, eps_root=st.floats(0.0, 1e-6),
         nesterov=st.booleans()),
    case("scale_by_adamax", gx.scale_by_adamax, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS),
    case("scale_by_amsgrad", gx.scale_by_amsgrad, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         bias_correction_mu=st.booleans(), bias_correction_nu=st.booleans()),
    case("scale_by_adadelta", gx.scale_by_adadelta, rho=unit(0.5), eps=EPS),
    case("scale_by_sign", gx.scale_by_sign),
    case("identity", gx.identity),
    case("set_to_zero", gx.set_to_zero),
    case("add_decayed_weights", gx.add_decayed_weights, needs_params=True, weight_decay=st.floats(0.0, 0.1)),
    case("add_decayed_weights_masked", gx.add_decayed_weights, optax.add_decayed_weights, needs_params=True,
         fixed={"mask": _mask}, weight_decay=st.floats(0.0, 0.1)),
    case("clip", gx.clip, max_delta=st.floats(0.01, 2.0)),
    case("clip_by_global_norm", gx.clip_by_global_norm, max_norm=st.floats(0.01, 5.0)),
    case("clip_by_block_rms", gx.clip_by_block_rms, threshold=st.floats(0.01, 2.0)),
    case("chain", lambda max_norm, learning_rate: gx.chain(gx.clip_by_global_norm(max_norm), gx.scale_by_adam(), gx.scale_by_learning_rate(learning_rate)),
         lambda max_norm, learning_rate: optax.chain(optax.clip_by_global_norm(max_norm), optax.scale_by_adam(), optax.scale_by_learning_rate(learning_rate)),
         max_norm=st.floats(0.1, 5.0), learning_rate=LR),
    case("named_chain", lambda decay: gx.named_chain(("m", gx.trace(decay)), ("lr", gx.scale(-0.1))),
         lambda decay: optax.named_chain(("m", optax.trace(decay)), ("lr", optax.scale(-0.1))), decay=unit()),
    case("sgd", gx.sgd, learning_rate=LR, momentum=st.one_of(st.none(), unit()), nesterov=st.booleans()),
    case("adagrad", gx.adagrad, learning_rate=LR, initial_accumulator_value=st.floats(0.0, 1.0), eps=EPS),
    case("rmsprop", gx.rmsprop, learning_rate=LR, decay=unit(0.5), eps=EPS, initial_scale=st.floats(0.0, 1.0),
         eps_in_sqrt=st.booleans(), centered=st.booleans(), momentum=st.one_of(st.none(), unit()),
         nesterov=st.booleans(), bias_correction=st.booleans()),
    case("adadelta", gx.adadelta, needs_params=True, learning_rate=LR, rho=unit(0.5), eps=EPS,
         weight_decay=st.floats(0.0, 0.1)),
    case("adam", gx.adam, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS, nesterov=st.booleans()),
    case("adamw", gx.adamw, needs_params=True, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         weight_decay=st.floats(0.0, 0.1)),
    case("adamw_masked", gx.adamw, optax.adamw, needs_params=True, fixed={"mask": _mask}, learning_rate=LR,
         weight_decay=st.floats(0.0, 0.1)),
    case("nadam", gx.nadam, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS),
    case("nadamw", gx.nadamw, needs_params=True, learning_rate=LR, b1=unit(), weight_decay=st.floats(0.0, 0.1)),
    case("adamax", gx.adamax, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS),
    case("adamaxw", gx.adamaxw, needs_params=True, learning_rate=LR, b1=unit(), weight_decay=st.floats(0.0, 0.1)),
    case("amsgrad", gx.amsgrad, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS),
]


def _random_tree(structure, rng, dtype):
    return structure(lambda shape: jnp.asarray(rng.standard_normal(shape), dtype))


def _sorted_named(tree):
    return sorted(named_leaves(tree), key=lambda kv: kv[0])


def _scan(tx, params, grads):
    def step(carry, g):
        params, state = carry
        u, state = tx.update(g, state, params)
        params = jax.tree.map(lambda p, v: (p + v).astype(p.dtype), params, u)
        return (params, state), (u, state)

    return jax.lax.scan(step, (params, tx.init(params)), grads)[1]


# gradtx optimizers are pytrees: one compile serves every hyperparameter draw.
_run_gx = jax.jit(_scan)


def _run_optax(tx, params, grads):
    # optax closes over its hyperparameters: it compiles for each draw.
    return jax.jit(lambda p, g: _scan(tx, p, g))(params, grads)


def _at(tree, t):
    return jax.tree.map(lambda x: x[t], tree)


def assert_same_trajectories(ours, theirs, dtype, rtol, steps=(0, STEPS // 2, STEPS - 1)) -> None:
    """Updates and state leaves (by name) of two ``_scan`` outputs agree at ``steps``.

    Dtypes and shapes must match; boolean state leaves must be equal.
    """
    atol = 1e-12 if dtype == jnp.float64 else 1e-6
    for t in steps:
        ua, ub = jax.tree.leaves(_at(ours[0], t)), jax.tree.leaves(_at(theirs[0], t))
        assert len(ua) == len(ub)
        for a, b in zip(ua, ub):
            assert a.dtype == b.dtype, (a.dtype, b.dtype)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"updates, step {t}")
        sa, sb = _sorted_named(_at(ours[1], t)), _sorted_named(_at(theirs[1], t))
        assert [k for k, _ in sa] == [k for k, _ in sb], "state fields differ"
        for (k, a), (_, b) in zip(sa, sb):
            assert a.shape == b.shape, (k, a.shape, b.shape)
            if a.dtype == bool:
                np.testing.assert_array_equal(a, b, err_msg=f"state {k}, step {t}")
            else:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"state {k}, step {t}")


def check_parity(c: Case, dtype, rtol, structures=STRUCTURES, examples=EXAMPLES, steps=(0, STEPS // 2, STEPS - 1)):
    """gradtx's ``c.gx_fn`` against optax's ``c.optax_fn`` on random trees and hyperparameters."""

    @settings(max_examples=examples)
    @given(hp=st.fixed_dictionaries(c.hypers), which=st.integers(0, len(structures) - 1), seed=st.integers(0, 2**16))
    def check(hp, which, seed):
        rng = np.random.default_rng(seed)
        params = _random_tree(structures[which], rng, dtype)
        grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(structures[which], rng, dtype) for _ in range(STEPS)])
        kwargs = {**hp, **c.fixed}
        ours = _run_gx(c.gx_fn(**kwargs), params, grads)
        theirs = _run_optax(c.optax_fn(**kwargs), params, grads)
        assert_same_trajectories(ours, theirs, dtype, rtol, steps)

    check()


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax(c: Case, dtype, rtol):
    check_parity(c, dtype, rtol)
