"""partition, apply_if_finite, skip_large_updates, zero_nans: optax parity, errors, fuzz."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtx.core.base import apply_updates
from gradtx.optimizers.adam_family import adam
from gradtx.optimizers.classic import sgd
from gradtx.optimizers.registry import OPTIMIZERS
from gradtx.wrappers.finite import apply_if_finite, skip_large_updates, zero_nans
from gradtx.wrappers.partition import partition
from helpers import swept_at

NAN, INF = float("nan"), float("inf")


def close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- partition

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.2]), "s": jnp.array(2.0)}
GRADS = [jax.tree.map(lambda p, k=k: jnp.cos(p * (k + 1)) + 0.1 * k, PARAMS) for k in range(3)]


@pytest.mark.parametrize("labels_kind", ["tree", "fn"])
def test_partition_parity_with_optax(labels_kind):
    labels = {"w": "adam", "b": "sgd", "s": "sgd"}
    param_labels = labels if labels_kind == "tree" else (lambda p: {k: labels[k] for k in p})
    ours = partition({"adam": adam(0.1), "sgd": sgd(0.3, momentum=0.9)}, param_labels)
    theirs = optax.partition({"adam": optax.adam(0.1), "sgd": optax.sgd(0.3, momentum=0.9)}, param_labels)
    s1, s2 = ours.init(PARAMS), theirs.init(PARAMS)
    for g in GRADS:
        u1, s1 = ours.update(g, s1, PARAMS)
        u2, s2 = theirs.update(g, s2, PARAMS)
        close(u1, u2)
    # Adam's count and moments live only under "adam", momentum only under "sgd".
    assert int(s1.inner_states["adam"].inner_state[0].count) == 3
    close(s1.inner_states["adam"].inner_state[0].mu, s2.inner_states["adam"].inner_state[0].mu)
    close(s1.inner_states["sgd"].inner_state[0].trace, s2.inner_states["sgd"].inner_state[0].trace)


def test_partition_prefix_labels_and_hand_values():
    params = {"a": {"x": jnp.array(1.0), "y": jnp.array(2.0)}, "b": jnp.array(3.0)}
    tx = partition({"fast": sgd(1.0), "slow": sgd(0.1), "unused": adam(1.0)}, {"a": "fast", "b": "slow"})
    g = {"a": {"x": jnp.array(1.0), "y": jnp.array(2.0)}, "b": jnp.array(4.0)}
    u, _ = tx.update(g, tx.init(params))
    close(u, {"a": {"x": -1.0, "y": -2.0}, "b": -0.4})


def test_partition_label_without_transform_names_label_and_path():
    tx = partition({"w": sgd(1.0)}, {"w": "w", "b": "bias", "s": "w"})
    with pytest.raises(ValueError, match=r"\['b'\].*'bias'.*no transformation"):
        tx.init(PARAMS)


def test_partition_mismatched_labels_name_the_path():
    tx = partition({"x": sgd(1.0)}, {"w": "x", "c": "x", "s": "x"})
    with pytest.raises(ValueError, match=r"`param_labels` does not match.*<root>.*\['c'\].*\['b'\]"):
        tx.init(PARAMS)
    nested = {"a": {"u": jnp.zeros(1)}, "b": {"d": jnp.zeros(1)}}
    tx = partition({"x": sgd(1.0)}, {"a": "x", "b": {"c": "x"}})
    with pytest.raises(ValueError, match=r"at \['b'\]"):
        tx.init(nested)


def test_partition_rejects_non_mapping():
    with pytest.raises(TypeError, match="`transforms` must be a mapping"):
        partition([sgd(1.0)], {"w": 0})


# --------------------------------------------------------------------------- apply_if_finite

BAD_SEQUENCE = [
    [1.0, 2.0], [NAN, 1.0], [0.5, 0.5], [INF, 0.0], [1.0, -INF], [NAN, NAN], [NAN, 1.0], [1.0, 1.0],
]


def test_apply_if_finite_parity_with_optax():
    ours = apply_if_finite(sgd(0.1, momentum=0.9), max_consecutive_errors=2)
    theirs = optax.apply_if_finite(optax.sgd(0.1, momentum=0.9), max_consecutive_errors=2)
    p = jnp.zeros(2)
    s1, s2 = ours.init(p), theirs.init(p)
    for g in BAD_SEQUENCE:
        g = jnp.array(g)
        u1, s1 = ours.update(g, s1)
        u2, s2 = theirs.update(g, s2)
        np.testing.assert_allclose(u1, u2, equal_nan=True)
        for f in ("notfinite_count", "last_finite", "total_notfinite"):
            assert int(getattr(s1, f)) == int(getattr(s2, f)), f


def test_apply_if_finite_counters_by_hand():
    opt = apply_if_finite(sgd(1.0), max_consecutive_errors=2)
    s = opt.init(jnp.zeros(2))
    seen = []
    for g in BAD_SEQUENCE:
        u, s = opt.update(jnp.array(g), s)
        seen.append((int(s.notfinite_count), bool(s.last_finite), int(s.total_notfinite), bool(jnp.all(u == 0))))
    assert seen == [
        (0, True, 0, False),
        (1, False, 1, True),   # skipped
        (0, True, 1, False),   # finite: the streak resets
        (1, False, 2, True),
        (2, False, 3, True),
        (3, False, 4, False),  # 3 > 2: gives up, applies the NaN update
        (4, False, 5, False),  # not reset on giving up (optax's behaviour)
        (0, True, 5, False),
    ]


def test_apply_if_finite_hyper_is_a_leaf():
    traces = []

    @jax.jit
    def step(opt, g):
        traces.append(1)
        return opt.update(g, opt.init(g))

    for n in (0, 1, 5):
        step(apply_if_finite(sgd(1.0), n), jnp.array([NAN]))
    assert len(traces) == 1
    with pytest.raises(ValueError, match="max_consecutive_errors"):
        apply_if_finite(sgd(1.0), -1)


# --------------------------------------------------------------------------- skip_large_updates


def test_skip_large_updates_parity_with_optax_multisteps():
    ours = skip_large_updates(adam(0.1), max_squared_norm=4.0)
    skip = functools.partial(optax.skip_large_updates, max_squared_norm=4.0)
    theirs = optax.MultiSteps(optax.adam(0.1), 1, should_skip_update_fn=skip, accumulator_dtype=jnp.float64)
    p = jnp.zeros(2)
    s1, s2 = ours.init(p), theirs.init(p)
    for g in ([1.0, 1.0], [3.0, 0.0], [2.0, 0.0], [0.5, NAN], [-1.0, 0.5]):
        g = jnp.array(g)
        u1, s1 = ours.update(g, s1)
        u2, s2 = theirs.update(g, s2)
        close(u1, u2)
        assert bool(s1.should_skip) == bool(s2.skip_state["should_skip"])
        np.testing.assert_allclose(s1.norm_squared, s2.skip_state["norm_squared"], equal_nan=True)
    assert int(s1.inner_state[0].count) == 2  # only [1, 1] and [-1, 0.5] passed (4 is not < 4)


def test_skip_large_updates_validates_and_jits_once():
    with pytest.raises(ValueError, match="max_squared_norm"):
        skip_large_updates(sgd(1.0), -1.0)
    traces = []

    @jax.jit
    def step(opt, g):
        traces.append(1)
        return opt.update(g, opt.init(g))[0]

    g = jnp.array([3.0, 4.0])
    assert float(jnp.sum(step(skip_large_updates(sgd(1.0), 26.0), g))) == -7.0
    assert float(jnp.sum(step(skip_large_updates(sgd(1.0), 24.0), g))) == 0.0
    assert len(traces) == 1


# --------------------------------------------------------------------------- zero_nans


def test_zero_nans_parity_with_optax():
    g = {"a": jnp.array([1.0, NAN, INF]), "b": jnp.array(-2.0), "c": jnp.array([[NAN]])}
    ours, theirs = zero_nans(), optax.zero_nans()
    u1, s1 = ours.update(g, ours.init(g))
    u2, s2 = theirs.update(g, theirs.init(g))
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), u1, u2)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), s1.found_nan, s2.found_nan)
    assert s1.found_nan == {"a": True, "b": False, "c": True}
    np.testing.assert_array_equal(u1["a"], [1.0, 0.0, INF])


# --------------------------------------------------------------------------- fuzz

STEPS = 12
EXAMPLES = max(1, round(1000 / len(OPTIMIZERS)))  # ~1,000 trajectories over the registry
# Tiny trees (1-3 leaves, dims <= 3); one per optimizer so each compiles once.
SHAPES = [((3,),), ((2,), ()), ((3,), (2, 3), ())]
BAD_VALUES = jnp.array([NAN, INF, -INF])


def _inject(g, bad, kind, leaf, pos):
    out = []
    for i, x in enumerate(g):
        hit = bad & (leaf % len(g) == i) & (jnp.arange(x.size).reshape(x.shape) == pos % x.size)
        out.append(jnp.where(hit, BAD_VALUES[kind], x))
    return tuple(out)


def _extra(names, p, g, target):
    """The loss ``0.5 ||p - target||^2`` (the gradients' noise aside) for entries that need it."""
    fn = lambda x: 0.5 * sum(jnp.sum((xi - ti) ** 2) for xi, ti in zip(x, target))  # noqa: E731
    offered = {"value": fn(p), "grad": g, "value_fn": fn}
    return {k: offered[k] for k in names}


@functools.partial(jax.jit, static_argnames="extra_args")
def _trajectory(opt, p0, target, noise, bad, kind, leaf, pos, extra_args=()):
    """Runs ``opt`` (apply_if_finite) and, as the oracle, its inner optimizer on the good steps only."""
    plain = opt.inner

    def step(carry, xs):
        p, s, q, r = carry
        n, b, k, l, o = xs
        g = _inject(tuple(pi - ti + ni for pi, ti, ni in zip(p, target, n)), b, k, l, o)
        u, s = opt.update(g, s, p, **_extra(extra_args, p, g, target))
        p = apply_updates(p, u)
        h = tuple(qi - ti + ni for qi, ti, ni in zip(q, target, n))
        v, r_new = plain.update(h, r, q, **_extra(extra_args, q, h, target))
        q = jax.tree.map(lambda new, old: jnp.where(b, old, new), apply_updates(q, v), q)
        r = jax.tree.map(lambda new, old: jnp.where(b, old, new), r_new, r)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in p]))
        return (p, s, q, r), finite

    init = (p0, opt.init(p0), p0, plain.init(p0))
    (p, s, q, _), finite = jax.lax.scan(step, init, (noise, bad, kind, leaf, pos))
    return p, s, q, finite


