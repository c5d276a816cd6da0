r"""Hessian-vector products by forward-over-reverse differentiation.

$Hv = \frac{d}{d\epsilon} \nabla f(w + \epsilon v)\big|_{\epsilon=0}$: one JVP of
the gradient, about the cost of two gradients, and the Hessian is never formed
(Pearlmutter, 1994). :func:`flat_hvp` wraps it as a matrix-free operator on
flat vectors for the eigenvalue solvers in :mod:`gradtx.curvature.eigen`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gradtx.core import tree as gt

__all__ = ["hvp", "flat_hvp"]


def _check_params(loss_fn: Any, params: Any, where: str) -> None:
    if not callable(loss_fn):
        raise TypeError(
            f"{where}: `loss_fn` must be a callable `(params, *args) -> scalar`, got {type(loss_fn).__name__}."
        )
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(
            f"{where}: `params` has no array leaves; pass the parameter pytree the loss is differentiated in."
        )
    for x in leaves:
        dtype = jnp.result_type(x)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{where}: every leaf of `params` must be a real floating array, got {dtype}. "
                f"Cast integer leaves to float, or close over non-trainable leaves inside `loss_fn`."
            )


def hvp(loss_fn: Callable[..., jax.Array], params: Any, v: Any, *args: Any) -> Any:
    r"""Hessian-vector product $H v$ of ``loss_fn`` at ``params``, as a pytree like ``params``.

    .. math::
        H v = \frac{\partial}{\partial \epsilon}\,
        \nabla_w f(w + \epsilon v, \ldots)\Big|_{\epsilon = 0}

    computed forward-over-reverse (``jax.jvp`` of ``jax.grad``), without
    forming $H$: the cost is about two gradient evaluations.

    Args:
      loss_fn: ``(params, *args) -> scalar``.
      params: the point $w$: a pytree of real floating arrays.
      v: the direction, a pytree with the structure of ``params`` (its leaves
        are cast to the params' dtypes).
      *args: passed to ``loss_fn`` unchanged, e.g. a mini-batch; they are not
        differentiated.

    Returns:
      $Hv$, a pytree like ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda w: w[0] ** 2 + 3 * w[0] * w[1]        # H = [[2, 3], [3, 0]]
      >>> w, v = jnp.array([1.0, 2.0], jnp.float32), jnp.array([1.0, 0.0], jnp.float32)
      >>> gx.hvp(loss, w, v)
      Array([2., 3.], dtype=float32)

    References:
      Pearlmutter, *Fast exact multiplication by the Hessian*, Neural Computation, 1994.
    """
    _check_params(loss_fn, params, "hvp")
    gt.check_same_structure(params, v, "params", "v", "hvp")
    v = gt.cast_like(v, params)
    grad = jax.grad(lambda p: loss_fn(p, *args))
    return jax.jvp(grad, (params,), (v,))[1]


def flat_hvp(
    loss_fn: Callable[..., jax.Array], params: Any, *args: Any
) -> tuple[Callable[[jax.Array], jax.Array], jax.Array, Callable[[jax.Array], Any]]:
    r"""The Hessian of ``loss_fn`` at ``params`` as a matrix-free operator on flat vectors.

    Flattens ``params`` with ``jax.flatten_util.ravel_pytree`` into a vector of
    length $n$ (in the promoted dtype of the leaves) and linearizes
    $\nabla f$ once (``jax.linearize``), so each product $v \mapsto Hv$ reuses
    the forward pass: the form the eigenvalue solvers iterate on.

    Args:
      loss_fn: ``(params, *args) -> scalar``.
      params: the point: a pytree of real floating arrays.
      *args: passed to ``loss_fn`` unchanged (e.g. a mini-batch).

    Returns:
      ``(matvec, flat_params, unravel)``: ``matvec`` maps a vector of shape
      ``(n,)`` to $Hv$ of shape ``(n,)``; ``flat_params`` is the flattened
      point (its size and dtype are those of the vectors); ``unravel`` maps a
      flat vector back to a pytree like ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda p: p["a"] ** 2 + 5 * p["b"] ** 2        # H = diag(2, 10)
      >>> matvec, flat, unravel = gx.flat_hvp(loss, {"a": jnp.float32(1), "b": jnp.float32(1)})
      >>> matvec(jnp.ones_like(flat))
      Array([ 2., 10.], dtype=float32)

    References:
      Pearlmutter, 1994.
    """
    _check_params(loss_fn, params, "flat_hvp")
    flat, unravel = ravel_pytree(params)

    def flat_grad(x: jax.Array) -> jax.Array:
        return ravel_pytree(jax.grad(lambda p: loss_fn(p, *args))(unravel(x)))[0]

    _, linear = jax.linearize(flat_grad, flat)
    return linear, flat, unravel
