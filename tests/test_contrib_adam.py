"""optax.contrib's Adam relatives (issue 16): ADOPT, AdEMAMix, simplified AdEMAMix, MADGRAD, ACProp.

Parity with optax.contrib 0.2.8 on random nested pytrees (test_parity's trees and
comparison), 100 steps, float64 rtol 1e-6 and float32 rtol 1e-5; closed forms; one
trace for many hyperparameter values and vmap over them; bad input; overflow.

optax is built inside ``jit`` from the same traced hyperparameters (runtime values in
both programs: closed over, XLA folds optax's constants and rounds some products
differently), and the float32 runs have x64 off (under x64 optax computes some scalars,
and with ``optax.tree.add_scale`` whole moments, in float64: no float32 oracle).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from test_parity import STEPS, STRUCTURES, _random_tree, _scan, assert_same_trajectories

import gradtx as gx
from gradtx.optimizers.adam_contrib import acprop, ademamix, adopt, madgrad, simplified_ademamix
from gradtx.transforms.adam_contrib import (
    PowerOfCount, ScaleByAdemamixState, ScaleBySimplifiedAdEMAMixState, scale_by_ademamix, scale_by_adopt,
    scale_by_simplified_ademamix,
)
from gradtx.transforms.adam_contrib_extra import MadgradState, scale_by_acprop, scale_by_madgrad

EXAMPLES = 2  # per case and dtype: every example compiles optax's program anew
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
C = optax.contrib

UNIT = st.floats(0.0, 0.99)
B2 = st.floats(0.5, 0.9999)
LR = st.floats(1e-4, 0.3)
EPS = st.floats(1e-8, 1e-3)
EPS_ROOT = st.floats(0.0, 1e-6)
WD = st.floats(0.0, 0.1)
ALPHA = st.floats(0.0, 10.0)
# Schedules' transition steps (static in optax): a power of 2, so that optax's n / T, a float32
# division even under x64 (int32 count / int), is exact and its float64 schedule values are too.
T = 32


def _mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def _adopt_kw(kw, make_clip):
    kw = dict(kw)
    if "power" in kw:
        kw["clip_value_fn"] = make_clip(kw.pop("power"))
    return kw


def _ours_clip(p):
    return PowerOfCount(p)


def _theirs_clip(p):
    return lambda n: n**p


def _sched(kw, schedule, names):
    """``alpha`` and ``b3`` as linear warm-ups from ``alpha0`` / ``b30`` over T steps."""
    kw = dict(kw)
    for name in names:
        if name + "0" in kw:
            kw[name] = schedule(kw.pop(name + "0"), kw[name], T)
    return kw


def _float_count(tx):
    """optax's MADGRAD with a floating count: its ``sqrt(count + 1)`` of an int32 count is a
    float32 square root even for float64 params (a relative error of ~3e-8 in each weight,
    grown to 1e-5 where the sum s cancels); gradtx computes it in the learning rate's
    precision. A count of the default float dtype makes optax's oracle as precise (in
    float32 runs it changes nothing)."""

    def init(params):
        state = tx.init(params)
        return jax.tree.map(
            lambda x: x._replace(count=jnp.zeros([], jnp.result_type(float))) if isinstance(x, C.MadgradState) else x,
            state, is_leaf=lambda x: isinstance(x, C.MadgradState))

    return optax.GradientTransformation(init, tx.update)


# name -> (ours, theirs, hyperparameter strategies, static options)
CASES = {
    "scale_by_adopt": (
        lambda **kw: scale_by_adopt(**_adopt_kw(kw, _ours_clip)),
        lambda **kw: C.scale_by_adopt(**_adopt_kw(kw, _theirs_clip)),
        {"b1": UNIT, "b2": B2, "eps": EPS, "power": st.floats(0.1, 0.5)},
        {"nesterov": st.booleans(), "use_clipping": st.booleans()},
    ),
    "adopt": (
        lambda **kw: adopt(**_adopt_kw(kw, _ours_clip)),
        lambda **kw: C.adopt(**_adopt_kw(kw, _theirs_clip)),
        {"learning_rate": LR, "b1": UNIT, "b2": B2, "eps": EPS, "power": st.floats(0.1, 0.5)},
        {"nesterov": st.booleans(), "use_clipping": st.booleans()},
    ),
    "scale_by_ademamix": (
        scale_by_ademamix, C.scale_by_ademamix,
        {"b1": UNIT, "b2": B2, "b3": B2, "alpha": ALPHA, "eps": EPS, "eps_root": EPS_ROOT}, {},
    ),
    "scale_by_ademamix_scheduled": (
        lambda **kw: scale_by_ademamix(**_sched(kw, gx.linear_schedule, ("alpha", "b3"))),
        lambda **kw: C.scale_by_ademamix(**_sched(kw, optax.linear_schedule, ("alpha", "b3"))),
        {"b1": UNIT, "b2": B2, "b3": B2, "b30": UNIT, "alpha": ALPHA, "alpha0": st.floats(0.0, 1.0), "eps": EPS}, {},
    ),
    "ademamix": (
        ademamix, C.ademamix,
        {"learning_rate": LR, "b1": UNIT, "b2": B2, "b3": B2, "alpha": ALPHA, "eps": EPS, "weight_decay": WD},
        {"mask": st.sampled_from([None, _mask])},
    ),
    "scale_by_simplified_ademamix": (
        scale_by_simplified_ademamix, C.scale_by_simplified_ademamix,
        {"b1": UNIT, "b2": B2, "alpha": ALPHA, "eps": EPS, "eps_root": EPS_ROOT}, {},
    ),
    "simplified_ademamix_scheduled": (
        lambda **kw: simplified_ademamix(**_sched(kw, gx.linear_schedule, ("alpha",))),
        lambda **kw: C.simplified_ademamix(**_sched(kw, optax.linear_schedule, ("alpha",))),
        {"learning_rate": LR, "b1": UNIT, "b2": B2, "alpha": ALPHA, "alpha0": st.floats(0.0, 1.0), "eps": EPS,
         "weight_decay": WD},
        {"mask": st.sampled_from([None, _mask])},
    ),
    "scale_by_madgrad": (
        scale_by_madgrad, lambda **kw: _float_count(C.scale_by_madgrad(**kw)),
        {"learning_rate": LR, "momentum": UNIT, "eps": EPS}, {},
    ),
    "madgrad": (
        madgrad, lambda **kw: _float_count(C.madgrad(**kw)),
        {"learning_rate": LR, "momentum": UNIT, "weight_decay": WD, "eps": EPS}, {},
    ),
    "scale_by_acprop": (
        scale_by_acprop, C.scale_by_acprop, {"b1": UNIT, "b2": B2, "eps": EPS, "eps_root": EPS_ROOT}, {},
    ),
    "acprop": (
        acprop, C.acprop,
        {"learning_rate": LR, "b1": UNIT, "b2": B2, "eps": EPS, "eps_root": EPS_ROOT, "weight_decay": WD},
        {"mask": st.sampled_from([None, _mask])},
    ),
}

_run_gx = jax.jit(_scan)  # gradtx optimizers are pytrees: one compile serves every draw


def _check(ours, theirs, numbers, fixed, dtype, rtol, which, seed):
    """Both libraries from the same traced ``numbers`` (and static ``fixed``), 100 steps."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(dtype == jnp.float64):
        params = _random_tree(STRUCTURES[which], rng, dtype)
        draws = [_random_tree(STRUCTURES[which], rng, dtype) for _ in range(STEPS)]
        grads = jax.tree.map(lambda *xs: jnp.stack(xs), *draws)
        numbers = {k: jnp.asarray(v, dtype) for k, v in numbers.items()}
        a = _run_gx(ours(**numbers, **fixed), params, grads)
        b = jax.jit(lambda n, p, g: _scan(theirs(**n, **fixed), p, g))(numbers, params, grads)
        assert_same_trajectories(a, b, dtype, rtol, steps=(0, 1, 2, STEPS // 2, STEPS - 1))


@pytest.mark.parametrize("dtype,rtol", [(jnp.float64, 1e-6), (jnp.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(CASES))
def test_parity_with_optax_contrib(name, dtype, rtol):
    ours, theirs, numbers, options = CASES[name]

    @settings(max_examples=EXAMPLES, deadline=None, phases=NO_SHRINK)
    @given(hp=st.fixed_dictionaries(numbers), fixed=st.fixed_dictionaries(options),
           which=st.integers(0, len(STRUCTURES) - 1), seed=st.integers(0, 2**16))
    def check(hp, fixed, which, seed):
        _check(ours, theirs, hp, fixed, dtype, rtol, which, seed)

    check()


def test_adopt_clipping_both_ways_and_nesterov_match_optax():
    """Each static branch at least once, whatever hypothesis drew above."""
    for fixed in ({"use_clipping": False}, {"use_clipping": True, "nesterov": True}):
        _check(adopt, C.adopt, {"learning_rate": 0.05, "b1": 0.8, "b2": 0.99}, fixed, jnp.float32, 1e-5, 1, 7)


# ----- closed forms -------------------------------------------------------------------------

G1 = jnp.array([0.5, -2.0, 3.0])
G2 = jnp.array([1.0, 1.0, -0.5])


def test_adopt_first_step_is_zero_and_second_is_normalised_by_the_first_gradient():
    for clip in (True, False):
        tx = scale_by_adopt(b1=0.7, b2=0.9, eps=1e-12, use_clipping=clip)
        u1, s = tx.update(G1, tx.init(G1))
        np.testing.assert_array_equal(u1, jnp.zeros(3))
        np.testing.assert_allclose(s.nu, G1**2, rtol=1e-15)  # v_1 = g_1^2: b2 is 0 on the first step
        u2, s = tx.update(G2, s)
        x = G2 / jnp.abs(G1)  # [2, 0.5, -1/6]
        np.testing.assert_allclose(u2, 0.3 * (jnp.clip(x, -1.0, 1.0) if clip else x), rtol=1e-12)  # c_1 = 1
        np.testing.assert_allclose(s.nu, 0.9 * G1**2 + 0.1 * G2**2, rtol=1e-12)


def test_adopt_clip_threshold_is_a_leaf_and_a_constant_works():
    g = jnp.array([10.0])
    for clip, want in ((PowerOfCount(0.5), 1.0), (0.25, 0.25), (gx.linear_schedule(3.0, 0.0, 10), 2.7)):
        tx = scale_by_adopt(b1=0.0, clip_value_fn=clip)
        _, s = tx.update(jnp.array([1.0]), tx.init(g))
        u, _ = tx.update(g, s)  # g / |g_1| = 10, clipped to c_1
        np.testing.assert_allclose(u, [want], rtol=1e-12)
    assert len(jax.tree.leaves(scale_by_adopt())) == 4  # b1, b2, eps and the exponent 0.25


def test_ademamix_with_alpha_zero_is_adam():
    tx, adam = scale_by_ademamix(b1=0.8, b2=0.95, alpha=0.0, eps=1e-6), gx.scale_by_adam(0.8, 0.95, eps=1e-6)
    s, sa = tx.init(G1), adam.init(G1)
    for k in range(5):
        g = G1 * (k - 1.5) + G2
        u, s = tx.update(g, s)
        ua, sa = adam.update(g, sa)
        np.testing.assert_allclose(u, ua, rtol=1e-14)
    assert int(s.count) == int(s.count_m2) == 5


def test_ademamix_slow_ema_is_not_debiased():
    tx = scale_by_ademamix(b1=0.0, b2=0.0, b3=0.9, alpha=2.0, eps=0.0, eps_root=1e-300)
    u, s = tx.update(G1, tx.init(G1))
    np.testing.assert_allclose(s.m2, 0.1 * G1, rtol=1e-14)
    np.testing.assert_allclose(u, jnp.sign(G1) * (1 + 2.0 * 0.1), rtol=1e-14)  # (g + alpha (1-b3) g) / |g|


def test_ademamix_schedules_are_evaluated_at_count_m2():
    tx = scale_by_ademamix(b1=0.0, b2=0.0, b3=0.0, alpha=gx.linear_schedule(0.0, 4.0, 4), eps=0.0, eps_root=1e-300)
    s = tx.init(G1)
    for k in range(3):
        u, s = tx.update(G1, s)
        np.testing.assert_allclose(u, jnp.sign(G1) * (1 + float(k)), rtol=1e-14)  # alpha(k) = k, m2 = g


def test_simplified_ademamix_is_a_momentum_sum_and_reduces_to_adam():
    tx = scale_by_simplified_ademamix(b1=0.5, b2=0.9, alpha=3.0, eps=0.0, eps_root=1e-300)
    _, s = tx.update(G1, tx.init(G1))
    u, s = tx.update(G2, s)
    np.testing.assert_allclose(s.m, G2 + 0.5 * G1, rtol=1e-14)  # a sum: no (1 - b1)
    n_hat = (0.9 * 0.1 * G1**2 + 0.1 * G2**2) / (1 - 0.9**2)
    np.testing.assert_allclose(u, (G2 + 0.5 * G1 + 3.0 * G2) / jnp.sqrt(n_hat), rtol=1e-12)
    plain, adam = scale_by_simplified_ademamix(b1=0.0, b2=0.9), gx.scale_by_adam(b1=0.0, b2=0.9)
    s, sa = plain.init(G1), adam.init(G1)
    for g in (G1, G2, -G1):
        u, s = plain.update(g, s)
        ua, sa = adam.update(g, sa)
        np.testing.assert_allclose(u, ua, rtol=1e-14)


def test_madgrad_dual_averaging_on_a_constant_gradient():
    lr, eps, g = 0.1, 1e-6, jnp.array([2.0, -0.5])
    x0 = jnp.array([1.0, 3.0])
    for mom in (0.0, 0.6):
        tx = scale_by_madgrad(lr, momentum=mom, eps=eps)
        x, s = x0, tx.init(x0)
        want = x0
        lam_sum = 0.0
        for k in range(6):
            u, s = tx.update(g, s, x)
            x = x + u
            lam_sum += (lr + eps) * np.sqrt(k + 1)
            z = x0 - lam_sum * g / (np.cbrt(lam_sum * g**2) + eps)
            want = (1 - mom) * z + mom * want
            np.testing.assert_allclose(x, want, rtol=1e-12)
        np.testing.assert_allclose(s.s, lam_sum * g, rtol=1e-13)
        np.testing.assert_allclose(s.grad_sum_sq, lam_sum * g**2, rtol=1e-13)
        np.testing.assert_array_equal(s.x0, x0)
        assert isinstance(s, MadgradState) and int(s.count) == 6


def test_madgrad_needs_params():
    tx = madgrad(0.1)
    with pytest.raises(ValueError, match="needs the current parameters"):
        tx.update(G1, tx.init(G1))


def test_acprop_first_steps():
    tx = scale_by_acprop(b1=0.5, b2=0.8, eps=1e-30, eps_root=0.0)
    u1, s = tx.update(G1, tx.init(G1))
    np.testing.assert_allclose(u1, G1, rtol=1e-15)  # the denominator is 1 on the first step
    np.testing.assert_allclose(s.nu, 0.2 * G1**2, rtol=1e-14)  # error against m_0 = 0
    u2, s = tx.update(G2, s)
    np.testing.assert_allclose(u2, G2 / jnp.abs(G1), rtol=1e-14)  # sqrt(s_1 / (1 - b2)) = |g_1|
    np.testing.assert_allclose(s.nu, 0.8 * 0.2 * G1**2 + 0.2 * (G2 - 0.5 * G1) ** 2, rtol=1e-14)


def test_state_layouts_are_optax():
    p = {"a": jnp.ones(2)}
    assert ScaleByAdemamixState._fields == C.ScaleByAdemamixState._fields
    assert ScaleBySimplifiedAdEMAMixState._fields == C.ScaleBySimplifiedAdEMAMixState._fields
    assert MadgradState._fields == C.MadgradState._fields
    assert type(scale_by_adopt().init(p)).__name__ == "ScaleByAdamState"
    assert type(scale_by_acprop().init(p)).__name__ == "ScaleByBeliefState"


def test_mu_dtype_is_kept():
    p = {"a": jnp.zeros(3, jnp.float32)}
    for tx in (scale_by_adopt(mu_dtype=jnp.bfloat16), scale_by_ademamix(mu_dtype=jnp.bfloat16)):
        s0 = tx.init(p)
        _, s = jax.jit(tx.update)({"a": jnp.array([1.0, -2.0, 3.0], jnp.float32)}, s0)
        _, s = jax.jit(tx.update)({"a": jnp.array([1.0, -2.0, 3.0], jnp.float32)}, s)
        assert jax.tree.map(lambda x: x.dtype, s) == jax.tree.map(lambda x: x.dtype, s0)
        assert s.mu["a"].dtype == jnp.bfloat16 if hasattr(s, "mu") else s.m1["a"].dtype == jnp.bfloat16


# ----- one trace, vmap ----------------------------------------------------------------------

# Each optimizer with every numeric hyperparameter at a non-default value (schedules included).
SWEEPABLE = {
    "adopt": lambda f: adopt(0.05 * f, b1=0.8 * f, b2=0.99 * f, eps=1e-6 * f, clip_value_fn=PowerOfCount(0.25 * f)),
    "adopt_nesterov_noclip": lambda f: adopt(0.05 * f, b1=0.8 * f, nesterov=True, use_clipping=False),
    "ademamix": lambda f: ademamix(0.05 * f, b1=0.8 * f, b2=0.99 * f, b3=gx.linear_schedule(0.5 * f, 0.99 * f, 10 * f),
                                   alpha=gx.linear_schedule(0.1 * f, 5.0 * f, 10 * f), eps=1e-8 * f,
                                   eps_root=1e-9 * f, weight_decay=0.01 * f),
    "simplified_ademamix": lambda f: simplified_ademamix(0.01 * f, b1=0.9 * f, b2=0.95 * f, alpha=2.0 * f,
                                                         eps=1e-8 * f, eps_root=1e-9 * f, weight_decay=0.01 * f),
    "madgrad": lambda f: madgrad(0.05 * f, momentum=0.9 * f, weight_decay=0.01 * f, eps=1e-6 * f),
    "acprop": lambda f: acprop(0.05 * f, b1=0.9 * f, b2=0.99 * f, eps=1e-8 * f, eps_root=1e-9 * f,
                               weight_decay=0.01 * f),
}

_P = {"w": jnp.array([[0.5, -1.0], [2.0, 0.3]], jnp.float32), "b": jnp.array([0.1, -0.4, 0.7], jnp.float32)}


def _loss(p):
    return jnp.sum((p["w"] - 1.0) ** 2) + 0.5 * jnp.sum((p["b"] + 0.5) ** 2 * jnp.arange(1, 4))


def _train(opt, params, steps=8):
    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(_loss)(p), s, p)
        return (gx.apply_updates(p, u), s), _loss(p)

    return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)


@pytest.mark.parametrize("name", list(SWEEPABLE))
def test_one_trace_for_every_hyperparameter_and_vmap_equals_separate_runs(name):
    make = SWEEPABLE[name]
    traces = 0

    @jax.jit
    def run(opt):
        nonlocal traces
        traces += 1
        return _train(opt, _P)

    factors = jnp.array([1.0, 0.9, 0.95], jnp.float32)
    opts = [make(f) for f in factors]
    base = jax.tree.leaves(opts[0])
    for other in opts[1:]:  # every nonzero float leaf differs between the three: a sweep over all of them
        assert name.endswith("noclip") or all(
            float(a) != float(b) for a, b in zip(base, jax.tree.leaves(other))
            if float(a) != 0.0 and jnp.issubdtype(a.dtype, jnp.floating))
    singles = [run(o) for o in opts]
    assert traces == 1
    (p_batched, _), losses = jax.jit(jax.vmap(lambda f: _train(make(f), _P)))(factors)
    for i, ((p, _), ls) in enumerate(singles):
        np.testing.assert_allclose(losses[i], ls, rtol=2e-6, atol=1e-7)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-6, atol=1e-7), p_batched, p)
        assert float(ls[-1]) < float(ls[0]), (name, i, ls)


