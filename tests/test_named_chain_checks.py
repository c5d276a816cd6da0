"""gx.named_chain runs gx.chain's checks: the same bad input gives the same kind of error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx

PARAMS = {"w": jnp.ones(2), "b": {"c": jnp.ones(3)}}


def _adam_like(named: bool):
    """The same optimizer as a chain and as a named chain."""
    parts = (("adam", gx.scale_by_adam()), ("lr", gx.scale_by_learning_rate(0.1)))
    return gx.named_chain(*parts) if named else gx.chain(*(t for _, t in parts))


@pytest.mark.parametrize("named", [False, True], ids=["chain", "named_chain"])
def test_updates_and_params_trees_differ(named):
    opt = _adam_like(named)
    state = opt.init(PARAMS)
    grads = {"w": jnp.ones(2), "b": {"d": jnp.ones(3)}}
    where = "gx.named_chain" if named else "gx.chain"
    with pytest.raises(ValueError, match=rf"{where}.update: `updates` and `params`.*\['b'\]\['d'\] vs \['b'\]\['c'\]"):
        opt.update(grads, state, PARAMS)


@pytest.mark.parametrize("bad", [jnp.array([1, 2]), jnp.array([True, False])], ids=["int", "bool"])
@pytest.mark.parametrize("named", [False, True], ids=["chain", "named_chain"])
def test_integer_or_boolean_params(named, bad):
    with pytest.raises(TypeError, match=r"\['step'\].*floating-point.*astype"):
        _adam_like(named).init({"w": jnp.ones(2), "step": bad})


def test_state_from_another_optimizer():
    momentum = gx.named_chain(("adam", gx.trace(0.9)), ("lr", gx.scale_by_learning_rate(0.1)))
    state = momentum.init(PARAMS)  # same names, but a momentum trace where Adam keeps mu/nu
    with pytest.raises(ValueError, match=r"gx.named_chain.update: `state\['adam'\]`.*scale_by_adam.*different optimizer"):
        _adam_like(True).update(PARAMS, state)


def test_state_from_another_params_tree():
    opt = _adam_like(True)
    state = opt.init({"x": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"`state\['adam'\]`.*different params tree"):
        opt.update(PARAMS, state)
    with pytest.raises(ValueError, match=r"shape differs at \.mu"):
        opt.update({"x": jnp.ones(3)}, state)


def test_state_that_is_not_this_chains_dict():
    opt = _adam_like(True)
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match=r"`state` must be a dict with one state per name \['adam', 'lr'\].*got tuple"):
        opt.update(PARAMS, tuple(state.values()))
    with pytest.raises(ValueError, match=r"got a dict with keys \['adam'\]"):
        opt.update(PARAMS, {"adam": state["adam"]})
    with pytest.raises(ValueError, match=r"got a dict with keys \['adam', 'lr', 'extra'\]"):
        opt.update(PARAMS, {**state, "extra": ()})


def test_checks_run_under_jit_and_good_input_still_matches_chain():
    named, plain = _adam_like(True), _adam_like(False)
    step = jax.jit(lambda tx, g, s: tx.update(g, s, PARAMS))
    g = jax.tree.map(lambda x: 0.5 * x, PARAMS)
    u1, s1 = step(named, g, named.init(PARAMS))
    u2, s2 = step(plain, g, plain.init(PARAMS))
    jax.tree.map(np.testing.assert_array_equal, u1, u2)
    jax.tree.map(np.testing.assert_array_equal, s1["adam"], s2[0])
    with pytest.raises(ValueError, match=r"`state\['adam'\]`.*different params tree"):
        step(named, g, named.init({"x": jnp.ones(2)}))
