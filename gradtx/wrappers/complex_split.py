"""``split_real_and_imaginary``: run an optimizer on complex parameters as pairs of reals."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.base import GradientTransformation
from gradtx.core.module import child

__all__ = [
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "SplitRealAndImaginary",
    "split_real_and_imaginary",
]


class SplitRealAndImaginaryArrays(NamedTuple):
    """A complex array as the pair of real arrays the inner transformation sees."""

    real: jax.Array
    imaginary: jax.Array


class SplitRealAndImaginaryState(NamedTuple):
    """State of :func:`split_real_and_imaginary`: the inner transformation's (on the split tree)."""

    inner_state: Any


def _split(x: Any) -> Any:
    if x is not None and jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
    return x


def _merge(x: Any) -> Any:
    if isinstance(x, SplitRealAndImaginaryArrays):
        return jax.lax.complex(x.real, x.imaginary)
    return x


def _split_tree(tree: Any) -> Any:
    return jax.tree.map(_split, tree, is_leaf=lambda x: x is None)


class SplitRealAndImaginary(GradientTransformation):
    """See :func:`split_real_and_imaginary`."""

    gx_name = "split_real_and_imaginary"
    inner: GradientTransformation = child()

    def init(self, params):
        return SplitRealAndImaginaryState(self.inner.init(_split_tree(params)))

    def update(self, updates, state, params=None, **extra_args):
        split_params = None if params is None else _split_tree(params)
        new, inner_state = self.inner.update(_split_tree(updates), state.inner_state, split_params, **extra_args)
        merged = jax.tree.map(_merge, new, is_leaf=lambda x: isinstance(x, SplitRealAndImaginaryArrays) or x is None)
        return merged, SplitRealAndImaginaryState(inner_state)


def split_real_and_imaginary(inner: Any) -> SplitRealAndImaginary:
    r"""Runs ``inner`` on each complex leaf as two real leaves, its real and imaginary parts.

    A complex parameter $z = x + iy$ and its update become the pair $(x, y)$
    before ``inner.update`` and are merged back after it, so an optimizer whose
    statistics are per real number (Adam's $v$, a sign, a factored second
    moment) treats $z$ exactly as it would two real parameters; real leaves
    pass through unchanged. JAX's ``jax.grad`` of a real loss of $z$ returns
    $\partial_x f - i\,\partial_y f$: conjugate it before the update for a
    descent direction (optax's convention, google-deepmind/optax#196).

    Same name, signature and numerics as ``optax.contrib.split_real_and_imaginary``;
    here the wrapper is a pytree whose child is ``inner``, so ``inner``'s
    hyperparameters stay leaves (vmap and jit over them as for ``inner``), and
    extra ``update`` arguments (``value=`` …) reach ``inner``.

    Args:
      inner: the transformation to run on the split tree.

    Returns:
      A :class:`~gradtx.GradientTransformation`; state
      :class:`SplitRealAndImaginaryState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.split_real_and_imaginary(gx.sign_sgd(0.1))
      >>> z = jnp.asarray([1.0 + 2.0j, -3.0 - 0.5j])
      >>> u, _ = opt.update(z, opt.init(z), z)
      >>> print(u)
      [-0.1-0.1j  0.1+0.1j]

    Alone, ``sign_sgd`` takes JAX's complex sign $z/|z|$ (a unit step in $z$'s
    direction: here $-0.1(0.447+0.894i)$ for the first entry); split, it takes
    the sign of each part, as signSGD on the pair of reals.
    """
    from gradtx.transforms.combine import as_transform

    return SplitRealAndImaginary(as_transform(inner, "split_real_and_imaginary"))
