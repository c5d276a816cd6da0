"""Muon: parity with optax.contrib, singular values, the AdamW leaves, one trace, sweeps, bad input.

Parity follows tests/test_parity.py (random nested pytrees, 100 steps, updates and
state leaves at three steps; float64 rtol 1e-6, float32 1e-5) with the lesson of
tests/test_zoo_lbfgs.py: optax is built inside ``jit`` from the same traced
hyperparameters as gradtx, and float32 runs without x64 (under x64 optax makes some
scalars float64). Trees hold tall (5, 3) and wide (3, 5) matrices, a vector, a
scalar and a 3-D leaf with dimension numbers; matrices are tiny to keep compiles short.
"""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optax import contrib
from optax.contrib import _muon as optax_muon
from test_parity import STEPS, assert_same_trajectories

import gradtx as gx

# --------------------------------------------------------------------------- parity

SHAPES = {"w1": (5, 3), "w2": (3, 5), "b": (3,), "nested": [(), {"conv": (2, 3, 4)}]}
MATRICES = {"w1": (5, 3), "w2": (3, 5), "conv": (2, 3, 4)}  # for the primitives: every leaf a matrix


def _dims(lib, shapes):
    """Dimension numbers of ``lib`` (gx or optax.contrib): matrices default, conv's rows are (0, 1)."""
    M = lib.MuonDimensionNumbers
    table = {"w1": M(), "w2": M(), "b": None, "nested": [None, {"conv": M(reduction_axis=(0, 1), output_axis=2)}]}
    if shapes is MATRICES:
        return {"w1": M(), "w2": M(), "conv": M(reduction_axis=0, output_axis=-1)}  # axis 1 a batch axis
    return table


def _decay_matrices_only(params):
    # A callable mask (static): decay the 2-D leaves of the Muon branch, not the 3-D one.
    return jax.tree.map(lambda p: p.ndim == 2, params)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "muon", "scale_by_muon" or "scale_by_shape"
    fixed: dict  # static options
    numbers: tuple  # names of the hyperparameters drawn (traced)
    dims: bool = True  # pass dimension numbers (else the default: 2-D leaves are Muon's)
    table: int = 0  # ns_coeffs: 0 a perturbed triple, n an (n, 3) table


MUON_NUMBERS = ("learning_rate", "beta", "eps", "weight_decay", "adam_b1", "adam_b2", "adam_eps_root",
                "adam_weight_decay", "ns_coeffs")
CASES = [
    Case("muon_defaults", "muon", {}, MUON_NUMBERS, dims=False),
    Case("muon_plain_adaptive_spectral", "muon",
         {"nesterov": False, "adaptive": True, "preconditioning": "spectral", "weight_decay_mask": _decay_matrices_only},
         MUON_NUMBERS + ("adam_learning_rate",)),
    Case("muon_aol_dion_rms", "muon", {"preconditioning": "aol"}, MUON_NUMBERS + ("consistent_rms",), table=5),
    Case("muon_schatten_adaptive_table3", "muon",
         {"preconditioning": "schatten", "adaptive": True, "ns_steps": 3}, MUON_NUMBERS, table=3),
    Case("scale_by_muon", "scale_by_muon", {}, ("beta", "eps", "ns_coeffs")),
    Case("scale_by_muon_plain_adaptive_aol_table", "scale_by_muon",
         {"nesterov": False, "adaptive": True, "preconditioning": "aol", "ns_steps": 4}, ("beta", "ns_coeffs"), table=4),
    Case("scale_by_shape_width", "scale_by_shape", {}, ()),
    Case("scale_by_shape_rms", "scale_by_shape", {}, ("consistent_rms",)),
]


def _draw(names, table, rng):
    """Random hyperparameters; ns_coeffs within 5% of the defaults (or of Dion's table)."""
    ranges = {"learning_rate": (1e-3, 0.1), "beta": (0.5, 0.99), "eps": (1e-8, 1e-5), "weight_decay": (0.0, 0.1),
              "adam_b1": (0.5, 0.99), "adam_b2": (0.9, 0.9999), "adam_eps_root": (0.0, 1e-6),
              "adam_weight_decay": (0.0, 0.1), "adam_learning_rate": (1e-3, 0.1), "consistent_rms": (0.1, 0.3)}
    out = {n: rng.uniform(*ranges[n]) for n in names if n != "ns_coeffs"}
    if "ns_coeffs" in names:
        base = np.array(optax_muon._DION_NS_COEFFS[-table:]) if table else np.array(optax_muon._DEFAULT_NS_COEFFS)
        out["ns_coeffs"] = base * rng.uniform(0.95, 1.05, base.shape)
    return out


