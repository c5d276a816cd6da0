"""Closed-form checks, independent of optax, and the seeds' published numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradtx as gx
from gradtx.cli import main as cli_main

VEC = st.lists(st.floats(-1e3, 1e3).filter(lambda x: abs(x) > 1e-6), min_size=1, max_size=6)


def _steps(opt, g, n, params=None):
    """Updates for n steps of the constant gradient g."""
    state = opt.init(g if params is None else params)
    out = []
    for _ in range(n):
        u, state = opt.update(g, state, params)
        out.append(np.asarray(u))
    return out


@given(g=VEC, lr=st.floats(1e-4, 1.0), eps=st.floats(1e-10, 1e-2))
def test_adam_first_update(g, lr, eps):
    g = jnp.asarray(g, jnp.float64)
    (u,) = _steps(gx.adam(lr, eps=eps), g, 1)
    np.testing.assert_allclose(u, -lr * np.asarray(g) / (np.abs(g) + eps), rtol=1e-12)


@given(g=VEC, lr=st.floats(1e-3, 1.0), a=st.floats(0.0, 1.0), eps=st.floats(1e-10, 1e-3))
def test_adagrad_constant_gradient(g, lr, a, eps):
    g64 = np.asarray(g)
    us = _steps(gx.adagrad(lr, initial_accumulator_value=a, eps=eps), jnp.asarray(g64), 5)
    for t, u in enumerate(us, start=1):
        np.testing.assert_allclose(u, -lr * g64 / np.sqrt(a + t * g64**2 + eps), rtol=1e-12)


@given(decay=st.floats(0.0, 0.999), t=st.integers(1, 30))
def test_bias_correction_after_t_steps(decay, t):
    g = jnp.array([1.0, -2.0, 3.0])
    us = _steps(gx.bias_correction(decay), g, t)
    np.testing.assert_allclose(us[-1], np.asarray(g) / (1 - decay**t), rtol=1e-12)


def test_ema_equals_ema_then_bias_correction():
    rng = np.random.default_rng(0)
    gs = [jnp.asarray(rng.standard_normal(4)) for _ in range(10)]
    a, b = gx.ema(0.9), gx.chain(gx.ema(0.9, debias=False), gx.bias_correction(0.9))
    sa, sb = a.init(gs[0]), b.init(gs[0])
    for g in gs:
        ua, sa = a.update(g, sa)
        ub, sb = b.update(g, sb)
        np.testing.assert_allclose(ua, ub, rtol=1e-14)


def test_inverse_time_decay_values():
    s = gx.inverse_time_decay(0.5, decay_rate=0.1)
    for n in (0, 1, 7, 100):
        assert float(s(n)) == pytest.approx(0.5 / (1 + 0.1 * n), rel=1e-14)


def test_gd_contracts_at_the_optimal_rate():
    """On the seed's quadratic, GD at eta* = 2/(l_min+l_max) contracts by (k-1)/(k+1)."""
    problem = gx.ill_conditioned_quadratic()
    lam_min, lam_max = min(problem.hessian_eigenvalues), max(problem.hessian_eigenvalues)
    kappa = lam_max / lam_min
    opt = gx.sgd(2 / (lam_min + lam_max))
    w = problem.params(jnp.float64)
    state = opt.init(w)
    err = [np.linalg.norm(np.asarray(w) - problem.minimizer)]
    for _ in range(50):
        u, state = opt.update(jax.grad(problem.loss)(w), state)
        w = gx.apply_updates(w, u)
        err.append(np.linalg.norm(np.asarray(w) - problem.minimizer))
    ratios = np.asarray(err[1:]) / np.asarray(err[:-1])
    np.testing.assert_allclose(ratios, (kappa - 1) / (kappa + 1), rtol=1e-10)


