r"""Schedule-Free SGD and AdamW (Defazio et al., 2024): :func:`~gradtx.schedule_free` over a base optimizer."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from gradtx.core.docs import fill
from gradtx.core.hyperparams import POSITIVE_INTEGER, Hyper, concrete_value
from gradtx.optimizers._naming import as_argument_of
from gradtx.optimizers.classic import sgd
from gradtx.schedules.polynomial import linear_schedule
from gradtx.transforms.adaptive import scale_by_rms
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import chain
from gradtx.transforms.weight_decay import add_decayed_weights
from gradtx.wrappers.schedule_free import ScheduleFree, schedule_free

__all__ = ["schedule_free_adamw", "schedule_free_sgd"]


def _warmup(owner: str, learning_rate: Hyper, warmup_steps: Hyper | None) -> Hyper:
    """``learning_rate``, or a linear warmup from 0 to it over ``warmup_steps`` steps (then constant)."""
    if warmup_steps is None:
        return learning_rate
    if callable(learning_rate) and not isinstance(learning_rate, (jax.Array, np.ndarray)):
        raise TypeError(
            f"gx.{owner}: `learning_rate` must be a number or an array when `warmup_steps` is given "
            "(the warmup is the schedule); give a schedule with its own warmup and warmup_steps=None."
        )
    if callable(warmup_steps) and not isinstance(warmup_steps, (jax.Array, np.ndarray)):
        raise TypeError(f"gx.{owner}: `warmup_steps` cannot be a schedule; give an integer or an array.")
    value = concrete_value(warmup_steps)
    if value is not None and (value.dtype.kind not in "biuf" or not bool(np.all(POSITIVE_INTEGER.predicate(value)))):
        raise ValueError(f"gx.{owner}: `warmup_steps` must be {POSITIVE_INTEGER.description} or None, got {warmup_steps!r}.")
    with as_argument_of(owner, end_value="learning_rate", transition_steps="warmup_steps"):
        return linear_schedule(0, learning_rate, warmup_steps)


@fill
def schedule_free_sgd(
    learning_rate: Hyper = 1.0,
    warmup_steps: Hyper | None = None,
    b1: Hyper = 0.9,
    weight_decay: Hyper | None = None,
    weight_lr_power: Hyper = 2.0,
    state_dtype: Any = None,
) -> ScheduleFree:
    r"""Schedule-Free SGD: :func:`~gradtx.schedule_free` over plain SGD (no momentum).

    With $g_t = \nabla f(y_t) + \lambda y_t$ (``weight_decay`` $\lambda$, coupled
    $\ell_2$ as in PyTorch: it is scaled by the learning rate):

    .. math::
        \begin{aligned}
        y_t &= (1-\beta_1)\, z_t + \beta_1\, x_t, \qquad
        z_{t+1} = z_t - \gamma_t\, g_t, \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \qquad
        c_{t+1} = \frac{\gamma_{\max,t}^{\,r}}{\sum_{i=1}^{t} \gamma_{\max,i}^{\,r}},
        \end{aligned}

    where $\gamma_t$ rises linearly from 0 to ``learning_rate`` over
    ``warmup_steps`` steps and then stays constant (no decay: the averaging
    replaces it), $\gamma_{\max,t} = \max_{i\le t}\gamma_i$ and $r$ =
    ``weight_lr_power``. The params are the training iterate $y$; evaluate at
    $x$ = :func:`~gradtx.schedule_free_eval_params` ``(state, params)``. The
    SGD step uses $\gamma$ at the base optimizer's count (0 at the first
    update), the weights at the wrapper's ``step_count`` (1 at the first), as
    in optax: with warmup, the first step leaves $z$ unchanged.

    Args:
      learning_rate: the peak step size $\gamma \ge 0$ (default 1.0): a float or an
        array, or a schedule when ``warmup_steps`` is None.
      warmup_steps: length of the linear warmup, an integer >= 1 (a pytree
        leaf), or None for none.
      b1: interpolation weight $\beta_1 \in (0, 1]$ (default 0.9).
      weight_decay: $\lambda \ge 0$, added to the gradient as $\lambda y_t$
        before the learning rate scales it; None (default) for none.
      weight_lr_power: $r \ge 0$ (default 2.0).
      state_dtype: dtype of $z$ (None: the params').

    Returns:
      A :class:`~gradtx.wrappers.schedule_free.ScheduleFree` (a pytree) over ``sgd`` (after
      ``add_decayed_weights`` when ``weight_decay`` is given). State:
      :class:`~gradtx.ScheduleFreeState`.

    Every number is a pytree leaf: ``jax.jit`` never recompiles for a new value
    and ``jax.vmap`` over a batch of them is a sweep. (The learning rate is
    stored twice, for the SGD step and for the weights: map over the factory,
    ``jax.vmap(schedule_free_sgd)(lrs)``, to keep both in step.)

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less
      Scheduled*, NeurIPS 2024.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum(w**2)
      >>> opt = gx.schedule_free_sgd(0.25, warmup_steps=2)
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(4):
      ...     u, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, u)
      ...     print(f"{float(f(gx.schedule_free_eval_params(state, params))):.4f}")
      14.0000
      8.9600
      5.0587
      2.6609
    """
    with as_argument_of("schedule_free_sgd"):
        lr = _warmup("schedule_free_sgd", learning_rate, warmup_steps)
        base = sgd(lr)
        if weight_decay is not None:
            base = chain(add_decayed_weights(weight_decay), base)
        return schedule_free(base, lr, b1, weight_lr_power, state_dtype)


@fill
def schedule_free_adamw(
    learning_rate: Hyper = 0.0025,
    warmup_steps: Hyper | None = None,
    b1: Hyper = 0.9,
    b2: Hyper = 0.999,
    eps: Hyper = 1e-8,
    weight_decay: Hyper = 0.0,
    weight_lr_power: Hyper = 2.0,
    state_dtype: Any = None,
) -> ScheduleFree:
    r"""Schedule-Free AdamW: :func:`~gradtx.schedule_free` over AdamW without momentum.

    The base step is RMSProp with Adam's debiasing and decoupled weight decay,
    taken at $y_t$ (with $g_t = \nabla f(y_t)$):

    .. math::
        \begin{aligned}
        v_t &= \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2, \qquad
        z_{t+1} = z_t - \gamma_t \left(\frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}
          + \lambda\, y_t\right), \\
        x_{t+1} &= (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \qquad
        c_{t+1} = \frac{\gamma_{\max,t}^{\,r}}{\sum_{i=1}^{t} \gamma_{\max,i}^{\,r}}, \qquad
        y_{t+1} = (1-\beta_1)\, z_{t+1} + \beta_1\, x_{t+1},
        \end{aligned}

    with the linear warmup $\gamma_t$ of :func:`~gradtx.schedule_free_sgd`,
    $\gamma_{\max,t} = \max_{i\le t}\gamma_i$ and $r$ = ``weight_lr_power``.
    (The paper's implementation folds the debiasing into the learning rate,
    $\gamma_t\sqrt{1-\beta_2^t}$, and so into the weights; optax, and gradtx
    with it, debias $v$ and weight by $\gamma_t$.) Evaluate at
    :func:`~gradtx.schedule_free_eval_params` ``(state, params)``.

    Args:
      learning_rate: the peak step size $\gamma \ge 0$ (default 0.0025): a float or
        an array, or a schedule when ``warmup_steps`` is None.
      warmup_steps: length of the linear warmup, an integer >= 1 (a pytree
        leaf), or None for none.
      b1: interpolation weight $\beta_1 \in (0, 1]$ (default 0.9).
      {b2}
      eps: $\epsilon > 0$ added to $\sqrt{\hat v_t}$ (default 1e-8).
      {weight_decay}
      weight_lr_power: $r \ge 0$ (default 2.0).
      state_dtype: dtype of $z$ (None: the params').

    Returns:
      A :class:`~gradtx.wrappers.schedule_free.ScheduleFree` (a pytree) over ``chain(scale_by_rms(b2,
      eps, eps_in_sqrt=False, bias_correction=True), add_decayed_weights,
      scale_by_learning_rate)``. State: :class:`~gradtx.ScheduleFreeState`.

    Every number is a pytree leaf: ``jax.jit`` never recompiles for a new value
    and ``jax.vmap`` over a batch of them is a sweep (map over the factory: the
    learning rate is stored for the step and for the weights).

    References:
      Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, *The Road Less
      Scheduled*, NeurIPS 2024 (winner of the AlgoPerf 2024 self-tuning track).

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum(w**2)
      >>> opt = gx.schedule_free_adamw(1.0)
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     u, state = opt.update(jax.grad(f)(params), state, params)
      ...     params = gx.apply_updates(params, u)
      ...     print(f"{float(f(gx.schedule_free_eval_params(state, params))):.4f}")
      5.0000
      3.0523
      1.7276
    """
    with as_argument_of("schedule_free_adamw", decay="b2"):
        lr = _warmup("schedule_free_adamw", learning_rate, warmup_steps)
        base = chain(
            scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True),
            add_decayed_weights(weight_decay),
            scale_by_learning_rate(lr),
        )
        return schedule_free(base, lr, b1, weight_lr_power, state_dtype)