def _build(lib, case: Case, numbers: dict):
    shapes = MATRICES if case.kind != "muon" else SHAPES
    dims = _dims(lib, shapes) if case.dims else None
    if case.kind == "muon":
        return lib.muon(**numbers, **case.fixed, muon_weight_dimension_numbers=dims)
    if case.kind == "scale_by_muon":
        return lib.scale_by_muon(**numbers, **case.fixed, weight_dimension_numbers=dims)
    shape_fn = gx.scale_by_shape if lib is gx else optax_muon.scale_by_shape  # optax does not export it
    return shape_fn(weight_dimension_numbers=dims, **numbers)


def _scan(tx, params, grads):
    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        p = jax.tree.map(lambda a, b: (a + b).astype(a.dtype), p, u)
        return (p, s), (u, s)

    return jax.lax.scan(step, (params, tx.init(params)), grads)[1]


def _without_ns_coeffs(states):
    """optax's states with each MuonState's ``ns_coeffs`` dropped (gradtx keeps no such field).

    optax copies the coefficients into its state at ``init``; gradtx keeps them as a
    hyperparameter leaf of the transform (gx.MuonState has count and mu only), so that
    field is left out of the by-name comparison. The copy is checked to equal the
    coefficients given, so nothing is lost by dropping it.
    """
    is_state = lambda x: isinstance(x, optax_muon.MuonState)  # noqa: E731
    found = []

    def drop(x):
        if is_state(x):
            found.append(x.ns_coeffs)
            return gx.MuonState(x.count, x.mu)
        return x

    return jax.tree.map(drop, states, is_leaf=is_state), found


def _random_tree(shapes, rng, dtype):
    return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s), dtype), shapes,
                        is_leaf=lambda s: isinstance(s, tuple))


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax_contrib(case: Case, dtype, rtol):
    """Updates and state leaves equal optax.contrib's over 100 steps, two random draws per case.

    Both libraries are built inside one jitted function from traced hyperparameters,
    so each compiles once per case and every draw reuses it.
    """
    shapes = MATRICES if case.kind != "muon" else SHAPES
    with jax.enable_x64(dtype == jnp.float64):
        ours_fn = jax.jit(lambda n, p, g: _scan(_build(gx, case, n), p, g))
        theirs_fn = jax.jit(lambda n, p, g: _scan(_build(contrib, case, n), p, g))
        for seed in range(2):
            rng = np.random.default_rng(seed)
            numbers = {k: jnp.asarray(v, dtype) for k, v in _draw(case.numbers, case.table, rng).items()}
            params = _random_tree(shapes, rng, dtype)
            grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(shapes, rng, dtype) for _ in range(STEPS)])
            ours = ours_fn(numbers, params, grads)
            theirs_updates, theirs_states = theirs_fn(numbers, params, grads)
            theirs_states, copies = _without_ns_coeffs(theirs_states)
            for c in copies:  # optax's state copy is the hyperparameter gradtx holds
                np.testing.assert_array_equal(c[-1], np.asarray(numbers["ns_coeffs"], c.dtype))
            assert bool(copies) == (case.kind != "scale_by_shape")
            assert_same_trajectories(ours, (theirs_updates, theirs_states), dtype, rtol)


def test_optax_dimension_numbers_are_accepted():
    """optax's MuonDimensionNumbers work in gradtx (duck-typed): a port keeps its specs."""
    dims = _dims(contrib, SHAPES)
    params = _random_tree(SHAPES, np.random.default_rng(0), jnp.float64)
    ours = gx.muon(0.1, muon_weight_dimension_numbers=dims)
    same = gx.muon(0.1, muon_weight_dimension_numbers=_dims(gx, SHAPES))
    u1, _ = ours.update(params, ours.init(params), params)
    u2, _ = same.update(params, same.init(params), params)
    jax.tree.map(np.testing.assert_array_equal, u1, u2)


# --------------------------------------------------------------------------- singular values


def _quintic_interval(s_min, s_max, coeffs, steps, points=200_001):
    """Where ``steps`` iterations of p(s) = a s + b s^3 + c s^5 send [s_min, s_max] (dense grid)."""
    a, b, c = coeffs
    s = np.linspace(s_min, s_max, points)
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s.min(), s.max()


