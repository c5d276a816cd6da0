"""Layer-wise adaptive optimizers as chains: LAMB and LARS."""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.momentum import trace
from gradtx.transforms.trust_ratio import scale_by_trust_ratio
from gradtx.transforms.weight_decay import add_decayed_weights
from gradtx.wrappers.masked import masked

__all__ = ["lamb", "lars"]


@fill
def lamb(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-6,
    eps_root: Hyper = 0.0,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""LAMB: Adam's direction plus decoupled weight decay, rescaled per layer by a trust ratio.

    .. math::
        d_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon} + \lambda\theta_t,
        \qquad
        \theta_{t+1} = \theta_t - \eta\, \frac{\lVert\theta_t\rVert}{\lVert d_t\rVert}\, d_t

    per leaf (ratio 1 where either norm is 0): every layer moves by $\eta$
    times its own norm. ``chain(scale_by_adam, add_decayed_weights,
    scale_by_trust_ratio, scale_by_learning_rate)``.

    Args:
      {learning_rate}
      {b1}
      {b2}
      {eps}
      {eps_root}
      {weight_decay}
      {mask}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.lamb(0.1)
      >>> params = jnp.array([3.0, 4.0], jnp.float32)
      >>> u, _ = opt.update(jnp.array([1.0, 1.0], jnp.float32), opt.init(params), params)
      >>> gx.apply_updates(params, u)  # moved by 0.1 * |params| = 0.5
      Array([2.6464467, 3.6464467], dtype=float32)

    References:
      You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76
      minutes*, ICLR 2020 (arXiv 2019).
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_trust_ratio(),
        scale_by_learning_rate(learning_rate),
    )


@fill
def lars(
    learning_rate: Hyper,
    weight_decay: Hyper = 0.0,
    weight_decay_mask: Any = True,
    trust_coefficient: Hyper = 0.001,
    eps: Hyper = 0.0,
    trust_ratio_mask: Any = True,
    momentum: Hyper = 0.9,
    nesterov: bool = False,
) -> Chain:
    r"""LARS: SGD with momentum on layer-wise trust-ratio-scaled, weight-decayed gradients.

    .. math::
        d_t = \frac{c\,\lVert\theta_t\rVert}{\lVert g_t + \lambda\theta_t\rVert + \epsilon}
              (g_t + \lambda\theta_t), \qquad
        m_t = -\eta\, d_t + \beta m_{t-1}, \qquad \theta_{t+1} = \theta_t + m_t

    per leaf (ratio 1 where either norm is 0; with ``nesterov`` the step is
    $-\eta d_t + \beta m_t$). ``chain(add_decayed_weights,
    masked(scale_by_trust_ratio), scale_by_learning_rate, trace)``, as optax.

    Args:
      {learning_rate}
      weight_decay: $\lambda \ge 0$, added to the gradient before the trust ratio.
      weight_decay_mask: where to decay: a pytree of booleans like the params (or a
        prefix of it), or a function ``params -> mask``; True: everywhere.
      trust_coefficient: $c \ge 0$, the trust ratio's multiplier.
      eps: $\epsilon \ge 0$ added to the trust ratio's denominator.
      trust_ratio_mask: where to apply the trust ratio (same forms as
        ``weight_decay_mask``); e.g. exclude biases and norms.
      momentum: $\beta \in [0, 1)$.
      {nesterov}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.lars(1.0, trust_coefficient=0.1, momentum=0.0)
      >>> params = jnp.array([3.0, 4.0], jnp.float32)
      >>> u, _ = opt.update(jnp.array([0.0, 2.0], jnp.float32), opt.init(params), params)
      >>> u  # a step of 0.1 * |params| = 0.5 along -g
      Array([ 0. , -0.5], dtype=float32)

    References:
      You, Gitman & Ginsburg, *Large Batch Training of Convolutional Networks*, 2017.
    """
    return chain(
        add_decayed_weights(weight_decay, weight_decay_mask),
        masked(scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps), trust_ratio_mask),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov),
    )
