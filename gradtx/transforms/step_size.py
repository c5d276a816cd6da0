"""Step sizes computed from the run itself: Polyak's and distance over gradients (DoG)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import (
    NO_PARAMS_MSG,
    EmptyState,
    GradientTransformation,
    ScaleByScheduleState,
    next_count,
    schedule_count,
)
from gradtx.core.docs import fill
from gradtx.core.hyperparams import ANY_REAL, NONNEGATIVE, POSITIVE, Hyper, evaluate
from gradtx.core.interop import missing_extra_args_message
from gradtx.core.module import hyper, static
from gradtx.core.numerics import sum_of_squares, zero_count

__all__ = [
    "ScaleByDistanceOverGradients",
    "ScaleByDistanceOverGradientsState",
    "ScaleByPolyak",
    "scale_by_distance_over_gradients",
    "scale_by_polyak",
]

# Polyak's step is 0 where ||g||^2 + eps is at most float64's machine epsilon (optax's guard,
# whatever the dtype): the step then cannot blow up on a vanishing gradient.
_TINY = float(jnp.finfo(jnp.float64).eps)
_VARIANTS = ("sps", "sps+")


class ScaleByPolyak(GradientTransformation):
    r"""Polyak's step size (see :func:`scale_by_polyak`)."""

    gx_name = "scale_by_polyak"
    f_min: Hyper = hyper(0.0, ANY_REAL)
    max_learning_rate: Hyper = hyper(1.0, NONNEGATIVE)
    eps: Hyper = hyper(0.0, NONNEGATIVE)
    variant: str = static("sps")

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in _VARIANTS:
            raise ValueError(f"gx.scale_by_polyak: `variant` must be 'sps' or 'sps+', got {self.variant!r}.")

    def init(self, params):
        count = schedule_count(self)
        return EmptyState() if count is None else ScaleByScheduleState(count)

    def update(self, updates, state, params=None, *, value=None, **extra_args):
        if value is None:
            raise TypeError(
                missing_extra_args_message(
                    "gx.scale_by_polyak", ["value"],
                    "pass the loss at `params`, `tx.update(grads, state, params, value=loss)`.",
                )
            )
        if jnp.ndim(value) != 0:
            raise ValueError(
                f"gx.scale_by_polyak: `value` must be a scalar loss, got shape {jnp.shape(value)}."
            )
        count = state.count if isinstance(state, ScaleByScheduleState) else None
        h = evaluate(self, count)
        sq_norm = gt.global_norm(updates) ** 2
        gap = jnp.asarray(value - h.f_min).astype(sq_norm.dtype)
        if self.variant == "sps+":
            gap = jnp.maximum(gap, 0)
        den = sq_norm + h.eps
        step = jnp.where(den <= _TINY, 0.0, jnp.minimum(gap / den, h.max_learning_rate))
        factor = gt.scalar_for(step, promote=False)
        out = gt.tree_map_none(lambda g: factor(g) * g, updates)
        new_state = state if count is None else ScaleByScheduleState(next_count(count))
        return out, new_state


@fill
def scale_by_polyak(
    f_min: Hyper = 0.0,
    max_learning_rate: Hyper = 1.0,
    eps: Hyper = 0.0,
    variant: str = "sps",
) -> ScaleByPolyak:
    r"""Scales updates by Polyak's step size, from the loss ``value`` passed to ``update``.

    .. math::
        \gamma_t = \min\left\{\frac{f(x_t) - f^\star}{\|g_t\|^2 + \epsilon},\;
        \gamma_{\max}\right\}, \qquad u_t = \gamma_t\, g_t ,

    with $\|g_t\|$ the norm of the whole updates tree, and $\gamma_t = 0$
    where $\|g_t\|^2 + \epsilon$ is at most float64's machine epsilon
    ($2.2\cdot10^{-16}$, as in optax). With ``variant="sps+"`` the gap
    $f(x_t) - f^\star$ is replaced by its positive part (Garrigos et al.,
    2023), so a loss below the guess $f^\star$ never turns the step into ascent. The
    output points along the gradient: see :func:`~gradtx.polyak_sgd` for the
    descent optimizer.

    ``update`` needs the keyword argument ``value``: the loss $f(x_t)$ at the
    current parameters (``gx.chain`` passes it on to every member).

    Args:
      f_min: $f^\star$, a lower bound on (a guess of) the loss's minimum (0 for
        models that interpolate the data).
      max_learning_rate: $\gamma_{\max} \ge 0$, the largest step.
      eps: $\epsilon \ge 0$ added to $\|g_t\|^2$.
      variant: ``"sps"`` or ``"sps+"`` (static).

    Returns:
      {returns_tx} Its state is ``EmptyState()``, or ``ScaleByScheduleState(count)``
      when a hyperparameter is a schedule.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_polyak(max_learning_rate=10.0)
      >>> x = jnp.array([1.0, 2.0], jnp.float32)  # f(x) = |x|^2, g = 2x: step 5/20
      >>> u, _ = tx.update(2 * x, tx.init(x), x, value=jnp.sum(x**2))
      >>> u
      Array([0.5, 1. ], dtype=float32)

    References:
      Loizou et al., *Stochastic Polyak Step-size for SGD: An Adaptive Learning
      Rate for Fast Convergence*, AISTATS 2021; Garrigos et al., *Function Value
      Learning: Adaptive Learning Rates Based on the Polyak Stepsize and Function
      Splitting in ERM*, 2023.
    """
    return ScaleByPolyak(f_min, max_learning_rate, eps, variant)


