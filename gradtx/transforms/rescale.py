"""Per-block and global rescalings: centralize, normalize by the update norm,
scale by each parameter block's norm or RMS; and ``scale_gradient``, which
scales a gradient inside a loss rather than an update.

A *block* is one leaf of the tree (a weight matrix, a bias vector).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import NO_PARAMS_MSG, StatelessTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, Hyper, concrete_value
from gradtx.core.module import hyper
from gradtx.core.numerics import sum_of_squares

__all__ = [
    "Centralize",
    "NormalizeByUpdateNorm",
    "ScaleByParamBlockNorm",
    "ScaleByParamBlockRms",
    "centralize",
    "normalize",
    "normalize_by_update_norm",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_gradient",
]


class Centralize(StatelessTransformation):
    r"""Subtracts each leaf's mean over all but its first axis (see :func:`centralize`)."""

    gx_name = "centralize"

    def apply(self, updates, h, params):
        def one(g):
            if jnp.ndim(g) <= 1:
                return g
            return g - jnp.mean(g, axis=tuple(range(1, g.ndim)), keepdims=True)

        return gt.tree_map_none(one, updates)


def centralize() -> Centralize:
    r"""Gradient centralization: subtract each leaf's mean over all but its first axis.

    .. math:: u_{i,\cdot} = g_{i,\cdot} - \operatorname{mean}(g_{i,\cdot})

    For a leaf of shape ``(n, ...)`` every slice ``g[i]`` is made zero-mean;
    scalars and vectors pass unchanged (as in optax).

    Returns:
      A :class:`~gradtx.GradientTransformation` with state ``EmptyState()``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.centralize()
      >>> g = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 9.0]])
      >>> tx.update(g, tx.init(g))[0].tolist()
      [[-1.0, 0.0, 1.0], [-2.0, -1.0, 3.0]]

    References:
      Yong et al., *Gradient Centralization: A New Optimization Technique for
      Deep Neural Networks*, ECCV 2020.
    """
    return Centralize()


class NormalizeByUpdateNorm(StatelessTransformation):
    r"""Divides the updates by their global norm (see :func:`normalize_by_update_norm`)."""

    gx_name = "normalize_by_update_norm"
    scale_factor: Hyper = hyper(1.0, ANY_REAL)
    eps: Hyper = hyper(1e-6, NONNEGATIVE)

    def apply(self, updates, h, params):
        denom = gt.global_norm(updates) + h.eps
        # All-zero updates with eps = 0 stay zero (optax: 0/0 = NaN).
        factor = h.scale_factor / jnp.where(denom == 0, 1, denom)
        return gt.tree_map_none(lambda g: g * factor.astype(g.dtype), updates)


@fill
def normalize_by_update_norm(scale_factor: Hyper = 1.0, eps: Hyper = 1e-6) -> NormalizeByUpdateNorm:
    r"""Rescales the updates to (nearly) a fixed global norm.

    .. math:: u = s\, \frac{g}{\lVert g \rVert_2 + \epsilon},
        \qquad \lVert g \rVert_2 = \sqrt{\textstyle\sum_{\text{leaves}} \sum_i |g_i|^2}

    Unlike optax, which divides by $(\lVert g\rVert + \epsilon)/s$, the
    factor $s/(\lVert g\rVert + \epsilon)$ is computed once and multiplied in:
    ``scale_factor=0`` gives zeros (optax: a division by 0), and all-zero
    updates with ``eps=0`` give zeros instead of NaN.

    Args:
      scale_factor: $s$, any real (e.g. $-1$ for a normalized descent step).
      eps: $\epsilon \ge 0$ added to the norm.

    {hyper}

    Returns:
      {returns_tx}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.normalize_by_update_norm(scale_factor=2.5, eps=0.0)
      >>> g = jnp.array([3.0, 4.0])
      >>> tx.update(g, tx.init(g))[0].tolist()
      [1.5, 2.0]
    """
    return NormalizeByUpdateNorm(scale_factor, eps)


def normalize() -> NormalizeByUpdateNorm:
    r"""Divides the updates by their global norm: $u = g / \lVert g\rVert_2$.

    optax.contrib's ``normalize`` (the normalised ascent step of SAM, Foret et
    al., ICLR 2021), with no hyperparameters: it is
    ``normalize_by_update_norm(scale_factor=1.0, eps=0.0)``, and returns that
    transformation. All-zero updates stay zero (optax: 0/0 = NaN), and the
    factor $1/\lVert g\rVert$ is computed once and multiplied in (optax divides
    each leaf; the two agree to an ulp).

    Returns:
      A :class:`NormalizeByUpdateNorm` with ``scale_factor=1``, ``eps=0``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.normalize()
      >>> g = {"a": jnp.asarray([3.0], jnp.float32), "b": jnp.asarray([4.0], jnp.float32)}
      >>> print(tx.update(g, tx.init(g))[0])
      {'a': Array([0.6], dtype=float32), 'b': Array([0.8], dtype=float32)}
    """
    return normalize_by_update_norm(1.0, 0.0)


def _floored_sqrt(s: jax.Array, floor: Any) -> jax.Array:
    r"""$\max(\sqrt{s}, f)$ with a finite gradient at $s = 0$ (the square root is never taken of 0 there)."""
    zero = s == 0
    root = jnp.sqrt(jnp.where(zero, 1, s))
    return jnp.where(zero | (root <= floor), floor, root)


