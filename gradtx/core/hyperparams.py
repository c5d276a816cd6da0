"""Hyperparameters: schedules, validation, and evaluation at a step count.

Every numeric hyperparameter of a gradtx object may be

* a Python number (weakly typed: it takes the dtype of the parameters),
* a JAX or NumPy array (e.g. one of a batch of learning rates under ``vmap``),
* a :class:`Schedule` — a pytree whose numbers are leaves, called with the
  step count — or any other callable ``count -> value`` (wrapped in a
  :class:`FunctionSchedule`, whose function is static).

Numbers and arrays are stored as JAX arrays (:func:`as_leaf`), floating ones
weakly typed: a Python ``0.1`` becomes ``Array(0.1, dtype=float32,
weak_type=True)`` (float64 when ``jax_enable_x64`` is on *when the optimizer is
built*). Passing the optimizer to a jitted function then costs no host-to-device
transfer per call, and a hyperparameter never changes the dtype the updates are
computed in (a float32 model stays float32, a bfloat16 model bfloat16).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar, Union

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.module import Check, Module, static
from gradtx.core.numerics import weakly_typed

__all__ = [
    "Schedule",
    "FunctionSchedule",
    "Hyper",
    "as_leaf",
    "as_schedule",
    "coerce_and_check",
    "concrete_value",
    "evaluate",
    "is_scheduled",
    "NONNEGATIVE",
    "POSITIVE",
    "UNIT_INTERVAL",
    "UNIT_CLOSED",
    "ANY_REAL",
    "NONNEGATIVE_INTEGER",
    "POSITIVE_INTEGER",
]


class Schedule(Module):
    """Base class of schedules: pytrees mapping a step count to a value.

    Subclasses implement ``__call__(count)`` with ``jax.numpy`` so that every
    numeric field can be traced: ``jax.vmap`` over a schedule's peak value, or
    a new warmup length, never recompiles.
    """

    def __call__(self, count: jax.Array) -> jax.Array:
        raise NotImplementedError


class FunctionSchedule(Schedule):
    """Wraps a plain callable ``count -> value`` as a schedule.

    The function is a static field: a different function is a different
    structure (and compiles anew); numbers it closes over are baked in. Prefer
    the built-in schedules, whose numbers are leaves.
    """

    gx_name = "FunctionSchedule"
    fn: Callable[[jax.Array], Any] = static()

    def __call__(self, count):
        return self.fn(count)


Hyper = Union[float, jax.Array, Schedule, Callable[[jax.Array], Any]]
T = TypeVar("T", bound=Module)


def as_schedule(value: Any) -> Schedule:
    """Returns a callable ``count -> value`` as a :class:`Schedule`."""
    if isinstance(value, Schedule):
        return value
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        return FunctionSchedule(value)
    raise TypeError(f"expected a schedule (a callable count -> value), got {value!r}.")


def concrete_value(value: Any) -> np.ndarray | None:
    """The value as a NumPy array, or None when it is traced (not checkable)."""
    try:
        return np.asarray(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


def as_leaf(value: Any) -> jax.Array:
    """A number or array as the leaf a module stores: a JAX array, weakly typed if floating.

    Python numbers become 0-d arrays (weakly typed, as JAX treats them in
    arithmetic), NumPy values JAX arrays, and floating JAX arrays (concrete or
    traced) are marked weakly typed (:func:`~gradtx.core.numerics.weakly_typed`).
    Concrete values are made concrete arrays even inside ``jit`` (they are
    constants of the trace, not traced inputs).
    """
    if isinstance(value, jax.core.Tracer):
        return weakly_typed(value)
    with jax.ensure_compile_time_eval():
        return weakly_typed(jnp.asarray(value))


def coerce_and_check(owner: Module, name: str, value: Any, check: Check | None) -> Any:
    """Validates one hyperparameter of ``owner`` and returns the leaf to store.

    Numbers and arrays are returned as :func:`as_leaf` arrays, tuples and lists
    element by element, callables wrapped as schedules.

    Raises:
      TypeError: the value is not a number, an array or a callable.
      ValueError: a concrete value is outside the allowed range.
    """
    if value is None or isinstance(value, Schedule):
        return value
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        return FunctionSchedule(value)
    if isinstance(value, (tuple, list)):
        return type(value)(coerce_and_check(owner, name, v, check) for v in value)
    where = f"gx.{owner.gx_name}" if owner.gx_name else type(owner).__name__
    arr = concrete_value(value)
    if arr is None:  # traced: checked by nothing, by design
        return as_leaf(value)
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{where}: `{name}` must be a number, a JAX array or a schedule, "
            f"got {value!r} of type {type(value).__name__}."
        )
    if check is not None and arr.dtype.kind == "c":
        raise TypeError(f"{where}: `{name}` must be real, got {value!r}.")
    if check is not None and not bool(np.all(check.predicate(arr))):
        shown = value if arr.size == 1 else f"an array containing {arr[~check.predicate(arr)].ravel()[:3]}"
        raise ValueError(
            f"{where}: `{name}` must be {check.description}, got {shown}."
        )
    return as_leaf(value)


def is_scheduled(module: Module) -> bool:
    """Whether any of ``module``'s own hyperparameters is a schedule."""
    return any(isinstance(getattr(module, n), Schedule) for n in module.hyperparameter_names())


