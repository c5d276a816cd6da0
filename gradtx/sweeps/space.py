r"""Search spaces: which hyperparameters a sweep varies, and how.

A :class:`Space` is a deferred call of an optimizer (or schedule) factory in
which some arguments are *dimensions*:

* :func:`grid` / a plain list: deterministic values. Grid dimensions combine as
  a Cartesian product.
* :func:`uniform`, :func:`log_uniform`, :func:`choice`: random, drawn per run
  from a PRNG key. :func:`log_uniform` is the lecture's "pick $r \in [a, b]$
  uniformly and use $10^r$".

Spaces nest, so schedule parameters are swept like any other number::

    >>> import jax, gradtx as gx
    >>> space = gx.Space(gx.adam, learning_rate=gx.Space(
    ...     gx.warmup_cosine_decay_schedule, init_value=0.0,
    ...     peak_value=gx.log_uniform(1e-4, 1e-1), warmup_steps=10, decay_steps=100))
    >>> values = space.sample(jax.random.key(0), num=8)
    >>> sorted(values)
    ['learning_rate.peak_value']
    >>> batched = space.batched(values)   # one optimizer pytree, leaves of shape (8,)

Because gradtx optimizers are pytrees whose numbers are leaves, building the
optimizer from traced values inside ``jax.vmap`` is all a sweep needs: one
program for every configuration.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Dimension", "Space", "grid", "uniform", "log_uniform", "choice"]


class Dimension:
    """One swept hyperparameter. Subclasses are :func:`grid`, :func:`uniform`,
    :func:`log_uniform` and :func:`choice`."""

    #: Deterministic dimensions enumerate ``values``; random ones are sampled.
    deterministic: bool = False
    #: Perturbations in population-based training multiply continuous values.
    continuous: bool = True

    @property
    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value this dimension can produce."""
        raise NotImplementedError

    @property
    def is_integer(self) -> bool:
        return False

    def sample(self, key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
        """Draws values of ``shape``."""
        raise NotImplementedError

    def _key(self) -> tuple:
        return (type(self).__name__,) + tuple(sorted(vars(self).items()))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _number(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}.") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return out


class _Values(Dimension):
    def __init__(self, values: Sequence[Any], what: str):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"{what} needs a non-empty list of numbers, got {values!r}.")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(
                    f"{what} values must be numbers (booleans and other structural options "
                    f"change the program: compare them as separate families), got {v!r}."
                )
        self.values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)

    @property
    def is_integer(self) -> bool:
        return all(isinstance(v, int) for v in self.values)

    @property
    def continuous(self) -> bool:  # type: ignore[override]
        return not self.is_integer

    @property
    def bounds(self) -> tuple[float, float]:
        return float(min(self.values)), float(max(self.values))

    def _array(self, dtype: Any) -> jax.Array:
        return jnp.asarray(self.values, jnp.int32 if self.is_integer else dtype)


class _Grid(_Values):
    deterministic = True

    def __init__(self, values: Sequence[Any]):
        super().__init__(values, "grid")

    def sample(self, key, shape, dtype):  # resampling, as population-based training does
        i = jax.random.randint(key, shape, 0, len(self.values))
        return self._array(dtype)[i]

    def __repr__(self) -> str:
        return f"grid({list(self.values)})"


class _Choice(_Values):
    def __init__(self, values: Sequence[Any]):
        super().__init__(values, "choice")

    sample = _Grid.sample

    def __repr__(self) -> str:
        return f"choice({list(self.values)})"


class _Uniform(Dimension):
    def __init__(self, low: Any, high: Any, log: bool):
        name = "log_uniform" if log else "uniform"
        self.low, self.high, self.log = _number(f"{name}: low", low), _number(f"{name}: high", high), log
        if not self.low <= self.high:
            raise ValueError(f"{name}: low must be <= high, got low={low!r}, high={high!r}.")
        if log and not self.low > 0:
            raise ValueError(f"log_uniform: low must be > 0, got {low!r}; use uniform for ranges that reach 0.")

    @property
    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def sample(self, key, shape, dtype):
        if self.log:
            r = jax.random.uniform(key, shape, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32,
                                   math.log10(self.low), math.log10(self.high))
            return (10.0**r).astype(dtype)
        return jax.random.uniform(key, shape, dtype, self.low, self.high)

    def __repr__(self) -> str:
        return f"{'log_uniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"