@jax.jit
def _first_muon_update(grads):
    tx = gx.scale_by_muon()  # defaults: Nesterov, Frobenius, 5 steps of (3.4445, -4.7750, 2.0315)
    return tx.update(grads, tx.init(grads))[0]


def test_singular_values_land_in_the_quintic_interval_and_vectors_are_kept():
    """For Gaussian 512x256 and 256x512 float32 matrices, Muon's first update is U p^5(S/|G|_F) V^T.

    The first momentum is a multiple of the gradient, so the update is NS(G/|G|_F). Its
    singular values lie where 5 steps of the scalar quintic send the normalised singular
    values, [0.6818, 1.1344] for both matrices (the interval the defaults are known for),
    and its singular vectors are G's: ||O - U diag(p^5(s)) V^T||_2 is float32 rounding (5e-6).
    """
    rng = np.random.default_rng(0)
    grads = {"tall": jnp.asarray(rng.standard_normal((512, 256)), jnp.float32),
             "wide": jnp.asarray(rng.standard_normal((256, 512)), jnp.float32)}
    updates = _first_muon_update(grads)  # one jitted call for both shapes
    coeffs = optax_muon._DEFAULT_NS_COEFFS
    for name, g in grads.items():
        g = np.asarray(g, np.float64)
        o = np.asarray(updates[name], np.float64)
        assert o.shape == g.shape
        u, sv, vt = np.linalg.svd(g, full_matrices=False)
        s = sv / np.linalg.norm(g)
        lo, hi = _quintic_interval(s.min(), s.max(), coeffs, 5)
        np.testing.assert_allclose([lo, hi], [0.68183, 1.13436], atol=1e-5)  # the derived interval
        o_sv = np.linalg.svd(o, compute_uv=False)
        assert lo - 1e-4 <= o_sv.min() and o_sv.max() <= hi + 1e-4, (name, o_sv.min(), o_sv.max())
        assert o_sv.min() < 0.72 and o_sv.max() > 1.1  # the iteration does not converge to 1: it oscillates
        predicted = s.copy()
        for _ in range(5):
            predicted = coeffs[0] * predicted + coeffs[1] * predicted**3 + coeffs[2] * predicted**5
        residual = np.linalg.norm(o - (u * predicted) @ vt, 2)
        assert residual < 1e-4, (name, residual)  # measured: 5e-6


# --------------------------------------------------------------------------- the AdamW leaves


@pytest.mark.parametrize("nesterov", [True, False])
def test_non_matrix_leaves_follow_adamw_exactly(nesterov):
    """gx.muon's vectors, scalars and default-dims 3-D leaves get exactly gx.adamw's updates and state."""
    rng = np.random.default_rng(1)
    shapes = {"w": (4, 3), "b": (3,), "s": (), "t": (2, 2, 2)}
    params = _random_tree(shapes, rng, jnp.float32)
    grads = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(shapes, rng, jnp.float32) for _ in range(20)])
    hyper = {"b1": 0.8, "b2": 0.99, "eps_root": 1e-9, "weight_decay": 0.05}
    opt = gx.muon(0.1, eps=1e-6, nesterov=nesterov, adam_learning_rate=0.03,
                  **{f"adam_{k}": v for k, v in hyper.items()})
    rest = ("b", "s", "t")
    sub = lambda tree: {k: tree[k] for k in rest}  # noqa: E731
    reference = gx.adamw(0.03, eps=1e-6, nesterov=nesterov, **hyper)
    u_muon, s_muon = jax.jit(_scan)(opt, params, grads)
    u_ref, s_ref = jax.jit(_scan)(reference, sub(params), sub(grads))
    for k in rest:
        np.testing.assert_array_equal(u_muon[k], u_ref[k], err_msg=k)
    adam_state = s_muon.inner_states["adam"].inner_state[0]
    np.testing.assert_array_equal(adam_state.count, s_ref[0].count)
    for k in rest:
        np.testing.assert_array_equal(adam_state.mu[k], s_ref[0].mu[k])
        np.testing.assert_array_equal(adam_state.nu[k], s_ref[0].nu[k])
    assert isinstance(adam_state.mu["w"], gx.MaskedNode)  # the matrix is Muon's
    assert not np.allclose(u_muon["w"], 0)


# --------------------------------------------------------------------------- one trace, sweeps


def _params(dtype=jnp.float32):
    return _random_tree({"w": (4, 3), "v": (3, 5), "b": (3,)}, np.random.default_rng(2), dtype)


