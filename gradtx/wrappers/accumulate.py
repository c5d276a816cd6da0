r"""Gradient accumulation: ``multi_steps`` (optax's ``MultiSteps``).

Accumulating the gradients of $k$ micro-batches and applying the inner
optimizer to their mean is, for a loss that averages over examples, one step
on a batch $k$ times larger — without the memory of that batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import POSITIVE_INTEGER, Hyper, evaluate
from gradtx.core.module import child, hyper, static
from gradtx.core.numerics import as_int32, safe_increment, zero_count
from gradtx.core.tree import cast_like, tree_map_none, zeros_like

__all__ = ["MultiStepsState", "MultiSteps", "multi_steps"]


class MultiStepsState(NamedTuple):
    """State of :func:`multi_steps` (the fields of optax's ``MultiStepsState``).

    Attributes:
      mini_step: micro-steps accumulated since the last real step, in ``[0, k)``
        (int32 scalar).
      gradient_step: real (inner) steps taken so far (int32 scalar).
      inner_opt_state: the wrapped transformation's state; it changes only on
        real steps.
      acc_grads: the running mean (or sum) of the gradients since the last
        real step, like the params, in ``accumulator_dtype``.
      skip_state: always ``()`` (optax's ``should_skip_update_fn`` is not
        supported; kept so the state has optax's fields).
    """

    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


class MultiSteps(GradientTransformation):
    """See :func:`multi_steps`. ``gx.MultiSteps(opt, k)`` mirrors optax's class."""

    gx_name = "multi_steps"
    inner: GradientTransformation = child()
    every_k: Hyper = hyper(check=POSITIVE_INTEGER)
    use_grad_mean: bool = static(True)
    accumulator_dtype: Any = static(None)

    def __post_init__(self) -> None:
        from gradtx.transforms.combine import as_transform

        object.__setattr__(self, "inner", as_transform(self.inner, "multi_steps"))
        super().__post_init__()

    def init(self, params):
        return MultiStepsState(
            mini_step=zero_count(),
            gradient_step=zero_count(),
            inner_opt_state=self.inner.init(params),
            acc_grads=zeros_like(params, self.accumulator_dtype),
        )

    def update(self, updates, state, params=None, **extra_args):
        k = as_int32(evaluate(self, state.gradient_step).every_k)
        n = state.mini_step
        if self.use_grad_mean:  # Welford's running mean, as optax
            acc = tree_map_none(lambda g, a: a + (g - a) / (n + 1), updates, state.acc_grads)
        else:
            acc = tree_map_none(lambda g, a: g + a, updates, state.acc_grads)
        emit = n == k - 1

        def real_step(_):
            return self.inner.update(cast_like(acc, updates), state.inner_opt_state, params, **extra_args)

        out_shape, _ = jax.eval_shape(real_step, None)

        def wait(_):
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)
            return zeros, state.inner_opt_state

        new_updates, inner_state = lax.cond(emit, real_step, wait, None)
        inner_state = cast_like(inner_state, state.inner_opt_state)
        acc = tree_map_none(lambda a: jnp.where(emit, jnp.zeros_like(a), a), acc)
        return new_updates, MultiStepsState(
            mini_step=safe_increment(n) % k,
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            inner_opt_state=inner_state,
            acc_grads=cast_like(acc, state.acc_grads),
        )

    def has_updated(self, state: MultiStepsState) -> jax.Array:
        """Whether the last ``update`` was a real step (optax's ``has_updated``)."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> "MultiSteps":
        """Returns ``self``: already a transformation (kept for optax code)."""
        return self


@fill
def multi_steps(
    inner: Any, every_k: Hyper, *, use_grad_mean: bool = True, accumulator_dtype: Any = None
) -> MultiSteps:
    r"""Accumulates gradients over ``every_k`` micro-steps, then takes one inner step.

    With $k$ = ``every_k`` and micro-step gradients $g_1, \dots, g_k$:

    .. math::
        \bar g = \frac{1}{k}\sum_{j=1}^{k} g_j \;\;(\text{or } \textstyle\sum_j g_j),
        \qquad u_j = 0 \;\; (j < k), \qquad u_k, s' = \text{inner.update}(\bar g, s).

    The mean is kept with Welford's update $a_j = a_{j-1} + (g_j - a_{j-1})/j$
    (as optax). The inner state advances only on real steps; between them the
    returned updates are zeros, so applying every update is safe. For a loss
    that averages over examples and plain SGD, $k$ micro-steps equal one step
    on the $k$-times larger batch.

    Optax: ``optax.MultiSteps(opt, every_k_schedule).gradient_transformation()``
    (``gx.MultiSteps(inner, every_k)`` also works and has ``has_updated``). The
    differences: ``every_k`` is a pytree leaf compared as int32 (a new value
    does not recompile and ``jax.vmap`` maps over a batch of them); as a
    schedule it is evaluated at ``gradient_step``, like optax's
    ``every_k_schedule``. ``accumulator_dtype=None`` keeps each gradient's
    dtype (optax defaults to float32, which would round float64 gradients).
    On micro-steps the inner update is not computed (``lax.cond``; optax
    computes it and multiplies by 0). ``should_skip_update_fn`` is not
    supported.

    Args:
      inner: the transformation to apply to the accumulated gradients.
      every_k: micro-steps per real step, an integer >= 1 (a number, an int
        array or a schedule of the gradient step).
      use_grad_mean: average the gradients (default); False sums them.
      accumulator_dtype: dtype of ``acc_grads`` (None: the params'); e.g.
        ``jnp.float32`` for bfloat16 gradients.

    Returns:
      {returns_tx} State:
      :class:`MultiStepsState`.

    Example:
      >>> import gradtx as gx, jax.numpy as jnp
      >>> opt = gx.multi_steps(gx.sgd(0.1), every_k=2)
      >>> state = opt.init(jnp.zeros(1, jnp.float32))
      >>> u, state = opt.update(jnp.array([1.0], jnp.float32), state)
      >>> u, state = opt.update(jnp.array([3.0], jnp.float32), state)
      >>> u
      Array([-0.2], dtype=float32)
    """
    from gradtx.transforms.combine import as_transform

    if not isinstance(use_grad_mean, bool):
        raise TypeError(f"gx.multi_steps: `use_grad_mean` must be a bool, got {use_grad_mean!r}.")
    if accumulator_dtype is not None:
        try:
            accumulator_dtype = jnp.dtype(accumulator_dtype)
        except TypeError:
            raise TypeError(
                f"gx.multi_steps: `accumulator_dtype` must be a dtype (e.g. jnp.float32) or None, "
                f"got {accumulator_dtype!r}."
            ) from None
    return MultiSteps(as_transform(inner, "multi_steps"), every_k, use_grad_mean, accumulator_dtype)
