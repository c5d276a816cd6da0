r"""L-BFGS preconditioning: the two-loop recursion over a static-length history.

Nocedal & Wright, *Numerical Optimization* (2nd ed., 2006), Algorithm 7.4;
Liu & Nocedal, *On the limited memory BFGS method for large scale
optimization*, Math. Programming 45, 1989.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import NO_PARAMS_MSG, GradientTransformation
from gradtx.core.module import static
from gradtx.core.numerics import safe_increment, zero_count

__all__ = ["ScaleByLBFGSState", "ScaleByLBFGS", "scale_by_lbfgs"]

_WHERE = "gx.scale_by_lbfgs"


class ScaleByLBFGSState(NamedTuple):
    """State of :func:`scale_by_lbfgs` (optax's fields).

    Attributes:
      count: updates so far (int32).
      params: the parameters at the last update, $w_{k-1}$.
      updates: the incoming updates (gradients) at the last update, $g_{k-1}$.
      diff_params_memory: $s_j = w_{j+1} - w_j$ for the last ``memory_size``
        steps, each leaf stacked on a leading axis of length ``memory_size``
        (a ring buffer; slot $j \bmod m$).
      diff_updates_memory: $y_j = g_{j+1} - g_j$, stacked likewise.
      weights_memory: $\\rho_j = 1/\\mathrm{Re}\\langle s_j, y_j\\rangle$ (0 where
        that is 0), shape ``[memory_size]``, at least float32.
    """

    count: jax.Array
    params: Any
    updates: Any
    diff_params_memory: Any
    diff_updates_memory: Any
    weights_memory: jax.Array


def _weights_dtype(params: Any) -> Any:
    leaves = jax.tree.leaves(params)
    real = jnp.finfo(jnp.result_type(*leaves)).dtype
    return jnp.promote_types(real, jnp.float32)


def _axpy(a: jax.Array, x: Any, y: Any) -> Any:
    """``y + a x`` leaf by leaf, in ``y``'s dtypes."""
    return gt.tree_map_none(lambda xi, yi: (yi + a * xi).astype(yi.dtype), x, y)


def precondition(updates: Any, s_mem: Any, y_mem: Any, rho: jax.Array, gamma: jax.Array, newest: jax.Array) -> Any:
    r"""$H_k u$ by the two-loop recursion, $H_k^0 = \gamma I$.

    ``newest`` is the slot written next (the oldest entry); the first loop runs
    from the newest pair back to the oldest, the second forward again. Empty
    slots have $\rho = 0$, so they leave the vector unchanged.
    """
    m = rho.shape[0]
    order = (newest + jnp.arange(m)) % m

    def take(i):
        return jax.tree.map(lambda x: x[i], (s_mem, y_mem))

    def backward(q, i):
        s, y = take(i)
        alpha = rho[i] * gt.real_inner(s, q)
        return _axpy(-alpha, y, q), alpha

    q, alphas = jax.lax.scan(backward, updates, order, reverse=True)
    r = gt.tree_map_none(lambda x: (gamma * x).astype(x.dtype), q)

    def forward(r, i_alpha):
        i, alpha = i_alpha
        s, y = take(i)
        beta = rho[i] * gt.real_inner(y, r)
        return _axpy(alpha - beta, s, r), None

    r, _ = jax.lax.scan(forward, r, (order, alphas))
    return r


class ScaleByLBFGS(GradientTransformation):
    r"""L-BFGS preconditioner (see :func:`scale_by_lbfgs`)."""

    gx_name = "scale_by_lbfgs"
    memory_size: int = static(10)
    scale_init_precond: bool = static(True)

    def __post_init__(self):
        super().__post_init__()
        m = self.memory_size
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(
                f"{_WHERE}: `memory_size` must be a Python int >= 1 (the history's length, which fixes "
                f"the state's shapes, so it is static), got {m!r}."
            )

    def init(self, params):
        if not jax.tree.leaves(params):
            raise ValueError(f"{_WHERE}: `params` has no array leaves.")
        stacked = jax.tree.map(lambda p: jnp.zeros((self.memory_size,) + jnp.shape(p), jnp.result_type(p)), params)
        return ScaleByLBFGSState(
            count=zero_count(),
            params=gt.zeros_like(params),
            updates=gt.zeros_like(params),
            diff_params_memory=stacked,
            diff_updates_memory=stacked,
            weights_memory=jnp.zeros([self.memory_size], _weights_dtype(params)),
        )

    def update(self, updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"{_WHERE}: {NO_PARAMS_MSG}")
        gt.check_same_structure(updates, params, "updates", "params", _WHERE)
        m, k = self.memory_size, state.count
        wdt = state.weights_memory.dtype
        first = k == 0
        # The pair from the step just taken: s = w_k - w_{k-1}, y = g_k - g_{k-1} (zero on the first call).
        s = gt.tree_map_none(lambda a, b: jnp.where(first, 0, a - b).astype(a.dtype), params, state.params)
        y = gt.tree_map_none(lambda a, b: jnp.where(first, 0, a - b).astype(a.dtype), updates, state.updates)
        sy = gt.real_inner(y, s).astype(wdt)
        rho = jnp.where(first | (sy == 0.0), 0.0, 1.0 / sy).astype(wdt)
        slot = (k - 1) % m
        s_mem = jax.tree.map(lambda mem, x: mem.at[slot].set(x), state.diff_params_memory, s)
        y_mem = jax.tree.map(lambda mem, x: mem.at[slot].set(x), state.diff_updates_memory, y)
        rho_mem = state.weights_memory.at[slot].set(rho)
        if self.scale_init_precond:
            yy = gt.real_inner(y, y).astype(wdt)
            gamma = jnp.where(yy > 0.0, sy / yy, 1.0)
            # First step: H_0 = min(1, 1/||g||) I, so the first trial step has length <= 1.
            norm = jnp.sqrt(gt.real_inner(updates, updates)).astype(wdt)
            gamma = jnp.where(first, jnp.minimum(1.0, 1.0 / jax.lax.stop_gradient(norm)), gamma).astype(wdt)
        else:
            gamma = jnp.ones([], wdt)
        out = precondition(updates, s_mem, y_mem, rho_mem, gamma, k % m)
        new_state = ScaleByLBFGSState(
            count=safe_increment(k),
            params=gt.cast_like(params, state.params),
            updates=gt.cast_like(updates, state.updates),
            diff_params_memory=s_mem,
            diff_updates_memory=y_mem,
            weights_memory=rho_mem,
        )
        return out, new_state


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> ScaleByLBFGS:
    r"""Scales updates by the L-BFGS approximation of the inverse Hessian.

    With $s_j = w_{j+1} - w_j$ and $y_j = g_{j+1} - g_j$ for the last $m$ =
    ``memory_size`` steps ($g$ the incoming updates, i.e. gradients), and
    $\rho_j = 1/\langle s_j, y_j\rangle$, the update is $H_k g_k$ where

    .. math::
        H_k^{(k-m)} = \gamma_k I, \qquad
        H_k^{(j+1)} = V_j^\top H_k^{(j)} V_j + \rho_j s_j s_j^\top, \quad
        V_j = I - \rho_j y_j s_j^\top ,

    computed without forming a matrix by the two-loop recursion (two passes
    over the history, $O(mn)$). The initial scale is
    $\gamma_k = \langle s_{k-1}, y_{k-1}\rangle / \langle y_{k-1}, y_{k-1}\rangle$
    when ``scale_init_precond`` (else 1), and on the first step
    $\gamma_0 = \min(1, 1/\|g_0\|)$, so the first trial step has length at most
    1. A pair with $\langle s, y\rangle = 0$ gets $\rho = 0$ (it is skipped).
    Complex parameters use the real inner product $\mathrm{Re}\langle a, b\rangle$.

    The history is updated before preconditioning, from the ``params`` and
    ``updates`` of this call and the previous one; chained before a line search
    (:func:`~gradtx.lbfgs`), each pair is therefore one accepted step.

    Names, defaults and numerics are optax's (tested to rtol 1e-6 in float64).
    Differences: the inner products accumulate in at least float32 and
    $\rho$ is stored in the parameters' real dtype promoted to float32 (optax:
    JAX's default float); ``updates`` and ``params`` must have the same structure
    (checked, with the first difference named).

    Args:
      memory_size: $m \ge 1$, the number of pairs kept. Static: it fixes the
        state's shapes (``m`` copies of the parameters, twice).
      scale_init_precond: use $\gamma_k$ above rather than 1. Static.

    Returns:
      A :class:`~gradtx.GradientTransformation`; state :class:`ScaleByLBFGSState`.
      It has no numeric hyperparameters (and so no leaves).

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> tx = gx.scale_by_lbfgs(memory_size=3)
      >>> w = jnp.array([3.0, 4.0])
      >>> state = tx.init(w)
      >>> u, state = tx.update(jnp.array([3.0, 4.0]), state, w)
      >>> print(u)  # first step: g / max(1, ||g||)
      [0.6 0.8]

    References:
      Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithms 7.4-7.5.
      Liu & Nocedal, *On the limited memory BFGS method for large scale
      optimization*, Mathematical Programming 45, 1989.
    """
    return ScaleByLBFGS(memory_size, scale_init_precond)
