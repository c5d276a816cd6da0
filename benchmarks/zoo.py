"""Step time and compiled cost of issue 15's optimizer zoo: gradtx against optax.

Every optimizer of the zoo that optax also has is built twice from the same
hyperparameters (``learning_rate=1e-3``, everything else at both libraries'
defaults, ``noisy_sgd``'s key 0 in both) and stepped on one float32 vector of
N parameters. An optimizer step is memory-bound at these sizes, so what decides
its time is how often it streams its arrays; two kinds of evidence are taken:

* **compiled cost** (no noise): passes over memory of each compiled step
  (:func:`memory_passes`: array-sized loops as :func:`step.static_costs`
  counts them, plus reductions and loops inside ``lax.cond`` branches, which
  that count misses) and XLA's ``bytes accessed``. gradtx should make no more
  passes and move no more bytes than optax; "no more bytes" allows a few
  scalars (under ``4 * MIN_ELEMENTS`` bytes), since gradtx's hyperparameters
  are jit arguments that each fusion reading them counts, where optax's are
  constants;
* **step time**: gradtx, optax and ``optax again`` (optax's step compiled and
  allocated a second time: the A/A control) timed in interleaved rounds and
  pooled over trials that each compile and allocate anew
  (:func:`_timing.trial_medians`). The verdict reads gradtx's **paired** ratio
  (the median over rounds of back-to-back gradtx/optax samples,
  :func:`_timing.paired_ratio`) against the A/A control's **per-trial range**
  (``optax again/optax`` in each trial): a ratio no higher than
  ``1 + max |A/A - 1|`` (:func:`aa_spread`) is within what optax measured
  against itself shows. Timings are recorded, never asserted.

The timed steps are those of ``step.py`` (``step.gx_step_fn``: the optimizer a
jit argument; ``step.optax_stepper``: optax's hyperparameters closed over; both
donate params and state and take the gradient as an argument). Params start at
0.1 rather than 0 so that the trust-ratio optimizers (lamb, lars, fromage)
take their ``||p|| > 0`` branch.

``lamb``, ``lars``, ``fromage``, ``novograd`` and ``sm3`` are labelled
``per-array``: they reduce each leaf (a norm, or sm3's per-dimension maxima)
before updating it, so even their floor is more than one pass (sm3 on a vector
keeps one accumulator per element, so here it is elementwise in effect).
"""

from __future__ import annotations

import math
import re
import statistics

import jax
import jax.numpy as jnp
import optax

import gradtx as gx

from _timing import Stepper, paired_ratio, trial_medians
from step import gx_step_fn, optax_stepper, static_costs

ELEMENTWISE = (
    "adabelief", "yogi", "radam", "adan", "optimistic_gradient_descent", "optimistic_adam",
    "optimistic_adam_v2", "lion", "sign_sgd", "signum", "noisy_sgd", "rprop",
)
PER_ARRAY = ("lamb", "lars", "fromage", "novograd", "sm3")
OPTIMIZERS = ELEMENTWISE + PER_ARRAY
QUICK = ("adabelief", "lion", "lamb")  # one per family, for the smoke run

LEARNING_RATE = 1e-3
EXTRA_KWARGS = {"noisy_sgd": {"key": 0}}  # the same noise key in both libraries


def pair(name: str):
    """(gradtx optimizer, optax optimizer), same hyperparameters."""
    info = gx.OPTIMIZERS[name]
    kwargs = {"learning_rate": LEARNING_RATE, **EXTRA_KWARGS.get(name, {})}
    return info.factory(**kwargs), getattr(optax, info.optax_name)(**kwargs)


# --- passes over memory, counted in the compiled program -------------------------------
#
# ``_timing.compiled_cost`` counts the array-sized loop fusions and copies of the
# entry computation: the passes that *write* an array. Two kinds of pass escape it,
# and the zoo has both: a reduction to a scalar (a norm: it reads a whole array and
# writes one number) and a loop inside a ``lax.cond`` branch (optax's novograd
# branches on the first step, so its entry computation holds one loop and its
# branches the rest). :func:`memory_passes` counts both: every instruction that
# writes an array or reads one into a scalar, following conditionals (the costlier
# branch, as one of them runs) and calls. A ``while`` (noisy_sgd's threefry rounds)
# counts once. Arrays under MIN_ELEMENTS elements (PRNG keys, counters) are not
# array-sized, so key arithmetic is not a pass (compiled_cost's loops count it).

