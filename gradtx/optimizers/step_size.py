"""Optimizers whose step sizes adapt on their own: Polyak SGD, Rprop and Fromage.

Each is a :func:`~gradtx.chain` of primitives with optax's signature and defaults.
"""

from __future__ import annotations

import jax

from gradtx.core import tree as gt
from gradtx.core.base import NO_PARAMS_MSG, StatelessTransformation
from gradtx.core.docs import fill
from gradtx.core.hyperparams import NONNEGATIVE, Hyper
from gradtx.core.module import hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.optimizers.classic import sgd
from gradtx.transforms.basic import scale
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.rprop import scale_by_rprop
from gradtx.transforms.step_size import scale_by_polyak
from gradtx.transforms.trust_ratio import scale_by_trust_ratio

__all__ = ["fromage", "polyak_sgd", "rprop"]


@fill
def polyak_sgd(
    max_learning_rate: Hyper = 1.0,
    scaling: Hyper = 1.0,
    f_min: Hyper = 0.0,
    eps: Hyper = 0.0,
    variant: str = "sps",
) -> Chain:
    r"""SGD with Polyak's step size: needs the loss ``value`` at every update.

    .. math::
        \theta_{t+1} = \theta_t - \gamma_t\, s\, g_t, \qquad
        \gamma_t = \min\left\{\frac{f(\theta_t) - f^\star}{s^2\|g_t\|^2 + \epsilon},\;
        \gamma_{\max}\right\}

    ($\gamma_t = 0$ where the denominator is at most $2.2\cdot10^{-16}$). As in
    optax, the Polyak step is computed from the gradient already scaled by
    $-s$, so $s$ enters its denominator squared; with the default $s = 1$ this
    is Loizou et al.'s SPS$_{\max}$ step. ``variant="sps+"`` uses the positive
    part of $f(\theta_t) - f^\star$ (see :func:`~gradtx.scale_by_polyak`).

    Call ``update(grads, state, params, value=loss)``; a missing ``value``
    raises a TypeError that says so.

    Args:
      max_learning_rate: $\gamma_{\max} \ge 0$, the largest step.
      scaling: $s \ge 0$, a global factor (a float, array or schedule).
      f_min: $f^\star$, a lower bound on (a guess of) the loss's minimum. A
        wrong guess can stall or diverge the run.
      eps: $\epsilon \ge 0$ added to the denominator.
      variant: ``"sps"`` or ``"sps+"``.

    Returns:
      ``chain(sgd(scaling), scale_by_polyak(f_min, max_learning_rate, eps, variant))``.

    {hyper}

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = gx.polyak_sgd()
      >>> params = jnp.array([1.0, 2.0, 3.0], jnp.float32)
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     value, grad = jax.value_and_grad(f)(params)
      ...     updates, state = opt.update(grad, state, params, value=value)
      ...     params = gx.apply_updates(params, updates)
      >>> print(f"{f(params):.5f}")  # 14 -> 3.5 -> 0.875 -> 0.21875
      0.21875

    References:
      Loizou et al., *Stochastic Polyak Step-size for SGD: An Adaptive Learning
      Rate for Fast Convergence*, AISTATS 2021; Berrada et al., *Training Neural
      Networks for and by Interpolation*, ICML 2020.
    """
    with as_argument_of("polyak_sgd", learning_rate="scaling"):
        scaled = sgd(learning_rate=scaling)
    with as_argument_of("polyak_sgd"):
        polyak = scale_by_polyak(f_min, max_learning_rate, eps, variant)
    return chain(scaled, polyak)


def rprop(
    learning_rate: Hyper,
    eta_minus: Hyper = 0.5,
    eta_plus: Hyper = 1.2,
    min_step_size: Hyper = 1e-6,
    max_step_size: Hyper = 50.0,
) -> Chain:
    r"""Rprop: sign-based descent with a self-tuned step size per parameter.

    .. math::
        \theta_{t+1} = \theta_t - u_t ,

    with $u_t$ :func:`~gradtx.scale_by_rprop`'s update: $\Delta_t\,
    \mathrm{sign}(g_t)$, where $\Delta_t$ grows by $\eta^+$ while $g$ keeps
    its sign and shrinks by $\eta^-$ (the step skipped) when it flips, within
    $[\Delta_{\min}, \Delta_{\max}]$. Real parameters only. Suited to
    full-batch problems: the sign of a noisy gradient flips at random.

    Unlike optax 0.2.8, whose update lags one step (its first update is 0;
    google-deepmind/optax#1725), each update is the current one, as in the
    paper and ``torch.optim.Rprop``; the states are the same.

    Args:
      learning_rate: $\Delta_0 \ge 0$, every parameter's initial step size.
      eta_minus: $\eta^- \in [0, 1]$, the factor after a sign flip.
      eta_plus: $\eta^+ \ge 1$, the factor while the sign is kept.
      min_step_size: $\Delta_{\min} \ge 0$.
      max_step_size: $\Delta_{\max} > 0$.

    Returns:
      ``chain(scale_by_rprop(...), scale(-1.0))``. Every number is a pytree leaf.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.rprop(learning_rate=0.1)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> state = opt.init(params)
      >>> updates, state = opt.update(2 * params, state)
      >>> gx.apply_updates(params, updates)
      Array([ 0.9, -1.9], dtype=float32)

    References:
      Riedmiller & Braun, *A Direct Adaptive Method for Faster Backpropagation
      Learning: The RPROP Algorithm*, IEEE ICNN 1993.
    """
    with as_argument_of("rprop"):
        scaling = scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)
    return chain(scaling, scale(-1.0))


