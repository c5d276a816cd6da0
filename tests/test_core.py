"""Core semantics: optimizers are values (pytrees), hyperparameters, errors, masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx


def test_optimizer_is_a_pytree_of_its_hyperparameters():
    opt = gx.adam(0.1, b1=0.8, eps_root=1e-9, nesterov=True)
    assert sorted(jax.tree.leaves(opt)) == sorted([0.8, 0.999, 1e-8, 1e-9, 0.1])
    # Static options are structure, not leaves: changing them changes the treedef.
    assert jax.tree.structure(opt) != jax.tree.structure(gx.adam(0.1, b1=0.8, eps_root=1e-9))
    assert jax.tree.structure(opt) == jax.tree.structure(gx.adam(0.5, b1=0.7, eps_root=1e-9, nesterov=True))
    # Rebuilding from leaves (as jit/vmap do) gives the same optimizer.
    again = jax.tree.unflatten(jax.tree.structure(opt), jax.tree.leaves(opt))
    assert repr(again) == repr(opt)
    assert "ScaleByAdam(b1=0.8" in repr(opt)


def test_vmap_over_the_constructor_is_a_batch_of_optimizers():
    lrs = jnp.array([1e-3, 1e-2, 1e-1])
    batch = jax.vmap(gx.adam)(lrs)
    assert all(jnp.shape(x) == (3,) for x in jax.tree.leaves(batch))
    params = jnp.ones(2)
    u, _ = jax.vmap(lambda o: o.update(params, o.init(params)))(batch)
    np.testing.assert_allclose(u, -lrs[:, None] * np.ones((3, 2)), rtol=1e-6)


def test_population_based_training_changes_a_leaf_mid_run():
    opt = gx.sgd(0.1, momentum=0.9)
    params = jnp.ones(2)
    state = opt.init(params)
    _, state = opt.update(params, state)
    new = gx.chain(opt.transforms[0], opt.transforms[1].replace(learning_rate=0.2))
    assert jax.tree.structure(new) == jax.tree.structure(opt)
    u_new, _ = new.update(params, state)
    u_old, _ = opt.update(params, state)
    np.testing.assert_allclose(u_new, 2 * u_old, rtol=1e-12)


def test_momentum_warmup_schedule():
    """Seed 000's momentum warm-up 0.5 -> 0.99, as sgd(momentum=schedule)."""
    warm = gx.linear_schedule(0.5, 0.99, transition_steps=10)
    opt = gx.sgd(1.0, momentum=warm)
    g = jnp.array([1.0])
    state = opt.init(g)
    assert int(state[0].count) == 0
    trace = 0.0
    for k in range(15):
        u, state = opt.update(g, state)
        beta = 0.5 + (0.99 - 0.5) * min(k, 10) / 10
        trace = 1.0 + beta * trace
        # int32 counts divide in float32 (as in optax), so the schedule is f32-exact.
        np.testing.assert_allclose(u, [-trace], rtol=1e-6)
    # adam(b1=schedule) works too and keeps one count.
    adam = gx.adam(0.1, b1=warm)
    s = adam.init(g)
    for _ in range(3):
        _, s = adam.update(g, s)
    assert int(s[0].count) == 3


def test_plain_function_schedule():
    opt = gx.sgd(lambda count: 0.1 / (1 + count))
    g = jnp.array([1.0])
    state = opt.init(g)
    us = []
    for _ in range(3):
        u, state = opt.update(g, state)
        us.append(float(u[0]))
    np.testing.assert_allclose(us, [-0.1, -0.05, -0.1 / 3], rtol=1e-12)


def test_vmap_over_a_schedule_peak_value():
    peaks = jnp.array([0.1, 0.2])
    opts = jax.vmap(lambda p: gx.sgd(gx.warmup_cosine_decay_schedule(0.0, p, 2, 10)))(peaks)
    g = jnp.array([1.0])

    def run(o):
        s = o.init(g)
        for _ in range(3):
            u, s = o.update(g, s)
        return u

    np.testing.assert_allclose(jax.vmap(run)(opts)[:, 0], -peaks * float(gx.warmup_cosine_decay_schedule(0.0, 1.0, 2, 10)(2)), rtol=1e-12)