_SHAPE = re.compile(r"\w+\[(\d[\d,]*)\]")
_FREE = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant", "after-all", "partition-id",
         "replica-id"}  # no pass over memory
MIN_ELEMENTS = 1024  # an array this large is "array-sized" (smaller: scalars, PRNG keys, counters)


def _is_array(hlo_type: str) -> bool:
    """Whether an HLO type holds an array of at least MIN_ELEMENTS elements."""
    return any(math.prod(int(d) for d in dims.split(",")) >= MIN_ELEMENTS for dims in _SHAPE.findall(hlo_type))


def _computations(text: str) -> tuple[dict[str, list[str]], str]:
    """HLO text -> (computation name -> instruction lines, entry name)."""
    comps, entry, name = {}, None, None
    for line in text.splitlines():
        head = re.match(r"^(ENTRY )?%(\S+) .*\{\s*$", line)
        if head:
            name = head.group(2)
            comps[name] = []
            entry = name if head.group(1) else entry
        elif name is not None and line.startswith("  "):
            comps[name].append(line)
        elif line.startswith("}"):
            name = None
    return comps, entry


def _instruction(line: str):
    """(name, result type, opcode, operand names, rest of the line) of one HLO instruction line."""
    lhs, rhs = line.strip().removeprefix("ROOT ").split(" = ", 1)
    if rhs.startswith("("):  # a tuple type, e.g. (f32[], f32[8]{0})
        depth = 0
        for i, c in enumerate(rhs):
            depth += (c == "(") - (c == ")")
            if depth == 0:
                break
        rtype, rest = rhs[: i + 1], rhs[i + 2:]
    else:
        rtype, rest = rhs.split(" ", 1)
    opcode, rest = rest.split("(", 1)
    return lhs.lstrip("%"), rtype, opcode, re.findall(r"%([\w.\-]+)", rest.split(")", 1)[0]), rest


def memory_passes(text: str) -> int:
    """Passes over memory of a compiled step (its HLO text): array writes and array reductions."""
    comps, entry = _computations(text)

    def count(comp: str) -> int:
        shapes, passes = {}, 0
        for line in comps[comp]:
            name, rtype, opcode, operands, rest = _instruction(line)
            shapes[name] = rtype
            if opcode in ("conditional", "call"):
                called = re.findall(r"%([\w.\-]+)", re.search(r"(?:branch_computations=\{|to_apply=)([^}]*)",
                                                                  rest).group(1))
                passes += max(count(c) for c in called) if opcode == "conditional" else count(called[0])
            elif opcode not in _FREE and (_is_array(rtype) or any(_is_array(shapes.get(o, "")) for o in operands)):
                passes += 1
        return passes

    return count(entry)


def _compiled(gopt, oopt, n: int):
    """gradtx's and optax's compiled steps at N params, compiled as ``step.static_costs`` compiles them."""
    p = jax.ShapeDtypeStruct((n,), jnp.float32)

    def optax_step(p, s, g):
        u, s = oopt.update(g, s, p)
        return optax.apply_updates(p, u), s

    return (gx_step_fn().lower(gopt, p, jax.eval_shape(gopt.init, p), p).compile(),
            jax.jit(optax_step, donate_argnums=(0, 1)).lower(p, jax.eval_shape(oopt.init, p), p).compile())


def _bytes_accessed(compiled) -> float:
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, (list, tuple)) else cost).get("bytes accessed", 0.0))


def compiled_facts(gopt, oopt, n: int) -> dict:
    """:func:`step.static_costs` (entry loops, bytes ratio, flops) of both steps, plus
    :func:`memory_passes` and the bytes gradtx accesses beyond optax's: gradtx's
    hyperparameters are jit arguments, 4 bytes each (``scalar args``), which
    optax closes over as constants."""
    gx_compiled, ox_compiled = _compiled(gopt, oopt, n)
    return {**static_costs(gopt, oopt, n),
            "passes": [memory_passes(c.as_text()) for c in (gx_compiled, ox_compiled)],
            "extra bytes": _bytes_accessed(gx_compiled) - _bytes_accessed(ox_compiled),
            "scalar args": len(jax.tree.leaves(gopt))}


