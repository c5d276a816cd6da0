"""L-BFGS and the zoom line search: parity with optax, Rosenbrock to 1e-14, strong Wolfe, bad input.

Parity follows tests/test_parity.py (random nested pytrees, random hyperparameters,
100 steps, updates and state leaves at three steps; float64 rtol 1e-6, float32
1e-5), with ``value``, ``grad`` and ``value_fn`` passed to every update.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from test_parity import EXAMPLES, STEPS, STRUCTURES, _random_tree, assert_same_trajectories

import gradtx as gx


def _rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _tree_objective(params):
    """A non-convex objective on any pytree: Rosenbrock along each flattened leaf, plus a quartic."""
    total = 0.0
    for x in jax.tree.leaves(params):
        v = jnp.ravel(x)
        total = total + 0.5 * jnp.sum((v - 0.3) ** 2) + 0.1 * jnp.sum(v**4)
        if v.size > 1:
            total = total + _rosenbrock(v) * 0.1
    return total


def _convex_objective(params):
    """Strongly convex, curvatures 1..100 along each leaf plus a quartic: gradient descent
    shrinks differences between two runs instead of amplifying them (on the Rosenbrock
    terms above, a one-ulp difference in a step grows to 1e-3 within 100 steps)."""
    total = 0.0
    for x in jax.tree.leaves(params):
        v = jnp.ravel(x)
        curv = jnp.linspace(1.0, 100.0, v.size, dtype=v.dtype) if v.size > 1 else jnp.ones(1, v.dtype)
        total = total + 0.5 * jnp.sum(curv * (v - 0.3) ** 2) + 0.05 * jnp.sum(v**4)
    return total


def _scan(tx, params, steps, objective=_tree_objective):
    """``steps`` updates with value, grad and value_fn; returns (updates, states, values) per step."""

    def step(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(objective)(p)
        u, s = tx.update(grad, s, p, value=value, grad=grad, value_fn=objective)
        p = jax.tree.map(lambda a, b: (a + b).astype(a.dtype), p, u)
        return (p, s), (u, s, value)

    return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[1]


_run_gx = jax.jit(_scan, static_argnums=(2, 3))


# Budgets of 8+ evaluations and steps of at most 0.3 g: with fewer, a failed search takes an
# unsafe step and the quartic objective blows up to 1e21 within two steps, where float32
# rounding (not the algorithm) decides what happens next (optax then turns NaN; gradtx stays put).
ZOOM = {
    "max_linesearch_steps": st.integers(8, 30),
    "max_learning_rate": st.sampled_from([None, 0.5, 4.0]),
    "increase_factor": st.floats(1.5, 4.0),
    "slope_rtol": st.floats(1e-5, 0.3),
    "curv_rtol": st.floats(0.5, 0.99),
    "approx_dec_rtol": st.sampled_from([None, 1e-6, 1e-3]),
    "stepsize_precision": st.sampled_from([1e-5, 1e-3]),
    "initial_guess_strategy": st.sampled_from(["one", "keep"]),
}


def _check(make_gx, make_optax, numbers, fixed, dtype, rtol, which, seed, scale=0.5):
    """gradtx against optax, both built from ``numbers`` (traced: runtime values) and ``fixed``.

    optax is built inside ``jit`` from traced hyperparameters, as gradtx's are runtime
    leaves: closed over, XLA folds optax's constants into its arithmetic and rounds some
    products an ulp differently, and a line search on an ill-conditioned problem grows
    that ulp to 1e-3 within 100 steps (measured). With the same runtime values, the two
    runs agree to the last bit until they converge. A converged run's next steps are
    rounding noise (XLA may fuse a multiply-add in one program and not in the other, and
    the search then compares values equal to their last bits), so a checkpoint after step
    0 is compared only while optax's update norm is above 1e-2 (float32) or 1e-6
    (float64) of its first (below it, a float32 step s = w' - w carries a relative rounding
    error above 1e-5, and L-BFGS's 1/<s, y> amplifies it); the final objective values
    always agree.
    """
    rng = np.random.default_rng(seed)
    # float32 runs without x64: under x64 optax makes some of its scalars float64 (its
    # memory weights, the search's interval ends), which is no float32 oracle.
    with jax.enable_x64(dtype == jnp.float64):
        params = jax.tree.map(lambda x: x * scale, _random_tree(STRUCTURES[which], rng, dtype))
        numbers = {k: jnp.asarray(v) for k, v in numbers.items()}
        ours = _run_gx(make_gx(**numbers, **fixed), params, STEPS, _convex_objective)
        theirs = jax.jit(lambda n, p: _scan(make_optax(**n, **fixed), p, STEPS, _convex_objective))(numbers, params)
        norms = np.sqrt(sum(np.sum(np.abs(np.asarray(x, np.float64)) ** 2, axis=tuple(range(1, x.ndim)))
                            for x in jax.tree.leaves(theirs[0])))
        floor = (1e-6 if dtype == jnp.float64 else 1e-2) * norms[0]
        steps = tuple(t for t in (0, 25, 50, 75, STEPS - 1) if t == 0 or norms[t] > floor)
        assert_same_trajectories(ours, theirs, dtype, rtol, steps)
        # Converged or not, both end at the same objective value.
        np.testing.assert_allclose(ours[2][-1], theirs[2][-1], rtol=rtol, atol=1e-12)


NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)  # each example compiles: shrinking takes minutes
_NUMERIC = ("max_linesearch_steps", "max_learning_rate", "tol", "increase_factor", "slope_rtol", "curv_rtol",
            "approx_dec_rtol", "stepsize_precision")
DTYPES = pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])


@DTYPES
def test_zoom_linesearch_parity(dtype, rtol):
    @settings(max_examples=EXAMPLES, deadline=None, phases=NO_SHRINK)
    @given(hp=st.fixed_dictionaries(ZOOM), lr=st.floats(0.01, 0.3), which=st.integers(0, 2), seed=st.integers(0, 2**16))
    def check(hp, lr, which, seed):
        numbers = {k: v for k, v in hp.items() if k in _NUMERIC and v is not None}
        fixed = {k: v for k, v in hp.items() if k not in numbers}
        _check(
            lambda lr, **kw: gx.chain(gx.sgd(lr), gx.scale_by_zoom_linesearch(**kw)),
            lambda lr, **kw: optax.chain(optax.sgd(lr), optax.scale_by_zoom_linesearch(**kw)),
            {**numbers, "lr": lr}, fixed, dtype, rtol, which, seed,
        )

    check()


@DTYPES
def test_lbfgs_parity(dtype, rtol):
    @settings(max_examples=EXAMPLES, deadline=None, phases=NO_SHRINK)
    @given(
        memory_size=st.integers(1, 12),
        scale_init_precond=st.booleans(),
        lr=st.sampled_from([None, 0.5, 1.0]),
        which=st.integers(0, 2),
        seed=st.integers(0, 2**16),
    )
    def check(memory_size, scale_init_precond, lr, which, seed):
        # optax.lbfgs's default line search, its constants as runtime values.
        numbers = {"max_linesearch_steps": 20, "tol": 0.0, "increase_factor": 2.0, "slope_rtol": 1e-4,
                   "curv_rtol": 0.9, "approx_dec_rtol": 1e-6, "stepsize_precision": 1e-5}
        if lr is not None:
            numbers["learning_rate"] = lr
        fixed = {"memory_size": memory_size, "scale_init_precond": scale_init_precond}

        def make(lib):
            def build(memory_size, scale_init_precond, learning_rate=None, **ls):
                search = lib.scale_by_zoom_linesearch(initial_guess_strategy="one", **ls)
                return lib.lbfgs(learning_rate, memory_size, scale_init_precond, linesearch=search)

            return build

        _check(make(gx), make(optax), numbers, fixed, dtype, rtol, which, seed)

    check()


def _open_loop(tx, params, grads):
    """``tx.update(g_t, state, p_t)`` over given sequences: no feedback from one step to the next."""

    def step(state, pg):
        p, g = pg
        u, state = tx.update(g, state, p)
        return state, (u, state)

    return jax.lax.scan(step, tx.init(jax.tree.map(lambda x: x[0], params)), (params, grads))[1]


def _assert_close_normwise(ours, theirs, rtol):
    """Every leaf of (updates, state) at every step within ``rtol`` of optax's, relative to the leaf's
    largest entry: H g is a sum of terms weighted by 1/<s, y>, which random pairs make large, and
    its small entries are what is left after they cancel (rounding of the order of the large ones)."""
    a_leaves, b_leaves = jax.tree.leaves(ours), jax.tree.leaves(theirs)
    assert len(a_leaves) == len(b_leaves)
    for a, b in zip(a_leaves, b_leaves):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape
        for t in range(a.shape[0]):
            scale = np.max(np.abs(b[t]), initial=0.0)
            np.testing.assert_allclose(a[t], b[t], rtol=rtol, atol=rtol * scale, err_msg=f"step {t}")


@DTYPES
def test_scale_by_lbfgs_parity_alone(dtype, rtol):
    """The preconditioner on its own, fed random parameter sequences and their gradients on a quadratic
    (random pairs s, y = D s): every step's updates and state leaves equal optax's, 100 steps, random trees."""

    @settings(max_examples=EXAMPLES, deadline=None, phases=NO_SHRINK)
    @given(memory_size=st.integers(1, 12), scale_init_precond=st.booleans(), which=st.integers(0, 2),
           seed=st.integers(0, 2**16))
    def check(memory_size, scale_init_precond, which, seed):
        rng = np.random.default_rng(seed)
        draw = lambda: jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_tree(STRUCTURES[which], rng, dtype)  # noqa: E731
                                                                 for _ in range(STEPS)])
        params = draw()
        # Gradients of a convex quadratic with curvatures 1..10, so <s, y> > 0 and H is well-conditioned
        # (random gradients give <s, y> ~ 0 and entries of 1e7 that cancel: a test of rounding, not of L-BFGS).
        def quadratic_grad(p):
            curvature = jnp.linspace(1.0, 10.0, p[0].size, dtype=dtype).reshape((1,) + p.shape[1:])
            return curvature * (p - 0.3)

        grads = jax.tree.map(quadratic_grad, params)
        kw = dict(memory_size=memory_size, scale_init_precond=scale_init_precond)
        with jax.enable_x64(dtype == jnp.float64):  # see _check
            ours = jax.jit(_open_loop)(gx.scale_by_lbfgs(**kw), params, grads)
            theirs = jax.jit(lambda p, g: _open_loop(optax.scale_by_lbfgs(**kw), p, g))(params, grads)
            _assert_close_normwise(ours, theirs, rtol)

    check()


# ----------------------------------------------------------------- Rosenbrock, strong Wolfe


def _make_step(opt, vg_from_state, apply):
    @jax.jit
    def step(x, s):
        v, g = vg_from_state(_rosenbrock)(x, state=s)
        u, s = opt.update(g, s, x, value=v, grad=g, value_fn=_rosenbrock)
        return apply(x, u), s, u

    return step


def _iterates(opt, x0, n, vg_from_state, apply):
    step = _make_step(opt, vg_from_state, apply)
    s, x, xs = opt.init(x0), x0, [x0]
    for _ in range(n):
        x, s, _ = step(x, s)
        xs.append(x)
    return np.asarray(xs)


@pytest.mark.parametrize("dim", [2, 10])
def test_lbfgs_iterates_match_optax_on_rosenbrock(dim):
    x0 = jnp.asarray([-1.2, 1.0] * (dim // 2), jnp.float64)
    ours = _iterates(gx.lbfgs(), x0, 30, gx.value_and_grad_from_state, gx.apply_updates)
    theirs = _iterates(optax.lbfgs(), x0, 30, optax.value_and_grad_from_state, optax.apply_updates)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    assert _rosenbrock(ours[-1]) < _rosenbrock(ours[0]) * 0.1  # it did move: the test can fail


def _iterations_to(opt, x0, tol, vg_from_state, apply, max_iter=1000, check_wolfe=False):
    """Updates until f <= tol; with ``check_wolfe`` every accepted step is checked independently."""
    step = _make_step(opt, vg_from_state, apply)
    value_and_grad = jax.jit(jax.value_and_grad(_rosenbrock))
    ls = opt.transforms[-1] if check_wolfe else None
    s, x = opt.init(x0), x0
    for k in range(max_iter):
        f, g = value_and_grad(x)
        if f <= tol:
            return k
        x_new, s, u = step(x, s)
        if check_wolfe:
            f_new, g_new = value_and_grad(x_new)
            slope0, slope1 = float(jnp.vdot(g, u)), float(jnp.vdot(g_new, u))
            c1, c2, c3 = float(ls.slope_rtol), float(ls.curv_rtol), float(ls.approx_dec_rtol)
            assert slope0 < 0, (k, slope0)
            armijo = f_new <= f + c1 * slope0
            # Hager & Zhang's approximate Wolfe condition, used where values sit within c3 |f| of f.
            approx = (slope1 <= (2 * c1 - 1) * slope0) & (f_new <= f + c3 * abs(f))
            assert armijo or approx, (k, float(f), float(f_new), slope0)
            assert abs(slope1) <= c2 * abs(slope0), (k, slope1, slope0)
        x = x_new
    return None


@pytest.mark.slow
@pytest.mark.parametrize(
    "dim,start,limit",
    [(2, "classic", 35), (10, "zeros", 62), (50, "zeros", 269)],
    ids=["2d", "10d", "50d"],
)
def test_lbfgs_reaches_1e_14_on_rosenbrock_no_slower_than_optax_with_strong_wolfe_steps(dim, start, limit):
    x0 = jnp.asarray([-1.2, 1.0], jnp.float64) if start == "classic" else jnp.zeros(dim, jnp.float64)
    ours = _iterations_to(gx.lbfgs(), x0, 1e-14, gx.value_and_grad_from_state, gx.apply_updates, check_wolfe=True)
    theirs = _iterations_to(optax.lbfgs(), x0, 1e-14, optax.value_and_grad_from_state, optax.apply_updates)
    assert ours is not None and theirs is not None
    assert ours <= theirs, (ours, theirs)
    assert ours <= limit, (ours, limit)


# ----------------------------------------------------------------- values as leaves


def test_lbfgs_line_search_constants_are_leaves_vmap_equals_loop():
    """A batch of curv_rtol (and tolerances) is one program, equal to the runs one by one."""
    x0 = jnp.asarray([-1.2, 1.0], jnp.float64)

    def run(opt):
        def body(carry, _):
            x, s = carry
            v, g = jax.value_and_grad(_rosenbrock)(x)
            u, s = opt.update(g, s, x, value=v, grad=g, value_fn=_rosenbrock)
            return (gx.apply_updates(x, u), s), _rosenbrock(x)

        return jax.lax.scan(body, (x0, opt.init(x0)), None, length=25)[1]

    make = lambda c2, c1: gx.lbfgs(linesearch=gx.scale_by_zoom_linesearch(20, curv_rtol=c2, slope_rtol=c1,  # noqa: E731
                                                                           initial_guess_strategy="one"))
    c2s, c1s = jnp.asarray([0.1, 0.5, 0.9]), jnp.asarray([1e-4, 1e-3, 1e-2])
    traces = 0

    def counted(opt):
        nonlocal traces
        traces += 1
        return run(opt)

    batched = jax.jit(jax.vmap(counted))(jax.vmap(make)(c2s, c1s))
    lone = jax.jit(counted)
    for i in range(3):
        np.testing.assert_allclose(batched[i], lone(make(float(c2s[i]), float(c1s[i]))), rtol=1e-12)
    assert traces == 2  # one for the batch, one for all three lone runs
    assert not np.allclose(batched[0], batched[2])  # the constants matter


# ----------------------------------------------------------------- value_and_grad_from_state


def test_value_and_grad_from_state_reuses_the_search_s_evaluation():
    calls = 0

    def f(w):
        nonlocal calls
        calls += 1
        return jnp.sum((w - 1.0) ** 2)

    opt = gx.lbfgs()
    w = jnp.zeros(3)
    state = opt.init(w)
    vg = gx.value_and_grad_from_state(f)
    v0, g0 = vg(w, state=state)  # no stored value yet: computed
    np.testing.assert_allclose(g0, -2.0 * np.ones(3))
    u, state = opt.update(g0, state, w, value=v0, grad=g0, value_fn=f)
    w = gx.apply_updates(w, u)
    v1, g1 = vg(w, state=state)  # the search's last point: stored
    np.testing.assert_allclose(v1, f(w))
    np.testing.assert_allclose(g1, jax.grad(f)(w), atol=1e-7)
    assert v1 == state[-1].value


def test_value_and_grad_from_state_errors():
    f = lambda w: jnp.sum(w**2)  # noqa: E731
    w = jnp.ones(2)
    with pytest.raises(ValueError, match="exactly one `value` field.*found it 0 times"):
        gx.value_and_grad_from_state(f)(w, state=gx.adam(0.1).init(w))
    bt = gx.chain(gx.sgd(1.0), gx.scale_by_backtracking_linesearch(10))
    with pytest.raises(ValueError, match="store_grad=True"):
        gx.value_and_grad_from_state(f)(w, state=bt.init(w))
    bt = gx.chain(gx.sgd(1.0), gx.scale_by_backtracking_linesearch(10, store_grad=True))
    v, g = gx.value_and_grad_from_state(f)(w, state=bt.init(w))
    np.testing.assert_allclose(g, 2 * w)


# ----------------------------------------------------------------- closed forms


def test_zoom_finds_the_exact_step_of_a_quadratic():
    """Along -grad of sum((w-1)^2) the exact step is 1/2; the first trial (1) overshoots to f(0)."""
    f = lambda w: jnp.sum((w - 1.0) ** 2)  # noqa: E731
    opt = gx.chain(gx.sgd(1.0), gx.scale_by_zoom_linesearch(15))
    w = jnp.zeros(3)
    v, g = jax.value_and_grad(f)(w)
    u, state = opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=f)
    np.testing.assert_allclose(gx.apply_updates(w, u), np.ones(3), atol=1e-7)
    assert float(state[1].learning_rate) == pytest.approx(0.5)
    assert int(state[1].info.num_linesearch_steps) == 2
    assert float(state[1].info.decrease_error) == 0.0 and float(state[1].info.curvature_error) == 0.0


def test_lbfgs_is_exact_on_a_quadratic_in_n_plus_one_steps():
    """On a strictly convex quadratic in R^n, BFGS with exact line searches terminates in <= n steps."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    a = jnp.asarray(q @ np.diag([1.0, 2.0, 5.0, 10.0, 30.0]) @ q.T)
    f = lambda w: 0.5 * w @ a @ w - jnp.sum(w)  # noqa: E731
    w_star = np.linalg.solve(np.asarray(a), np.ones(5))
    opt = gx.lbfgs(memory_size=5, linesearch=gx.scale_by_zoom_linesearch(30, slope_rtol=1e-7, curv_rtol=1e-6, initial_guess_strategy="one"))
    w, state = jnp.zeros(5), opt.init(jnp.zeros(5))
    for _ in range(6):
        v, g = jax.value_and_grad(f)(w)
        u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
        w = gx.apply_updates(w, u)
    np.testing.assert_allclose(w, w_star, rtol=1e-6)


def test_first_step_is_capped_gradient():
    tx = gx.scale_by_lbfgs()
    w = jnp.asarray([3.0, 4.0])
    u, _ = tx.update(jnp.asarray([3.0, 4.0]), tx.init(w), w)
    np.testing.assert_allclose(u, [0.6, 0.8], rtol=1e-6)
    u, _ = tx.update(jnp.asarray([0.3, 0.4]), tx.init(w), w)  # ||g|| < 1: not scaled
    np.testing.assert_allclose(u, [0.3, 0.4], rtol=1e-6)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: gx.lbfgs(memory_size=0), r"gx\.lbfgs: `memory_size` must be a Python int >= 1"),
        (lambda: gx.scale_by_lbfgs(memory_size=2.5), r"gx\.scale_by_lbfgs: `memory_size`"),
        (lambda: gx.lbfgs(learning_rate=-1.0), r"gx\.lbfgs: `learning_rate` must be >= 0"),
        (lambda: gx.lbfgs(linesearch="zoom"), r"gx\.lbfgs: `linesearch` must be a gradtx transformation"),
        (lambda: gx.scale_by_zoom_linesearch(0), r"`max_linesearch_steps` must be an integer in \[1"),
        (lambda: gx.scale_by_zoom_linesearch(10, increase_factor=1.0), r"`increase_factor` must be > 1"),
        (lambda: gx.scale_by_zoom_linesearch(10, slope_rtol=0.5, curv_rtol=0.4), r"`slope_rtol` \(0.5\) must be below `curv_rtol`"),
        (lambda: gx.scale_by_zoom_linesearch(10, curv_rtol=0.0), r"`curv_rtol` must be > 0"),
        (lambda: gx.scale_by_zoom_linesearch(10, max_learning_rate=0.0), r"`max_learning_rate` must be > 0"),
        (lambda: gx.scale_by_zoom_linesearch(10, tol=-1.0), r"`tol` must be >= 0"),
        (lambda: gx.scale_by_zoom_linesearch(10, initial_guess_strategy="two"), r"'one' or 'keep'"),
    ],
)
def test_bad_hyperparameters_are_named(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_missing_extra_arguments_are_named():
    f = lambda w: jnp.sum(w**2)  # noqa: E731
    opt = gx.lbfgs()
    w = jnp.ones(2)
    state = opt.init(w)
    with pytest.raises(ValueError, match=r"`value`, `value_fn`"):
        opt.update(w, state, w)
    with pytest.raises(ValueError, match=r"keyword argument `value_fn`.*gx\.as_optax"):
        opt.update(w, state, w, value=f(w))
    with pytest.raises(ValueError, match=r"params"):
        opt.update(w, state, None, value=f(w), value_fn=f)
    with pytest.raises(ValueError, match=r"`value_fn` must return a scalar"):
        opt.update(w, state, w, value=f(w), value_fn=lambda w: w)
    # grad is optional: computed from value_fn when absent.
    u1, _ = opt.update(2 * w, state, w, value=f(w), value_fn=f)
    u2, _ = opt.update(2 * w, state, w, value=f(w), grad=2 * w, value_fn=f)
    np.testing.assert_allclose(u1, u2)


def test_extra_arguments_reach_value_fn_and_others_are_ignored():
    def f(w, x, y):
        return jnp.sum((x @ w - y) ** 2)

    x, y = jnp.asarray([[1.0, 2.0], [3.0, 1.0]]), jnp.asarray([1.0, 0.0])
    opt = gx.lbfgs()
    w = jnp.zeros(2)
    state = opt.init(w)
    for _ in range(8):
        v, g = jax.value_and_grad(f)(w, x, y)
        u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f, x=x, y=y, unrelated=3)
        w = gx.apply_updates(w, u)
    np.testing.assert_allclose(w, np.linalg.solve(np.asarray(x), np.asarray(y)), atol=1e-5)


def test_state_keeps_params_dtype_and_structure_under_jit():
    p = {"a": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones((4,), jnp.float32)}
    f = lambda q: sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(q))  # noqa: E731
    opt = gx.lbfgs(memory_size=3)
    s0 = opt.init(p)

    @functools.partial(jax.jit)
    def step(p, s):
        v, g = jax.value_and_grad(f)(p)
        u, s = opt.update(g, s, p, value=v, grad=g, value_fn=f)
        return gx.apply_updates(p, u), s

    p1, s1 = step(p, s0)
    assert jax.tree.structure(s1) == jax.tree.structure(s0)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s0)):
        assert a.dtype == b.dtype and a.shape == b.shape
    assert s0[0].diff_params_memory["a"].shape == (3, 2, 3)
    assert s0[0].weights_memory.dtype == jnp.float32  # at least float32 for bfloat16 params
    assert f(p1) < f(p)
