"""Tree math used by every transform: moments, bias correction, norms, casts.

These helpers exist once; transforms call them instead of re-deriving the
update rules. All of them pass ``None`` leaves through unchanged, and all of
them keep the dtype of the tree they write to.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx.core.numerics import abs_sq, sum_of_squares

__all__ = [
    "is_none",
    "tree_map_none",
    "zeros_like",
    "full_like",
    "cast",
    "cast_like",
    "scalar_for",
    "ema_weights",
    "update_moment",
    "update_moment_per_elem_norm",
    "update_infinity_moment",
    "bias_correction",
    "saturate_like",
    "global_norm",
    "real_inner",
    "float_dtypes",
    "lowest_real_dtype",
    "first_difference",
    "check_same_structure",
    "check_float_params",
    "prefix_mismatch",
]


def is_none(x: Any) -> bool:
    return x is None


def tree_map_none(fn, tree: Any, *rest: Any) -> Any:
    """``jax.tree.map`` that maps ``None`` leaves of ``tree`` to ``None``."""
    return jax.tree.map(
        lambda x, *r: None if x is None else fn(x, *r), tree, *rest, is_leaf=is_none
    )


def zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Zeros shaped like ``tree``, in ``dtype`` if given, else each leaf's."""
    return tree_map_none(lambda x: jnp.zeros(jnp.shape(x), dtype or jnp.result_type(x)), tree)


def full_like(tree: Any, value: Any, dtype: Any = None) -> Any:
    """``value`` broadcast like ``tree``, in ``dtype`` if given, else each leaf's."""
    return tree_map_none(
        lambda x: jnp.full(jnp.shape(x), value, dtype or jnp.result_type(x)), tree
    )


def cast(x: jax.Array, dtype: Any) -> jax.Array:
    """``x.astype(dtype)``, or ``x`` itself when it already has that (strong) dtype.

    Skipping the no-op cast keeps it out of the traced program: per leaf, such
    casts were a fifth of an Adam step's operations.
    """
    if x.dtype == dtype and not jax.typeof(x).weak_type:
        return x
    return x.astype(dtype)


def cast_like(tree: Any, like: Any) -> Any:
    """Casts each leaf of ``tree`` to the dtype of the matching leaf of ``like``."""
    return tree_map_none(lambda x, y: cast(x, jnp.result_type(y)), tree, like)


def scalar_for(value: Any, promote: bool = True) -> Any:
    """``x -> value`` in leaf ``x``'s arithmetic dtype, cast once per dtype (not once per leaf).

    A hyperparameter multiplies every leaf; written inline, ``jnp`` re-casts
    the scalar for each leaf. With ``promote`` the dtype is the one ``value * x``
    would have (a weak Python float takes the leaf's dtype, a float64 array
    promotes a float32 leaf), so the arithmetic is unchanged; without, it is
    the leaf's own dtype (as ``jnp.asarray(value, x.dtype)``).
    """
    cache: dict[Any, Any] = {}

    def get(x: jax.Array) -> Any:
        key = jnp.result_type(x)
        if key not in cache:
            cache[key] = cast(jnp.asarray(value), jnp.result_type(value, x) if promote else key)
        return cache[key]

    return get


def ema_weights(decay: Any) -> tuple[jax.Array, jax.Array]:
    r"""$(\beta, 1-\beta)$ as arrays: the one rule of every EMA in gradtx.

    Both come from the same array $\beta$ in its own dtype (a Python float is
    first made an array, as the optimizer stores it), and so does the
    debiasing's $1-\beta^t$ (:func:`bias_correction`), never partly in
    Python's float64 and partly in float32. The EMA's weight $1-\beta$ and the
    debiasing then agree whether $\beta$ is a constant, traced (a sweep) or a
    schedule's value: a run computes the same numbers alone and in a sweep.
    (Before, a Python-float $\beta_2 = 0.999$ gave $1-\beta_2$ rounded from
    float64 but $1-\beta_2^t$ computed in float32, and Adam's first float32
    step was $0.9999933\,\eta\,\mathrm{sign}(g)$ alone and $\eta\,\mathrm{sign}(g)$
    in a sweep.)
    """
    b = jnp.asarray(decay)
    return b, 1 - b


def _power(order: int):
    return lambda g: g if order == 1 else g**order


def _norm_power(order: int):
    def norm_k(g: jax.Array) -> jax.Array:
        if not jnp.iscomplexobj(g):
            return g**order
        half = order / 2
        return abs_sq(g) ** (int(half) if float(half).is_integer() else half)

    return norm_k


