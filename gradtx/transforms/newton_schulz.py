"""Newton–Schulz orthogonalisation, Muon's matrix step, and the weight dimension numbers.

:func:`orthogonalize_via_newton_schulz` maps a matrix $X = U S V^\\top$ to
approximately $U V^\\top$ with a few quintic matrix polynomials;
:class:`MuonDimensionNumbers` says which axes of a weight are its matrix's rows
(reduction) and columns (output), the others being a batch of matrices.
:func:`~gradtx.scale_by_muon` and :func:`~gradtx.scale_by_shape` use both.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core import tree as gt
from gradtx.core.module import HashableTree
from gradtx.wrappers.masked import MaskedNode

__all__ = [
    "MuonDimensionNumbers",
    "orthogonalize_via_newton_schulz",
    "DEFAULT_NS_COEFFS",
    "NS_COEFFS_PRESETS",
    "PRECONDITIONINGS",
    "coefficient_array",
    "coefficient_rows",
    "static_dimension_numbers",
    "leaf_dimension_numbers",
    "leaf_specs",
    "check_leaves",
    "fans",
]

PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
DEFAULT_NS_COEFFS = (3.4445, -4.7750, 2.0315)
# Ahn et al.'s per-step table (Dion), as optax.contrib ships it.
_DION_NS_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
NS_COEFFS_PRESETS = {"standard": DEFAULT_NS_COEFFS, "dion": _DION_NS_COEFFS}
# The floor of the AOL row sums and of the Schatten-4 norm in the first step: a constant
# 1e-8 in optax (not `eps`), kept so for parity.
_FIRST_STEP_FLOOR = 1e-8


class MuonDimensionNumbers(NamedTuple):
    r"""Which axes of a weight are its matrix's reduction (row) and output (column) axes.

    Muon orthogonalises the matrix $W$ of a product $y = x W$: its first axis is
    the reduction axis (contracted with $x$), its second the output axis. For a
    weight of any rank, ``reduction_axis`` and ``output_axis`` (an int or a
    sequence of ints each; negative values count from the end) name the axes
    flattened into the rows and the columns of that matrix; every other axis is
    a batch axis, and each matrix of the batch is orthogonalised on its own (by
    ``jax.vmap``). The defaults are a plain 2-D weight's: rows 0, columns 1.

    The fields and defaults of ``optax.contrib.MuonDimensionNumbers`` (gradtx also
    accepts optax's instances). It is static: part of the optimizer's structure.

    Attributes:
      reduction_axis: axis or axes flattened into the rows (default 0).
      output_axis: axis or axes flattened into the columns (default 1).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> conv = jnp.ones((3, 3, 16, 32))  # (height, width, in, out): a batch of 9 matrices
      >>> dims = gx.MuonDimensionNumbers(reduction_axis=2, output_axis=3)
      >>> gx.orthogonalize_via_newton_schulz(conv, "standard", dimension_numbers=dims).shape
      (3, 3, 16, 32)
    """

    reduction_axis: Sequence[int] | int = 0
    output_axis: Sequence[int] | int = 1


_DEFAULT_DIMS = MuonDimensionNumbers()


def is_dimension_numbers(x: Any) -> bool:
    """Whether ``x`` is a :class:`MuonDimensionNumbers` (gradtx's or optax's: duck-typed)."""
    return isinstance(x, tuple) and getattr(x, "_fields", None) == ("reduction_axis", "output_axis")


def _axes(value: Any, where: str, name: str, field: str) -> int | tuple[int, ...]:
    def bad() -> ValueError:
        return ValueError(
            f"{where}: `{name}` has {field}={value!r}; each axis field of MuonDimensionNumbers must "
            "be an int or a non-empty sequence of distinct ints."
        )

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, (tuple, list)) or not value:
        raise bad()
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in value):
        raise bad()
    if len({int(v) for v in value}) != len(value):
        raise bad()
    return tuple(int(v) for v in value)


def _check_dims(dims: Any, where: str, name: str) -> MuonDimensionNumbers:
    """One dimension-numbers value, its axes as ints or tuples (hashable); literal overlaps raise."""
    red = _axes(dims.reduction_axis, where, name, "reduction_axis")
    out = _axes(dims.output_axis, where, name, "output_axis")
    as_set = lambda a: {a} if isinstance(a, int) else set(a)  # noqa: E731
    if as_set(red) & as_set(out):
        raise ValueError(
            f"{where}: `{name}` has overlapping reduction and output axes ({dims!r}); an axis is "
            "either a row axis or a column axis of the matrix."
        )
    return MuonDimensionNumbers(red, out)


def static_dimension_numbers(spec: Any, where: str, name: str) -> Any:
    """Validates a weight-dimension-numbers argument and returns it as a static field value.

    ``None``, a :class:`MuonDimensionNumbers`, a callable ``params -> tree``, or a
    pytree of dimension numbers and ``None`` (wrapped in a :class:`HashableTree`).
    """
    if spec is None or isinstance(spec, HashableTree):
        return spec
    if is_dimension_numbers(spec):
        return _check_dims(spec, where, name)
    if callable(spec):
        return spec

    def one(x):
        if x is None:
            return None
        if is_dimension_numbers(x):
            return _check_dims(x, where, name)
        raise TypeError(
            f"{where}: `{name}` must be None, a gx.MuonDimensionNumbers, a pytree of them (None "
            f"entries allowed) or a function params -> such a pytree; it holds {x!r}."
        )

    return HashableTree(jax.tree.map(one, spec, is_leaf=lambda x: x is None or is_dimension_numbers(x)))


class _Spec:
    """A per-leaf dimension-numbers value as an opaque leaf (a named tuple is a pytree node)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def leaf_specs(spec: Any, tree: Any, where: str, name: str) -> list[MuonDimensionNumbers | None]:
    """The dimension numbers (or None) that ``spec`` gives each leaf of ``tree`` (``jax.tree.leaves`` order).

    ``spec`` is a static value of :func:`static_dimension_numbers`: ``None``
    gives every leaf None; a callable is called on ``tree``; a pytree is a
    prefix of ``tree`` whose masked entries (:class:`~gradtx.MaskedNode`) hold
    no leaves.
    """
    leaves = jax.tree.leaves(tree)
    if callable(spec) and not isinstance(spec, HashableTree) and not is_dimension_numbers(spec):
        spec = static_dimension_numbers(spec(tree), where, name)  # the function's tree, checked
    if isinstance(spec, HashableTree):
        spec = spec.value
    if spec is None or is_dimension_numbers(spec):
        return [spec] * len(leaves)
    is_spec = lambda x: x is None or is_dimension_numbers(x)  # noqa: E731
    wrapped = jax.tree.map(_Spec, spec, is_leaf=is_spec)
    diff = gt.prefix_mismatch(wrapped, tree, f"`{name}`", "the updates tree")
    if diff is not None:
        raise ValueError(
            f"{where}: `{name}` does not match the params/updates tree ({diff}). Give a pytree with "
            "the params' structure (or a prefix of it) of MuonDimensionNumbers and None."
        )
    expanded = jax.tree.map(
        lambda s, sub: jax.tree.map(lambda _: s, sub),  # None params hold no leaf
        wrapped, tree, is_leaf=lambda x: isinstance(x, (_Spec, MaskedNode)),
    )
    return [s.value for s in jax.tree.leaves(expanded, is_leaf=lambda x: isinstance(x, _Spec))]


def leaf_dimension_numbers(spec: Any, tree: Any, where: str, name: str) -> list[MuonDimensionNumbers]:
    """:func:`leaf_specs` with None read as the default ``MuonDimensionNumbers()`` (axes 0 and 1)."""
    return [_DEFAULT_DIMS if s is None else s for s in leaf_specs(spec, tree, where, name)]


def check_leaves(spec: Any, tree: Any, where: str, name: str) -> None:
    """Raises, naming the leaf, unless each leaf of ``tree`` is a matrix (or a batch) under ``spec``."""
    paths = [jax.tree_util.keystr(p) or "<root>" for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    for path, x, d in zip(paths, jax.tree.leaves(tree), leaf_dimension_numbers(spec, tree, where, name)):
        _matrix_axes(jnp.shape(x), d, f"{where}: params leaf {path}", name)


def _matrix_axes(
    shape: tuple, dims: MuonDimensionNumbers, where: str, name: str = "weight_dimension_numbers"
) -> tuple[tuple, tuple, tuple]:
    """(batch, reduction, output) axes of a leaf of ``shape``, normalised and checked."""
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"{where}: Muon orthogonalises matrices; a leaf of shape {shape} (rank {ndim}) needs rank "
            ">= 2. Leave it to another optimizer (gx.muon sends it to AdamW) or give it dimension numbers."
        )

    def norm(axes):
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"{where}: `{name}` {dims!r} names an axis out of range for shape {shape}.")
        return tuple(a % ndim for a in axes)

    red, out = norm(dims.reduction_axis), norm(dims.output_axis)
    if set(red) & set(out) or len(set(red)) != len(red) or len(set(out)) != len(out):
        raise ValueError(
            f"{where}: `{name}` {dims!r} gives overlapping reduction and output axes {red} and {out} "
            f"for shape {shape}."
        )
    batch = tuple(a for a in range(ndim) if a not in red and a not in out)
    return batch, red, out


