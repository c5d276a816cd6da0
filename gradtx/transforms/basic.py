"""Stateless building blocks: identity, zero, user functions, scaling, sign."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from gradtx.core.base import EmptyState, GradientTransformation, StatelessTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, Hyper, as_schedule
from gradtx.core.module import hyper, static
from gradtx.core.tree import scalar_for, tree_map_none

__all__ = [
    "identity",
    "set_to_zero",
    "stateless",
    "stateless_with_tree_map",
    "scale",
    "scale_by_schedule",
    "scale_by_learning_rate",
    "scale_by_sign",
    "Stateless",
    "Scale",
    "ScaleByLearningRate",
]


class Stateless(GradientTransformation):
    """A stateless transformation ``updates = fn(updates, params)``.

    ``fn`` is static; with ``tree_map=True`` it is applied leaf by leaf.
    """

    gx_name = "stateless"
    fn: Callable = static()
    tree_map: bool = static(False)

    def init(self, params):
        return EmptyState()

    def update(self, updates, state, params=None, **extra_args):
        if self.tree_map:
            if params is None:
                return tree_map_none(lambda g: self.fn(g, None), updates), state
            return tree_map_none(self.fn, updates, params), state
        return self.fn(updates, params), state


def identity() -> Stateless:
    """Returns updates unchanged."""
    return Stateless(_identity, tree_map=False)


def _identity(updates, params):
    return updates


def _zeros(updates, params):
    return tree_map_none(jnp.zeros_like, updates)


def set_to_zero() -> Stateless:
    """Replaces every update by zeros (e.g. to freeze parameters in a partition)."""
    return Stateless(_zeros, tree_map=False)


def stateless(f: Callable[[Any, Any], Any]) -> Stateless:
    """A transformation from ``f(updates, params) -> updates`` (whole trees)."""
    return Stateless(f, tree_map=False)


def stateless_with_tree_map(f: Callable[[jax.Array, Any], jax.Array]) -> Stateless:
    """A transformation from ``f(g, p) -> g'`` applied leaf by leaf."""
    return Stateless(f, tree_map=True)


def _scale_by(updates, factor):
    factor = scalar_for(factor, promote=False)  # in each leaf's own dtype
    return tree_map_none(lambda g: factor(g) * g, updates)


class Scale(StatelessTransformation):
    r"""Multiplies updates by a step size: $u \leftarrow s\,u$."""

    gx_name = "scale"
    step_size: Hyper = hyper(check=ANY_REAL)

    def apply(self, updates, h, params):
        return _scale_by(updates, h.step_size)


@fill
def scale(step_size: Hyper) -> Scale:
    r"""Scales updates by ``step_size``: $u \leftarrow s\,u$.

    Args:
      step_size: the factor $s$ (any real; a float, array or schedule).

    Returns:
      {returns_tx} Its state is ``EmptyState()``, or ``ScaleByScheduleState(count)``
      when ``step_size`` is a schedule.
    """
    return Scale(step_size)


def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> Scale:
    r"""Scales updates by ``step_size_fn(count)``, ``count`` = updates so far.

    The same transformation as :func:`scale` with a schedule; kept under
    optax's name. ``step_size_fn`` may be a gradtx schedule (traceable numbers)
    or any callable.
    """
    if not callable(step_size_fn):
        raise TypeError(
            f"gx.scale_by_schedule: `step_size_fn` must be callable (a schedule), got "
            f"{step_size_fn!r}; use gx.scale for a constant."
        )
    return Scale(as_schedule(step_size_fn))


class ScaleByLearningRate(StatelessTransformation):
    r"""Scales updates by $-\eta$ (or $+\eta$ with ``flip_sign=False``)."""

    gx_name = "scale_by_learning_rate"
    learning_rate: Hyper = hyper(check=NONNEGATIVE)
    flip_sign: bool = static(True)

    def apply(self, updates, h, params):
        return _scale_by(updates, -h.learning_rate if self.flip_sign else h.learning_rate)


@fill
def scale_by_learning_rate(
    learning_rate: Hyper | None = None, *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Scales updates by the learning rate: $u \leftarrow -\eta\,u$.

    Args:
      {learning_rate}
        None returns :func:`identity` (as optax does).
      flip_sign: multiply by $-\eta$ (descent) when True, $+\eta$ when False.

    Returns:
      {returns_tx}
    """
    if learning_rate is None:
        return identity()
    return ScaleByLearningRate(learning_rate, flip_sign)


def _sign(updates, params):
    return tree_map_none(jnp.sign, updates)


def scale_by_sign() -> Stateless:
    r"""Replaces each update by its sign: $u \leftarrow \mathrm{sign}(u)$ (signSGD)."""
    return Stateless(_sign, tree_map=False)
