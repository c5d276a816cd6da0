"""Annealed Gaussian gradient noise (Neelakantan et al., 2015)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.docs import fill
from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import NONNEGATIVE, Hyper, as_leaf, evaluate
from gradtx.core.module import child, hyper
from gradtx.core.numerics import safe_increment, zero_count

__all__ = ["AddNoiseState", "AddNoise", "add_noise"]


class AddNoiseState(NamedTuple):
    """State of :func:`add_noise` (optax's field names).

    Attributes:
      count: updates so far (int32), the $t$ of the annealing.
      rng_key: the typed PRNG key the next update splits.
    """

    count: jax.Array
    rng_key: jax.Array


def _is_typed_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _is_raw_key(shape: tuple, dtype: Any) -> bool:
    """A legacy ``jax.random.PRNGKey``: ``uint32[2]``, or a batch of them ``uint32[..., 2]``."""
    return len(shape) >= 1 and shape[-1] == 2 and dtype == np.uint32


def _canonical_key(key: Any) -> jax.Array:
    """One typed key from a typed key, an integer seed or a raw ``uint32[2]`` key.

    Raises ValueError if ``key`` holds a batch of keys: those are for
    ``jax.vmap``, under which each call sees one key.
    """
    if _is_typed_key(key):
        typed = key
    elif _is_raw_key(jnp.shape(key), jnp.result_type(key)):
        typed = jax.random.wrap_key_data(key)
    else:
        typed = None if jnp.ndim(key) else jax.random.key(key)
    if typed is None or typed.shape != ():
        raise ValueError(
            f"gx.add_noise: `key` holds a batch of keys (shape {jnp.shape(key)}), but `init` "
            "needs one. Map over the batch with `jax.vmap` (e.g. `jax.vmap(lambda t: t.init(params))"
            "(tx)`, with every leaf of `tx` batched), or pass a single key."
        )
    return typed


def _check_key(key: Any) -> None:
    """Raises TypeError unless ``key`` is a seed or key, or a batch of either (for ``jax.vmap``)."""
    if _is_typed_key(key):
        return
    try:
        arr = np.asarray(key)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return  # traced: checked by nothing, by design
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"gx.add_noise: `key` must be an integer seed or a JAX PRNG key "
            f"(jax.random.key(seed)), got {key!r}."
        )


class AddNoise(GradientTransformation):
    r"""Adds annealed Gaussian noise (see :func:`add_noise`)."""

    gx_name = "add_noise"
    eta: Hyper = hyper(check=NONNEGATIVE)
    gamma: Hyper = hyper(check=NONNEGATIVE)
    key: Any = child(0)

    def __post_init__(self):
        super().__post_init__()
        _check_key(self.key)
        if not isinstance(self.key, jax.Array):  # a seed: stored as an array, like every number
            object.__setattr__(self, "key", as_leaf(self.key))

    def init(self, params):
        return AddNoiseState(zero_count(), _canonical_key(self.key))

    def update(self, updates, state, params=None, **extra_args):
        h = evaluate(self, state.count)
        count_inc = safe_increment(state.count)
        std = jnp.sqrt(h.eta / count_inc**h.gamma)
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)  # None leaves are empty subtrees
        keys = jax.random.split(sample_key, len(leaves))
        noisy = [
            g + (std * jax.random.normal(k, jnp.shape(g), jnp.result_type(g))).astype(jnp.result_type(g))
            for g, k in zip(leaves, keys)
        ]
        return jax.tree.unflatten(treedef, noisy), AddNoiseState(count_inc, rng_key)


@fill
def add_noise(eta: Hyper, gamma: Hyper, key: Any = None, *, seed: int | None = None) -> AddNoise:
    r"""Adds Gaussian noise with an annealed variance to the updates.

    .. math::
        u_t = g_t + \sigma_t\, \xi_t, \qquad \xi_t \sim \mathcal{N}(0, I), \qquad
        \sigma_t^2 = \frac{\eta}{(1 + t)^{\gamma}},

    with $t = 0$ on the first update. Matches ``optax.add_noise`` bit for bit:
    the state holds the count and a PRNG key; each update splits the key into
    (next key, sample key) and the sample key into one key per leaf (in
    ``jax.tree.flatten`` order). Complex leaves get complex normal noise
    (variance $\sigma_t^2/2$ in each of the real and imaginary parts), as in optax.

    Put it before the learning rate, as the paper adds it to the gradient:
    ``gx.chain(gx.add_noise(0.01, 0.55), gx.scale_by_learning_rate(lr))``.

    Args:
      eta: base variance $\eta \ge 0$ (the paper tries 0.01, 0.3, 1.0).
      gamma: annealing exponent $\gamma \ge 0$ (the paper: 0.55).
      key: an integer seed or a JAX PRNG key (``jax.random.key(0)``; a legacy
        ``uint32[2]`` key from ``jax.random.PRNGKey`` is wrapped). None means
        seed 0 (optax warns and uses 0; gradtx does not warn). A pytree leaf,
        so a new seed does not recompile, and a batch of keys (typed ``(N,)``,
        legacy ``uint32[N, 2]`` or seeds ``(N,)``) maps under ``jax.vmap``:
        ``jax.vmap(lambda k: gx.add_noise(eta, gamma, k))(keys)``, or the keys
        given directly with the other leaves batched too.
      seed: optax's deprecated name for an integer ``key``; give only one of them.

    ``eta`` and ``gamma`` are pytree leaves (floats, arrays or schedules):
    ``jax.vmap`` over them maps a batch of noise levels, all drawing the same
    $\xi_t$ when they share a key.

    Returns:
      {returns_tx} State: :class:`AddNoiseState`.

    Raises:
      TypeError: ``key`` is neither integers nor a PRNG key (at construction).
      ValueError: ``init`` is called, outside ``jax.vmap``, on a batch of keys.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> tx = gx.add_noise(eta=0.01, gamma=0.55, key=0)
      >>> state = tx.init(jnp.zeros(3))
      >>> noisy, state = tx.update(jnp.ones(3), state)
      >>> int(state.count), noisy.shape
      (1, (3,))

    References:
      Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep
      Networks*, arXiv:1511.06807, 2015.
    """
    if seed is not None:
        if key is not None:
            raise ValueError("gx.add_noise: give either `key` or `seed` (its old name), not both.")
        key = seed
    return AddNoise(eta, gamma, 0 if key is None else key)
