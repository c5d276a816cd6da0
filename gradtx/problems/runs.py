"""Running an optimizer on a problem: steps to tolerance, and seed 003's table."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from gradtx.core.base import GradientTransformation, apply_updates
from gradtx.problems.functions import Problem, ill_conditioned_quadratic

__all__ = ["RunResult", "steps_to_tolerance", "conditioning_experiment"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`steps_to_tolerance`.

    Attributes:
      steps: updates applied (counted as seed 003 does).
      converged: the loss reached the tolerance.
      diverged: the iterate left the box or became non-finite.
      params: the final parameters.
      loss: the last loss evaluated (before the last update).
    """

    steps: int
    converged: bool
    diverged: bool
    params: Any
    loss: float


@functools.partial(jax.jit, static_argnames=("loss_fn", "max_steps"))
def _run(opt, params, tol, bound, loss_fn, max_steps):
    value_and_grad = jax.value_and_grad(loss_fn)

    def in_box(p):
        leaves = jax.tree.leaves(p)
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x) & (jnp.abs(x) < bound)) for x in leaves]))

    def cond(carry):
        step, p, _, f = carry
        return (f > tol) & (step < max_steps) & in_box(p)

    def body(carry):
        step, p, state, _ = carry
        f, g = value_and_grad(p)
        updates, state = opt.update(g, state, p, value=f, grad=g, value_fn=loss_fn)
        return step + 1, apply_updates(p, updates), state, f.astype(jnp.float32)

    init = (jnp.zeros([], jnp.int32), params, opt.init(params), jnp.asarray(jnp.inf, jnp.float32))
    step, p, _, f = jax.lax.while_loop(cond, body, init)
    return step, p, f, in_box(p)


def steps_to_tolerance(
    opt: GradientTransformation,
    problem: Problem,
    tol: float = 1e-6,
    max_steps: int = 10_000,
    bound: float = 5.0,
    dtype: Any = jnp.float32,
) -> RunResult:
    """Runs ``opt`` on ``problem`` until ``loss <= tol``, counting as seed 003.

    The loop of seed 003: while the last evaluated loss is above ``tol``, the
    step count is below ``max_steps`` and every coordinate satisfies
    ``|w| < bound``: evaluate the loss and gradient, apply one update. The loss
    is evaluated *before* each update, so the count is one more than the index
    of the first iterate with ``loss <= tol``. Each update receives the loss,
    its gradient and the loss function as ``value``, ``grad`` and
    ``value_fn``, so line searches (:func:`~gradtx.lbfgs`) and Polyak steps
    run too; optimizers that need none of them ignore them.

    The whole loop is one compiled ``lax.while_loop``; ``opt`` is an argument,
    so runs that differ only in hyperparameter values share the compilation.
    ``problem.loss`` is part of the compiled program: build the problem once and
    reuse it (each ``gx.beale()`` call makes a new loss function, hence a new compile).
    """
    step, p, f, ok = _run(opt, problem.params(dtype), tol, bound, problem.loss, max_steps)
    f = float(f)
    return RunResult(int(step), f <= tol, not bool(ok), p, f)


def conditioning_experiment(tol: float = 1e-6, max_steps: int = 10_000) -> list[tuple[str, float, RunResult]]:
    """Seed 003's comparison on the κ = 100 quadratic: (label, learning rate, result).

    SGD at 1.01·η_max, SGD at η* = 2/101, heavy-ball momentum 0.9 at 0.175·η*,
    and Adam at η*. The seed reports: diverges / 420 / 137 / 117.
    """
    from gradtx.optimizers.adam_family import adam
    from gradtx.optimizers.classic import sgd

    problem = ill_conditioned_quadratic()
    lam_min, lam_max = min(problem.hessian_eigenvalues), max(problem.hessian_eigenvalues)
    eta_max, eta_opt = 2 / lam_max, 2 / (lam_min + lam_max)
    runs: list[tuple[str, float, Callable[[float], GradientTransformation]]] = [
        ("SGD at 1.01 x eta_max", 1.01 * eta_max, lambda lr: sgd(lr)),
        ("SGD at eta* = 2/101", eta_opt, lambda lr: sgd(lr)),
        ("momentum 0.9 at 0.175 x eta*", 0.175 * eta_opt, lambda lr: sgd(lr, momentum=0.9)),
        ("Adam at eta*", eta_opt, lambda lr: adam(lr)),
    ]
    return [(label, lr, steps_to_tolerance(make(lr), problem, tol, max_steps)) for label, lr, make in runs]

