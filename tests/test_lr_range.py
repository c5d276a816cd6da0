"""Learning-rate range test: closed-form curves on quadratics, divergence at 2/lambda_max, suggestions."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradtx.optimizers.classic import sgd
from gradtx.sweeps import lr_range
from gradtx.sweeps.lr_range import lr_range_test, steepest_lr, valley_lr

H = np.array([1.0, 10.0])  # f(w) = 1/2 sum h_i w_i^2, lambda_max = 10: SGD diverges for lr > 0.2
LR_MAX_STABLE = 2 / H.max()


def quad(w):
    return 0.5 * jnp.sum(jnp.asarray(H) * w**2)


def batch_quad(w, h):
    return 0.5 * h * jnp.sum(w**2)


def _closed_form_losses(lrs, h_of_step, w0=1.0):
    """Raw losses of SGD on 1/2 h_t |w|^2 (per coordinate): w <- (1 - lr_t h_t) w."""
    w, out = np.full(np.shape(h_of_step(0)), w0), []
    for t, lr in enumerate(lrs):
        h = h_of_step(t)
        out.append(0.5 * np.sum(h * w**2))
        w = (1 - lr * h) * w
    return np.array(out)


def _ema(x, beta):
    a, out = 0.0, []
    for t, v in enumerate(x, start=1):
        a = beta * a + (1 - beta) * v
        out.append(a / (1 - beta**t))
    return np.array(out)


@pytest.fixture(scope="module")
def result():
    return lr_range_test(quad, jnp.ones(2), sgd, steps=100)


def test_lrs_are_exactly_geometric(result):
    np.testing.assert_allclose(result.lrs, np.geomspace(1e-7, 10.0, 100), rtol=1e-12)
    np.testing.assert_allclose(result.lrs[1:] / result.lrs[:-1], 1e8 ** (1 / 99), rtol=1e-12)


def test_curve_matches_closed_form_and_stops_after_divergence(result):
    k = result.stopped_at
    assert k > 0 and result.lrs[k] > LR_MAX_STABLE  # blows up above 2 / lambda_max ...
    assert result.lrs[k] < 100 * LR_MAX_STABLE  # ... not far above
    expected = _closed_form_losses(result.lrs, lambda t: H)
    np.testing.assert_allclose(result.losses[: k + 1], expected[: k + 1], rtol=1e-10)
    np.testing.assert_allclose(result.smoothed[: k + 1], _ema(expected, 0.98)[: k + 1], rtol=1e-10)
    assert np.all(np.isnan(result.losses[k + 1 :])) and np.all(np.isnan(result.smoothed[k + 1 :]))
    # The raw loss never rises while lr_t <= 2 / lambda_max; it first rises at a larger lr.
    rises = np.diff(result.losses[: k + 1]) > 0
    first_rise = int(np.argmax(rises))
    assert rises.any() and result.lrs[first_rise] > LR_MAX_STABLE
    sm = result.smoothed[: k + 1]
    assert sm[-1] > 4 * np.min(sm[:-1]) and np.all(sm[:-1] <= 4 * np.minimum.accumulate(sm[:-1]))


def test_suggestions_lie_in_the_stable_range(result):
    for lr in (result.steepest, result.valley):
        assert 1e-7 < lr < LR_MAX_STABLE


def test_deterministic_no_recompile_and_optax_factory_agrees(result):
    compiled = lr_range._run._cache_size()
    again = lr_range_test(quad, jnp.ones(2), sgd, steps=100)
    np.testing.assert_array_equal(again.smoothed, result.smoothed)
    assert (again.steepest, again.valley, again.stopped_at) == (result.steepest, result.valley, result.stopped_at)
    other = lr_range_test(quad, jnp.ones(2), sgd, min_lr=1e-4, max_lr=1.0, steps=100, smooth=0.9)
    np.testing.assert_allclose(other.lrs, np.geomspace(1e-4, 1.0, 100), rtol=1e-12)
    assert lr_range._run._cache_size() == compiled  # a new range, smoothing: same program
    ref = lr_range_test(quad, jnp.ones(2), optax.sgd, steps=100)
    np.testing.assert_allclose(ref.losses, result.losses, rtol=1e-12)


@pytest.mark.parametrize("kind", ["array", "fn"])
def test_data_batches_cycle(kind):
    hs = np.array([1.0, 4.0, 2.0])  # step t uses curvature hs[t % 3]
    data = jnp.asarray(hs) if kind == "array" else (lambda key, t: jnp.asarray(hs)[t % 3])
    r = lr_range_test(batch_quad, jnp.ones(1), sgd, min_lr=1e-3, max_lr=1.0, steps=30, data=data, smooth=0.0)
    expected = _closed_form_losses(r.lrs, lambda t: np.array([hs[t % 3]]))
    n = r.stopped_at + 1 if r.stopped_at >= 0 else 30
    np.testing.assert_allclose(r.losses[:n], expected[:n], rtol=1e-10)
    np.testing.assert_allclose(r.smoothed[:n], r.losses[:n], rtol=1e-12)  # smooth = 0: no smoothing


def test_suggestion_rules_by_hand():
    lrs = np.exp(np.arange(6.0))
    # slopes per unit log-lr: -0.5, -1.5, -0.2, -0.1, 2.3 -> steepest at lrs[1]
    assert steepest_lr(lrs, [5.0, 4.5, 3.0, 2.8, 2.7, 5.0]) == lrs[1]
    # fastai's valley: 10 decreasing points then a rise; end = 9, start = 9 - 10 = -1,
    # s = 10/3, index -1 + 3 + 1 = 3.
    lrs = 10.0 ** np.arange(14)
    curve = np.r_[np.linspace(10, 1, 10), [2.0, 3.0, 4.0, 5.0]]
    assert valley_lr(lrs, curve) == lrs[3]
    assert math.isnan(steepest_lr(lrs[:1], curve[:1])) and math.isnan(valley_lr([], []))


def test_plot_writes_a_file(result, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    fig = result.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 1000 and fig.axes[0].get_xscale() == "log"
    plt.close(fig)


def test_errors():
    with pytest.raises(ValueError, match="steps"):
        lr_range_test(quad, jnp.ones(2), sgd, steps=1)
    with pytest.raises(ValueError, match="max_lr"):
        lr_range_test(quad, jnp.ones(2), sgd, min_lr=1.0, max_lr=0.5)
    with pytest.raises(ValueError, match="min_lr"):
        lr_range_test(quad, jnp.ones(2), sgd, min_lr=0.0)
    with pytest.raises(ValueError, match="smooth"):
        lr_range_test(quad, jnp.ones(2), sgd, smooth=1.0)
    with pytest.raises(ValueError, match="diverge_factor"):
        lr_range_test(quad, jnp.ones(2), sgd, diverge_factor=1.0)
    with pytest.raises(ValueError, match="data"):
        lr_range_test(batch_quad, jnp.ones(2), sgd, data=jnp.asarray(1.0))
    with pytest.raises(TypeError, match="optimizer_factory"):
        lr_range_test(quad, jnp.ones(2), "sgd")
    with pytest.raises(ValueError, match="scalar"):
        lr_range_test(lambda w: w, jnp.ones(2), sgd, steps=5)
