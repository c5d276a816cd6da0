"""Parameter-free optimizers from optax.contrib: Prodigy, D-Adapt AdamW, DoG, DoWG and COCOB.

Each has optax.contrib's name, signature, defaults and numerics. Their
``learning_rate`` is a multiplier on the step size they estimate (1.0 is the
method itself; a schedule that starts at or peaks at 1.0 is the recommended
use). Every numeric argument is a pytree leaf.
"""

from __future__ import annotations

from typing import Any

from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.basic import identity, scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.parameter_free import DAdaptAdamW, Prodigy
from gradtx.transforms.parameter_free_scaling import (
    scale_by_cocob,
    scale_by_dog,
    scale_by_dowg,
)
from gradtx.transforms.weight_decay import add_decayed_weights

__all__ = ["cocob", "dadapt_adamw", "dog", "dowg", "prodigy"]


def prodigy(
    learning_rate: Hyper = 1.0,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    beta3: Hyper | None = None,
    eps: Hyper = 1e-8,
    estim_lr0: Hyper = 1e-6,
    estim_lr_coef: Hyper = 1.0,
    weight_decay: Hyper = 0.0,
    safeguard_warmup: bool = False,
) -> Prodigy:
    r"""Prodigy: AdamW whose step size $d_k$ estimates the distance to the solution.

    With $x_0$ the initial parameters, $\eta_k$ the ``learning_rate`` at step
    $k$ (from 0) and $t = k+1$:

    .. math::
        \begin{aligned}
        \hat\eta_k &= d_k\,\eta_k\,\sqrt{1-\beta_2^t}/(1-\beta_1^t), \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, d_k g_k, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, d_k^2 g_k^2, \\
        s_t &= \beta_3 s_{t-1} + \hat\eta_k\, d_k g_k / d_0, \quad
        r_t = \beta_3 r_{t-1} + (d_k/d_0)\,\hat\eta_k\,\langle g_k, x_0 - x_k\rangle, \\
        d_{k+1} &= \max\bigl(d_k,\; c\, r_t/\|s_t\|_1\bigr), \\
        u_t &= -\hat\eta_k \Bigl(\frac{m_t}{\sqrt{v_t} + d_{k+1}\epsilon} + \lambda x_k\Bigr),
        \end{aligned}

    with $\beta_3 = \sqrt{\beta_2}$ unless given, $c$ = ``estim_lr_coef``
    and $d_0$ = ``estim_lr0``. With ``safeguard_warmup`` the $s_t$ term uses
    $d_k$ in place of $\hat\eta_k$ (no learning rate in the denominator
    during warm-up). $d$ never decreases. ``update`` needs ``params``.

    Differences from optax.contrib: where $\|s_t\|_1 = 0$ (every gradient so
    far zero) the estimate is 0 and $d$ stays, where optax's $0/0$ makes
    $d$ NaN for good; a second moment whose square overflows saturates (see
    :func:`~gradtx.adam_direction`); complex parameters use $|g|^2$ and the
    real inner product. Elsewhere the numbers are optax's (to rounding).

    Args:
      learning_rate: $\eta \ge 0$, a multiplier on the estimated step (a
        schedule from 1.0 to 0 with a 0-20% warm-up is the recommended use).
      betas: $(\beta_1, \beta_2)$, each in $[0, 1)$: the AdamW moments' decays.
      beta3: $\beta_3 \in [0, 1)$, the decay of the estimate's sums (None:
        $\sqrt{\beta_2}$).
      eps: $\epsilon > 0$; the denominator adds $d_{k+1}\epsilon$.
      estim_lr0: $d_0 > 0$, the initial (under-)estimate.
      estim_lr_coef: $c > 0$, a factor on every estimate.
      weight_decay: $\lambda \ge 0$, decoupled (AdamW) weight decay.
      safeguard_warmup: leave $\eta_k$ out of $s_t$ (static).

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state
      :class:`~gradtx.transforms.parameter_free.ProdigyState`. Every numeric
      argument is a leaf and may be a schedule.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.prodigy()
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(100):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, updates)
      >>> print(f"{f(params):.2f}, d grew: {bool(state.estim_lr > 1e-3)}")
      0.00, d grew: True

    References:
      Mishchenko & Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free
      Learner*, ICML 2024.
    """
    return Prodigy(learning_rate, betas, beta3, eps, estim_lr0, estim_lr_coef, weight_decay, safeguard_warmup)


