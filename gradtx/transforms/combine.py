"""Composition: ``chain``, ``named_chain`` and foreign (optax) transforms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gradtx.core.base import GradientTransformation
from gradtx.core.module import child, static
from gradtx.core.tree import check_float_params, check_same_structure, first_difference, is_none

__all__ = ["chain", "named_chain", "Chain", "NamedChain", "Foreign", "as_transform"]


class Foreign(GradientTransformation):
    """Wraps an object with ``init``/``update`` (e.g. an optax transform).

    The wrapped object is a static field: its hyperparameters are whatever it
    closed over, so changing them compiles anew (optax's model). Extra keyword
    arguments are passed on only if its ``update`` accepts them.
    """

    gx_name = "Foreign"
    tx: Any = static()

    def init(self, params):
        return self.tx.init(params)

    def update(self, updates, state, params=None, **extra_args):
        if extra_args and _accepts_extra_args(self.tx):
            return self.tx.update(updates, state, params, **extra_args)
        return self.tx.update(updates, state, params)


def _accepts_extra_args(tx: Any) -> bool:
    import inspect

    try:
        sig = inspect.signature(tx.update)
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def as_transform(tx: Any, where: str = "chain") -> GradientTransformation:
    """Returns ``tx`` as a gradtx transformation (wrapping foreign ones)."""
    if isinstance(tx, GradientTransformation):
        return tx
    if hasattr(tx, "init") and hasattr(tx, "update"):
        return Foreign(tx)
    raise TypeError(
        f"gx.{where}: expected gradient transformations (objects with `init` and "
        f"`update`), got {tx!r} of type {type(tx).__name__}."
    )


class Chain(GradientTransformation):
    """Applies transformations in sequence; the state is a tuple of their states."""

    gx_name = "chain"
    transforms: tuple = child()

    def init(self, params):
        check_float_params(params, "gx.chain.init")
        return tuple(t.init(params) for t in self.transforms)

    def update(self, updates, state, params=None, **extra_args):
        if not isinstance(state, tuple) or len(state) != len(self.transforms):
            got = f"a {type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else type(state).__name__
            raise ValueError(
                f"gx.chain: `state` must be a tuple of {len(self.transforms)} states "
                f"(one per transformation), got {got}. Pass the state returned by this "
                "chain's `init`."
            )
        _check_members("gx.chain", range(len(state)), self.transforms, state, updates, params)
        new_state = []
        for t, s in zip(self.transforms, state):
            updates, s = t.update(updates, s, params, **extra_args)
            new_state.append(s)
        return updates, tuple(new_state)


_EXPECTED: dict[Any, Any] = {}  # signature of (member, updates) -> abstract init state, or None


def _signature(tree: Any) -> tuple:
    """Structure plus each leaf's shape and dtype (a Python number's value): what ``init`` sees."""
    leaves, treedef = jax.tree.flatten(tree, is_leaf=is_none)
    return treedef, tuple(
        (type(x), x) if isinstance(x, (int, float, complex, bool)) or x is None
        else (tuple(np.shape(x)), str(getattr(x, "dtype", type(x)))) for x in leaves
    )


def _expected_state(t: GradientTransformation, updates: Any) -> Any:
    """``jax.eval_shape(t.init, updates)``, memoised on the signatures of both.

    The check runs at every trace of a chain's ``update``; tracing ``init``
    abstractly again for the same member and params tree cost about a tenth of
    an Adam step's trace time on 100 leaves.
    """
    try:
        key = (_signature(t), _signature(updates))
        hash(key)
    except TypeError:  # an unhashable static field or leaf: no memo
        key = None
    if key is not None and key in _EXPECTED:
        return _EXPECTED[key]
    try:
        expected = jax.eval_shape(t.init, updates)
    except Exception:  # noqa: BLE001 - an init that needs concrete values: skip the check
        expected = None
    if key is not None:
        if len(_EXPECTED) > 512:
            _EXPECTED.clear()
        _EXPECTED[key] = expected
    return expected


def _check_members(where: str, keys: Any, transforms: Any, states: Any, updates: Any, params: Any) -> None:
    """The checks :class:`Chain` and :class:`NamedChain` run before updating.

    ``updates`` and ``params`` must have one structure, and each member's
    state (``states``, listed in the order of ``keys``: the chain's indices
    or names) must be shaped like what that member's ``init`` creates.
    """
    if params is not None:
        check_same_structure(updates, params, "updates", "params", f"{where}.update")
    for k, t, s in zip(keys, transforms, states):
        _check_member_state(where, k, t, s, updates)


def _check_member_state(where: str, k: Any, t: GradientTransformation, s: Any, updates: Any) -> None:
    """Raises ValueError if ``s`` is not shaped like ``t.init`` of this params tree.

    Uses ``jax.eval_shape`` (no computation; under ``jit`` it runs at trace
    time, memoised per member and params signature). Members whose ``init``
    cannot be evaluated abstractly are not checked. ``k`` is the member's
    index (``chain``) or name (``named_chain``).
    """
    expected = _expected_state(t, updates)
    if expected is None:
        return
    if jax.tree.structure(s, is_leaf=is_none) == jax.tree.structure(expected, is_leaf=is_none):
        bad = [
            jax.tree_util.keystr(p)
            for (p, a), b in zip(
                jax.tree_util.tree_flatten_with_path(s)[0], jax.tree.leaves(expected)
            )
            if tuple(getattr(a, "shape", ())) != tuple(b.shape)
        ]
        if not bad:
            return
        diff = f"shape differs at {bad[0]}"
    else:
        diff = first_difference(s, expected) or f"got a {type(s).__name__}, expected a {type(expected).__name__}"
    name = getattr(t, "gx_name", type(t).__name__)
    raise ValueError(
        f"{where}.update: `state[{k!r}]` does not match what member {k!r} ({name}) creates for "
        f"these updates ({diff}). The state comes from a different optimizer or a different "
        "params tree: pass the state returned by this optimizer's `init(params)`."
    )


class NamedChain(GradientTransformation):
    """A chain whose state is a dict keyed by the given names."""

    gx_name = "named_chain"
    names: tuple = static()
    transforms: tuple = child()

    def init(self, params):
        check_float_params(params, "gx.named_chain.init")
        return {n: t.init(params) for n, t in zip(self.names, self.transforms)}

    def update(self, updates, state, params=None, **extra_args):
        if not isinstance(state, Mapping) or set(state) != set(self.names):
            got = f"a {type(state).__name__} with keys {list(state)}" if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"gx.named_chain: `state` must be a dict with one state per name {list(self.names)}, "
                f"got {got}. Pass the state returned by this chain's `init`."
            )
        _check_members("gx.named_chain", self.names, self.transforms, [state[n] for n in self.names], updates, params)
        new_state = {}
        for n, t in zip(self.names, self.transforms):
            updates, new_state[n] = t.update(updates, state[n], params, **extra_args)
        return updates, new_state


def chain(*transforms: Any) -> Chain:
    """Composes transformations: each one's output updates feed the next.

    ``chain(a, b).update(g, (sa, sb))`` equals ``b.update(*a.update(g, sa))``,
    with the states collected in a tuple. Optax transforms are accepted too
    (wrapped as static :class:`Foreign` members).

    Example:
      >>> import gradtx as gx
      >>> opt = gx.chain(gx.clip_by_global_norm(1.0), gx.scale_by_adam(),
      ...                gx.scale_by_learning_rate(1e-3))
    """
    return Chain(tuple(as_transform(t, "chain") for t in transforms))


def named_chain(*pairs: tuple[str, Any]) -> NamedChain:
    """Like :func:`chain`, with ``(name, transform)`` pairs and a dict state."""
    names = tuple(n for n, _ in pairs)
    if len(set(names)) != len(names):
        raise ValueError(f"gx.named_chain: names must be unique, got {list(names)}.")
    return NamedChain(names, tuple(as_transform(t, "named_chain") for _, t in pairs))