def _per_trial_ratios(per_trial: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(per_trial[a], per_trial[b], strict=True)]


def _per_trial_paired(samples: dict[str, list[float]], a: str, b: str, rounds: int) -> list[float]:
    """The paired ratio of each trial alone (samples are pooled trial after trial)."""
    xs, ys = samples[a], samples[b]
    return [statistics.median(x / y for x, y in zip(xs[i:i + rounds], ys[i:i + rounds]))
            for i in range(0, len(xs), rounds)]


def verdict(row: dict) -> dict:
    """The three acceptance criteria of one row, each True or False."""
    gx_passes, ox_passes = row["passes"]
    return {"passes <= optax": gx_passes <= ox_passes,
            # up to scalars: gradtx's hyperparameters are jit arguments (4 bytes per read)
            "bytes <= optax": row["extra bytes"] < 4 * MIN_ELEMENTS,
            "time within A/A": row["gradtx/optax paired"] <= 1 + aa_spread(row)}


def aa_spread(row: dict) -> float:
    """How far the A/A control strayed from 1 over the trials: max |optax again/optax - 1|.

    The band 1 +- this is what optax measured against itself can show; a gradtx
    ratio at most its top is within the noise (a faster gradtx always passes).
    """
    lo, hi = row["A/A per trial"]
    return max(1 - lo, hi - 1, 0.0)


def run(sizes, rounds: int, trials: int, names=None) -> list[dict]:
    """One row per (optimizer, N): medians, paired ratios, A/A spread, compiled costs, verdict.

    ``trials`` is an int, or a function of N (a trial at 1e7 parameters takes
    seconds, so the full run takes fewer there). Rows are printed as they come.
    """
    rows = []
    key = jax.random.key(0)
    for n in sizes:
        g = jax.random.normal(key, (n,), jnp.float32)
        inner = max(1, min(200, int(2e7 // n)))  # >= ~10 ms per sample, as in step.py
        n_trials = trials(n) if callable(trials) else trials
        for name in names or OPTIMIZERS:
            gopt, oopt = pair(name)

            def make(gopt=gopt, oopt=oopt):
                p0, gx_step = jnp.full(n, 0.1, jnp.float32), gx_step_fn()
                return [
                    Stepper("gradtx", lambda c: gx_step(gopt, c[0], c[1], g), (p0, gopt.init(p0))),
                    optax_stepper("optax", oopt, jnp.full(n, 0.1, jnp.float32), g),
                    optax_stepper("optax again", oopt, jnp.full(n, 0.1, jnp.float32), g),  # A/A control
                ]

            per_trial: dict[str, list[float]] = {}
            samples: dict[str, list[float]] = {}
            med = trial_medians(make, n_trials, rounds, inner, per_trial, samples)
            control = _per_trial_ratios(per_trial, "optax again", "optax")
            ratios = _per_trial_ratios(per_trial, "gradtx", "optax")
            control_paired = _per_trial_paired(samples, "optax again", "optax", rounds)
            row = {"optimizer": name, "kind": "elementwise" if name in ELEMENTWISE else "per-array",
                   "n": n, "trials": n_trials, "rounds": rounds, "inner": inner, **med,
                   "gradtx/optax paired": paired_ratio(samples, "gradtx", "optax"),
                   "optax again/optax paired": paired_ratio(samples, "optax again", "optax"),
                   "gx/optax per trial": [min(ratios), max(ratios)],
                   "A/A per trial": [min(control), max(control)],
                   "A/A paired per trial": [min(control_paired), max(control_paired)],
                   **compiled_facts(gopt, oopt, n)}
            row["verdict"] = verdict(row)
            rows.append(row)
            print("  {} @ {:.0e}: passes {}/{}, bytes {:.4f}, paired {:.3f}, A/A {:.2f}-{:.2f}".format(
                name, n, *row["passes"], row["bytes gx/optax"], row["gradtx/optax paired"], *row["A/A per trial"]),
                flush=True)
    return rows
