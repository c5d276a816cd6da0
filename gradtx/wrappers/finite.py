"""Guards against bad updates: ``apply_if_finite``, ``skip_large_updates``, ``zero_nans``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import NONNEGATIVE, NONNEGATIVE_INTEGER, Hyper, evaluate
from gradtx.core.module import child, hyper
from gradtx.core.numerics import safe_increment, sum_of_squares, zero_count
from gradtx.core.tree import tree_map_none

__all__ = [
    "ApplyIfFiniteState",
    "SkipLargeUpdatesState",
    "ZeroNansState",
    "ApplyIfFinite",
    "SkipLargeUpdates",
    "ZeroNans",
    "apply_if_finite",
    "skip_large_updates",
    "zero_nans",
]


def _all_finite(tree: Any) -> jax.Array:
    """True iff every element of every leaf is finite (True for an empty tree)."""
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)] or [True]))


def _real_dtype(tree: Any) -> Any:
    """The real floating dtype the leaves of ``tree`` promote to (with Python float)."""
    return jnp.finfo(jnp.result_type(float, *jax.tree.leaves(tree))).dtype


def _apply_or_skip(inner, accept, updates, inner_state, params, extra_args):
    """``inner.update`` where ``accept``, else zero updates and the unchanged inner state.

    The zeros take the shapes and dtypes of the inner output (found by
    ``eval_shape``), so the two branches agree even if the inner one promotes.
    """

    def apply():
        return inner.update(updates, inner_state, params, **extra_args)

    out = jax.eval_shape(apply)[0]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out)
    return lax.cond(accept, apply, lambda: (zeros, inner_state))


class ApplyIfFiniteState(NamedTuple):
    """State of :func:`apply_if_finite` (optax's fields).

    Attributes:
      notfinite_count: consecutive non-finite updates so far (int32); 0 after a
        finite one.
      last_finite: whether the last update was finite (bool scalar).
      total_notfinite: non-finite updates since ``init`` (int32), never reset.
      inner_state: the inner transformation's state.
    """

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


class ApplyIfFinite(GradientTransformation):
    """See :func:`apply_if_finite`."""

    gx_name = "apply_if_finite"
    inner: GradientTransformation = child()
    max_consecutive_errors: Hyper = hyper(check=NONNEGATIVE_INTEGER)

    def init(self, params):
        return ApplyIfFiniteState(zero_count(), jnp.array(True), zero_count(), self.inner.init(params))

    def update(self, updates, state, params=None, **extra_args):
        finite = _all_finite(updates)
        notfinite_count = jnp.where(finite, zero_count(), safe_increment(state.notfinite_count))
        accept = finite | (notfinite_count > jnp.asarray(self.max_consecutive_errors))
        updates, inner_state = _apply_or_skip(
            self.inner, accept, updates, state.inner_state, params, extra_args
        )
        total = jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite))
        return updates, ApplyIfFiniteState(notfinite_count, finite, total, inner_state)


@fill
def apply_if_finite(inner: Any, max_consecutive_errors: Hyper) -> ApplyIfFinite:
    r"""Skips updates containing a NaN or an Inf; gives up after too many in a row.

    With $c$ the number of consecutive non-finite updates (including this one)
    and $N$ = ``max_consecutive_errors``:

    .. math::
        (u, s) = \begin{cases}
          \mathcal{T}(g, s) & \text{if } g \text{ is finite or } c > N, \\
          (0, s) & \text{otherwise (the inner state is kept).}
        \end{cases}

    So $N$ bad updates in a row are skipped and the $(N+1)$-th is applied. The
    checks and counters match optax's ``apply_if_finite`` (0.2.8): $c$ resets
    to 0 on every finite update. As in optax, $c$ is *not* reset when the
    wrapper gives up, so every further non-finite update of the same streak is
    applied too (optax PR #1746 proposes resetting it there; we keep optax's
    behaviour for parity).

    Args:
      inner: the transformation to protect (gradtx or optax).
      max_consecutive_errors: $N \ge 0$, an integer hyperparameter (a pytree
        leaf: changing it does not recompile).

    Returns:
      {returns_tx} State:
      :class:`ApplyIfFiniteState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.apply_if_finite(gx.sgd(1.0), max_consecutive_errors=2)
      >>> state = opt.init(jnp.zeros(2))
      >>> u, state = opt.update(jnp.array([1.0, jnp.nan]), state)
      >>> print(u, int(state.notfinite_count), int(state.total_notfinite))
      [0. 0.] 1 1
      >>> u, state = opt.update(jnp.array([1.0, 2.0]), state)
      >>> print(u, int(state.notfinite_count), int(state.total_notfinite))
      [-1. -2.] 0 1
    """
    from gradtx.transforms.combine import as_transform

    return ApplyIfFinite(as_transform(inner, "apply_if_finite"), max_consecutive_errors)


class SkipLargeUpdatesState(NamedTuple):
    """State of :func:`skip_large_updates`.

    Attributes:
      inner_state: the inner transformation's state.
      should_skip: whether the last update was skipped (bool scalar).
      norm_squared: $\\|g\\|^2$ of the last incoming update.
      count: updates so far when ``max_squared_norm`` is scheduled, else None.
    """

    inner_state: Any
    should_skip: jax.Array
    norm_squared: jax.Array
    count: jax.Array | None = None


class SkipLargeUpdates(GradientTransformation):
    """See :func:`skip_large_updates`."""

    gx_name = "skip_large_updates"
    inner: GradientTransformation = child()
    max_squared_norm: Hyper = hyper(check=NONNEGATIVE)

    def init(self, params):
        return SkipLargeUpdatesState(
            self.inner.init(params), jnp.array(False), jnp.zeros([], _real_dtype(params)),
            schedule_count(self),
        )

    def update(self, updates, state, params=None, **extra_args):
        limit = evaluate(self, state.count).max_squared_norm
        leaves = jax.tree.leaves(updates)
        norm_sq = sum((sum_of_squares(x) for x in leaves), jnp.zeros([], state.norm_squared.dtype))
        skip = jnp.logical_not(norm_sq < limit)  # NaN norms are skipped too
        updates, inner_state = _apply_or_skip(
            self.inner, ~skip, updates, state.inner_state, params, extra_args
        )
        norm_sq = norm_sq.astype(state.norm_squared.dtype)
        return updates, SkipLargeUpdatesState(inner_state, skip, norm_sq, next_count(state.count))


@fill
def skip_large_updates(inner: Any, max_squared_norm: Hyper) -> SkipLargeUpdates:
    r"""Skips updates whose squared global norm reaches ``max_squared_norm``.

    .. math::
        (u, s) = \begin{cases}
          \mathcal{T}(g, s) & \text{if } \|g\|_2^2 < M, \\
          (0, s) & \text{otherwise (also when } \|g\|^2 \text{ is NaN).}
        \end{cases}

    The test is optax's ``skip_large_updates`` (``not norm_sq < max``). Optax
    ships it as a predicate for ``MultiSteps(should_skip_update_fn=...)``, with
    signature ``(updates, gradient_step, params, max_squared_norm)``; gradtx
    makes it a wrapper, so it composes with any transformation (optax's
    ``MultiSteps(opt, 1, should_skip_update_fn=partial(skip_large_updates,
    max_squared_norm=M))`` gives the same updates). Its state keeps optax's
    debugging fields ``should_skip`` and ``norm_squared``.

    Args:
      inner: the transformation to protect (gradtx or optax).
      max_squared_norm: $M \ge 0$, the largest accepted $\|g\|^2$ (exclusive);
        a float, an array or a schedule.

    Returns:
      {returns_tx} State:
      :class:`SkipLargeUpdatesState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.skip_large_updates(gx.sgd(1.0), max_squared_norm=10.0)
      >>> state = opt.init(jnp.zeros(2))
      >>> u, state = opt.update(jnp.array([3.0, 4.0]), state)  # |g|^2 = 25
      >>> print(u, bool(state.should_skip))
      [0. 0.] True
      >>> u, state = opt.update(jnp.array([1.0, 2.0]), state)  # |g|^2 = 5
      >>> print(u, bool(state.should_skip))
      [-1. -2.] False
    """
    from gradtx.transforms.combine import as_transform

    return SkipLargeUpdates(as_transform(inner, "skip_large_updates"), max_squared_norm)


class ZeroNansState(NamedTuple):
    """State of :func:`zero_nans`.

    Attributes:
      found_nan: like the params, one bool scalar per leaf: whether the last
        update had a NaN in that leaf (optax's field).
    """

    found_nan: Any


class ZeroNans(GradientTransformation):
    """See :func:`zero_nans`."""

    gx_name = "zero_nans"

    def init(self, params):
        return ZeroNansState(tree_map_none(lambda _: jnp.array(False), params))

    def update(self, updates, state, params=None, **extra_args):
        found = tree_map_none(lambda g: jnp.any(jnp.isnan(g)), updates)
        updates = tree_map_none(lambda g: jnp.where(jnp.isnan(g), jnp.zeros_like(g), g), updates)
        return updates, ZeroNansState(found)


@fill
def zero_nans() -> ZeroNans:
    r"""Replaces NaNs in the updates by 0 (Infs pass unchanged), as optax's ``zero_nans``.

    .. math::
        u_i = \begin{cases} 0 & \text{if } g_i \text{ is NaN} \\ g_i & \text{otherwise.} \end{cases}

    The state records, per leaf, whether the last update had a NaN there
    (:class:`ZeroNansState`); the transformation itself does not read it.

    Returns:
      {returns_tx} State:
      :class:`ZeroNansState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> tx = gx.zero_nans()
      >>> u, state = tx.update({"a": jnp.array([1.0, jnp.nan]), "b": jnp.array(2.0)},
      ...                      tx.init({"a": jnp.zeros(2), "b": jnp.array(0.0)}))
      >>> print(u["a"], bool(state.found_nan["a"]), bool(state.found_nan["b"]))
      [1. 0.] True False
    """
    return ZeroNans()
