"""gradtx's benchmark suite: optimizer steps against optax and against the memory roofline.

    python benchmarks/run.py              # full suite (1e4..1e8 params; about 25 min on 2 CPU cores, zoo included)
    python benchmarks/run.py --quick      # smoke run (< 2 min): 1e4 and 1e6 params, fewer rounds, 3 zoo optimizers
    python benchmarks/run.py --only step,memory --json out.json
    python benchmarks/run.py --only zoo --sizes 1e6 --optimizers lion,lamb --trials 4

Everything runs in one process; timings are medians over interleaved rounds
(see ``_timing.interleaved_samples``), pooled over 16 trials at 1e6 and 1e7
params (8 at other sizes; the zoo: 12 at 1e6, 6 at 1e7) that each compile and
allocate every step anew (``_timing.trial_medians``: where a 40 MB buffer lands
moves a step by up to 15% here); every training step donates its params and
state. Sections:

* ``step``: Adam, SGD-momentum, AdamW and clip+AdamW at N params: gradtx,
  optax, and two byte-matched jitted elementwise kernels (``step.py``);
* ``leaves``: 500 leaves x 1,000 params vs 1 leaf, tree vs packed (``leaves.py``);
* ``compile``: compile time of Adam and a 6-transform chain on 10/100/500 leaves;
* ``memory``: peak memory of a donated Adam step, float32 vs bfloat16 moments;
* ``onepass``: Adam's arithmetic on separate, stacked and interleaved layouts
  (can XLA write params and moments in one pass? ``onepass.py``);
* ``zoo``: issue 15's optimizers (adabelief ... sm3) against optax's at 1e6 and
  1e7 params: passes over memory, bytes, paired step-time ratio and the A/A
  control's spread, with a verdict per row (``zoo.py``).

Ratios are the acceptance numbers of issue 7 (not asserted: timings are
machine facts, recorded in ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import environment, fmt_time, table  # noqa: E402

SECTIONS = ("step", "leaves", "compile", "memory", "onepass", "zoo")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x"


STEP_OPTIONS: dict = {}  # --sizes / --workloads / --trials, for a focused step run
ZOO_OPTIONS: dict = {}  # --sizes / --optimizers / --trials, for a focused zoo run


def section_step(quick: bool) -> dict:
    import step

    sizes = STEP_OPTIONS.get("sizes") or ([10**4, 10**6] if quick else [10**4, 10**5, 10**6, 10**7, 10**8])
    trials = STEP_OPTIONS.get("trials") or (1 if quick else 16)
    rows = step.run(sizes, rounds=5 if quick else 6, trials=trials, names=STEP_OPTIONS.get("workloads"))
    print("\n## Step time (median per step; ratios < 1 mean faster)\n")
    out = []
    for r in rows:
        k = f"kernel-{r['k']}"
        extra = (f"{_ratio(r['gradtx'], r['gradtx adamw'])} ({r['gradtx/gradtx adamw paired']:.2f}x paired)"
                 if "gradtx adamw" in r else "")
        out.append([r["workload"], f"{r['n']:.0e}", fmt_time(r["gradtx"]), fmt_time(r["optax"]),
                    fmt_time(r["roofline"]), fmt_time(r[k]), _ratio(r["gradtx"], r["optax"]),
                    _ratio(r["gradtx"], r["roofline"]), _ratio(r["optax"], r["roofline"]),
                    _ratio(r["gradtx"], r[k]), extra])
    print(table(["workload", "N", "gradtx", "optax", "roofline", "kernel-k", "gx/optax", "gx/roof",
                 "optax/roof", "gx/kernel-k", "gx/gx-adamw"], out))
    print("\n## gradtx / optax: the ratio, its noise, and the compiled programs\n")
    print("pooled: ratio of medians over all trials' samples; paired: median of the ratios of\n"
          "back-to-back samples; A/A: optax against a second copy of itself (the noise floor);\n"
          "py-floats: gradtx with Python-float hyperparameters (converted on every call, as before\n"
          "they were stored as device arrays); closed: gradtx in optax's harness.\n")
    out = []
    for r in rows:
        out.append([r["workload"], f"{r['n']:.0e}", r["trials"], _ratio(r["gradtx"], r["optax"]),
                    f"{r['gradtx/optax paired']:5.2f}x", _ratio(r["optax again"], r["optax"]),
                    f"{r['optax again/optax paired']:5.2f}x",
                    "{:.2f}-{:.2f}".format(*r["gx/optax per trial"]),
                    "{:.2f}-{:.2f}".format(*r["optax again/optax per trial"]),
                    f"{r['gradtx py-floats/optax paired']:5.2f}x", f"{r['gradtx closed over/optax paired']:5.2f}x",
                    "{}/{}".format(*r["loops"]), f"{r['bytes gx/optax']:.4f}",
                    "{:.0f}/{:.0f}".format(*r["flops per param"])])
    print(table(["workload", "N", "trials", "pooled", "paired", "A/A pooled", "A/A paired",
                 "gx/optax per trial", "A/A per trial", "py-floats", "closed",
                 "loops gx/optax", "bytes gx/optax", "flops/param gx/optax"], out))
    return {"rows": rows}


def section_leaves(quick: bool) -> dict:
    import leaves

    r = leaves.run(500, 1000, rounds=5 if quick else 9)
    base = r["gradtx 1 leaf"]
    print("\n## 500 leaves x 1,000 params vs 1 leaf of 500,000 (Adam step)\n")
    print(table(["variant", "time", "vs gradtx 1 leaf"],
                [[k, fmt_time(v), _ratio(v, base)] for k, v in r.items() if k not in ("leaves", "per_leaf")]))
    return r


def section_compile(quick: bool) -> dict:
    import compile_time

    rows = compile_time.run([10, 100] if quick else [10, 100, 500], rounds=1 if quick else 3)
    print("\n## Compile time (trace + lower + compile, fresh function)\n")
    print(table(["workload", "leaves", "gradtx", "gradtx packed", "optax", "gx/optax", "packed/optax"],
                [[r["workload"], r["leaves"], fmt_time(r["gradtx"]), fmt_time(r["gradtx packed"]),
                  fmt_time(r["optax"]), _ratio(r["gradtx"], r["optax"]), _ratio(r["gradtx packed"], r["optax"])]
                 for r in rows]))
    return {"rows": rows}


def section_memory(quick: bool) -> dict:
    import memory

    rows = [memory.run(n) for n in ([10**6] if quick else [10**7, 10**8])]
    print("\n## Peak memory of one Adam step (XLA buffer assignment)\n")
    for r in rows:
        base = r["gradtx f32 moments"]
        print(table(["variant", f"N={r['n']:.0e}", "vs gradtx f32"],
                    [[k, f"{v / 2**20:9.1f} MiB", _ratio(v, base)] for k, v in r.items() if k != "n"]))
    return {"rows": rows}


def section_onepass(quick: bool) -> dict:
    import onepass

    rows = onepass.run([10**6] if quick else [10**6, 10**7], rounds=5 if quick else 6, trials=1 if quick else 3)
    print("\n## One-pass Adam: the same arithmetic on four memory layouts\n")
    for r in rows:
        base = r["seconds"]["separate (3 arrays)"]
        print(table(["layout", f"N={r['n']:.0e}", "loops", "vs separate"],
                    [[k, fmt_time(v), r["loops"][k], _ratio(v, base)] for k, v in r["seconds"].items()]))
    return {"rows": rows}


def section_zoo(quick: bool) -> dict:
    import zoo

    sizes = ZOO_OPTIONS.get("sizes") or ([10**4] if quick else [10**6, 10**7])
    trials = ZOO_OPTIONS.get("trials") or (1 if quick else 12)
    names = ZOO_OPTIONS.get("optimizers") or (zoo.QUICK if quick else zoo.OPTIMIZERS)
    print("\n## Optimizer zoo (issue 15): gradtx / optax, compiled cost and step time\n", flush=True)
    # above 1e6 params a trial takes seconds: half the trials there
    rows = zoo.run(sizes, rounds=3 if quick else 6, trials=lambda n: trials if n <= 10**6 else max(1, trials // 2),
                   names=names)
    print("\npasses: array-sized loops and reductions, conditional branches included (zoo.memory_passes);\n"
          "loops: compiled_cost's entry loops; extra bytes: XLA bytes accessed, gradtx - optax;\n"
          "paired: median of back-to-back gradtx/optax ratios; A/A: optax again / optax per trial;\n"
          "verdict: passes <= optax's; bytes <= optax's up to scalars; paired <= 1 + max|A/A - 1|.\n")
    out = []
    for r in rows:
        v = r["verdict"]
        out.append([r["optimizer"], r["kind"], f"{r['n']:.0e}", r["trials"], "{}/{}".format(*r["passes"]),
                    "{}/{}".format(*r["loops"]), f"{r['bytes gx/optax']:.4f}", f"{r['extra bytes']:+.0f}",
                    fmt_time(r["gradtx"]), fmt_time(r["optax"]), f"{r['gradtx/optax paired']:5.2f}x",
                    "{:.2f}-{:.2f}".format(*r["A/A per trial"]), f"{r['optax again/optax paired']:5.2f}x",
                    " ".join("ok" if v[k] else "FAIL" for k in ("passes <= optax", "bytes <= optax",
                                                                 "time within A/A"))])
    print(table(["optimizer", "kind", "N", "trials", "passes gx/ox", "loops gx/ox", "bytes gx/ox", "extra B",
                 "gradtx", "optax", "paired", "A/A per trial", "A/A paired", "passes bytes time"], out))
    return {"rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer rounds (< 2 min)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--sizes", default=None, help="step and zoo sections: comma-separated sizes, e.g. 1e4,1e6")
    parser.add_argument("--workloads", default=None, help="step section: e.g. adam,sgd_momentum")
    parser.add_argument("--optimizers", default=None, help="zoo section: e.g. lion,lamb (default: all 17)")
    parser.add_argument("--trials", type=int, default=None,
                        help="step section: trials at 1e6 and 1e7; zoo: trials up to 1e6 (half above)")
    args = parser.parse_args(argv)
    for options in (STEP_OPTIONS, ZOO_OPTIONS):
        if args.sizes:
            options["sizes"] = [int(float(x)) for x in args.sizes.split(",")]
        if args.trials:
            options["trials"] = args.trials
    if args.workloads:
        STEP_OPTIONS["workloads"] = [w.strip() for w in args.workloads.split(",")]
    if args.optimizers:
        from zoo import OPTIMIZERS

        ZOO_OPTIONS["optimizers"] = [w.strip() for w in args.optimizers.split(",")]
        unknown = [w for w in ZOO_OPTIONS["optimizers"] if w not in OPTIMIZERS]
        if unknown:
            parser.error(f"--optimizers: unknown optimizer(s) {unknown}; choose from {OPTIMIZERS}")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad:
        parser.error(f"--only: unknown section(s) {bad}; choose from {SECTIONS}")

    env = environment()
    print(f"# gradtx benchmarks{' (quick)' if args.quick else ''}: jax {env['jax']}, optax {env['optax']}, "
          f"{env['backend']} x{len(env['devices'])}, {env['cpu']} ({env['cpu_count']} cores)")
    t0 = time.perf_counter()
    results = {"environment": env, "quick": args.quick}
    for name in chosen:
        results[name] = globals()[f"section_{name}"](args.quick)
    results["seconds"] = time.perf_counter() - t0
    print(f"\ntotal {results['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
