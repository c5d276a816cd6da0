r"""Conditional and constraining wrappers: ``conditionally_transform``,
``conditionally_mask``, ``freeze`` and ``keep_params_nonnegative`` (optax's).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradtx.core.base import NO_PARAMS_MSG, EmptyState, GradientTransformation
from gradtx.core.module import child, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core.tree import is_none, tree_map_none

__all__ = [
    "ConditionallyTransformState",
    "ConditionallyMaskState",
    "ConditionallyTransform",
    "ConditionallyMask",
    "KeepParamsNonnegative",
    "conditionally_transform",
    "conditionally_mask",
    "freeze",
    "keep_params_nonnegative",
]


class ConditionallyTransformState(NamedTuple):
    """State of :func:`conditionally_transform`: the inner state and the step (int32)."""

    inner_state: Any
    step: jax.Array


class ConditionallyMaskState(NamedTuple):
    """State of :func:`conditionally_mask`: the step (int32) and the inner state."""

    step: jax.Array
    inner_state: Any


class _Conditional(GradientTransformation):
    inner: GradientTransformation = child()
    should_transform_fn: Callable = static()
    forward_extra_args: bool = static(False)

    def _run(self, updates, step, inner_state, params, extra_args):
        kwargs = extra_args if self.forward_extra_args else {}
        pred = jnp.asarray(self.should_transform_fn(step, **kwargs))
        if pred.shape != ():
            raise ValueError(
                f"gx.{self.gx_name}: `should_transform_fn` must return a scalar boolean, "
                f"got shape {pred.shape}."
            )

        def do(_):
            return self.inner.update(updates, inner_state, params, **extra_args)

        def skip(_):
            return self._rejected(updates), inner_state

        return lax.cond(pred.astype(bool), do, skip, None)


class ConditionallyTransform(_Conditional):
    """See :func:`conditionally_transform`."""

    gx_name = "conditionally_transform"

    def _rejected(self, updates):
        return updates

    def init(self, params):
        return ConditionallyTransformState(self.inner.init(params), zero_count())

    def update(self, updates, state, params=None, **extra_args):
        new, inner_state = self._run(updates, state.step, state.inner_state, params, extra_args)
        return new, ConditionallyTransformState(inner_state, safe_increment(state.step))


class ConditionallyMask(_Conditional):
    """See :func:`conditionally_mask`."""

    gx_name = "conditionally_mask"

    def _rejected(self, updates):
        return tree_map_none(jnp.zeros_like, updates)

    def init(self, params):
        return ConditionallyMaskState(zero_count(), self.inner.init(params))

    def update(self, updates, state, params=None, **extra_args):
        new, inner_state = self._run(updates, state.step, state.inner_state, params, extra_args)
        return new, ConditionallyMaskState(safe_increment(state.step), inner_state)


def _make(cls, inner, should_transform_fn, forward_extra_args):
    from gradtx.transforms.combine import as_transform

    name = cls.gx_name
    if not callable(should_transform_fn):
        raise TypeError(
            f"gx.{name}: `should_transform_fn` must be a function step -> bool, "
            f"got {should_transform_fn!r}."
        )
    if not isinstance(forward_extra_args, bool):
        raise TypeError(f"gx.{name}: `forward_extra_args` must be a bool, got {forward_extra_args!r}.")
    return cls(as_transform(inner, name), should_transform_fn, forward_extra_args)


def conditionally_transform(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> ConditionallyTransform:
    r"""Applies ``inner`` only at steps where ``should_transform_fn(step)`` is True.

    .. math::
        u_t, s_t = \begin{cases} \text{inner.update}(g_t, s_{t-1}) & f(t) \\
        g_t,\; s_{t-1} & \text{otherwise} \end{cases}

    with $t = 0, 1, \dots$ the number of previous calls (int32). When the
    condition is false the updates pass through *unchanged* and the inner
    state is kept (use :func:`conditionally_mask` to zero them instead).
    Optax's function, same semantics. ``should_transform_fn`` is static (a
    new function compiles anew); a scalar boolean array result is required.

    Args:
      inner: the wrapped transformation.
      should_transform_fn: ``step -> bool`` (``step, **extra_args -> bool``
        when ``forward_extra_args``), traceable with ``jax.numpy``.
      forward_extra_args: pass the ``update`` call's extra keyword arguments
        to ``should_transform_fn`` too (they always reach ``inner``).

    Returns:
      A :class:`~gradtx.GradientTransformation`. State:
      :class:`ConditionallyTransformState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.conditionally_transform(gx.scale(10.0), lambda step: step % 2 == 0)
      >>> state = opt.init(jnp.ones(1, jnp.float32))
      >>> u, state = opt.update(jnp.ones(1, jnp.float32), state)
      >>> u2, state = opt.update(jnp.ones(1, jnp.float32), state)
      >>> u, u2
      (Array([10.], dtype=float32), Array([1.], dtype=float32))
    """
    return _make(ConditionallyTransform, inner, should_transform_fn, forward_extra_args)


def conditionally_mask(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> ConditionallyMask:
    r"""Applies ``inner`` where ``should_transform_fn(step)`` is True, else returns zeros.

    .. math::
        u_t, s_t = \begin{cases} \text{inner.update}(g_t, s_{t-1}) & f(t) \\
        0,\; s_{t-1} & \text{otherwise} \end{cases}

    with $t = 0, 1, \dots$ the number of previous calls. Optax's function,
    same semantics; see :func:`conditionally_transform` (which passes the
    updates through instead) for the arguments.

    Args:
      inner: the wrapped transformation.
      should_transform_fn: ``step -> bool`` (static, traceable).
      forward_extra_args: also pass extra keyword arguments to it.

    Returns:
      A :class:`~gradtx.GradientTransformation`. State:
      :class:`ConditionallyMaskState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.conditionally_mask(gx.sgd(1.0), lambda step: step >= 1)
      >>> state = opt.init(jnp.ones(1, jnp.float32))
      >>> u, state = opt.update(jnp.ones(1, jnp.float32), state)
      >>> u2, state = opt.update(jnp.ones(1, jnp.float32), state)
      >>> u, u2
      (Array([0.], dtype=float32), Array([-1.], dtype=float32))
    """
    return _make(ConditionallyMask, inner, should_transform_fn, forward_extra_args)


def freeze(mask: Any) -> GradientTransformation:
    r"""Zeros the updates where ``mask`` is True (frozen), passes the rest.

    .. math:: u_i \leftarrow 0 \;\text{ if } m_i, \qquad u_i \text{ otherwise.}

    Optax's ``optax.transforms.freeze``: ``masked(set_to_zero(), mask)``.

    Args:
      mask: a static boolean, or a pytree of booleans like the params (or a
        prefix of it); True freezes. A function ``params -> mask`` also works.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a :func:`~gradtx.masked`).

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.chain(gx.sgd(1.0), gx.freeze({"a": True, "b": False}))
      >>> g = {"a": jnp.ones(1, jnp.float32), "b": jnp.ones(1, jnp.float32)}
      >>> u, _ = opt.update(g, opt.init(g))
      >>> u["a"], u["b"]
      (Array([0.], dtype=float32), Array([-1.], dtype=float32))
    """
    from gradtx.transforms.basic import set_to_zero
    from gradtx.wrappers.masked import masked

    if not callable(mask):
        bad = [
            x for x in jax.tree.leaves(mask)
            if not (isinstance(x, (bool, jnp.bool_)) or getattr(x, "dtype", None) == bool)
        ]
        if bad:
            raise TypeError(
                f"gx.freeze: `mask` must be a boolean or a pytree of booleans (True freezes), "
                f"got a leaf {bad[0]!r}."
            )
        mask = jax.tree.map(bool, mask)
    return masked(set_to_zero(), mask)


class KeepParamsNonnegative(GradientTransformation):
    """See :func:`keep_params_nonnegative`."""

    gx_name = "keep_params_nonnegative"

    def init(self, params):
        return EmptyState()

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.keep_params_nonnegative: {NO_PARAMS_MSG}")
        new = jax.tree.map(
            lambda p, u: None if p is None else jnp.where((p + u) < 0.0, -p, u),
            params, updates, is_leaf=is_none,
        )
        return new, state


def keep_params_nonnegative() -> KeepParamsNonnegative:
    r"""Changes the updates so that the params stay nonnegative.

    .. math:: u_i \leftarrow -\theta_i \;\text{ if } \theta_i + u_i < 0, \qquad u_i \text{ otherwise,}

    a projection onto $\theta \ge 0$. Optax's function, same numerics: put it
    last in a chain; a negative param is moved to 0. Needs ``params``.

    Returns:
      A stateless :class:`~gradtx.GradientTransformation` (state ``EmptyState()``).

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.chain(gx.sgd(1.0), gx.keep_params_nonnegative())
      >>> p = jnp.array([0.5, 2.0], jnp.float32)
      >>> u, _ = opt.update(jnp.array([1.0, 1.0], jnp.float32), opt.init(p), p)
      >>> gx.apply_updates(p, u)
      Array([0., 1.], dtype=float32)
    """
    return KeepParamsNonnegative()
