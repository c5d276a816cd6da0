"""Population-based training: the exploit/explore step, lineage, and PBT beating random search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx
from gradtx.sweeps.pbt import Explore, exploit_and_explore
from helpers import CtrlCBar


def test_exploit_copies_top_members_and_perturbs_their_values():
    space = gx.Space(gx.sgd, learning_rate=gx.log_uniform(1e-3, 10.0), momentum=gx.choice([0, 1, 2]))
    rule = Explore(space, fraction=0.25, perturb=(0.8, 1.2), resample_probability=0.0)
    n = 8
    values = {"learning_rate": jnp.arange(1.0, n + 1) / 10, "momentum": jnp.arange(n, dtype=jnp.int32) % 3}
    state = {"w": jnp.arange(n, dtype=jnp.float64) * 100}
    score = jnp.asarray([5.0, 1.0, 7.0, 0.5, jnp.nan, 3.0, 2.0, 9.0])  # best: 3, 1; worst: nan (4), 7
    new_v, new_s, parent = exploit_and_explore(rule, jax.random.key(0), values, state, score)
    parent = np.asarray(parent)
    replaced = np.flatnonzero(parent != np.arange(n))
    assert sorted(replaced) == [4, 7] and set(parent[replaced]) <= {1, 3}
    np.testing.assert_array_equal(new_s["w"], np.asarray(state["w"])[parent])
    for i in range(n):
        lr, parent_lr = float(new_v["learning_rate"][i]), float(values["learning_rate"][parent[i]])
        if i in replaced:
            assert lr == pytest.approx(0.8 * parent_lr) or lr == pytest.approx(1.2 * parent_lr)
            assert int(new_v["momentum"][i]) == int(values["momentum"][parent[i]])  # integers are not scaled
        else:
            assert lr == parent_lr
    kept = exploit_and_explore(rule, jax.random.key(0), values, state, score, ready=False)
    jax.tree.map(np.testing.assert_array_equal, kept[:2], (values, state))


def test_explore_clips_to_the_dimension_and_resamples():
    space = gx.Space(gx.sgd, learning_rate=gx.uniform(0.5, 0.6))
    rule = Explore(space, fraction=0.5, perturb=(2.0,), resample_probability=0.0)
    values = {"learning_rate": jnp.asarray([0.55, 0.58, 0.5, 0.52])}
    new, _, parent = exploit_and_explore(rule, jax.random.key(1), values, {}, jnp.arange(4.0))
    assert np.all(np.asarray(new["learning_rate"])[2:] == 0.6)  # 2x, clipped to high
    always = Explore(space, fraction=0.5, perturb=(2.0,), resample_probability=1.0)
    new, _, _ = exploit_and_explore(always, jax.random.key(1), values, {}, jnp.arange(4.0))
    redrawn = np.asarray(new["learning_rate"])[2:]
    assert np.all((redrawn >= 0.5) & (redrawn <= 0.6)) and not np.any(np.isin(redrawn, [0.55, 0.58]))


@pytest.mark.slow
def test_pbt_beats_the_best_fixed_learning_rate_of_random_search():
    """On the noisy quadratic the best rate shrinks during training; PBT follows it, a fixed rate cannot."""
    prob = gx.noisy_quadratic()
    space = gx.Space(gx.sgd, learning_rate=gx.log_uniform(1e-3, 1.0))
    w0 = prob.params(jnp.float32)
    for seed in (0, 1):
        kw = dict(steps=800, num=16, key=jax.random.key(seed), data=prob.data, eval_fn=prob.loss, progress=False)
        search = gx.sweep(prob.batch_loss, w0, space, **kw)
        pop = gx.pbt(prob.batch_loss, w0, space, interval=40, **kw)
        np.testing.assert_array_equal(pop.history["learning_rate"][0], search.values["learning_rate"])  # same start
        best_fixed, best_pbt = search.best["final_loss"], pop.best["final_loss"]
        assert best_pbt < 0.8 * best_fixed, (seed, best_pbt, best_fixed)
        # PBT ended with a smaller rate than the best fixed one: it annealed.
        assert pop.best["learning_rate"] < search.best["learning_rate"]
        lineage = pop.lineage(pop.best["run"])
        assert len(lineage) == 800 // 40 + 1 and lineage[-1] == pop.best["run"]
        assert pop.history["learning_rate"].shape == (21, 16) and pop.parents.shape == (20, 16)


def test_pbt_is_deterministic_and_validates(tmp_path):
    prob = gx.noisy_quadratic(dim=4)
    space = gx.Space(gx.sgd, learning_rate=gx.log_uniform(1e-3, 1.0))
    kw = dict(steps=40, interval=10, num=4, data=prob.data, progress=False, key=jax.random.key(3))
    a = gx.pbt(prob.batch_loss, prob.params(), space, **kw)
    b = gx.pbt(prob.batch_loss, prob.params(), space, **kw)
    np.testing.assert_array_equal(a.history["learning_rate"], b.history["learning_rate"])
    np.testing.assert_array_equal(a.result.curves, b.result.curves)
    assert a.history_steps.tolist() == [0, 10, 20, 30, 40]
    assert np.all(a.parents[-1] == np.arange(4))  # no exploit after the last interval
    import json

    doc = json.loads(a.to_json(tmp_path / "pbt.json"))
    assert len(doc["pbt"]["parents"]) == 4
    with pytest.raises(ValueError, match="fraction"):
        gx.pbt(prob.batch_loss, prob.params(), space, fraction=0.7, **kw)
    with pytest.raises(ValueError, match="interval"):
        gx.pbt(prob.batch_loss, prob.params(), space, **{**kw, "interval": 0})


def test_pbt_interrupt_keeps_finished_intervals(monkeypatch):
    from gradtx.sweeps import pbt as pbt_module

    monkeypatch.setattr(pbt_module, "_progress", lambda *a: CtrlCBar(after=20))
    prob = gx.noisy_quadratic(dim=4)
    res = gx.pbt(prob.batch_loss, prob.params(), gx.Space(gx.sgd, learning_rate=gx.log_uniform(1e-3, 1.0)),
                 steps=60, interval=10, chunk=2, num=4, data=prob.data, progress=False)
    assert res.result.interrupted and res.result.steps == 20
    assert res.result.curves.shape == (4, 20) and res.history["learning_rate"].shape == (3, 4)