def fans(shape: tuple, dims: MuonDimensionNumbers, where: str) -> tuple[int, int]:
    """(fan_in, fan_out): the sizes of the reduction and output axes of a leaf of ``shape``."""
    _, red, out = _matrix_axes(shape, dims, where)
    return math.prod(shape[a] for a in red), math.prod(shape[a] for a in out)


def coefficient_array(ns_coeffs: Any, ns_steps: Any, where: str) -> Any:
    """``ns_coeffs`` (a preset name, a triple, a table or an array) as one array; checks its shape.

    A (3,) array is one step's $(a, b, c)$, used ``ns_steps`` times; an (n, 3)
    table gives each step its own row and must have exactly ``ns_steps`` rows.
    """
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, (int, np.integer)) or ns_steps < 1:
        raise ValueError(
            f"{where}: `ns_steps` must be an int >= 1 (the number of Newton-Schulz steps, a loop "
            f"length: static), got {ns_steps!r}."
        )
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS_PRESETS:
            raise ValueError(
                f"{where}: `ns_coeffs` preset {ns_coeffs!r} is unknown; presets are {sorted(NS_COEFFS_PRESETS)}."
            )
        ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
    if callable(ns_coeffs) and not isinstance(ns_coeffs, (jax.Array, np.ndarray)):
        return ns_coeffs  # a schedule: its value is checked at each update
    try:
        arr = jnp.asarray(ns_coeffs)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: `ns_coeffs` must be a preset name, a triple (a, b, c), a table of them or an "
            f"array of shape (3,) or (n, 3); got {ns_coeffs!r} ({e})."
        ) from None
    if not jnp.issubdtype(arr.dtype, jnp.floating) and not jnp.issubdtype(arr.dtype, jnp.complexfloating):
        arr = arr.astype(jnp.result_type(float))
    coefficient_rows(arr, int(ns_steps), where)
    return arr