# ----- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, owner, arg, message",
    [
        (lambda: scale_by_adopt(b1=1.0), "scale_by_adopt", "b1", "in [0, 1)"),
        (lambda: scale_by_adopt(b2=-0.1), "scale_by_adopt", "b2", "in [0, 1)"),
        (lambda: scale_by_adopt(eps=0.0), "scale_by_adopt", "eps", "> 0"),
        (lambda: scale_by_adopt(clip_value_fn=-1.0), "scale_by_adopt", "clip_value_fn", ">= 0"),
        (lambda: PowerOfCount(float("nan")), "PowerOfCount", "power", "a finite real number"),
        (lambda: adopt(-0.1), "adopt", "learning_rate", ">= 0"),
        (lambda: adopt(0.1, b2=1.0), "adopt", "b2", "in [0, 1)"),
        (lambda: scale_by_ademamix(b3=1.0), "scale_by_ademamix", "b3", "in [0, 1)"),
        (lambda: scale_by_ademamix(alpha=-1.0), "scale_by_ademamix", "alpha", ">= 0"),
        (lambda: scale_by_ademamix(eps=0.0, eps_root=0.0), "scale_by_ademamix", "eps", "cannot both be 0"),
        (lambda: ademamix(0.1, b1=1.5), "ademamix", "b1", "in [0, 1)"),
        (lambda: ademamix(0.1, weight_decay=-0.1), "ademamix", "weight_decay", ">= 0"),
        (lambda: ademamix(0.1, eps_root=-1.0), "ademamix", "eps_root", ">= 0"),
        (lambda: scale_by_simplified_ademamix(b1=1.0), "scale_by_simplified_ademamix", "b1", "in [0, 1)"),
        (lambda: simplified_ademamix(0.1, alpha=-2.0), "simplified_ademamix", "alpha", ">= 0"),
        (lambda: simplified_ademamix(-1.0), "simplified_ademamix", "learning_rate", ">= 0"),
        (lambda: scale_by_madgrad(-0.1), "scale_by_madgrad", "learning_rate", ">= 0"),
        (lambda: scale_by_madgrad(0.1, momentum=1.0), "scale_by_madgrad", "momentum", "in [0, 1)"),
        (lambda: madgrad(0.1, eps=0.0), "madgrad", "eps", "> 0"),
        (lambda: madgrad(0.1, weight_decay=-1.0), "madgrad", "weight_decay", ">= 0"),
        (lambda: scale_by_acprop(b2=1.0), "scale_by_acprop", "b2", "in [0, 1)"),
        (lambda: scale_by_acprop(eps=0.0, eps_root=0.0), "scale_by_acprop", "eps", "cannot both be 0"),
        (lambda: acprop(0.1, b1=-0.5), "acprop", "b1", "in [0, 1)"),
    ],
)
def test_bad_input_names_the_argument_and_range(make, owner, arg, message):
    with pytest.raises(ValueError) as e:
        make()
    text = str(e.value)
    assert text.startswith(f"gx.{owner}:") and f"`{arg}`" in text and message in text, text


