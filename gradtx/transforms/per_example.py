"""Per-example gradient clipping for differentially private training (DP-SGD).

These are functions of a batch of per-example gradients (every leaf has the
examples on axis 0), not transformations: each clips every example's gradient
and returns the sum over the batch, ready for noise and averaging.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.hyperparams import NONNEGATIVE, concrete_value
from gradtx.core import tree as gt

__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip"]


def _check_clip(where: str, name: str, value: Any) -> None:
    arr = concrete_value(value)
    if arr is not None and not bool(np.all(NONNEGATIVE.predicate(arr))):
        raise ValueError(f"gx.{where}: `{name}` must be {NONNEGATIVE.description}, got {value}.")


def _check_batched(where: str, grads: Any) -> None:
    leaves = jax.tree.leaves(grads)
    shapes = [jnp.shape(g) for g in leaves]
    if not leaves or any(len(s) == 0 or s[0] != shapes[0][0] for s in shapes):
        raise ValueError(
            f"gx.{where}: every leaf of `grads` must have the examples on axis 0 (the same "
            f"batch size everywhere); got shapes {jax.tree.map(jnp.shape, grads)}."
        )


def _clip_and_sum(grads: Any, clip: Any) -> tuple[Any, jax.Array]:
    norms = jax.vmap(gt.global_norm)(grads)
    # 1 where the norm is within the bound (also 0/0 and inf/inf), else c / norm.
    factors = jnp.where(norms <= clip, jnp.ones_like(norms), clip / norms)
    clipped = jnp.sum(factors < 1).astype(jnp.int32)
    summed = jax.tree.map(lambda g: jnp.tensordot(factors, g, axes=1), grads)
    return summed, clipped


def per_example_global_norm_clip(grads: Any, l2_norm_clip: Any) -> tuple[Any, jax.Array]:
    r"""Clips each example's whole gradient to norm at most $C$ and sums over the batch.

    .. math::
        \bar g = \sum_{b} g_b \cdot \min\!\left(1, \frac{C}{\lVert g_b\rVert_2}\right)

    where $\lVert g_b\rVert_2$ is example $b$'s global norm over every leaf
    (factor 1 where $\lVert g_b\rVert_2 = 0$).

    Args:
      grads: a pytree of per-example gradients, each leaf with the batch on axis 0.
      l2_norm_clip: $C \ge 0$ (``jnp.inf``: no clipping).

    Returns:
      ``(summed, num_clipped)``: the sum of the clipped gradients (a tree like
      one example's gradient) and how many examples were clipped (int32).

    Raises:
      ValueError: a leaf has no batch axis or the batch sizes differ, or
        ``l2_norm_clip`` is negative.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> grads = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]], jnp.float32)]
      >>> gx.per_example_global_norm_clip(grads, 1.25)
      ([Array([1.75, 1.75, 1.75], dtype=float32)], Array(3, dtype=int32))

    References:
      Abadi et al., *Deep Learning with Differential Privacy*, CCS 2016.
    """
    _check_batched("per_example_global_norm_clip", grads)
    _check_clip("per_example_global_norm_clip", "l2_norm_clip", l2_norm_clip)
    return _clip_and_sum(grads, l2_norm_clip)


def per_example_layer_norm_clip(
    grads: Any, global_l2_norm_clip: Any, uniform: bool = True
) -> tuple[Any, Any]:
    r"""Clips each example's gradient layer by layer (leaf by leaf) and sums over the batch.

    Leaf $i$ of every example is clipped to norm at most $C_i$, where
    $C_i = C/\sqrt{K}$ for $K$ leaves (``uniform``), else
    $C_i = C\sqrt{D_i/D}$ with $D_i$ the leaf's size per example and $D$ the
    total; either way $\sum_i C_i^2 = C^2$, so the whole clipped gradient has
    norm at most $C$. Each leaf is then :func:`per_example_global_norm_clip`
    on its own. With one leaf both equal :func:`per_example_global_norm_clip`.

    Args:
      grads: a pytree of per-example gradients, each leaf with the batch on axis 0.
      global_l2_norm_clip: $C \ge 0$.
      uniform: split $C$ equally between leaves (else in proportion to
        $\sqrt{\text{size}}$).

    Returns:
      ``(summed, num_clipped)``: two trees like ``grads``, the sums of the
      clipped gradients and, per leaf, how many examples were clipped (int32).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4]], jnp.float32),
      ...          "b": jnp.array([[2.0], [0.5]], jnp.float32)}
      >>> summed, clipped = gx.per_example_layer_norm_clip(grads, 2.0 ** 0.5)  # C_i = 1
      >>> summed["w"], summed["b"], clipped["w"]
      (Array([0.90000004, 1.2       ], dtype=float32), Array([1.5], dtype=float32), Array(1, dtype=int32))

    References:
      McMahan, Ramage, Talwar & Zhang, *Learning Differentially Private Recurrent
      Language Models*, ICLR 2018.
    """
    _check_batched("per_example_layer_norm_clip", grads)
    _check_clip("per_example_layer_norm_clip", "global_l2_norm_clip", global_l2_norm_clip)
    leaves, treedef = jax.tree.flatten(grads)
    if uniform:
        clips = [global_l2_norm_clip * (1.0 / len(leaves)) ** 0.5 for _ in leaves]
    else:
        total = sum(int(np.prod(jnp.shape(g)[1:])) for g in leaves)
        clips = [global_l2_norm_clip * (int(np.prod(jnp.shape(g)[1:])) / total) ** 0.5 for g in leaves]
    out = [_clip_and_sum(g, c) for g, c in zip(leaves, clips)]
    return treedef.unflatten([o[0] for o in out]), treedef.unflatten([o[1] for o in out])