def coefficient_rows(coeffs: jax.Array, ns_steps: int, where: str) -> list[jax.Array]:
    """One (3,) row of coefficients per Newton-Schulz step; raises on a bad shape."""
    shape = jnp.shape(coeffs)
    if len(shape) not in (1, 2) or shape[-1] != 3:
        raise ValueError(f"{where}: `ns_coeffs` must have shape (3,) or (n, 3), got shape {shape}.")
    if len(shape) == 1:
        return [coeffs] * ns_steps
    if shape[0] != ns_steps:
        raise ValueError(
            f"{where}: `ns_coeffs` is a table of {shape[0]} rows but `ns_steps` is {ns_steps}; a table "
            f"gives one row per step, so pass ns_steps={shape[0]}. (optax.contrib raises for more rows "
            "than ns_steps and silently runs fewer steps for fewer rows.)"
        )
    return [coeffs[i] for i in range(shape[0])]


def _quintic(x: jax.Array, a: jax.Array, c: jax.Array) -> jax.Array:
    """$c_0 X + (c_1 A + c_2 A^2) X$ for $A = X X^H$, grouped as optax groups it."""
    b = c[1] * a + c[2] * a @ a
    return c[0] * x + b @ x


def _gram(x: jax.Array) -> jax.Array:
    return x @ x.T.conj()


