"""Shared timing tools for the benchmark suite: interleaved medians, compile timing, environment."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from typing import Any, Callable

import jax


def block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


class Stepper:
    """A donated training step and the buffers it owns: ``carry = step(carry)``."""

    def __init__(self, name: str, step: Callable[[Any], Any], carry: Any):
        self.name, self.step, self.carry = name, step, carry

    def run(self, n: int) -> float:
        """Seconds per step over ``n`` steps (blocking at the end)."""
        carry = self.carry
        t0 = time.perf_counter()
        for _ in range(n):
            carry = self.step(carry)
        block(carry)
        self.carry = carry
        return (time.perf_counter() - t0) / n


def interleaved_samples(steppers: list[Stepper], rounds: int, inner: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per step of each stepper, ``rounds`` samples each, timed in interleaved rounds.

    Every round times each stepper once (``inner`` steps), rotating the order,
    so drift in the machine's speed (frequency, the other core's load) hits all
    of them alike.
    """
    for s in steppers:
        s.run(warmup)
    times: dict[str, list[float]] = {s.name: [] for s in steppers}
    for r in range(rounds):
        order = steppers[r % len(steppers):] + steppers[: r % len(steppers)]
        for s in order:
            times[s.name].append(s.run(inner))
    return times


def interleaved_medians(steppers: list[Stepper], rounds: int, inner: int, warmup: int = 2) -> dict[str, float]:
    """Median of :func:`interleaved_samples` per stepper."""
    return {k: statistics.median(v) for k, v in interleaved_samples(steppers, rounds, inner, warmup).items()}


def trial_medians(make_steppers: Callable[[], list[Stepper]], trials: int, rounds: int, inner: int,
                  per_trial: dict[str, list[float]] | None = None,
                  samples: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Medians pooled over ``trials`` sets of freshly allocated steppers.

    Where a large buffer lands in memory moves one stepper's time by up to
    ~15% at 1e7 parameters on this CPU (two identical steppers differ that
    much), so every trial allocates all buffers anew and the samples of all
    trials are pooled. If ``per_trial`` is given, each trial's medians are
    appended to it (to show how far single trials scatter). If ``samples`` is
    given, it receives every sample, aligned by round across steppers (for
    :func:`paired_ratio`).
    """
    pooled: dict[str, list[float]] = {} if samples is None else samples
    for _ in range(trials):
        steppers = make_steppers()
        for k, v in interleaved_samples(steppers, rounds, inner).items():
            pooled.setdefault(k, []).extend(v)
            if per_trial is not None:
                per_trial.setdefault(k, []).append(statistics.median(v))
        del steppers
    return {k: statistics.median(v) for k, v in pooled.items()}


def paired_ratio(samples: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``a``'s sample / ``b``'s sample in the same round.

    The two samples of a round are taken back to back (tens of milliseconds
    apart), so a change in the machine's speed between rounds or trials (on
    the 2-core machine, tens of percent between processes and trials) cancels in each
    ratio; the ratio of pooled medians keeps it.
    """
    return statistics.median(x / y for x, y in zip(samples[a], samples[b], strict=True))


def loops(fn, *args) -> int:
    """Array-sized loop fusions and copies in the compiled step: each one a pass over memory."""
    return compiled_cost(fn, *args)["loops"]


def compiled_cost(fn, *args) -> dict[str, float]:
    """Noise-free facts of a jitted step's compiled program: its array-sized
    loops (loop fusions and copies, each a pass over memory) and XLA's cost
    analysis (``bytes accessed``, ``flops``)."""
    compiled = fn.lower(*args).compile()
    text = compiled.as_text()
    entry = text[text.index("\nENTRY"):]
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {"loops": len(re.findall(r"= \w+\[\d[\d,]*\]\S* (?:fusion\(.*kind=kLoop|copy\()", entry)),
            "bytes": float(cost.get("bytes accessed", 0.0)), "flops": float(cost.get("flops", 0.0))}


def compile_seconds(make_fn: Callable[[], Callable], args: tuple, donate: tuple[int, ...] = ()) -> float:
    """Wall seconds to trace, lower and compile a fresh function (no cache can hit)."""
    fn = make_fn()
    t0 = time.perf_counter()
    jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return time.perf_counter() - t0


def environment() -> dict[str, Any]:
    import optax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "jax": jax.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.1f} us"
    if s < 1:
        return f"{s * 1e3:8.2f} ms"
    return f"{s:8.2f} s "


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
