r"""Population-based training (Jaderberg et al., 2017), in one compiled program.

A population of N members trains in one ``vmap``. Every ``interval`` steps,
inside the graph, members are ranked by a score (the mean training loss over
the interval, or ``eval_fn(params)``):

* **exploit**: the bottom ``fraction`` copy the parameters, optimizer state and
  hyperparameters of a random member of the top ``fraction``;
* **explore**: each copied hyperparameter is multiplied by a random factor
  from ``perturb`` (default 0.8 or 1.2), or with ``resample_probability``
  redrawn from its dimension; integer dimensions are only redrawn.

This is the lecture's PBT (seed 002): "if its performance is in the lowest
20%, it copies and mutates the hyper-parameters and variables of one of the
top 20%". It works here because hyperparameters are pytree leaves: a member's
learning rate is an array element that the exploit step overwrites.

Reference: Jaderberg et al., *Population Based Training of Neural Networks*,
arXiv:1711.09846.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.sweeps.devices import replicate, resolve_devices, shard_runs
from gradtx.sweeps.engine import Engine, RunState, Settings
from gradtx.sweeps.results import SweepResult, dump_json
from gradtx.sweeps.runner import _check_values, _init, _progress, check_params, make_engine, run_chunks, settings
from gradtx.sweeps.space import Space

__all__ = ["pbt", "PBTResult", "Explore", "exploit_and_explore"]


@dataclasses.dataclass(frozen=True)
class Explore:
    """Static exploit/explore rule (hashable: part of the compiled program)."""

    space: Space
    fraction: float = 0.2
    perturb: tuple[float, ...] = (0.8, 1.2)
    resample_probability: float = 0.25
    clip: bool = True


def exploit_and_explore(rule: Explore, key: jax.Array, values: dict, state: Any, score: jax.Array, ready=True):
    """One PBT step over a population (leading axis N). Pure and jittable.

    Args:
      rule: the exploit/explore settings.
      key: PRNG key.
      values: ``{path: (N,)}`` hyperparameters of each member.
      state: any pytree with a leading axis N (params, optimizer state, …).
      score: (N,) lower is better; NaN counts as worst.
      ready: when False, nothing changes (used for the last interval).

    Returns:
      ``(values, state, parent)``: ``parent[i]`` is the member that member ``i``
      copied (``i`` itself when it was kept).
    """
    n = score.shape[0]
    m = max(1, int(round(rule.fraction * n)))
    score = jnp.where(jnp.isnan(score), jnp.inf, score)
    order = jnp.argsort(score, stable=True)
    k_parent, k_explore = jax.random.split(key)
    donors = order[:m][jax.random.randint(k_parent, (m,), 0, m)]
    idx = jnp.arange(n)
    parent = jnp.where(ready, idx.at[order[n - m :]].set(donors), idx)
    copied = parent != idx
    values, state = jax.tree.map(lambda x: x[parent], (values, state))
    dims = rule.space.dims
    factors = jnp.asarray(rule.perturb)
    out = {}
    for i, (name, dim) in enumerate(dims.items()):
        k_f, k_r, k_s = jax.random.split(jax.random.fold_in(k_explore, i), 3)
        v = values[name]
        new = v * factors[jax.random.randint(k_f, (n,), 0, len(rule.perturb))].astype(v.dtype) if dim.continuous else v
        redraw = jax.random.uniform(k_r, (n,)) < rule.resample_probability
        new = jnp.where(redraw, dim.sample(k_s, (n,), v.dtype).astype(v.dtype), new)
        if rule.clip:
            lo, hi = dim.bounds
            new = jnp.clip(new, lo, hi).astype(v.dtype)
        out[name] = jnp.where(copied, new, v)
    return out, state, parent


@functools.partial(jax.jit, static_argnames=("engine", "rule", "intervals", "interval"), donate_argnums=(3,))
def _pbt_chunk(engine: Engine, rule: Explore, values, state: RunState, data, key, pbt_key, cfg: Settings, t0,
               intervals: int, interval: int):
    def body(carry, j):
        values, state = carry
        t = t0 + j * interval
        run = lambda v, s: engine.run(v, s, data, key, cfg, t, interval)  # noqa: E731
        state, losses = jax.vmap(run)(values, state)
        if engine.eval_fn is not None:
            score = jax.vmap(lambda s: engine.final_loss(s, data, key, t))(state)
        else:
            score = jnp.nanmean(jnp.where(jnp.isfinite(losses), losses, jnp.inf), axis=1)
        score = jnp.where(state.diverged, jnp.inf, score)
        ready = t + interval < cfg.steps  # no exploit after the last interval
        values, state, parent = exploit_and_explore(rule, jax.random.fold_in(pbt_key, t), values, state, score, ready)
        return (values, state), (losses, score, parent, values)

    (values, state), (losses, scores, parents, history) = jax.lax.scan(body, (values, state), jnp.arange(intervals, dtype=jnp.int32))
    final = jax.vmap(lambda s: engine.final_loss(s, data, key, jnp.minimum(t0 + intervals * interval, cfg.steps)))(state)
    curves = jnp.moveaxis(losses, 0, 1).reshape(losses.shape[1], -1)
    return values, state, curves, final, scores, parents, history


@dataclasses.dataclass
class PBTResult:
    """What :func:`gradtx.pbt` returns.

    Attributes:
      result: the final population as a :class:`~gradtx.SweepResult` (values
        are the members' final hyperparameters).
      history: ``{path: (I+1, N)}`` each member's value at the start and
        after every exploit step (its lineage, with ``parents``).
      history_steps: (I+1,) the step of each history row.
      parents: (I, N) which member each member copied at each exploit step.
      scores: (I, N) the score each member was ranked by.
    """

    result: SweepResult
    history: dict[str, np.ndarray]
    history_steps: np.ndarray
    parents: np.ndarray
    scores: np.ndarray

    @property
    def best(self) -> dict[str, Any]:
        return self.result.best

    def lineage(self, member: int) -> list[int]:
        """Ancestors of ``member`` at each interval, oldest first (ends with ``member``)."""
        chain = [int(member)]
        for p in self.parents[::-1]:
            chain.append(int(p[chain[-1]]))
        return chain[::-1]

    def plot(self, path: Any = None, *, dim: str | None = None):
        """Members' hyperparameter over time and population scores (matplotlib)."""
        from gradtx.sweeps.plotting import plot_lineage

        return plot_lineage(self, path, dim=dim)

    def to_dict(self) -> dict[str, Any]:
        """The final population (as :meth:`SweepResult.to_dict`) plus the lineage under ``"pbt"``."""
        doc = self.result.to_dict()
        doc["pbt"] = {
            "history_steps": self.history_steps.tolist(),
            "history": {k: v.tolist() for k, v in self.history.items()},
            "parents": self.parents.tolist(),
            "scores": self.scores.tolist(),
        }
        return doc

    def to_json(self, path: Any = None) -> str:
        """:meth:`to_dict` as JSON (NaN and infinities as null), written to ``path`` if given."""
        return dump_json(self.to_dict(), path)


def pbt(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    space: Space,
    *,
    steps: int,
    interval: int,
    num: int | None = None,
    key: jax.Array | None = None,
    values: Mapping[str, Any] | None = None,
    data: Any = None,
    per_run_params: bool = False,
    eval_fn: Callable[[Any], jax.Array] | None = None,
    fraction: float = 0.2,
    perturb: Sequence[float] = (0.8, 1.2),
    resample_probability: float = 0.25,
    clip: bool = True,
    divergence: float = 1e4,
    chunk: int | None = None,
    devices: int | Sequence[jax.Device] | None = None,
    progress: bool = True,
) -> PBTResult:
    """Population-based training of ``space``'s configurations.

    Arguments shared with :func:`gradtx.sweep` mean the same. The population is
    ``space.sample(key, num)`` (or ``values``).

    Args:
      interval: steps between exploit/explore steps.
      eval_fn: ``eval_fn(params) -> scalar`` to rank members by (lower is
        better) and for final losses; default: mean training loss over the
        interval.
      fraction: share of the population replaced, and of donors (0 < f <= 0.5).
      perturb: factors a copied continuous hyperparameter is multiplied by.
      resample_probability: chance that a copied value is redrawn instead.
      clip: keep perturbed values inside each dimension's [low, high].
      chunk: intervals per compiled call (default: about 20 calls in all).
      devices: as for :func:`gradtx.sweep`; by default the most devices that
        divide the population evenly.

    Returns:
      A :class:`~gradtx.PBTResult` with the final population and its lineage.
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction!r}.")
    if not perturb or any(not f > 0 for f in perturb):
        raise ValueError(f"perturb must be positive factors, got {perturb!r}.")
    if not 0 <= resample_probability <= 1:
        raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability!r}.")
    interval = int(interval)
    if not 1 <= interval <= int(steps):
        raise ValueError(f"interval must be in [1, steps], got {interval!r}.")
    engine, data = make_engine(loss_fn, space, data, eval_fn)
    cfg = settings(steps, None, divergence, None, 0.0)
    key = jax.random.key(0) if key is None else key
    check_params(params)
    values = _check_values(space, space.sample(key, num) if values is None else values)
    n = len(next(iter(values.values())))
    if n < 2:
        raise ValueError(f"a population needs at least 2 members, got {n}.")
    rule = Explore(space, float(fraction), tuple(float(f) for f in perturb), float(resample_probability), bool(clip))
    devs = resolve_devices(devices)
    if devices is None:  # all devices that divide the population evenly (padding would add fake members)
        devs = devs[: max(k for k in range(1, len(devs) + 1) if n % k == 0)]
    elif n % len(devs):
        raise ValueError(f"the population ({n}) must be a multiple of the device count ({len(devs)}).")
    p = params
    if len(devs) > 1:
        values, data = shard_runs(values, devs), replicate(data, devs)
        p = shard_runs(params, devs) if per_run_params else replicate(params, devs)
    state = _init(engine, values, p, per_run_params)
    total = -(-int(steps) // interval)
    per_call = max(1, -(-total // 20)) if chunk is None else int(chunk)
    data_key, pbt_key = jax.random.fold_in(key, 1_000_003), jax.random.fold_in(key, 2_000_003)
    start = {k: np.asarray(v) for k, v in values.items()}
    curves, scores, parents, hist, final, done = [], [], [], [], None, 0

    def launch(c0):
        nonlocal values, state, final
        values, state, curve, final, sc, par, h = _pbt_chunk(engine, rule, values, state, data, data_key, pbt_key,
                                                             cfg, jnp.asarray(c0 * interval, jnp.int32), per_call,
                                                             interval)
        return curve, sc, par, h

    def record(c0, out):
        nonlocal done
        curve, sc, par, h = out
        host = np.asarray(curve), np.asarray(sc), np.asarray(par), {k: np.asarray(v) for k, v in h.items()}
        for acc, x in zip((curves, scores, parents, hist), host):
            acc.append(x)
        done = min((c0 + per_call) * interval, int(steps))
        return done

    interrupted = run_chunks(range(0, total, per_call), launch, record, _progress(int(steps), "pbt", progress))
    used = -(-done // interval)  # intervals that ran
    history = {k: np.concatenate([start[k][None]] + [x[k] for x in hist])[: used + 1] for k in start}
    host = jax.tree.map(np.asarray, state._replace(params=None, opt_state=None))
    result = SweepResult.from_runs(
        family=space.name, space=space, values={k: np.asarray(v) for k, v in values.items()}, state=state,
        host=host, final_loss=np.asarray(final) if final is not None else np.full(n, np.nan),
        curves=np.concatenate(curves, axis=1)[:, :done] if curves else np.zeros((n, 0)),
        log_every=1, steps=done, interrupted=interrupted,
    )
    return PBTResult(
        result=result,
        history=history,
        history_steps=np.minimum(np.arange(used + 1) * interval, int(steps)),
        parents=np.concatenate(parents)[:used] if parents else np.zeros((0, n), np.int32),
        scores=np.concatenate(scores)[:used] if scores else np.zeros((0, n)),
    )
