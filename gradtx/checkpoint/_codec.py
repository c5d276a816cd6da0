"""Encoding of a pytree into plain arrays plus a JSON description, and back.

A tree is flattened with ``None`` kept as a leaf. Each leaf is described by a
small dict (its key path, kind, dtype, shape and container type); arrays are
stored as NumPy arrays of standard dtypes only, so the ``.npz`` file loads with
``allow_pickle=False``. The tree's node types are described separately, so
trees of dicts, lists, tuples and None can be rebuilt without a ``like`` tree.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.numerics import is_weak, weakly_typed
from gradtx.core.tree import is_none

__all__ = [
    "encode_leaf",
    "decode_leaf",
    "describe_leaf",
    "describe_nodes",
    "first_node_mismatch",
    "build",
    "flatten",
    "type_name",
]

_PY_TYPES = {"bool": bool, "int": int, "float": float, "complex": complex}
_PY_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float64, "complex": np.complex128}


def type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _is_key(dtype: Any) -> bool:
    return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _container(x: Any) -> str:
    if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return "jax"
    if isinstance(x, np.ndarray):
        return "numpy"
    return "numpy_scalar"


def describe_leaf(path: str, x: Any, who: str = "save()") -> dict:
    """What a leaf is, without its data: path, kind, dtype, shape, container."""
    if x is None:
        return {"path": path, "kind": "none", "dtype": "None", "shape": []}
    if type(x) in _PY_TYPES.values():
        return {"path": path, "kind": "python", "dtype": type(x).__name__, "shape": []}
    if isinstance(x, jax.core.Tracer):
        raise TypeError(
            f"{who}: the leaf at {path or '<root>'} is a traced value; call save() "
            f"outside jit/vmap/grad, on concrete arrays."
        )
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{who}: the leaf at {path or '<root>'} is a {type(x).__name__}, which a "
            f"checkpoint cannot hold; leaves must be arrays, Python numbers or None "
            f"(make non-numeric options `static()` fields)."
        )
    kind = "key" if _is_key(x.dtype) else "array"
    out = {"path": path, "kind": kind, "dtype": str(x.dtype), "shape": list(x.shape)}
    out["container"] = _container(x)
    if out["container"] == "jax" and is_weak(x):
        out["weak"] = True  # a hyperparameter stored as JAX stores a Python number
    if kind == "array" and np.dtype(x.dtype).kind == "O":
        raise TypeError(f"{who}: the leaf at {path or '<root>'} is an object array; not storable.")
    return out


def encode_leaf(path: str, x: Any) -> tuple[dict, np.ndarray | None]:
    """The leaf's description and the standard-dtype NumPy array that stores it."""
    meta = describe_leaf(path, x)
    kind = meta["kind"]
    if kind == "none":
        return meta, None
    if kind == "python":
        try:
            data = np.asarray(x, dtype=_PY_DTYPES[meta["dtype"]])
        except OverflowError:
            data = None
        if data is None or (meta["dtype"] == "int" and int(data) != x):
            raise ValueError(
                f"save(): the Python int at {path or '<root>'} does not fit in int64; "
                f"store it as a NumPy array of a suitable dtype."
            )
        return meta, data
    if kind == "key":
        meta["impl"] = str(jax.random.key_impl(x))
        x = jax.random.key_data(x)
    data = np.asarray(x)
    if data.dtype.isbuiltin != 1:  # bfloat16, float8, int4 (ml_dtypes): store the raw bits
        meta["stored_as"] = f"uint{8 * data.dtype.itemsize}"
        data = data.view(meta["stored_as"])
    return meta, np.require(data, requirements="C")


def _array_dtype(name: str) -> np.dtype:
    return np.dtype(jnp.dtype(name))


