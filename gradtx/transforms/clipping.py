"""Clipping: element-wise, by global norm (one scale factor), by block RMS."""

from __future__ import annotations

import jax.numpy as jnp

from gradtx.core.base import StatelessTransformation
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, Hyper
from gradtx.core.module import hyper
from gradtx.core.numerics import abs_sq
from gradtx.core import tree as gt

__all__ = ["Clip", "ClipByGlobalNorm", "ClipByBlockRms", "clip", "clip_by_global_norm", "clip_by_block_rms"]


class Clip(StatelessTransformation):
    gx_name = "clip"
    max_delta: Hyper = hyper(check=NONNEGATIVE)

    def apply(self, updates, h, params):
        return gt.tree_map_none(lambda g: jnp.clip(g, -h.max_delta, h.max_delta), updates)


def clip(max_delta: Hyper) -> Clip:
    r"""Clips each element to $[-\delta, \delta]$: $u \leftarrow \min(\max(g, -\delta), \delta)$.

    The seed's $\min(\nabla, \mathrm{th})$ made symmetric, so large negative
    components are bounded too.

    Args:
      max_delta: $\delta \ge 0$.
    """
    return Clip(max_delta)


class ClipByGlobalNorm(StatelessTransformation):
    gx_name = "clip_by_global_norm"
    max_norm: Hyper = hyper(check=NONNEGATIVE)

    def apply(self, updates, h, params):
        norm = gt.global_norm(updates)
        factor = jnp.where(norm < h.max_norm, 1.0, h.max_norm / jnp.where(norm == 0, 1.0, norm))
        return gt.tree_map_none(lambda g: g * factor.astype(g.dtype), updates)


def clip_by_global_norm(max_norm: Hyper) -> ClipByGlobalNorm:
    r"""Rescales all updates together so their global norm is at most $c$.

    .. math::
        u \leftarrow g \cdot \min\!\left(1, \frac{c}{\lVert g \rVert_2}\right),
        \qquad \lVert g \rVert_2 = \sqrt{\textstyle\sum_{\text{leaves}} \sum_i |g_i|^2}

    One scalar factor is computed and every leaf multiplied by it once: no
    clipped copy of the gradients is written (the multiply fuses with the
    next transform under ``jit``).

    Args:
      max_norm: $c \ge 0$.

    References:
      Pascanu, Mikolov & Bengio, *On the difficulty of training RNNs*, ICML 2013.
    """
    return ClipByGlobalNorm(max_norm)


class ClipByBlockRms(StatelessTransformation):
    gx_name = "clip_by_block_rms"
    threshold: Hyper = hyper(check=POSITIVE)

    def apply(self, updates, h, params):
        def clip_leaf(u):
            denom = jnp.maximum(1.0, jnp.sqrt(jnp.mean(abs_sq(u))) / h.threshold)
            return u / denom.astype(u.dtype)

        return gt.tree_map_none(clip_leaf, updates)


def clip_by_block_rms(threshold: Hyper) -> ClipByBlockRms:
    r"""Clips each leaf (block) so its root mean square is at most $\tau$.

    .. math:: u \leftarrow g / \max\!\left(1, \mathrm{RMS}(g)/\tau\right)

    Args:
      threshold: $\tau > 0$.
    """
    return ClipByBlockRms(threshold)