# ----- overflow -----------------------------------------------------------------------------

HUGE = jnp.array([1e25, -1e25, 3e30, -2e20], jnp.float32)  # |g|^2 > 3.4e38: overflows float32


@pytest.mark.parametrize("name", ["adopt", "adopt_noclip", "ademamix", "simplified_ademamix", "acprop"])
def test_overflowing_square_gives_finite_steps_against_g(name):
    """Where |g|^2 overflows float32: finite updates against g, a finite state, steps of at most ~lr.

    AdEMAMix, simplified AdEMAMix and ACProp divide with adam_direction: the stored second
    moment saturates and the step is the unit step along the numerator. ADOPT's own division
    is guarded the same way (its first step is 0 by design). optax's steps there are 0."""
    opt = {"adopt": adopt(0.1), "adopt_noclip": adopt(0.1, use_clipping=False), "ademamix": ademamix(0.1, b3=0.9),
           "simplified_ademamix": simplified_ademamix(0.1), "acprop": acprop(0.1)}[name]
    params = jnp.zeros_like(HUGE)
    state = opt.init(params)
    step = jax.jit(opt.update)
    for t in range(1, 7):
        u, state = step(HUGE, state, params)
        u = np.asarray(u)
        assert u.dtype == np.float32 and np.isfinite(u).all(), (name, t, u)
        assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state)), (name, t, state)
        if name.startswith("adopt") and t == 1:
            np.testing.assert_array_equal(u, 0.0)  # ADOPT's first step only measures v
            continue
        if name == "acprop" and t == 1:
            np.testing.assert_array_equal(u, -0.1 * HUGE)  # ACProp's first step is -lr g
            continue
        np.testing.assert_array_equal(np.sign(u), -np.sign(HUGE), err_msg=f"{name}, step {t}")
        assert np.abs(u).max() <= 0.1 * (1 + 1e-6), (name, t, u)