def test_seed_update_rules():
    """The seeds' AdaGrad, RMSProp, Adam (delta inside the root) and momentum, by hand."""
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(3) for _ in range(20)]
    eta, beta, b1, b2, delta = 0.05, 0.9, 0.9, 0.999, 1e-6
    s_ada, s_rms, m, s, mom = np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3)
    opts = {
        "adagrad": gx.adagrad(eta, initial_accumulator_value=0.0, eps=delta),
        "rmsprop": gx.rmsprop(eta, decay=beta, eps=delta),
        "adam": gx.adam(eta, b1, b2, eps=0.0, eps_root=delta),
        "momentum": gx.sgd(eta, momentum=beta),
    }
    states = {k: o.init(jnp.zeros(3)) for k, o in opts.items()}
    for t, g in enumerate(gs, start=1):
        s_ada = s_ada + g**2
        s_rms = beta * s_rms + (1 - beta) * g**2
        m, s = b1 * m + (1 - b1) * g, b2 * s + (1 - b2) * g**2
        mom = beta * mom - eta * g  # seed 003: m = beta m - eta grad; w = w + m
        expected = {
            "adagrad": -eta / np.sqrt(s_ada + delta) * g,
            "rmsprop": -eta / np.sqrt(s_rms + delta) * g,
            "adam": -eta * (m / (1 - b1**t)) / np.sqrt(s / (1 - b2**t) + delta),
            "momentum": mom,
        }
        for k, o in opts.items():
            u, states[k] = o.update(jnp.asarray(g), states[k])
            np.testing.assert_allclose(u, expected[k], rtol=1e-10, err_msg=f"{k} step {t}")


def test_seed003_table():
    """Seed 003: diverges / 420 / 137 / 117 (float32, as the seed's torch run)."""
    rows = gx.conditioning_experiment()
    assert [r.diverged for _, _, r in rows] == [True, False, False, False]
    assert [r.steps for _, _, r in rows[1:]] == [420, 137, 117]
    assert all(r.converged for _, _, r in rows[1:])


def test_seed001_gradient_descent():
    """Seed 001: from (0.5, 1), eta = 0.01 -> (0.425, 0.85), then ~(0.03, 0.06) after 200."""
    problem = gx.radial_polynomial()
    w = problem.params(jnp.float64)
    np.testing.assert_allclose(jax.grad(problem.loss)(w), [7.5, 15.0], rtol=1e-12)
    opt = gx.sgd(0.01)
    state = opt.init(w)
    trajectory = []
    for _ in range(200):
        u, state = opt.update(jax.grad(problem.loss)(w), state)
        w = gx.apply_updates(w, u)
        trajectory.append(np.asarray(w))
    np.testing.assert_allclose(trajectory[0], [0.425, 0.85], rtol=1e-12)
    np.testing.assert_allclose(trajectory[1], [0.35, 0.69], atol=0.005)  # seed rounds to 2 places
    np.testing.assert_allclose(trajectory[-1], [0.031, 0.062], atol=0.0005)


def test_saddle_gradient_descent_escapes_geometrically():
    """On x^2 - y^2, GD gives x_t = (1-2eta)^t x_0 and y_t = (1+2eta)^t y_0; Adam leaves at once."""
    problem = gx.saddle()
    w0 = problem.params(jnp.float64)
    np.testing.assert_array_equal(jax.hessian(problem.loss)(w0), np.diag(problem.hessian_eigenvalues))
    eta, steps = 0.05, 20
    opt = gx.sgd(eta)
    w, state = w0, opt.init(w0)
    for _ in range(steps):
        u, state = opt.update(jax.grad(problem.loss)(w), state)
        w = gx.apply_updates(w, u)
    np.testing.assert_allclose(w, [(1 - 2 * eta) ** steps, 1e-3 * (1 + 2 * eta) ** steps], rtol=1e-12)
    # Adam's first step is -lr*g/(|g|+eps), about lr per coordinate: y moves by lr, not 2*eta*y.
    adam, g = gx.adam(0.05), jax.grad(problem.loss)(w0)
    u, _ = adam.update(g, adam.init(w0))
    np.testing.assert_allclose(u, -0.05 * g / (jnp.abs(g) + 1e-8), rtol=1e-12)
    assert abs(u[1]) > 0.99 * 0.05


def test_cli_prints_the_table(capsys):
    assert cli_main(["conditioning"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith(("SGD ", "momentum ", "Adam "))]
    assert [(r[-2], r[-1]) for r in rows] == [
        ("-", "diverged"), ("420", "converged"), ("137", "converged"), ("117", "converged")
    ]


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["conditioning", "--tol", "-1"])
    assert e.value.code == 2
    assert "--tol" in capsys.readouterr().err
