r"""Zoom line search (strong Wolfe conditions), and reusing its value and gradient.

Nocedal & Wright, *Numerical Optimization* (2nd ed., 2006), Algorithms 3.5-3.6,
with Hager & Zhang's approximate Wolfe condition. The algorithm is in
:mod:`gradtx.transforms._zoom`; this module is the transformation around it.
Every constant (tolerances, factors, the step bound, the number of
evaluations) is a hyperparameter leaf; only the initial-guess strategy, the
presence of the optional bounds and ``verbose`` are static.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import GradientTransformation, next_count, schedule_count
from gradtx.core.hyperparams import NONNEGATIVE, POSITIVE, POSITIVE_INTEGER, UNIT_INTERVAL, Hyper, evaluate
from gradtx.core.module import Check, hyper, static
from gradtx.transforms import _zoom
from gradtx.transforms._line import objective, slope

__all__ = [
    "ZoomLinesearchInfo",
    "ScaleByZoomLinesearchState",
    "ScaleByZoomLinesearch",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
]

_WHERE = "gx.scale_by_zoom_linesearch"
_GUESSES = ("one", "keep")
ABOVE_ONE = Check("> 1", lambda a: a > 1)


class ZoomLinesearchInfo(NamedTuple):
    """Diagnostics of the last search (optax's fields).

    Attributes:
      num_linesearch_steps: function evaluations made (int32).
      decrease_error: how far the accepted step is from sufficient decrease
        (0: satisfied; ``inf``: the value was not finite).
      curvature_error: how far it is from the curvature condition (0: satisfied).
        A positive value after a search capped by ``max_learning_rate`` or
        ``max_linesearch_steps`` is common and harmless; a positive
        ``decrease_error`` means the step does not decrease $f$ enough.
    """

    num_linesearch_steps: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


class ScaleByZoomLinesearchState(NamedTuple):
    """State of :func:`scale_by_zoom_linesearch`.

    Attributes:
      learning_rate: the accepted step $\\eta_k$ (the next search starts there
        when ``initial_guess_strategy="keep"``).
      value: $f(w + \\eta_k u)$, the objective at the new parameters.
      grad: $\\nabla f(w + \\eta_k u)$ (reuse both with :func:`value_and_grad_from_state`).
      info: :class:`ZoomLinesearchInfo`.
      count: updates so far when a hyperparameter is a schedule, else None.
    """

    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    info: ZoomLinesearchInfo
    count: jax.Array | None = None


def _scalar_dtype(params: Any) -> Any:
    """The search's arithmetic dtype: the first leaf's real dtype, at least float32."""
    first = jnp.result_type(jax.tree.leaves(params)[0])
    return jnp.promote_types(jnp.finfo(first).dtype, jnp.float32)


class ScaleByZoomLinesearch(GradientTransformation):
    r"""Zoom line search (see :func:`scale_by_zoom_linesearch`)."""

    gx_name = "scale_by_zoom_linesearch"
    max_linesearch_steps: Hyper = hyper(20, POSITIVE_INTEGER)
    max_learning_rate: Hyper | None = hyper(None, POSITIVE)
    tol: Hyper = hyper(0.0, NONNEGATIVE)
    increase_factor: Hyper = hyper(2.0, ABOVE_ONE)
    slope_rtol: Hyper = hyper(1e-4, UNIT_INTERVAL)
    curv_rtol: Hyper = hyper(0.9, POSITIVE)
    approx_dec_rtol: Hyper | None = hyper(1e-6, NONNEGATIVE)
    stepsize_precision: Hyper = hyper(1e-5, NONNEGATIVE)
    initial_guess_strategy: str = static("keep")
    verbose: bool = static(False)

    def __post_init__(self):
        super().__post_init__()
        if self.initial_guess_strategy not in _GUESSES:
            raise ValueError(
                f"{_WHERE}: `initial_guess_strategy` must be 'one' or 'keep', got {self.initial_guess_strategy!r}."
            )
        c1, c2 = self.slope_rtol, self.curv_rtol
        if not isinstance(c1, jax.core.Tracer) and not isinstance(c2, jax.core.Tracer):
            try:
                ordered = bool(jnp.all(jnp.asarray(c1) < jnp.asarray(c2)))
            except (TypeError, jax.errors.ConcretizationTypeError):  # schedules: not checkable here
                ordered = True
            if not ordered:
                raise ValueError(
                    f"{_WHERE}: `slope_rtol` ({c1}) must be below `curv_rtol` ({c2}): "
                    "0 <= c1 < c2 is what makes a step satisfying both Wolfe conditions exist."
                )

    def init(self, params):
        if not jax.tree.leaves(params):
            raise ValueError(f"{_WHERE}: `params` has no array leaves.")
        dt = _scalar_dtype(params)
        inf = jnp.full([], jnp.inf, dt)
        return ScaleByZoomLinesearchState(
            learning_rate=jnp.ones([], dt),
            value=inf,
            grad=gt.zeros_like(params),
            info=ZoomLinesearchInfo(jnp.zeros([], jnp.int32), inf, inf),
            count=schedule_count(self),
        )

    def update(self, updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
        fn = objective(_WHERE, params, value, value_fn, extra_args)
        value_and_grad = jax.value_and_grad(lambda p: jnp.real(fn(p)))
        if grad is None:  # one more evaluation: f and its gradient at params
            _, grad = value_and_grad(params)
        gt.check_same_structure(updates, grad, "updates", "grad", _WHERE)
        h = evaluate(self, state.count)
        dt = jnp.result_type(state.learning_rate)
        grad = gt.cast_like(grad, params)
        guess = jnp.ones([], dt) if self.initial_guess_strategy == "one" else state.learning_rate
        line = _zoom.Line(params, updates, jnp.real(jnp.asarray(value)).astype(dt), slope(updates, grad).astype(dt), guess)
        rules = _zoom.Rules(
            h.max_linesearch_steps, h.max_learning_rate, h.tol, h.increase_factor, h.slope_rtol,
            h.curv_rtol, h.approx_dec_rtol, h.stepsize_precision,
        )
        s = _zoom.run(line, grad, rules, value_and_grad)
        if self.verbose:
            jax.lax.cond(
                (s.decrease_error > h.tol) | (s.curvature_error > h.tol),
                lambda: jax.debug.print(
                    "INFO: gx.scale_by_zoom_linesearch: no step satisfies both Wolfe conditions "
                    "(value {v}, slope {sl}, step {lr}, decrease error {d}, curvature error {c}); "
                    "a positive decrease error means the step does not decrease the objective enough.",
                    v=line.value, sl=line.slope, lr=s.stepsize, d=s.decrease_error, c=s.curvature_error,
                ),
                lambda: None,
            )
        lr = s.stepsize
        new_state = ScaleByZoomLinesearchState(
            learning_rate=lr,
            value=s.value,
            grad=s.grad,
            info=ZoomLinesearchInfo(s.count, s.decrease_error, s.curvature_error),
            count=next_count(state.count),
        )
        scaled = gt.tree_map_none(lambda u: (lr * u).astype(jnp.result_type(u)), updates)
        return scaled, new_state


def scale_by_zoom_linesearch(
    max_linesearch_steps: Hyper,
    max_learning_rate: Hyper | None = None,
    tol: Hyper = 0.0,
    increase_factor: Hyper = 2.0,
    slope_rtol: Hyper = 1e-4,
    curv_rtol: Hyper = 0.9,
    approx_dec_rtol: Hyper | None = 1e-6,
    stepsize_precision: Hyper = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> ScaleByZoomLinesearch:
    r"""Line search for a step satisfying the strong Wolfe conditions.

    Scales the incoming direction $u$ by a step $\eta$ such that, for the
    objective $f$ at parameters $w$,

    .. math::
        f(w + \eta u) &\le f(w) + c_1\,\eta\,\langle u, \nabla f(w)\rangle + \epsilon
        \quad\text{(sufficient decrease)},\\
        |\langle \nabla f(w + \eta u), u\rangle| &\le c_2\,|\langle \nabla f(w), u\rangle| + \epsilon
        \quad\text{(curvature)},

    with $c_1$ = ``slope_rtol``, $c_2$ = ``curv_rtol``, $\epsilon$ = ``tol``.
    Phase 1 tries $\eta_0, \gamma\eta_0, \gamma^2\eta_0, \dots$ ($\gamma$ =
    ``increase_factor``, capped at ``max_learning_rate``) until an interval is
    known to hold such a step; phase 2 narrows it by cubic or quadratic
    interpolation, or bisection. Where values come within
    $c_3|f(w)|$ of $f(w)$ ($c_3$ = ``approx_dec_rtol``) the decrease test is
    Hager & Zhang's approximate one,
    $\langle\nabla f(w+\eta u), u\rangle \le (2c_1 - 1)\langle\nabla f(w), u\rangle + \epsilon$,
    which resolves differences down to machine precision where Armijo's
    resolves only their square root. If ``max_linesearch_steps`` evaluations
    find no Wolfe point, or the interval shrinks below ``stepsize_precision``,
    the step is the best sufficiently-decreasing one seen (or the last tried
    if there is none; 0 if every trial was non-finite).

    ``update`` takes extra keyword arguments: ``value`` ($f(w)$), ``value_fn``
    (``value_fn(params, **kw) -> scalar``; any other extra argument whose name
    it accepts, such as a batch, is passed on) and ``grad`` ($\nabla f(w)$ as
    ``jax.grad`` gives it; if omitted it is computed, one more evaluation).
    The state keeps $f$ and $\nabla f$ at the accepted point: with a
    deterministic objective, :func:`value_and_grad_from_state` hands them to
    the next step instead of recomputing them.

    Defaults, names and numerics are optax's: the same decisions at every
    branch, so the two accept the same steps (tested to 1e-8 in float64 along
    L-BFGS runs). Differences: every constant, ``max_linesearch_steps``
    included, is a pytree leaf (vmap over ``curv_rtol``, schedule ``tol``);
    construction checks $0 \le c_1 < c_2$, ``increase_factor`` $> 1$ and
    ``max_linesearch_steps`` $\ge 1$; ``grad`` is optional; extra arguments
    ``value_fn`` does not take are ignored rather than rejected, since a gradtx
    ``chain`` hands every member the same ones; the slope is
    $\sum\mathrm{Re}(g\,u)$ at every point (optax's first slope conjugates the
    other factor: the two differ for complex parameters only); and the
    search's scalars are at least float32 (bfloat16 parameters search in float32).

    Args:
      max_linesearch_steps: the most function evaluations per update (>= 1).
      max_learning_rate: an upper bound on $\eta$, or None for none. A bound
        can keep the curvature condition from being met.
      tol: $\epsilon \ge 0$, the tolerance of both conditions.
      increase_factor: $\gamma > 1$, the growth of the step in phase 1.
      slope_rtol: $c_1 \in [0, 1)$, below ``curv_rtol``.
      curv_rtol: $c_2 > 0$; ``inf`` drops the curvature condition (a
        backtracking search by interpolation).
      approx_dec_rtol: $c_3 \ge 0$, or None for Armijo's test only.
      stepsize_precision: the interval width below which the best
        sufficiently-decreasing step is accepted.
      initial_guess_strategy: ``"keep"`` (start from the last accepted step;
        for gradient descent) or ``"one"`` (start from 1; for Newton and
        quasi-Newton directions such as :func:`~gradtx.lbfgs`'s). Static.
      verbose: print (``jax.debug.print``) when no Wolfe point was found. Static.

    Returns:
      A :class:`~gradtx.GradientTransformation`; state
      :class:`ScaleByZoomLinesearchState`.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
      >>> opt = gx.chain(gx.sgd(1.0), gx.scale_by_zoom_linesearch(15))
      >>> w = jnp.zeros(3)
      >>> state = opt.init(w)
      >>> value, grad = jax.value_and_grad(f)(w)
      >>> u, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
      >>> print(gx.apply_updates(w, u), float(state[1].learning_rate))
      [1. 1. 1.] 0.5

    Along $-\nabla f$ the quadratic's exact minimiser is $\eta = 1/2$: the
    first trial ($\eta = 1$) overshoots, and the quadratic interpolant finds it.

    References:
      Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithms 3.5-3.6.
      Hager & Zhang, *A new conjugate gradient method with guaranteed descent
      and an efficient line search*, SIAM J. Optim. 16(1), 2005; *Algorithm 851:
      CG_DESCENT*, ACM TOMS 32(1), 2006.
    """
    return ScaleByZoomLinesearch(
        max_linesearch_steps, max_learning_rate, tol, increase_factor, slope_rtol, curv_rtol,
        approx_dec_rtol, stepsize_precision, initial_guess_strategy, bool(verbose),
    )


def _find(state: Any, name: str, path: str = "state") -> list[tuple[str, Any]]:
    """Every NamedTuple field called ``name`` in ``state``, with its path."""
    found = []
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        for field, child in zip(state._fields, state):
            here = f"{path}.{field}"
            if field == name:
                found.append((here, child))
            else:
                found += _find(child, name, here)
    elif isinstance(state, (tuple, list)):
        for i, child in enumerate(state):
            found += _find(child, name, f"{path}[{i}]")
    elif isinstance(state, dict):
        for k, child in state.items():
            found += _find(child, name, f"{path}[{k!r}]")
    return found


def value_and_grad_from_state(value_fn: Callable[..., Any]) -> Callable[..., tuple[jax.Array, Any]]:
    r"""Like ``jax.value_and_grad(value_fn)``, but reuses what a line search stored.

    A line search evaluates $f$ and $\nabla f$ at the point it accepts, which
    is the next step's starting point: for a deterministic objective there is
    no need to evaluate them again. The returned function
    ``(params, *args, state, **kwargs) -> (value, grad)`` returns the
    ``value`` and ``grad`` fields of ``state`` (the optimizer state, searched
    through chains), or computes them with ``jax.value_and_grad(value_fn)``
    when the stored value is not finite (before the first update).

    Raises:
      ValueError: ``state`` has no field ``value`` or ``grad``, has several,
        or its ``grad`` is None (a backtracking search needs ``store_grad=True``).

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
      >>> opt = gx.lbfgs()
      >>> w = jnp.zeros(3)
      >>> state = opt.init(w)
      >>> value_and_grad = gx.value_and_grad_from_state(f)
      >>> for _ in range(2):
      ...     value, grad = value_and_grad(w, state=state)
      ...     u, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
      ...     w = gx.apply_updates(w, u)
      >>> print(w, float(f(w)))
      [1. 1. 1.] 0.0

    Only for objectives that do not change between steps: with a new batch
    each step, call ``jax.value_and_grad`` instead.
    """

    def one(name):
        def get(state):
            hits = _find(state, name)
            if len(hits) != 1:
                where = ", ".join(p for p, _ in hits) or "nowhere"
                raise ValueError(
                    f"gx.value_and_grad_from_state: expected exactly one `{name}` field in the optimizer "
                    f"state, found it {len(hits)} times ({where}). Chain one line search "
                    "(gx.scale_by_zoom_linesearch, or gx.scale_by_backtracking_linesearch with "
                    "store_grad=True), or call jax.value_and_grad(value_fn) instead."
                )
            if hits[0][1] is None:
                raise ValueError(
                    f"gx.value_and_grad_from_state: `{hits[0][0]}` is None: build the line search with "
                    "store_grad=True so that it stores the gradient."
                )
            return hits[0][1]

        return get

    get_value, get_grad = one("value"), one("grad")

    def value_and_grad(params, *args, state, **kwargs):
        value, grad = get_value(state), get_grad(state)

        def fresh(p, a, kw):
            v, g = jax.value_and_grad(value_fn)(p, *a, **kw)
            return jnp.asarray(v).astype(value.dtype), gt.cast_like(g, grad)

        return jax.lax.cond(jnp.isfinite(value), lambda p, a, kw: (value, grad), fresh, params, args, kwargs)

    return value_and_grad
