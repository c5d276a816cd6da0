"""Sublinear-memory optimizers as chains: Adafactor and SM3."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.transforms.basic import scale, scale_by_learning_rate
from gradtx.transforms.clipping import clip_by_block_rms
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.factored import scale_by_factored_rms, scale_by_sm3
from gradtx.transforms.momentum import ema
from gradtx.transforms.rescale import scale_by_param_block_rms
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["adafactor", "sm3"]


@fill
def adafactor(
    learning_rate: Hyper | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: Hyper = 0.8,
    decay_offset: Hyper = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: Hyper | None = 1.0,
    momentum: Hyper | None = None,
    dtype_momentum: Any = jnp.float32,
    weight_decay_rate: Hyper | None = None,
    eps: Hyper = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
) -> Chain:
    r"""Adafactor: factored second moments (sublinear memory), update clipping, relative steps.

    .. math::
        \hat u_t = \frac{g_t}{\sqrt{\hat V_t}}, \quad
        \tilde u_t = \frac{\hat u_t}{\max(1, \mathrm{RMS}(\hat u_t)/d)}, \quad
        \theta_{t+1} = \theta_t - \Big(\eta\,\max(\mathrm{RMS}(\theta_t), 10^{-3})\,
        \tilde u_t + \lambda\theta_t\Big)

    per leaf, where $\hat V_t$ is :func:`scale_by_factored_rms`'s estimate
    (rank 1 for large matrices: $O(n+m)$ memory for $n\times m$) with decay
    $1-(t+1-t_0)^{-c}$, $d$ the ``clipping_threshold``, and the parameter
    scale present only with ``multiply_by_parameter_scale``. With
    ``momentum`` $\beta_1$ the (scaled) update is first averaged,
    $m_t = \beta_1 m_{t-1} + (1-\beta_1)\eta\,\ldots$ (not debiased).

    The chain (as optax's): ``scale_by_factored_rms``, ``clip_by_block_rms``,
    ``scale_by_learning_rate(flip_sign=False)``, ``scale_by_param_block_rms``,
    ``ema(debias=False)``, ``add_decayed_weights``, ``scale(-1)``, each only
    where its argument asks for it. Note that the weight decay is *not*
    multiplied by the learning rate.

    Args:
      learning_rate: the step size $\eta$ (>= 0), a float, array or schedule, or
        None for none (relative steps only). Adafactor's natural scale differs
        from Adam's (no $1/\sqrt{d_{model}}$ correction).
      min_dim_size_to_factor: factor a leaf only if its two largest axes have at
        least this many entries.
      decay_rate: $c \ge 0$, the exponent of the second-moment decay schedule.
      decay_offset: $t_0$, an integer step subtracted from the count (fine-tuning).
      multiply_by_parameter_scale: scale steps by the parameters' RMS (relative
        steps); else $\eta$ is an absolute step size.
      clipping_threshold: $d > 0$, the largest RMS of a leaf's update, or None.
      momentum: $\beta_1 \in [0, 1)$ of an (undebiased) EMA of the updates, or None.
      dtype_momentum: dtype of the momentum buffer.
      weight_decay_rate: $\lambda \ge 0$, or None for no weight decay.
      eps: $\epsilon_1 \ge 0$ added to the squared gradients.
      factored: factor the second moments (else Adam-like full moments).
      weight_decay_mask: where to decay: a pytree of booleans like the params (or a
        prefix of it), or a function ``params -> mask``; None: everywhere.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.adafactor(learning_rate=0.1)
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> u, state = opt.update(2 * params, opt.init(params), params)
      >>> [round(float(x), 4) for x in u]  # lr * RMS(params) per coordinate
      [-0.216, -0.216, -0.216]

    References:
      Shazeer & Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory
      Cost*, ICML 2018.
    """
    parts = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        parts.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        parts.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        parts.append(scale_by_param_block_rms())
    if momentum is not None:
        parts.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        parts.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    parts.append(scale(-1))
    return chain(*parts)


@fill
def sm3(learning_rate: Hyper, momentum: Hyper | None = 0.9) -> Chain:
    r"""SM3: AdaGrad-like steps with one accumulator per tensor axis (sublinear memory).

    .. math::
        \nu_t(i) = \min_r \mu^{(r)}_{t-1}(i_r) + g_t(i)^2, \quad
        \mu^{(r)}_t(j) = \max_{i:\, i_r = j} \nu_t(i), \quad
        m_t = \beta m_{t-1} + (1-\beta)\, \frac{g_t}{\sqrt{\nu_t + \epsilon}}, \quad
        \theta_{t+1} = \theta_t - \eta\, m_t

    (SM3-II; see :func:`scale_by_sm3`). ``momentum=None`` means no averaging
    ($\beta = 0$; optax's ``sm3`` fails on None).

    Args:
      {learning_rate}
      momentum: $\beta \in [0, 1)$ of the EMA of the scaled gradients, or None.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.sm3(0.1, momentum=None)
      >>> params = jnp.zeros((2, 3), jnp.float32)
      >>> u, state = opt.update(jnp.full((2, 3), 2.0, jnp.float32), opt.init(params), params)
      >>> round(float(u[0, 0]), 6)
      -0.1

    References:
      Anil, Gupta, Koren & Singer, *Memory-Efficient Adaptive Optimization*,
      NeurIPS 2019.
    """
    return chain(scale_by_sm3(0.0 if momentum is None else momentum), scale_by_learning_rate(learning_rate))
