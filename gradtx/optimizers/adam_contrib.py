"""optax.contrib's Adam relatives as chains: adopt, ademamix, simplified_ademamix, madgrad, acprop."""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.adam_contrib import scale_by_ademamix, scale_by_adopt, scale_by_simplified_ademamix
from gradtx.transforms.adam_contrib_extra import scale_by_acprop, scale_by_madgrad
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["adopt", "ademamix", "simplified_ademamix", "madgrad", "acprop"]


@fill
def adopt(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.9999,
    eps: Hyper = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Hyper | None = None,
) -> Chain:
    r"""ADOPT: :func:`~gradtx.transforms.adam_contrib.scale_by_adopt` followed by the learning rate.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\,
        \mathrm{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)}, c_{t-1}\right), \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) |g_t|^2, \quad
        \theta_{t+1} = \theta_t - \eta\, m_t

    ($v_1 = |g_1|^2$, $m_1 = 0$: the first step is 0.) Adam with the second
    moment updated *after* it normalises the gradient, and the momentum taken
    of the normalised gradient: it converges for any $\beta_2$. The clipping
    ($c_n = n^{1/4}$ by default) keeps the early steps stable; keep it on when
    training from scratch.

    Args:
      {learning_rate}
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the second-moment EMA.
      eps: $\epsilon > 0$, the least value of $\sqrt{v}$ the gradient is divided by.
      {mu_dtype}
      {nesterov}
      use_clipping: clip the normalised gradient to $[-c_{t-1}, c_{t-1}]$.
      clip_value_fn: $c_n \ge 0$: a float, array or schedule of the count;
        None (the default) is
        :class:`~gradtx.transforms.adam_contrib.PowerOfCount` ``(0.25)``,
        $n^{1/4}$ (optax's ``lambda x: x**0.25``, with its exponent a leaf).

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.adopt(0.1, b1=0.5)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     updates, state = opt.update(2 * params, state)
      ...     params = gx.apply_updates(params, updates)
      ...     print([round(float(p), 2) for p in params])
      [1.0, -2.0]
      [0.95, -1.95]
      [0.88, -1.88]

    References:
      Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any $\beta_2$
      with the Optimal Rate*, NeurIPS 2024 (arXiv:2411.02853).
    """
    with as_argument_of("adopt"):
        return chain(
            scale_by_adopt(
                b1, b2, eps, mu_dtype, nesterov=nesterov, use_clipping=use_clipping, clip_value_fn=clip_value_fn
            ),
            scale_by_learning_rate(learning_rate),
        )


