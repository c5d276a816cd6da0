"""Step time of Adam, SGD-momentum and clip+AdamW: gradtx vs optax vs the memory roofline.

An optimizer step on N parameters is memory-bound: its floor is the time to
stream the bytes it must move once. Each workload is compared with two jitted,
donated elementwise kernels that move exactly its bytes:

* ``roofline``: params and state stacked in one ``[k, N]`` buffer, updated in a
  single loop (reads ``(k+1)N``, writes ``kN`` elements; clip adds one more read
  of the gradient for its norm): the one-pass floor;
* ``kernel-k``: the same arithmetic on ``k`` separate arrays, which XLA emits
  as ``k`` loops (what any per-array optimizer, optax's or ours, can reach).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import gradtx as gx

from _timing import Stepper, interleaved_medians


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


@functools.partial(jax.jit, donate_argnums=(1, 2))
def gx_step(opt, p, s, g):
    u, s = opt.update(g, s, p)
    return gx.apply_updates(p, u), s


def optax_stepper(name, opt, p, g):
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    return Stepper(name, lambda c: step(*c), (p, opt.init(p)))


def roofline_stepper(k: int, extra_reads: int, n: int, g):
    @functools.partial(jax.jit, donate_argnums=0)
    def step(x):
        scale = jax.lax.rsqrt(jnp.sum(g * g) + 1.0) if extra_reads else 1e-3
        return x * 0.999 + (g * scale)[None]

    return Stepper("roofline", step, jnp.zeros((k, n), jnp.float32))


def separate_stepper(k: int, extra_reads: int, n: int, g):
    @functools.partial(jax.jit, donate_argnums=0)
    def step(xs):
        scale = jax.lax.rsqrt(jnp.sum(g * g) + 1.0) if extra_reads else 1e-3
        return tuple(x * 0.999 + g * scale for x in xs)

    return Stepper(f"kernel-{k}", step, tuple(jnp.zeros(n, jnp.float32) for _ in range(k)))


def run(sizes, rounds: int, names=None) -> list[dict]:
    rows = []
    key = jax.random.key(0)
    for n in sizes:
        g = jax.random.normal(key, (n,), jnp.float32)
        inner = max(1, min(200, int(2e6 // n)))
        for name, (gopt, oopt, k, extra) in workloads().items():
            if names and name not in names:
                continue
            p0 = jnp.zeros(n, jnp.float32)
            steppers = [
                Stepper("gradtx", lambda c, o=gopt: gx_step(o, c[0], c[1], g), (p0, gopt.init(p0))),
                optax_stepper("optax", oopt, jnp.zeros(n, jnp.float32), g),
                roofline_stepper(k, extra, n, g),
                separate_stepper(k, extra, n, g),
            ]
            med = interleaved_medians(steppers, rounds, inner)
            rows.append({"workload": name, "n": n, "k": k, **{s: med[s] for s in med}})
            del steppers
    return rows