def dadapt_adamw(
    learning_rate: Hyper = 1.0,
    betas: tuple[Hyper, Hyper] = (0.9, 0.999),
    eps: Hyper = 1e-8,
    estim_lr0: Hyper = 1e-6,
    weight_decay: Hyper = 0.0,
) -> DAdaptAdamW:
    r"""D-Adaptation AdamW: AdamW whose step size $d_k$ lower-bounds the distance to the solution.

    With $\eta_k$ the ``learning_rate`` at step $k$ (from 0), $t = k+1$ and
    $\gamma = \sqrt{\beta_2}$:

    .. math::
        \begin{aligned}
        \hat\eta_k &= d_k\,\eta_k\,\sqrt{1-\beta_2^t}/(1-\beta_1^t), \quad
        a_k = \Bigl\langle g_k,\; \frac{s_{t-1}}{\sqrt{v_{t-1}} + \epsilon}\Bigr\rangle, \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\,\hat\eta_k g_k, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_k^2, \quad
        s_t = \gamma s_{t-1} + (1-\gamma)\,\hat\eta_k g_k, \\
        r_t &= \gamma r_{t-1} + (1-\gamma)\,\hat\eta_k\, a_k, \quad
        d_{k+1} = \max\Bigl(d_k,\; \frac{r_t}{(1-\gamma)\|s_t\|_1}\Bigr), \\
        u_t &= -\frac{m_t}{\sqrt{v_t} + \epsilon} - \lambda\,\hat\eta_k\, x_k .
        \end{aligned}

    $d$ never decreases. ``update`` needs ``params``. Differences from
    optax.contrib as for :func:`prodigy` (no NaN from an all-zero start,
    saturating second moment, complex parameters); elsewhere the numbers are
    optax's (to rounding).

    Args:
      learning_rate: $\eta \ge 0$, a multiplier on the estimated step (a
        schedule from 1.0 to 0 with a 0-20% warm-up is the recommended use).
      betas: $(\beta_1, \beta_2)$, each in $[0, 1)$.
      eps: $\epsilon > 0$ added to $\sqrt{v}$.
      estim_lr0: $d_0 > 0$, the initial (under-)estimate.
      weight_decay: $\lambda \ge 0$, decoupled (AdamW) weight decay.

    Returns:
      A :class:`~gradtx.GradientTransformation` (a pytree); state
      :class:`~gradtx.transforms.parameter_free.DAdaptAdamWState`.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.dadapt_adamw()
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(200):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, updates)
      >>> print(f"loss below 1: {bool(f(params) < 1.0)}, d grew: {bool(state.estim_lr > 1e-3)}")
      loss below 1: True, d grew: True

    References:
      Defazio & Mishchenko, *Learning-Rate-Free Learning by D-Adaptation*, ICML 2023.
    """
    return DAdaptAdamW(learning_rate, betas, eps, estim_lr0, weight_decay)


def _decay(weight_decay: Hyper | None, mask: Any):
    return identity() if weight_decay is None else add_decayed_weights(weight_decay, mask)


def dog(
    learning_rate: Hyper = 1.0,
    init_step: tuple[str, Hyper] = ("heuristic", 1e-6),
    eps: Hyper = 1e-8,
    weight_decay: Hyper | None = None,
    mask: Any = None,
) -> Chain:
    r"""Distance over Gradients (DoG): SGD with a step size from the distance travelled.

    .. math::
        \bar r_t = \max_{k \le t} \|x_k - x_0\|, \quad
        G_t = \sum_{k \le t} \|g_k\|^2, \quad
        x_{t+1} = x_t - \eta_t\, \frac{\bar r_t}{\sqrt{G_t + \epsilon}}\, g_t ,

    norms over the whole tree, $\eta_t$ the ``learning_rate`` multiplier and
    $\bar r_0$ set by ``init_step`` (see :func:`~gradtx.scale_by_dog`: the
    default $10^{-6}(1 + \|x_0\|)$). With ``weight_decay`` $\lambda$, $g_t$
    is first replaced by $g_t + \lambda x_t$. The authors recommend averaging
    the iterates (e.g. :func:`~gradtx.ema` of the params). ``update`` needs
    ``params``, and ``init`` the real initial parameters.

    Args:
      learning_rate: $\eta \ge 0$, a multiplier on DoG's step (a float, array
        or schedule).
      init_step: ``(tag, value)`` with tag ``"heuristic"``, ``"distance"`` or
        ``"learning_rate"`` (see :func:`~gradtx.scale_by_dog`).
      eps: $\epsilon \ge 0$ added to $G_t$.
      weight_decay: $\lambda \ge 0$, or None for no decay (as optax: None
        leaves the decay out of the chain; pass a number to sweep it).
      mask: a pytree of booleans like the params (True: decay), or a function
        ``params -> mask``.

    Returns:
      ``chain(add_decayed_weights(weight_decay, mask) or identity(),
      scale_by_dog(init_step, eps), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.dog(init_step=("distance", 1.0))
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(50):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, updates)
      >>> print(f"{f(params):.4f}")
      0.0000

    References:
      Ivgi, Hinder & Carmon, *DoG is SGD's Best Friend: A Parameter-Free Dynamic
      Step Size Schedule*, ICML 2023.
    """
    with as_argument_of("dog"):
        return chain(_decay(weight_decay, mask), scale_by_dog(init_step, eps), scale_by_learning_rate(learning_rate))