class _Slot(Dimension):
    """A dimension without its values, in :meth:`Space.structure`: its kind and integer-ness only.

    Two slots are equal when their kinds are, so a compiled sweep, which
    receives the values as arrays, is reused for any values of that kind.
    """

    def __init__(self, dim: Dimension):
        self.kind = dim.kind if isinstance(dim, _Slot) else repr(dim).split("(")[0]  # grid, log_uniform, ...
        self.integer = dim.is_integer
        self.deterministic = dim.deterministic
        self.continuous = dim.continuous

    @property
    def is_integer(self) -> bool:
        return self.integer

    def _no_values(self) -> TypeError:
        return TypeError(f"{self!r} has no values: it is part of Space.structure(); sample from the Space itself.")

    @property
    def values(self) -> tuple:
        raise self._no_values()

    @property
    def bounds(self) -> tuple[float, float]:
        raise self._no_values()

    def sample(self, key, shape, dtype):
        raise self._no_values()

    def __repr__(self) -> str:
        return f"<{self.kind}{' (int)' if self.integer else ''}>"


def grid(values_or_low: Any, high: Any = None, num: int | None = None, *, log: bool = False) -> Dimension:
    """A deterministic dimension: ``grid([a, b, c])`` or ``grid(low, high, num, log=...)``.

    ``grid(1e-4, 1e-1, 4, log=True)`` is ``[1e-4, 1e-3, 1e-2, 1e-1]``. A plain
    list given to :class:`Space` means the same as ``grid(list)``. Integer
    values stay integers (step counts, for example).
    """
    if high is None and num is None:
        return _Grid(values_or_low)
    if num is None or high is None or int(num) < 1:
        raise ValueError("grid(low, high, num): give low, high and num >= 1, or a list of values.")
    lo, hi = _number("grid: low", values_or_low), _number("grid: high", high)
    if log:
        if not (lo > 0 and hi > 0):
            raise ValueError(f"grid(..., log=True) needs low, high > 0, got {lo!r}, {hi!r}.")
        vals = np.geomspace(lo, hi, int(num))
    else:
        vals = np.linspace(lo, hi, int(num))
    return _Grid([float(v) for v in vals])


def uniform(low: float, high: float) -> Dimension:
    """A random dimension, uniform on ``[low, high]``."""
    return _Uniform(low, high, log=False)


def log_uniform(low: float, high: float) -> Dimension:
    r"""A random dimension, $10^r$ with $r$ uniform on $[\log_{10} low, \log_{10} high]$.

    Use it for scale parameters (learning rates, eps, weight decay): each decade
    gets the same number of samples.
    """
    return _Uniform(low, high, log=True)


def choice(values: Sequence[Any]) -> Dimension:
    """A random dimension: one of ``values``, uniformly, per run."""
    return _Choice(values)


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return ("<unhashable>", id(value))


