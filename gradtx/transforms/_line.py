"""Pieces every line search shares: the objective's extra arguments, points on the line, slopes."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gradtx.core import tree as gt
from gradtx.core.base import NO_PARAMS_MSG
from gradtx.core.interop import missing_extra_args_message

HOW = (
    "call `opt.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)` with "
    "`value, grad = jax.value_and_grad(loss_fn)(params)` (or, for a deterministic loss, "
    "`gx.value_and_grad_from_state(loss_fn)(params, state=state)`) and `value_fn` the objective "
    "(params, **data) -> scalar."
)


def objective(where: str, params: Any, value: Any, value_fn: Any, extra_args: dict) -> Callable:
    """``value_fn`` with the extra arguments it takes bound, after checking what a search needs.

    Raises:
      ValueError: ``value`` or ``value_fn`` is missing (both named), ``params`` is None, or
        ``value_fn`` does not return a scalar.
      TypeError: ``value_fn`` is not callable.
    """
    missing = [n for n, v in (("value", value), ("value_fn", value_fn)) if v is None]
    if missing:
        raise ValueError(missing_extra_args_message(where, missing, HOW))
    if params is None:
        raise ValueError(f"{where}: {NO_PARAMS_MSG}")
    if not callable(value_fn):
        raise TypeError(f"{where}: `value_fn` must be a function params -> scalar, got {value_fn!r}.")
    fn = functools.partial(value_fn, **fn_kwargs(value_fn, extra_args))
    out = jax.eval_shape(fn, params)
    if jnp.shape(out) != ():
        raise ValueError(f"{where}: `value_fn` must return a scalar, got shape {jnp.shape(out)}.")
    return fn


def fn_kwargs(value_fn: Callable, extra_args: dict) -> dict:
    """The extra arguments ``value_fn`` accepts by name (all if it takes ``**kwargs``).

    A gradtx ``chain`` hands every member the same extra arguments, so the
    ones ``value_fn`` does not take are dropped rather than rejected.
    """
    try:
        params = inspect.signature(value_fn).parameters.values()
    except (TypeError, ValueError):
        return dict(extra_args)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(extra_args)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in extra_args.items() if k in names}


def slope(updates: Any, grad: Any) -> jax.Array:
    r"""The directional derivative $\sum \mathrm{Re}(g\, u)$ of $f$ along ``updates``.

    For complex leaves ``g`` is ``jax.grad``'s output ($\partial_x f - i\,\partial_y f$),
    so $\mathrm{Re}(g u)$ is the derivative along $u$; for real leaves it is
    $\langle u, g\rangle$. Accumulated as :func:`~gradtx.core.tree.real_inner`.
    """
    return gt.real_inner(gt.tree_map_none(jnp.conj, grad), updates)


def add_scaled(params: Any, lr: jax.Array, updates: Any) -> Any:
    """``params + lr * updates`` leaf by leaf, in each parameter's dtype."""
    return gt.tree_map_none(lambda p, u: (p + lr * u).astype(jnp.result_type(p)), params, updates)
