"""Backtracking (Armijo) line search: the condition itself, closed forms, optax parity, jit/vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.classic import sgd
from gradtx.problems.functions import rosenbrock
from gradtx.transforms.basic import scale
from gradtx.transforms.combine import chain
from gradtx.transforms.line_search import scale_by_backtracking_linesearch as linesearch

ROSEN = rosenbrock()


def sq(w):
    return jnp.sum(w**2)


@jax.jit
def _first_step(opt, w):
    """One update of ``opt`` on f(w) = |w|^2: (accepted step, new value, updates)."""
    v, g = jax.value_and_grad(sq)(w)
    u, s = opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=sq)
    return s[-1].learning_rate, s[-1].value, u


def _scan(opt, loss, w, steps):
    """``steps`` updates of ``opt`` (a chain ending in the line search); the whole trajectory."""

    def body(carry, _):
        w, s = carry
        v, g = jax.value_and_grad(loss)(w)
        u, s = opt.update(g, s, w, value=v, grad=g, value_fn=loss)
        return (apply_updates(w, u), s), (w, g, u, s[-1].learning_rate, s[-1].value)

    return jax.lax.scan(body, (w, opt.init(w)), None, length=steps)[1]


_run = jax.jit(_scan, static_argnums=(1, 3))


def test_armijo_holds_at_every_step_and_rosenbrock_converges():
    """Gradient descent with Armijo steps: every step satisfies the condition; reaches (1, 1)."""
    c = 1e-4
    opt = chain(scale(-1.0), linesearch(30, slope_rtol=c))
    ws, gs, us, lrs, values = map(np.asarray, _run(opt, ROSEN.loss, ROSEN.params(jnp.float64), 6000))
    f_all = np.asarray(jax.vmap(ROSEN.loss)(ws))
    f_next = np.asarray(jax.vmap(ROSEN.loss)(ws + us))
    slope = np.sum(gs * us, axis=1)  # <g, u> = eta <g, d>
    assert np.all(slope < 0)
    assert np.all(f_next <= f_all + c * slope), "Armijo violated"
    np.testing.assert_allclose(values, f_next, rtol=1e-12)  # the state's value is f(x + u)
    np.testing.assert_allclose(us, -lrs[:, None] * gs, rtol=1e-12)  # u = eta * (-g)
    assert np.all(np.diff(f_all) < 0)  # sufficient decrease => monotone
    w_final = ws[-1] + us[-1]
    assert ROSEN.loss(w_final) < 1e-3
    assert np.linalg.norm(w_final - ROSEN.minimizer) < 0.1


@pytest.mark.parametrize("c,eta", [(1e-4, 0.8), (0.3, 0.64), (0.5, 0.4096)])
def test_closed_form_on_squared_norm(c, eta):
    """On |w|^2 along -grad the condition is eta <= 1 - c: the first 0.8^k below it is taken."""
    w = jnp.array([1.0, 2.0, 3.0])
    lr, value, u = _first_step(chain(sgd(1.0), linesearch(15, slope_rtol=c)), w)
    np.testing.assert_allclose(lr, eta, rtol=1e-12)
    np.testing.assert_allclose(value, (1 - 2 * eta) ** 2 * 14.0, rtol=1e-12)
    np.testing.assert_allclose(u, -2 * eta * np.asarray(w), rtol=1e-12)


def test_vmap_over_slope_rtol_and_decrease_factor():
    w = jnp.array([1.0, 2.0, 3.0])

    def step(c, rho):
        return _first_step(chain(sgd(1.0), linesearch(15, slope_rtol=c, decrease_factor=rho)), w)[0]

    lrs = jax.jit(jax.vmap(step))(jnp.array([1e-4, 0.3, 0.5, 0.5, 0.5]), jnp.array([0.8, 0.8, 0.8, 0.5, 0.3]))
    # eta <= 1 - c: first rho^k below it.
    np.testing.assert_allclose(lrs, [0.8, 0.64, 0.4096, 0.5, 0.3], rtol=1e-12)


def test_matches_optax():
    steps = 25
    w0 = ROSEN.params(jnp.float64)
    kw = dict(slope_rtol=0.1, decrease_factor=0.6, increase_factor=2.0, max_learning_rate=0.5)
    ours = _run(chain(sgd(1.0), linesearch(20, **kw)), ROSEN.loss, w0, steps)

    ref_opt = optax.chain(optax.sgd(learning_rate=1.0), optax.scale_by_backtracking_linesearch(20, **kw))

    @jax.jit
    def ref():
        def body(carry, _):
            w, s = carry
            v, g = jax.value_and_grad(ROSEN.loss)(w)
            u, s = ref_opt.update(g, s, w, value=v, grad=g, value_fn=ROSEN.loss)
            return (optax.apply_updates(w, u), s), (w, s[-1].learning_rate, s[-1].value)

        return jax.lax.scan(body, (w0, ref_opt.init(w0)), None, length=steps)[1]

    w_ref, lr_ref, v_ref = ref()
    np.testing.assert_allclose(ours[0], w_ref, rtol=1e-10)
    np.testing.assert_allclose(ours[3], lr_ref, rtol=1e-10)
    np.testing.assert_allclose(ours[4], v_ref, rtol=1e-10)
    assert len(set(np.round(np.asarray(lr_ref), 12))) > 2  # the search really varied the step


def test_no_recompile_for_new_hyperparameters():
    traces = []

    @jax.jit
    def step(opt, w):
        traces.append(1)
        return _first_step.__wrapped__(opt, w)

    w = jnp.array([1.0, 2.0, 3.0])
    for c in (1e-4, 0.3, 0.5):
        step(chain(sgd(1.0), linesearch(15, slope_rtol=c, max_learning_rate=2.0)), w)
    assert len(traces) == 1


def test_grad_optional_data_args_and_store_grad():
    x = jnp.array([3.0, 2.0, 1.0])

    def loss(w, x):
        return 0.5 * jnp.dot(x, w) ** 2

    w = jnp.array([1.0, 2.0, 3.0])
    opt = chain(sgd(1.0), linesearch(15, store_grad=True))
    v, g = jax.value_and_grad(loss)(w, x)
    u1, s1 = opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=loss, x=x, unused=1.0)
    u2, s2 = opt.update(g, opt.init(w), w, value=v, value_fn=loss, x=x)  # slope by jvp
    np.testing.assert_allclose(u1, u2, rtol=1e-12)
    np.testing.assert_allclose(s1[-1].value, loss(w + u1, x), rtol=1e-12)
    np.testing.assert_allclose(s1[-1].grad, jax.grad(loss)(w + u1, x), rtol=1e-12)
    assert s1[-1].value < v


def test_non_finite_values_give_a_zero_step():
    def loss(w):  # finite only at the starting point
        return jnp.where(jnp.all(w == 1.0), jnp.sum(w**2), jnp.nan)

    w = jnp.ones(2)
    opt = chain(sgd(1.0), linesearch(5))
    v, g = jax.value_and_grad(loss)(w)
    u, s = opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=loss)
    np.testing.assert_array_equal(u, 0.0)
    assert float(s[-1].learning_rate) == 0.0 and float(s[-1].value) == 2.0
    assert np.isinf(s[-1].info.decrease_error) and int(s[-1].info.num_linesearch_steps) == 6


def test_scheduled_max_learning_rate_counts_steps():
    ls = linesearch(10, max_learning_rate=lambda n: 0.1 * (n + 1), increase_factor=100.0)
    w = jnp.array([1.0, 2.0, 3.0])
    state = ls.init(w)
    for n in range(3):  # the guess min(100 eta, 0.1 (n + 1)) satisfies eta <= 1 - c at once
        v, g = jax.value_and_grad(sq)(w)
        _, state = ls.update(-g, state, w, value=v, grad=g, value_fn=sq)
        np.testing.assert_allclose(state.learning_rate, 0.1 * (n + 1), rtol=1e-12)
    assert int(state.count) == 3


def test_errors():
    w = jnp.array([1.0, 2.0])
    ls = linesearch(5)
    state = ls.init(w)
    with pytest.raises(ValueError, match="`value`, `value_fn`"):
        ls.update(w, state, w)
    with pytest.raises(ValueError, match="`value_fn`"):
        ls.update(w, state, w, value=1.0)
    with pytest.raises(ValueError, match="params"):
        ls.update(w, state, value=1.0, value_fn=sq)
    with pytest.raises(ValueError, match="scalar"):
        ls.update(w, state, w, value=1.0, value_fn=lambda p: p)
    with pytest.raises(ValueError, match="max_backtracking_steps"):
        linesearch(2.5)
    with pytest.raises(ValueError, match="decrease_factor"):
        linesearch(5, decrease_factor=1.0)
    with pytest.raises(ValueError, match="slope_rtol"):
        linesearch(5, slope_rtol=-0.1)


def test_complex_params_slope_matches_jvp_and_optax():
    def f(z):
        return jnp.sum(jnp.abs(z) ** 2) + jnp.sum(jnp.real(z) * jnp.imag(z))

    z = jnp.array([1 + 1j, 2 - 1j])
    v, g = jax.value_and_grad(f)(z)
    d = -jnp.conj(g)  # the descent direction for JAX's complex-gradient convention
    ls = linesearch(15, slope_rtol=0.4)
    _, s_grad = ls.update(d, ls.init(z), z, value=v, grad=g, value_fn=f)
    _, s_jvp = ls.update(d, ls.init(z), z, value=v, value_fn=f)
    ref = optax.scale_by_backtracking_linesearch(15, slope_rtol=0.4)
    _, s_ref = ref.update(d, ref.init(z), z, value=v, grad=g, value_fn=f)
    np.testing.assert_allclose(s_grad.learning_rate, s_ref.learning_rate, rtol=1e-12)
    np.testing.assert_allclose(s_jvp.learning_rate, s_ref.learning_rate, rtol=1e-12)
    assert float(s_ref.learning_rate) < 0.8  # c = 0.4 forced real backtracking
