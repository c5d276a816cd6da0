r"""Training problems with data: a small MLP regression and a noisy quadratic.

Both are generated from a fixed seed (no downloads), return a
:class:`~gradtx.Problem` whose ``loss`` is the full (noise-free) objective,
and add ``batch_loss(params, batch)`` with ``data`` (an array of batches or a
``(key, step) -> batch`` function) for training.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.problems.functions import Problem

__all__ = ["mlp_regression", "noisy_quadratic", "init_mlp", "mlp_apply"]


def init_mlp(key: jax.Array, sizes: tuple[int, ...], dtype: Any = jnp.float32) -> list[dict[str, jax.Array]]:
    """LeCun-normal weights and zero biases for layers ``sizes[0] -> ... -> sizes[-1]``."""
    return _init_mlp(key, tuple(int(s) for s in sizes), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init_mlp(key, sizes, dtype):
    # One compiled program instead of ~4 eagerly dispatched (and compiled) ops per layer.
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": (jax.random.normal(k, (a, b), jnp.float32) / math.sqrt(a)).astype(dtype), "b": jnp.zeros(b, dtype)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _regression_data(keys, samples, d, out):
    kx, ka, kb = keys
    x = jax.random.normal(kx, (samples, d), jnp.float32)
    a, b = jax.random.normal(ka, (d,)) / math.sqrt(d), jax.random.normal(kb, (d,)) / math.sqrt(d)
    y = (jnp.sin(2 * x @ a) + 0.5 * jnp.cos(3 * x @ b))[:, None]
    return x, jnp.tile(y, (1, out))


def mlp_apply(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """tanh MLP on inputs ``x`` of shape (..., in); the last layer is linear."""

    def dense(layer, h):
        out = h @ layer["w"]
        return out + jnp.reshape(layer["b"], (1,) * (out.ndim - 1) + layer["b"].shape)

    for layer in params[:-1]:
        x = jnp.tanh(dense(layer, x))
    return dense(params[-1], x)


def mlp_regression(sizes: tuple[int, ...] = (2, 32, 32, 1), samples: int = 512, seed: int = 0) -> Problem:
    r"""Fit a tanh MLP to $y = \sin(2 x \cdot a) + \tfrac12\cos(3 x \cdot b)$ on Gaussian inputs.

    Mean squared error on ``samples`` points generated from ``seed``; the
    problem's ``data`` is the whole set as one batch (full-batch training)
    and ``loss`` the same MSE. The minimum is unknown (about 0).
    """
    kx, ka, kb, kp = jax.random.split(jax.random.key(seed), 4)
    x, y = _regression_data((kx, ka, kb), int(samples), int(sizes[0]), int(sizes[-1]))

    def batch_loss(params, batch):
        xb, yb = batch
        pred = mlp_apply(params, xb.astype(params[0]["w"].dtype))
        return jnp.mean((pred - yb.astype(pred.dtype)) ** 2)

    return dataclasses.replace(
        Problem(
            f"mlp{'-'.join(map(str, sizes))}",
            lambda p: batch_loss(p, (x, y)),
            lambda dtype: init_mlp(kp, sizes, dtype),
            None,
            0.0,
        ),
        batch_loss=batch_loss,
        data=(x[None], y[None]),
    )


def noisy_quadratic(dim: int = 16, kappa: float = 100.0, noise: float = 1.0, start: float = 3.0) -> Problem:
    r"""Zhang et al.'s noisy quadratic model: where the best learning rate changes in training.

    $f(w) = \tfrac12 \sum_i h_i w_i^2$ with $h$ log-spaced on $[1/\kappa, 1]$;
    each step sees the gradient $h \odot w + \xi$, $\xi \sim \mathcal N(0,
    \sigma^2 h)$ (noise proportional to curvature, as for minibatch gradients).
    SGD with rate $\eta$ settles at
    $E f = \sum_i \eta\sigma^2 h_i / (2(2 - \eta h_i))$ (the AR(1) steady
    state; $\approx \eta \sigma^2 \sum_i h_i / 4$ only for $\eta h_i \ll 1$):
    a large rate is fast early, a small one is better late, so a decaying
    schedule (or PBT) beats every constant rate.

    Reference: Zhang et al., *Which Algorithmic Choices Matter at Which Batch
    Sizes?*, NeurIPS 2019.
    """
    h = np.geomspace(1.0 / kappa, 1.0, dim)

    def loss(w):
        return 0.5 * jnp.sum(jnp.asarray(h, w.dtype) * w * w)

    def batch_loss(w, xi):
        return loss(w) + jnp.sum(xi.astype(w.dtype) * w)

    def data(key, step):
        del step
        return noise * jnp.sqrt(jnp.asarray(h, jnp.float32)) * jax.random.normal(key, (dim,), jnp.float32)

    return dataclasses.replace(
        Problem(
            f"noisy_quadratic(kappa={kappa:g}, noise={noise:g})",
            loss,
            lambda dtype: jnp.full((dim,), start, dtype) / jnp.sqrt(jnp.asarray(h, dtype)),
            np.zeros(dim),
            0.0,
            tuple(float(v) for v in h),
        ),
        batch_loss=batch_loss,
        data=data,
    )

