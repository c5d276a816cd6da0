r"""Backtracking (Armijo) line search: a step size chosen per update.

Nocedal & Wright, *Numerical Optimization* (2nd ed., 2006), Algorithm 3.1: start
from a guess $\eta$ and shrink it by $\rho$ until the sufficient-decrease
(Armijo) condition holds along the incoming direction $u$. The numbers are
hyperparameter leaves; only ``max_backtracking_steps`` (the bound of the
``lax.while_loop``) and the flags are static.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import Check, hyper, static
from gradtx.core import tree as gt
from gradtx.transforms._line import add_scaled as _add_scaled, objective as _objective, slope as _slope

__all__ = [
    "BacktrackingLinesearchInfo",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByBacktrackingLinesearch",
    "scale_by_backtracking_linesearch",
]

OPEN_UNIT = Check("in (0, 1)", lambda a: (a > 0) & (a < 1))
_WHERE = "gx.scale_by_backtracking_linesearch"


class BacktrackingLinesearchInfo(NamedTuple):
    """Diagnostics of the last line search (optax's fields).

    Attributes:
      num_linesearch_steps: function evaluations made (int32).
      decrease_error: $\\max(0, f(x+\\eta u) - (1+\\delta) f(x) - c\\eta\\langle u,\\nabla f\\rangle)$
        at the returned step: 0 when the Armijo condition holds, ``inf`` when
        every trial gave a non-finite value (the step is then 0).
    """

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """State of :func:`scale_by_backtracking_linesearch`.

    Attributes:
      learning_rate: the accepted step size $\\eta_k$ (0 if the search failed on
        non-finite values); the next search starts from $\\min(\\gamma\\eta_k, \\eta_{max})$.
      value: $f$ at the new parameters $x + \\eta_k u$.
      grad: $\\nabla f$ there when ``store_grad=True``, else None.
      info: :class:`BacktrackingLinesearchInfo`.
      count: updates so far when a hyperparameter is a schedule, else None.
    """

    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    info: BacktrackingLinesearchInfo
    count: jax.Array | None = None


class _Search(NamedTuple):
    learning_rate: jax.Array
    new_value: jax.Array
    decrease_error: jax.Array
    iter_num: jax.Array


class ScaleByBacktrackingLinesearch(GradientTransformation):
    r"""Armijo backtracking line search (see :func:`scale_by_backtracking_linesearch`)."""

    gx_name = "scale_by_backtracking_linesearch"
    max_backtracking_steps: int = static()
    slope_rtol: Hyper = hyper(1e-4, UNIT_INTERVAL)
    decrease_factor: Hyper = hyper(0.8, OPEN_UNIT)
    increase_factor: Hyper = hyper(1.5, POSITIVE)
    max_learning_rate: Hyper = hyper(1.0, POSITIVE)
    atol: Hyper = hyper(0.0, NONNEGATIVE)
    rtol: Hyper = hyper(0.0, NONNEGATIVE)
    store_grad: bool = static(False)
    verbose: bool = static(False)

    def init(self, params):
        leaves = jax.tree.leaves(params)
        if not leaves:
            raise ValueError(f"{_WHERE}: `params` has no array leaves.")
        dt = jnp.real(jnp.zeros((), jnp.result_type(leaves[0]))).dtype
        return ScaleByBacktrackingLinesearchState(
            learning_rate=jnp.ones([], dt),
            value=jnp.full([], jnp.inf, dt),
            grad=gt.zeros_like(params) if self.store_grad else None,
            info=BacktrackingLinesearchInfo(jnp.zeros([], jnp.int32), jnp.full([], jnp.inf, dt)),
            count=schedule_count(self),
        )

    def update(self, updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
        fn = _objective(_WHERE, params, value, value_fn, extra_args)
        h = evaluate(self, state.count)
        dt = jnp.result_type(state.learning_rate)
        value = jnp.real(jnp.asarray(value)).astype(dt)
        if grad is None:  # d/deta f(x + eta u) at 0, by one forward-mode pass
            slope = jax.jvp(lambda lr: fn(_add_scaled(params, lr, updates)), (jnp.zeros([], dt),), (jnp.ones([], dt),))[1]
        else:
            gt.check_same_structure(updates, grad, "updates", "grad", _WHERE)
            slope = _slope(updates, grad)
        slope = jnp.real(slope).astype(dt)

        def error(lr, new_value):
            err = new_value - (1 + h.rtol) * value - lr * h.slope_rtol * slope
            return jnp.maximum(jnp.where(jnp.isnan(err), jnp.inf, err), 0).astype(dt)

        def cond(s):
            return ~(s.decrease_error <= h.atol) & (s.iter_num <= self.max_backtracking_steps)

        def body(s):
            lr = jnp.where(s.iter_num > 0, h.decrease_factor * s.learning_rate, s.learning_rate).astype(dt)
            new_value = jnp.real(fn(_add_scaled(params, lr, updates))).astype(dt)
            return _Search(lr, new_value, error(lr, new_value), s.iter_num + 1)

        guess = jnp.minimum(h.increase_factor * state.learning_rate, h.max_learning_rate).astype(dt)
        init = _Search(guess, value, jnp.full([], jnp.inf, dt), jnp.zeros([], jnp.int32))
        s = jax.lax.while_loop(cond, body, init)
        failed = jnp.isinf(s.decrease_error)  # only non-finite values: do not move
        lr = jnp.where(failed, jnp.zeros([], dt), s.learning_rate)
        new_value = jnp.where(failed, value, s.new_value)
        new_grad = None
        if self.store_grad:
            new_grad = gt.cast_like(jax.grad(lambda p: jnp.real(fn(p)))(_add_scaled(params, lr, updates)), state.grad)
        if self.verbose:
            jax.lax.cond(
                s.decrease_error > h.atol,
                lambda: jax.debug.print(
                    "INFO: gx.scale_by_backtracking_linesearch: no step size with sufficient decrease "
                    "(value {v}, slope {sl}, step {lr}, decrease error {e}).",
                    v=value, sl=slope, lr=lr, e=s.decrease_error,
                ),
                lambda: None,
            )
        new_state = ScaleByBacktrackingLinesearchState(
            learning_rate=lr,
            value=new_value,
            grad=new_grad,
            info=BacktrackingLinesearchInfo(s.iter_num, s.decrease_error),
            count=next_count(state.count),
        )
        scaled = gt.tree_map_none(lambda u: (lr * u).astype(jnp.result_type(u)), updates)
        return scaled, new_state


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: Hyper = 1e-4,
    decrease_factor: Hyper = 0.8,
    increase_factor: Hyper = 1.5,
    max_learning_rate: Hyper = 1.0,
    atol: Hyper = 0.0,
    rtol: Hyper = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> ScaleByBacktrackingLinesearch:
    r"""Backtracking line search ensuring sufficient decrease (the Armijo condition).

    Scales the incoming update direction $u$ (e.g. $-\nabla f$ from
    ``gx.sgd(1.0)``) by the first step size $\eta$ of
    $\eta_0, \rho\eta_0, \rho^2\eta_0, \dots$ that satisfies

    .. math::
        f(x + \eta u) \le (1+\delta) f(x) + c\,\eta\,\langle u, \nabla f(x)\rangle + \epsilon ,

    with $c$ = ``slope_rtol``, $\rho$ = ``decrease_factor``, $\delta$ = ``rtol``
    and $\epsilon$ = ``atol``. The first guess is
    $\eta_0 = \min(\gamma\,\eta_{k-1}, \eta_{max})$ ($\gamma$ = ``increase_factor``,
    $\eta_{-1} = 1$). At most ``max_backtracking_steps`` + 1 evaluations of $f$
    are made; if none satisfies the condition the last trial is used (as optax),
    and if every trial gave a non-finite value the step is 0.

    ``update`` takes extra keyword arguments: ``value`` ($f(x)$), ``value_fn``
    (``value_fn(params, **kw) -> scalar``; any other extra argument whose name
    ``value_fn`` accepts is passed on, e.g. a batch) and optionally ``grad``
    ($\nabla f(x)$ as ``jax.grad`` returns it; without it the slope $\langle u, \nabla f\rangle$ is computed
    by one ``jax.jvp`` of ``value_fn``). The direction must be a descent
    direction ($\langle u, \nabla f\rangle < 0$), as for ``sgd`` without momentum.

    Differences from optax (same name, signature, defaults and numerics
    otherwise): ``grad`` is optional; extra arguments ``value_fn`` does not take
    are ignored rather than rejected, since a gradtx ``chain`` hands every
    member the same extra arguments; after a failure on non-finite values the
    state's ``value`` is $f(x)$ (the parameters did not move) rather than the
    non-finite trial value.

    Args:
      max_backtracking_steps: the most step-size reductions per update (static:
        it bounds the ``lax.while_loop``).
      slope_rtol: Armijo constant $c \in [0, 1)$.
      decrease_factor: $\rho \in (0, 1)$, the backtracking factor.
      increase_factor: $\gamma > 0$: the next search starts at $\gamma$ times the
        last accepted step (``inf``: always at ``max_learning_rate``).
      max_learning_rate: $\eta_{max} > 0$, the cap on the first guess.
      atol: absolute tolerance $\epsilon \ge 0$ of the condition.
      rtol: relative tolerance $\delta \ge 0$ of the condition.
      store_grad: also store $\nabla f$ at the new parameters in the state (one
        more gradient evaluation per update), for objectives without data.
      verbose: print (``jax.debug.print``) when the search fails.

    Returns:
      A :class:`~gradtx.GradientTransformation`; state
      :class:`ScaleByBacktrackingLinesearchState` (``learning_rate`` is the
      accepted step, ``value`` the new objective value).

    Every numeric argument but ``max_backtracking_steps`` is a pytree leaf:
    ``jax.vmap`` maps over a batch of ``slope_rtol`` or ``decrease_factor``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum(w ** 2)
      >>> opt = gx.chain(gx.sgd(1.0), gx.scale_by_backtracking_linesearch(15))
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> state = opt.init(w)
      >>> value, grad = jax.value_and_grad(f)(w)
      >>> updates, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
      >>> print(f"{float(state[1].learning_rate):.2f}, {float(state[1].value):.2f}")
      0.80, 5.04

    Here $f(w - 2\eta w) = (1-2\eta)^2 f(w)$, so the condition reads
    $\eta \le 1 - c$: from $\eta_0 = 1$ the first accepted step is $0.8$.

    References:
      Armijo, *Minimization of functions having Lipschitz continuous first
      partial derivatives*, Pacific J. Math. 16(1), 1966.
      Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithm 3.1.
      Vaswani et al., *Painless Stochastic Gradient*, NeurIPS 2019.
    """
    steps = max_backtracking_steps
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(
            f"{_WHERE}: `max_backtracking_steps` must be a Python int >= 0 (it bounds a "
            f"lax.while_loop, so it is static), got {max_backtracking_steps!r}."
        )
    return ScaleByBacktrackingLinesearch(
        int(steps), slope_rtol, decrease_factor, increase_factor,
        max_learning_rate, atol, rtol, bool(store_grad), bool(verbose),
    )
