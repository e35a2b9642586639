"""The explain command: where a case's step time goes, op by op, under its framework's profiler,
with its counters; several cases side by side (bench/explain.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.explain import ExplainError

from bench import defaults
from bench.cli.args import UsageError, check_problem_memory, parse_size, size_text
from bench.text import printable


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("explain", help="where a case's step time goes, op by op, under its framework's profiler")
    e.add_argument(
        "case",
        nargs="+",
        metavar="CASE",
        help="framework/step/backend[/device] (cpu if left out), optionally followed by n=, m=, nh= or "
        "dtype= for that case, e.g. tensorflow/manual/eager/cpu n=50000",
    )
    e.add_argument(
        "--size",
        metavar="N,M,NH",
        default=size_text(defaults.SIZE),
        help=f"every case's size unless it says (default: {size_text(defaults.SIZE)})",
    )
    e.add_argument(
        "--dtype", default=defaults.DTYPE, help=f"every case's dtype unless it says (default: {defaults.DTYPE})"
    )
    e.add_argument(
        "--beside",
        metavar="CASE",
        help="run this case's step before each step of the explained ones "
        "(untimed, unprofiled): what sharing a process costs",
    )
    e.add_argument(
        "--budget",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="about this long timing each case, and about as many steps profiled (default: 1)",
    )
    e.add_argument("--out", help="folder for the profilers' traces (default: results/explain-<time>)")


def cmd_explain(args: argparse.Namespace) -> int:
    from bench import explain

    n, m, nh = parse_size(args.size)
    if args.dtype not in defaults.DTYPES:
        raise UsageError(f"unknown dtype {args.dtype!r} (available: {', '.join(defaults.DTYPES)})")
    if not args.budget > 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    keys = explain.parse(args.case, (n, m, nh), args.dtype)
    beside = explain.parse([args.beside], (n, m, nh), args.dtype)[0] if args.beside else None
    for key in [*keys, *([beside] if beside else [])]:
        check_problem_memory((((key.n, key.m, key.nh), None),), (key.dtype,))
    out = Path(args.out) if args.out else explain.default_out()
    done = []
    for key in keys:
        print(printable(f"explaining {key.label} ..."), file=sys.stderr, flush=True)
        done.append(explain.explain(key, out, beside, args.budget))
        print("\n".join(printable(line) for line in explain.lines(done[-1])))
        print()
    if len(done) > 1:
        print("side by side, the op types whose time differs most first:")
        print("\n".join(printable(line) for line in explain.diff(done)))
    return 0


COMMANDS = {"explain": cmd_explain}


def errors() -> "tuple[type[ExplainError]]":
    from bench.explain import ExplainError

    return (ExplainError,)
