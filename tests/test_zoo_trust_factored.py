"""The optimizer zoo, trust-ratio and factored families: parity with optax and closed forms.

scale_by_trust_ratio, lamb, lars, adaptive_grad_clip, scale_by_factored_rms,
adafactor, scale_by_sm3, sm3, per_example_global_norm_clip and
per_example_layer_norm_clip, against optax 0.2.8 on random nested pytrees
(updates and state leaves, 100 steps, f64 rtol 1e-6, f32 rtol 1e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import strategies as st

import gradtx as gx
from test_parity import EPS, LR, STRUCTURES, Case, _mask, case, check_parity, unit

EXAMPLES = 2

# No scalar leaves (optax's SM3 cannot take them), a vector, matrices and a rank-3 leaf.
NO_SCALARS = [
    lambda r: {"w": r((3, 2)), "b": r((2,))},
    lambda r: (r((4,)), [r((2, 3)), {"z": r((2, 1, 2))}]),
]
# Leaves large enough to be factored with min_dim_size_to_factor=2 (and some that are not).
FACTORED = [
    lambda r: {"w": r((3, 4)), "b": r((2,)), "s": r(())},
    lambda r: (r((2, 3, 4)), [r((5, 1)), {"z": r((4, 4))}]),
]

CASES = [
    case("scale_by_trust_ratio", gx.scale_by_trust_ratio, needs_params=True, min_norm=st.floats(0.0, 0.5),
         trust_coefficient=st.floats(0.01, 2.0), eps=st.floats(0.0, 1e-3)),
    case("lamb", gx.lamb, needs_params=True, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         weight_decay=st.floats(0.0, 0.1)),
    case("lamb_masked", gx.lamb, optax.lamb, needs_params=True, fixed={"mask": _mask}, learning_rate=LR,
         weight_decay=st.floats(0.0, 0.1)),
    case("lars", gx.lars, needs_params=True, learning_rate=LR, weight_decay=st.floats(0.0, 0.1),
         trust_coefficient=st.floats(1e-3, 1.0), eps=st.floats(0.0, 1e-3), momentum=unit(), nesterov=st.booleans()),
    case("lars_masked", gx.lars, optax.lars, needs_params=True,
         fixed={"weight_decay_mask": _mask, "trust_ratio_mask": _mask}, learning_rate=LR,
         weight_decay=st.floats(0.0, 0.1)),
    case("adaptive_grad_clip", gx.adaptive_grad_clip, needs_params=True, clipping=st.floats(0.01, 1.0),
         eps=st.floats(1e-4, 1e-1)),
]


FACTORED_CASES = [
    case("scale_by_factored_rms", gx.scale_by_factored_rms, optax.scale_by_factored_rms, needs_params=True,
         fixed={"min_dim_size_to_factor": 2}, factored=st.booleans(), decay_rate=st.floats(0.3, 1.0),
         epsilon=st.floats(1e-30, 1e-3)),
    case("adafactor", gx.adafactor, needs_params=True, fixed={"min_dim_size_to_factor": 2}, learning_rate=LR,
         decay_rate=st.floats(0.3, 1.0), multiply_by_parameter_scale=st.booleans(),
         clipping_threshold=st.one_of(st.none(), st.floats(0.5, 2.0)), momentum=st.one_of(st.none(), unit()),
         weight_decay_rate=st.one_of(st.none(), st.floats(0.0, 0.1)), eps=st.floats(1e-30, 1e-3),
         factored=st.booleans()),
    case("adafactor_defaults", gx.adafactor, needs_params=True, learning_rate=LR),
    case("adafactor_masked_f64_momentum", gx.adafactor, optax.adafactor, needs_params=True,
         fixed={"min_dim_size_to_factor": 3, "weight_decay_mask": _mask, "dtype_momentum": jnp.float64},
         learning_rate=LR, momentum=unit(), weight_decay_rate=st.floats(0.0, 0.1)),
]
SM3_CASES = [
    case("scale_by_sm3", gx.scale_by_sm3, b1=unit(), b2=st.one_of(st.just(1.0), unit(0.5)), eps=EPS),
    case("sm3", gx.sm3, learning_rate=LR, momentum=unit()),
]




DTYPES = pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])


@DTYPES
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax(c: Case, dtype, rtol):
    check_parity(c, dtype, rtol, examples=EXAMPLES)


@DTYPES
@pytest.mark.parametrize("c", FACTORED_CASES, ids=[c.name for c in FACTORED_CASES])
def test_factored_parity_with_optax(c: Case, dtype, rtol):
    check_parity(c, dtype, rtol, FACTORED, examples=EXAMPLES)


@DTYPES
@pytest.mark.parametrize("c", SM3_CASES, ids=[c.name for c in SM3_CASES])
def test_sm3_parity_with_optax(c: Case, dtype, rtol):
    check_parity(c, dtype, rtol, NO_SCALARS, examples=EXAMPLES)


# ---- scale_by_trust_ratio / lamb / lars / AGC: closed forms and errors ----


def test_trust_ratio_is_one_where_a_norm_is_zero():
    tx = gx.scale_by_trust_ratio(min_norm=0.5, trust_coefficient=3.0)
    params = {"zero_p": jnp.zeros(3), "zero_u": jnp.ones(2), "both": jnp.array([3.0, 4.0])}
    updates = {"zero_p": jnp.array([1.0, 2.0, 2.0]), "zero_u": jnp.zeros(2), "both": jnp.array([0.0, 2.0])}
    u, _ = tx.update(updates, tx.init(params), params)
    np.testing.assert_array_equal(u["zero_p"], updates["zero_p"])  # optax: 3 * 0.5 / 3 = 0.5x
    np.testing.assert_array_equal(u["zero_u"], 0.0)
    np.testing.assert_allclose(u["both"], 3.0 * 5.0 / 2.0 * updates["both"], rtol=1e-6)


def test_lamb_step_is_lr_times_param_norm():
    params = {"a": jnp.array([3.0, 4.0]), "b": jnp.ones((2, 2))}
    opt = gx.lamb(0.1, weight_decay=0.01)
    g = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([[1.0, 0.0], [0.5, 3.0]])}
    u, _ = opt.update(g, opt.init(params), params)
    for k in params:
        np.testing.assert_allclose(np.linalg.norm(u[k]), 0.1 * np.linalg.norm(params[k]), rtol=1e-5)


def test_agc_closed_form():
    p = jnp.array([[3.0, 0.0], [4.0, 0.0]])  # unit norms along axis 0: 5 and 0 (-> eps)
    g = jnp.array([[6.0, 1.0], [8.0, 0.0]])
    u, _ = gx.adaptive_grad_clip(0.1, eps=1e-3).update(g, gx.EmptyState(), p)
    np.testing.assert_allclose(u, [[0.3, 1e-4], [0.4, 0.0]], rtol=1e-6)


def test_trust_ratio_family_errors():
    with pytest.raises(ValueError, match=r"gx.scale_by_trust_ratio: `eps` must be >= 0"):
        gx.scale_by_trust_ratio(eps=-1.0)
    with pytest.raises(ValueError, match=r"gx.scale_by_trust_ratio: `min_norm` must be >= 0"):
        gx.scale_by_trust_ratio(min_norm=-1.0)
    with pytest.raises(ValueError, match=r"gx.adaptive_grad_clip: `clipping` must be >= 0"):
        gx.adaptive_grad_clip(-0.1)
    with pytest.raises(ValueError, match=r"`b1` must be in \[0, 1\)"):
        gx.lamb(0.1, b1=2.0)
    with pytest.raises(ValueError, match=r"`decay` must be in \[0, 1\)"):
        gx.lars(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="needs the current parameters"):
        tx = gx.scale_by_trust_ratio()
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
    with pytest.raises(ValueError, match="rank <= 5"):
        gx.unitwise_norm(jnp.ones((2, 2, 1, 1, 1, 1)))


def test_factored_state_is_sublinear():
    tx = gx.scale_by_factored_rms(min_dim_size_to_factor=4)
    params = {"m": jnp.zeros((8, 5)), "t": jnp.zeros((4, 6, 5)), "small": jnp.zeros((3, 9)), "v": jnp.zeros(7)}
    s = tx.init(params)
    assert s.v_row["m"].shape == (5,) and s.v_col["m"].shape == (8,) and s.v["m"].shape == (1,)
    assert s.v_row["t"].shape == (4, 5) and s.v_col["t"].shape == (4, 6)  # axes 2 (5) and 1 (6) factored
    assert s.v["small"].shape == (3, 9) and s.v["v"].shape == (7,)  # not factored: full moment
    assert s.count.dtype == jnp.int32


def test_sm3_scalars_and_closed_form():
    # optax's scale_by_sm3 fails on scalar leaves; here a scalar keeps one accumulator.
    tx = gx.scale_by_sm3(b1=0.0)
    params = {"s": jnp.zeros(()), "m": jnp.zeros((2, 2))}
    state = tx.init(params)
    g = {"s": jnp.asarray(3.0), "m": jnp.array([[1.0, 2.0], [0.0, 4.0]])}
    u, state = tx.update(g, state)
    np.testing.assert_allclose(u["s"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(u["m"], [[1.0, 1.0], [0.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(state.mu["m"][0], [4.0, 16.0])  # row maxima of g^2
    np.testing.assert_allclose(state.mu["m"][1], [1.0, 16.0])  # column maxima
    u, state = tx.update(g, state)  # nu = min(row, col) cover + g^2
    np.testing.assert_allclose(u["m"][0, 0], 1.0 / np.sqrt(2.0), rtol=1e-6)


def test_factored_family_errors():
    with pytest.raises(ValueError, match=r"gx.scale_by_sm3: `b2` must be in \[0, 1\]"):
        gx.scale_by_sm3(b2=1.5)
    with pytest.raises(ValueError, match=r"gx.scale_by_factored_rms: `step_offset` must be an integer"):
        gx.scale_by_factored_rms(step_offset=1.5)
    with pytest.raises(ValueError, match=r"gx.scale_by_factored_rms: `epsilon` must be >= 0"):
        gx.adafactor(0.1, eps=-1.0)
    with pytest.raises(ValueError, match=r"gx.clip_by_block_rms: `threshold` must be > 0"):
        gx.adafactor(0.1, clipping_threshold=0.0)
    with pytest.raises(TypeError, match="complex"):
        gx.sm3(0.1).init(jnp.zeros(2, jnp.complex64))


# ---- per-example clipping (DP-SGD) ----


def _batched(structure, rng, dtype, batch=5):
    return structure(lambda shape: jnp.asarray(rng.standard_normal((batch,) + shape) * rng.uniform(0.1, 3.0), dtype))


@DTYPES
@pytest.mark.parametrize("which", range(len(STRUCTURES)))
def test_per_example_clips_match_optax(which, dtype, rtol):
    rng = np.random.default_rng(which)
    grads = _batched(STRUCTURES[which], rng, dtype)
    atol = 1e-12 if dtype == jnp.float64 else 1e-6
    for clip in (0.0, 0.5, 2.0, 5.0, np.inf):
        ours, theirs = gx.per_example_global_norm_clip(grads, clip), optax.per_example_global_norm_clip(grads, clip)
        chex_close(ours[0], theirs[0], rtol, atol)
        assert int(ours[1]) == int(theirs[1]) and ours[1].dtype == jnp.int32
        for uniform in (True, False):
            ours = gx.per_example_layer_norm_clip(grads, clip, uniform)
            theirs = optax.per_example_layer_norm_clip(grads, clip, uniform)
            chex_close(ours[0], theirs[0], rtol, atol)
            assert jax.tree.map(int, ours[1]) == jax.tree.map(int, theirs[1])


def chex_close(a, b, rtol, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_per_example_closed_form_and_errors():
    g = [jnp.array([[0.0, 0.0, 0.0], [0.0, 3.0, 4.0], [4.0, 0.0, 3.0], [3.0, 4.0, 0.0]])]
    summed, n = gx.per_example_global_norm_clip(g, 0.0)
    np.testing.assert_array_equal(summed[0], 0.0) and int(n) == 3
    summed, n = gx.per_example_global_norm_clip(g, np.inf)
    np.testing.assert_array_equal(summed[0], 7.0)
    assert int(n) == 0
    with pytest.raises(ValueError, match="axis 0"):
        gx.per_example_global_norm_clip({"a": jnp.ones((3, 2)), "b": jnp.ones((2,))}, 1.0)
    with pytest.raises(ValueError, match="axis 0"):
        gx.per_example_layer_norm_clip({"a": jnp.ones(())}, 1.0)
    with pytest.raises(ValueError, match=r"gx.per_example_global_norm_clip: `l2_norm_clip` must be >= 0"):
        gx.per_example_global_norm_clip(g, -1.0)
    with pytest.raises(ValueError, match=r"gx.per_example_layer_norm_clip: `global_l2_norm_clip` must be >= 0"):
        gx.per_example_layer_norm_clip(g, -1.0)


def test_adafactor_state_is_n_plus_m_and_its_step_allocates_no_more_than_optax():
    """Issue 15, point 4: for a 4096 x 1024 float32 matrix, the state is 4096 + 1024 floats plus
    scalars, and the compiled donated step's temporaries (XLA's buffer assignment) are at most
    optax's. Compile only: nothing of that size is allocated."""
    p = jax.ShapeDtypeStruct((4096, 1024), jnp.float32)
    temps = {}
    for name, opt in (("gradtx", gx.adafactor(1e-3)), ("optax", optax.adafactor(1e-3))):
        state = jax.eval_shape(opt.init, p)
        sizes = [int(np.prod(x.shape)) for x in jax.tree.leaves(state)]
        assert sum(s for s in sizes if s > 1) == 4096 + 1024 and sum(s == 1 for s in sizes) <= 4, (name, sizes)

        def step(params, s, g, opt=opt):
            u, s = opt.update(g, s, params)
            return optax.apply_updates(params, u), s

        compiled = jax.jit(step, donate_argnums=(0, 1)).lower(p, state, p).compile()
        temps[name] = compiled.memory_analysis().temp_size_in_bytes
    assert temps["gradtx"] <= temps["optax"], temps