def _scale_by_param_block(updates, params, floor, mean: bool, where: str):
    if params is None:
        raise ValueError(f"gx.{where}: {NO_PARAMS_MSG}")

    def one(u, p):
        s = sum_of_squares(p)
        if mean:
            s = s / max(jnp.size(p), 1)
        return u * _floored_sqrt(s, floor).astype(u.dtype)

    return gt.tree_map_none(one, updates, params)


class ScaleByParamBlockNorm(StatelessTransformation):
    r"""Multiplies each leaf by its parameter's norm (see :func:`scale_by_param_block_norm`)."""

    gx_name = "scale_by_param_block_norm"
    min_scale: Hyper = hyper(1e-3, NONNEGATIVE)

    def apply(self, updates, h, params):
        return _scale_by_param_block(updates, params, h.min_scale, False, self.gx_name)


class ScaleByParamBlockRms(StatelessTransformation):
    r"""Multiplies each leaf by its parameter's RMS (see :func:`scale_by_param_block_rms`)."""

    gx_name = "scale_by_param_block_rms"
    min_scale: Hyper = hyper(1e-3, NONNEGATIVE)

    def apply(self, updates, h, params):
        return _scale_by_param_block(updates, params, h.min_scale, True, self.gx_name)


@fill
def scale_by_param_block_norm(min_scale: Hyper = 1e-3) -> ScaleByParamBlockNorm:
    r"""Scales each block's update by the norm of that block's parameters.

    .. math:: u_b = g_b \cdot \max\!\left(\lVert \theta_b \rVert_2,\ s_{min}\right)

    for every leaf $b$ (the Frobenius norm of a matrix). Steps are then
    relative to the size of the weights, as in LARS/LAMB's trust ratio
    numerator. The floor has a finite gradient at $\theta_b = 0$ (as optax's),
    here from one pass over $\theta_b$ instead of two.

    Args:
      min_scale: $s_{min} \ge 0$, the smallest factor (a block of zeros still moves).

    {hyper}

    Returns:
      {returns_tx} ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_param_block_norm(min_scale=0.5)
      >>> p = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
      >>> u, _ = tx.update({"w": jnp.ones(2), "b": jnp.ones(2)}, tx.init(p), p)
      >>> u["w"].tolist(), u["b"].tolist()
      ([5.0, 5.0], [0.5, 0.5])
    """
    return ScaleByParamBlockNorm(min_scale)


@fill
def scale_by_param_block_rms(min_scale: Hyper = 1e-3) -> ScaleByParamBlockRms:
    r"""Scales each block's update by the root mean square of that block's parameters.

    .. math:: u_b = g_b \cdot \max\!\left(\sqrt{\tfrac{1}{n_b}\textstyle\sum_i |\theta_{b,i}|^2},\ s_{min}\right)

    The per-element analogue of :func:`scale_by_param_block_norm`, used by
    Adafactor's ``multiply_by_parameter_scale``. The floor has a finite
    gradient at $\theta_b = 0$ (as optax's), here from one pass over $\theta_b$.

    Args:
      min_scale: $s_{min} \ge 0$, the smallest factor.

    {hyper}

    Returns:
      {returns_tx} ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_param_block_rms()
      >>> p = jnp.array([1.0, -1.0, 1.0, -1.0]) * 2
      >>> tx.update(jnp.ones(4), tx.init(p), p)[0].tolist()
      [2.0, 2.0, 2.0, 2.0]
    """
    return ScaleByParamBlockRms(min_scale)


@jax.custom_vjp
def _scaled_backward(inputs: Any, scale: Any) -> Any:
    return inputs


def _scaled_backward_fwd(inputs, scale):
    return inputs, scale


def _scaled_backward_bwd(scale, cotangents):
    # The cotangent keeps its primal's dtype (a float64 scale must not widen a float32 gradient);
    # the output does not depend on `scale`, so its cotangent is 0.
    scaled = gt.tree_map_none(lambda c: (c * scale).astype(c.dtype), cotangents)
    return scaled, jnp.zeros_like(scale)


_scaled_backward.defvjp(_scaled_backward_fwd, _scaled_backward_bwd)


def scale_gradient(inputs: Any, scale: Any) -> Any:
    r"""Identity on the forward pass; multiplies the gradient by ``scale`` on the backward pass.

    .. math:: y = x, \qquad \frac{\partial L}{\partial x} = s\,\frac{\partial L}{\partial y}

    A function to call inside a loss (not a transformation), e.g. to slow the
    learning of a shared trunk, or with ``scale = -1`` to reverse a gradient
    (domain-adversarial training). ``scale = 1`` returns ``inputs`` and
    ``scale = 0`` is ``jax.lax.stop_gradient``, as in optax, but only when
    ``scale`` is concrete: unlike optax, a traced ``scale`` (under ``jit`` or
    ``vmap``) works, and the gradient keeps each input's dtype.

    Args:
      inputs: a pytree of arrays.
      scale: the factor $s$ (any real number; a float or a scalar array).

    Returns:
      ``inputs``, unchanged, with the scaled backward pass attached.

    Example:
      >>> import jax, gradtx as gx
      >>> float(jax.grad(lambda x: gx.scale_gradient(x, 0.5) ** 2)(3.0))
      3.0
    """
    value = concrete_value(scale)
    if value is not None and value.size == 1:
        if value == 1:
            return inputs
        if value == 0:
            return jax.lax.stop_gradient(inputs)
    return _scaled_backward(inputs, jnp.asarray(scale))
