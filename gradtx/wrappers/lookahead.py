r"""Lookahead (Zhang et al., 2019): $k$ fast steps forward, one slow step back."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import POSITIVE_INTEGER, UNIT_CLOSED, Hyper
from gradtx.core.module import child, hyper, static
from gradtx.core.numerics import as_int32, zero_count
from gradtx.core.tree import cast_like, tree_map_none

__all__ = ["LookaheadState", "LookaheadParams", "Lookahead", "lookahead"]


class LookaheadState(NamedTuple):
    """State of :func:`lookahead` (optax's fields).

    Attributes:
      fast_state: the fast optimizer's state.
      steps_since_sync: fast steps since the last synchronisation, in
        ``[0, sync_period)`` (int32 scalar).
    """

    fast_state: Any
    steps_since_sync: jax.Array


class LookaheadParams(NamedTuple):
    """The fast and slow parameters of :func:`lookahead` (as optax's).

    Compute gradients at ``fast``; evaluate and deploy ``slow``.
    ``optax.LookaheadParams`` works as well.
    """

    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params: Any) -> "LookaheadParams":
        """Both copies set to ``params``."""
        return cls(fast=params, slow=params)


class Lookahead(GradientTransformation):
    """See :func:`lookahead`."""

    gx_name = "lookahead"
    fast_optimizer: GradientTransformation = child()
    sync_period: Hyper = hyper(check=POSITIVE_INTEGER)
    slow_step_size: Hyper = hyper(check=UNIT_CLOSED)
    reset_state: bool = static(False)

    def init(self, params):
        # Like optax, plain (fast) params are accepted too.
        fast = params.fast if _is_lookahead_params(params) else params
        return LookaheadState(self.fast_optimizer.init(fast), zero_count())

    def update(self, updates, state, params=None, **extra_args):
        if not _is_lookahead_params(params):
            raise ValueError(
                "gx.lookahead: `params` must be the fast and slow parameters, "
                "gx.LookaheadParams(fast=..., slow=...) (start with "
                f"gx.LookaheadParams.init_synced(params)), got {type(params).__name__}."
            )
        fast_updates, fast_state = self.fast_optimizer.update(
            updates, state.fast_state, params.fast, **extra_args
        )
        k = as_int32(self.sync_period)
        sync = state.steps_since_sync == k - 1
        alpha = self.slow_step_size
        # One step merges the last fast step and the synchronisation (as optax):
        # d = fast + u - slow; slow += alpha d; fast += u - (1 - alpha) d.
        diff = tree_map_none(lambda f, u, s: f + u - s, params.fast, fast_updates, params.slow)
        slow_u = tree_map_none(lambda d: alpha * sync * d, diff)
        fast_u = tree_map_none(lambda u, d: u - sync * (1 - alpha) * d, fast_updates, diff)
        if self.reset_state:
            fresh = self.fast_optimizer.init(params.fast)
            fast_state = jax.tree.map(
                lambda cur, new: jnp.where(sync, new, cur).astype(jnp.result_type(cur)), fast_state, fresh
            )
        new_updates = type(params)(
            fast=cast_like(fast_u, fast_updates), slow=cast_like(slow_u, params.slow)
        )
        return new_updates, LookaheadState(fast_state, (state.steps_since_sync + 1) % k)


def _is_lookahead_params(params: Any) -> bool:
    return hasattr(params, "fast") and hasattr(params, "slow")


@fill
def lookahead(
    fast_optimizer: Any, sync_period: Hyper, slow_step_size: Hyper, reset_state: bool = False
) -> Lookahead:
    r"""Lookahead: every ``sync_period`` fast steps, pull slow weights toward fast ones.

    With fast weights $\theta$, slow weights $\phi$, $k$ = ``sync_period`` and
    $\alpha$ = ``slow_step_size``: the fast optimizer updates $\theta$ each
    step; after every $k$-th fast step

    .. math::
        \phi \leftarrow \phi + \alpha\,(\theta - \phi), \qquad \theta \leftarrow \phi .

    Optax's design, so code migrates unchanged: the params are a
    :class:`LookaheadParams` ``(fast, slow)`` pair, gradients are taken at
    ``params.fast``, and ``update`` returns a ``LookaheadParams`` of updates
    (of the same type as ``params``) for :func:`~gradtx.apply_updates`. Do
    not transform these updates further. ``init`` also accepts the plain
    params. Unlike optax, ``sync_period`` and ``slow_step_size`` are pytree
    leaves (``jax.vmap`` over them works); they cannot be schedules, and
    ``slow_step_size`` must be in $[0, 1]$ (the paper's range). Extra keyword
    arguments reach the fast optimizer.

    Args:
      fast_optimizer: the inner optimizer, applied to the fast weights.
      sync_period: $k \ge 1$, fast steps per synchronisation (an integer).
      slow_step_size: $\alpha \in [0, 1]$.
      reset_state: re-initialise the fast optimizer's state at each
        synchronisation.

    Returns:
      {returns_tx} State:
      :class:`LookaheadState`.

    References:
      Zhang, Lucas, Hinton & Ba, *Lookahead Optimizer: k steps forward, 1 step
      back*, NeurIPS 2019.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.lookahead(gx.sgd(0.5), sync_period=2, slow_step_size=0.5)
      >>> params = gx.LookaheadParams.init_synced(jnp.array([4.0], jnp.float32))
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update(params.fast, state, params)  # grad of x**2 / 2
      ...     params = gx.apply_updates(params, u)
      >>> params.slow  # 4 + 0.5 * (1 - 4)
      Array([2.5], dtype=float32)
    """
    from gradtx.transforms.combine import as_transform

    for name, value in (("sync_period", sync_period), ("slow_step_size", slow_step_size)):
        if callable(value) and not isinstance(value, jax.Array):
            raise TypeError(f"gx.lookahead: `{name}` cannot be a schedule; give a number or an array.")
    if not isinstance(reset_state, bool):
        raise TypeError(f"gx.lookahead: `reset_state` must be a bool, got {reset_state!r}.")
    return Lookahead(as_transform(fast_optimizer, "lookahead"), sync_period, slow_step_size, reset_state)
