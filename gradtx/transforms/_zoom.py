r"""The zoom line search's two phases (Nocedal & Wright, Algorithms 3.5 and 3.6).

A search for a step $\eta$ along a direction $u$ from $w$ that satisfies the
strong Wolfe conditions on $\phi(\eta) = f(w + \eta u)$:

.. math::
    \phi(\eta) \le \phi(0) + c_1 \eta \phi'(0) + \epsilon, \qquad
    |\phi'(\eta)| \le c_2 |\phi'(0)| + \epsilon .

Phase 1 (:func:`_bracket`) grows the step by ``increase_factor`` until an
interval is known to contain such a step; phase 2 (:func:`_zoom`) shrinks it,
trying in turn the minimiser of a cubic through the interval's ends and the
last discarded end, of a quadratic through the low end, and the midpoint
(each only if it lies well inside the interval, as in SciPy). The decrease
test switches to Hager & Zhang's approximate Wolfe condition where values are
within ``approx_dec_rtol`` of $\phi(0)$, where the Armijo test is lost in
rounding. Every branch is taken with ``jnp.where`` or ``lax.cond``: one
function evaluation per iteration, one trace for any constants.

Each decision (which end moves, which interpolant is used, when the search
stops or falls back to the best sufficiently-decreasing step seen) is the one
optax's ``zoom_linesearch`` makes, so the two accept the same steps.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.transforms._line import add_scaled, slope


class Search(NamedTuple):
    """The line search's loop state; ``stepsize``/``value``/``grad`` are the last point tried."""

    count: jax.Array
    stepsize: jax.Array
    value: jax.Array
    grad: Any
    slope: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array
    interval_found: jax.Array
    done: jax.Array
    failed: jax.Array
    low: jax.Array
    value_low: jax.Array
    slope_low: jax.Array
    high: jax.Array
    value_high: jax.Array
    slope_high: jax.Array
    cubic_ref: jax.Array
    value_cubic_ref: jax.Array
    safe_stepsize: jax.Array
    safe_value: jax.Array
    safe_grad: Any


class Line(NamedTuple):
    """What the search holds fixed: the start, the direction, $\\phi(0)$, $\\phi'(0)$, the first guess."""

    params: Any
    updates: Any
    value: jax.Array
    slope: jax.Array
    guess: jax.Array


def start(line: Line, grad: Any) -> Search:
    """The loop state before any trial step: every end at $\\eta = 0$."""
    dt = line.value.dtype
    zero, inf, no = jnp.zeros([], dt), jnp.full([], jnp.inf, dt), jnp.zeros([], bool)
    v, s = line.value, line.slope
    return Search(
        jnp.zeros([], jnp.int32), zero, v, grad, s, inf, inf, no, no, no,
        zero, v, s, zero, v, s, zero, v, zero, v, grad,
    )


def _cubic_minimiser(a, fa, fpa, b, fb, c, fc):
    r"""The critical point of the cubic through $(a, f_a)$ with slope $f'_a$, $(b, f_b)$, $(c, f_c)$.

    NaN when the cubic has none (then the caller ignores it).
    """
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    rb, rc = fb - fa - fpa * db, fc - fa - fpa * dc
    A = (dc**2 * rb - db**2 * rc) / denom
    B = (-(dc**3) * rb + db**3 * rc) / denom
    return a + (-B + jnp.sqrt(B * B - 3.0 * A * fpa)) / (3.0 * A)


def _quadratic_minimiser(a, fa, fpa, b, fb):
    r"""The critical point of the quadratic through $(a, f_a)$ with slope $f'_a$ and $(b, f_b)$."""
    db = b - a
    curvature = (fb - fa - fpa * db) / db**2
    return a - fpa / (2.0 * curvature)


class Rules(NamedTuple):
    """The search's constants, evaluated for this update (each a scalar leaf)."""

    max_steps: jax.Array
    max_stepsize: jax.Array | None
    tol: jax.Array
    increase_factor: jax.Array
    slope_rtol: jax.Array
    curv_rtol: jax.Array
    approx_dec_rtol: jax.Array | None
    interval_threshold: jax.Array


def _errors(r: Rules, line: Line, eta, value, slope_eta):
    """(decrease error, curvature error): 0 where the condition holds, ``inf`` for NaN."""
    dec = value - line.value - r.slope_rtol * eta * line.slope
    if r.approx_dec_rtol is not None:  # Hager & Zhang's approximate Wolfe condition
        approx = slope_eta - (2 * r.slope_rtol - 1.0) * line.slope
        near = value - line.value - r.approx_dec_rtol * jnp.abs(line.value)
        dec = jnp.minimum(jnp.maximum(approx, near), dec)
    curv = jnp.abs(slope_eta) - r.curv_rtol * jnp.abs(line.slope)

    def clean(e):
        e = jnp.maximum(e, 0.0)
        return jnp.where(jnp.isnan(e), jnp.inf, e)

    return clean(dec), clean(curv)


