"""Curvature diagnostics: HVPs against dense Hessians, extreme eigenvalues of known
spectra, and seed 003's step-size advice checked by running the optimizers."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from gradtx.curvature.advice import LRAdvice, lr_advice
from gradtx.curvature.eigen import hessian_lanczos, hessian_power_iteration
from gradtx.curvature.hvp import flat_hvp, hvp
from gradtx.optimizers.classic import sgd
from gradtx.problems.functions import ill_conditioned_quadratic
from gradtx.problems.runs import steps_to_tolerance

N = 50
KAPPAS = [1.0, 10.0, 1e2, 1e3, 1e4]


def _quad(w, a):
    return 0.5 * w @ (a @ w)


# Compiled once and reused for every spectrum: the matrix is an argument.
_lanczos_n = jax.jit(functools.partial(hessian_lanczos, _quad, num_iters=N))
_power = jax.jit(functools.partial(hessian_power_iteration, _quad, num_iters=3000, tol=1e-12))


def _spectrum(kappa):
    """A random symmetric matrix with eigenvalues log-spaced on [1, kappa] (fixed seed, f64)."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    lam = np.logspace(0.0, np.log10(kappa), N)
    return jnp.asarray((q * lam[None]) @ q.T, jnp.float64), lam


def _nonquadratic(p, s):
    return s * jnp.sum(jnp.sin(p["a"]) * p["b"]["c"] ** 2) + jnp.exp(p["b"]["d"] * jnp.sum(p["a"]))


def _pytree_point():
    return {
        "a": jnp.array([0.3, -0.7, 1.1], jnp.float64),
        "b": {"c": jnp.array([0.5, 2.0, -1.0], jnp.float64), "d": jnp.asarray(0.4, jnp.float64)},
    }


def test_hvp_equals_dense_hessian_times_v_on_a_pytree():
    params = _pytree_point()
    v = jax.tree.map(lambda x: jnp.cos(3.0 * x + 1.0), params)
    flat, unravel = ravel_pytree(params)
    dense = jax.jit(jax.hessian(lambda x: _nonquadratic(unravel(x), 1.7)))(flat)
    expected = dense @ ravel_pytree(v)[0]
    got = jax.jit(hvp, static_argnums=0)(_nonquadratic, params, v, 1.7)
    assert jax.tree.structure(got) == jax.tree.structure(params)
    np.testing.assert_allclose(ravel_pytree(got)[0], expected, rtol=1e-12, atol=1e-12)

    @jax.jit
    def flat_product(params, v):
        matvec, flat, unravel = flat_hvp(_nonquadratic, params, 1.7)
        return matvec(ravel_pytree(v)[0]), flat, unravel(flat)

    product, flat2, roundtrip = flat_product(params, v)
    np.testing.assert_allclose(product, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(flat2, flat)
    assert jax.tree.structure(roundtrip) == jax.tree.structure(params)


def test_hvp_casts_v_to_the_params_dtype():
    w = jnp.array([1.0, 2.0], jnp.float32)
    out = hvp(lambda w: w[0] ** 2 + 3 * w[0] * w[1], w, jnp.array([0.0, 1.0], jnp.float64))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, [3.0, 0.0])


@pytest.mark.parametrize("kappa", KAPPAS)
def test_lanczos_with_n_iterations_is_exact_on_known_spectra(kappa):
    a, lam = _spectrum(kappa)
    hi, lo = _lanczos_n(jnp.zeros(N, jnp.float64), a)
    assert hi.dtype == jnp.float64
    np.testing.assert_allclose(float(hi), lam.max(), rtol=1e-4)
    np.testing.assert_allclose(float(lo), lam.min(), rtol=1e-4)


@pytest.mark.parametrize("kappa", KAPPAS)
def test_power_iteration_finds_lambda_max(kappa):
    a, lam = _spectrum(kappa)
    value, vec = _power(jnp.zeros(N, jnp.float64), a)
    np.testing.assert_allclose(float(value), lam.max(), rtol=1e-4)
    np.testing.assert_allclose(float(jnp.linalg.norm(vec)), 1.0, rtol=1e-12)


def test_jitted_solvers_do_not_retrace_for_a_new_batch():
    traces = []

    def loss(w, a):
        traces.append(1)
        return _quad(w, a)

    run = jax.jit(functools.partial(hessian_lanczos, loss, num_iters=10))
    run(jnp.zeros(N), _spectrum(10.0)[0])
    first = len(traces)
    run(jnp.zeros(N), _spectrum(100.0)[0])
    assert len(traces) == first


def test_seed003_advice_closed_form():
    problem = ill_conditioned_quadratic()
    adv = lr_advice(problem.loss, problem.params(jnp.float64))
    assert adv.convex and adv.method == "lanczos"
    assert adv.lambda_max == pytest.approx(100.0, rel=1e-12)
    assert adv.lambda_min == pytest.approx(1.0, rel=1e-12)
    assert adv.kappa == pytest.approx(100.0, rel=1e-10)
    assert abs(adv.eta_max - 2 / 100) < 1e-10
    assert abs(adv.eta_opt - 2 / 101) < 1e-10
    assert abs(adv.gd_rate - 99 / 101) < 1e-10
    # sqrt(kappa) = 10: eta_hb = 4 / (10 + 1)^2, beta_hb = (9/11)^2, rate 9/11.
    assert abs(adv.eta_hb - 4 / 121) < 1e-10
    assert abs(adv.beta_hb - 81 / 121) < 1e-10
    assert abs(adv.hb_rate - 9 / 11) < 1e-10


