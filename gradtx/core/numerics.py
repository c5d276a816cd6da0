"""Scalar numerics shared by all transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["abs_sq", "as_int32", "safe_increment", "zero_count"]


def abs_sq(x: jax.Array) -> jax.Array:
    r"""$|x|^2$, real for complex ``x`` (:math:`\bar{x} x`)."""
    x = jnp.asarray(x)
    if jnp.iscomplexobj(x):
        return jnp.square(x.real) + jnp.square(x.imag)
    return jnp.square(x)


def zero_count() -> jax.Array:
    """The initial step count: an int32 scalar 0."""
    return jnp.zeros([], jnp.int32)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the dtype's maximum instead of wrapping."""
    count = jnp.asarray(count)
    top = jnp.iinfo(count.dtype).max
    return jnp.where(count < top, count + 1, count).astype(count.dtype)


def as_int32(x) -> jax.Array:
    """An integer-valued hyperparameter (Python int, float or traced array) as int32."""
    return jnp.asarray(x).astype(jnp.int32)
