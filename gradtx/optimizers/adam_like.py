"""Adam-like optimizers as chains: adabelief, yogi, radam, adan, novograd, optimistic methods."""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, Hyper
from gradtx.core.module import Module, hyper
from gradtx.transforms.adam import scale_by_adam
from gradtx.transforms.adam_like import scale_by_adan, scale_by_belief, scale_by_radam, scale_by_yogi
from gradtx.transforms.adam_like_extra import scale_by_novograd, scale_by_optimistic_gradient
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = [
    "adabelief",
    "yogi",
    "radam",
    "adan",
    "novograd",
    "optimistic_gradient_descent",
    "optimistic_adam",
    "optimistic_adam_v2",
]


@fill
def adabelief(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-16,
    eps_root: Hyper = 1e-16,
    *,
    nesterov: bool = False,
) -> Chain:
    r"""AdaBelief: :func:`scale_by_belief` followed by the learning rate.

    .. math::
        s_t = \beta_2 s_{t-1} + (1-\beta_2)|g_t - m_t|^2 + \epsilon_{root}, \qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{\hat m_t}{\sqrt{\hat s_t} + \epsilon}

    ($m_t$, $\hat m_t$, $\hat s_t$ as in Adam.) The step is large where the
    gradient agrees with its running mean and small where it does not.

    Args:
      {learning_rate}
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the EMA of the squared prediction error.
      {eps}
      eps_root: $\epsilon_{root} \ge 0$ added to $s_t$ at every step.
      {nesterov}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.adabelief(0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params))
      >>> [round(float(p), 4) for p in gx.apply_updates(params, updates)]
      [0.8889, -1.8889]

    References:
      Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in
      Observed Gradients*, NeurIPS 2020.
    """
    return chain(scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov), scale_by_learning_rate(learning_rate))


@fill
def yogi(learning_rate: Hyper, b1: Hyper = 0.9, b2: Hyper = 0.999, eps: Hyper = 1e-3) -> Chain:
    r"""Yogi: Adam with an additive, sign-controlled second-moment update.

    .. math::
        v_t = v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\,g_t^2, \qquad
        \theta_{t+1} = \theta_t - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    :func:`scale_by_yogi` (with its default ``initial_accumulator_value=1e-6``)
    followed by the learning rate.

    Args:
      {learning_rate}
      {b1}
      {b2}
      eps: $\epsilon \ge 0$ added to the denominator (default $10^{-3}$).

    {hyper}

    Example:
      >>> import gradtx as gx
      >>> opt = gx.yogi(0.01)

    References:
      Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """
    return chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate))


@fill
def radam(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    threshold: Hyper = 5.0,
    *,
    nesterov: bool = False,
) -> Chain:
    r"""Rectified Adam: :func:`scale_by_radam` followed by the learning rate.

    .. math::
        \theta_{t+1} = \theta_t - \eta \begin{cases}
          r_t\, \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon) & \rho_t \ge \tau \\
          \hat m_t & \text{otherwise}
        \end{cases}

    ($\rho_t$, $r_t$ as in :func:`scale_by_radam`): momentum SGD for the first
    few steps (5 for the defaults), then Adam with a rectified step size.

    Args:
      {learning_rate}
      {b1}
      {b2}
      {eps}
      {eps_root}
      threshold: $\tau \ge 4$: the adaptive step is taken once $\rho_t \ge \tau$.
      {nesterov}

    {hyper}

    Example:
      >>> import gradtx as gx
      >>> opt = gx.radam(1e-3, nesterov=True)

    References:
      Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020.
    """
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


@fill
def adan(
    learning_rate: Hyper,
    b1: Hyper = 0.98,
    b2: Hyper = 0.92,
    b3: Hyper = 0.99,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""Adan: :func:`scale_by_adan`, decoupled weight decay, then the learning rate.

    .. math::
        \theta_{t+1} = \theta_t - \eta\left(
        \frac{\hat m_t + (1-\beta_2)\hat v_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon}
        + \lambda\theta_t\right)

    As optax, the weight decay is AdamW's decoupled form (the paper's
    Algorithm 1 divides by $1 + \lambda\eta$ instead; the two agree to first
    order in $\lambda\eta$). ``update`` needs ``params`` (for the decay).

    Args:
      {learning_rate}
      b1: decay $\beta_1 \in [0, 1)$ of the EMA of gradients.
      b2: decay $\beta_2 \in [0, 1)$ of the EMA of gradient differences.
      b3: decay $\beta_3 \in [0, 1)$ of the EMA of the squared look-ahead gradient.
      {eps}
      {eps_root}
      {weight_decay}
      {mask}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.adan(0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params), params)
      >>> print(jnp.round(gx.apply_updates(params, updates), 4))
      [ 0.9 -1.9]

    References:
      Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster
      Optimizing Deep Models*, 2022 (arXiv:2208.06677).
    """
    return chain(
        scale_by_adan(b1, b2, b3, eps, eps_root),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@fill
def novograd(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.25,
    eps: Hyper = 1e-6,
    eps_root: Hyper = 0.0,
    weight_decay: Hyper = 0.0,
) -> Chain:
    r"""NovoGrad: :func:`scale_by_novograd` followed by the learning rate.

    .. math::
        v^\ell_t = \beta_2 v^\ell_{t-1} + (1-\beta_2)\lVert g^\ell_t\rVert^2, \quad
        m^\ell_t = \beta_1 m^\ell_{t-1} + \frac{g^\ell_t}{\sqrt{v^\ell_t + \epsilon_{root}} + \epsilon}
        + \lambda\theta^\ell_t, \quad \theta^\ell_{t+1} = \theta^\ell_t - \eta\, m^\ell_t

    per params leaf $\ell$ ($v^\ell_1 = \lVert g^\ell_1\rVert^2$): a layer-wise
    normalised gradient with momentum, robust to the scale of each layer's
    gradients. ``update`` needs ``params`` (for the weight decay).

    Args:
      {learning_rate}
      b1: momentum $\beta_1 \in [0, 1)$.
      b2: decay $\beta_2 \in [0, 1)$ of the per-layer EMA of $\lVert g\rVert^2$.
      eps: $\epsilon \ge 0$ added to the denominator outside the square root.
      {eps_root}
      weight_decay: $\lambda \ge 0$, added to the normalised gradient inside the momentum.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.novograd(0.1)
      >>> params = jnp.array([3.0, -4.0], jnp.float32)
      >>> updates, state = opt.update(params, opt.init(params), params)
      >>> [round(float(p), 4) for p in gx.apply_updates(params, updates)]
      [2.94, -3.92]

    References:
      Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive
      Moments for Training of Deep Networks*, 2019 (arXiv:1905.11286).
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay), scale_by_learning_rate(learning_rate)
    )


