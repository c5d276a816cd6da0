"""Parameter-free step sizes from optax.contrib: DoG, DoWG and COCOB's scalings.

Each has optax.contrib's name, signature, defaults, state and numerics, with
an optional ``count`` at the end of the state (None unless a hyperparameter
is a schedule). The optimizers :func:`~gradtx.dog`, :func:`~gradtx.dowg`
and :func:`~gradtx.cocob` chain them (:mod:`gradtx.optimizers.parameter_free`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import (
    NO_PARAMS_MSG,
    GradientTransformation,
    next_count,
    schedule_count,
)
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import zero_count
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.parameter_free import squared_norm

__all__ = [
    "COCOBState",
    "DoGState",
    "DoWGState",
    "ScaleByCocob",
    "ScaleByDog",
    "ScaleByDowg",
    "scale_by_cocob",
    "scale_by_dog",
    "scale_by_dowg",
]

_INIT_STEPS = ("distance", "learning_rate", "heuristic")


# ----------------------------------------------------------------------------- DoG


class DoGState(NamedTuple):
    """State of :func:`scale_by_dog` (optax.contrib's fields, then an optional count).

    Attributes:
      is_init_step: True before the first update (a bool scalar).
      init_params: the initial parameters $x_0$.
      max_dist: $\\bar r_t$, the largest distance $\\|x_k - x_0\\|$ so far (a
        scalar in the params' lowest dtype).
      sum_sq_norm_grads: $G_t = \\sum_{k \\le t} \\|g_k\\|^2$ (same dtype).
      count: updates so far when ``eps`` or the initial value is a schedule, else None.
    """

    is_init_step: jax.Array
    init_params: Any
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array
    count: jax.Array | None = None


class ScaleByDog(GradientTransformation):
    r"""Global DoG (see :func:`scale_by_dog`)."""

    gx_name = "scale_by_dog"
    init_step_value: Hyper = hyper(check=POSITIVE)
    eps: Hyper = hyper(1e-8, NONNEGATIVE)
    init_step_type: str = static("heuristic")

    def __post_init__(self):
        super().__post_init__()
        if self.init_step_type not in _INIT_STEPS:
            raise ValueError(
                f"gx.scale_by_dog: `init_step` must be a pair (tag, value) with tag one of "
                f"{', '.join(repr(s) for s in _INIT_STEPS)}, got tag {self.init_step_type!r}."
            )

    @property
    def init_step(self) -> tuple[str, Any]:
        return (self.init_step_type, self.init_step_value)

    def init(self, params):
        h = evaluate(self, zero_count())
        dtype = gt.lowest_real_dtype(params)
        if self.init_step_type == "distance":
            r0 = jnp.asarray(h.init_step_value)
        elif self.init_step_type == "heuristic":
            r0 = h.init_step_value * (1 + gt.global_norm(params))
        else:
            r0 = jnp.zeros([])
        return DoGState(
            jnp.asarray(True), gt.tree_map_none(jnp.asarray, params), r0.astype(dtype), jnp.zeros([], dtype),
            schedule_count(self),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.scale_by_dog: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        dist = gt.global_norm(gt.tree_map_none(lambda x0, x: x0 - x, state.init_params, params))
        max_dist = jnp.maximum(state.max_dist, dist.astype(state.max_dist.dtype))
        sos = state.sum_sq_norm_grads + squared_norm(updates).astype(state.sum_sq_norm_grads.dtype)
        eta = max_dist / jnp.sqrt(sos + h.eps)
        if self.init_step_type == "learning_rate":
            eta = jnp.where(state.is_init_step, h.init_step_value, eta)
        factor = gt.scalar_for(eta)
        out = gt.tree_map_none(lambda g: (factor(g) * g).astype(jnp.result_type(g)), updates)
        return out, DoGState(jnp.asarray(False), state.init_params, max_dist, sos, next_count(state.count))


def scale_by_dog(init_step: tuple[str, Hyper], eps: Hyper = 1e-8) -> ScaleByDog:
    r"""Scales updates by the global Distance over Gradients (DoG) step size.

    With $x_0$ the initial parameters and norms over the whole tree:

    .. math::
        \bar r_t = \max\bigl(\bar r_{t-1}, \|x_t - x_0\|\bigr), \quad
        G_t = G_{t-1} + \|g_t\|^2, \quad
        u_t = \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t .

    ``init_step`` sets the start: ``("distance", r)`` gives $\bar r_0 = r$;
    ``("heuristic", \alpha)`` gives $\bar r_0 = \alpha(1 + \|x_0\|)$ (the
    paper suggests $\alpha = 10^{-6}$, $10^{-4}$ with batch norm), so the
    first step is $\alpha(1+\|x_0\|)\,g_0/\sqrt{\|g_0\|^2+\epsilon}$;
    ``("learning_rate", \eta_0)`` gives $\bar r_0 = 0$ and a first step of
    $\eta_0 g_0$. The output points along the gradient: :func:`~gradtx.dog`
    is the descent optimizer. ``update`` needs ``params``, and ``init`` the
    real initial parameters.

    How this differs from :func:`~gradtx.scale_by_distance_over_gradients`
    (optax core's DoG primitive): that one is the paper's layer-wise variant
    (one $\bar r$ and $G$ per leaf, initial distance ``reps_rel``$\cdot(1+\|x_0\|)$
    per leaf, and a ``global_scale``); this one is optax.contrib's global DoG
    (one $\bar r$ and $G$ for the whole tree) with three ways to start.

    Args:
      init_step: ``(tag, value)``, tag ``"distance"``, ``"heuristic"`` or
        ``"learning_rate"`` (static), value $> 0$ (a leaf).
      eps: $\epsilon \ge 0$ added to $G_t$ under the square root.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state :class:`DoGState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_dog(("heuristic", 0.1), eps=0.0)
      >>> x = jnp.array([3.0, 4.0], jnp.float32)  # r_0 = 0.1 * (1 + 5) = 0.6
      >>> u, state = tx.update(jnp.array([3.0, 4.0], jnp.float32), tx.init(x), x)  # 0.6 g / |g|
      >>> [round(float(v), 4) for v in u]
      [0.36, 0.48]

    References:
      Ivgi, Hinder & Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic
      Step Size Schedule*, ICML 2023.
    """
    tag, value = _split_init_step(init_step)
    with as_argument_of("scale_by_dog", init_step_value="init_step"):
        return ScaleByDog(value, eps, tag)


def _split_init_step(init_step: Any) -> tuple[str, Any]:
    if not isinstance(init_step, (tuple, list)) or len(init_step) != 2 or not isinstance(init_step[0], str):
        raise ValueError(
            "gx.scale_by_dog: `init_step` must be a pair (tag, value) with tag one of "
            f"{', '.join(repr(s) for s in _INIT_STEPS)}, got {init_step!r}."
        )
    return init_step[0], init_step[1]


# ----------------------------------------------------------------------------- DoWG


class DoWGState(NamedTuple):
    """State of :func:`scale_by_dowg` (optax.contrib's fields, then an optional count).

    Attributes:
      init_params: the initial parameters $x_0$.
      weighted_sq_norm_grads: $v_t = \\sum_{k \\le t} \\bar r_k^2 \\|g_k\\|^2$ (a
        scalar in the params' lowest dtype).
      estim_sq_dist: $\\bar r_t^2$, the largest squared distance so far (same dtype).
      count: updates so far when a hyperparameter is a schedule, else None.
    """

    init_params: Any
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array
    count: jax.Array | None = None


class ScaleByDowg(GradientTransformation):
    r"""DoWG (see :func:`scale_by_dowg`)."""

    gx_name = "scale_by_dowg"
    init_estim_sq_dist: Hyper = hyper(None, POSITIVE)
    eps: Hyper = hyper(1e-4, POSITIVE)

    def init(self, params):
        h = evaluate(self, zero_count())
        dtype = gt.lowest_real_dtype(params)
        r0 = h.eps if h.init_estim_sq_dist is None else h.init_estim_sq_dist
        return DoWGState(
            gt.tree_map_none(jnp.asarray, params), jnp.zeros([], dtype), jnp.asarray(r0).astype(dtype),
            schedule_count(self),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.scale_by_dowg: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        dtype = state.estim_sq_dist.dtype
        sq_dist = squared_norm(gt.tree_map_none(lambda x0, x: x0 - x, state.init_params, params)).astype(dtype)
        r2 = jnp.maximum(state.estim_sq_dist, sq_dist)
        v = (r2 * squared_norm(updates).astype(dtype) + state.weighted_sq_norm_grads).astype(dtype)
        eta = r2 / (jnp.sqrt(v) + h.eps)
        factor = gt.scalar_for(eta)
        out = gt.tree_map_none(lambda g: (factor(g) * g).astype(jnp.result_type(g)), updates)
        return out, DoWGState(state.init_params, v, r2, next_count(state.count))


def scale_by_dowg(init_estim_sq_dist: Hyper | None = None, eps: Hyper = 1e-4) -> ScaleByDowg:
    r"""Scales updates by the Distance over Weighted Gradients (DoWG) step size.

    With $x_0$ the initial parameters and norms over the whole tree:

    .. math::
        \bar r_t^2 = \max\bigl(\bar r_{t-1}^2, \|x_t - x_0\|^2\bigr), \quad
        v_t = v_{t-1} + \bar r_t^2 \|g_t\|^2, \quad
        u_t = \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t ,

    from $\bar r_0^2$ = ``init_estim_sq_dist`` (default: $\epsilon$) and $v_0 = 0$.
    The first step is $\bar r_0\, g_0/\|g_0\|$ (for $\epsilon \ll \bar r_0\|g_0\|$).
    The output points along the gradient: :func:`~gradtx.dowg` is the descent
    optimizer. ``update`` needs ``params``.

    Args:
      init_estim_sq_dist: $\bar r_0^2 > 0$, an initial guess of the squared
        distance to the solution (None: ``eps``).
      eps: $\epsilon > 0$ added to the denominator (and the default $\bar r_0^2$).

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state :class:`DoWGState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_dowg(init_estim_sq_dist=0.25, eps=1e-12)
      >>> x = jnp.array([1.0, 1.0], jnp.float32)
      >>> u, state = tx.update(jnp.array([3.0, 4.0], jnp.float32), tx.init(x), x)  # 0.5 g / |g|
      >>> [round(float(v), 4) for v in u]
      [0.3, 0.4]

    References:
      Khaled, Mishchenko & Jin, *DoWG Unleashed: An Efficient Universal
      Parameter-Free Gradient Descent Method*, NeurIPS 2023.
    """
    return ScaleByDowg(init_estim_sq_dist, eps)


# ----------------------------------------------------------------------------- COCOB


class COCOBState(NamedTuple):
    """State of :func:`scale_by_cocob` (optax.contrib's fields, then an optional count).

    Attributes:
      init_particles: the initial parameters $x_0$.
      cumulative_gradients: $\\theta_t = -\\sum_{k \\le t} g_k$.
      scale: $L_t$, the largest $|g|$ so far (from $\\epsilon$).
      subgradients: $G_t = \\sum_{k \\le t} |g_k|$.
      reward: $R_t$, the wealth won so far (non-negative).
      count: updates so far when a hyperparameter is a schedule, else None.
    """

    init_particles: Any
    cumulative_gradients: Any
    scale: Any
    subgradients: Any
    reward: Any
    count: jax.Array | None = None


class ScaleByCocob(GradientTransformation):
    r"""COCOB-Backprop (see :func:`scale_by_cocob`)."""

    gx_name = "scale_by_cocob"
    alpha: Hyper = hyper(100.0, POSITIVE)
    eps: Hyper = hyper(1e-8, POSITIVE)

    def init(self, params):
        h = evaluate(self, zero_count())
        zeros = gt.zeros_like(params)
        return COCOBState(
            gt.tree_map_none(jnp.asarray, params), zeros, gt.full_like(params, h.eps), zeros, zeros,
            schedule_count(self),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.scale_by_cocob: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        alpha = gt.scalar_for(h.alpha)

        def one(g, p, p0, cum, big_l, big_g, reward):
            big_l = jnp.maximum(big_l, jnp.abs(g))
            big_g = big_g + jnp.abs(g)
            reward = jnp.maximum(reward - g * (p - p0), 0)
            cum = cum - g
            u = -p + (p0 + cum / (big_l * jnp.maximum(big_g + big_l, alpha(big_l) * big_l)) * (big_l + reward))
            return u, cum, big_l, big_g, reward

        leaves, treedef = jax.tree.flatten(updates)
        rest = [treedef.flatten_up_to(t) for t in (params, state.init_particles, state.cumulative_gradients,
                                                  state.scale, state.subgradients, state.reward)]
        outs = [one(*args) for args in zip(leaves, *rest)]
        u, cum, big_l, big_g, reward = (treedef.unflatten([o[i] for o in outs]) for i in range(5))
        return u, COCOBState(state.init_particles, cum, big_l, big_g, reward, next_count(state.count))


def scale_by_cocob(alpha: Hyper = 100.0, eps: Hyper = 1e-8) -> ScaleByCocob:
    r"""Rescales updates by COCOB-Backprop's coin betting, per coordinate.

    With $x_0$ the initial parameters, per coordinate (from $L_0 = \epsilon$,
    $G_0 = R_0 = \theta_0 = 0$):

    .. math::
        L_t = \max(L_{t-1}, |g_t|), \quad G_t = G_{t-1} + |g_t|, \quad
        R_t = \max\bigl(R_{t-1} - g_t (x_t - x_0),\, 0\bigr), \quad
        \theta_t = \theta_{t-1} - g_t, \\
        u_t = x_0 + \frac{\theta_t\,(L_t + R_t)}{L_t \max(G_t + L_t,\; \alpha L_t)} - x_t .

    The output is the full move to the bet's next point (it already descends:
    chain no negative learning rate after it). ``update`` needs ``params``.
    Real parameters only.

    Args:
      alpha: $\alpha > 0$, which caps the fraction bet early on (the first
        step is $-g_0/(\alpha |g_0|)$ for $\alpha \ge 2$).
      eps: $\epsilon > 0$, the initial $L$ (keeps the first division finite).

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state :class:`COCOBState`.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_cocob(alpha=10.0)
      >>> x = jnp.array([1.0, -1.0], jnp.float32)
      >>> u, state = tx.update(jnp.array([2.0, -0.5], jnp.float32), tx.init(x), x)  # -sign(g) / alpha
      >>> [round(float(v), 4) for v in u]
      [-0.1, 0.1]

    References:
      Orabona & Tommasi, *Training Deep Networks without Learning Rates Through
      Coin Betting*, NeurIPS 2017 (Algorithm 2).
    """
    return ScaleByCocob(alpha, eps)
