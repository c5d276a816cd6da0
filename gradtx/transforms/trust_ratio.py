"""Layer-wise trust ratios (LARS, LAMB) and unit-wise adaptive gradient clipping (AGC)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx.core.base import NO_PARAMS_MSG, StatelessTransformation
from gradtx.core.hyperparams import NONNEGATIVE, Hyper
from gradtx.core.module import hyper, static
from gradtx.core.numerics import abs_sq
from gradtx.core import tree as gt

__all__ = [
    "ScaleByTrustRatio",
    "AdaptiveGradClip",
    "scale_by_trust_ratio",
    "adaptive_grad_clip",
    "unitwise_norm",
]


class ScaleByTrustRatio(StatelessTransformation):
    r"""Per-leaf trust ratio $\lVert\theta\rVert / \lVert u\rVert$ (see :func:`scale_by_trust_ratio`)."""

    gx_name = "scale_by_trust_ratio"
    min_norm: Hyper = hyper(0.0, NONNEGATIVE)
    trust_coefficient: Hyper = hyper(1.0, NONNEGATIVE)
    eps: Hyper = hyper(0.0, NONNEGATIVE)

    def apply(self, updates, h, params):
        if params is None:
            raise ValueError(f"gx.scale_by_trust_ratio: {NO_PARAMS_MSG}")

        def one(u, p):
            p_norm, u_norm = gt.global_norm(p), gt.global_norm(u)
            ratio = h.trust_coefficient * jnp.maximum(p_norm, h.min_norm) / (
                jnp.maximum(u_norm, h.min_norm) + h.eps
            )
            # Exactly 1 where either raw norm is 0 (optax tests the clipped norms, so
            # with min_norm > 0 a zero parameter still gets min_norm / |u|).
            ratio = jnp.where((p_norm == 0) | (u_norm == 0), jnp.ones([], p_norm.dtype), ratio)
            return u * ratio.astype(jnp.result_type(p))

        return gt.tree_map_none(one, updates, params)


def scale_by_trust_ratio(
    min_norm: Hyper = 0.0, trust_coefficient: Hyper = 1.0, eps: Hyper = 0.0
) -> ScaleByTrustRatio:
    r"""Scales each leaf's update by its layer-wise trust ratio (LARS, LAMB).

    .. math::
        u \leftarrow u \cdot r, \qquad
        r = \frac{c\,\max(\lVert\theta\rVert_2, n_{min})}{\max(\lVert u\rVert_2, n_{min}) + \epsilon},
        \qquad r = 1 \text{ where } \lVert\theta\rVert_2 = 0 \text{ or } \lVert u\rVert_2 = 0

    Norms are Frobenius norms over the whole leaf. Each step then moves a leaf
    by $c$ times its own norm (times the learning rate), whatever the scale of
    its gradient.

    Better than optax: the ratio is exactly 1 wherever the parameter's or the
    update's *raw* norm is 0 (a zero-initialised bias, a leaf without
    gradient), also when ``min_norm > 0``; optax tests the norms after
    clipping them to ``min_norm``, so there a zero leaf is scaled by
    $c\,n_{min}/\lVert u\rVert$. With ``min_norm=0`` (the default, and in
    :func:`lamb` and :func:`lars`) both agree.

    Args:
      min_norm: $n_{min} \ge 0$, a floor for both norms.
      trust_coefficient: $c \ge 0$, multiplies the ratio.
      eps: $\epsilon \ge 0$ added to the denominator.

    Returns:
      A stateless transformation; ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_trust_ratio()
      >>> params = {"w": jnp.array([3.0, 4.0], jnp.float32), "b": jnp.zeros(2, jnp.float32)}
      >>> u, _ = tx.update({"w": jnp.array([0.0, 0.5], jnp.float32), "b": jnp.ones(2, jnp.float32)}, tx.init(params), params)
      >>> u["w"], u["b"]
      (Array([0., 5.], dtype=float32), Array([1., 1.], dtype=float32))

    References:
      You, Gitman & Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """
    return ScaleByTrustRatio(min_norm, trust_coefficient, eps)


def unitwise_norm(x: jax.Array, axis: Any = None) -> jax.Array:
    r"""The $\ell_2$ norm of each unit of ``x``, broadcast to ``x``'s shape (as optax's).

    A unit is a slice along ``axis``; by default: the whole array for scalars
    and vectors, axis 0 for rank 2 and 3 (fan-in of a dense or multi-head
    layer), axes (0, 1, 2) for rank 4 (HWIO convolutions), (0, 1, 2, 3) for
    rank 5.

    Raises:
      ValueError: ``x`` has rank above 5 and no ``axis`` is given.
    """
    x = jnp.asarray(x)
    if axis is None:
        if jnp.squeeze(x).ndim <= 1:
            axis = tuple(range(x.ndim))
        elif x.ndim in (2, 3):
            axis = 0
        elif x.ndim in (4, 5):
            axis = tuple(range(x.ndim - 1))
        else:
            raise ValueError(
                f"gx.unitwise_norm: expected a leaf of rank <= 5, got shape {x.shape}; "
                "pass `axis` to choose the reduction axes."
            )
    return jnp.broadcast_to(jnp.sqrt(jnp.sum(abs_sq(x), axis=axis, keepdims=True)), x.shape)


class AdaptiveGradClip(StatelessTransformation):
    r"""Unit-wise adaptive gradient clipping (see :func:`adaptive_grad_clip`)."""

    gx_name = "adaptive_grad_clip"
    clipping: Hyper = hyper(check=NONNEGATIVE)
    eps: Hyper = hyper(1e-3, NONNEGATIVE)
    axis: Any = static(None)

    def apply(self, updates, h, params):
        if params is None:
            raise ValueError(f"gx.adaptive_grad_clip: {NO_PARAMS_MSG}")

        def one(g, p):
            g_norm, p_norm = unitwise_norm(g, self.axis), unitwise_norm(p, self.axis)
            max_norm = h.clipping * jnp.maximum(p_norm, h.eps)
            # The floor 1e-6 only guards a 0/0 that the comparison never selects.
            clipped = g * (max_norm / jnp.maximum(g_norm, 1e-6))
            return jnp.where(g_norm < max_norm, g, clipped)

        return gt.tree_map_none(one, updates, params)


def adaptive_grad_clip(clipping: Hyper, eps: Hyper = 1e-3, axis: Any = None) -> AdaptiveGradClip:
    r"""Clips each unit's gradient to at most ``clipping`` times its parameters' norm (AGC).

    .. math::
        g_i \leftarrow \begin{cases}
          g_i & \lVert g_i\rVert < \lambda \max(\lVert\theta_i\rVert, \epsilon) \\
          \lambda \max(\lVert\theta_i\rVert, \epsilon)\, g_i / \lVert g_i\rVert & \text{otherwise}
        \end{cases}

    where $i$ runs over units (see :func:`unitwise_norm`: for a dense kernel,
    one output neuron's fan-in column).

    Args:
      clipping: $\lambda \ge 0$, the largest ratio of a unit's gradient norm to its
        parameter norm.
      eps: $\epsilon \ge 0$, a floor for the parameter norm, so zero-initialised
        parameters can still move.
      axis: axis or axes of a unit (static); None infers them from each leaf's rank.

    Returns:
      A stateless transformation; ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.adaptive_grad_clip(0.1)
      >>> params = jnp.array([3.0, 4.0], jnp.float32)
      >>> u, _ = tx.update(jnp.array([6.0, 8.0], jnp.float32), tx.init(params), params)
      >>> u
      Array([0.3, 0.4], dtype=float32)

    References:
      Brock, De, Smith & Simonyan, *High-Performance Large-Scale Image Recognition
      Without Normalization*, ICML 2021.
    """
    return AdaptiveGradClip(clipping, eps, tuple(axis) if isinstance(axis, list) else axis)
