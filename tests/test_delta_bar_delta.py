"""Delta-bar-delta (Jacobs, 1988): hand-computed trajectory, seed 003 speed-up, pytree behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradtx.core.base import apply_updates
from gradtx.optimizers.classic import sgd
from gradtx.optimizers.delta_bar_delta import delta_bar_delta
from gradtx.problems.functions import ill_conditioned_quadratic
from gradtx.problems.runs import steps_to_tolerance
from gradtx.schedules.polynomial import linear_schedule
from gradtx.transforms.delta_bar_delta import scale_by_delta_bar_delta

# f(w) = 0.5 * (A1 w1^2 + A2 w2^2): the steep coordinate overshoots and flips sign.
A = np.array([1.0, 30.0])
EPS0, KAPPA, PHI, THETA = 0.05, 0.01, 0.5, 0.5


def _grad(w):
    return A * w


def _reference(w0, steps, eps0=EPS0, kappa=KAPPA, phi=PHI, theta=THETA):
    """Jacobs' equations in NumPy, written from the paper, not from the implementation."""
    w, eps, dbar = np.array(w0, float), np.full(2, eps0), np.zeros(2)
    ws, rates = [], []
    for _ in range(steps):
        g = _grad(w)
        prod = g * dbar
        eps = np.where(prod > 0, eps + kappa, np.where(prod < 0, eps * (1 - phi), eps))
        dbar = (1 - theta) * g + theta * dbar
        w = w - eps * g
        ws.append(w.copy())
        rates.append(eps.copy())
    return np.array(ws), np.array(rates)


@jax.jit
def _trajectory(opt, w0):
    def step(carry, _):
        w, s = carry
        u, s = opt.update(_grad(w), s, w)
        w = apply_updates(w, u)
        return (w, s), (w, s[0].rates)

    _, (ws, rates) = jax.lax.scan(step, (w0, opt.init(w0)), None, length=5)
    return ws, rates


def test_five_steps_match_hand_computation():
    w0 = jnp.array([1.0, 1.0], jnp.float64)
    ws, rates = _trajectory(delta_bar_delta(EPS0, KAPPA, PHI, THETA), w0)
    # Worked by hand: step 1 has no history (rates stay 0.05); step 2 agrees in
    # w1 (0.05 + 0.01) and flips in w2 (0.05 * 0.5); at step 3 w2's average is
    # exactly 0 (0.5*(-15) + 0.5*15), so its rate is unchanged.
    np.testing.assert_allclose(ws[:3], [[0.95, -0.5], [0.893, -0.125], [0.83049, -0.03125]], rtol=1e-12)
    np.testing.assert_allclose(rates[:3], [[0.05, 0.05], [0.06, 0.025], [0.07, 0.025]], rtol=1e-12)
    ref_w, ref_rates = _reference(w0, 5)
    np.testing.assert_allclose(ws, ref_w, rtol=1e-12)
    np.testing.assert_allclose(rates, ref_rates, rtol=1e-12)


def test_transform_points_along_the_gradient():
    tx = scale_by_delta_bar_delta(0.1, kappa=0.05, phi=0.5, theta=0.5)
    state = tx.init(jnp.zeros(2, jnp.float32))
    u, state = tx.update(jnp.array([1.0, -2.0], jnp.float32), state)
    np.testing.assert_allclose(u, [0.1, -0.2], rtol=1e-6)
    assert u.dtype == jnp.float32 and state.rates.dtype == jnp.float32


def test_beats_sgd_on_seed_003_quadratic():
    problem = ill_conditioned_quadratic()
    lr = 0.005
    plain = steps_to_tolerance(sgd(lr), problem, tol=1e-6, max_steps=5000)
    dbd = delta_bar_delta(lr, kappa=1e-3, phi=0.5, theta=0.7)
    adaptive = steps_to_tolerance(dbd, problem, tol=1e-6, max_steps=5000)
    assert plain.converged and adaptive.converged
    # GD at 0.005 contracts the slow (lambda = 1) direction by 0.995 per step: ~1,270 steps.
    assert adaptive.steps < plain.steps / 5, (adaptive.steps, plain.steps)


def test_vmap_over_kappa_equals_separate_runs():
    kappas = jnp.array([0.0, 0.01, 0.03])
    w0 = jnp.array([1.0, 1.0], jnp.float64)
    batched = jax.vmap(lambda k: delta_bar_delta(EPS0, k, PHI, THETA))(kappas)
    ws, _ = jax.vmap(_trajectory, in_axes=(0, None))(batched, w0)
    for i, k in enumerate(kappas):
        np.testing.assert_allclose(ws[i], _reference(w0, 5, kappa=float(k))[0], rtol=1e-12)


def test_new_kappa_does_not_retrace():
    traces = 0

    @jax.jit
    def step(opt, w):
        nonlocal traces
        traces += 1
        u, _ = opt.update(_grad(w), opt.init(w), w)
        return u

    w = jnp.array([1.0, 1.0])
    for kappa in (0.0, 0.01, 0.2):
        step(delta_bar_delta(0.05, kappa=kappa), w)
    assert traces == 1


def test_scheduled_kappa_keeps_a_count():
    opt = delta_bar_delta(0.05, kappa=linear_schedule(0.0, 0.02, 2))
    state = opt.init(jnp.zeros(2))
    assert int(state[0].count) == 0
    _, state = opt.update(jnp.ones(2), state)
    assert int(state[0].count) == 1


def test_complex_params_use_real_rates():
    tx = scale_by_delta_bar_delta(0.1, kappa=0.05, phi=0.5, theta=0.5)
    state = tx.init(jnp.zeros(1, jnp.complex64))
    assert state.rates.dtype == jnp.float32
    _, state = tx.update(jnp.array([1 + 1j], jnp.complex64), state)
    u, state = tx.update(jnp.array([1 - 0.5j], jnp.complex64), state)  # Re((1-.5j)(.5-.5j)) = .25 > 0
    np.testing.assert_allclose(state.rates, [0.15], rtol=1e-6)
    np.testing.assert_allclose(u, [0.15 * (1 - 0.5j)], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rate": -0.1}, "`learning_rate` must be >= 0"),
        ({"kappa": -1.0}, "`kappa` must be >= 0"),
        ({"phi": 1.0}, r"`phi` must be in \[0, 1\)"),
        ({"theta": -0.1}, r"`theta` must be in \[0, 1\)"),
    ],
)
def test_bad_hyperparameters_name_the_argument(kwargs, match):
    args = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match="gx.delta_bar_delta: " + match):
        delta_bar_delta(**args)


def test_scheduled_learning_rate_is_rejected():
    with pytest.raises(TypeError, match="gx.delta_bar_delta: `learning_rate`.*cannot be a schedule"):
        delta_bar_delta(linear_schedule(0.1, 0.01, 10))