def _ema(powered, updates: Any, moments: Any, decay: Any) -> Any:
    b, one_minus = ema_weights(decay)
    new, old = scalar_for(one_minus), scalar_for(b)
    return tree_map_none(lambda g, t: new(g) * powered(g) + old(t) * t, updates, moments)


def update_moment(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    r"""EMA of the ``order``-th power: $m \leftarrow (1-\beta) g^k + \beta m$.

    $1-\beta$ and $\beta$ follow :func:`ema_weights`' rule. Computed in the
    promoted dtype; transforms cast with :func:`cast_like` when they store
    the moment, so state dtypes never drift.
    """
    return _ema(_power(order), updates, moments, decay)


def update_moment_per_elem_norm(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    r"""EMA of $|g|^k$: $v \leftarrow (1-\beta) |g|^k + \beta v$ (real for complex $g$)."""
    return _ema(_norm_power(order), updates, moments, decay)


def update_infinity_moment(updates: Any, moments: Any, decay: Any, eps: Any) -> Any:
    r"""AdaMax's infinity norm: $u \leftarrow \max(|g| + \epsilon, \beta u)$."""
    return tree_map_none(lambda g, t: jnp.maximum(jnp.abs(g) + eps, decay * t), updates, moments)


def bias_correction(moment: Any, decay: Any, count: jax.Array) -> Any:
    r"""Divides by $1 - \beta^t$: the debiasing of a zero-initialised EMA.

    ``count`` is $t$, the number of EMA updates made (1 after the first).
    $1-\beta^t$ follows :func:`ema_weights`' rule (same value, same dtype as
    the EMA's $1-\beta$).
    """
    correction = 1 - ema_weights(decay)[0] ** count
    # Cast per leaf, as optax does: XLA then rounds (1 - b^t) and the division
    # exactly as optax's program does (a once-per-dtype cast changed the last
    # bit of e.g. scale_by_stddev's ill-conditioned nu_hat - mu_hat^2).
    return tree_map_none(lambda t: t / correction.astype(t.dtype), moment)


def saturate_like(tree: Any, like: Any) -> Any:
    """Casts to ``like``'s dtype with ``+inf`` replaced by its largest finite value (NaN propagates).

    How a second moment is stored when $|g|^2$ overflows: saturated, not
    ``inf`` (which would freeze that coordinate forever). A ``select`` rather
    than ``minimum``: with ``minimum`` XLA:CPU re-derives the moment inside
    the update's loop from the old, donated one and inserts a full copy of it
    (one more pass over memory per step).
    """
    def clamp(x, top):
        return jax.lax.select(x > top, jax.lax.full_like(x, top), x)

    def one(x, y):
        dtype = jnp.result_type(y)
        top = jnp.finfo(dtype).max
        if jnp.iscomplexobj(x):  # a real value stored in a complex moment
            return jax.lax.complex(clamp(x.real, top), x.imag).astype(dtype)
        return cast(clamp(x, top), dtype)

    return tree_map_none(one, tree, like)


def global_norm(tree: Any) -> jax.Array:
    r"""$\sqrt{\sum_i |x_i|^2}$ over every element of every leaf."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([])
    return jnp.sqrt(sum(sum_of_squares(x) for x in leaves))


def real_inner(a: Any, b: Any) -> jax.Array:
    r"""$\sum \mathrm{Re}(\bar a\, b)$ over every element of every leaf: the real inner product.

    Complex leaves count as pairs of reals ($\mathbb{C}^n \cong \mathbb{R}^{2n}$),
    so this is the Euclidean inner product the quasi-Newton updates need.
    Each leaf is one full-precision contraction over all its axes (no
    ``ravel``, which would gather a sharded leaf), accumulated in at least
    float32; leaves are summed in tree order.
    """
    terms = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = jnp.asarray(x), jnp.asarray(y)
        wide = jnp.promote_types(jnp.result_type(x, y), jnp.float32)
        x, y = x.astype(wide), y.astype(wide)
        if jnp.issubdtype(wide, jnp.complexfloating):
            x = jnp.conj(x)
        terms.append(jnp.real(jnp.tensordot(x, y, x.ndim, precision=jax.lax.Precision.HIGHEST)))
    if not terms:
        return jnp.zeros([])
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def float_dtypes(tree: Any) -> tuple[Any, Any]:
    """The lowest and highest real float dtypes of ``tree``'s inexact leaves (JAX's default float if none).

    Complex leaves count as their real part's dtype (complex64 -> float32).
    """
    dtypes = [
        jnp.finfo(jnp.result_type(x)).dtype
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    if not dtypes:
        default = jnp.zeros([]).dtype
        return default, default
    dtypes.sort(key=lambda d: d.itemsize)
    return dtypes[0], dtypes[-1]


def lowest_real_dtype(tree: Any) -> Any:
    """The lowest real float dtype of ``tree`` (:func:`float_dtypes`): scalar state that every leaf can take."""
    return float_dtypes(tree)[0]


def first_difference(a: Any, b: Any) -> str | None:
    """A sentence naming the first path where trees ``a`` and ``b`` differ, or None."""
    pa, _ = jax.tree_util.tree_flatten_with_path(a, is_leaf=is_none)
    pb, _ = jax.tree_util.tree_flatten_with_path(b, is_leaf=is_none)
    keys_a = [jax.tree_util.keystr(p) for p, _ in pa]
    keys_b = [jax.tree_util.keystr(p) for p, _ in pb]
    for ka, kb in zip(keys_a, keys_b):
        if ka != kb:
            return f"first difference at {ka or '<root>'} vs {kb or '<root>'}"
    if len(keys_a) != len(keys_b):
        extra = keys_a[len(keys_b)] if len(keys_a) > len(keys_b) else keys_b[len(keys_a)]
        return f"one tree has an extra leaf at {extra or '<root>'}"
    if jax.tree.structure(a, is_leaf=is_none) != jax.tree.structure(b, is_leaf=is_none):
        return "same leaf paths but different node types (e.g. tuple vs list)"
    return None


def check_same_structure(a: Any, b: Any, a_name: str, b_name: str, where: str) -> None:
    """Raises ValueError naming the first differing path if the trees differ."""
    if jax.tree.structure(a, is_leaf=is_none) == jax.tree.structure(b, is_leaf=is_none):
        return
    diff = first_difference(a, b)
    raise ValueError(
        f"{where}: `{a_name}` and `{b_name}` have different tree structures ({diff}). "
        f"They must mirror each other: pass the gradients of the same params tree."
    )


def check_float_params(params: Any, where: str) -> None:
    """Raises TypeError naming the first integer or boolean leaf of ``params``.

    Optimizer state (moments, traces) takes the params' dtype, and an integer
    moment silently truncates every update to 0. Checked on dtypes only, so it
    costs nothing under ``jit`` beyond tracing.
    """
    leaves, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_none)
    for path, x in leaves:
        if x is None or not hasattr(x, "dtype") and not isinstance(x, (bool, int)):
            continue
        dtype = jnp.result_type(x)
        if jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
            name = jax.tree_util.keystr(path) or "<root>"
            raise TypeError(
                f"{where}: params leaf {name} has dtype {dtype}; optimizers need floating-point "
                f"params. Cast it (e.g. `params = jax.tree.map(lambda x: x.astype(jnp.float32), "
                f"params)`), or leave it out of the optimizer with `gx.masked`."
            )


def _children(x: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """One level of ``x``: its node structure and its ``(key, child)`` pairs."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda n: n is not x)
    return treedef, [(path[0], c) for path, c in pairs]


def _node(x: Any, kids: list[tuple[Any, Any]]) -> str:
    keys = ", ".join(jax.tree_util.keystr((k,)) for k, _ in kids)
    return f"{type(x).__name__} with children {keys}" if keys else f"{type(x).__name__} with no children"


def prefix_mismatch(
    prefix: Any, tree: Any, prefix_name: str = "the prefix", tree_name: str = "the params tree",
    path: tuple = (),
) -> str | None:
    """Describes the first path where ``prefix`` is not a tree prefix of ``tree``, or None.

    A leaf of ``prefix`` (a label, a boolean, or None) covers the whole subtree
    of ``tree`` below it, so a mask such as ``{"a": True, "b": {...}}`` is
    compared node by node only where it branches. Unlike
    :func:`first_difference`, which compares flattened leaf paths, this never
    blames a valid prefix leaf for a mistake further down. The sentence names
    the node's path and both sides' children, e.g. ``"at ['b'] `mask` has a
    dict with children ['x'], ['y'] where the params tree has a dict with
    children ['x'], ['z']"`` (``prefix_name`` and ``tree_name`` are the nouns).
    """
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(prefix, is_leaf=is_none)):
        return None
    pre_def, pre_kids = _children(prefix)
    tree_def, tree_kids = _children(tree)
    if pre_def != tree_def:
        where = jax.tree_util.keystr(path) or "<root>"
        return (
            f"at {where} {prefix_name} has a {_node(prefix, pre_kids)} "
            f"where {tree_name} has a {_node(tree, tree_kids)}"
        )
    for (k, sub_prefix), (_, sub) in zip(pre_kids, tree_kids):
        diff = prefix_mismatch(sub_prefix, sub, prefix_name, tree_name, path + (k,))
        if diff:
            return diff
    return None
