"""Compile time (trace + lower + XLA compile) of an optimizer step on L leaves.

Adam, and a 6-transform chain (clip, clip_by_global_norm, scale_by_adam,
add_decayed_weights, scale_by_schedule(cosine), scale(-1)), on trees of
10/100/500 leaves of 256 parameters, donated; gradtx on the tree and on packed
params; optax on the tree. Every measurement compiles a fresh function, so no
cache can hit; rounds are interleaved and the median reported.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
import optax

import gradtx as gx

from _timing import compile_seconds


def chain6(lib):
    return lib.chain(
        lib.clip(10.0),
        lib.clip_by_global_norm(1.0),
        lib.scale_by_adam(),
        lib.add_decayed_weights(1e-4),
        lib.scale_by_schedule(lib.cosine_decay_schedule(1e-3, 1000)),
        lib.scale(-1.0),
    )


def _gx_fn():
    def step(opt, p, s, g):
        u, s = opt.update(g, s, p)
        return gx.apply_updates(p, u), s

    return step


def _optax_fn(opt):
    def make():
        def step(p, s, g):
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        return step

    return make


def run(leaf_counts, rounds: int, size: int = 256) -> list[dict]:
    rows = []
    for leaves in leaf_counts:
        tree = [jnp.zeros(size, jnp.float32) for _ in range(leaves)]
        packed = gx.pack(tree)
        for name, gopt, oopt in [("adam", gx.adam(1e-3), optax.adam(1e-3)),
                                 ("chain6", chain6(gx), chain6(optax))]:
            cases = {
                "gradtx": (_gx_fn, (gopt, tree, gopt.init(tree), tree), (1, 2)),
                "gradtx packed": (_gx_fn, (gopt, packed, gopt.init(packed), packed), (1, 2)),
                "optax": (_optax_fn(oopt), (tree, oopt.init(tree), tree), (0, 1)),
            }
            times = {k: [] for k in cases}
            for _ in range(rounds):
                for k, (make, args, donate) in cases.items():
                    times[k].append(compile_seconds(make, args, donate))
            rows.append({"workload": name, "leaves": leaves, **{k: statistics.median(v) for k, v in times.items()}})
    return rows
