"""`GradientTransformation`: the (init, update) contract, as a pytree value.

A transformation is a :class:`~gradtx.core.module.Module` with two pure
methods:

* ``init(params) -> state``: a pytree mirroring ``params`` (plus an int32
  ``count`` where the math or a schedule needs one);
* ``update(updates, state, params=None, **extra_args) -> (updates, state)``.

Because the transformation is itself a pytree whose leaves are its numeric
hyperparameters, it can be an ordinary argument of a jitted function (a new
learning rate never recompiles) and ``jax.vmap`` maps over a batch of them.

It is duck-type compatible with optax: it has ``.init`` and ``.update``, so it
works inside ``optax.chain`` and as the ``tx`` of ``flax.nnx.Optimizer``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.hyperparams import evaluate, is_scheduled
from gradtx.core.module import Module
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core.tree import cast, check_same_structure, is_none

__all__ = [
    "GradientTransformation",
    "StatelessTransformation",
    "EmptyState",
    "ScaleByScheduleState",
    "Params",
    "Updates",
    "OptState",
    "apply_updates",
    "schedule_count",
    "next_count",
    "NO_PARAMS_MSG",
]

Params = Any
Updates = Any
OptState = Any

NO_PARAMS_MSG = (
    "this transformation needs the current parameters: call "
    "`update(updates, state, params)` with `params`."
)


class EmptyState(NamedTuple):
    """The state of a stateless transformation."""


class ScaleByScheduleState(NamedTuple):
    """The state of a stateless transformation whose hyperparameters are scheduled.

    Attributes:
      count: the number of updates applied so far (int32 scalar).
    """

    count: jax.Array


class GradientTransformation(Module):
    """Base class of all transformations: ``init`` and ``update``, pure."""

    def init(self, params: Params) -> OptState:
        """Returns the initial state for ``params``."""
        raise NotImplementedError

    def update(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]:
        """Transforms ``updates``; returns them with the new state."""
        raise NotImplementedError


def schedule_count(module: Module) -> jax.Array | None:
    """A fresh step count if ``module`` has a scheduled hyperparameter, else None.

    Transforms whose math needs no count keep one in their state only when a
    schedule needs it (the state's ``count`` field is then an int32 scalar,
    else None, which is an empty pytree).
    """
    return zero_count() if is_scheduled(module) else None


def next_count(count: jax.Array | None) -> jax.Array | None:
    """Increments an optional count (saturating)."""
    return None if count is None else safe_increment(count)


class StatelessTransformation(GradientTransformation):
    """Base of transformations whose only state is a count for schedules.

    Subclasses implement ``apply(updates, h, params)``, where ``h`` is the
    module with its hyperparameters evaluated at the current step. The state
    is ``EmptyState()``, or ``ScaleByScheduleState(count)`` when a
    hyperparameter is a schedule (as optax's ``scale_by_schedule``).
    """

    def init(self, params: Params) -> EmptyState | ScaleByScheduleState:
        count = schedule_count(self)
        return EmptyState() if count is None else ScaleByScheduleState(count)

    def update(self, updates, state, params=None, **extra_args):
        count = state.count if isinstance(state, ScaleByScheduleState) else None
        new_state = state if count is None else ScaleByScheduleState(next_count(count))
        return self.apply(updates, evaluate(self, count), params), new_state

    def apply(self, updates: Updates, h: Any, params: Params | None) -> Updates:
        raise NotImplementedError


def apply_updates(params: Params, updates: Updates) -> Params:
    """Returns ``params + updates``, each leaf cast back to its param's dtype.

    ``None`` leaves in ``params`` (e.g. frozen entries) stay ``None``.

    Raises:
      ValueError: the two trees differ; the message names the first differing path.
    """
    check_same_structure(updates, params, "updates", "params", "gx.apply_updates")
    return jax.tree.map(
        lambda p, u: None if p is None else cast(jnp.asarray(p + u), jnp.result_type(p)),
        params,
        updates,
        is_leaf=is_none,
    )