def decode_leaf(meta: dict, data: np.ndarray | None, like: Any = "file") -> Any:
    """Rebuilds a leaf from its description and stored array.

    ``like`` is the matching leaf of the target tree (its container decides
    whether a NumPy or a JAX array comes back), or ``"file"`` to use the
    container recorded in the file.
    """
    kind = meta["kind"]
    if kind == "none":
        return None
    if kind == "python":
        value = _PY_TYPES[meta["dtype"]](data[()])
        if isinstance(like, jax.Array) and is_weak(like):  # a file from before numbers were stored as arrays
            return jnp.asarray(value)
        return value
    if "stored_as" in meta:
        data = data.view(_array_dtype(meta["dtype"]))
    if kind == "key":
        return _to_jax(jax.random.wrap_key_data(data, impl=meta["impl"]), like)
    container = meta.get("container", "numpy") if isinstance(like, str) else _container(like)
    if container == "numpy":
        return data
    if container == "numpy_scalar":
        return data[()]
    if jax.dtypes.canonicalize_dtype(data.dtype) != data.dtype:
        return data  # a 64-bit array with x64 off: NumPy keeps it exact
    out = _to_jax(data, like)
    return weakly_typed(out) if meta.get("weak") else out


def _to_jax(x: Any, like: Any) -> jax.Array:
    sharding = getattr(like, "sharding", None)
    if sharding is not None and not isinstance(like, jax.core.Tracer):
        return jax.device_put(x, sharding)
    return jnp.asarray(x)


def describe_nodes(treedef: Any) -> Any:
    """The node types of ``treedef`` as JSON: dict/list/tuple/namedtuple/custom/leaf."""
    if jax.tree_util.treedef_is_leaf(treedef):
        return "*"
    node_type, aux = treedef.node_data()
    children = [describe_nodes(c) for c in treedef.children()]
    if node_type is dict:
        keys = [k if isinstance(k, (str, int)) and not isinstance(k, bool) else repr(k) for k in aux]
        exact = all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in aux)
        return {"t": "dict", "keys": keys, "exact": exact, "c": children}
    if node_type in (list, tuple):
        return {"t": node_type.__name__, "c": children}
    if issubclass(node_type, tuple) and hasattr(node_type, "_fields"):
        return {"t": "namedtuple", "name": type_name(node_type), "c": children}
    return {"t": "custom", "name": type_name(node_type), "c": children}


def _label(node: Any) -> str:
    if node == "*":
        return "a leaf"
    return node.get("name", node["t"])


def first_node_mismatch(a: Any, b: Any, paths: list[str], start: int = 0) -> tuple[str, str, str] | None:
    """First node whose type differs: (path of its first leaf, a's type, b's type)."""
    if a == "*" and b == "*":
        return None
    where = paths[start] if start < len(paths) else "<end>"
    same = a != "*" and b != "*" and all(a.get(f) == b.get(f) for f in ("t", "name", "keys"))
    if not same or len(a["c"]) != len(b["c"]):
        return where or "<root>", _label(a), _label(b)
    for ca, cb in zip(a["c"], b["c"]):
        found = first_node_mismatch(ca, cb, paths, start)
        if found:
            return found
        start += _count_leaves(ca)
    return None


def _count_leaves(node: Any) -> int:
    return 1 if node == "*" else sum(_count_leaves(c) for c in node["c"])


def build(node: Any, leaves: list[Any], paths: list[str], start: int = 0) -> Any:
    """Rebuilds a tree of dicts/lists/tuples from its description (no ``like``)."""
    if node == "*":
        return leaves[start]
    if node["t"] in ("namedtuple", "custom") or (node["t"] == "dict" and not node["exact"]):
        where = paths[start] if start < len(paths) else "<end>"
        raise ValueError(
            f"load(): the checkpoint holds a {_label(node)} node (at the subtree starting "
            f"at leaf {where or '<root>'}), which is not rebuilt without a target: pass "
            f"`like=` a tree of the same structure (e.g. the freshly built optimizer "
            f"and its `init(params)` state)."
        )
    children = []
    for c in node["c"]:
        children.append(build(c, leaves, paths, start))
        start += _count_leaves(c)
    if node["t"] == "dict":
        return dict(zip(node["keys"], children))
    return list(children) if node["t"] == "list" else tuple(children)


def flatten(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    """Leaves (``None`` included) with their key-path strings, and the treedef."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_none)
    return [(jax.tree_util.keystr(p), x) for p, x in pairs], treedef