def _base_step(x: jax.Array, c: jax.Array) -> jax.Array:
    return _quintic(x, _gram(x), c)


def _aol_step(x: jax.Array, c: jax.Array) -> jax.Array:
    """First step with AOL's row scaling $D^{-1/2}$, $D_{ii} = \\sum_j |A_{ij}|$ (Boissin et al.)."""
    a = _gram(x)
    s = jax.lax.rsqrt(jnp.maximum(jnp.abs(a).sum(axis=-1), _FIRST_STEP_FLOOR))[:, None]
    return _quintic(x * s, a * s * s.T, c)


def _schatten_step(x: jax.Array, c: jax.Array) -> jax.Array:
    """First step scaled by the Schatten-4 norm $\\lVert X\\rVert_{S_4} = \\lVert XX^H\\rVert_F^{1/2}$."""
    a = _gram(x)
    s = jax.lax.rsqrt(jnp.maximum(gt.global_norm(a), _FIRST_STEP_FLOOR))
    return _quintic(x * s, a * s**2, c)


_FIRST_STEPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {"aol": _aol_step, "schatten": _schatten_step}


def _orthogonalize_matrix(x: jax.Array, rows: list, preconditioning: str, eps: Any) -> jax.Array:
    transposed = x.shape[0] > x.shape[1]  # iterate on the wide side: X X^H is the smaller Gram
    if transposed:
        x = x.T
    if preconditioning == "frobenius":
        x = x / (gt.global_norm(x) + eps)
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + eps)
    for i, c in enumerate(rows):
        x = _FIRST_STEPS.get(preconditioning, _base_step)(x, c) if i == 0 else _base_step(x, c)
    return x.T if transposed else x


def orthogonalize_leaf(
    x: jax.Array, dims: MuonDimensionNumbers, rows: list, preconditioning: str, eps: Any, where: str
) -> jax.Array:
    """Newton-Schulz on each matrix of ``x`` (reshaped by ``dims`` to (batch, rows, columns))."""
    shape = jnp.shape(x)
    batch, red, out = _matrix_axes(shape, dims, where)
    if len(shape) == 2:  # as optax: a matrix is a matrix (its dims only matter for the fans)
        batch, red, out = (), (0,), (1,)
    perm = batch + red + out
    size = lambda axes: math.prod(shape[a] for a in axes)  # noqa: E731
    flat = x.transpose(perm).reshape(size(batch), size(red), size(out))
    rows = [c.astype(x.dtype) for c in rows]
    done = jax.vmap(lambda m: _orthogonalize_matrix(m, rows, preconditioning, eps))(flat)
    return done.reshape(tuple(shape[a] for a in perm)).transpose(np.argsort(perm))


def check_preconditioning(preconditioning: Any, where: str) -> None:
    if preconditioning not in PRECONDITIONINGS:
        raise ValueError(
            f"{where}: `preconditioning` must be one of {', '.join(map(repr, PRECONDITIONINGS))}, "
            f"got {preconditioning!r}."
        )


