"""gx.sweep: a vmapped sweep equals separate runs, compiles once per family, and reports metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx
from gradtx.sweeps import runner
from helpers import CtrlCBar

STEPS = 30


def _data(dtype):
    k1, k2 = jax.random.split(jax.random.key(3))
    x = jax.random.normal(k1, (4, 8, 3), dtype)  # 4 batches of 8 points
    y = jnp.sin(x.sum(-1, keepdims=True))
    return x, y


def _init(dtype, key=0):
    return gx.init_mlp(jax.random.key(key), (3, 5, 1), dtype)


def _loss(params, batch):
    x, y = batch
    return jnp.mean((gx.mlp_apply(params, x) - y) ** 2)


@functools.partial(jax.jit, static_argnames="steps")
def _separate_run(opt, params, data, steps):
    """The plain training loop a user writes for one configuration."""

    def body(carry, t):
        p, s = carry
        batch = jax.tree.map(lambda d: d[t % d.shape[0]], data)
        loss, g = jax.value_and_grad(_loss)(p, batch)
        u, s = opt.update(g, s, p)
        return (gx.apply_updates(p, u), s), loss

    (p, _), losses = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(steps))
    return p, losses


def _noisy_quadratic_run(opt, w, steps):
    """A user's loop on the noisy quadratic, which gx.sweep should reproduce."""
    prob = gx.noisy_quadratic(dim=6)
    dkey = jax.random.fold_in(jax.random.key(0), 1_000_003)  # the sweep's documented data key

    def body(carry, t):
        w, s = carry
        loss, g = jax.value_and_grad(prob.batch_loss)(w, prob.data(jax.random.fold_in(dkey, t), t))
        u, s = opt.update(g, s, w)
        return (gx.apply_updates(w, u), s), loss

    (w, _), losses = jax.lax.scan(body, (w, opt.init(w)), jnp.arange(steps))
    return w, losses


_noisy_quadratic_run = jax.jit(_noisy_quadratic_run, static_argnames="steps")


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_sweep_of_16_learning_rates_equals_16_separate_runs(dtype):
    """Bit-identical in f64 when the gradient has no reduction (batched reductions may round differently)."""
    lrs = np.geomspace(1e-3, 0.3, 16)
    prob = gx.noisy_quadratic(dim=6)
    w0 = prob.params(dtype)
    res = gx.sweep(prob.batch_loss, w0, gx.Space(gx.adam, learning_rate=gx.log_uniform(1e-3, 0.3)), steps=STEPS,
                   values={"learning_rate": lrs}, data=prob.data, progress=False, chunk=7)
    for i, lr in enumerate(lrs):
        w, losses = _noisy_quadratic_run(gx.adam(float(lr)), w0, STEPS)
        assert res.params(i).dtype == w.dtype == dtype
        if dtype == jnp.float64:
            np.testing.assert_array_equal(res.params(i), w)
            np.testing.assert_allclose(res.curves[i], losses, rtol=1e-15)
        else:
            np.testing.assert_allclose(res.params(i), w, rtol=1e-6)
            np.testing.assert_allclose(res.curves[i], losses, rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_mlp_sweep_equals_separate_runs(dtype):
    """With matmuls and means the batched program may differ in the last bit: f64 to 1e-13, f32 to 5e-6.

    (f32: a few ulps per step, which 30 steps of training amplify to ~2e-6 on some losses.)
    """
    lrs = np.geomspace(1e-3, 0.3, 4)
    params, data = _init(dtype), _data(dtype)
    res = gx.sweep(_loss, params, gx.Space(gx.adam, learning_rate=gx.log_uniform(1e-3, 0.3)), steps=STEPS,
                   values={"learning_rate": lrs}, data=data, progress=False)
    rtol = 1e-13 if dtype == jnp.float64 else 5e-6
    for i, lr in enumerate(lrs):
        p, losses = _separate_run(gx.adam(float(lr)), params, data, STEPS)
        assert jax.tree.map(lambda x: x.dtype, res.params(i)) == jax.tree.map(lambda x: x.dtype, p)
        jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=rtol, atol=rtol), res.params(i), p)  # params are O(1)
        np.testing.assert_allclose(res.curves[i], losses, rtol=rtol)


