"""The adam-like zoo (issue 15): AdaBelief, Yogi, RAdam, Adan, NovoGrad, optimistic methods.

Parity with optax 0.2.8 on random nested pytrees (test_parity's harness),
closed-form first steps, and construction errors.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import strategies as st

import gradtx as gx
from test_parity import EPS, LR, STEPS, case, check_parity, unit

EXAMPLES = 3


def _optimistic_adam_optax(**kw):
    with warnings.catch_warnings():  # optax deprecates v1 in favour of optimistic_adam_v2
        warnings.simplefilter("ignore", DeprecationWarning)
        return optax.optimistic_adam(**kw)


CASES = [
    case("scale_by_belief", gx.scale_by_belief, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         eps_root=st.floats(0.0, 1e-6), nesterov=st.booleans()),
    case("adabelief", gx.adabelief, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         nesterov=st.booleans()),
    case("scale_by_yogi", gx.scale_by_yogi, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         eps_root=st.floats(0.0, 1e-6), initial_accumulator_value=st.floats(0.0, 1.0)),
    case("yogi", gx.yogi, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS),
    case("scale_by_radam", gx.scale_by_radam, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         eps_root=st.floats(0.0, 1e-6), threshold=st.floats(4.0, 10.0), nesterov=st.booleans()),
    case("radam", gx.radam, learning_rate=LR, b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         threshold=st.floats(4.0, 10.0), nesterov=st.booleans()),
    case("scale_by_adan", gx.scale_by_adan, b1=unit(), b2=unit(), b3=unit(0.5, 0.9999), eps=EPS,
         eps_root=st.floats(0.0, 1e-6)),
    case("adan", gx.adan, needs_params=True, learning_rate=LR, b1=unit(), b2=unit(), b3=unit(0.5, 0.9999),
         eps=EPS, weight_decay=st.floats(0.0, 0.1)),
    case("scale_by_novograd", gx.scale_by_novograd, needs_params=True, b1=unit(), b2=unit(), eps=EPS,
         eps_root=st.floats(0.0, 1e-6), weight_decay=st.floats(0.0, 0.1)),
    case("novograd", gx.novograd, needs_params=True, learning_rate=LR, b1=unit(), b2=unit(), eps=EPS,
         weight_decay=st.floats(0.0, 0.1)),
    case("scale_by_optimistic_gradient", gx.scale_by_optimistic_gradient, alpha=st.floats(0.0, 2.0),
         beta=st.floats(0.0, 2.0)),
    case("optimistic_gradient_descent", gx.optimistic_gradient_descent, learning_rate=LR,
         alpha=st.floats(0.0, 2.0), beta=st.floats(0.0, 2.0)),
    case("optimistic_adam", gx.optimistic_adam, _optimistic_adam_optax, learning_rate=LR,
         optimism=st.one_of(st.none(), st.floats(0.0, 0.1)), b1=unit(), b2=unit(0.5, 0.9999), eps=EPS,
         nesterov=st.booleans()),
    case("optimistic_adam_v2", gx.optimistic_adam_v2, learning_rate=LR, alpha=st.floats(0.0, 2.0),
         beta=st.floats(0.0, 2.0), b1=unit(), b2=unit(0.5, 0.9999), eps=EPS, nesterov=st.booleans()),
]

@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_parity_with_optax(c, dtype, rtol):
    check_parity(c, dtype, rtol, examples=EXAMPLES, steps=(0, 1, STEPS // 2, STEPS - 1))


def _first_update(tx, g, params=None):
    params = jnp.zeros_like(g) if params is None else params
    return tx.update(g, tx.init(params), params)[0]


G = jnp.array([0.5, -2.0, 3.0])


def test_belief_first_step_is_sign_over_b1():
    u = _first_update(gx.scale_by_belief(b1=0.8, eps=0.0), G)
    np.testing.assert_allclose(u, jnp.sign(G) / 0.8, rtol=1e-12)


def test_yogi_from_zero_state_matches_adam():
    # From v_0 = 0 the first Yogi step adds (1 - b2) g^2, exactly Adam's.
    g = jnp.array([[0.3, -1.0], [2.0, 0.1]])
    yogi = gx.scale_by_yogi(eps=1e-8, initial_accumulator_value=0.0)
    adam = gx.scale_by_adam(eps=1e-8)
    np.testing.assert_allclose(_first_update(yogi, g), _first_update(adam, g), rtol=1e-12)


def test_yogi_second_moment_changes_by_a_fixed_amount():
    tx = gx.scale_by_yogi(b2=0.9, initial_accumulator_value=5.0)
    _, s = tx.update(jnp.array([1.0, 3.0]), tx.init(jnp.zeros(2)))
    # v0 = 5 > 1 = g^2: v drops by 0.1; v0 = 5 < 9: v grows by 0.9.
    np.testing.assert_allclose(s.nu, [5.0 - 0.1, 5.0 + 0.9], rtol=1e-12)


def test_radam_rectifier_switch_and_value():
    b2 = 0.999
    tx = gx.scale_by_radam(b1=0.0, b2=b2, eps=1e-30)
    g = jnp.array([2.0, -1.0])
    state = tx.init(jnp.zeros(2))
    rho_inf = 2 / (1 - b2) - 1
    rectified = []
    for t in range(1, 9):
        u, state = tx.update(g, state)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho < 5:
            np.testing.assert_allclose(u, g, rtol=1e-12)  # momentum SGD (b1 = 0: g)
        else:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            np.testing.assert_allclose(u, r * jnp.sign(g), rtol=1e-9)
            rectified.append(t)
    assert rectified == [6, 7, 8]  # rho_5 = 4.996 < 5 <= rho_6 = 5.994


def test_radam_gradient_through_optimizer_is_finite():
    # optax's unused branch has sqrt of a negative number: NaN in the gradient.
    def loss(lr):
        tx = gx.radam(lr)
        p, s = jnp.ones(2), tx.init(jnp.ones(2))
        for _ in range(4):
            u, s = tx.update(2 * p, s, p)
            p = p + u
        return jnp.sum(p**2)

    assert np.isfinite(jax.grad(loss)(0.01))


def test_adan_first_steps():
    tx = gx.scale_by_adan(eps=1e-30)
    u1, s = tx.update(G, tx.init(jnp.zeros(3)))
    np.testing.assert_allclose(u1, jnp.sign(G), rtol=1e-12)
    np.testing.assert_allclose(s.g, G)
    np.testing.assert_allclose(s.v, jnp.zeros(3))  # no difference on the first step
    g2 = 2 * G
    u2, s2 = tx.update(g2, s)
    np.testing.assert_allclose(s2.v, (1 - 0.92) * (g2 - G), rtol=1e-12)


def test_novograd_is_layerwise():
    params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([[0.5]])}
    g = {"a": jnp.array([3.0, -4.0]), "b": jnp.array([[-2.0]])}
    tx = gx.scale_by_novograd(b1=0.5, b2=0.25, eps=0.0, eps_root=1e-300, weight_decay=0.1)
    u, s = tx.update(g, tx.init(params), params)
    # First step: v = ||g||^2 per leaf (a scalar), u = g / ||g|| + wd * p.
    np.testing.assert_allclose(s.nu["a"], 25.0, rtol=1e-12)
    assert s.nu["b"].shape == ()
    np.testing.assert_allclose(u["a"], g["a"] / 5.0 + 0.1 * params["a"], rtol=1e-12)
    np.testing.assert_allclose(u["b"], jnp.array([[-1.0 + 0.05]]), rtol=1e-12)
    u2, s2 = tx.update(g, s, params)
    np.testing.assert_allclose(s2.nu["a"], 25.0, rtol=1e-12)  # EMA of a constant
    np.testing.assert_allclose(u2["a"], 0.5 * u["a"] + u["a"], rtol=1e-12)  # trace: b1 * m + ...


def test_novograd_keeps_mu_dtype_and_real_nu_for_complex():
    params = {"w": jnp.zeros(3, jnp.complex64)}
    tx = gx.scale_by_novograd(mu_dtype=jnp.complex64)
    s = tx.init(params)
    assert s.nu["w"].dtype == jnp.float32 and s.mu["w"].dtype == jnp.complex64
    _, s2 = jax.jit(tx.update)({"w": jnp.array([1j, 2.0, -1.0], jnp.complex64)}, s, params)
    assert s2.nu["w"].dtype == jnp.float32
    np.testing.assert_allclose(s2.nu["w"], 6.0, rtol=1e-6)


def test_novograd_needs_params():
    tx = gx.novograd(0.1)
    with pytest.raises(ValueError, match="needs the current parameters"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_optimistic_gradient_steps():
    tx = gx.scale_by_optimistic_gradient(alpha=0.5, beta=2.0)
    s = tx.init(jnp.zeros(2))
    u1, s = tx.update(jnp.array([1.0, 2.0]), s)
    np.testing.assert_allclose(u1, 0.5 * jnp.array([1.0, 2.0]), rtol=1e-12)  # alpha * g_1
    u2, s = tx.update(jnp.array([3.0, -1.0]), s)
    np.testing.assert_allclose(u2, 2.5 * jnp.array([3.0, -1.0]) - 2.0 * jnp.array([1.0, 2.0]), rtol=1e-12)
    assert s.count is None and not bool(s.is_initial_step)


def test_optimistic_gradient_scheduled_keeps_a_count():
    tx = gx.scale_by_optimistic_gradient(alpha=gx.linear_schedule(1.0, 0.0, 4))
    s = tx.init(jnp.zeros(2))
    assert s.count is not None and s.count.dtype == jnp.int32
    for _ in range(2):
        u, s = tx.update(jnp.ones(2), s)
    np.testing.assert_allclose(u, 0.75 * jnp.ones(2), rtol=1e-12)  # alpha(1) = 0.75; g constant


def test_optimistic_gradient_descent_solves_a_bilinear_game():
    # min_x max_y x*y: descent on x, ascent on y. Plain GDA spirals out; OGD converges.
    def run(tx):
        z, s = jnp.array([1.0, 1.0]), tx.init(jnp.zeros(2))
        for _ in range(300):
            g = jnp.array([z[1], -z[0]])
            u, s = tx.update(g, s)
            z = z + u
        return float(jnp.linalg.norm(z))

    assert run(gx.optimistic_gradient_descent(0.1)) < 0.5  # from |z_0| = 1.41
    assert run(gx.sgd(0.1)) > 2.0


def test_optimistic_adam_v1_is_v2_with_beta_scaled():
    lr, o = 0.01, 0.05
    g = {"a": jnp.array([0.3, -1.0]), "b": jnp.array(2.0)}
    v1, v2 = gx.optimistic_adam(lr, o), gx.optimistic_adam_v2(lr, alpha=1.0, beta=o / lr)
    s1, s2 = v1.init(g), v2.init(g)
    for k in range(3):
        gk = jax.tree.map(lambda x: x * (k + 1.5), g)
        u1, s1 = v1.update(gk, s1)
        u2, s2 = v2.update(gk, s2)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), u1, u2)


HUGE = jnp.array([1e25, -1e25, 3e30, -2e20], jnp.float32)  # |g|^2 > 3.4e38: overflows float32


# radam: adaptive (guarded) from step 6, momentum SGD before; optimistic_adam: Adam's direction,
# guarded all along (a control: it passed before the Adam-like primitives shared the guard too).
@pytest.mark.parametrize("name", ["adabelief", "yogi", "radam", "adan", "optimistic_adam"])
def test_overflowing_square_gives_finite_steps_downhill(name):
    """Where |g|^2 overflows float32 the Adam-like divisions share scale_by_adam's guard.

    They use :func:`gradtx.transforms.adam.adam_direction`: the stored second moment
    saturates instead of becoming inf, and where it did the denominator is the
    numerator's magnitude, so the step is along -sign(g) and at most lr. Before, the
    division was restated without the guard: the update was m / inf = 0 (adabelief, yogi,
    adan, and radam once rectified), the state held inf, and yogi's second overflow made
    it NaN (inf - inf)."""
    opt = getattr(gx, name)(0.1)
    params = jnp.zeros_like(HUGE)
    state = opt.init(params)
    step = jax.jit(opt.update)
    for t in range(1, 9):
        u, state = step(HUGE, state, params)
        u = np.asarray(u)
        assert u.dtype == np.float32 and np.isfinite(u).all(), (name, t, u)
        np.testing.assert_array_equal(np.sign(u), -np.sign(HUGE), err_msg=f"{name}, step {t}")
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(state)), (name, t, state)
        if name != "radam" or t >= 6:  # radam's first 5 steps are momentum SGD: -lr * g itself
            assert np.abs(u).max() <= 0.1 * (1 + 1e-6), (name, t, u)


@pytest.mark.parametrize(
    "make, arg, message",
    [
        (lambda: gx.adabelief(0.1, b1=1.0), "b1", "in [0, 1)"),
        (lambda: gx.scale_by_belief(eps=0.0, eps_root=0.0), "eps", "cannot both be 0"),
        (lambda: gx.yogi(0.1, b2=-0.5), "b2", "in [0, 1)"),
        (lambda: gx.scale_by_yogi(initial_accumulator_value=-1.0), "initial_accumulator_value", ">= 0"),
        (lambda: gx.radam(-0.1), "learning_rate", ">= 0"),
        (lambda: gx.scale_by_radam(threshold=3.0), "threshold", ">= 4"),
        (lambda: gx.adan(0.1, b3=1.5), "b3", "in [0, 1)"),
        (lambda: gx.adan(0.1, weight_decay=-1.0), "weight_decay", ">= 0"),
        (lambda: gx.novograd(0.1, b2=1.0), "b2", "in [0, 1)"),
        (lambda: gx.scale_by_novograd(eps=0.0), "eps", "cannot both be 0"),
        (lambda: gx.optimistic_gradient_descent(0.1, alpha=-1.0), "alpha", ">= 0"),
        (lambda: gx.optimistic_adam(0.1, optimism=-0.5), "optimism", ">= 0"),
        (lambda: gx.optimistic_adam(-0.1), "learning_rate", ">= 0"),
        (lambda: gx.optimistic_adam_v2(0.1, beta=-1.0), "beta", ">= 0"),
    ],
)
def test_bad_input_names_the_argument(make, arg, message):
    with pytest.raises(ValueError) as e:
        make()
    assert f"`{arg}`" in str(e.value) and message in str(e.value), str(e.value)


# Registry-wide checks of other files, run here on this family's entries only.
MINE = ["adabelief", "yogi", "radam", "adan", "novograd", "optimistic_gradient_descent", "optimistic_adam",
        "optimistic_adam_v2"]


def test_family_is_registered_with_optax_names():
    for name in MINE:
        info = gx.OPTIMIZERS[name]
        assert info.factory is getattr(gx, name) and info.optax_name == name
        assert callable(getattr(optax, info.optax_name))


@pytest.mark.parametrize("name", MINE)
def test_weak_leaves_and_no_transfer_per_step(name):
    from test_value_numerics import test_registry_optimizers_hold_weak_device_arrays_and_a_step_transfers_nothing as check

    check(name)


def test_checkpoint_round_trip(tmp_path):
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.float32), "b": (jnp.asarray([0.3]),)}
    step = jax.jit(lambda o, p, s: o.update(jax.tree.map(lambda x: 2 * x - 1, p), s, p))
    for name in MINE:
        opt = gx.OPTIMIZERS[name].make()
        state = opt.init(params)
        for _ in range(2):
            u, state = step(opt, params, state)
            params = gx.apply_updates(params, u)
        gx.save(tmp_path / f"{name}.npz", (opt, params, state))
        fresh = gx.OPTIMIZERS[name].make(learning_rate=0.5)
        got = gx.load(tmp_path / f"{name}.npz", like=(fresh, params, fresh.init(params)))
        want_leaves, got_leaves = jax.tree.leaves((opt, params, state)), jax.tree.leaves(got)
        assert jax.tree.structure(got) == jax.tree.structure((opt, params, state))
        for a, b in zip(want_leaves, got_leaves):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_optimistic_adam_accepts_a_schedule():
    # optax's v1 raises for a schedule; here the learning rate (and so the optimism) may be one.
    opt = gx.optimistic_adam(gx.linear_schedule(0.1, 0.0, 10))
    p = jnp.ones(2)
    s = opt.init(p)
    for _ in range(3):
        u, s = opt.update(p, s)
    assert int(s[1].count) == 3 and bool(jnp.all(jnp.isfinite(u)))