class Space:
    """A deferred call ``fn(**kwargs)`` whose arguments may be dimensions.

    Args:
      fn: an optimizer, transformation or schedule factory (``gx.adam``,
        ``gx.warmup_cosine_decay_schedule``, …) or any function returning one.
      **kwargs: fixed arguments, dimensions (:func:`grid`, :func:`uniform`,
        :func:`log_uniform`, :func:`choice`; a list means :func:`grid`), or
        nested :class:`Space` objects (for schedule arguments).

    Dimension names are the argument paths: ``"learning_rate"``,
    ``"learning_rate.peak_value"``.
    """

    def __init__(self, fn: Callable[..., Any], /, **kwargs: Any):
        if not callable(fn):
            raise TypeError(f"Space: fn must be a factory such as gx.adam, got {fn!r}.")
        self.fn = fn
        self.kwargs = {k: (_Grid(v) if isinstance(v, list) and _numeric_list(v) else v)
                       for k, v in kwargs.items()}
        if not self.dims:
            raise ValueError(
                f"Space({getattr(fn, '__name__', fn)}, ...) has no dimension: give at least one "
                "argument as gx.grid/gx.uniform/gx.log_uniform/gx.choice or a list of values."
            )

    # -- structure ---------------------------------------------------------
    def _items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for k, v in self.kwargs.items():
            if isinstance(v, Space):
                yield from v._items(f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    @property
    def dims(self) -> dict[str, Dimension]:
        """The swept dimensions, by path."""
        return {k: v for k, v in self._items() if isinstance(v, Dimension)}

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def _key(self) -> tuple:
        return (self.fn, tuple((k, _hashable(v)) for k, v in self.kwargs.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"Space({self.name}, {args})"

    def structure(self) -> Space:
        """This space with each dimension's values dropped: what a compiled sweep depends on.

        The factory, the fixed arguments, and each dimension's path, kind
        (grid, choice, uniform, log-uniform) and integer-ness are kept; grid
        and choice values and random bounds are not (they reach the program
        as the ``(N,)`` value arrays). ``a.structure() == b.structure()`` for
        ``Space(gx.sgd, learning_rate=[0.1, 0.2])`` and ``[0.3, 0.4]``, so
        :func:`gradtx.sweep` reuses its compiled program. The result can
        :meth:`build` optimizers but not :meth:`sample` values.
        """
        out = object.__new__(Space)
        out.fn = self.fn
        out.kwargs = {
            k: v.structure() if isinstance(v, Space) else _Slot(v) if isinstance(v, Dimension) else v
            for k, v in self.kwargs.items()
        }
        return out

    # -- values ------------------------------------------------------------
    def size(self, num: int | None = None) -> int:
        """Number of runs :meth:`sample` returns for ``num``."""
        g = math.prod(len(d.values) for d in self.dims.values() if d.deterministic)
        return g * self._repeats(num)

    def _repeats(self, num: int | None) -> int:
        random = [k for k, d in self.dims.items() if not d.deterministic]
        if not random:
            return 1  # a pure grid: repeating a point would only repeat a run
        if num is None:
            raise ValueError(f"num is required: the space samples {random} at random.")
        if int(num) < 1:
            raise ValueError(f"num must be >= 1, got {num!r}.")
        return int(num)

    def sample(self, key: jax.Array | None = None, num: int | None = None, dtype: Any = None) -> dict[str, jax.Array]:
        """Values for every run: ``{path: array of shape (N,)}``.

        Grid dimensions form a Cartesian product; every grid point is repeated
        ``num`` times with fresh draws of the random dimensions, so
        ``N = prod(grid sizes) * num``. A space without random dimensions
        ignores ``num``: ``N = prod(grid sizes)``.

        Args:
          key: PRNG key for the random dimensions (required if there are any).
          num: random draws per grid point.
          dtype: floating dtype of the values (default: JAX's default float).
        """
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        dims = self.dims
        reps = self._repeats(num)
        grids = [(k, d) for k, d in dims.items() if d.deterministic]
        points = list(itertools.product(*(range(len(d.values)) for _, d in grids)))
        n = len(points) * reps
        out: dict[str, jax.Array] = {}
        for j, (k, d) in enumerate(grids):
            idx = np.repeat(np.asarray([p[j] for p in points], np.int32), reps)
            out[k] = d._array(dtype)[idx]
        if any(not d.deterministic for d in dims.values()):
            if key is None:
                raise ValueError("key is required: the space has random dimensions.")
            for i, (k, d) in enumerate(dims.items()):
                if not d.deterministic:
                    out[k] = d.sample(jax.random.fold_in(key, i), (n,), dtype)
        return {k: out[k] for k in dims}

    def build(self, values: Mapping[str, Any]) -> Any:
        """Calls the factory with ``values`` for the dimensions (scalars or tracers)."""
        return self._build(values, "")

    def _build(self, values: Mapping[str, Any], prefix: str) -> Any:
        kwargs = {}
        for k, v in self.kwargs.items():
            path = prefix + k
            if isinstance(v, Space):
                kwargs[k] = v._build(values, path + ".")
            elif isinstance(v, Dimension):
                if path not in values:
                    raise KeyError(f"no value for the swept hyperparameter {path!r}.")
                kwargs[k] = values[path]
            else:
                kwargs[k] = v
        return self.fn(**kwargs)

    def check(self, values: Mapping[str, Any]) -> None:
        """Builds every configuration eagerly so that the factories validate them.

        Raises:
          ValueError: naming the run, the path and the factory's own message.
        """
        host = {k: np.asarray(v) for k, v in values.items()}
        n = {a.shape for a in host.values()}
        if len(n) != 1 or len(next(iter(n))) != 1:
            raise ValueError(f"values must all have shape (N,), got { {k: a.shape for k, a in host.items()} }.")
        for i in range(next(iter(n))[0]):
            row = {k: a[i].item() for k, a in host.items()}
            try:
                self.build(row)
            except (ValueError, TypeError) as e:
                raise type(e)(f"run {i} of the sweep, {row}: {e}") from None

    def batched(self, values: Mapping[str, Any]) -> Any:
        """The optimizer for all runs at once: a pytree whose leaves have a leading axis N.

        Leaves that are not swept are broadcast (Python floats stay weakly
        typed). ``jax.vmap(step, in_axes=(batched_axes...))`` over it is a sweep.
        """
        self.check(values)
        return jax.vmap(self.build)(dict(values))


def _numeric_list(v: Sequence[Any]) -> bool:
    return len(v) > 0 and all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in v)