def test_sweep_over_warmup_cosine_peak_values_equals_separate_runs():
    peaks = [0.003, 0.03, 0.3]
    sched = functools.partial(gx.warmup_cosine_decay_schedule, init_value=0.0, warmup_steps=5, decay_steps=STEPS)
    space = gx.Space(gx.adam, learning_rate=gx.Space(sched, peak_value=peaks))
    prob = gx.noisy_quadratic(dim=6)
    res = gx.sweep(prob.batch_loss, prob.params(jnp.float64), space, steps=STEPS, data=prob.data, progress=False)
    np.testing.assert_array_equal(res.values["learning_rate.peak_value"], peaks)
    for i, peak in enumerate(peaks):  # swept values act as the Python floats a user types (weakly typed)
        w, _ = _noisy_quadratic_run(gx.adam(sched(peak_value=peak)), prob.params(jnp.float64), STEPS)
        # XLA's vectorised arithmetic on the batched schedule may differ from scalar code in the last bit.
        np.testing.assert_allclose(res.params(i), w, rtol=1e-14)


_COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: _COMPILES.append(1) if event == "/jax/core/compile/backend_compile_duration" else None
)


def test_compiles_once_per_family_whatever_the_values_and_n():
    loss = lambda w: jnp.sum((w - 1.0) ** 2)  # noqa: E731
    w0 = jnp.zeros(3)
    space = gx.Space(gx.sgd, learning_rate=gx.log_uniform(1e-3, 0.5), momentum=gx.uniform(0.0, 0.9))
    for n in (2, 16):
        for seed in range(3):
            programs, compiles = runner._chunk._cache_size(), len(_COMPILES)
            gx.sweep(loss, w0, space, steps=10, num=n, key=jax.random.key(seed), progress=False)
            assert runner._chunk._cache_size() - programs == (1 if seed == 0 else 0), (n, seed)
            if seed > 0:  # new values: nothing at all is compiled
                assert len(_COMPILES) == compiles, (n, seed)
    programs = runner._chunk._cache_size()
    fams = {"sgd": space, "adam": gx.Space(gx.adam, learning_rate=[0.01, 0.1]),
            "rms": gx.OPTIMIZERS["rmsprop"].space(learning_rate=[0.1])}
    res = gx.sweep(loss, w0, fams, steps=10, num=4, progress=False)
    assert runner._chunk._cache_size() - programs == 3  # one training program per family
    assert list(dict.fromkeys(res.family.tolist())) == ["sgd", "adam", "rms"]
    assert len(res) == 4 + 2 + 1


def test_steps_to_tol_matches_seed_003_and_divergence_is_flagged():
    prob = gx.ill_conditioned_quadratic()
    table = {label: (lr, r) for label, lr, r in gx.conditioning_experiment()}
    lrs = [table["SGD at 1.01 x eta_max"][0], table["SGD at eta* = 2/101"][0]]
    res = gx.sweep(prob.loss, prob.params(jnp.float32), gx.Space(gx.sgd, learning_rate=lrs), steps=1000, tol=1e-6,
                   progress=False, divergence=10.0)
    assert res.metrics["steps_to_tol"].tolist() == [-1, table["SGD at eta* = 2/101"][1].steps] == [-1, 420]
    assert res.metrics["diverged"].tolist() == [True, False]
    stop = res.metrics["stopped_at"][0]
    first = res.curves[0, 0]
    assert stop > 0 and res.curves[0, stop] > 10 * first >= res.curves[0, stop - 1]  # the step that exploded
    assert np.all(np.isnan(res.curves[0, stop + 1 :]))  # then frozen
    assert res.best["learning_rate"] == pytest.approx(lrs[1])


def test_early_stopping_freezes_only_the_stopped_runs():
    loss = lambda w: jnp.sum(w**2)  # noqa: E731
    res = gx.sweep(loss, jnp.ones(2), gx.Space(gx.sgd, learning_rate=[1e-9, 0.1]), steps=25, patience=3,
                   min_delta=1e-7, progress=False)
    stopped = res.metrics["stopped_at"].tolist()
    assert stopped[0] == 3 and stopped[1] == -1
    np.testing.assert_allclose(res.params(0), 1.0, rtol=1e-7)  # frozen after 3 steps
    np.testing.assert_allclose(res.params(1), 0.8**25, rtol=1e-9)  # kept training