def test_one_trace_for_many_hyperparameters_and_coefficients():
    traces = 0

    @jax.jit
    def step(opt, params):
        nonlocal traces
        traces += 1
        u, _ = opt.update(params, opt.init(params), params)
        return u

    params = _params()
    triples = [(3.4445, -4.7750, 2.0315), (3.0, -4.0, 2.0), np.array([2.0, -1.5, 0.5])]
    outs = []
    for i, c in enumerate(triples):
        opt = gx.muon(0.1 * (i + 1), ns_coeffs=c, beta=0.9 - 0.1 * i, eps=10.0 ** -(6 + i),
                      weight_decay=0.01 * i, adam_b1=0.8, consistent_rms=0.2 + 0.1 * i)
        outs.append(step(opt, params))
    assert traces == 1
    assert not np.allclose(outs[0]["w"] / 0.1, outs[1]["w"] / 0.2)  # the coefficients are used
    # A table is another shape: one more trace for any number of tables.
    dion = np.array(optax_muon._DION_NS_COEFFS)
    for table in ("dion", dion * 0.99, dion[::-1]):
        step(gx.muon(0.1, ns_coeffs=table, consistent_rms=0.2), params)
    assert traces == 2


def test_new_coefficients_take_effect_without_a_new_state():
    """The coefficients are a leaf of the transform, not state: swapping them after init is a new run."""
    params = _params(jnp.float64)
    tx_a, tx_b = gx.scale_by_muon(ns_coeffs=(3.0, -4.0, 2.0)), gx.scale_by_muon(ns_coeffs=(2.0, -1.5, 0.5))
    grads = {k: v for k, v in params.items() if v.ndim == 2}  # the primitive takes matrices only
    state = tx_a.init(grads)
    assert set(state._fields) == {"count", "mu"}
    u_swapped, _ = tx_b.update(grads, state)
    u_fresh, _ = tx_b.update(grads, tx_b.init(grads))
    jax.tree.map(np.testing.assert_array_equal, u_swapped, u_fresh)


@jax.jit
def _train(opt, params):
    loss = lambda p: sum(jnp.sum((x - 0.5) ** 2) for x in jax.tree.leaves(p))  # noqa: E731

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (gx.apply_updates(p, u), s), loss(p)

    return jax.lax.scan(step, (params, opt.init(params)), None, length=20)


def test_vmap_over_coefficient_sets_and_learning_rates_equals_separate_runs():
    params = _params()
    coeffs = jnp.array([[3.4445, -4.7750, 2.0315], [3.0, -3.2, 1.2], [2.0, -1.5, 0.5]], jnp.float32)
    lrs = jnp.array([0.01, 0.03, 0.1], jnp.float32)
    batched = jax.vmap(lambda c, lr: gx.muon(lr, ns_coeffs=c))(coeffs, lrs)
    assert batched.transforms["muon"].transforms[0].ns_coeffs.shape == (3, 3)
    (p_batched, _), loss_batched = jax.vmap(_train, in_axes=(0, None))(batched, params)
    for i in range(3):
        (p, _), losses = _train(gx.muon(float(lrs[i]), ns_coeffs=np.asarray(coeffs[i])), params)
        np.testing.assert_allclose(loss_batched[i], losses, rtol=2e-5, atol=1e-6)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=1e-6), p_batched, p)
    assert loss_batched[2, -1] < loss_batched[2, 0]


# --------------------------------------------------------------------------- bad input

