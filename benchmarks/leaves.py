"""Many small leaves vs one big leaf: the per-array cost, and what packing removes.

500 leaves of 1,000 parameters against one leaf of 500,000, Adam step, all
donated: gradtx on the tree, gradtx on ``gx.pack``\\ ed params (one buffer, and
the gradient arrives packed, as ``jax.grad`` of a loss of ``packed.unpack()``
gives it), optax on the tree, and optax on ``optax.flatten(adam)`` (which
concatenates and splits every step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import gradtx as gx

from _timing import Stepper, interleaved_medians
from step import gx_step_fn, optax_stepper


def run(leaves: int, per_leaf: int, rounds: int) -> dict:
    n = leaves * per_leaf
    key = jax.random.key(1)
    tree = [jnp.zeros(per_leaf, jnp.float32) for _ in range(leaves)]
    g_tree = [jax.random.normal(k, (per_leaf,), jnp.float32) for k in jax.random.split(key, leaves)]
    g_one = jnp.concatenate(g_tree)
    packed, g_packed = gx.pack(tree), gx.pack(g_tree)
    gopt = gx.adam(1e-3)

    def gx_stepper(name, p, g):
        gx_step = gx_step_fn()
        return Stepper(name, lambda c: gx_step(gopt, c[0], c[1], g), (p, gopt.init(p)))

    steppers = [
        gx_stepper("gradtx 1 leaf", jnp.zeros(n, jnp.float32), g_one),
        gx_stepper(f"gradtx {leaves} leaves", tree, g_tree),
        gx_stepper(f"gradtx packed", packed, g_packed),
        optax_stepper("optax 1 leaf", optax.adam(1e-3), jnp.zeros(n, jnp.float32), g_one),
        optax_stepper(f"optax {leaves} leaves", optax.adam(1e-3), [jnp.zeros_like(x) for x in tree], g_tree),
        optax_stepper("optax.flatten", optax.flatten(optax.adam(1e-3)), [jnp.zeros_like(x) for x in tree], g_tree),
    ]
    inner = max(1, int(2e7 // n))
    return {"leaves": leaves, "per_leaf": per_leaf, **interleaved_medians(steppers, rounds, inner)}