@pytest.mark.parametrize(
    "make,arg,allowed",
    [
        (lambda: gx.sgd(-0.1), "learning_rate", ">= 0"),
        (lambda: gx.adam(0.1, b1=1.0), "b1", "[0, 1)"),
        (lambda: gx.adam(0.1, b2=-0.1), "b2", "[0, 1)"),
        (lambda: gx.adam(0.1, eps=-1e-8), "eps", ">= 0"),
        (lambda: gx.adam(0.1, eps=0.0), "eps_root", "cannot both be 0"),
        (lambda: gx.sgd(0.1, momentum=1.0), "decay", "[0, 1)"),
        (lambda: gx.rmsprop(0.1, decay=1.5), "decay", "[0, 1)"),
        (lambda: gx.rmsprop(0.1, eps=0.0), "eps", "> 0"),
        (lambda: gx.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator_value", ">= 0"),
        (lambda: gx.adamw(0.1, weight_decay=-1e-4), "weight_decay", ">= 0"),
        (lambda: gx.clip(-1.0), "max_delta", ">= 0"),
        (lambda: gx.clip_by_global_norm(-1.0), "max_norm", ">= 0"),
        (lambda: gx.clip_by_block_rms(0.0), "threshold", "> 0"),
        (lambda: gx.sgd(float("nan")), "learning_rate", ">= 0"),
        (lambda: gx.adam(jnp.array([1e-3, -1.0])), "learning_rate", ">= 0"),
    ],
)
def test_invalid_hyperparameters_raise_naming_the_argument(make, arg, allowed):
    with pytest.raises(ValueError) as e:
        make()
    assert f"`{arg}`" in str(e.value) and allowed in str(e.value), str(e.value)


def test_non_numeric_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="`learning_rate` must be a number"):
        gx.sgd("0.1")
    with pytest.raises(TypeError, match="`step_size_fn` must be callable"):
        gx.scale_by_schedule(0.1)


def test_traced_values_are_not_checked_at_construction():
    # Under vmap the values are tracers: construction must not fail or check them.
    jax.vmap(gx.sgd)(jnp.array([0.1, -0.1]))


def test_apply_updates_names_the_first_differing_path():
    params = {"a": jnp.ones(2), "b": {"c": jnp.ones(3)}}
    updates = {"a": jnp.ones(2), "b": {"d": jnp.ones(3)}}
    with pytest.raises(ValueError, match=r"\['b'\]\['d'\] vs \['b'\]\['c'\]"):
        gx.apply_updates(params, updates)


def test_apply_updates_keeps_dtypes_and_none():
    params = {"a": jnp.ones(2, jnp.bfloat16), "frozen": None}
    out = gx.apply_updates(params, {"a": jnp.full(2, 0.5, jnp.float32), "frozen": None})
    assert out["a"].dtype == jnp.bfloat16 and out["frozen"] is None


def test_chain_rejects_a_foreign_state():
    opt = gx.adam(0.1)
    with pytest.raises(ValueError, match="tuple of 2 states"):
        opt.update(jnp.ones(2), (opt.init(jnp.ones(2))[0],))
    with pytest.raises(TypeError, match="expected gradient transformations"):
        gx.chain(gx.scale(1.0), 3)
    with pytest.raises(ValueError, match="unique"):
        gx.named_chain(("a", gx.scale(1.0)), ("a", gx.scale(2.0)))


def test_masked_weight_decay():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    g = jax.tree.map(jnp.zeros_like, params)
    for mask in ({"w": True, "b": False}, lambda p: {"w": True, "b": False}):
        tx = gx.add_decayed_weights(0.1, mask=mask)
        u, _ = tx.update(g, tx.init(params), params)
        np.testing.assert_allclose(u["w"], 0.1)
        np.testing.assert_allclose(u["b"], 0.0)
    tx = gx.add_decayed_weights(0.1, mask={"w": True})
    with pytest.raises(ValueError, match="`mask` does not match"):
        tx.init(params)


def test_masked_inner_state_skips_masked_leaves():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gx.masked(gx.scale_by_adam(), {"w": True, "b": False})
    state = tx.init(params)
    assert jax.tree.leaves(state.inner_state.mu) == [state.inner_state.mu["w"]]
    u, _ = tx.update(params, state)
    np.testing.assert_allclose(u["b"], params["b"])  # passed through untouched