def test_data_function_and_per_run_params():
    data = lambda key, t: jax.random.normal(key, (3,))  # noqa: E731
    loss = lambda w, b: jnp.sum((w - b) ** 2)  # noqa: E731
    inits = jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(jax.random.key(1), 2))
    key = jax.random.key(7)
    res = gx.sweep(loss, inits, gx.Space(gx.sgd, learning_rate=[0.05, 0.2]), steps=5, data=data, key=key,
                   per_run_params=True, progress=False)
    dkey = jax.random.fold_in(key, 1_000_003)  # documented: every run sees data(fold_in(data key, t), t)
    for i, lr in enumerate([0.05, 0.2]):
        w = inits[i]
        for t in range(5):
            w = w - lr * jax.grad(loss)(w, data(jax.random.fold_in(dkey, t), t))
        np.testing.assert_allclose(res.params(i), w, rtol=1e-12)
    with pytest.raises(ValueError, match="leading axis of 3 runs"):
        gx.sweep(loss, inits, gx.Space(gx.sgd, learning_rate=[0.1, 0.2, 0.3]), steps=2, data=data, per_run_params=True, progress=False)


def test_interrupt_keeps_finished_chunks(monkeypatch):
    monkeypatch.setattr(runner, "_progress", lambda *a: CtrlCBar(after=8))
    res = gx.sweep(lambda w: jnp.sum(w**2), jnp.ones(2), gx.Space(gx.sgd, learning_rate=[0.1]), steps=20, chunk=4,
                   progress=False)
    assert res.interrupted and res.steps == 8 and res.curves.shape == (1, 8)
    np.testing.assert_allclose(res.params(0), 0.8**8, rtol=1e-12)


def test_bad_input_gets_clear_errors():
    loss = lambda w: jnp.sum(w**2)  # noqa: E731
    with pytest.raises(ValueError, match=r"run 1 of the sweep.*learning_rate"):
        gx.sweep(loss, jnp.ones(2), gx.Space(gx.sgd, learning_rate=[0.1, -1.0]), steps=2, progress=False)
    with pytest.raises(TypeError, match="integer params|floating-point"):
        gx.sweep(loss, jnp.ones(2, jnp.int32), gx.Space(gx.sgd, learning_rate=[0.1]), steps=2, progress=False)
    with pytest.raises(ValueError, match="missing"):
        gx.sweep(loss, jnp.ones(2), gx.Space(gx.sgd, learning_rate=[0.1]), steps=2, values={"lr": [0.1]}, progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        gx.sweep(loss, jnp.ones(2), gx.Space(gx.sgd, learning_rate=[0.1]), steps=0, progress=False)
    with pytest.raises(ValueError, match="devices=3"):
        gx.sweep(loss, jnp.ones(2), gx.Space(gx.sgd, learning_rate=[0.1]), steps=1, devices=3, progress=False)


def test_results_table_files_and_plot(tmp_path):
    loss = lambda w: jnp.sum((w - 2.0) ** 2)  # noqa: E731
    res = gx.sweep(loss, jnp.zeros(2), gx.Space(gx.sgd, learning_rate=[0.001, 0.3, 0.1, 2.0]), steps=20,
                   progress=False)
    rows = res.table()
    assert [r["learning_rate"] for r in rows] == [0.3, 0.1, 0.001, 2.0]  # diverged last
    assert rows[-1]["diverged"] and not rows[0]["diverged"]
    assert "learning_rate" in str(res).splitlines()[1]
    res.to_csv(tmp_path / "r.csv")
    import csv
    import json

    with open(tmp_path / "r.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [float(r["learning_rate"]) for r in csv_rows] == [0.3, 0.1, 0.001, 2.0]
    doc = json.loads(res.to_json(tmp_path / "r.json"))
    assert doc["best"]["learning_rate"] == 0.3 and len(doc["curves"]) == 4
    opt = res.optimizer()
    assert isinstance(opt, gx.GradientTransformation) and float(opt.transforms[-1].learning_rate) == 0.3
    pytest.importorskip("matplotlib")
    fig = res.plot(tmp_path / "r.png", k=2)
    assert (tmp_path / "r.png").stat().st_size > 1000 and fig.axes[1].get_xscale() == "log"
