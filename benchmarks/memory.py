"""Peak memory of a donated Adam step: float32 vs bfloat16 moments.

XLA's buffer assignment for the compiled step gives the peak exactly:
arguments + outputs + temporaries - outputs aliased to donated arguments.
The same is reported for optax (``mu_dtype`` only; optax has no ``nu_dtype``)
and for the step without donation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import gradtx as gx


def _peak(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _gx(opt, n, donate=True):
    p = jax.ShapeDtypeStruct((n,), jnp.float32)
    s = jax.eval_shape(opt.init, p)

    def step(opt, p, s, g):
        u, s = opt.update(g, s, p)
        return gx.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(1, 2) if donate else ()).lower(opt, p, s, p).compile()


def _optax(opt, n):
    p = jax.ShapeDtypeStruct((n,), jnp.float32)
    s = jax.eval_shape(opt.init, p)

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.jit(step, donate_argnums=(0, 1)).lower(p, s, p).compile()


def run(n: int) -> dict:
    bf16 = jnp.bfloat16
    out = {
        "n": n,
        "gradtx f32 moments": _peak(_gx(gx.adam(1e-3), n)),
        "gradtx bf16 moments": _peak(_gx(gx.adam(1e-3, mu_dtype=bf16, nu_dtype=bf16), n)),
        "gradtx bf16 mu only": _peak(_gx(gx.adam(1e-3, mu_dtype=bf16), n)),
        "gradtx f32, not donated": _peak(_gx(gx.adam(1e-3), n, donate=False)),
        "optax f32 moments": _peak(_optax(optax.adam(1e-3), n)),
        "optax bf16 mu": _peak(_optax(optax.adam(1e-3, mu_dtype=bf16), n)),
    }
    # run it once for real: the bf16-moment step works and keeps its dtypes
    opt = gx.adam(1e-3, mu_dtype=bf16, nu_dtype=bf16)
    p = jnp.zeros(min(n, 1 << 20), jnp.float32)
    _, s = functools.partial(jax.jit(lambda o, p, s, g: o.update(g, s, p)), opt)(p, opt.init(p), p + 1)
    assert s[0].mu.dtype == bf16 and s[0].nu.dtype == bf16
    return out
