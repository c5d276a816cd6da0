"""The per-run training step shared by :func:`gradtx.sweep` and :func:`gradtx.pbt`.

One run is ``(values, RunState)``: the swept hyperparameter values (scalars)
and the training state. The optimizer is rebuilt from ``values`` inside the
traced step, so under ``jax.vmap`` every run has its own hyperparameters and
all of them share one compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.core.base import apply_updates
from gradtx.core.numerics import weakly_typed
from gradtx.sweeps.space import Space

__all__ = ["Engine", "RunState", "Settings", "metric_dtype", "as_python_number", "resolve_data", "select_batch"]

def as_python_number(x: jax.Array) -> jax.Array:
    """``x`` weakly typed, so that a swept value behaves exactly like the Python float a user types.

    (The factories store every floating hyperparameter weakly typed anyway,
    see :func:`gradtx.core.hyperparams.as_leaf`; this keeps values that reach
    a user's own factory the same.)
    """
    return weakly_typed(x)


def resolve_data(data: Any, who: str) -> tuple[str, Callable | None, Any]:
    """``(kind, data_fn, arrays)`` for a ``data`` argument, validated; ``who`` names the caller in errors.

    ``data`` is None, a function ``(key, step) -> batch``, or a pytree of arrays
    whose leading axis indexes batches (step ``t`` uses batch ``t % len``).
    """
    if data is None:
        return "none", None, None
    if callable(data):
        return "fn", data, None
    leaves = jax.tree.leaves(data)
    if not leaves or any(np.ndim(x) == 0 for x in leaves):
        raise ValueError(f"{who}: data must be a pytree of arrays with a leading axis of batches, "
                         "or a function (key, step) -> batch.")
    sizes = {np.shape(x)[0] for x in leaves}
    if len(sizes) != 1:
        raise ValueError(f"{who}: data leaves must share their leading (batch index) axis, got sizes {sorted(sizes)}.")
    return "array", None, jax.tree.map(jnp.asarray, data)


def select_batch(kind: str, data_fn: Callable | None, arrays: Any, key: jax.Array, t: jax.Array) -> Any:
    """The batch of step ``t`` (see :func:`resolve_data`); ``data_fn`` gets ``fold_in(key, t)``."""
    if kind == "none":
        return None
    if kind == "fn":
        return data_fn(jax.random.fold_in(key, t), t)
    n = jax.tree.leaves(arrays)[0].shape[0]
    return jax.tree.map(lambda d: jax.lax.dynamic_index_in_dim(d, t % n, keepdims=False), arrays)


def metric_dtype() -> Any:
    """Losses and metrics are recorded in JAX's default float (f64 under x64)."""
    return jnp.result_type(float)


class RunState(NamedTuple):
    """Training state of one run (a leading run axis when batched)."""

    params: Any
    opt_state: Any
    best_loss: jax.Array  # lowest loss seen
    since_best: jax.Array  # steps since the best loss improved by more than min_delta
    steps_to_tol: jax.Array  # 1 + first step whose loss was <= tol (gx.steps_to_tolerance's count), or -1
    stopped: jax.Array  # frozen: diverged or out of patience
    diverged: jax.Array
    stopped_at: jax.Array  # step at which the run stopped, or -1
    first_loss: jax.Array  # loss at step 0, the reference for "exploded"


class Settings(NamedTuple):
    """Numeric run settings: traced, so changing them does not recompile."""

    steps: jax.Array
    tol: jax.Array
    divergence: jax.Array
    patience: jax.Array
    min_delta: jax.Array


@dataclasses.dataclass(frozen=True)
class Engine:
    """Static description of a training run: hashable, so jit caches on it.

    Attributes:
      loss_fn: ``loss_fn(params)`` or, with data, ``loss_fn(params, batch)``.
      space: the search space the optimizer is built from, kept as its
        :meth:`~gradtx.Space.structure` (converted on construction): the
        swept values are arguments of the compiled program, so a space with
        other grid values or bounds but the same structure reuses it.
      data_kind: ``"none"``, ``"array"`` (leading axis of batches, cycled) or
        ``"fn"`` (``data_fn(key, step) -> batch``).
      data_fn: the batch function for ``data_kind == "fn"``.
      eval_fn: ``eval_fn(params) -> scalar`` for final losses and PBT scores.
    """

    loss_fn: Callable[..., jax.Array]
    space: Space
    data_kind: str = "none"
    data_fn: Callable[[jax.Array, jax.Array], Any] | None = None
    eval_fn: Callable[[Any], jax.Array] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", self.space.structure())

    def optimizer(self, values: dict) -> Any:
        """The run's optimizer, built from its (traced) values."""
        return self.space.build({k: as_python_number(v) for k, v in values.items()})

    def batch(self, data: Any, key: jax.Array, t: jax.Array) -> Any:
        return select_batch(self.data_kind, self.data_fn, data, key, t)

    def loss(self, params: Any, batch: Any) -> jax.Array:
        out = self.loss_fn(params) if self.data_kind == "none" else self.loss_fn(params, batch)
        if jnp.shape(out) != ():
            raise ValueError(f"loss_fn must return a scalar, got shape {jnp.shape(out)}.")
        return out

    def init(self, values: dict, params: Any) -> RunState:
        """The state of one run before its first step."""
        dt = metric_dtype()
        i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
        return RunState(
            params=params,
            opt_state=self.optimizer(values).init(params),
            best_loss=jnp.asarray(jnp.inf, dt),
            since_best=i32(0),
            steps_to_tol=i32(-1),
            stopped=jnp.asarray(False),
            diverged=jnp.asarray(False),
            stopped_at=i32(-1),
            first_loss=jnp.asarray(jnp.nan, dt),
        )

    def step(self, values: dict, s: RunState, data: Any, key: jax.Array, cfg: Settings, t: jax.Array):
        """One update of one run. Returns the new state and the recorded loss (NaN once stopped)."""
        t = jnp.asarray(t, jnp.int32)
        opt = self.optimizer(values)
        batch = self.batch(data, key, t)
        loss, grads = jax.value_and_grad(self.loss)(s.params, batch)
        # Line searches, Polyak steps and plateaus read the loss; the others ignore it.
        value_fn = functools.partial(self.loss, batch=batch)
        updates, opt_state = opt.update(grads, s.opt_state, s.params, value=loss, grad=grads, value_fn=value_fn)
        params = apply_updates(s.params, updates)

        loss = loss.real.astype(metric_dtype()) if jnp.iscomplexobj(loss) else loss.astype(metric_dtype())
        active = ~s.stopped & (t < cfg.steps)
        first = jnp.where(t == 0, loss, s.first_loss)
        exploded = jnp.abs(loss) > cfg.divergence * jnp.maximum(jnp.abs(first), jnp.finfo(loss.dtype).tiny)
        diverged = active & (~jnp.isfinite(loss) | exploded)
        improved = loss < s.best_loss - cfg.min_delta
        since = jnp.where(active, jnp.where(improved, 0, s.since_best + 1), s.since_best)
        stop_now = active & (diverged | (since >= cfg.patience))
        take = active & ~diverged
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)  # noqa: E731
        out = RunState(
            params=keep(params, s.params),
            opt_state=keep(opt_state, s.opt_state),
            best_loss=jnp.where(active & (loss < s.best_loss), loss, s.best_loss),
            since_best=since,
            steps_to_tol=jnp.where(active & (loss <= cfg.tol) & (s.steps_to_tol < 0), t + 1, s.steps_to_tol),
            stopped=s.stopped | stop_now,
            diverged=s.diverged | diverged,
            stopped_at=jnp.where(stop_now, t, s.stopped_at),
            first_loss=first,
        )
        return out, jnp.where(active, loss, jnp.nan)

    def run(self, values: dict, s: RunState, data: Any, key: jax.Array, cfg: Settings, t0: jax.Array, length: int):
        """``length`` steps of one run from global step ``t0`` (a ``lax.scan``)."""

        def body(state, i):
            return self.step(values, state, data, key, cfg, t0 + i)

        return jax.lax.scan(body, s, jnp.arange(length, dtype=jnp.int32))

    def final_loss(self, s: RunState, data: Any, key: jax.Array, t: jax.Array) -> jax.Array:
        """``eval_fn(params)`` if given, else the loss on the batch step ``t`` would use."""
        out = self.eval_fn(s.params) if self.eval_fn is not None else self.loss(s.params, self.batch(data, key, t))
        return jnp.real(out).astype(metric_dtype())
