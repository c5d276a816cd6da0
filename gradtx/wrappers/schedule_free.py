r"""Schedule-Free learning (Defazio et al., 2024): interpolation and averaging instead of a decay."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, Hyper, _pred, evaluate
from gradtx.core.module import Check, child, hyper, static
from gradtx.core.numerics import safe_increment
from gradtx.core.tree import cast, cast_like, lowest_real_dtype, tree_map_none

__all__ = ["ScheduleFree", "ScheduleFreeState", "schedule_free", "schedule_free_eval_params"]

# b1 is the weight of x in y = (1 - b1) z + b1 x, and x = (y - (1 - b1) z) / b1 divides by it.
INTERPOLATION = Check("in (0, 1]", _pred(lambda a: (a > 0) & (a <= 1)))


class ScheduleFreeState(NamedTuple):
    """State of :func:`schedule_free` (optax.contrib's fields).

    Attributes:
      b1: the interpolation weight $\\beta_1$, stored for
        :func:`schedule_free_eval_params` (a scalar in the params' lowest real
        float dtype, as the next three).
      weight_sum: $\\sum_{i \\le t} \\gamma_{\\max,i}^r$, the averaging weights so far.
      step_count: $t + 1$: the number of updates applied plus one (int32 scalar,
        1 at ``init``, as optax's); the learning rate is evaluated at it.
      max_lr: $\\gamma_{\\max,t}$, the largest learning rate so far.
      base_optimizer_state: the base optimizer's state.
      z: the base optimizer's iterate $z_t$ (in ``state_dtype`` if given).
    """

    b1: jax.Array
    weight_sum: jax.Array
    step_count: jax.Array
    max_lr: jax.Array
    base_optimizer_state: Any
    z: Any


class ScheduleFree(GradientTransformation):
    """See :func:`schedule_free`."""

    gx_name = "schedule_free"
    base_optimizer: GradientTransformation = child()
    learning_rate: Hyper = hyper(check=NONNEGATIVE)
    b1: Hyper = hyper(0.9, INTERPOLATION)
    weight_lr_power: Hyper = hyper(2.0, NONNEGATIVE)
    state_dtype: Any = static(None)

    def init(self, params):
        scalar_dtype = lowest_real_dtype(params)
        z = params if self.state_dtype is None else tree_map_none(lambda p: cast(p, self.state_dtype), params)
        # A distinct copy: params and state can both be donated to a jitted step.
        z = tree_map_none(jnp.copy, z)
        return ScheduleFreeState(
            b1=jnp.asarray(self.b1, scalar_dtype),
            weight_sum=jnp.zeros([], scalar_dtype),
            step_count=jnp.ones([], jnp.int32),
            max_lr=jnp.zeros([], scalar_dtype),
            base_optimizer_state=self.base_optimizer.init(params),
            z=z,
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.schedule_free: {NO_PARAMS_MSG}")
        h = evaluate(self, state.step_count)
        b1 = h.b1
        lr = cast(jnp.asarray(h.learning_rate), state.max_lr.dtype)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr**h.weight_lr_power
        weight_sum = state.weight_sum + weight
        # c_{t+1} = weight / weight_sum; 0 (not 0/0) while the learning rate is still 0.
        ck = jnp.where(
            jnp.isnan(weight) | jnp.isnan(weight_sum),
            jnp.full(weight.shape, jnp.nan, weight.dtype),
            jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf),
        )
        base_updates, base_state = self.base_optimizer.update(
            updates, state.base_optimizer_state, params, **extra_args
        )
        z = cast_like(tree_map_none(lambda zi, u: zi + u, state.z, base_updates), state.z)
        # x is recomputed from y (the params) and z: no third buffer, and it stays
        # consistent if a transform on top of this one changed y.
        prev_x = tree_map_none(lambda y, zi: (y - (1.0 - b1) * zi) / b1, params, state.z)
        x = tree_map_none(lambda xi, zi: (1.0 - ck) * xi + ck * zi, prev_x, z)
        y = tree_map_none(lambda xi, zi: b1 * xi + (1.0 - b1) * zi, x, z)
        new_updates = cast_like(tree_map_none(lambda yn, yo: yn - yo, y, params), params)
        new_state = ScheduleFreeState(
            b1=state.b1,
            weight_sum=weight_sum,
            step_count=safe_increment(state.step_count),
            max_lr=max_lr,
            base_optimizer_state=base_state,
            z=z,
        )
        return new_updates, new_state


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    r"""The parameters to evaluate (test or validation loss) under :func:`schedule_free`: $x_t$.

    .. math:: x_t = \frac{y_t - (1-\beta_1)\, z_t}{\beta_1}

    where $y_t$ are the training ``params`` and $z_t$, $\beta_1$ come from
    ``state`` (a :class:`ScheduleFreeState`; optax's works too).

    Args:
      state: the state of :func:`schedule_free`, :func:`schedule_free_sgd` or
        :func:`schedule_free_adamw` (not a chain's tuple containing it).
      params: the current (training) parameters $y_t$.

    Returns:
      $x_t$, with the structure of ``params``.

    Raises:
      ValueError: ``state`` is not a schedule-free state.
    """
    b1 = getattr(state, "b1", None)
    z = getattr(state, "z", None)
    if b1 is None or z is None:
        raise ValueError(
            "gx.schedule_free_eval_params: `state` must be a ScheduleFreeState (the state of "
            f"gx.schedule_free, gx.schedule_free_sgd or gx.schedule_free_adamw), got {type(state).__name__}."
        )
    return tree_map_none(lambda y, zi: (y - (1.0 - b1) * zi) / b1, params, z)


@fill
def schedule_free(
    base_optimizer: Any,
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    weight_lr_power: Hyper = 2.0,
    state_dtype: Any = None,
) -> ScheduleFree:
    r"""Schedule-Free: replaces a base optimizer's momentum by interpolation and averaging.

    The base optimizer (without momentum) moves the sequence $z$; gradients are
    taken at $y$, an interpolation of $z$ and $x$, the weighted average of the
    $z$'s. With $u_t$ the base optimizer's update at $y_t$ (for SGD,
    $u_t = -\gamma_t \nabla f(y_t)$) and $\beta_1$ = ``b1``:

    .. math::
        \begin{aligned}
        y_t &= (1-\beta_1)\, z_t + \beta_1\, x_t, \\
        z_{t+1} &= z_t + u_t, \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \qquad
        c_{t+1} = \frac{\gamma_{\max,t}^{\,r}}{\sum_{i=1}^{t} \gamma_{\max,i}^{\,r}},
        \end{aligned}

    with $x_1 = z_1 = y_1$ the initial params, $\gamma_{\max,t} = \max_{i \le t}
    \gamma_i$ the largest learning rate so far (warmup included) and $r$ =
    ``weight_lr_power``; $c_{t+1} = 0$ while $\gamma_{\max,t} = 0$. With a
    constant learning rate $c_{t+1} = 1/t$: $x$ is the plain average of the
    $z$'s. The params are $y$ (the training iterate); evaluate at $x$, given by
    :func:`schedule_free_eval_params`. Only $z$ is stored: $x_t = (y_t -
    (1-\beta_1) z_t)/\beta_1$ is recomputed, so the memory is that of the base
    optimizer plus one buffer.

    The learning rate here only weights the average ($\gamma_t$ above); it does
    not scale the updates — give the base optimizer the same one. A schedule is
    evaluated at the state's ``step_count``, which starts at 1 (as in optax):
    the base optimizer's own count starts at 0, one step behind. Switch off the
    base optimizer's momentum (``b1=0`` for Adam): $\beta_1$ plays its part.

    Args:
      base_optimizer: the optimizer moving $z$ (a gradtx or optax
        transformation); its hyperparameters stay leaves of the result.
      learning_rate: the base optimizer's learning rate $\gamma_t \ge 0$ (a float,
        an array or a schedule with warmup and no decay), for the averaging weights.
      b1: interpolation weight $\beta_1 \in (0, 1]$ of $x$ in $y$ (1: $y = x$,
        Polyak averaging of the base optimizer). Default 0.9; 0.95 and 0.98 also work well.
      weight_lr_power: $r \ge 0$, the power of $\gamma_{\max,t}$ in the
        averaging weights (0: uniform; the default 2 down-weights warmup).
      state_dtype: dtype of $z$ (None: the params').

    Returns:
      {returns_tx} State: :class:`ScheduleFreeState`. The scalars
      (``b1``, ``weight_sum``, ``max_lr``) are in the params' lowest real float dtype.

    ``learning_rate``, ``b1`` and ``weight_lr_power`` are pytree leaves
    (``jax.vmap`` over them is a sweep); only ``learning_rate`` may be a schedule.
    Differences from optax: the updates keep the params' dtype when
    ``state_dtype`` differs (optax returns them in the promoted dtype), ``None``
    leaves pass through, and with complex params the scalars are real.

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less
      Scheduled*, NeurIPS 2024 (winner of the AlgoPerf 2024 self-tuning track).

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> opt = gx.schedule_free(gx.sgd(0.5), learning_rate=0.5, b1=0.5)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     u, state = opt.update(params, state, params)  # grad of |w|^2 / 2
      ...     params = gx.apply_updates(params, u)
      >>> gx.schedule_free_eval_params(state, params)  # x: the average of z_2, z_3, z_4
      Array([ 0.28125, -0.5625 ], dtype=float32)
    """
    from gradtx.transforms.combine import as_transform

    for name, value in (("b1", b1), ("weight_lr_power", weight_lr_power)):
        if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
            raise TypeError(f"gx.schedule_free: `{name}` cannot be a schedule; give a number or an array.")
    return ScheduleFree(as_transform(base_optimizer, "schedule_free"), learning_rate, b1, weight_lr_power, state_dtype)