def orthogonalize_via_newton_schulz(
    x: jax.Array,
    ns_coeffs: Any,
    ns_steps: int = 5,
    preconditioning: str = "frobenius",
    eps: Any = 1e-8,
    dimension_numbers: MuonDimensionNumbers | None = None,
) -> jax.Array:
    r"""Orthogonalises a matrix (or a batch of them) by a quintic Newton–Schulz iteration.

    For $X = U S V^H$ (its SVD) the iteration returns approximately $U V^H$, the
    nearest semi-orthogonal matrix, without an SVD. It first scales $X$ so
    that its singular values lie in $(0, 1]$, then applies, ``ns_steps`` times,

    .. math::
        X \leftarrow a X + b (X X^H) X + c (X X^H)^2 X
        \quad(\text{grouped as } aX + (bA + cA^2)X,\ A = X X^H),

    which maps each singular value $s$ to $p(s) = a s + b s^3 + c s^5$ and keeps
    the singular vectors. Jordan's default $(a, b, c) = (3.4445, -4.7750, 2.0315)$
    maximises the slope $p'(0) = a$ at the price of not converging to 1:
    after 5 steps the singular values of a Frobenius-normalised matrix lie in
    about $[0.68, 1.13]$ (the invariant interval of $p$; tested), which
    does not hurt training. A wide matrix is iterated as is and a tall one as
    its transpose ($p$ commutes with transposition), so $XX^H$ is the smaller
    Gram matrix.

    Pre-scaling (``preconditioning``):

    * ``'frobenius'`` (default): $X / (\lVert X\rVert_F + \epsilon)$;
    * ``'spectral'``: $X / (\lVert X\rVert_2 + \epsilon)$ (an SVD: exact, costly);
    * ``'aol'``: the first step scales $X$ by $D^{-1/2}$ with
      $D = \mathrm{diag}(\sum_j |A_{ij}|)$ (Boissin et al., Turbo-Muon);
    * ``'schatten'``: the first step divides $X$ by $\lVert X\rVert_{S_4}$
      (Grishina et al.).

    In the AOL and Schatten steps the floor of the row sums or norm is a fixed
    $10^{-8}$, as in optax. For complex $X$, gradtx's Schatten step uses
    $X X^H$ (optax's uses $X X^\top$, not a Schatten norm of complex $X$).

    Args:
      x: a matrix, or any array with ``dimension_numbers``.
      ns_coeffs: $(a, b, c)$ for every step (shape (3,)), a table with one
        row per step (shape (``ns_steps``, 3)), or a preset name
        (``'standard'``, ``'dion'``).
      ns_steps: the number of steps, a static int >= 1. A table must have
        exactly this many rows (optax ignores ``ns_steps`` for a shorter
        table and raises for a longer one; gradtx asks for the match).
      preconditioning: ``'frobenius'``, ``'spectral'``, ``'aol'`` or ``'schatten'``.
      eps: $\epsilon$ added to the Frobenius or spectral norm (default 1e-8).
      dimension_numbers: a :class:`MuonDimensionNumbers` for a non-2-D ``x``
        (ignored for a matrix, as in optax): the other axes are a batch.

    Returns:
      An array of ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> x = jnp.array([[3.0, 0.0], [0.0, 0.5]], jnp.float32)
      >>> o = gx.orthogonalize_via_newton_schulz(x, jnp.array((3.4445, -4.775, 2.0315)))
      >>> print(jnp.round(o, 2))  # singular values 3 and 0.5 sent near 1, directions kept
      [[0.71 0.  ]
       [0.   1.04]]

    References:
      Jordan, *Muon: An optimizer for hidden layers in neural networks*
      (modded-nanogpt), 2024.
      Boissin et al., *Turbo-Muon: Accelerating Orthogonality-Based Optimization
      with Pre-Conditioning*, arXiv:2512.04632, 2025.
      Grishina et al., *Accelerating Newton-Schulz Iteration for Orthogonalization
      via Chebyshev-type Polynomials*, arXiv:2506.10935, 2025.
    """
    where = "gx.orthogonalize_via_newton_schulz"
    x = jnp.asarray(x)
    if x.ndim != 2 and not is_dimension_numbers(dimension_numbers):
        raise ValueError(
            f"{where}: `x` must be a matrix, or `dimension_numbers` a MuonDimensionNumbers; got shape "
            f"{x.shape} and dimension_numbers={dimension_numbers!r}."
        )
    check_preconditioning(preconditioning, where)
    coeffs = coefficient_array(ns_coeffs, ns_steps, where)
    dims = _DEFAULT_DIMS if x.ndim == 2 else _check_dims(dimension_numbers, where, "dimension_numbers")
    return orthogonalize_leaf(x, dims, coefficient_rows(coeffs, ns_steps, where), preconditioning, eps, where)
