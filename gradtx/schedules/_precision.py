"""The precision a schedule evaluates in: that of its own values.

Step counts are int32 in optimizer states. Left to JAX's promotion, the
arithmetic would follow the count (``int32 / int`` is a float32 division even
under x64), so a float64 schedule would be computed in float32, and a sweep
(float64 arrays) would differ from the lone run (Python floats). Instead every
schedule converts the count once, at the start of ``__call__``, to the dtype of
its own floating values (:func:`schedule_dtype`), and returns its value in it
(:func:`own_precision`).
"""

from __future__ import annotations

import functools
import textwrap
from typing import Any, Callable, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.numerics import is_weak, weakly_typed

__all__ = ["PRECISION_DOC", "schedule_dtype", "schedule_value", "own_precision", "precision_doc"]

F = TypeVar("F", bound=Callable)

# The one sentence every schedule's docstring carries (see `precision_doc`).
PRECISION_DOC = (
    "Precision: computed in the dtype of the schedule's own floating values,\n"
    "``jnp.result_type(float, *values)`` (Python floats count weakly, integers\n"
    "such as step counts not at all): float64 under x64 for Python floats or\n"
    "float64 arrays, float32 for float32 arrays, whatever the dtype of the\n"
    "integer ``count`` (converted to that dtype once). The value is returned in\n"
    "that dtype, weakly typed like a stored hyperparameter."
)


def _leaf_dtype(leaf: Any) -> np.dtype:
    # `x.dtype`, not `jnp.result_type(x)`: the latter reports a weakly typed
    # float32 array as the default float (float64 under x64).
    dtype = getattr(leaf, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.dtype(jnp.result_type(leaf))


def schedule_dtype(*values: Any) -> np.dtype:
    """The dtype a schedule with these values (pytrees of numbers) computes in.

    ``jnp.result_type(float, *floats)`` over the floating leaves: integer leaves
    do not count, and Python's ``float`` acts weakly, so Python floats alone
    give the default float (float64 under x64). A leaf counts as Python's float
    does when it is weakly typed in the default float dtype (a Python float as
    the modules store it); any other floating leaf counts by its dtype, so a
    float32 value keeps the schedule in float32 even when stored weakly typed.
    """
    default = np.dtype(jnp.result_type(float))
    dtypes = []
    for leaf in jax.tree.leaves(values):
        dtype = _leaf_dtype(leaf)
        if jnp.issubdtype(dtype, jnp.floating):
            dtypes.append(float if dtype == default and is_weak(leaf) else dtype)
    return np.dtype(jnp.result_type(float, *dtypes))


def schedule_value(value: Any, dtype: np.dtype) -> jax.Array:
    """A schedule's value as it returns it: in ``dtype``, weakly typed like a stored hyperparameter."""
    return weakly_typed(jnp.asarray(value).astype(dtype))


def own_precision(call: Callable[[Any, jax.Array], Any]) -> Callable[[Any, jax.Array], jax.Array]:
    """Decorates a schedule's ``__call__``: it sees the count in :func:`schedule_dtype`.

    The count (int32, int64 or traced) is converted to the schedule's dtype once,
    before ``call``; the value ``call`` returns goes through
    :func:`schedule_value` (cast to that dtype, so a constant integer value
    becomes a float, and marked weakly typed as stored hyperparameters are: it
    never changes the dtype of the updates it scales).
    """

    @functools.wraps(call)
    def __call__(self, count: jax.Array) -> jax.Array:
        dtype = schedule_dtype(self)
        return schedule_value(call(self, jnp.asarray(count).astype(dtype)), dtype)

    return __call__


def precision_doc(fn: F) -> F:
    """Replaces ``{precision}`` in ``fn.__doc__`` with :data:`PRECISION_DOC` (indented to match)."""
    doc = fn.__doc__ or ""
    indent = next(
        (line[: len(line) - len(line.lstrip())] for line in doc.splitlines() if "{precision}" in line), ""
    )
    fn.__doc__ = doc.replace("{precision}", textwrap.indent(PRECISION_DOC, indent).lstrip())
    return fn