class _FromageStep(StatelessTransformation):
    r"""Fromage's step after the trust ratio: $u \leftarrow -\frac{\eta}{\sqrt{1+\eta^2}}\,u
    + \left(\frac{1}{\sqrt{1+\eta^2}} - 1\right)\theta$.

    optax writes it as ``scale_by_learning_rate`` then ``add_decayed_weights``
    with a negative decay derived from $\eta$; one transform keeps $\eta$ a
    single leaf (a schedule, or a batch under ``vmap``) whose derived factors
    are computed per step, and needs no negative weight decay.
    """

    gx_name = "fromage"
    learning_rate: Hyper = hyper(check=NONNEGATIVE)

    def apply(self, updates, h, params):
        if params is None:
            raise ValueError(f"gx.fromage: {NO_PARAMS_MSG}")
        mult = jax.lax.rsqrt(1 + h.learning_rate**2)
        step = gt.scalar_for(-(h.learning_rate * mult), promote=False)
        shrink = gt.scalar_for(mult - 1, promote=False)
        return gt.tree_map_none(lambda u, p: step(u) * u + shrink(p) * p, updates, params)


@fill
def fromage(learning_rate: Hyper, min_norm: Hyper = 1e-6) -> Chain:
    r"""Fromage: Frobenius-matched gradient descent, a step relative to each layer's norm.

    Per leaf (layer) $\theta$ with gradient $g$:

    .. math::
        \theta_{t+1} = \frac{1}{\sqrt{1+\eta^2}}\left(\theta_t -
        \eta\,\frac{\max(\lVert\theta_t\rVert, n_{min})}{\max(\lVert g_t\rVert, n_{min})}\, g_t\right)

    Each step moves a layer by $\eta$ times its own norm, and the factor
    $1/\sqrt{1+\eta^2}$ undoes the norm growth that such a step orthogonal to
    $\theta$ would cause, so $\eta$ needs little tuning (the authors use
    0.01). The ratio is exactly 1 where a layer's or its gradient's norm is 0
    (see :func:`~gradtx.scale_by_trust_ratio`), so a zero-initialised layer
    still moves, by $\eta g/\sqrt{1+\eta^2}$; optax there scales by
    $n_{min}/\lVert g\rVert$. Elsewhere the numbers are optax's. ``update`` needs
    ``params``.

    Args:
      learning_rate: $\eta \ge 0$, each step's size relative to the layer's norm (a
        float, a JAX array or a schedule).
      min_norm: $n_{min} \ge 0$, a floor for both norms.

    Returns:
      ``chain(scale_by_trust_ratio(min_norm), fromage step)``, where the step
      is $u \mapsto -\frac{\eta}{\sqrt{1+\eta^2}}u + (\frac{1}{\sqrt{1+\eta^2}} - 1)\theta$
      (optax's ``scale_by_learning_rate`` and ``add_decayed_weights`` in one
      transform, so $\eta$ stays one leaf).

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.fromage(learning_rate=0.75)  # 1 / sqrt(1 + 0.75^2) = 0.8
      >>> params = jnp.array([3.0, 4.0], jnp.float32)
      >>> updates, state = opt.update(jnp.array([0.0, 1.0], jnp.float32), opt.init(params), params)
      >>> [round(float(v), 4) for v in gx.apply_updates(params, updates)]  # 0.8 * ([3, 4] - 0.75 * [0, 5])
      [2.4, 0.2]

    References:
      Bernstein, Vahdat, Yue & Liu, *On the Distance between Two Neural Networks
      and the Stability of Learning*, NeurIPS 2020.
    """
    with as_argument_of("fromage"):
        return chain(scale_by_trust_ratio(min_norm), _FromageStep(learning_rate))