def _evaluate(value_and_grad: Callable, line: Line, eta, dt):
    """$(\\phi(\\eta), \\nabla f(w + \\eta u), \\phi'(\\eta))$, scalars in ``dt``."""
    value, grad = value_and_grad(add_scaled(line.params, eta, line.updates))
    value = jnp.real(jnp.asarray(value)).astype(dt)
    grad = gt.cast_like(grad, line.params)
    return value, grad, slope(line.updates, grad).astype(dt)


def _pick(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _bracket(s: Search, r: Rules, line: Line, value_and_grad: Callable) -> Search:
    """Phase 1: try a larger step until an interval holding a Wolfe point is known."""
    dt = s.stepsize.dtype
    eta = jnp.where(s.count == 0, line.guess, r.increase_factor * s.stepsize).astype(dt)
    if r.max_stepsize is None:
        capped = jnp.zeros([], bool)
    else:
        capped = eta >= r.max_stepsize
        eta = jnp.minimum(eta, r.max_stepsize).astype(dt)
    value, grad, slope_eta = _evaluate(value_and_grad, line, eta, dt)
    dec, curv = _errors(r, line, eta, value, slope_eta)
    error = jnp.maximum(dec, curv)
    safe = _pick(dec <= r.tol, (eta, value, grad), (s.safe_stepsize, s.safe_value, s.safe_grad))
    # The new point is the high end if it rose or failed Armijo; the low end if it climbs from there.
    new_is_high = (dec > 0.0) | ((value >= s.value) & (s.count > 0))
    new_is_low = (slope_eta >= 0.0) & ~new_is_high
    previous, new = (s.stepsize, s.value, s.slope), (eta, value, slope_eta)
    low, high = _pick(new_is_low, (new, previous), (previous, new))
    found = new_is_high | new_is_low | (error <= r.tol)
    done = (error <= r.tol) | (capped & ~found)
    return Search(
        s.count + 1, eta, value, grad, slope_eta, dec, curv, found, done,
        (s.count + 1 >= r.max_steps) & ~done,
        *low, *high, low[0], low[1], *safe,
    )


def _zoom(s: Search, r: Rules, line: Line, value_and_grad: Callable) -> Search:
    """Phase 2: shrink ``[low, high]`` by interpolation (cubic, quadratic) or bisection."""
    dt = s.stepsize.dtype
    width = jnp.abs(s.high - s.low)
    left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
    cubic = _cubic_minimiser(s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref, s.value_cubic_ref)
    use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
    quad = _quadratic_minimiser(s.low, s.value_low, s.slope_low, s.high, s.value_high)
    use_quad = ~use_cubic & (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
    eta = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (s.low + s.high) / 2.0)).astype(dt)
    value, grad, slope_eta = _evaluate(value_and_grad, line, eta, dt)
    dec, curv = _errors(r, line, eta, value, slope_eta)
    done = jnp.maximum(dec, curv) <= r.tol
    better = (dec <= r.tol) & (value < s.safe_value)
    safe = _pick(better, (eta, value, grad), (s.safe_stepsize, s.safe_value, s.safe_grad))
    mid = (eta, value, slope_eta)
    low_end, high_end = (s.low, s.value_low, s.slope_low), (s.high, s.value_high, s.slope_high)
    mid_is_high = (dec > 0.0) | (value >= s.value_low)
    low_is_high = (slope_eta * (s.high - s.low) >= 0.0) & ~mid_is_high
    high = _pick(mid_is_high, mid, _pick(low_is_high, low_end, high_end))
    low = _pick(mid_is_high, low_end, mid)
    ref = _pick(mid_is_high | low_is_high, high_end[:2], low_end[:2])
    stuck = (s.count + 1 >= r.max_steps) | ((width <= r.interval_threshold) & (safe[0] > 0.0))
    return Search(
        s.count + 1, eta, value, grad, slope_eta, dec, curv, s.interval_found, done,
        stuck & ~done, *low, *high, *ref, *safe,
    )


def _fall_back(s: Search) -> Search:
    """On failure, the best sufficiently-decreasing step seen (or 0 if every trial was non-finite)."""
    use_safe = (s.safe_stepsize > 0.0) | jnp.isinf(s.decrease_error)
    eta, value, grad = _pick(use_safe, (s.safe_stepsize, s.safe_value, s.safe_grad), (s.stepsize, s.value, s.grad))
    return s._replace(stepsize=eta, value=value, grad=grad)


def run(line: Line, grad: Any, r: Rules, value_and_grad: Callable) -> Search:
    """The whole search: one ``lax.while_loop`` of at most ``r.max_steps`` evaluations."""

    def body(s):
        s = jax.lax.cond(
            s.interval_found,
            lambda t: _zoom(t, r, line, value_and_grad),
            lambda t: _bracket(t, r, line, value_and_grad),
            s,
        )
        return jax.lax.cond(s.failed, _fall_back, lambda t: t, s)

    return jax.lax.while_loop(lambda s: ~(s.done | s.failed), body, start(line, grad))
