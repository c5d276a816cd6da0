"""SGD with annealed Gaussian gradient noise: ``noisy_sgd``."""

from __future__ import annotations

from typing import Any

from gradtx.core.docs import fill
from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.basic import scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.noise import add_noise

__all__ = ["noisy_sgd"]


@fill
def noisy_sgd(
    learning_rate: Hyper,
    eta: Hyper = 0.01,
    gamma: Hyper = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> Chain:
    r"""SGD on gradients with added Gaussian noise of annealed variance.

    .. math::
        \theta_{t+1} = \theta_t - \eta_t^{lr}\left(g_t + \sigma_t \xi_t\right), \qquad
        \xi_t \sim \mathcal{N}(0, I), \qquad \sigma_t^2 = \frac{\eta}{(1+t)^{\gamma}},

    with $t = 0$ on the first update. The noise is :func:`~gradtx.add_noise`'s,
    bit for bit optax's for the same key.

    Args:
      {learning_rate}
      eta: the initial noise variance $\eta \ge 0$.
      gamma: the annealing exponent $\gamma \ge 0$.
      key: an integer seed or a JAX PRNG key (None: seed 0). A pytree leaf:
        ``jax.vmap`` over a batch of keys runs independent noisy runs.
      seed: optax's deprecated name for an integer ``key``.

    Returns:
      ``chain(add_noise(eta, gamma, key), scale_by_learning_rate(learning_rate))``.

    {hyper}

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> opt = gx.noisy_sgd(0.1, eta=0.0)  # no noise: plain SGD
      >>> params = jnp.array([1.0, -2.0])
      >>> updates, state = opt.update(2 * params, opt.init(params))
      >>> gx.apply_updates(params, updates).tolist()
      [0.8, -1.6]

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very
      Deep Networks*, arXiv:1511.06807, 2015.
    """
    with as_argument_of("noisy_sgd"):
        return chain(add_noise(eta, gamma, key, seed=seed), scale_by_learning_rate(learning_rate))