def evaluate(module: T, count: jax.Array | None) -> T:
    """A copy of ``module`` with its hyperparameters as this step's values.

    Each scheduled hyperparameter is evaluated at ``count``, the number of
    updates applied so far (0 on the first update), as in optax. All of them
    then pass through one ``jax.lax.optimization_barrier``: XLA computes with
    them as runtime values even where they are compile-time constants (an
    optimizer closed over, or built inside ``jit`` from Python floats), so it
    cannot fold them into rewrites such as ``x / c -> x * (1/c)`` that round
    differently. An optimizer then gives the same numbers whether it is a
    ``jit`` argument, a constant, traced or vmapped (a run in a sweep starts
    as the same run alone). The barrier is on scalars: it costs nothing.
    """
    names = [n for n in module.hyperparameter_names() if getattr(module, n) is not None]
    if not names:
        return module
    scheduled = [n for n in names if isinstance(getattr(module, n), Schedule)]
    if scheduled and count is None:
        raise ValueError(
            f"gx.{module.gx_name}: a scheduled hyperparameter needs a step count in the state; "
            "was the state created by this transform's `init`?"
        )
    values = tuple(getattr(module, n)(count) if n in scheduled else getattr(module, n) for n in names)
    values = jax.lax.optimization_barrier(jax.tree.map(jnp.asarray, values))
    out = object.__new__(type(module))
    out.__dict__.update(module.__dict__)
    for n, v in zip(names, values):
        object.__setattr__(out, n, v)
    type(out)._gx_set_flat(out)
    return out


def _pred(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def predicate(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.asarray(fn(a.real if a.dtype.kind == "c" else a), dtype=bool)

    return predicate


NONNEGATIVE = Check(">= 0", _pred(lambda a: a >= 0))
POSITIVE = Check("> 0", _pred(lambda a: a > 0))
UNIT_INTERVAL = Check("in [0, 1)", _pred(lambda a: (a >= 0) & (a < 1)))
UNIT_CLOSED = Check("in [0, 1]", _pred(lambda a: (a >= 0) & (a <= 1)))
ANY_REAL = Check("a finite real number", _pred(np.isfinite))
# Integer-valued leaves (Python ints, floats or arrays), compared with int32 counters.
NONNEGATIVE_INTEGER = Check("an integer in [0, 2**31)", _pred(lambda a: (a >= 0) & (a < 2**31) & (a == np.floor(a))))
POSITIVE_INTEGER = Check("an integer in [1, 2**31)", _pred(lambda a: (a >= 1) & (a < 2**31) & (a == np.floor(a))))