@pytest.mark.parametrize("method", ["power", "dense"])
def test_other_methods_agree_on_seed003(method):
    problem = ill_conditioned_quadratic()
    adv = lr_advice(problem.loss, problem.params(jnp.float64), method=method)
    assert adv.method == method and adv.convex
    assert abs(adv.eta_opt - 2 / 101) < 1e-8
    assert abs(adv.gd_rate - 99 / 101) < 1e-8


def test_advised_steps_converge_as_the_seed_reports():
    problem = ill_conditioned_quadratic()
    adv = lr_advice(problem.loss, problem.params(jnp.float64))
    gd = steps_to_tolerance(sgd(float(adv.eta_opt)), problem, tol=1e-6, max_steps=1000)
    assert gd.converged and gd.steps <= 425  # the seed reports 420
    heavy_ball = sgd(float(adv.eta_hb), momentum=float(adv.beta_hb))
    hb = steps_to_tolerance(heavy_ball, problem, tol=1e-6, max_steps=1000)
    assert hb.converged and hb.steps < gd.steps


def _no_nan(adv):
    for field in dataclasses.fields(adv):
        value = getattr(adv, field.name)
        if isinstance(value, float):
            assert math.isfinite(value), field.name


def test_saddle_is_flagged_without_nans():
    adv = lr_advice(lambda p: p["x"] ** 2 - p["y"] ** 2, {"x": jnp.float64(0.3), "y": jnp.float64(-1.0)})
    assert not adv.convex
    assert adv.lambda_min == pytest.approx(-2.0) and adv.lambda_max == pytest.approx(2.0)
    assert adv.eta_max == pytest.approx(1.0)
    undefined = (adv.kappa, adv.eta_opt, adv.gd_rate, adv.eta_hb, adv.beta_hb, adv.hb_rate)
    assert all(x is None for x in undefined)
    assert "saddle" in adv.note
    _no_nan(adv)
    assert "undefined" in str(adv) and "nan" not in str(adv).lower()


def test_singular_and_concave_points():
    flat = lr_advice(lambda w: w[0] ** 2, jnp.zeros(2, jnp.float64))  # H = diag(2, 0)
    assert not flat.convex and flat.kappa is None and flat.eta_max == pytest.approx(1.0)
    assert "singular" in flat.note
    _no_nan(flat)
    concave = lr_advice(lambda w: -jnp.sum(w * w), jnp.ones(3, jnp.float64))  # H = -2 I
    assert not concave.convex and concave.eta_max is None and concave.lambda_max == pytest.approx(-2.0)
    _no_nan(concave)


def test_pytree_params_with_a_mini_batch():
    # Least squares: the Hessian in (b, w) is (2/N) A^T A with A = [1, x], whatever the point.
    def loss(p, batch):
        x, y = batch
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 3)) * np.array([[1.0, 3.0, 0.2]]))
    y = jnp.asarray(rng.standard_normal(8))
    params = {"w": jnp.array([0.1, -0.2, 0.3], jnp.float64), "b": jnp.float64(0.5)}
    a = np.concatenate([np.ones((8, 1)), np.asarray(x)], axis=1)
    h = 2 / 8 * a.T @ a  # ravel order: b, then w
    eig = np.linalg.eigvalsh(h)
    v = {"w": jnp.array([1.0, 0.0, -1.0], jnp.float64), "b": jnp.float64(2.0)}
    got = ravel_pytree(hvp(loss, params, v, (x, y)))[0]
    np.testing.assert_allclose(got, h @ np.array([2.0, 1.0, 0.0, -1.0]), rtol=1e-12)
    hi, lo = hessian_lanczos(loss, params, (x, y), num_iters=4)
    np.testing.assert_allclose([hi, lo], [eig[-1], eig[0]], rtol=1e-10)
    adv = lr_advice(loss, params, (x, y))
    assert adv.convex and adv.eta_opt == pytest.approx(2 / (eig[0] + eig[-1]), rel=1e-10)
    # A different mini-batch gives that batch's Hessian.
    half = lr_advice(loss, params, (x[:4], y[:4]), method="dense")
    assert half.lambda_max == pytest.approx(np.linalg.eigvalsh(2 / 4 * a[:4].T @ a[:4])[-1], rel=1e-10)


def test_lanczos_in_float32_and_the_str():
    adv = lr_advice(lambda w: 0.5 * (w[0] ** 2 + 100 * w[1] ** 2), jnp.zeros(2, jnp.float32))
    assert isinstance(adv, LRAdvice) and adv.eta_opt == pytest.approx(2 / 101, rel=1e-5)
    text = str(adv)
    assert "kappa = 99.99" in text and "eta*    = 2/(lambda_min+lambda_max) = 0.0198" in text and "locally strongly convex" in text


def test_bad_input_errors():
    loss = lambda w: jnp.sum(w * w)
    w = jnp.zeros(2)
    with pytest.raises(ValueError, match="num_iters"):
        hessian_lanczos(loss, w, num_iters=0)
    with pytest.raises(ValueError, match="num_iters"):
        hessian_power_iteration(loss, w, num_iters=2.5)
    with pytest.raises(ValueError, match="tol"):
        hessian_power_iteration(loss, w, tol=-1.0)
    with pytest.raises(ValueError, match="method"):
        lr_advice(loss, w, method="newton")
    with pytest.raises(ValueError, match="`params` and `v`"):
        hvp(loss, {"a": w}, {"b": w})
    with pytest.raises(TypeError, match="floating"):
        hvp(loss, jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32))
    with pytest.raises(TypeError, match="loss_fn"):
        hessian_lanczos("loss", w)
    with pytest.raises(ValueError, match="no array leaves"):
        lr_advice(loss, {})
    with pytest.raises(ValueError, match="not finite"):
        lr_advice(lambda w: jnp.sqrt(w[0]) + w[1] ** 2, -jnp.ones(2))
