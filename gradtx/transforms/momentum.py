"""First-moment accumulators: heavy-ball momentum, EMA, bias correction."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.docs import fill
from gradtx.core.hyperparams import UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import hyper, static
from gradtx.core.numerics import safe_increment, zero_count
from gradtx.core import tree as gt

__all__ = [
    "TraceState",
    "EmaState",
    "BiasCorrectionState",
    "ScaleByMomentum",
    "Ema",
    "BiasCorrection",
    "scale_by_momentum",
    "trace",
    "ema",
    "bias_correction",
]


class TraceState(NamedTuple):
    """State of :func:`scale_by_momentum`.

    Attributes:
      trace: the momentum buffer, like the params.
      count: updates so far when ``momentum`` is scheduled, else None.
    """

    trace: Any
    count: jax.Array | None = None


class EmaState(NamedTuple):
    """State of :func:`ema`: the step count and the (biased) average."""

    count: jax.Array
    ema: Any


class BiasCorrectionState(NamedTuple):
    """State of :func:`bias_correction`: the step count."""

    count: jax.Array


class ScaleByMomentum(GradientTransformation):
    r"""Heavy-ball momentum $t \leftarrow g + \beta t$ (see :func:`scale_by_momentum`)."""

    gx_name = "scale_by_momentum"
    decay: Hyper = hyper(check=UNIT_INTERVAL)
    nesterov: bool = static(False)
    accumulator_dtype: Any = static(None)

    def init(self, params):
        return TraceState(gt.zeros_like(params, self.accumulator_dtype), schedule_count(self))

    def update(self, updates, state, params=None, **extra_args):
        beta = evaluate(self, state.count).decay
        new_trace = gt.tree_map_none(lambda g, t: g + beta * t, updates, state.trace)
        if self.nesterov:
            updates = gt.tree_map_none(lambda g, t: g + beta * t, updates, new_trace)
        else:
            updates = new_trace
        # The buffer keeps the dtype `init` gave it (accumulator_dtype or the params').
        return updates, TraceState(gt.cast_like(new_trace, state.trace), next_count(state.count))


@fill
def scale_by_momentum(
    momentum: Hyper = 0.9, *, nesterov: bool = False, accumulator_dtype: Any = None
) -> ScaleByMomentum:
    r"""Heavy-ball momentum (Polyak, 1964).

    .. math::
        t_k = g_k + \beta\, t_{k-1}, \qquad
        u_k = t_k \;\; \text{or, with Nesterov,} \;\; u_k = g_k + \beta\, t_k .

    Followed by ``scale_by_learning_rate(eta)`` this is the seed's
    $m \leftarrow \beta m - \eta\nabla L$, $w \leftarrow w + m$, and PyTorch's
    ``SGD(momentum=beta)``. A constant gradient is amplified by $1/(1-\beta)$.

    Args:
      {momentum}
      {nesterov}
      {accumulator_dtype}

    Returns:
      {returns_tx} State: :class:`TraceState`.

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
      Sutskever et al., *On the importance of initialization and momentum in deep learning*, 2013.
    """
    return ScaleByMomentum(momentum, nesterov, accumulator_dtype)


def trace(decay: Hyper, nesterov: bool = False, accumulator_dtype: Any = None) -> ScaleByMomentum:
    """Optax's name and signature for :func:`scale_by_momentum` (``decay`` = momentum)."""
    return ScaleByMomentum(decay, nesterov, accumulator_dtype)


class Ema(GradientTransformation):
    r"""Exponential moving average of updates (see :func:`ema`)."""

    gx_name = "ema"
    decay: Hyper = hyper(check=UNIT_INTERVAL)
    debias: bool = static(True)
    accumulator_dtype: Any = static(None)

    def init(self, params):
        return EmaState(zero_count(), gt.zeros_like(params, self.accumulator_dtype))

    def update(self, updates, state, params=None, **extra_args):
        decay = evaluate(self, state.count).decay
        new_ema = gt.update_moment(updates, state.ema, decay, 1)
        count = safe_increment(state.count)
        out = gt.bias_correction(new_ema, decay, count) if self.debias else new_ema
        return out, EmaState(count, gt.cast_like(new_ema, state.ema))


@fill
def ema(decay: Hyper, debias: bool = True, accumulator_dtype: Any = None) -> Ema:
    r"""Exponential moving average of the updates.

    .. math::
        m_t = (1-\beta)\, g_t + \beta\, m_{t-1}, \qquad
        u_t = m_t / (1 - \beta^t) \;\; \text{(debiased)} .

    Args:
      decay: $\beta \in [0, 1)$.
      debias: divide by $1-\beta^t$ (the same as following a non-debiased EMA
        with :func:`bias_correction`).
      {accumulator_dtype}

    Returns:
      {returns_tx} State: :class:`EmaState`.
    """
    return Ema(decay, debias, accumulator_dtype)


class BiasCorrection(GradientTransformation):
    r"""Divides updates by $1-\beta^t$ (see :func:`bias_correction`)."""

    gx_name = "bias_correction"
    decay: Hyper = hyper(check=UNIT_INTERVAL)

    def init(self, params):
        return BiasCorrectionState(zero_count())

    def update(self, updates, state, params=None, **extra_args):
        decay = evaluate(self, state.count).decay
        count = safe_increment(state.count)
        return gt.bias_correction(updates, decay, count), BiasCorrectionState(count)


def bias_correction(decay: Hyper) -> BiasCorrection:
    r"""Divides incoming updates by $1 - \beta^t$, $t$ = 1 on the first update.

    A transform, so debiasing composes: ``chain(ema(b, debias=False),
    bias_correction(b))`` equals ``ema(b)``. It corrects the bias of an EMA
    initialised at zero (Kingma & Ba, 2015, Sec. 3). Optax's function of the
    same name is the tree helper ``gradtx.core.tree.bias_correction``.

    Args:
      decay: the $\beta \in [0, 1)$ of the EMA being corrected.
    """
    return BiasCorrection(decay)
