r"""Step-size advice from the Hessian's extreme eigenvalues (seed 003).

Near a minimum the loss is the quadratic $\tfrac12 \delta w^\top H \delta w$
and gradient descent shrinks each eigen-component by $1 - \eta\lambda_i$. From
$\lambda_{max}$ and $\lambda_{min}$ follow the stability limit, the best
constant step, its contraction rate, and Polyak's heavy-ball optimum.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gradtx.curvature.eigen import hessian_lanczos, hessian_power_iteration
from gradtx.curvature.hvp import _check_params

__all__ = ["LRAdvice", "lr_advice"]

METHODS = ("lanczos", "power", "dense")


@dataclasses.dataclass(frozen=True)
class LRAdvice:
    r"""Curvature-based step sizes at one point (see :func:`lr_advice`).

    Fields that are undefined at this point are None (never NaN).

    Attributes:
      lambda_max: largest Hessian eigenvalue estimate.
      lambda_min: smallest Hessian eigenvalue estimate.
      kappa: $\kappa = \lambda_{max}/\lambda_{min}$ (None unless convex).
      eta_max: $2/\lambda_{max}$: GD diverges along the top eigenvector for
        larger steps (None when $\lambda_{max} \le 0$).
      eta_opt: $\eta^* = 2/(\lambda_{min}+\lambda_{max})$, the constant step
        minimizing GD's worst-case contraction (None unless convex).
      gd_rate: GD's contraction per step at $\eta^*$, $(\kappa-1)/(\kappa+1)$.
      eta_hb: heavy-ball step $4/(\sqrt{\lambda_{max}}+\sqrt{\lambda_{min}})^2$.
      beta_hb: heavy-ball momentum $\big((\sqrt\kappa-1)/(\sqrt\kappa+1)\big)^2$.
      hb_rate: heavy-ball's asymptotic rate $(\sqrt\kappa-1)/(\sqrt\kappa+1)$.
      convex: $\lambda_{min} > 0$ (beyond rounding): locally strongly convex.
      note: a sentence on what holds here and why fields are None.
      method: the eigenvalue solver used.
    """

    lambda_max: float
    lambda_min: float
    kappa: float | None
    eta_max: float | None
    eta_opt: float | None
    gd_rate: float | None
    eta_hb: float | None
    beta_hb: float | None
    hb_rate: float | None
    convex: bool
    note: str
    method: str

    def __str__(self) -> str:
        def f(x: float | None) -> str:
            return "undefined" if x is None else f"{x:.6g}"

        kind = "locally strongly convex" if self.convex else "not strongly convex"
        return "\n".join(
            [
                f"LRAdvice ({self.method}): {kind}",
                f"  lambda_max = {f(self.lambda_max)}   lambda_min = {f(self.lambda_min)}   kappa = {f(self.kappa)}",
                f"  GD:         eta_max = 2/lambda_max = {f(self.eta_max)}",
                f"              eta*    = 2/(lambda_min+lambda_max) = {f(self.eta_opt)}   rate = {f(self.gd_rate)}",
                f"  heavy ball: eta = {f(self.eta_hb)}   beta = {f(self.beta_hb)}   rate = {f(self.hb_rate)}",
                f"  note: {self.note}",
            ]
        )


@functools.partial(jax.jit, static_argnums=0)
def _dense_eigvalsh(flat_loss, flat, args):
    h = jax.hessian(flat_loss)(flat, args)
    return jnp.linalg.eigvalsh(h.astype(jnp.promote_types(flat.dtype, jnp.float32)))


def _extremes(loss_fn, params, args, method, num_iters, key) -> tuple[float, float, Any]:
    flat, unravel = ravel_pytree(params)
    if method == "lanczos":
        hi, lo = hessian_lanczos(loss_fn, params, *args, num_iters=num_iters, key=key)
        return float(hi), float(lo), flat.dtype
    if method == "dense":
        eig = _dense_eigvalsh(lambda x, a: loss_fn(unravel(x), *a), flat, args)
        return float(eig[-1]), float(eig[0]), flat.dtype
    # Power iteration, then again on H - lam1 I (the loss minus lam1/2 |w|^2),
    # whose dominant eigenvalue is the other end of the spectrum minus lam1.
    lam1 = float(hessian_power_iteration(loss_fn, params, *args, num_iters=num_iters, key=key)[0])

    def shifted(p, *a):
        sq = sum(jnp.sum(x * x) for x in jax.tree.leaves(p))
        return loss_fn(p, *a) - 0.5 * lam1 * sq

    lam2 = lam1 + float(hessian_power_iteration(shifted, params, *args, num_iters=num_iters, key=key)[0])
    return max(lam1, lam2), min(lam1, lam2), flat.dtype


def lr_advice(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *args: Any,
    method: str = "lanczos",
    num_iters: int = 100,
    key: jax.Array | None = None,
) -> LRAdvice:
    r"""Step sizes for GD and heavy ball from the Hessian's extreme eigenvalues at ``params``.

    For the local quadratic model with Hessian spectrum in
    $[\lambda_{min}, \lambda_{max}]$ and $\kappa = \lambda_{max}/\lambda_{min}$
    (seed 003; Polyak, 1964):

    .. math::
        \eta_{max} = \frac{2}{\lambda_{max}}, \quad
        \eta^* = \frac{2}{\lambda_{min}+\lambda_{max}}, \quad
        R_{GD} = \frac{\kappa-1}{\kappa+1}, \quad
        \eta_{hb} = \frac{4}{(\sqrt{\lambda_{max}}+\sqrt{\lambda_{min}})^2}, \quad
        \beta_{hb} = \Big(\frac{\sqrt\kappa-1}{\sqrt\kappa+1}\Big)^2 ,

    with heavy-ball rate $\sqrt{\beta_{hb}}$. Use them as
    ``gx.sgd(adv.eta_opt)`` and ``gx.sgd(adv.eta_hb, momentum=adv.beta_hb)``
    (gradtx's momentum $t = g + \beta t$, $w \mathrel{-}= \eta t$ is Polyak's
    $w_{k+1} = w_k - \eta g_k + \beta (w_k - w_{k-1})$).

    Only at a point with $\lambda_{min} > 0$ are all fields defined
    (``convex=True``). If $\lambda_{min} \le 0$ (a saddle, a non-convex region,
    or a singular Hessian) $\kappa$, $\eta^*$ and the rates are None and
    ``convex=False``; $\eta_{max}$ is still given when $\lambda_{max} > 0$.
    $|\lambda_{min}| \le 100\,\varepsilon\,|\lambda_{max}|$ ($\varepsilon$
    the machine epsilon of the params' dtype) counts as 0: float32 cannot
    resolve a larger $\kappa$. ``note`` says which case applies.

    The eigenvalues come from a compiled solver; the advice itself is plain
    Python floats (call it outside ``jit``).

    Args:
      loss_fn: ``(params, *args) -> scalar``.
      params: the point: a pytree of real floating arrays (float64 for
        accurate small eigenvalues).
      *args: passed to ``loss_fn``: a mini-batch gives that batch's Hessian.
      method: ``"lanczos"`` (default: both ends at once, see
        :func:`hessian_lanczos`), ``"power"`` (:func:`hessian_power_iteration`, then again on
        $H - \lambda_1 I$ for the other end; $\lambda_{min}$ is then only
        accurate to about ``tol`` $\cdot \lambda_{max}$) or ``"dense"``
        (``jax.hessian`` and ``eigvalsh``: exact, for small models only).
      num_iters: iterations of the solver (default 100; unused by ``"dense"``).
      key: PRNG key for the solver's start vector (default ``jax.random.key(0)``).

    Returns:
      An :class:`LRAdvice`; ``print`` it for a summary.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda w: 0.5 * (w[0] ** 2 + 100 * w[1] ** 2)   # seed 003: kappa = 100
      >>> adv = gx.lr_advice(loss, jnp.zeros(2, jnp.float32))
      >>> print(f"{adv.eta_opt:.5f} {adv.gd_rate:.4f} {adv.beta_hb:.4f}")
      0.01980 0.9802 0.6694

    References:
      Polyak, *Some methods of speeding up the convergence of iteration
      methods*, 1964; Nesterov, *Introductory Lectures on Convex
      Optimization*, 2004, Sec. 1.2.3 and 2.1.
    """
    _check_params(loss_fn, params, "lr_advice")
    if method not in METHODS:
        raise ValueError(f"lr_advice: `method` must be one of {METHODS}, got {method!r}.")
    hi, lo, dtype = _extremes(loss_fn, params, args, method, num_iters, key)
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise ValueError(
            f"lr_advice: the Hessian eigenvalue estimates are not finite ({hi}, {lo}); "
            f"check that `loss_fn` is finite and twice differentiable at `params`."
        )
    zero = 100 * float(jnp.finfo(dtype).eps) * max(abs(hi), abs(lo))
    none = dict(kappa=None, eta_opt=None, gd_rate=None, eta_hb=None, beta_hb=None, hb_rate=None)
    if hi <= zero:
        return LRAdvice(
            hi, lo, eta_max=None, convex=False, method=method, **none,
            note="lambda_max <= 0: no direction of positive curvature (a local maximum, a concave "
            "region or a flat point); the quadratic model gives no step size here.",
        )
    eta_max = 2 / hi
    if lo < -zero:
        return LRAdvice(
            hi, lo, eta_max=eta_max, convex=False, method=method, **none,
            note="lambda_min < 0: a saddle or non-convex region; GD moves away along negative-curvature "
            "directions at any step, so kappa, eta* and the rates are undefined. eta_max = 2/lambda_max "
            "still bounds stable steps along the positive-curvature directions.",
        )
    if lo <= zero:
        return LRAdvice(
            hi, lo, eta_max=eta_max, convex=False, method=method, **none,
            note="lambda_min ~ 0: the Hessian is singular here (flat directions, kappa = infinity), so GD "
            "has no linear rate and eta*, the rates and the heavy-ball optimum are undefined. "
            "eta_max = 2/lambda_max still applies.",
        )
    kappa = hi / lo
    sk = math.sqrt(kappa)
    hb_rate = (sk - 1) / (sk + 1)
    return LRAdvice(
        lambda_max=hi,
        lambda_min=lo,
        kappa=kappa,
        eta_max=eta_max,
        eta_opt=2 / (lo + hi),
        gd_rate=(hi - lo) / (hi + lo),  # = (kappa-1)/(kappa+1)
        eta_hb=4 / (math.sqrt(hi) + math.sqrt(lo)) ** 2,
        beta_hb=hb_rate**2,
        hb_rate=hb_rate,
        convex=True,
        method=method,
        note="lambda_min > 0: locally strongly convex; the rates hold for the quadratic model at this point.",
    )
