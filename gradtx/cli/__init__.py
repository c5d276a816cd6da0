"""Command line: ``gradtx sweep`` (the main job) and ``gradtx conditioning``."""

from __future__ import annotations

import argparse
import sys

from gradtx.cli import conditioning, sweep

__all__ = ["main"]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    p = argparse.ArgumentParser(
        prog="gradtx",
        description="gradtx: composable gradient transformations for JAX. "
        "Run `gradtx sweep` for a learning-rate sweep of SGD-momentum, RMSProp and Adam on a small MLP.",
    )
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    subs = {"sweep": sweep.add_parser(sub), "conditioning": conditioning.add_parser(sub)}
    return p, subs


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gradtx`` script and ``python -m gradtx``."""
    parser, subs = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    return args.run(args, subs[args.command])
