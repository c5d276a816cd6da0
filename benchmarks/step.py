"""Step time of Adam, SGD-momentum and clip+AdamW: gradtx vs optax vs the memory roofline.

An optimizer step on N parameters is memory-bound: its floor is the time to
stream the bytes it must move once. Each workload is compared with two jitted,
donated elementwise kernels that move exactly its bytes:

* ``roofline``: params and state interleaved in one ``[N, k]`` buffer (the k
  values of a coordinate adjacent), updated in a single loop that reads
  ``(k+1)N`` and writes ``kN`` elements once (clip adds one more read of the
  gradient for its norm): the one-pass floor;
* ``kernel-k``: the same arithmetic on ``k`` separate arrays, which XLA emits
  as ``k`` loops (what any per-array optimizer, optax's or ours, can reach).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import gradtx as gx

from _timing import Stepper, compiled_cost, paired_ratio, trial_medians


def workloads():
    """name -> (gradtx optimizer, optax optimizer, k = arrays written, extra gradient reads)."""
    return {
        "adam": (gx.adam(1e-3), optax.adam(1e-3), 3, 0),
        "sgd_momentum": (gx.sgd(1e-2, momentum=0.9), optax.sgd(1e-2, momentum=0.9), 2, 0),
        "adamw": (gx.adamw(1e-3, weight_decay=1e-4), optax.adamw(1e-3, weight_decay=1e-4), 3, 0),
        "clip+adamw": (
            gx.chain(gx.clip_by_global_norm(1.0), gx.adamw(1e-3, weight_decay=1e-4)),
            optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=1e-4)),
            3,
            1,
        ),
    }


def gx_step_fn():
    """A freshly jitted gradtx step, the optimizer an argument: each trial
    compiles its own, as each trial compiles its own optax step."""
    @functools.partial(jax.jit, donate_argnums=(1, 2))
    def gx_step(opt, p, s, g):
        u, s = opt.update(g, s, p)
        return gx.apply_updates(p, u), s

    return gx_step


def optax_stepper(name, opt, p, g):
    """optax's step, the gradient an argument as in gradtx's (closed over, XLA
    would constant-fold ``(1-b2) g**2`` out of the timed step)."""
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    return Stepper(name, lambda c: step(c[0], c[1], g), (p, opt.init(p)))


def _sum_sq(g):
    return jnp.vdot(g, g)


def roofline_stepper(k: int, extra_reads: int, n: int, g):
    @functools.partial(jax.jit, donate_argnums=0)
    def step(x, g):
        scale = jax.lax.rsqrt(_sum_sq(g) + 1.0) if extra_reads else 1e-3
        return x * 0.999 + (g * scale)[:, None]

    return Stepper("roofline", lambda c: step(c, g), jnp.zeros((n, k), jnp.float32))


def separate_stepper(k: int, extra_reads: int, n: int, g):
    @functools.partial(jax.jit, donate_argnums=0)
    def step(xs, g):
        scale = jax.lax.rsqrt(_sum_sq(g) + 1.0) if extra_reads else 1e-3
        return tuple(x * 0.999 + g * scale for x in xs)

    return Stepper(f"kernel-{k}", lambda c: step(c, g), tuple(jnp.zeros(n, jnp.float32) for _ in range(k)))


def static_costs(gopt, oopt, n: int) -> dict:
    """Compiled-program facts of gradtx's and optax's steps at N params (no
    timing, so no noise): loops, bytes accessed and flops per parameter."""
    p = jax.ShapeDtypeStruct((n,), jnp.float32)

    def optax_step(p, s, g):
        u, s = oopt.update(g, s, p)
        return optax.apply_updates(p, u), s

    gx_cost = compiled_cost(gx_step_fn(), gopt, p, jax.eval_shape(gopt.init, p), p)
    ox_cost = compiled_cost(jax.jit(optax_step, donate_argnums=(0, 1)), p, jax.eval_shape(oopt.init, p), p)
    return {"loops": [gx_cost["loops"], ox_cost["loops"]],
            "bytes gx/optax": gx_cost["bytes"] / ox_cost["bytes"],
            "flops per param": [gx_cost["flops"] / n, ox_cost["flops"] / n]}


def run(sizes, rounds: int, trials: int = 1, names=None) -> list[dict]:
    """One row per (workload, N): median seconds per step of each stepper.

    The clip+AdamW group also times gradtx's plain AdamW (``gradtx adamw``) in
    the same interleaved rounds, so their ratio is measured side by side.
    ``gradtx py-floats`` times the same optimizer with its hyperparameters
    turned back into Python floats (``jax.tree.map(float, opt)``), as gradtx
    stored them before its numbers became device arrays: jit then converts
    each of them to a device array on every call (on 2 cores that work
    competes with XLA's two threads). ``gradtx closed over`` runs gradtx's
    optimizer in optax's harness (hyperparameters baked into the step, as
    optax bakes them): the comparison of the two optimizers' compiled
    arithmetic alone. ``optax again`` is an A/A control: optax's step
    compiled and allocated a second time, so its ratio to ``optax`` shows the
    noise of the measurement. ``trials`` is used at 1e6 and 1e7 parameters
    (the sizes the acceptance ratios are read at); other sizes take half.
    Besides pooled medians, each row has paired ratios (``X/optax paired``:
    the median over rounds of the back-to-back ratio, see
    :func:`_timing.paired_ratio`) and :func:`static_costs`.
    """
    rows = []
    key = jax.random.key(0)
    for n in sizes:
        g = jax.random.normal(key, (n,), jnp.float32)
        inner = max(1, min(200, int(2e7 // n)))  # >= ~10 ms per sample: timer and dispatch jitter vanish
        all_workloads = workloads()
        for name, (gopt, oopt, k, extra) in all_workloads.items():
            if names and name not in names:
                continue

            def make(gopt=gopt, oopt=oopt, k=k, extra=extra, name=name):
                def gx_stepper(label, opt):
                    p0, gx_step = jnp.zeros(n, jnp.float32), gx_step_fn()
                    return Stepper(label, lambda c: gx_step(opt, c[0], c[1], g), (p0, opt.init(p0)))

                steppers = [
                    gx_stepper("gradtx", gopt),
                    optax_stepper("optax", oopt, jnp.zeros(n, jnp.float32), g),
                    # A/A control: optax's step compiled and allocated a second time
                    optax_stepper("optax again", oopt, jnp.zeros(n, jnp.float32), g),
                    roofline_stepper(k, extra, n, g),
                    separate_stepper(k, extra, n, g),
                ]
                if name == "clip+adamw":
                    steppers.append(gx_stepper("gradtx adamw", all_workloads["adamw"][0]))
                # the old storage, Python floats: converted to device arrays on every call
                steppers.append(gx_stepper("gradtx py-floats", jax.tree.map(float, gopt)))
                # optax's harness, hyperparameters closed over: the optimizers' arithmetic alone
                steppers.append(optax_stepper("gradtx closed over", gopt, jnp.zeros(n, jnp.float32), g))
                return steppers

            per_trial: dict[str, list[float]] = {}
            samples: dict[str, list[float]] = {}
            n_trials = trials if 10**6 <= n <= 10**7 else max(1, trials // 2)
            med = trial_medians(make, n_trials, rounds, inner, per_trial, samples)
            ratios = [a / b for a, b in zip(per_trial["gradtx"], per_trial["optax"])]
            control = [a / b for a, b in zip(per_trial["optax again"], per_trial["optax"])]
            paired = {f"{a}/optax paired": paired_ratio(samples, a, "optax") for a in samples if a != "optax"}
            if "gradtx adamw" in samples:
                paired["gradtx/gradtx adamw paired"] = paired_ratio(samples, "gradtx", "gradtx adamw")
            rows.append({"workload": name, "n": n, "k": k, **med, **paired, "trials": len(ratios),
                         **static_costs(gopt, oopt, n),
                         "gx/optax per trial": [min(ratios), max(ratios)],
                         "optax again/optax per trial": [min(control), max(control)]})
    return rows