@fill
def optimistic_gradient_descent(learning_rate: Hyper, alpha: Hyper = 1.0, beta: Hyper = 1.0) -> Chain:
    r"""Optimistic gradient descent: :func:`scale_by_optimistic_gradient`, then the learning rate.

    .. math::
        \theta_{t+1} = \theta_t - \eta\,\big((\alpha + \beta) g_t - \beta g_{t-1}\big)

    An approximation of the extra-gradient method with one gradient per step;
    it converges in last iterate on min-max games (e.g. $\min_x \max_y xy$)
    where gradient descent-ascent cycles or diverges.

    Args:
      {learning_rate}
      alpha: $\alpha \ge 0$, the weight of the current gradient.
      beta: $\beta \ge 0$, the weight of the gradient's change.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.optimistic_gradient_descent(0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(params, opt.init(params))
      >>> print(gx.apply_updates(params, updates))  # first step: plain gradient descent
      [ 0.9 -1.8]

    References:
      Mokhtari, Ozdaglar & Pattathil, *A Unified Analysis of Extra-gradient and
      Optimistic Gradient Methods for Saddle Point Problems*, AISTATS 2020.
    """
    return chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate))


class _OptimisticAdamArgs(Module):
    """Validates :func:`optimistic_adam`'s own arguments under their own names."""

    gx_name = "optimistic_adam"
    learning_rate: Hyper = hyper(check=NONNEGATIVE)
    optimism: Hyper = hyper(None, NONNEGATIVE)


@fill
def optimistic_adam(
    learning_rate: Hyper,
    optimism: Hyper | None = None,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> Chain:
    r"""Optimistic Adam (optax's first interface): the optimistic step on Adam's direction.

    With $r_t$ Adam's (by default NAdam's) direction
    $\hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)$ and $o$ the optimism:

    .. math::
        \theta_{t+1} = \theta_t - \eta\, r_t - o\,(r_t - r_{t-1})

    computed as ``chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha=eta,
    beta=o), scale_by_learning_rate(1.0))``. :func:`optimistic_adam_v2` is the
    same method with the learning rate factored out ($\eta((\alpha+\beta) r_t -
    \beta r_{t-1})$), which rounds differently; optax deprecates this interface
    in favour of it. Unlike optax's, ``learning_rate`` and ``optimism`` may be
    schedules here.

    Args:
      {learning_rate}
      optimism: $o \ge 0$; None uses ``learning_rate``, as in the paper.
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      nesterov: use NAdam's direction (the default, as optax).

    {hyper}

    Example:
      >>> import gradtx as gx
      >>> opt = gx.optimistic_adam(1e-3, optimism=1e-2)

    References:
      Daskalakis, Ilyas, Syrgkanis & Zeng, *Training GANs with Optimism*, ICLR 2018.
    """
    _OptimisticAdamArgs(learning_rate, optimism)
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(learning_rate, learning_rate if optimism is None else optimism),
        scale_by_learning_rate(1.0),
    )


@fill
def optimistic_adam_v2(
    learning_rate: Hyper,
    *,
    alpha: Hyper = 1.0,
    beta: Hyper = 1.0,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> Chain:
    r"""Optimistic Adam: the generalised optimistic step on Adam's direction, times the learning rate.

    With $r_t$ Adam's (by default NAdam's) direction
    $\hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)$:

    .. math::
        \theta_{t+1} = \theta_t - \eta\,\big((\alpha+\beta)\, r_t - \beta\, r_{t-1}\big)

    ``chain(scale_by_adam(...), scale_by_optimistic_gradient(alpha, beta),
    scale_by_learning_rate(learning_rate))``. With $\alpha = 1$ and
    $\beta = o/\eta$ it is :func:`optimistic_adam`.

    Args:
      {learning_rate}
      alpha: $\alpha \ge 0$, the weight of the current direction.
      beta: $\beta \ge 0$, the weight of the direction's change.
      {b1}
      {b2}
      {eps}
      {eps_root}
      {mu_dtype}
      nesterov: use NAdam's direction (the default, as optax).

    {hyper}

    Example:
      >>> import gradtx as gx
      >>> opt = gx.optimistic_adam_v2(1e-3, beta=0.5)

    References:
      Daskalakis, Ilyas, Syrgkanis & Zeng, *Training GANs with Optimism*, ICLR 2018.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )
