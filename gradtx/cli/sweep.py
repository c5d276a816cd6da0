"""``gradtx sweep``: a learning-rate sweep (or PBT) of several optimizers, one program each.

With no arguments: SGD-momentum, RMSProp and Adam, 32 log-uniform learning
rates each in [1e-4, 1], 500 full-batch steps of a 2-32-32-1 tanh MLP on 512
generated points. Prints the leaderboard and writes ``results.csv``,
``results.json`` and ``sweep.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["add_parser", "run"]

PROBLEMS = ("mlp", "quadratic", "rosenbrock", "beale", "noisy-quadratic")
DEFAULT_OPTIMIZERS = "sgd_momentum,rmsprop,adam"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep",
        help="learning-rate sweep of several optimizers (the main job)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--problem", default="mlp", choices=PROBLEMS, help="built-in problem (default: mlp)")
    p.add_argument("--kappa", type=float, default=100.0, help="condition number for --problem quadratic (default 100)")
    p.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS,
                   help=f"comma-separated names from gx.OPTIMIZERS (default: {DEFAULT_OPTIMIZERS})")
    p.add_argument("--lr", default="1e-4:1", metavar="LOW:HIGH",
                   help="learning rates, sampled log-uniformly in [LOW, HIGH] (default 1e-4:1)")
    p.add_argument("--runs", type=int, default=32, help="runs (population size with --pbt) per optimizer (default 32)")
    p.add_argument("--steps", type=int, default=500, help="training steps per run (default 500)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for the learning rates and data (default 0)")
    p.add_argument("--pbt", action="store_true",
                   help="population-based training instead of random search, compared with random search")
    p.add_argument("--interval", type=int, default=None, help="PBT: steps between exploit steps (default steps/20)")
    p.add_argument("--out", default="gradtx-sweep", help="output folder (default ./gradtx-sweep/)")
    p.add_argument("--devices", type=int, default=None,
                   help="shard runs across this many devices (default: all visible; on CPU, N simulated devices)")
    p.add_argument("--top", type=int, default=10, help="leaderboard rows to print (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run, command="sweep")
    return p


def _lr_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"--lr must be LOW:HIGH, e.g. 1e-4:1, got {text!r}") from None
    if not 0 < lo <= hi:
        raise ValueError(f"--lr needs 0 < LOW <= HIGH, got {text!r}")
    return lo, hi


def _validate(args: argparse.Namespace) -> tuple[float, float, list[str]]:
    from gradtx.optimizers.registry import OPTIMIZERS

    lo, hi = _lr_range(args.lr)
    names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    unknown = [n for n in names if n not in OPTIMIZERS]
    if not names or unknown:
        raise ValueError(f"--optimizers: unknown {unknown or names}; choose from {', '.join(OPTIMIZERS)}")
    if len(set(names)) != len(names):
        raise ValueError("--optimizers: a name is repeated")
    for flag, v, low in (("--runs", args.runs, 2 if args.pbt else 1), ("--steps", args.steps, 1), ("--top", args.top, 1)):
        if v < low:
            raise ValueError(f"{flag} must be >= {low}, got {v}")
    if not args.kappa >= 1:
        raise ValueError(f"--kappa must be >= 1, got {args.kappa}")
    if args.interval is not None and not 1 <= args.interval <= args.steps:
        raise ValueError(f"--interval must be in [1, --steps], got {args.interval}")
    if args.devices is not None and args.devices < 1:
        raise ValueError(f"--devices must be >= 1, got {args.devices}")
    return lo, hi, names


def _problem(args: argparse.Namespace):
    import gradtx as gx

    if args.problem == "mlp":
        return gx.mlp_regression(seed=args.seed)
    if args.problem == "quadratic":
        return gx.quadratic((0.8, 0.6), (1.0, args.kappa))
    if args.problem == "noisy-quadratic":
        return gx.noisy_quadratic(kappa=args.kappa)
    return {"rosenbrock": gx.rosenbrock, "beale": gx.beale}[args.problem]()


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        lo, hi, names = _validate(args)
    except ValueError as e:
        parser.error(str(e))
    if args.devices and args.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        # Simulated CPU devices; takes effect because no backend has started yet.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}").strip()
    import jax
    import jax.numpy as jnp

    import gradtx as gx

    prob = _problem(args)
    loss, data = (prob.batch_loss, prob.data) if prob.batch_loss is not None else (prob.loss, None)
    params = prob.params(jnp.float32)
    spaces = {n: gx.OPTIMIZERS[n].space(learning_rate=gx.log_uniform(lo, hi)) for n in names}
    key = jax.random.key(args.seed)
    from gradtx.sweeps.devices import resolve_devices

    try:
        devices = resolve_devices(args.devices) if args.devices else None
    except ValueError as e:
        parser.error(str(e))
    os.makedirs(args.out, exist_ok=True)
    ndev = len(devices) if devices else len(jax.local_devices())
    what = "PBT vs random search" if args.pbt else "random search"
    print(f"gradtx sweep: {what} on {prob.name}, {args.runs} runs x {len(names)} optimizers, {args.steps} steps, "
          f"learning rate log-uniform in [{lo:g}, {hi:g}], {ndev} {jax.default_backend()} device(s)")
    common = dict(steps=args.steps, num=args.runs, key=key, data=data, eval_fn=prob.loss, progress=not args.quiet,
                  devices=devices)
    start = time.perf_counter()
    result = gx.sweep(loss, params, spaces, **common)
    print(f"\n{result.format(k=args.top)}\n")
    written = _run_pbt(args, gx, loss, params, spaces, common, result) if args.pbt else []
    print(f"best{' of the random search' if args.pbt else ''}: {_describe(result.best)}")
    print(f"time: {time.perf_counter() - start:.1f} s")
    result.to_csv(os.path.join(args.out, "results.csv"))
    result.to_json(os.path.join(args.out, "results.json"))
    written += ["results.csv", "results.json"]
    try:
        result.plot(os.path.join(args.out, "sweep.png"), k=5)
        written.append("sweep.png")
    except ImportError as e:
        print(f"note: {e}; skipped sweep.png", file=sys.stderr)
    print(f"wrote {', '.join(written)} to {os.path.abspath(args.out)}")
    return 0


def _run_pbt(args, gx, loss, params, spaces, common, random_search) -> list[str]:
    """PBT per family from the random search's initial population; returns the files written."""
    import jax

    from gradtx.sweeps.results import dump_json

    interval = args.interval or max(1, args.steps // 20)
    doc, written = {}, ["pbt.json"]
    print(f"PBT: every {interval} steps the worst 20% copy a top-20% member and perturb its learning rate "
          "(x0.8 / x1.2). PBT is greedy: it wins where the best rate changes during training "
          "(try --problem noisy-quadratic) and can lose where a large rate only pays off late.")
    for i, (name, space) in enumerate(spaces.items()):
        key = jax.random.fold_in(common["key"], i)  # gx.sweep's key for family i: the same population
        res = gx.pbt(loss, params, space, interval=interval, **{**common, "key": key})
        rs_best = next(r for r in random_search.table() if r["family"] == name)["final_loss"]
        best = res.best
        print(f"{name:>14} PBT best final loss {best['final_loss']:.4g} (learning rate now {best['learning_rate']:.3g})"
              f"  vs random search best {rs_best:.4g}")
        doc[name] = res.to_dict()
        try:
            res.plot(os.path.join(args.out, f"pbt-{name}.png"))
            written.append(f"pbt-{name}.png")
        except ImportError:
            pass
    dump_json(doc, os.path.join(args.out, "pbt.json"))
    print()
    return written


def _describe(row: dict) -> str:
    skip = {"run", "family", "diverged", "stopped_at", "steps_to_tol"}
    vals = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k not in skip)
    return f"{row['family']}: {vals}"
