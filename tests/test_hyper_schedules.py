"""Seed 000's momentum warm-up (0.5 -> 0.99) as a scheduled momentum / Adam b1.

A scheduled hyperparameter is evaluated at ``count`` = updates applied so far
(0 on the first update), as in optax. For Adam, a scheduled b1 is used both in
the EMA and in the bias correction $1 - \\beta_{1,t}^t$ with the *current*
$\\beta_{1,t}$ -- what ``optax.inject_hyperparams(optax.adam)`` does -- not the
exact $1 - \\prod_s \\beta_{1,s}$ of a time-varying EMA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradtx.core.base import apply_updates
from gradtx.optimizers.adam_family import adam
from gradtx.optimizers.classic import sgd
from gradtx.schedules.polynomial import linear_schedule

LAM, W0, LR = 3.0, 2.0, 0.1  # f(w) = 0.5 * LAM * w^2, from w = W0
T = 3  # warm-up steps: beta = 0.5, 0.6633.., 0.8266.., 0.99, 0.99, ...


WARMUP = linear_schedule(0.5, 0.99, T)


def _beta(k):
    # The schedule's own value: float64 (its values' precision) even on the
    # int32 counts of the state; its formula is tested in test_schedules.
    beta = WARMUP(jnp.asarray(k, jnp.int32))
    assert beta.dtype == jnp.float64
    beta = float(beta)
    np.testing.assert_allclose(beta, 0.5 + (0.99 - 0.5) * min(k, T) / T, rtol=1e-15)
    return beta


def _run(opt, steps):
    w = jnp.array([W0], jnp.float64)
    state, ws = opt.init(w), []
    for _ in range(steps):
        u, state = opt.update(LAM * w, state, w)
        w = apply_updates(w, u)
        ws.append(float(w[0]))
    return np.array(ws), state


def test_sgd_momentum_warmup_trajectory():
    ws, state = _run(sgd(LR, momentum=WARMUP), 5)
    w, buf, ref = W0, 0.0, []
    for k in range(5):  # m <- g + beta_k m ; w <- w - lr m
        buf = LAM * w + _beta(k) * buf
        w = w - LR * buf
        ref.append(w)
    np.testing.assert_allclose(ws, ref, rtol=1e-12)
    assert int(state[0].count) == 5
    # The effective momentum per step, read back from the trajectory:
    # w_{k+1} - w_k = beta_k (w_k - w_{k-1}) - lr * LAM * w_k.
    w_all = np.concatenate([[W0], ws])
    for k in range(1, 5):
        beta = (w_all[k + 1] - w_all[k] + LR * LAM * w_all[k]) / (w_all[k] - w_all[k - 1])
        np.testing.assert_allclose(beta, _beta(k), rtol=1e-5)


def _adam_reference(steps, exact_debias=False, b2=0.999, eps=1e-8):
    w, m, v, prod_b1, ref = W0, 0.0, 0.0, 1.0, []
    for k in range(steps):
        b1, t = _beta(k), k + 1
        g = LAM * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        prod_b1 *= b1
        # gradtx and optax: the current b1 raised to t. The exact debiasing of a
        # time-varying EMA started at 0 would be 1 - prod_s b1_s.
        m_hat = m / ((1 - prod_b1) if exact_debias else (1 - b1**t))
        v_hat = v / (1 - b2**t)
        w = w - LR * m_hat / (np.sqrt(v_hat) + eps)
        ref.append(w)
    return np.array(ref)


def test_adam_scheduled_b1_matches_numpy_and_optax_inject_hyperparams():
    ws, state = _run(adam(LR, b1=WARMUP), 5)
    # All in float64 (the params' and the schedule's dtype), as the reference.
    np.testing.assert_allclose(ws, _adam_reference(5), rtol=1e-12)
    assert not np.allclose(ws, _adam_reference(5, exact_debias=True), rtol=1e-2)
    assert int(state[0].count) == 5
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=LR, b1=optax.linear_schedule(0.5, 0.99, T))
    w = jnp.array([W0], jnp.float64)
    s, theirs = opt.init(w), []
    for _ in range(5):
        u, s = opt.update(LAM * w, s, w)
        w = optax.apply_updates(w, u)
        theirs.append(float(w[0]))
    # Same rule; optax's linear_schedule computes b1 in float32 on int32 counts
    # (~1e-7 relative), amplified where w crosses 0 (step 4).
    np.testing.assert_allclose(ws, theirs, rtol=2e-5)


def test_scheduled_momentum_under_jit_and_vmap_over_its_end_value():
    @jax.jit
    def last(opt):
        w = jnp.array([W0], jnp.float64)

        def step(carry, _):
            w, s = carry
            u, s = opt.update(LAM * w, s, w)
            return (apply_updates(w, u), s), None

        return jax.lax.scan(step, (w, opt.init(w)), None, length=5)[0][0]

    ends = jnp.array([0.9, 0.99])
    batched = jax.vmap(lambda e: sgd(LR, momentum=linear_schedule(0.5, e, T)))(ends)
    out = jax.vmap(last)(batched)
    np.testing.assert_allclose(out[1], _run(sgd(LR, momentum=WARMUP), 5)[0][-1:], rtol=1e-6)
    assert not np.allclose(out[0], out[1])
