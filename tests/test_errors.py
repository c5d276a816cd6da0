"""Bad input raises a clear error naming the argument or tree path, and the fix."""

import jax.numpy as jnp
import pytest

from gradtx.optimizers.adam_family import adam, adamw
from gradtx.optimizers.classic import rmsprop, sgd
from gradtx.transforms.combine import chain
from gradtx.transforms.plateau import reduce_on_plateau
from gradtx.transforms.weight_decay import add_decayed_weights
from gradtx.wrappers.masked import masked

PARAMS = {"w": jnp.ones(2), "b": {"c": jnp.ones(3)}}


@pytest.mark.parametrize(
    "make, arg, allowed",
    [
        (lambda: adam(-0.1), "learning_rate", ">= 0"),
        (lambda: adam(0.1, b1=1.0), "b1", "[0, 1)"),
        (lambda: adam(0.1, b1=-0.1), "b1", "[0, 1)"),
        (lambda: adam(0.1, b2=1.5), "b2", "[0, 1)"),
        (lambda: adam(0.1, eps=-1e-8), "eps", ">= 0"),
        (lambda: rmsprop(0.1, eps=0.0), "eps", "> 0"),
    ],
)
def test_hyperparameter_out_of_range(make, arg, allowed):
    with pytest.raises(ValueError) as e:
        make()
    assert f"`{arg}`" in str(e.value) and allowed in str(e.value), str(e.value)


def test_updates_and_params_trees_differ():
    opt = adamw(0.1)
    state = opt.init(PARAMS)
    grads = {"w": jnp.ones(2), "b": {"d": jnp.ones(3)}}
    with pytest.raises(ValueError, match=r"`updates` and `params`.*\['b'\]\['d'\] vs \['b'\]\['c'\]"):
        opt.update(grads, state, PARAMS)


@pytest.mark.parametrize("bad", [jnp.array([1, 2]), jnp.array([True, False])], ids=["int", "bool"])
def test_integer_or_boolean_params(bad):
    params = {"w": jnp.ones(2), "step": bad}
    with pytest.raises(TypeError, match=r"\['step'\].*floating-point.*astype"):
        adam(0.1).init(params)


def test_state_from_another_optimizer():
    state = sgd(0.1, momentum=0.9).init(PARAMS)
    with pytest.raises(ValueError, match=r"`state\[0\]`.*scale_by_adam.*different optimizer"):
        adam(0.1).update(PARAMS, (state[0], state[0]))


def test_state_from_another_params_tree():
    opt = adam(0.1)
    state = opt.init({"x": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"`state\[0\]`.*different params tree"):
        opt.update(PARAMS, state)
    with pytest.raises(ValueError, match=r"shape differs at \.mu"):
        opt.update({"x": jnp.ones(3)}, state)


def test_missing_extra_argument_inside_a_chain():
    opt = chain(sgd(0.1), reduce_on_plateau())
    state = opt.init(PARAMS)
    with pytest.raises(TypeError, match=r"reduce_on_plateau.*keyword argument `value`"):
        opt.update(PARAMS, state, PARAMS)


def test_mask_tree_not_matching_params():
    opt = masked(add_decayed_weights(0.1), {"w": True, "other": False})
    with pytest.raises(ValueError, match=r"gx.masked: `mask` does not match"):
        opt.init(PARAMS)