@pytest.mark.slow
@pytest.mark.parametrize("index,name", list(enumerate(OPTIMIZERS)))
@settings(max_examples=EXAMPLES)
@given(
    lr_factor=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**31 - 1),
    bad=st.lists(st.booleans(), min_size=STEPS, max_size=STEPS),
)
def test_fuzz_apply_if_finite_every_optimizer(index, name, lr_factor, seed, bad):
    info = OPTIMIZERS[name]
    opt = apply_if_finite(info.make(**swept_at(info, lr_factor)), 10 * STEPS)
    rng = np.random.default_rng(seed)
    shapes = SHAPES[index % len(SHAPES)]
    p0 = tuple(jnp.asarray(rng.uniform(-2, 2, s)) for s in shapes)
    target = tuple(jnp.asarray(rng.uniform(-2, 2, s)) for s in shapes)
    noise = tuple(jnp.asarray(rng.normal(0, 0.5, (STEPS, *s))) for s in shapes)
    bad_arr = np.array(bad)
    ints = lambda hi: jnp.asarray(rng.integers(0, hi, STEPS), jnp.int32)
    p, s, q, finite = _trajectory(opt, p0, target, noise, jnp.asarray(bad_arr), ints(3), ints(3), ints(9), info.extra_args)

    assert bool(jnp.all(finite)), f"{name}: params became non-finite"
    assert int(s.total_notfinite) == bad_arr.sum()
    trailing = next((i for i, b in enumerate(reversed(bad)) if not b), len(bad))
    assert int(s.notfinite_count) == trailing
    assert bool(s.last_finite) == (not bad_arr[-1])
    close(p, q)  # skipping a step == the step never happened
