"""Delta-bar-delta (Jacobs, 1988) as an optimizer: adaptive rates, then descent."""

from __future__ import annotations

from gradtx.core.hyperparams import Hyper
from gradtx.transforms.basic import scale
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.delta_bar_delta import scale_by_delta_bar_delta

__all__ = ["delta_bar_delta"]


def delta_bar_delta(
    learning_rate: Hyper, kappa: Hyper = 1e-3, phi: Hyper = 0.1, theta: Hyper = 0.7
) -> Chain:
    r"""Delta-bar-delta: gradient descent with a learning rate per parameter.

    .. math::
        \theta_{t+1} = \theta_t - \epsilon_t \odot g_t,

    where each $\epsilon_{t,i}$ starts at ``learning_rate``, grows by $\kappa$
    while $g_{t,i}$ has the sign of the running average $\bar\delta_{t-1,i}$ of
    past gradients, and is multiplied by $1-\phi$ when the sign flips (see
    :func:`~gradtx.scale_by_delta_bar_delta` for the exact rule). The seed's
    "same sign: increase the rate; different sign: decrease it".

    Args:
      learning_rate: the initial rate $\epsilon_0 \ge 0$ of every parameter (a
        number or array, not a schedule: the rates then adapt on their own).
      kappa: additive increase $\kappa \ge 0$, in learning-rate units: keep it a
        small fraction of ``learning_rate``.
      phi: multiplicative decrease $\phi \in [0, 1)$.
      theta: decay $\theta \in [0, 1)$ of the gradient average $\bar\delta$.

    Returns:
      ``chain(scale_by_delta_bar_delta(learning_rate, kappa, phi, theta), scale(-1.0))``.
      Every number is a pytree leaf: a new ``kappa`` does not recompile and
      ``jax.vmap`` maps over a batch of them.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.delta_bar_delta(0.1, kappa=0.05)
      >>> params = jnp.array([1.0, -2.0], jnp.float32)
      >>> state = opt.init(params)
      >>> updates, state = opt.update(2 * params, state)
      >>> gx.apply_updates(params, updates)
      Array([ 0.8, -1.6], dtype=float32)

    References:
      Jacobs, *Increased rates of convergence through learning rate adaptation*,
      Neural Networks 1(4):295-307, 1988.
    """
    try:
        scaling = scale_by_delta_bar_delta(learning_rate, kappa, phi, theta)
    except (TypeError, ValueError) as err:  # name the argument the caller used
        msg = str(err).replace(
            "gx.scale_by_delta_bar_delta: `initial_rate`", "gx.delta_bar_delta: `learning_rate`"
        ).replace("gx.scale_by_delta_bar_delta:", "gx.delta_bar_delta:")
        raise type(err)(msg) from None
    return chain(scaling, scale(-1.0))
