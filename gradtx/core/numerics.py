"""Scalar numerics shared by all transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["abs_sq", "as_int32", "is_weak", "safe_increment", "sum_of_squares", "weakly_typed", "zero_count"]

try:  # weak typing is what Python scalars get; JAX exposes no public way to ask for it
    from jax._src.lax.lax import _convert_element_type
except ImportError:  # pragma: no cover - a future JAX; values then stay strongly typed
    _convert_element_type = None


def abs_sq(x: jax.Array) -> jax.Array:
    r"""$|x|^2$, real for complex ``x`` (:math:`\bar{x} x`)."""
    x = jnp.asarray(x)
    if jnp.iscomplexobj(x):
        return jnp.square(x.real) + jnp.square(x.imag)
    return jnp.square(x)


def sum_of_squares(x: jax.Array) -> jax.Array:
    r"""$\sum_i |x_i|^2$ over every element, in the dtype ``jnp.sum(abs_sq(x))`` gives.

    For real floating arrays this is one ``dot(x, x)`` (accumulating in at
    least float32, at full precision); complex and integer arrays take the
    square-and-sum path. It was written as a dot after a measurement of the
    reduce loop at 2.4x the dot's time (1e8 elements) that does not reproduce:
    with jax 0.10.2 both forms compile to the same YNNPACK reduction (15-20 ms
    at 1e8 float32 on 2 cores, alone or inside clip+AdamW's step), so the dot
    is no faster, and no slower.
    """
    x = jnp.asarray(x)
    dtype = x.dtype
    if x.ndim == 0 or not jnp.issubdtype(dtype, jnp.floating):
        return jnp.sum(abs_sq(x))
    flat = x.reshape(-1)
    acc = jnp.promote_types(dtype, jnp.float32)
    out = jax.lax.dot_general(flat, flat, (((0,), (0,)), ((), ())),
                              precision=jax.lax.Precision.HIGHEST, preferred_element_type=acc)
    return out.astype(dtype)


def is_weak(x) -> bool:
    """Whether ``x`` is weakly typed (a Python number, or an array JAX marks weak)."""
    if isinstance(x, (bool, int, float, complex)):
        return True
    try:
        return bool(jax.typeof(x).weak_type)
    except TypeError:
        return False


def weakly_typed(x: jax.Array) -> jax.Array:
    """A floating array ``x`` marked weakly typed: in arithmetic it takes the other operand's dtype.

    That is how JAX treats a Python float: ``0.1 * x`` keeps ``x``'s float32,
    bfloat16 or float64. Weakly typed, a hyperparameter never changes the
    precision the updates are computed in, however it was given (a Python
    number, a float64 array, a traced value in a sweep). Integer, complex and
    already weak arrays are returned unchanged.
    """
    if _convert_element_type is None or not jnp.issubdtype(x.dtype, jnp.floating) or is_weak(x):
        return x
    return _convert_element_type(x, weak_type=True)


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
