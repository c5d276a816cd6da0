"""Test problems with known minima, shared by tests, the CLI and the notebooks.

Each problem is a :class:`Problem`: a loss on a pytree of parameters, a
starting point and the known minimiser and minimum.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Problem", "quadratic", "ill_conditioned_quadratic", "rosenbrock", "beale", "radial_polynomial", "saddle"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """A minimisation problem with a known answer.

    Attributes:
      name: short name.
      loss: ``params -> scalar``.
      init: ``dtype -> params``: the starting point in the given dtype.
      minimizer: the known minimiser (NumPy, float64), or None.
      minimum: the known minimum value.
      hessian_eigenvalues: for quadratics, the Hessian's eigenvalues.
      batch_loss: for problems with data, ``(params, batch) -> scalar``.
      data: for problems with data, an array tree of batches (leading axis)
        or a ``(key, step) -> batch`` function, as :func:`gradtx.sweep` takes.
    """

    name: str
    loss: Callable[[Any], jax.Array]
    init: Callable[[Any], Any]
    minimizer: np.ndarray | None
    minimum: float
    hessian_eigenvalues: tuple[float, ...] | None = None
    batch_loss: Callable[[Any, Any], jax.Array] | None = None
    data: Any = None

    def params(self, dtype: Any = jnp.float32) -> Any:
        """The starting point in ``dtype``."""
        return self.init(dtype)


def quadratic(
    center: tuple[float, ...], eigenvalues: tuple[float, ...], start: tuple[float, ...] | None = None
) -> Problem:
    r"""$f(w) = \tfrac12 (w-c)^\top \mathrm{diag}(\lambda)(w-c)$: minimum 0 at $c$.

    The Hessian is $\mathrm{diag}(\lambda)$ with condition number
    $\kappa = \lambda_{max}/\lambda_{min}$.
    """
    c = np.asarray(center, np.float64)
    lam = np.asarray(eigenvalues, np.float64)
    w0 = np.zeros_like(c) if start is None else np.asarray(start, np.float64)

    def loss(w):
        d = w - jnp.asarray(c, w.dtype)
        return 0.5 * jnp.sum(jnp.asarray(lam, w.dtype) * d * d)

    return Problem(
        f"quadratic(kappa={lam.max() / lam.min():g})",
        loss,
        lambda dtype: jnp.asarray(w0, dtype),
        c,
        0.0,
        tuple(float(x) for x in lam),
    )


def ill_conditioned_quadratic() -> Problem:
    r"""Seed 003's experiment: centre (0.8, 0.6), Hessian diag(1, 100), start at 0.

    $\kappa = 100$, $\eta_{max} = 2/100$, $\eta^* = 2/101$, GD rate $99/101$.
    """
    return quadratic((0.8, 0.6), (1.0, 100.0))


def rosenbrock(a: float = 1.0, b: float = 100.0, start: tuple[float, float] = (-1.2, 1.0)) -> Problem:
    r"""$f(x, y) = (a - x)^2 + b (y - x^2)^2$: minimum 0 at $(a, a^2)$."""

    def loss(w):
        x, y = w[0], w[1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return Problem("rosenbrock", loss, lambda dtype: jnp.asarray(start, dtype), np.array([a, a * a]), 0.0)


def beale(start: tuple[float, float] = (1.0, 1.0)) -> Problem:
    r"""Beale's function: minimum 0 at $(3, 0.5)$.

    $f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2$.
    """

    def loss(w):
        x, y = w[0], w[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return Problem("beale", loss, lambda dtype: jnp.asarray(start, dtype), np.array([3.0, 0.5]), 0.0)


def radial_polynomial(start: tuple[float, float] = (0.5, 1.0)) -> Problem:
    r"""Seed 001's example: $f = r^8 - 7r^6 + 13r^4$, $r^2 = w_1^2 + w_2^2$.

    Global minimum 0 at the origin. From (0.5, 1), GD with $\eta = 0.01$ moves
    to (0.425, 0.85) in one step and to about (0.03, 0.06) in 200.
    """

    def loss(w):
        r2 = jnp.sum(w * w)
        return r2**4 - 7 * r2**3 + 13 * r2**2

    return Problem("radial_polynomial", loss, lambda dtype: jnp.asarray(start, dtype), np.zeros(2), 0.0)


def saddle(start: tuple[float, float] = (1.0, 1e-3)) -> Problem:
    r"""The saddle of seed 002's figure: $f(x, y) = x^2 - y^2$, unbounded below.

    The origin is a saddle point (Hessian $\mathrm{diag}(2, -2)$). Started on the
    ridge $y \approx 0$, gradient descent grows $y$ only by $(1 + 2\eta)$ per step,
    so it lingers near the saddle; methods that normalise the gradient per
    coordinate (AdaGrad, RMSProp, Adam) leave at once. ``minimizer`` is None
    and ``minimum`` is $-\infty$.
    """

    def loss(w):
        return w[0] ** 2 - w[1] ** 2

    return Problem("saddle", loss, lambda dtype: jnp.asarray(start, dtype), None, -np.inf, (2.0, -2.0))