def test_madgrad_overflow_is_optax_and_finite():
    """MADGRAD's cube root is not Adam's division: where lambda g^2 overflows, G is inf (as in
    optax) and z = x0, so the step is finite and returns the coordinate to x0 (documented)."""
    opt = madgrad(0.1)
    x0 = jnp.ones(4, jnp.float32)
    state = opt.init(x0)
    p = x0 + 0.5
    u, state = jax.jit(opt.update)(HUGE, state, p)
    assert np.isfinite(np.asarray(u)).all()
    np.testing.assert_allclose(p + u, 0.1 * x0 + 0.9 * p, rtol=1e-6)  # (1 - mu) x0 + mu x
    theirs = C.madgrad(0.1)
    u_o, _ = theirs.update(HUGE, theirs.init(x0), p)
    np.testing.assert_array_equal(u, u_o)


@pytest.mark.parametrize("name", list(SWEEPABLE))
def test_state_can_be_donated_while_params_are_in_use(name):
    """Every state leaf is its own buffer: AdEMAMix's three moments are three zeros, and
    MADGRAD's x0 a copy of the params (optax's is the params' own buffer, so donating its
    state while passing the params fails: "Attempt to use a buffer that was previously donated")."""
    opt = SWEEPABLE[name](1.0)
    step = jax.jit(lambda o, g, s, p: o.update(g, s, p), donate_argnums=(2,))
    params = jax.tree.map(jnp.array, _P)
    state = opt.init(params)
    for _ in range(2):
        u, state = step(opt, jax.grad(_loss)(params), state, params)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((u, state)))