M = gx.MuonDimensionNumbers


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: gx.scale_by_muon(ns_coeffs=(1.0, 2.0, 3.0, 4.0)), r"gx.scale_by_muon: `ns_coeffs` must have shape \(3,\) or \(n, 3\)"),
        (lambda: gx.muon(0.1, ns_coeffs=np.ones((2, 2, 3))), r"gx.muon: `ns_coeffs` must have shape"),
        (lambda: gx.muon(0.1, ns_coeffs=np.ones((3, 3))), r"gx.muon: `ns_coeffs` is a table of 3 rows but `ns_steps` is 5"),
        (lambda: gx.scale_by_muon(ns_coeffs="dion", ns_steps=3), r"`ns_coeffs` is a table of 5 rows but `ns_steps` is 3"),
        (lambda: gx.muon(0.1, ns_coeffs="fast"), r"gx.muon: `ns_coeffs` preset 'fast' is unknown"),
        (lambda: gx.muon(0.1, ns_coeffs=(1.0, np.nan, 2.0)), r"gx.muon: `ns_coeffs` must be a finite real number"),
        (lambda: gx.muon(0.1, preconditioning="polar"), r"gx.muon: `preconditioning` must be one of 'frobenius'"),
        (lambda: gx.scale_by_muon(ns_steps=0), r"gx.scale_by_muon: `ns_steps` must be an int >= 1"),
        (lambda: gx.muon(0.1, ns_steps=2.5), r"gx.muon: `ns_steps` must be an int >= 1"),
        (lambda: gx.muon(0.1, ns_steps=True), r"`ns_steps` must be an int >= 1"),
        (lambda: gx.scale_by_muon(weight_dimension_numbers=M(0, 0)), r"`weight_dimension_numbers` has overlapping"),
        (lambda: gx.muon(0.1, muon_weight_dimension_numbers={"w": M((0, 1), 1)}),
         r"gx.muon: `muon_weight_dimension_numbers` has overlapping"),
        (lambda: gx.scale_by_shape(M(reduction_axis=())), r"gx.scale_by_shape: `weight_dimension_numbers` has reduction_axis=\(\)"),
        (lambda: gx.muon(0.1, muon_weight_dimension_numbers={"w": 3}), r"gx.muon: `muon_weight_dimension_numbers` must be None"),
        (lambda: gx.scale_by_muon(beta=1.0), r"gx.scale_by_muon: `beta` must be in \[0, 1\)"),
        (lambda: gx.muon(0.1, beta=-0.1), r"gx.muon: `beta` must be in \[0, 1\)"),
        (lambda: gx.muon(0.1, adam_b1=1.5), r"gx.muon: `adam_b1` must be in \[0, 1\)"),
        (lambda: gx.muon(0.1, eps=0.0, adam_eps_root=0.0), r"gx.muon: `eps` and `adam_eps_root` cannot both be 0"),
        (lambda: gx.muon(-0.1), r"gx.muon: `learning_rate` must be >= 0"),
        (lambda: gx.muon(0.1, adam_learning_rate=-1.0), r"gx.muon: `adam_learning_rate` must be >= 0"),
        (lambda: gx.muon(0.1, consistent_rms=-0.2), r"gx.muon: `consistent_rms` must be >= 0"),
    ],
)
def test_bad_arguments_raise_naming_them(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_bad_shapes_raise_at_init_naming_the_leaf():
    with pytest.raises(ValueError, match=r"gx.scale_by_muon.init: params leaf \['b'\].*rank >= 2"):
        gx.scale_by_muon().init({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    # Axes that overlap only once normalised for the leaf's rank.
    tx = gx.scale_by_muon(weight_dimension_numbers={"conv": M(reduction_axis=0, output_axis=-3)})
    with pytest.raises(ValueError, match=r"params leaf \['conv'\]: `weight_dimension_numbers`.*overlapping"):
        tx.init({"conv": jnp.ones((2, 3, 4))})
    with pytest.raises(ValueError, match=r"`weight_dimension_numbers` .* out of range"):
        gx.scale_by_muon(weight_dimension_numbers=M(0, 3)).init({"w": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match=r"`weight_dimension_numbers` does not match"):
        gx.scale_by_muon(weight_dimension_numbers={"x": M()}).init({"w": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match=r"gx.orthogonalize_via_newton_schulz: `x` must be a matrix"):
        gx.orthogonalize_via_newton_schulz(jnp.ones((2, 3, 4)), "standard")


def test_table_length_rule_against_optax():
    """optax raises for a table longer than ns_steps and runs a shorter one for its length; gradtx
    asks for exactly ns_steps rows (pinned here: if optax changes, the docstring must too)."""
    params = jnp.ones((3, 4))
    short, long = np.ones((3, 3)), np.ones((7, 3))
    contrib.scale_by_muon(ns_coeffs=short, ns_steps=5).init(params)  # optax: fine, runs 3 steps
    with pytest.raises(ValueError):
        contrib.scale_by_muon(ns_coeffs=long, ns_steps=5).init(params)
    for table in (short, long):
        with pytest.raises(ValueError, match="pass ns_steps="):
            gx.scale_by_muon(ns_coeffs=table, ns_steps=5)
    ours = gx.scale_by_muon(ns_coeffs=short, ns_steps=3)
    u_gx, _ = ours.update(params, ours.init(params))
    tx = contrib.scale_by_muon(ns_coeffs=short, ns_steps=5)
    u_optax, _ = tx.update(params, tx.init(params))
    np.testing.assert_allclose(u_gx, u_optax, rtol=1e-12)
