r"""Extreme Hessian eigenvalues without forming the Hessian: power iteration and Lanczos.

Both iterate on the matrix-free operator of :func:`~gradtx.curvature.hvp.flat_hvp`
(one Hessian-vector product per iteration) inside a compiled loop, so they are
jittable, run in the params' dtype (float64 when the params are float64 and
``jax_enable_x64`` is on), take pytree params, and pass ``*args`` (e.g. a
mini-batch) to the loss: the full-batch Hessian is the one of the full loss.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.curvature.hvp import _check_params, flat_hvp

__all__ = ["hessian_power_iteration", "hessian_lanczos"]

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_num_iters(num_iters: Any, where: str) -> int:
    if isinstance(num_iters, bool) or not isinstance(num_iters, (int, np.integer)) or num_iters < 1:
        raise ValueError(
            f"{where}: `num_iters` must be a Python int >= 1 (it sets the loop length), got {num_iters!r}."
        )
    return int(num_iters)


def _unit_start(key: Any, flat: jax.Array) -> jax.Array:
    v = jax.random.normal(key, flat.shape, flat.dtype)
    return v / jnp.linalg.norm(v)


def _normalize(z: jax.Array, fallback: jax.Array) -> jax.Array:
    """``z / |z|``, or ``fallback`` where ``z`` is exactly zero (no 0/0)."""
    norm = jnp.linalg.norm(z)
    return jnp.where(norm > 0, z / jnp.where(norm > 0, norm, 1), fallback)


def hessian_power_iteration(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    num_iters: int = 100,
    key: jax.Array | None = None,
    tol: float = 1e-6,
) -> tuple[jax.Array, Any]:
    r"""The Hessian eigenvalue of largest magnitude, by power iteration on $v \mapsto Hv$.

    .. math::
        v_{k+1} = \frac{H v_k}{\lVert H v_k \rVert}, \qquad
        \lambda^{(k)} = v_k^\top H v_k ,

    stopping after ``num_iters`` products or when
    $|\lambda^{(k)} - \lambda^{(k-1)}| \le \mathrm{tol}\,|\lambda^{(k)}|$.
    The error of $\lambda^{(k)}$ shrinks like $(\lambda_2/\lambda_1)^{2k}$,
    so it is slow when the top two eigenvalues are close, and it finds the
    largest $|\lambda|$: at a saddle that may be a negative eigenvalue, and
    with $\lambda$ and $-\lambda$ both dominant it does not converge. For
    both ends of the spectrum use :func:`hessian_lanczos`.

    Unlike ``optax.power_iteration`` (which takes a matrix or a matvec and
    calls the tolerance ``error_tolerance``), this takes the loss, like the
    rest of :mod:`gradtx.curvature`; it returns the same ``(eigenvalue,
    eigenvector)`` pair.

    Args:
      loss_fn: ``(params, *args) -> scalar``.
      params: the point: a pytree of real floating arrays.
      *args: passed to ``loss_fn`` (e.g. a mini-batch for that batch's Hessian).
      num_iters: at most this many Hessian-vector products (default 100).
      key: PRNG key for the random start vector (default ``jax.random.key(0)``).
      tol: relative change of the estimate at which to stop (default 1e-6;
        0 runs all ``num_iters``).

    Returns:
      ``(eigenvalue, eigenvector)``: a scalar in the params' (promoted) dtype
      and a unit-norm pytree like ``params``.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda w: 0.5 * (w[0] ** 2 + 100 * w[1] ** 2)   # H = diag(1, 100)
      >>> lam, vec = gx.hessian_power_iteration(loss, jnp.zeros(2, jnp.float32))
      >>> round(float(lam), 3)
      100.0

    References:
      von Mises & Pollaczek-Geiringer, 1929; Yao et al., *PyHessian: Neural
      networks through the lens of the Hessian*, 2020.
    """
    num_iters = _check_num_iters(num_iters, "hessian_power_iteration")
    if isinstance(tol, (int, float)) and not tol >= 0:
        raise ValueError(f"hessian_power_iteration: `tol` must be >= 0 (a relative change), got {tol!r}.")
    _check_params(loss_fn, params, "hessian_power_iteration")
    return _call(_power_iteration, loss_fn, num_iters, params, args, key, tol)


def _call(impl: Callable, loss_fn: Any, *rest: Any) -> Any:
    """Runs ``impl`` jitted with (loss_fn, num_iters) static: one XLA program instead
    of op-by-op dispatch, inlined under an outer jit. Unhashable losses run unjitted."""
    try:
        hash(loss_fn)
    except TypeError:
        return impl(loss_fn, *rest)
    return _JIT[impl.__name__](loss_fn, *rest)


def _power_iteration(loss_fn, num_iters, params, args, key, tol):
    matvec, flat, unravel = flat_hvp(loss_fn, params, *args)
    v0 = _unit_start(jax.random.key(0) if key is None else key, flat)
    inf = jnp.asarray(jnp.inf, flat.dtype)

    def cond(carry):
        i, _, lam, prev = carry
        return (i < num_iters) & ~(jnp.abs(lam - prev) <= tol * jnp.abs(lam))

    def body(carry):
        i, v, lam, _ = carry
        z = matvec(v)
        return i + 1, _normalize(z, v), jnp.vdot(v, z, precision=_HIGHEST), lam

    _, v, lam, _ = jax.lax.while_loop(cond, body, (jnp.zeros([], jnp.int32), v0, inf, inf))
    return lam, unravel(v)


def hessian_lanczos(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    num_iters: int = 100,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Estimates $(\lambda_{max}, \lambda_{min})$ of the Hessian by Lanczos with full reorthogonalization.

    From a random unit $q_1$, builds an orthonormal basis $Q_m$ of the Krylov
    space $\mathrm{span}\{q_1, Hq_1, \ldots, H^{m-1}q_1\}$ and the tridiagonal
    $T_m = Q_m^\top H Q_m$:

    .. math::
        \alpha_j = q_j^\top H q_j, \quad
        r_j = (I - Q_j Q_j^\top)\, H q_j, \quad
        \beta_j = \lVert r_j \rVert, \quad q_{j+1} = r_j / \beta_j ,

    and returns the extreme eigenvalues (Ritz values) of $T_m$. Each $r_j$ is
    orthogonalized against all previous $q$'s twice ("twice is enough"), so
    no spurious copies appear; when $\beta_j$ vanishes (an invariant subspace
    was found) the iteration restarts from a random vector orthogonal to $Q_j$
    with $\beta_j = 0$. The extremes converge much faster than power iteration,
    from both ends at once; with $m = n$ (the number of parameters) the Krylov
    space is complete and they are exact up to rounding.

    ``num_iters`` is capped at $n$. Full reorthogonalization stores all $m$
    vectors: memory $m \cdot n$ and $O(m^2 n)$ extra work, fine for the tens
    of iterations the extremes need.

    Args:
      loss_fn: ``(params, *args) -> scalar``.
      params: the point: a pytree of real floating arrays.
      *args: passed to ``loss_fn`` (e.g. a mini-batch for that batch's Hessian).
      num_iters: Lanczos steps $m$, i.e. Hessian-vector products (default
        100, capped at $n$).
      key: PRNG key for the start and restart vectors (default
        ``jax.random.key(0)``).

    Returns:
      ``(lambda_max, lambda_min)``: scalars in the params' (promoted) dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda p: p["x"] ** 2 - p["y"] ** 2              # H = diag(2, -2)
      >>> lam_max, lam_min = gx.hessian_lanczos(loss, {"x": jnp.float32(0), "y": jnp.float32(0)})
      >>> round(float(lam_max), 4), round(float(lam_min), 4)
      (2.0, -2.0)

    References:
      Lanczos, *An iteration method for the solution of the eigenvalue problem
      of linear differential and integral operators*, 1950; Parlett, *The
      Symmetric Eigenvalue Problem*, 1980 (reorthogonalization); Ghorbani,
      Krishnan & Xiao, *An investigation into neural net optimization via
      Hessian eigenvalue density*, ICML 2019.
    """
    num_iters = _check_num_iters(num_iters, "hessian_lanczos")
    _check_params(loss_fn, params, "hessian_lanczos")
    return _call(_lanczos, loss_fn, num_iters, params, args, key)


def _lanczos(loss_fn, num_iters, params, args, key):
    matvec, flat, _ = flat_hvp(loss_fn, params, *args)
    n, dtype = flat.size, flat.dtype
    m = min(num_iters, n)
    tiny = 10 * jnp.finfo(dtype).eps
    start_key, restart_key = jax.random.split(jax.random.key(0) if key is None else key)

    def orthogonalize(basis, w):
        for _ in range(2):
            w = w - jnp.matmul(basis.T, jnp.matmul(basis, w, precision=_HIGHEST), precision=_HIGHEST)
        return w

    def body(j, carry):
        basis, alpha, beta, q, scale = carry
        basis = basis.at[j].set(q)
        hq = matvec(q)
        a = jnp.vdot(q, hq, precision=_HIGHEST)
        r = orthogonalize(basis, hq)
        b = jnp.linalg.norm(r)
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))

        def restart(_):
            fresh = jax.random.normal(jax.random.fold_in(restart_key, j), (n,), dtype)
            return orthogonalize(basis, fresh), jnp.zeros([], dtype)

        r, b = jax.lax.cond(b <= tiny * scale, restart, lambda _: (r, b), None)
        return basis, alpha.at[j].set(a), beta.at[j].set(b), _normalize(r, jnp.zeros_like(r)), scale

    zeros = jnp.zeros(m, dtype)
    init = (jnp.zeros((m, n), dtype), zeros, zeros, _unit_start(start_key, flat), jnp.zeros([], dtype))
    _, alpha, beta, _, _ = jax.lax.fori_loop(0, m, body, init)
    # Eigenvalues of T in at least float32 (eigvalsh has no half-precision kernel).
    tdtype = jnp.promote_types(dtype, jnp.float32)
    off = beta[: m - 1].astype(tdtype)
    t = jnp.diag(alpha.astype(tdtype)) + jnp.diag(off, 1) + jnp.diag(off, -1)
    ritz = jnp.linalg.eigvalsh(t)
    return ritz[-1].astype(dtype), ritz[0].astype(dtype)


_JIT = {f.__name__: jax.jit(f, static_argnums=(0, 1)) for f in (_power_iteration, _lanczos)}
