"""``masked``: apply a transformation to a subset of the parameters."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

from gradtx.core.base import GradientTransformation
from gradtx.core.module import HashableTree, child, static
from gradtx.core.tree import is_none, prefix_mismatch

__all__ = ["MaskedNode", "MaskedState", "Masked", "masked"]


class MaskedNode(NamedTuple):
    """Stands in for a masked-out leaf inside the inner transformation (no leaves)."""


class MaskedState(NamedTuple):
    """State of :func:`masked`: the inner transformation's state."""

    inner_state: Any


def _is_masked(x: Any) -> bool:
    return x is None or isinstance(x, MaskedNode)


class Masked(GradientTransformation):
    """See :func:`masked`."""

    gx_name = "masked"
    inner: GradientTransformation = child()
    mask: Any = static()  # HashableTree(pytree of bools) or a callable

    def _leaf_mask(self, tree: Any) -> tuple[list[bool], Any]:
        """One flag per leaf of ``tree`` (a prefix mask is expanded), and its treedef."""
        mask = self.mask(tree) if callable(self.mask) else self.mask.value
        treedef = jax.tree.structure(tree, is_leaf=is_none)
        diff = prefix_mismatch(mask, tree, "`mask`")
        if diff is None:
            try:
                expanded = jax.tree.map(
                    lambda m, sub: jax.tree.map(lambda _: bool(m), sub, is_leaf=is_none), mask, tree,
                    is_leaf=is_none,
                )
                flags = treedef.flatten_up_to(expanded)
            except (ValueError, TypeError) as e:
                diff = str(e)
        if diff is not None:
            raise ValueError(
                f"gx.masked: `mask` does not match the params/updates tree ({diff}). "
                "Give a pytree of booleans with the params' structure (or a prefix of it: "
                "one boolean for a whole subtree), or a function params -> mask."
            )
        return flags, treedef

    @staticmethod
    def _apply(flags: list[bool], treedef: Any, tree: Any) -> Any:
        leaves = treedef.flatten_up_to(tree)
        return treedef.unflatten([x if f else MaskedNode() for x, f in zip(leaves, flags)])

    def init(self, params):
        return MaskedState(self.inner.init(self._apply(*self._leaf_mask(params), params)))

    def update(self, updates, state, params=None, **extra_args):
        # The mask is evaluated once (on the updates, as optax does) and used for both trees.
        flags, treedef = self._leaf_mask(updates)
        inner_updates = self._apply(flags, treedef, updates)
        inner_params = None if params is None else self._apply(flags, treedef, params)
        new, inner_state = self.inner.update(inner_updates, state.inner_state, inner_params, **extra_args)
        new_leaves = treedef.flatten_up_to(new)
        old_leaves = treedef.flatten_up_to(updates)
        merged = [n if f else o for n, o, f in zip(new_leaves, old_leaves, flags)]
        return treedef.unflatten(merged), MaskedState(inner_state)


def masked(inner: Any, mask: Any | Callable[[Any], Any]) -> Masked:
    """Applies ``inner`` only where ``mask`` is True; other updates pass unchanged.

    Args:
      inner: the transformation to apply to the selected leaves.
      mask: a pytree of booleans with the structure of the params (or a prefix
        of it: a boolean for a whole subtree), or a function ``params -> mask``.
        The mask is static: it is part of the optimizer's structure.

    The inner transformation sees the masked-out leaves as empty
    :class:`MaskedNode` s, so it keeps no state for them.
    """
    from gradtx.transforms.combine import as_transform

    inner = as_transform(inner, "masked")
    return Masked(inner, mask if callable(mask) else HashableTree(mask))
