"""gx.sweep compiles per space *structure*: other grid values or bounds reuse the program."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx as gx
from gradtx.sweeps import runner

STEPS = 8
W0 = jnp.zeros(3)

_COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: _COMPILES.append(1) if event == "/jax/core/compile/backend_compile_duration" else None
)


def _loss(w):
    return jnp.sum((w - 1.0) ** 2)


@functools.partial(jax.jit, static_argnames="steps")
def _separate_run(opt, w, steps):
    def body(carry, _):
        w, s = carry
        loss, g = jax.value_and_grad(_loss)(w)
        u, s = opt.update(g, s, w)
        return (gx.apply_updates(w, u), s), loss

    (w, _), losses = jax.lax.scan(body, (w, opt.init(w)), jnp.arange(steps))
    return w, losses


def _programs():
    return runner._init._cache_size(), runner._chunk._cache_size(), len(_COMPILES)


def test_new_grid_values_reuse_the_compiled_sweep_and_give_the_same_results():
    def run(lrs):
        space = gx.Space(gx.sgd, learning_rate=gx.grid(lrs), momentum=0.5)
        return gx.sweep(_loss, W0, space, steps=STEPS, progress=False)

    run([0.1, 0.2])
    before = _programs()
    res = run([0.3, 0.4])
    assert _programs() == before  # no new program, nothing compiled at all
    np.testing.assert_array_equal(res.values["learning_rate"], [0.3, 0.4])
    for i, lr in enumerate([0.3, 0.4]):
        w, losses = _separate_run(gx.sgd(lr, momentum=0.5), W0, STEPS)
        np.testing.assert_array_equal(res.params(i), w)
        np.testing.assert_array_equal(res.curves[i], losses)


def test_nested_grids_and_random_bounds_are_not_part_of_the_program():
    sched = functools.partial(gx.warmup_cosine_decay_schedule, init_value=0.0, warmup_steps=2, decay_steps=STEPS)

    def run(peaks, lo, hi):
        space = gx.Space(gx.sgd, learning_rate=gx.Space(sched, peak_value=gx.grid(peaks)), momentum=gx.uniform(lo, hi))
        return gx.sweep(_loss, W0, space, steps=STEPS, num=2, key=jax.random.key(0), progress=False)

    run([0.01, 0.1], 0.8, 0.9)
    before = _programs()[:2]
    res = run([0.02, 0.3], 0.5, 0.7)
    assert _programs()[:2] == before
    assert set(np.asarray(res.values["learning_rate.peak_value"]).tolist()) == {0.02, 0.3}
    assert np.all((res.values["momentum"] >= 0.5) & (res.values["momentum"] <= 0.7))


def test_a_different_structure_still_compiles_its_own_program():
    gx.sweep(_loss, W0, gx.Space(gx.sgd, learning_rate=gx.grid([0.1, 0.2])), steps=STEPS, progress=False)
    before = runner._chunk._cache_size()
    gx.sweep(_loss, W0, gx.Space(gx.sgd, learning_rate=gx.grid([0.1, 0.2]), momentum=gx.grid([0.5])),
             steps=STEPS, progress=False)
    assert runner._chunk._cache_size() == before + 1


def test_structure_keeps_paths_and_kinds_and_drops_values():
    a = gx.Space(gx.adam, learning_rate=gx.Space(gx.exponential_decay, init_value=gx.log_uniform(1e-3, 1.0),
                                                 transition_steps=10, decay_rate=[0.5, 0.9]), b1=gx.choice([0.8, 0.9]))
    b = gx.Space(gx.adam, learning_rate=gx.Space(gx.exponential_decay, init_value=gx.log_uniform(1e-2, 0.5),
                                                 transition_steps=10, decay_rate=[0.1, 0.2, 0.3]), b1=gx.choice([0.7]))
    assert a != b and a.structure() == b.structure() and hash(a.structure()) == hash(b.structure())
    assert a.structure().structure() == a.structure()
    assert list(a.structure().dims) == list(a.dims)
    assert repr(a.structure().dims["learning_rate.init_value"]) == "<log_uniform>"
    assert a.structure() != gx.Space(gx.adam, learning_rate=gx.Space(
        gx.exponential_decay, init_value=gx.uniform(1e-3, 1.0), transition_steps=10, decay_rate=[0.5]),
        b1=gx.choice([0.8])).structure()  # another kind of dimension
    assert a.structure() != gx.Space(gx.adam, learning_rate=gx.Space(
        gx.exponential_decay, init_value=gx.log_uniform(1e-3, 1.0), transition_steps=20, decay_rate=[0.5]),
        b1=gx.choice([0.8])).structure()  # another fixed argument
    with pytest.raises(TypeError, match="has no values: it is part of Space.structure"):
        a.structure().sample(jax.random.key(0), num=2)