@fill
def ademamix(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    b3: Hyper = 0.9999,
    alpha: Hyper = 5.0,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    mu_dtype: Any = None,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""AdEMAMix: AdamW whose numerator mixes in a slow EMA of the gradients.

    .. math::
        \theta_{t+1} = \theta_t - \eta\left(
        \frac{\hat m^{(1)}_t + \alpha\, m^{(2)}_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
        + \lambda\theta_t\right)

    with Adam's debiased $\hat m^{(1)}_t$ ($\beta_1$) and $\hat v_t$
    ($\beta_2$) and a slow, undebiased EMA $m^{(2)}_t$ ($\beta_3$):
    :func:`~gradtx.transforms.adam_contrib.scale_by_ademamix`, decoupled
    weight decay, then the learning rate. The slow EMA remembers gradients
    from about $1/(1-\beta_3)$ steps back, so AdEMAMix suits long runs; the
    paper warms up $\alpha$ and $\beta_3$ with schedules (any argument may be
    one), and smaller $\beta_3$ (e.g. $0.999$) suits short runs. ``update``
    needs ``params`` (for the decay).

    Args:
      {learning_rate}
      {b1}
      {b2}
      b3: decay rate $\beta_3 \in [0, 1)$ of the slow EMA.
      alpha: $\alpha \ge 0$, the weight of the slow EMA.
      {eps}
      {eps_root}
      mu_dtype: dtype of the accumulators ``m1``, ``m2`` and ``nu`` (None: the params').
      {weight_decay}
      {mask}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.ademamix(0.1, alpha=gx.linear_schedule(0.0, 5.0, 100))  # alpha warmed up
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params), params)
      >>> print([round(float(p), 4) for p in gx.apply_updates(params, updates)])
      [0.9, -1.9]

    References:
      Pagliardini, Ablin & Grangier, *The AdEMAMix Optimizer: Better, Faster,
      Older*, ICLR 2025 (arXiv:2409.03137).
    """
    with as_argument_of("ademamix"):
        return chain(
            scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, mu_dtype),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


@fill
def simplified_ademamix(
    learning_rate: Hyper,
    b1: Hyper = 0.99,
    b2: Hyper = 0.95,
    alpha: Hyper = 0.0,
    eps: Hyper = 1e-8,
    eps_root: Hyper = 0.0,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""Simplified AdEMAMix: one momentum sum plus $\alpha g$, over Adam's RMS.

    .. math::
        m_t = \beta_1 m_{t-1} + g_t, \qquad
        \theta_{t+1} = \theta_t - \eta\left(
        \frac{m_t + \alpha g_t}{\sqrt{\hat n_t + \epsilon_{root}} + \epsilon} + \lambda\theta_t\right)

    with $\hat n_t$ Adam's debiased second moment ($\beta_2$):
    :func:`~gradtx.transforms.adam_contrib.scale_by_simplified_ademamix`,
    decoupled weight decay, then the learning rate. One buffer instead of
    AdEMAMix's two and no schedules; $m_t$ is a sum (about $g/(1-\beta_1)$),
    so learning rates are about $1-\beta_1$ times Adam's. ``update`` needs
    ``params`` (for the decay).

    Args:
      {learning_rate}
      b1: $\beta_1 \in [0, 1)$, the decay of the momentum sum.
      {b2}
      alpha: $\alpha \ge 0$, the extra weight of the current gradient.
      {eps}
      {eps_root}
      {weight_decay}
      {mask}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.simplified_ademamix(0.01, alpha=1.0)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params), params)
      >>> print([round(float(p), 4) for p in gx.apply_updates(params, updates)])
      [0.98, -1.98]

    References:
      Morwani et al., *Connections between Schedule-Free Optimizers, AdEMAMix,
      and Accelerated SGD Variants*, 2025 (arXiv:2502.02431).
    """
    with as_argument_of("simplified_ademamix"):
        return chain(
            scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )


@fill
def madgrad(learning_rate: Hyper, momentum: Hyper = 0.9, weight_decay: Hyper = 0.0, eps: Hyper = 1e-6) -> Chain:
    r"""MADGRAD: $\ell_2$ weight decay, then momentumised dual averaging.

    With $g_k$ the gradient plus $\lambda\theta_k$ and $\lambda_k = (\eta_k+\epsilon)\sqrt{k+1}$:

    .. math::
        z_{k+1} = \theta_0 - \frac{\sum_{i \le k} \lambda_i g_i}
        {\big(\sum_{i \le k} \lambda_i |g_i|^2\big)^{1/3} + \epsilon}, \qquad
        \theta_{k+1} = (1-\mu) z_{k+1} + \mu\, \theta_k

    ``chain(add_decayed_weights(weight_decay), scale_by_madgrad(learning_rate,
    momentum, eps))``, as optax: the weight decay is added to the gradient
    (not decoupled), and :func:`~gradtx.transforms.adam_contrib_extra.scale_by_madgrad`
    returns the whole step (no separate learning-rate scaling). It matches
    SGD with momentum on vision tasks and Adam on language models in the
    paper. ``update`` needs ``params``.

    Args:
      {learning_rate}
      momentum: $\mu \in [0, 1)$, the weight of the previous iterate.
      weight_decay: $\lambda \ge 0$, added to the gradient as $\lambda\theta$.
      eps: $\epsilon > 0$, added to the cube root and to $\eta$.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.madgrad(0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params), params)
      >>> print([round(float(p), 3) for p in gx.apply_updates(params, updates)])
      [0.973, -1.966]

    References:
      Defazio & Jelassi, *Adaptivity without Compromise: A Momentumized,
      Adaptive, Dual Averaged Gradient Method for Stochastic Optimization*,
      JMLR 2022 (arXiv:2101.11075).
    """
    with as_argument_of("madgrad"):
        return chain(add_decayed_weights(weight_decay), scale_by_madgrad(learning_rate, momentum, eps))


@fill
def acprop(
    learning_rate: Hyper,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-16,
    eps_root: Hyper = 1e-16,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""ACProp: the gradient over AdaBelief's spread of the *previous* steps, then the learning rate.

    .. math::
        s_t = \beta_2 s_{t-1} + (1-\beta_2)|g_t - m_{t-1}|^2 + \epsilon_{root}, \qquad
        \theta_{t+1} = \theta_t - \eta\left(\frac{g_t}{\sqrt{\hat s_{t-1}} + \epsilon}
        + \lambda\theta_t\right)

    ($m_t$ the EMA of the gradients, $\hat s_{t-1} = s_{t-1}/(1-\beta_2^{t-1})$,
    and 1 on the first step):
    :func:`~gradtx.transforms.adam_contrib_extra.scale_by_acprop`, decoupled
    weight decay, then the learning rate. The denominator never sees the
    current gradient (asynchronous) and measures its spread around the mean
    (centred). ``update`` needs ``params`` (for the decay).

    Args:
      {learning_rate}
      {b1}
      b2: decay rate $\beta_2 \in [0, 1)$ of the EMA of the squared prediction error.
      {eps}
      eps_root: $\epsilon_{root} \ge 0$ added to $s_t$ at every step.
      {weight_decay}
      {mask}

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.acprop(0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> updates, state = opt.update(2 * params, opt.init(params), params)
      >>> print([round(float(p), 4) for p in gx.apply_updates(params, updates)])  # -lr g
      [0.8, -1.6]

    References:
      Zhuang et al., *Momentum Centering and Asynchronous Update for Adaptive
      Gradient Methods*, NeurIPS 2021 (arXiv:2110.05454).
    """
    with as_argument_of("acprop"):
        return chain(
            scale_by_acprop(b1, b2, eps, eps_root),
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate),
        )
