"""``reduce_on_plateau``: scale updates down when the loss stops improving."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import NONNEGATIVE, NONNEGATIVE_INTEGER, POSITIVE_INTEGER, UNIT_CLOSED, Hyper, is_scheduled
from gradtx.core.interop import missing_extra_args_message
from gradtx.core.module import Check, hyper
from gradtx.core.numerics import as_int32, safe_increment, zero_count
from gradtx.core.tree import float_dtypes, tree_map_none

__all__ = [
    "ReduceLROnPlateauState",
    "ReduceOnPlateau",
    "reduce_on_plateau",
]


FACTOR = Check("in (0, 1]", lambda a: (a > 0) & (a <= 1))


class ReduceLROnPlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau` (optax's fields and names).

    Attributes:
      scale: the current multiplier of the updates (starts at 1).
      best_value: the best averaged loss so far (starts at ``inf``).
      plateau_count: evaluations since the last improvement (int32).
      cooldown_count: evaluations of cooldown left (int32).
      count: losses accumulated in the current window (int32).
      avg_value: the mean of the losses in the current window.
    """

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


class ReduceOnPlateau(GradientTransformation):
    """Scales updates down when the loss plateaus (see :func:`reduce_on_plateau`)."""

    gx_name = "reduce_on_plateau"
    factor: Hyper = hyper(0.1, check=FACTOR)
    patience: Hyper = hyper(10, check=NONNEGATIVE_INTEGER)
    rtol: Hyper = hyper(1e-4, check=NONNEGATIVE)
    atol: Hyper = hyper(0.0, check=NONNEGATIVE)
    cooldown: Hyper = hyper(0, check=NONNEGATIVE_INTEGER)
    accumulation_size: Hyper = hyper(1, check=POSITIVE_INTEGER)
    min_scale: Hyper = hyper(0.0, check=UNIT_CLOSED)

    def __post_init__(self) -> None:
        super().__post_init__()
        if is_scheduled(self):
            name = next(n for n in self.hyperparameter_names() if callable(getattr(self, n)))
            raise TypeError(
                f"gx.reduce_on_plateau: `{name}` cannot be a schedule (the transform is "
                "itself an adaptive schedule); pass a number or a JAX array."
            )

    def init(self, params):
        low, high = float_dtypes(params)
        return ReduceLROnPlateauState(
            scale=jnp.ones([], low),
            best_value=jnp.full([], jnp.inf, high),
            plateau_count=zero_count(),
            cooldown_count=zero_count(),
            count=zero_count(),
            avg_value=jnp.zeros([], high),
        )

    def update(self, updates, state, params=None, *, value=None, **extra_args):
        if value is None:
            raise TypeError(
                missing_extra_args_message(
                    "gx.reduce_on_plateau", ["value"], "pass the loss, `tx.update(grads, state, params, value=loss)`."
                )
            )
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"gx.reduce_on_plateau: `value` must be a scalar loss, got shape "
                f"{jnp.shape(value)}; reduce it first (e.g. `loss.mean()`)."
            )
        count = safe_increment(state.count)
        avg = (state.count * state.avg_value + jnp.asarray(value).astype(state.avg_value.dtype)) / count
        avg = avg.astype(state.avg_value.dtype)
        evaluated = self._evaluate(state, avg)
        window_full = count >= as_int32(self.accumulation_size)
        accumulating = state._replace(count=count, avg_value=avg)
        new_state = jax.tree.map(lambda e, a: jnp.where(window_full, e, a), evaluated, accumulating)
        scale = new_state.scale
        return tree_map_none(lambda g: (scale * g).astype(jnp.result_type(g)), updates), new_state

    def _evaluate(self, state: ReduceLROnPlateauState, avg: jax.Array) -> ReduceLROnPlateauState:
        """The state after a full window whose mean loss is ``avg``."""
        best = state.best_value
        threshold = jnp.where(jnp.isfinite(best), best - self.rtol * jnp.abs(best) - self.atol, best)
        improved = avg < threshold
        plateau = jnp.where(improved, 0, safe_increment(state.plateau_count))
        in_cooldown = state.cooldown_count > 0
        reduce = ~in_cooldown & ~improved & (plateau >= as_int32(self.patience))
        reduced = jnp.maximum(state.scale * self.factor, self.min_scale).astype(state.scale.dtype)
        return ReduceLROnPlateauState(
            scale=jnp.where(reduce, reduced, state.scale),
            best_value=jnp.where(improved, avg, best),
            plateau_count=jnp.where(in_cooldown | reduce, 0, plateau).astype(jnp.int32),
            cooldown_count=jnp.where(
                in_cooldown, state.cooldown_count - 1, jnp.where(reduce, as_int32(self.cooldown), 0)
            ).astype(jnp.int32),
            count=zero_count(),
            avg_value=jnp.zeros_like(state.avg_value),
        )


