"""``partition``: a different transformation for each labelled group of parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Hashable, NamedTuple

import jax

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation
from gradtx.core.module import HashableTree, child, static
from gradtx.core.tree import is_none, prefix_mismatch
from gradtx.wrappers.masked import Masked

__all__ = ["PartitionState", "Partition", "partition"]


class PartitionState(NamedTuple):
    """State of :func:`partition`.

    Attributes:
      inner_states: a dict ``label -> MaskedState`` holding each group's state.
    """

    inner_states: Any


class Partition(GradientTransformation):
    """See :func:`partition`."""

    gx_name = "partition"
    transforms: dict = child()
    param_labels: Any = static()  # HashableTree(pytree of labels) or a callable

    def _groups(self, tree: Any) -> dict[Hashable, Masked]:
        """One :class:`Masked` transform per label, each masking in that label's leaves."""
        labels = self.param_labels(tree) if callable(self.param_labels) else self.param_labels.value
        diff = prefix_mismatch(labels, tree, "`param_labels`")
        if diff:
            raise ValueError(
                f"gx.partition: `param_labels` does not match the params/updates tree ({diff}). "
                "Give a pytree of labels with the params' structure (or a prefix of it: one "
                "label for a whole subtree), or a function params -> labels."
            )
        expanded = jax.tree.map(
            lambda lab, sub: jax.tree.map(lambda _: lab, sub, is_leaf=is_none), labels, tree,
            is_leaf=is_none,
        )
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_none)
        leaf_labels = treedef.flatten_up_to(expanded)
        for (path, _), lab in zip(paths_leaves, leaf_labels):
            if lab not in self.transforms:
                raise ValueError(
                    f"gx.partition: the parameter at {jax.tree_util.keystr(path) or '<root>'} has "
                    f"label {lab!r}, which has no transformation (`transforms` has keys "
                    f"{sorted(map(repr, self.transforms))}). Add a transformation for {lab!r} "
                    "or relabel the parameter."
                )
        return {
            group: Masked(tx, HashableTree(treedef.unflatten([lab == group for lab in leaf_labels])))
            for group, tx in self.transforms.items()
        }

    def init(self, params):
        groups = self._groups(params)
        return PartitionState({g: m.init(params) for g, m in groups.items()})

    def update(self, updates, state, params=None, **extra_args):
        # Labels come from the updates when `param_labels` is a function, as in optax.
        groups = self._groups(updates)
        new_states = {}
        for g, m in groups.items():
            updates, new_states[g] = m.update(updates, state.inner_states[g], params, **extra_args)
        return updates, PartitionState(new_states)


@fill
def partition(
    transforms: Mapping[Hashable, Any], param_labels: Any | Callable[[Any], Any]
) -> Partition:
    r"""Applies a different transformation to each labelled group of parameters.

    Each leaf $\theta_i$ of the params carries a label $\ell(i)$; the update of
    leaf $i$ is the output of ``transforms[`` $\ell(i)$ ``]``, run on the
    sub-tree of the leaves with that label (the others are masked out as in
    :func:`~gradtx.masked`, so each transformation keeps state only for its own
    leaves):

    .. math::
        u_i = \mathcal{T}_{\ell(i)}\big(\{g_j : \ell(j) = \ell(i)\}\big)_i .

    Optax's ``partition`` (formerly ``multi_transform``), with the same state
    layout (:class:`PartitionState` holding a ``MaskedState`` per label).

    Args:
      transforms: a mapping ``label -> transformation`` (gradtx or optax).
      param_labels: a pytree of labels with the structure of the params (or a
        prefix of it: one label for a whole subtree), or a function
        ``params -> labels``. Labels are static: part of the optimizer's
        structure. Every label must be a key of ``transforms``; a
        transformation whose label is unused gets an empty state.

    Returns:
      {returns_tx} State:
      :class:`PartitionState`.

    Raises:
      ValueError: (at ``init``/``update``) a label has no transformation (the
        message names the label and the parameter's path), or the labels tree
        does not match the params (the message names the first differing path).

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
      >>> tx = gx.partition({"fast": gx.sgd(1.0), "slow": gx.sgd(0.1)},
      ...                   {"w": "fast", "b": "slow"})
      >>> updates, _ = tx.update({"w": jnp.ones(2), "b": jnp.array(1.0)}, tx.init(params))
      >>> print(updates["w"], updates["b"])
      [-1. -1.] -0.1
    """
    from gradtx.transforms.combine import as_transform

    if not isinstance(transforms, Mapping):
        raise TypeError(
            "gx.partition: `transforms` must be a mapping label -> transformation, "
            f"got {type(transforms).__name__}."
        )
    txs = {k: as_transform(v, "partition") for k, v in transforms.items()}
    labels = param_labels if callable(param_labels) else HashableTree(param_labels)
    return Partition(txs, labels)
