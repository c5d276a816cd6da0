r"""``gx.sweep``: N training runs with different hyperparameters in one program.

The program is ``jit(vmap(lax.scan(step)))``: the optimizer is rebuilt inside
``step`` from each run's swept values, which are traced leaves, so the number
of runs and their values never cause a recompile beyond the first call for a
given N. Long runs execute in chunks of steps so that a progress bar advances
and an interrupted sweep keeps its finished chunks.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.sweeps.devices import replicate, resolve_devices, shard_runs
from gradtx.sweeps.engine import Engine, RunState, Settings, resolve_data
from gradtx.sweeps.results import SweepResult
from gradtx.sweeps.space import Space

__all__ = ["sweep"]

Data = Any


@functools.partial(jax.jit, static_argnames=("engine", "per_run_params"))
def _init(engine: Engine, values, params, per_run_params: bool) -> RunState:
    return jax.vmap(engine.init, in_axes=(0, 0 if per_run_params else None))(values, params)


@functools.partial(jax.jit, static_argnames=("engine", "length", "log_every"), donate_argnums=(2,))
def _chunk(engine: Engine, values, state: RunState, data, key, cfg: Settings, t0, length: int, log_every: int):
    def one(v, s):
        s, losses = engine.run(v, s, data, key, cfg, t0, length)
        final = engine.final_loss(s, data, key, jnp.minimum(t0 + length, cfg.steps))
        return s, losses[::log_every], final

    return jax.vmap(one)(values, state)


def check_params(params: Any) -> None:
    """Gradients need at least one float (or complex) leaf."""
    if not any(jnp.issubdtype(jnp.result_type(x), jnp.inexact) for x in jax.tree.leaves(params)):
        raise TypeError(
            "params has no floating-point leaf: gradients need float (or complex) params. "
            "Cast integer params with params = jax.tree.map(lambda x: x.astype(jnp.float32), params)."
        )


def settings(steps: int, tol: float | None, divergence: float, patience: int | None, min_delta: float) -> Settings:
    """Validated numeric run settings (traced: changing them does not recompile)."""
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}.")
    if not divergence > 1:
        raise ValueError(f"divergence must be > 1 (a factor over the first loss), got {divergence!r}.")
    if patience is not None and int(patience) < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience!r}.")
    if not min_delta >= 0:
        raise ValueError(f"min_delta must be >= 0, got {min_delta!r}.")
    dt = jnp.result_type(float)
    return Settings(
        steps=jnp.asarray(steps, jnp.int32),
        tol=jnp.asarray(-jnp.inf if tol is None else tol, dt),
        divergence=jnp.asarray(divergence, dt),
        patience=jnp.asarray(np.iinfo(np.int32).max if patience is None else patience, jnp.int32),
        min_delta=jnp.asarray(min_delta, dt),
    )


def make_engine(loss_fn: Callable, space: Space, data: Data, eval_fn: Callable | None = None) -> tuple[Engine, Any]:
    """The static engine and the dynamic data argument for ``data``."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function of (params) or (params, batch), got {loss_fn!r}.")
    if not isinstance(space, Space):
        raise TypeError(f"space must be a gx.Space (or a dict of them), got {type(space).__name__}.")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a function of params, got {eval_fn!r}.")
    kind, data_fn, arrays = resolve_data(data, "gx.sweep")
    return Engine(loss_fn, space, kind, data_fn, eval_fn), arrays


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar; with ``enabled=False`` a plain (silent) one, so ``tqdm.auto`` is not
    imported: in a Jupyter kernel without ipywidgets that import warns on stderr."""
    if enabled:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=True, dynamic_ncols=True)


def sweep(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    space: Space | Mapping[str, Space],
    *,
    steps: int,
    num: int | None = None,
    key: jax.Array | None = None,
    values: Mapping[str, Any] | None = None,
    data: Data = None,
    per_run_params: bool = False,
    eval_fn: Callable[[Any], jax.Array] | None = None,
    tol: float | None = None,
    divergence: float = 1e4,
    patience: int | None = None,
    min_delta: float = 0.0,
    chunk: int | None = None,
    log_every: int = 1,
    devices: int | Sequence[jax.Device] | None = None,
    progress: bool = True,
) -> SweepResult:
    r"""Trains one run per configuration of ``space``, all in one compiled program.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, or ``loss_fn(params, batch)`` when
        ``data`` is given. Must be a JAX function; it is traced once per family.
      params: initial parameters shared by every run, or with
        ``per_run_params=True`` a pytree whose leaves have a leading run axis
        (e.g. ``jax.vmap(init)(keys)`` over seeds).
      space: a :class:`~gradtx.Space`, or ``{family: Space}`` to compare
        optimizer families (one compiled program per family).
      steps: updates per run.
      num: random draws per grid point (see :meth:`Space.sample`).
      key: PRNG key for sampling and for ``data`` functions (default ``key(0)``).
      values: explicit ``{path: array (N,)}`` values instead of sampling.
      data: None; a pytree of arrays whose leading axis indexes batches (step
        ``t`` uses batch ``t % len``); or ``data(key, step) -> batch``. All runs
        see the same batches.
      eval_fn: ``eval_fn(params) -> scalar`` for ``final_loss`` (default: the
        loss on the batch that step ``steps`` would use).
      tol: records ``steps_to_tol``: loss evaluations until the loss was
        ``<= tol`` (``t + 1`` for the first such step ``t``, the count of
        :func:`gradtx.steps_to_tolerance` and seed 003), or -1.
      divergence: a run diverges when its loss is non-finite or exceeds
        ``divergence * |first loss|``; it then stops.
      patience: early stopping: a run stops after ``patience`` steps without
        improving its best loss by more than ``min_delta``. Stopped runs keep
        their parameters while the others continue.
      chunk: steps per compiled call (default: ``steps`` split in about 20
        chunks). The progress bar advances per chunk; Ctrl-C returns the
        finished chunks (``result.interrupted``).
      log_every: keep every ``log_every``-th loss in the curves.
      devices: shard the run axis across these devices (or the first n), one
        program via ``jax.sharding``; default: every local device.
      progress: show a progress bar (tqdm).

    Returns:
      A :class:`~gradtx.SweepResult`: per-run values, metrics (``final_loss``,
      ``best_loss``, ``steps_to_tol``, ``diverged``, ``stopped_at``), loss curves,
      final params and optimizer states.

    Example:
      >>> import jax.numpy as jnp, gradtx as gx
      >>> loss = lambda w: jnp.sum((w - 3.0) ** 2)
      >>> res = gx.sweep(loss, jnp.zeros(2), gx.Space(gx.sgd, learning_rate=[0.01, 0.1, 0.4]),
      ...                steps=50, progress=False)
      >>> float(res.best["learning_rate"])
      0.4
    """
    if isinstance(space, Mapping):
        if not space:
            raise ValueError("space: the dict of families is empty.")
        if values is not None:
            raise ValueError("values= needs a single Space; for families, sweep each family with its own values.")
        parts = []
        for i, (fam, sp) in enumerate(space.items()):
            k = jax.random.fold_in(jax.random.key(0) if key is None else key, i)
            parts.append(_sweep_one(loss_fn, params, sp, str(fam), steps, num, k, None, data, per_run_params, eval_fn,
                                    tol, divergence, patience, min_delta, chunk, log_every, devices, progress))
        return SweepResult.concat(parts)
    return _sweep_one(loss_fn, params, space, space.name, steps, num, key, values, data, per_run_params, eval_fn,
                      tol, divergence, patience, min_delta, chunk, log_every, devices, progress)


def _sweep_one(loss_fn, params, space, family, steps, num, key, values, data, per_run_params, eval_fn,
               tol, divergence, patience, min_delta, chunk, log_every, devices, progress) -> SweepResult:
    engine, data = make_engine(loss_fn, space, data, eval_fn)
    cfg = settings(steps, tol, divergence, patience, min_delta)
    key = jax.random.key(0) if key is None else key
    check_params(params)
    values = _check_values(space, space.sample(key, num) if values is None else values)
    n = len(next(iter(values.values())))
    if per_run_params:
        sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(params)}
        if sizes != {n}:
            raise ValueError(f"per_run_params=True: every params leaf needs a leading axis of {n} runs, got {sizes}.")
    log_every = int(log_every)
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every!r}.")
    chunk = _chunk_length(steps, chunk, log_every)

    devs = resolve_devices(devices)
    padded, pad = _pad(values, len(devs))
    p = _pad(params, len(devs))[0] if per_run_params else params
    if len(devs) > 1:
        padded, p = shard_runs(padded, devs), (shard_runs(p, devs) if per_run_params else replicate(p, devs))
        data = replicate(data, devs)
    state = _init(engine, padded, p, per_run_params)
    data_key = jax.random.fold_in(key, 1_000_003)

    curves, finals, done = [], None, 0

    def launch(t0):
        nonlocal state
        state, curve, final = _chunk(engine, padded, state, data, data_key, cfg, jnp.asarray(t0, jnp.int32), chunk,
                                     log_every)  # the previous state is donated to this call
        return curve, final

    def record(t0, out):
        nonlocal finals, done
        curves.append(np.asarray(out[0]))  # waits for the chunk
        finals, done = out[1], min(t0 + chunk, int(steps))
        return done

    interrupted = run_chunks(range(0, int(steps), chunk), launch, record, _progress(int(steps), family, progress))
    keep = slice(0, n)
    curve = np.concatenate(curves, axis=1)[keep, : -(-done // log_every)] if curves else np.zeros((n, 0))
    host = jax.tree.map(lambda x: np.asarray(x)[keep], state._replace(params=None, opt_state=None))
    return SweepResult.from_runs(
        family=family,
        space=space,
        values={k: np.asarray(v) for k, v in values.items()},
        state=jax.tree.map(lambda x: x[:n], state) if pad else state,
        host=host,
        final_loss=np.asarray(finals)[keep] if finals is not None else np.full(n, np.nan),
        curves=curve,
        log_every=log_every,
        steps=done,
        interrupted=interrupted,
    )


def run_chunks(starts: Any, launch: Callable[[int], Any], record: Callable[[int, Any], int], bar: Any) -> bool:
    """Launches and records chunks in order, advancing ``bar`` to ``record``'s step count.

    On Ctrl-C the chunk in flight is still recorded (its outputs already
    replaced the donated state, so the state and the records stay in step),
    and True is returned: the caller keeps every finished chunk.
    """
    pending = None
    try:
        for start in starts:
            pending = start, launch(start)
            done = record(*pending)
            pending = None
            bar.update(done - bar.n)
    except KeyboardInterrupt:
        if pending is not None:
            record(*pending)
        return True
    finally:
        bar.close()
    return False


def _check_values(space: Space, values: Mapping[str, Any]) -> dict[str, jax.Array]:
    """Validated ``{path: (N,)}`` values: floats in JAX's default float, ints as int32."""
    dtype = jnp.result_type(float)
    dims = space.dims
    missing, extra = set(dims) - set(values), set(values) - set(dims)
    if missing or extra:
        raise ValueError(f"values must have exactly the space's dimensions {sorted(dims)}; "
                         f"missing {sorted(missing)}, unknown {sorted(extra)}.")
    out = {}
    for k in dims:
        v = jnp.asarray(values[k])
        if v.ndim != 1 or v.shape[0] < 1:
            raise ValueError(f"values[{k!r}] must have shape (N,), got {v.shape}.")
        out[k] = v.astype(jnp.int32) if jnp.issubdtype(v.dtype, jnp.integer) else v.astype(dtype)
    if len({v.shape for v in out.values()}) != 1:
        raise ValueError(f"values must share one run count N, got { {k: v.shape for k, v in out.items()} }.")
    space.check(out)
    return out


def _chunk_length(steps: int, chunk: int | None, log_every: int) -> int:
    if chunk is None:
        chunk = max(1, -(-int(steps) // 20))
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk!r}.")
    return -(-chunk // log_every) * log_every  # a multiple of log_every


def _pad(tree: Any, ndev: int) -> tuple[Any, int]:
    """Repeats the last run so that N is a multiple of the device count."""
    n = jax.tree.leaves(tree)[0].shape[0]
    pad = -n % ndev
    if not pad:
        return tree, 0
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), tree), pad
