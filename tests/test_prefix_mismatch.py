"""Prefix masks and labels: a mismatch is reported where it is, not at a valid prefix leaf."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx
from gradtx.core.tree import prefix_mismatch

# "a" is covered by one boolean (a valid prefix); the mistake is under "b": "y" where params have "z".
MASK = {"a": True, "b": {"x": True, "y": True}}
PARAMS = {"a": {"p": jnp.ones(2), "q": jnp.ones(3)}, "b": {"x": jnp.ones(2), "z": jnp.ones(2)}}
WRONG_PLACE = r"\['a'\]"  # flattened leaf paths first differ at ['a'] vs ['a']['p']


def test_prefix_mismatch_names_the_branching_node():
    diff = prefix_mismatch(MASK, PARAMS, "`mask`")
    assert diff == ("at ['b'] `mask` has a dict with children ['x'], ['y'] "
                    "where the params tree has a dict with children ['x'], ['z']")
    assert prefix_mismatch({"a": True, "b": {"x": True, "z": False}}, PARAMS) is None
    assert prefix_mismatch(True, PARAMS) is None and prefix_mismatch(None, PARAMS) is None
    assert "at <root>" in prefix_mismatch([True, False], PARAMS)


def test_masked_reports_the_mistake_under_a_prefix_leaf():
    opt = gx.masked(gx.add_decayed_weights(0.1), MASK)
    with pytest.raises(ValueError) as e:
        opt.init(PARAMS)
    msg = str(e.value)
    assert msg.startswith("gx.masked: `mask` does not match the params/updates tree (at ['b'] ")
    assert "['x'], ['y']" in msg and "['x'], ['z']" in msg, msg
    assert not re.search(WRONG_PLACE, msg), msg
    assert "one boolean for a whole subtree" in msg


def test_masked_callable_mask_is_checked_the_same_way():
    opt = gx.masked(gx.add_decayed_weights(0.1), lambda p: MASK)
    with pytest.raises(ValueError, match=r"\(at \['b'\] `mask` has a dict"):
        opt.init(PARAMS)


def test_partition_uses_the_same_helper():
    labels = {"a": "fast", "b": {"x": "fast", "y": "slow"}}
    opt = gx.partition({"fast": gx.sgd(1.0), "slow": gx.sgd(0.1)}, labels)
    with pytest.raises(ValueError, match=r"`param_labels` does not match.*at \['b'\] `param_labels` has a dict"):
        opt.init(PARAMS)


def test_a_valid_prefix_mask_still_works():
    opt = gx.masked(gx.add_decayed_weights(0.5), {"a": False, "b": {"x": True, "z": False}})
    u, _ = opt.update(PARAMS, opt.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(u["a"]["p"], 1.0)
    np.testing.assert_array_equal(u["b"]["x"], 1.5)
    np.testing.assert_array_equal(u["b"]["z"], 1.0)