class ScaleByDistanceOverGradientsState(NamedTuple):
    """State of :func:`scale_by_distance_over_gradients`.

    Attributes:
      max_dist: per leaf, $r_t$, the largest distance from the initial values
        (a scalar in the leaf's dtype).
      grad_sum_of_squares: per leaf, $G_t = \\sum_{k \\le t} \\|g_k\\|^2$ (a scalar
        in the leaf's real dtype).
      init_params: the initial parameters, in ``param_dtype``.
      count: updates so far when ``eps`` or ``global_scale`` is a schedule, else None.
    """

    max_dist: Any
    grad_sum_of_squares: Any
    init_params: Any
    count: jax.Array | None = None


def _real_dtype(x: Any) -> Any:
    dtype = jnp.result_type(x)
    return jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.complexfloating) else dtype


class ScaleByDistanceOverGradients(GradientTransformation):
    r"""Layer-wise DoG (see :func:`scale_by_distance_over_gradients`)."""

    gx_name = "scale_by_distance_over_gradients"
    reps_rel: Hyper = hyper(1e-6, POSITIVE)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    param_dtype: Any = static(jnp.float32)
    global_scale: Hyper = hyper(1.0, ANY_REAL)

    def init(self, params):
        h = evaluate(self, zero_count())
        max_dist = gt.tree_map_none(lambda x: (h.reps_rel * (1 + gt.global_norm(x))).astype(_real_dtype(x)), params)
        sos = gt.tree_map_none(lambda x: jnp.zeros([], _real_dtype(x)), params)
        init_params = gt.tree_map_none(lambda x: gt.cast(jnp.asarray(x), self.param_dtype or jnp.result_type(x)), params)
        return ScaleByDistanceOverGradientsState(max_dist, sos, init_params, schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.scale_by_distance_over_gradients: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        max_dist = gt.tree_map_none(
            lambda d, x, x0: jnp.maximum(d, gt.global_norm(x - x0).astype(d.dtype)), state.max_dist, params, state.init_params
        )
        sos = gt.tree_map_none(lambda s, g: s + sum_of_squares(g).astype(s.dtype), state.grad_sum_of_squares, updates)

        def scaled(g, d, s):
            den = jnp.sqrt(s + h.eps)
            eta = h.global_scale * jnp.where(den > 0, d / den, 0.0)  # 0, not NaN, before any gradient
            return (eta * g).astype(g.dtype)

        out = gt.tree_map_none(scaled, updates, max_dist, sos)
        new_state = ScaleByDistanceOverGradientsState(max_dist, sos, state.init_params, next_count(state.count))
        return out, new_state


def scale_by_distance_over_gradients(
    reps_rel: Hyper = 1e-6,
    eps: Hyper = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: Hyper = 1.0,
) -> ScaleByDistanceOverGradients:
    r"""Distance over gradients (DoG): a learning-rate-free step size, per leaf.

    For each leaf (array) of the params, with $x_0$ its initial value:

    .. math::
        r_0 = \rho\,(1 + \|x_0\|), \quad r_t = \max(r_{t-1}, \|x_t - x_0\|), \quad
        G_t = G_{t-1} + \|g_t\|^2, \quad
        u_t = s\,\frac{r_t}{\sqrt{G_t + \epsilon}}\, g_t .

    This is the paper's layer-wise variant (LDoG): it stores one copy of the
    initial parameters and two scalars per leaf. The authors recommend
    averaging the iterates (e.g. :func:`~gradtx.ema` of the params). ``update``
    needs ``params``. With ``global_scale=1`` the output points along the
    gradient; use ``-1.0`` (or chain ``gx.scale(-1.0)``) for descent.

    Differences from optax, where its numbers are not the intended ones: the
    sum of squares is a 0-d scalar in the leaf's (real) dtype, where optax
    keeps a float-default array of shape ``(1,)`` that turns a scalar leaf's
    update into shape ``(1,)`` and a float32 update into float64 under x64;
    the distance is stored in the leaf's dtype whatever ``param_dtype`` is;
    complex leaves use $|x|^2$; and with ``eps=0`` a leaf whose gradients have
    all been zero gets update 0, not NaN. Elsewhere the numbers are optax's.

    Args:
      reps_rel: $\rho > 0$, the initial distance relative to $1 + \|x_0\|$
        (the authors suggest 1e-4 for models with batch norm, 1e-6 otherwise).
      eps: $\epsilon \ge 0$ added under the square root.
      param_dtype: dtype in which the initial parameters are stored (static;
        None: the params' own).
      global_scale: $s$, a real factor on every step (typically 1 or -1).

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state
      :class:`ScaleByDistanceOverGradientsState`. Every numeric argument is a
      pytree leaf; ``eps`` and ``global_scale`` may be schedules.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0, global_scale=-1.0)
      >>> x = jnp.array([3.0, 4.0], jnp.float32)  # r_0 = 0.1 * (1 + 5) = 0.6
      >>> u, state = tx.update(jnp.array([3.0, 4.0], jnp.float32), tx.init(x), x)  # 0.6 g / |g|
      >>> [round(float(v), 4) for v in u]
      [-0.36, -0.48]

    References:
      Ivgi, Hinder & Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic
      Step Size Schedule*, ICML 2023.
    """
    return ScaleByDistanceOverGradients(reps_rel, eps, param_dtype, global_scale)
