"""The Adam family as chains: adam, adamw, nadam, nadamw, adamax, adamaxw, amsgrad."""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.transforms.adam import scale_by_adam, scale_by_adamax, scale_by_amsgrad
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["adam", "adamw", "nadam", "nadamw", "adamax", "adamaxw", "amsgrad"]


@fill
def adam(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> Chain:
    r"""Adam: :func:`scale_by_adam` followed by the learning rate.

    .. math::
        \theta_{t+1} = \theta_t - \eta\, \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}

    The first step is $-\eta\, g/(|g|+\epsilon)$: about $\eta$ per coordinate.
    (PyTorch and the seed put $\epsilon$ the same place; the seed's
    $\sqrt{\hat s + \delta}$ is ``eps_root``.)

    Args:
      {learning_rate}
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      {nesterov}
      {nu_dtype}

    {hyper}

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> sweep = jax.vmap(gx.adam)(jnp.array([1e-3, 1e-2, 1e-1]))  # 3 optimizers in one

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@fill
def adamw(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    weight_decay: Hyper = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> Chain:
    r"""AdamW: Adam with decoupled weight decay.

    .. math::
        \theta_{t+1} = \theta_t - \eta\left(\frac{\hat m_t}{\sqrt{\hat v_t+\epsilon_{root}}+\epsilon}
        + \lambda\theta_t\right)

    Args:
      {learning_rate}
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      {weight_decay}
      {mask}
      {nesterov}
      {nu_dtype}

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@fill
def nadam(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> Chain:
    r"""NAdam: :func:`adam` with Nesterov momentum (``nesterov=True``).

    Args: as :func:`adam`.

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR workshop 2016.
    """
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype)


@fill
def nadamw(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    weight_decay: Hyper = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> Chain:
    r"""NAdamW: :func:`adamw` with Nesterov momentum. Args: as :func:`adamw`."""
    return adamw(
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask, nesterov=nesterov, nu_dtype=nu_dtype
    )


@fill
def adamax(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-8) -> Chain:
    r"""AdaMax: Adam with the infinity norm (:func:`scale_by_adamax`).

    Args:
      {learning_rate}
      {b1}
      {b2_inf}
      {eps_inf}

    References:
      Kingma & Ba, *Adam*, ICLR 2015, Sec. 7.1.
    """
    return chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


@fill
def adamaxw(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 1e-4,
    mask: Any = None,
) -> Chain:
    r"""AdaMaxW: :func:`adamax` with decoupled weight decay.

    Args:
      {learning_rate}
      {b1}
      {b2_inf}
      {eps_inf}
      {weight_decay}
      {mask}
    """
    return chain(
        scale_by_adamax(b1, b2, eps), add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate)
    )


@fill
def amsgrad(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
) -> Chain:
    r"""AMSGrad: Adam with a running maximum of the second moment.

    Args:
      {learning_rate}
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      bias_correction_mu: debias the first moment.
      bias_correction_nu: debias the second moment before the max.

    References:
      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    return chain(
        scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu),
        scale_by_learning_rate(learning_rate),
    )
