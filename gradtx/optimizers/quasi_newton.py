"""Quasi-Newton optimizers: L-BFGS with a strong-Wolfe line search.

A :func:`~gradtx.chain` of primitives with optax's signature and defaults.
"""

from __future__ import annotations

from gradtx.core.base import GradientTransformation
from gradtx.core.hyperparams import Hyper
from gradtx.optimizers._naming import as_argument_of
from gradtx.transforms.basic import identity, scale, scale_by_learning_rate
from gradtx.transforms.combine import Chain, chain
from gradtx.transforms.lbfgs import scale_by_lbfgs
from gradtx.transforms.zoom_linesearch import scale_by_zoom_linesearch

__all__ = ["lbfgs"]

_DEFAULT_LINESEARCH = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


def lbfgs(
    learning_rate: Hyper | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = _DEFAULT_LINESEARCH,
) -> Chain:
    r"""L-BFGS: quasi-Newton directions, step sizes from a strong-Wolfe line search.

    .. math::
        d_k = -\eta\, H_k \nabla f(w_k), \qquad
        w_{k+1} = w_k + \alpha_k d_k ,

    where $H_k$ is the limited-memory BFGS inverse-Hessian approximation built
    from the last ``memory_size`` steps and gradient changes
    (:func:`~gradtx.scale_by_lbfgs`), $\eta$ is ``learning_rate`` (1 when
    None) and $\alpha_k$ comes from ``linesearch``, by default
    :func:`~gradtx.scale_by_zoom_linesearch` with 20 evaluations, starting
    from $\alpha = 1$ (the quasi-Newton step) and accepting a step that
    satisfies both Wolfe conditions.

    Every update needs the objective: call
    ``opt.update(grad, state, params, value=f(params), grad=grad, value_fn=f)``;
    for a deterministic $f$, ``gx.value_and_grad_from_state(f)(params,
    state=state)`` returns the value and gradient the line search already
    computed at the new point, so each iteration costs only the line search's
    evaluations (usually one). A missing ``value`` or ``value_fn`` raises an
    error that names it.

    Structure is static (``memory_size``, ``scale_init_precond``, whether there
    is a line search); every number, the line search's tolerances, factors,
    step bound and evaluation budget included, is a pytree leaf: ``jax.vmap``
    over a batch of ``curv_rtol`` runs one compiled program.

    Names, defaults and numerics are optax's: the iterates on Rosenbrock match
    optax's to 1e-8 in float64 (tested). See :func:`~gradtx.scale_by_lbfgs` and
    :func:`~gradtx.scale_by_zoom_linesearch` for the (small) differences.

    Args:
      learning_rate: $\eta$ scaling the direction (a float, array or
        schedule), or None for $\eta = 1$ (the quasi-Newton step, which the
        line search then refines).
      memory_size: $m \ge 1$ pairs kept. Static (it fixes the state's shapes:
        $2m$ copies of the parameters).
      scale_init_precond: scale the initial approximation by
        $\langle s, y\rangle/\langle y, y\rangle$. Static.
      linesearch: a line search transformation (it receives ``value``,
        ``grad`` and ``value_fn``), or None for none (then the step is the
        direction itself).

    Returns:
      ``chain(scale_by_lbfgs(memory_size, scale_init_precond), scale(-1) or
      scale_by_learning_rate(learning_rate), linesearch)``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx as gx
      >>> f = lambda w: jnp.sum((w - jnp.arange(3.0)) ** 2) + 0.1 * jnp.sum(w ** 4)
      >>> opt = gx.lbfgs()
      >>> w = jnp.zeros(3)
      >>> state = opt.init(w)
      >>> value_and_grad = gx.value_and_grad_from_state(f)
      >>> for _ in range(10):
      ...     value, grad = value_and_grad(w, state=state)
      ...     u, state = opt.update(grad, state, w, value=value, grad=grad, value_fn=f)
      ...     w = gx.apply_updates(w, u)
      >>> print([round(float(x), 3) for x in w], bool(jnp.linalg.norm(jax.grad(f)(w)) < 1e-5))
      [0.0, 0.869, 1.423] True

    References:
      Liu & Nocedal, *On the limited memory BFGS method for large scale
      optimization*, Mathematical Programming 45, 1989.
      Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, Algorithms
      3.5-3.6 (line search) and 7.4-7.5 (L-BFGS).

    .. warning::
       The state holds $2m$ copies of the parameters: L-BFGS suits small and
       medium problems, deterministic or with large batches.
    """
    with as_argument_of("lbfgs"):
        precond = scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond)
    with as_argument_of("lbfgs"):
        base = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    if linesearch is None:
        linesearch = identity()
    elif not isinstance(linesearch, GradientTransformation):
        raise TypeError(
            f"gx.lbfgs: `linesearch` must be a gradtx transformation such as "
            f"gx.scale_by_zoom_linesearch(...) or None, got {linesearch!r}."
        )
    return chain(precond, base, linesearch)
