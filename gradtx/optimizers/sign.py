"""Sign-based optimizers as chains: lion, sign_sgd, signum.

Each step moves every coordinate by the same magnitude $\\eta$ (plus weight
decay): the direction is a sign. With a constant learning rate they hover
within about $\\eta$ of a minimum, so a decaying schedule is what makes them
converge to high accuracy.
"""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.basic import scale_by_learning_rate, scale_by_sign
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.momentum import ema
from gradtx.transforms.sign import scale_by_lion
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["lion", "sign_sgd", "signum"]


@fill
def lion(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.99,
    mu_dtype: Any = None,
    weight_decay: Hyper = 1e-3,
    mask: Any = None,
) -> Chain:
    r"""Lion: the sign of interpolated momentum, with decoupled weight decay.

    .. math::
        c_t = (1-\beta_1)\, g_t + \beta_1 m_{t-1}, \qquad
        \theta_{t+1} = \theta_t - \eta\left(\mathrm{sign}(c_t) + \lambda\theta_t\right), \qquad
        m_t = (1-\beta_2)\, g_t + \beta_2 m_{t-1}.

    Only one moment is stored (half of Adam's memory). Its steps have the
    size of $\eta$ in every coordinate, so it wants a learning rate 3-10x
    smaller than AdamW's and a weight decay 3-10x larger (the paper).

    Args:
      {learning_rate}
      b1: $\beta_1 \in [0, 1]$, the weight of the momentum in the sign.
      b2: $\beta_2 \in [0, 1]$, the decay of the stored momentum.
      {mu_dtype}
      {weight_decay}
      {mask}

    Returns:
      ``chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay,
      mask), scale_by_learning_rate(learning_rate))``.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.lion(0.1, weight_decay=0.0)
      >>> params = jnp.array([1.0, -2.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(2 * params, state, params)
      >>> gx.apply_updates(params, updates).tolist()
      [0.9, -1.9]

    References:
      Chen et al., *Symbolic Discovery of Optimization Algorithms*,
      arXiv:2302.06675, 2023.
    """
    with as_argument_of("lion"):
        return chain(
            scale_by_lion(b1, b2, mu_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


@fill
def sign_sgd(learning_rate: Hyper) -> Chain:
    r"""signSGD: descend along the sign of the gradient.

    .. math:: \theta_{t+1} = \theta_t - \eta\, \mathrm{sign}(g_t)

    Steepest descent in the $\ell_\infty$ norm; one bit per coordinate
    suffices to communicate a step.

    Args:
      {learning_rate}

    Returns:
      ``chain(scale_by_sign(), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.sign_sgd(0.5)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(2 * params, opt.init(params))
      >>> gx.apply_updates(params, updates).tolist()
      [0.5, -1.5]

    References:
      Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex
      Problems*, ICML 2018; Balles et al., *The Geometry of Sign Gradient
      Descent*, 2020.
    """
    with as_argument_of("sign_sgd"):
        return chain(scale_by_sign(), scale_by_learning_rate(learning_rate))


@fill
def signum(learning_rate: Hyper, beta: Hyper = 0.9, accumulator_dtype: Any = None) -> Chain:
    r"""Signum: descend along the sign of an EMA of the gradients.

    .. math::
        m_t = \beta\, m_{t-1} + (1-\beta)\, g_t, \qquad
        \theta_{t+1} = \theta_t - \eta\, \mathrm{sign}(m_t),

    with $m_0 = 0$. The EMA is not debiased: a positive factor does not
    change a sign.

    Args:
      {learning_rate}
      beta: $\beta \in [0, 1)$, the EMA's decay.
      {accumulator_dtype}

    Returns:
      ``chain(ema(beta, debias=False, accumulator_dtype), scale_by_sign(),
      scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.signum(0.5, beta=0.9)
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(2 * params, opt.init(params))
      >>> gx.apply_updates(params, updates).tolist()
      [0.5, -1.5]

    References:
      Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex
      Problems*, ICML 2018; Zhao et al., *Deconstructing What Makes a Good
      Optimizer for Language Models*, 2024.
    """
    with as_argument_of("signum", decay="beta"):
        return chain(
            ema(beta, debias=False, accumulator_dtype=accumulator_dtype),
            scale_by_sign(),
            scale_by_learning_rate(learning_rate),
        )