def dowg(
    learning_rate: Hyper = 1.0,
    init_estim_sq_dist: Hyper | None = None,
    eps: Hyper = 1e-4,
    weight_decay: Hyper | None = None,
    mask: Any = None,
) -> Chain:
    r"""Distance over Weighted Gradients (DoWG): SGD with a step size from the distance travelled.

    .. math::
        \bar r_t^2 = \max_{k \le t} \|x_k - x_0\|^2, \quad
        v_t = \sum_{k \le t} \bar r_k^2 \|g_k\|^2, \quad
        x_{t+1} = x_t - \eta_t\, \frac{\bar r_t^2}{\sqrt{v_t} + \epsilon}\, g_t ,

    norms over the whole tree, $\eta_t$ the ``learning_rate`` multiplier and
    $\bar r_0^2$ = ``init_estim_sq_dist`` (default ``eps``). With
    ``weight_decay`` $\lambda$, $g_t$ is first replaced by $g_t + \lambda x_t$.
    ``update`` needs ``params``.

    Args:
      learning_rate: $\eta \ge 0$, a multiplier on DoWG's step.
      init_estim_sq_dist: $\bar r_0^2 > 0$ (None: ``eps``).
      eps: $\epsilon > 0$ added to the denominator.
      weight_decay: $\lambda \ge 0$, or None for no decay (None leaves it out
        of the chain, as optax; pass a number to sweep it).
      mask: a pytree of booleans like the params (True: decay), or a function
        ``params -> mask``.

    Returns:
      ``chain(add_decayed_weights(weight_decay, mask) or identity(),
      scale_by_dowg(init_estim_sq_dist, eps), scale_by_learning_rate(learning_rate))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.dowg()
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(5):
      ...     updates, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, updates)
      ...     print(f"{f(params):.4f}")
      13.9254
      13.8728
      13.7754
      13.5962
      13.2688

    References:
      Khaled, Mishchenko & Jin, *DoWG Unleashed: An Efficient Universal
      Parameter-Free Gradient Descent Method*, NeurIPS 2023.
    """
    with as_argument_of("dowg"):
        return chain(
            _decay(weight_decay, mask), scale_by_dowg(init_estim_sq_dist, eps), scale_by_learning_rate(learning_rate)
        )


def cocob(
    learning_rate: Hyper = 1.0,
    alpha: Hyper = 100.0,
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    mask: Any = None,
) -> Chain:
    r"""COCOB-Backprop: coin betting per coordinate, no learning rate to tune.

    The gradient, plus $\lambda x_t$ and times the ``learning_rate`` $\eta$,
    goes to :func:`~gradtx.scale_by_cocob`, whose output is the full move:

    .. math::
        \tilde g_t = \eta\,(g_t + \lambda x_t), \qquad
        x_{t+1} = x_0 + \frac{\theta_t\,(L_t + R_t)}{L_t \max(G_t + L_t,\; \alpha L_t)}

    ($\theta_t = -\sum \tilde g_k$, $G_t = \sum |\tilde g_k|$, $L_t$ the
    largest $|\tilde g|$, $R_t$ the reward; see :func:`~gradtx.scale_by_cocob`).
    The step is invariant to $\eta$ except through $\epsilon$ (the initial
    $L$): $\eta$ is there for optax's signature and for schedules, and
    $\alpha$ is the knob that matters. ``update`` needs ``params``.

    Args:
      learning_rate: $\eta \ge 0$, a factor on the gradient before the bet.
      alpha: $\alpha > 0$: early steps are at most about $1/\alpha$ per coordinate.
      eps: $\epsilon > 0$, the initial $L$.
      weight_decay: $\lambda \ge 0$ ($\ell_2$ regularisation, added to the gradient).
      mask: a pytree of booleans like the params (True: decay), or a function
        ``params -> mask``.

    Returns:
      ``chain(add_decayed_weights(weight_decay, mask),
      scale_by_learning_rate(learning_rate, flip_sign=False), scale_by_cocob(alpha, eps))``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.cocob()
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> updates, state = opt.update(jax.grad(f)(params), opt.init(params), params)
      >>> [round(float(v), 4) for v in updates]  # -sign(g) / alpha
      [-0.01, -0.01, -0.01]

    References:
      Orabona & Tommasi, *Training Deep Networks without Learning Rates Through
      Coin Betting*, NeurIPS 2017.
    """
    with as_argument_of("cocob"):
        return chain(
            add_decayed_weights(weight_decay, mask),
            scale_by_learning_rate(learning_rate, flip_sign=False),
            scale_by_cocob(alpha, eps),
        )