def test_mu_and_nu_dtypes():
    params = jnp.ones(3, jnp.float32)
    opt = gx.adam(0.1, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16)
    state = opt.init(params)
    u, state2 = opt.update(params, state)
    assert state2[0].mu.dtype == jnp.bfloat16 and state2[0].nu.dtype == jnp.bfloat16
    assert u.dtype == jnp.float32


def test_clip_by_global_norm_divides_once_not_per_leaf():
    """One scale factor for all leaves: a single division in the program."""
    tree = {str(i): jnp.ones(3) for i in range(8)}
    tx = gx.clip_by_global_norm(1.0)
    jaxpr = jax.make_jaxpr(lambda g: tx.update(g, tx.init(g))[0])(tree)
    assert str(jaxpr).count(" div ") == 1
    u, _ = tx.update(tree, tx.init(tree))
    np.testing.assert_allclose(float(jnp.sqrt(sum(jnp.sum(x**2) for x in u.values()))), 1.0, rtol=1e-12)


def test_stateless_and_identity():
    tx = gx.stateless_with_tree_map(lambda g, p: 2 * g)
    u, _ = tx.update({"a": jnp.ones(2)}, tx.init(None))
    np.testing.assert_allclose(u["a"], 2.0)
    u, _ = gx.set_to_zero().update(jnp.ones(2), gx.EmptyState())
    np.testing.assert_allclose(u, 0.0)
    u, _ = gx.identity().update(jnp.ones(2), gx.EmptyState())
    np.testing.assert_allclose(u, 1.0)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32, jnp.bfloat16, jnp.complex64, jnp.int32])
def test_sum_of_squares_matches_the_square_and_sum_it_replaces(dtype):
    """global_norm's per-leaf sum of squares is one dot for real floats, same value and dtype."""
    from gradtx.core.numerics import abs_sq, sum_of_squares

    rng = np.random.default_rng(0)
    for shape in [(), (0,), (7,), (3, 5, 2)]:
        x = rng.normal(size=shape) * 3
        x = jnp.asarray(x + 1j * x if jnp.issubdtype(dtype, jnp.complexfloating) else x).astype(dtype)
        ours, plain = sum_of_squares(x), jnp.sum(abs_sq(x))
        assert ours.dtype == plain.dtype and ours.shape == ()
        exact = float(np.sum(np.abs(np.asarray(x, np.complex128)) ** 2))
        tol = {jnp.bfloat16: 1e-2, jnp.float32: 1e-6, jnp.complex64: 1e-6}.get(dtype, 1e-12)
        np.testing.assert_allclose(float(ours), exact, rtol=tol, atol=tol)
    hlo = jax.jit(sum_of_squares).lower(jnp.ones((4, 3), dtype)).as_text()
    real_float = jnp.issubdtype(dtype, jnp.floating)
    assert ("stablehlo.dot_general" in hlo) == real_float and ("stablehlo.reduce" in hlo) != real_float


def test_chain_state_check_is_memoised_per_params_signature_not_stale():
    """The memoised abstract init still rejects a state made for other shapes."""
    opt = gx.adam(0.1)
    small, big = jnp.ones(2), jnp.ones(3)
    opt.update(small, opt.init(small))  # memoises the (adam, f32[2]) signature
    opt.update(big, opt.init(big))
    with pytest.raises(ValueError, match=r"state\[0\].*shape differs"):
        opt.update(big, opt.init(small))


def test_adam_traces_few_operations_per_leaf():
    """Compile time scales with the traced program: Adam adds at most 25 equations per leaf
    (optax: 18; the rest is the overflow guard; 32 before the casts were hoisted)."""
    opt = gx.adam(1e-3)

    def size(n):
        tree = [jnp.ones(4, jnp.float32) for _ in range(n)]
        step = lambda p, s: gx.apply_updates(p, opt.update(p, s, p)[0])  # noqa: E731
        return len(jax.make_jaxpr(step)(tree, opt.init(tree)).jaxpr.eqns)

    assert size(3) - size(2) <= 25
