"""Parameter-free Adam-style optimizers from optax.contrib: Prodigy and D-Adapt AdamW.

Each estimates the distance to the solution $D$ from the run and takes
AdamW steps scaled by it (D-Adaptation; Prodigy weights recent gradients
more, so $D$ grows faster). Names, signatures, defaults, states and numerics
are optax.contrib's; every numeric hyperparameter is a pytree leaf (a float, an
array or a schedule), so ``jax.jit`` never recompiles for new values and
``jax.vmap`` over a batch of them is a sweep.

Prodigy and D-Adapt AdamW are whole optimizers in one transform (their
$D$ estimate scales both the moments and the step), as in optax; their
factories live in :mod:`gradtx.optimizers.parameter_free`. DoG, DoWG and
COCOB's scalings are in :mod:`gradtx.transforms.parameter_free_scaling`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation
from gradtx.core.hyperparams import (
    NONNEGATIVE,
    POSITIVE,
    UNIT_INTERVAL,
    Hyper,
    Schedule,
    evaluate,
)
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, sum_of_squares, zero_count
from gradtx.transforms.adam import adam_direction

__all__ = ["DAdaptAdamW", "DAdaptAdamWState", "Prodigy", "ProdigyState"]


def squared_norm(tree: Any) -> jax.Array:
    r"""$\sum_i |x_i|^2$ over the tree (``global_norm`` squared, without the root's rounding)."""
    return sum((sum_of_squares(x) for x in jax.tree.leaves(tree)), jnp.zeros([], gt.lowest_real_dtype(tree)))


def _l1(tree: Any) -> jax.Array:
    r"""$\sum_i |x_i|$ over the tree, leaves added in order (optax's ``tree.sum`` of ``abs``)."""
    out = 0
    for x in jax.tree.leaves(tree):
        out = out + jnp.sum(jnp.abs(x))
    return jnp.asarray(out)


def _ratio_or_zero(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den``, and 0 where ``den`` is 0 (optax gives NaN there, which the max keeps forever)."""
    safe = jnp.where(den > 0, den, jnp.ones_like(den))
    return jnp.where(den > 0, num / safe, 0)


def _betas(h: Any) -> tuple[jax.Array, jax.Array]:
    b1, b2 = h.betas
    return jnp.asarray(b1), jnp.asarray(b2)


def _check_betas(module: Any) -> None:
    if not isinstance(module.betas, (tuple, list)) or len(module.betas) != 2:
        raise ValueError(f"gx.{module.gx_name}: `betas` must be a pair (beta1, beta2), got {module.betas!r}.")
    if any(isinstance(b, Schedule) for b in module.betas):
        raise TypeError(f"gx.{module.gx_name}: `betas` must be numbers or arrays, not schedules.")


# ----------------------------------------------------------------------------- Prodigy


class ProdigyState(NamedTuple):
    """State of :func:`~gradtx.prodigy` (optax.contrib's fields, in its order).

    Attributes:
      exp_avg: EMA of $d_k g_k$ (first moment).
      exp_avg_sq: EMA of $d_k^2 |g_k|^2$ (second moment).
      grad_sum: $s_k$, the $\\beta_3$-weighted sum of $\\hat\\eta_k d_k g_k / d_0$ ($d_k^2 g_k / d_0$ with
        ``safeguard_warmup``).
      params0: the initial parameters $x_0$.
      estim_lr: $d_k$, the distance estimate (a scalar in the params' lowest dtype).
      numerator_weighted: $r_k$, the numerator of the estimate (same dtype).
      count: updates so far (int32).
    """

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    params0: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


class Prodigy(GradientTransformation):
    r"""Prodigy (see :func:`~gradtx.prodigy`)."""

    gx_name = "prodigy"
    learning_rate: Hyper = hyper(1.0, NONNEGATIVE)
    betas: tuple = hyper((0.9, 0.999), UNIT_INTERVAL)
    beta3: Hyper = hyper(None, UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, POSITIVE)
    estim_lr0: Hyper = hyper(1e-6, POSITIVE)
    estim_lr_coef: Hyper = hyper(1.0, POSITIVE)
    weight_decay: Hyper = hyper(0.0, NONNEGATIVE)
    safeguard_warmup: bool = static(False)

    def __post_init__(self):
        super().__post_init__()
        _check_betas(self)

    def init(self, params):
        h = evaluate(self, zero_count())
        dtype = gt.lowest_real_dtype(params)
        return ProdigyState(
            gt.zeros_like(params), gt.zeros_like(params), gt.zeros_like(params),
            gt.tree_map_none(jnp.asarray, params),
            jnp.asarray(h.estim_lr0).astype(dtype), jnp.zeros([], dtype), zero_count(),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.prodigy: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        b1, b2 = _betas(h)
        b3 = b2**0.5 if h.beta3 is None else jnp.asarray(h.beta3)
        count = safe_increment(state.count)
        d = state.estim_lr
        bc = (1 - b2**count) ** 0.5 / (1 - b1**count)
        dlr = (d * h.learning_rate * bc).astype(d.dtype)
        dg = gt.tree_map_none(lambda g: d * g, updates)
        numerator_acc = gt.real_inner(updates, gt.tree_map_none(lambda p0, p: p0 - p, state.params0, params))
        exp_avg = gt.cast_like(gt.update_moment(dg, state.exp_avg, b1, 1), state.exp_avg)
        exp_avg_sq = gt.saturate_like(gt.update_moment_per_elem_norm(dg, state.exp_avg_sq, b2, 2), state.exp_avg_sq)
        weight = d if self.safeguard_warmup else dlr
        grad_sum = gt.tree_map_none(lambda s, x: (b3 * s + weight * x / h.estim_lr0).astype(s.dtype), state.grad_sum, dg)
        num = (b3 * state.numerator_weighted + (d / h.estim_lr0) * dlr * numerator_acc).astype(d.dtype)
        estimate = _ratio_or_zero(h.estim_lr_coef * num, _l1(grad_sum).astype(d.dtype))
        new_d = jnp.maximum(d, estimate.astype(d.dtype))
        direction = adam_direction(exp_avg, exp_avg_sq, exp_avg_sq, new_d * h.eps, None)
        out = gt.tree_map_none(
            lambda p, u: (-h.weight_decay * dlr * p - dlr * u).astype(jnp.result_type(p)), params, direction
        )
        return out, ProdigyState(exp_avg, exp_avg_sq, grad_sum, state.params0, new_d, num, count)


# ----------------------------------------------------------------------------- D-Adapt AdamW


class DAdaptAdamWState(NamedTuple):
    """State of :func:`~gradtx.dadapt_adamw` (optax.contrib's fields, in its order).

    Attributes:
      exp_avg: EMA of $\\eta_k d_k g_k$.
      exp_avg_sq: EMA of $|g_k|^2$.
      grad_sum: $s_k$, the $\\sqrt{\\beta_2}$-EMA of $\\eta_k d_k g_k$.
      estim_lr: $d_k$, the distance estimate (a scalar in the params' lowest dtype).
      numerator_weighted: the numerator of the estimate (same dtype).
      count: updates so far (int32).
    """

    exp_avg: Any
    exp_avg_sq: Any
    grad_sum: Any
    estim_lr: jax.Array
    numerator_weighted: jax.Array
    count: jax.Array


class DAdaptAdamW(GradientTransformation):
    r"""D-Adaptation AdamW (see :func:`~gradtx.dadapt_adamw`)."""

    gx_name = "dadapt_adamw"
    learning_rate: Hyper = hyper(1.0, NONNEGATIVE)
    betas: tuple = hyper((0.9, 0.999), UNIT_INTERVAL)
    eps: Hyper = hyper(1e-8, POSITIVE)
    estim_lr0: Hyper = hyper(1e-6, POSITIVE)
    weight_decay: Hyper = hyper(0.0, NONNEGATIVE)

    def __post_init__(self):
        super().__post_init__()
        _check_betas(self)

    def init(self, params):
        h = evaluate(self, zero_count())
        dtype = gt.lowest_real_dtype(params)
        return DAdaptAdamWState(
            gt.zeros_like(params), gt.zeros_like(params), gt.zeros_like(params),
            jnp.asarray(h.estim_lr0).astype(dtype), jnp.zeros([], dtype), zero_count(),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"gx.dadapt_adamw: {NO_PARAMS_MSG}")
        h = evaluate(self, state.count)
        b1, b2 = _betas(h)
        sb2 = b2**0.5
        d = state.estim_lr
        count = safe_increment(state.count)
        bc = (1 - b2**count) ** 0.5 / (1 - b1**count)
        dlr = (d * h.learning_rate * bc).astype(state.numerator_weighted.dtype)
        s_weighted = adam_direction(state.grad_sum, state.exp_avg_sq, state.exp_avg_sq, h.eps, None)
        numerator_acc = gt.real_inner(updates, s_weighted)
        scaled = gt.tree_map_none(lambda g: dlr * g, updates)
        exp_avg = gt.cast_like(gt.update_moment(scaled, state.exp_avg, b1, 1), state.exp_avg)
        exp_avg_sq = gt.saturate_like(gt.update_moment_per_elem_norm(updates, state.exp_avg_sq, b2, 2), state.exp_avg_sq)
        grad_sum = gt.cast_like(gt.update_moment(scaled, state.grad_sum, sb2, 1), state.grad_sum)
        num = (sb2 * state.numerator_weighted + (1 - sb2) * dlr * numerator_acc).astype(d.dtype)
        estimate = _ratio_or_zero(num, ((1 - sb2) * _l1(grad_sum)).astype(d.dtype))
        new_d = jnp.maximum(d, estimate.astype(d.dtype))
        direction = adam_direction(exp_avg, exp_avg_sq, exp_avg_sq, h.eps, None)
        out = gt.tree_map_none(
            lambda p, u: (-h.weight_decay * dlr * p - u).astype(jnp.result_type(p)), params, direction
        )
        return out, DAdaptAdamWState(exp_avg, exp_avg_sq, grad_sum, new_d, num, count)
