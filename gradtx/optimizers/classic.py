"""Classic optimizers: SGD (with momentum), AdaGrad, RMSProp, AdaDelta.

Each is a :func:`~gradtx.chain` of primitives with optax's signature and
defaults, so ``optax.sgd(...)`` migrates as ``gx.sgd(...)``.
"""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.transforms.adaptive import scale_by_adadelta, scale_by_rms, scale_by_rss, scale_by_stddev
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.momentum import scale_by_momentum
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["sgd", "adagrad", "rmsprop", "adadelta"]


@fill
def sgd(
    learning_rate: Hyper,
    momentum: Hyper | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> Chain:
    r"""Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

    .. math::
        t_k = g_k + \beta t_{k-1}, \qquad \theta_{k+1} = \theta_k - \eta\, t_k

    (plain SGD when ``momentum`` is None: $\theta_{k+1} = \theta_k - \eta g_k$).
    On a quadratic with Hessian eigenvalues in $[\lambda_{min}, \lambda_{max}]$,
    plain GD converges iff $\eta < 2/\lambda_{max}$, fastest at
    $\eta^* = 2/(\lambda_{min}+\lambda_{max})$ with rate $(\kappa-1)/(\kappa+1)$.

    Args:
      {learning_rate}
      {momentum}
      {nesterov}
      {accumulator_dtype}

    Returns:
      ``chain(scale_by_momentum(momentum), scale_by_learning_rate(learning_rate))``
      (without the momentum when it is None).

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.sgd(0.1, momentum=0.9)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> state = opt.init(params)
      >>> updates, state = opt.update(2 * params, state)
      >>> gx.apply_updates(params, updates)
      Array([ 0.8, -1.6], dtype=float32)

    References:
      Robbins & Monro, *A Stochastic Approximation Method*, 1951;
      Polyak, 1964; Sutskever et al., ICML 2013.
    """
    parts = []
    if momentum is not None:
        parts.append(scale_by_momentum(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype))
    return chain(*parts, scale_by_learning_rate(learning_rate))


@fill
def adagrad(learning_rate: Hyper, initial_accumulator_value: Hyper = 0.1, eps: Hyper = 1e-7) -> Chain:
    r"""AdaGrad: per-coordinate steps shrinking with the accumulated squared gradient.

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad \theta_{t+1} = \theta_t - \eta\, g_t/\sqrt{s_t + \epsilon}

    With a constant gradient $g$ and $s_0 = a$, the $t$-th step is
    $-\eta g/\sqrt{a + t g^2 + \epsilon}$: AdaGrad's steps shrink as $1/\sqrt{t}$.

    Args:
      {learning_rate}
      initial_accumulator_value: $s_0 \ge 0$.
      eps: $\epsilon > 0$.

    References:
      Duchi, Hazan & Singer, JMLR 2011.
    """
    return chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))


@fill
def rmsprop(
    learning_rate: Hyper,
    decay: Hyper = 0.9,
    eps: Hyper = 1e-8,
    initial_scale: Hyper = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: Hyper | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> Chain:
    r"""RMSProp: divide by a running RMS of gradients (centred: by their std. dev.).

    .. math::
        \nu_t = \beta\nu_{t-1} + (1-\beta) g_t^2, \qquad
        \theta_{t+1} = \theta_t - \eta\, g_t/\sqrt{\nu_t + \epsilon}

    Args:
      {learning_rate}
      decay: $\beta \in [0, 1)$.
      eps: $\epsilon > 0$.
      initial_scale: $\nu_0$ (TensorFlow: 1.0; PyTorch: 0.0).
      eps_in_sqrt: $\epsilon$ inside the square root (else added after it).
      centered: subtract the squared running mean (:func:`scale_by_stddev`).
      {momentum} Applied after the learning rate, as in optax and TensorFlow.
      {nesterov}
      bias_correction: debias $\nu$.

    References:
      Hinton, Coursera Lecture 6.5, 2012; Graves, 2013 (centred).
    """
    scaling = (scale_by_stddev if centered else scale_by_rms)(
        decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt, bias_correction=bias_correction
    )
    parts = [scaling, scale_by_learning_rate(learning_rate)]
    if momentum is not None:
        parts.append(scale_by_momentum(momentum, nesterov=nesterov))
    return chain(*parts)


@fill
def adadelta(
    learning_rate: Hyper | None = None,
    rho: Hyper = 0.9,
    eps: Hyper = 1e-6,
    weight_decay: Hyper = 0.0,
    weight_decay_mask: Any = None,
) -> Chain:
    r"""AdaDelta (Zeiler, 2012), with optional weight decay.

    .. math::
        \theta_{t+1} = \theta_t - \eta\,
        \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\,(g_t + \lambda\theta_t)

    Args:
      learning_rate: $\eta$; None means 1.0, Zeiler's original method.
        **Differs from optax**, whose ``adadelta(learning_rate=None)`` skips the
        sign flip and so ascends the loss.
      rho: $\rho \in [0, 1)$.
      eps: $\epsilon > 0$.
      {weight_decay}
      weight_decay_mask: like ``mask`` of :func:`add_decayed_weights`.

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    return chain(
        add_decayed_weights(weight_decay, mask=weight_decay_mask),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(1.0 if learning_rate is None else learning_rate),
    )