@fill
def reduce_on_plateau(
    factor: Hyper = 0.1,
    patience: Hyper = 10,
    rtol: Hyper = 1e-4,
    atol: Hyper = 0.0,
    cooldown: Hyper = 0,
    accumulation_size: Hyper = 1,
    min_scale: Hyper = 0.0,
) -> ReduceOnPlateau:
    r"""Multiplies updates by a scale that drops by ``factor`` when the loss plateaus.

    ``update`` takes the loss as a keyword argument,
    ``update(updates, state, params=None, *, value=loss)``; inside a
    :func:`~gradtx.chain` pass ``value=`` to the chain, which hands it on
    (inside ``optax.chain`` wrap this transform with :func:`~gradtx.as_optax`).
    Losses are averaged over windows of ``accumulation_size`` calls; at the end
    of each window the mean $\bar v$ is compared with the best mean $b$ so far:

    .. math::
        \text{improved} \iff \bar v < b - \text{rtol}\,|b| - \text{atol}.

    An improvement sets $b \leftarrow \bar v$ and the plateau count to 0; else
    the count grows by one, and when it reaches ``patience`` the scale becomes
    $s \leftarrow \max(\text{factor}\cdot s,\ \text{min\_scale})$, the count
    resets and the next ``cooldown`` windows are ignored (they still update
    $b$). Between window ends the scale is unchanged. The updates are $s\,u$.
    Put it after the learning rate (``chain(sgd(lr), reduce_on_plateau())``)
    or after any preconditioner.

    Differences from ``optax.contrib.reduce_on_plateau`` (same name, signature,
    state and numerics on positive losses):

    * optax's test $\bar v < (1-\text{rtol})\,b - \text{atol}$ is wrong for
      a negative best: there $(1-\text{rtol})\,b > b$, so a loss that stays
      put, or gets slightly *worse*, counts as an improvement and the scale
      never drops. The threshold above uses $|b|$. (At $b = 0$ a relative
      tolerance is 0 in both, so only ``atol`` rejects tiny improvements: set
      it when the loss can reach 0.)
    * ``patience=0`` acts as ``patience=1``: it reduces at every window that
      does not improve (optax reduces only at windows that *do* improve).
    * ``factor=1``, ``rtol=atol=0`` (strict improvement) and ``rtol > 1``
      are allowed; every numeric argument is a pytree leaf (no recompiles,
      ``vmap`` over them works) but may not be a schedule.

    Args:
      factor: multiplier of the scale at a reduction, in (0, 1].
      patience: windows without improvement before a reduction (an integer >= 0).
      rtol: relative tolerance >= 0 of an improvement (a fraction of $|b|$).
      atol: absolute tolerance >= 0 of an improvement.
      cooldown: windows ignored after each reduction (an integer >= 0).
      accumulation_size: calls averaged into one window (an integer >= 1);
        use more than 1 when ``value`` is a noisy minibatch loss.
      min_scale: the floor of the scale, in [0, 1].

    Returns:
      {returns_tx} State:
      :class:`ReduceLROnPlateauState`.

    References:
      PyTorch's ``torch.optim.lr_scheduler.ReduceLROnPlateau``; Keras's
      ``ReduceLROnPlateau`` callback; optax's ``contrib.reduce_on_plateau``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.reduce_on_plateau(factor=0.5, patience=1)
      >>> state = tx.init(jnp.zeros(2))
      >>> for loss in [-1.0, -2.0, -2.0, -2.0]:
      ...     u, state = tx.update(jnp.ones(2), state, value=loss)
      ...     print(float(state.scale), end=" ")
      1.0 1.0 0.5 0.25
    """
    return ReduceOnPlateau(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale)
