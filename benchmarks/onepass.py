"""Can XLA write Adam's params, mu and nu in one pass, as torch's fused CPU kernel does?

An Adam step must read g, p, m, v and write p, m, v: 7 streams of N floats
if done in one pass. XLA:CPU emits one loop per output array (it does not
fuse sibling outputs of the same shape into one multi-output loop), so the
per-array form (optax's and gradtx's) is three loops that re-read g, m and v.
This module times the same Adam arithmetic on four memory layouts:

* ``separate``: p, m, v as three arrays (the form every optimizer uses);
* ``stacked [3,N]``: one buffer, rows p, m, v: one loop, but it walks the
  rows one after another, so it is still three passes;
* ``interleaved [N,3]``: one buffer, the three values of a coordinate
  adjacent: one loop and one pass over memory;
* ``p + interleaved [N,2]``: params separate (the model needs them
  contiguous), the moments interleaved;

plus ``interleaved, not donated`` (the same loop writing a fresh buffer:
no copy-back, but a new allocation each step), ``interleaved + view``: the interleaved step followed by the strided
copy of the params a model needs (``x[:, 0]``), the price of that layout in a
real training loop, and gradtx's own ``gx.adam``. The arithmetic is Adam's
(bias-corrected, eps outside the root) in float32; no guard, no schedule.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

import gradtx as gx

from _timing import Stepper, loops, trial_medians

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def adam_math(p, m, v, g, t):
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    step = LR * (m / (1 - B1**t)) / (jnp.sqrt(v / (1 - B2**t)) + EPS)
    return p - step, m, v


@functools.partial(jax.jit, donate_argnums=0)
def separate(c, g):
    p, m, v, t = c
    t = t + 1
    return (*adam_math(p, m, v, g, t.astype(jnp.float32)), t)


@functools.partial(jax.jit, donate_argnums=0)
def stacked(c, g):
    x, t = c
    t = t + 1
    return jnp.stack(adam_math(x[0], x[1], x[2], g, t.astype(jnp.float32))), t


@functools.partial(jax.jit, donate_argnums=0)
def interleaved(c, g):
    x, t = c
    t = t + 1
    return jnp.stack(adam_math(x[:, 0], x[:, 1], x[:, 2], g, t.astype(jnp.float32)), axis=1), t


interleaved_not_donated = jax.jit(interleaved.__wrapped__)


@functools.partial(jax.jit, donate_argnums=0)
def interleaved_view(c, g):
    x, _, t = c
    x, t = interleaved.__wrapped__((x, t), g)
    return x, x[:, 0], t  # the params the model reads next, contiguous


@functools.partial(jax.jit, donate_argnums=0)
def params_and_moments(c, g):
    p, x, t = c
    t = t + 1
    p, m, v = adam_math(p, x[:, 0], x[:, 1], g, t.astype(jnp.float32))
    return p, jnp.stack([m, v], axis=1), t


@functools.partial(jax.jit, donate_argnums=(1, 2))
def gx_adam(opt, p, s, g):
    u, s = opt.update(g, s, p)
    return gx.apply_updates(p, u), s


def run(sizes, rounds: int, trials: int = 1) -> list[dict]:
    rows = []
    for n in sizes:
        g = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
        z = lambda *shape: jnp.zeros(shape, jnp.float32)  # noqa: E731
        t0 = lambda: jnp.zeros([], jnp.int32)  # noqa: E731  (fresh: steps donate it)
        opt = gx.adam(LR)
        cases = {
            "separate (3 arrays)": (separate, lambda: (z(n), z(n), z(n), t0())),
            "stacked [3,N]": (stacked, lambda: (z(3, n), t0())),
            "interleaved [N,3]": (interleaved, lambda: (z(n, 3), t0())),
            "interleaved, not donated": (interleaved_not_donated, lambda: (z(n, 3), t0())),
            "interleaved + view": (interleaved_view, lambda: (z(n, 3), z(n), t0())),
            "p + interleaved [N,2]": (params_and_moments, lambda: (z(n), z(n, 2), t0())),
        }

        def make():
            out = [Stepper(k, lambda c, f=f: f(c, g), init()) for k, (f, init) in cases.items()]
            p = z(n)
            return out + [Stepper("gx.adam", lambda c: gx_adam(opt, c[0], c[1], g), (p, opt.init(p)))]

        med = trial_medians(make, trials, rounds, max(1, min(200, int(2e7 // n))))
        n_loops = {k: loops(f, init(), g) for k, (f, init) in cases.items()}
        n_loops["gx.adam"] = loops(gx_adam, opt, z(n), opt.init(z(n)), g)
        rows.append({"n": n, "seconds": med, "loops": n_loops})
    return rows
