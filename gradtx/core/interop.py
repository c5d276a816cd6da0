"""Interop with optax's combinators: ``as_optax`` and the missing-extra-argument message.

optax is not a dependency of gradtx: it is imported only inside :func:`as_optax`.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["as_optax", "missing_extra_args_message", "OPTAX_CHAIN_HINT"]

OPTAX_CHAIN_HINT = (
    "Inside a chain: `gx.chain` passes extra keyword arguments on to every member, but "
    "`optax.chain` and optax's other combinators drop them for members that are not "
    "`optax.GradientTransformationExtraArgs`; there, wrap this transform (or the gradtx "
    "chain holding it) as `gx.as_optax(tx)`, or compose with `gx.chain` instead."
)


def missing_extra_args_message(where: str, missing: Sequence[str], how: str) -> str:
    """The error message of an ``update`` called without required extra keyword arguments.

    Args:
      where: the public name of the transform, e.g. ``"gx.reduce_on_plateau"``.
      missing: the names of the missing keyword arguments.
      how: a sentence on how to call ``update`` with them.

    Returns:
      ``"{where}: `update` needs the keyword argument(s) ...: {how} ..."``, ending
      with what to do inside ``optax.chain`` (:func:`as_optax`) or instead of it
      (:func:`~gradtx.chain`).
    """
    names = ", ".join(f"`{m}`" for m in missing)
    plural = "s" if len(missing) > 1 else ""
    return f"{where}: `update` needs the keyword argument{plural} {names}: {how} {OPTAX_CHAIN_HINT}"


def as_optax(tx: Any) -> Any:
    """Returns ``tx`` as an ``optax.GradientTransformationExtraArgs``.

    A gradtx transformation already works inside ``optax.chain`` (it has
    ``init`` and ``update``), but optax's combinators pass extra keyword
    arguments such as ``value=`` only to members that are
    ``optax.GradientTransformationExtraArgs``, and silently drop them for the
    others. Wrap a gradtx transformation that needs them
    (:func:`~gradtx.reduce_on_plateau`,
    :func:`~gradtx.scale_by_backtracking_linesearch`, or a chain holding one)
    so they reach it. Wrapping one that needs none is harmless: its ``update``
    ignores them. Within gradtx, :func:`~gradtx.chain` needs no wrapper.

    Inside optax's combinators the wrapped transformation's hyperparameters are
    closed over, as optax's own are: a jitted function that closes over the
    result bakes them into its compiled program, and the result (a tuple of
    functions) is not a valid ``jit`` argument. ``tx`` itself stays a value:
    to keep its numbers as leaves, pass ``tx`` to the jitted function and call
    ``gx.as_optax(tx)`` (and ``optax.chain``) inside it; a new learning rate
    then does not recompile.

    Args:
      tx: a gradtx transformation, an optax transformation (returned with
        extra-argument support, as ``optax.with_extra_args_support`` does), or
        any object with ``init`` and ``update``.

    Returns:
      ``optax.GradientTransformationExtraArgs(init, update)`` whose ``update``
      forwards ``**extra_args`` to ``tx.update``.

    Raises:
      ImportError: optax is not installed (gradtx itself does not need it).
      TypeError: ``tx`` has no ``init`` and ``update``.

    Example:
      >>> import jax.numpy as jnp, optax, gradtx as gx
      >>> opt = optax.chain(optax.sgd(0.1), gx.as_optax(gx.reduce_on_plateau(factor=0.5, patience=1)))
      >>> params = jnp.ones(2)
      >>> state = opt.init(params)
      >>> for loss in [1.0, 2.0, 2.0]:
      ...     u, state = opt.update(jnp.ones(2), state, params, value=loss)
      >>> float(state[1].scale)
      0.25
    """
    try:
        import optax
    except ImportError as e:
        raise ImportError(
            "gx.as_optax needs optax, which gradtx does not depend on: `pip install optax`. "
            "Without optax, compose with `gx.chain`, which passes extra keyword arguments on."
        ) from e
    if isinstance(tx, optax.GradientTransformation):
        return optax.with_extra_args_support(tx)
    from gradtx.transforms.combine import as_transform  # lazy: core does not import transforms

    tx = as_transform(tx, "as_optax")

    def update(updates, state, params=None, **extra_args):
        return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update)
