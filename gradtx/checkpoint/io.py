"""`save` and `load`: exact, atomic, pickle-free checkpoints of any pytree."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, BinaryIO

import jax.numpy as jnp
import numpy as np

from gradtx.checkpoint import _codec

__all__ = ["save", "load"]

_FORMAT = "gradtx-checkpoint"
_VERSION = 1
_META = "__gradtx_meta__"


def save(path: str | os.PathLike, tree: Any) -> None:
    r"""Saves a pytree to ``path`` as one ``.npz`` file, atomically and exactly.

    ``tree`` may hold params, a gradtx optimizer (a pytree whose leaves are its
    hyperparameters) and its state, e.g. ``(optimizer, params, state)``. Leaves
    may be JAX or NumPy arrays of any dtype (``bfloat16``, ``float8``, complex,
    ``float64``, integers, zero-size), typed PRNG keys (``jax.random.key``,
    stored as their key data and implementation name), Python ``bool``/``int``/
    ``float``/``complex`` (their type is restored) and ``None``.

    The file holds the leaves as arrays of standard NumPy dtypes (bit patterns
    for ``ml_dtypes`` types) plus a JSON description of the tree, so it loads
    with ``allow_pickle=False``: no code runs on load. Static fields (e.g. a
    module's booleans or callables) are not stored; :func:`load` takes them
    from its ``like`` tree.

    The write is atomic: the file is written to a temporary file in the same
    directory, flushed to disk (``fsync``) and moved over ``path`` with
    ``os.replace``. If anything fails midway, a previous checkpoint at ``path``
    is untouched and no temporary file is left. ``path`` is used as given (no
    ``.npz`` suffix is added).

    Args:
      path: the file to write; its directory must exist.
      tree: any pytree of the leaves above.

    Raises:
      TypeError: a leaf is not storable (a string, an object, a traced value);
        the message names the leaf's path.

    >>> import os, tempfile, jax.numpy as jnp
    >>> import gradtx as gx
    >>> opt = gx.adam(learning_rate=0.1)
    >>> params = {"w": jnp.ones(3, jnp.bfloat16)}
    >>> state = opt.init(params)
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> gx.save(path, (opt, params, state))
    >>> opt2, params2, state2 = gx.load(path, like=(opt, params, state))
    >>> params2["w"].dtype, float(opt2.transforms[1].learning_rate)
    (dtype(bfloat16), 0.1)
    """
    leaves, treedef = _codec.flatten(tree)
    metas, arrays = [], {}
    for i, (p, x) in enumerate(leaves):
        meta, data = _codec.encode_leaf(p, x)
        metas.append(meta)
        if data is not None:
            arrays[f"leaf_{i}"] = data
    header = {
        "format": _FORMAT,
        "version": _VERSION,
        "leaves": metas,
        "nodes": _codec.describe_nodes(treedef),
    }
    arrays[_META] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _atomic_write(os.fspath(path), arrays)


def _write(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """Writes the arrays as an ``.npz`` archive to an open binary file."""
    np.savez(f, **arrays)


def _atomic_write(path: str, arrays: dict[str, np.ndarray]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, arrays)
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; use the umask like open() does
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(f.fileno(), 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Makes the rename durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | os.PathLike, like: Any = None) -> Any:
    r"""Loads a checkpoint written by :func:`save`, bit for bit.

    With ``like``, the leaves are put back into ``like``'s structure, so
    NamedTuple states, tuples, lists, dicts, ``None`` fields and gradtx modules
    (with ``like``'s static fields) come back as the same types. The file is
    checked against ``like`` first: same number of leaves, same key paths, same
    shapes and dtypes (a Python ``float`` hyperparameter matches only a Python
    ``float``), same node types; the first difference is reported by its path.
    ``like``'s leaves may be arrays, ``jax.ShapeDtypeStruct`` (e.g. from
    ``jax.eval_shape``), Python numbers or ``None``; each loaded value takes the
    container of its ``like`` leaf (JAX arrays keep the ``like`` leaf's
    sharding), but its *value* always comes from the file.

    Without ``like``, trees of dicts, lists, tuples and ``None`` are rebuilt
    from the file's description, each leaf in the container it was saved from.
    Custom nodes (NamedTuple states, gradtx modules) need ``like``; loading them
    without it raises a ``ValueError`` saying so. A 64-bit array saved from JAX
    is returned as a NumPy array when ``jax_enable_x64`` is off, to stay exact.

    Args:
      path: a file written by :func:`save`.
      like: optional target tree with the structure of the saved one.

    Returns:
      The restored tree.

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: the file is not a gradtx checkpoint, or it does not match
        ``like`` (the message names the first mismatching leaf path).

    >>> import os, tempfile, jax.numpy as jnp
    >>> import gradtx as gx
    >>> path = os.path.join(tempfile.mkdtemp(), "params.npz")
    >>> gx.save(path, {"w": jnp.arange(3, dtype=jnp.int32), "b": None, "lr": 0.5})
    >>> gx.load(path)
    {'b': None, 'lr': 0.5, 'w': Array([0, 1, 2], dtype=int32)}
    """
    path = os.fspath(path)
    header, data = _read(path)
    metas = header["leaves"]
    paths = [m["path"] for m in metas]
    if like is None:
        leaves = [_codec.decode_leaf(m, data.get(f"leaf_{i}")) for i, m in enumerate(metas)]
        return _codec.build(header["nodes"], leaves, paths)
    like_leaves, treedef = _codec.flatten(like)
    _check_matches(path, metas, like_leaves, header["nodes"], treedef)
    leaves = [
        _codec.decode_leaf(m, data.get(f"leaf_{i}"), x)
        for i, (m, (_, x)) in enumerate(zip(metas, like_leaves))
    ]
    return treedef.unflatten(leaves)


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"load(): no checkpoint at {path!r}; check the path (save() adds no suffix).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as e:
        raise ValueError(f"load(): {path!r} is not a readable .npz checkpoint ({e}).") from e
    header = None
    if _META in data:
        try:
            header = json.loads(data.pop(_META).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            header = None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise ValueError(f"load(): {path!r} is not a gradtx checkpoint (no valid header); write it with save().")
    if header.get("version") != _VERSION:
        raise ValueError(
            f"load(): {path!r} has checkpoint format version {header.get('version')}, "
            f"this gradtx reads version {_VERSION}; load it with the gradtx that wrote it."
        )
    return header, data


def _spec(meta: dict) -> str:
    if meta["kind"] == "none":
        return "None"
    if meta["kind"] == "python":
        return f"a Python {meta['dtype']}"
    return f"{meta['dtype']}{meta['shape']}"


def _python_number_for_weak_scalar(meta: dict, want: dict) -> bool:
    """A Python number in the file where ``like`` holds a weakly typed 0-d array of its kind.

    gradtx stores hyperparameters given as Python numbers as such arrays; files
    written before it did hold the numbers themselves, and still load.
    """
    kinds = {"bool": "b", "int": "iu", "float": "f", "complex": "c"}
    return (meta["kind"] == "python" and want.get("weak", False) and want["shape"] == []
            and np.dtype(jnp.dtype(want["dtype"])).kind in kinds[meta["dtype"]])


def _check_matches(path: str, metas: list[dict], like_leaves: list, nodes: Any, treedef: Any) -> None:
    def fail(where: str, what: str) -> None:
        raise ValueError(
            f"load({path!r}, like=...): the checkpoint does not match `like` at "
            f"{where or '<root>'}: {what}. Pass a `like` built the same way as the "
            f"saved tree (same optimizer and options, same params shapes and dtypes), "
            f"or load without `like` to inspect the file."
        )

    for meta, (p, x) in zip(metas, like_leaves):
        if meta["path"] != p:
            fail(p, f"the file's leaf here is at path {meta['path'] or '<root>'} instead")
        want = _codec.describe_leaf(p, x, who="load(like=...)")
        if _python_number_for_weak_scalar(meta, want):
            continue
        if _spec(meta) != _spec(want):
            fail(p, f"the file has {_spec(meta)}, `like` has {_spec(want)}")
    if len(metas) != len(like_leaves):
        n = min(len(metas), len(like_leaves))
        if len(metas) > n:
            fail(metas[n]["path"], f"the file has an extra leaf ({len(metas)} leaves vs {len(like_leaves)})")
        fail(like_leaves[n][0], f"`like` has a leaf the file lacks ({len(like_leaves)} leaves vs {len(metas)})")
    found = _codec.first_node_mismatch(nodes, _codec.describe_nodes(treedef), [m["path"] for m in metas])
    if found:
        where, a, b = found
        fail(where, f"the subtree starting here is a {a} in the file and a {b} in `like`")
