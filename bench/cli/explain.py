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
        metavar="SECONDS",
        help="about this long timing each case, and about as many steps profiled (default: 1)",
    )
    e.add_argument("--out", help="folder for the profilers' traces (default: results/explain-<time>)")
    e.add_argument(
        "--instructions",
        action="store_true",
        help="count a call's instructions under Valgrind's Callgrind instead, function by function ("
        "CPU steps, a minute or more a case: use a small --size); two cases, or one with --base, are diffed",
    )
    e.add_argument(
        "--base",
        metavar="REV",
        help="with --instructions: this revision's step beside the working tree's, in one process, and their diff",
    )
    e.add_argument("--top", type=int, default=25, metavar="N", help="functions or op types shown (default: 25)")


def cmd_explain(args: argparse.Namespace) -> int:
    from bench import explain

    n, m, nh = parse_size(args.size)
    if args.dtype not in defaults.DTYPES:
        raise UsageError(f"unknown dtype {args.dtype!r} (available: {', '.join(defaults.DTYPES)})")
    if args.instructions and (args.beside or args.budget is not None):
        raise UsageError("--instructions counts a call's instructions: --beside and --budget are for the time profile")
    args.budget = 1.0 if args.budget is None else args.budget
    if not args.budget > 0:
        raise UsageError(f"--budget must be positive, got {args.budget}")
    keys = explain.parse(args.case, (n, m, nh), args.dtype)
    beside = explain.parse([args.beside], (n, m, nh), args.dtype)[0] if args.beside else None
    for key in [*keys, *([beside] if beside else [])]:
        check_problem_memory((((key.n, key.m, key.nh), None),), (key.dtype,))
    out = Path(args.out) if args.out else explain.default_out()
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if args.base and not args.instructions:
        raise UsageError("--base needs --instructions (the op-by-op profile explains the working tree's steps)")
    if args.instructions:
        return _instructions(keys, out, args.base, args.top)
    done = []
    for key in keys:
        print(printable(f"explaining {key.label} ..."), file=sys.stderr, flush=True)
        done.append(explain.explain(key, out, beside, args.budget))
        print("\n".join(printable(line) for line in explain.lines(done[-1], args.top)))
        print()
    if len(done) > 1:
        print("side by side, the op types whose time differs most first:")
        print("\n".join(printable(line) for line in explain.diff(done, args.top)))
    return 0


def _instructions(keys: list, out: Path, base: str | None, top: int) -> int:
    """explain --instructions: each case counted function by function; two cases, or a case and
    --base REV, diffed."""
    from bench import REPO, explain, git

    if base and len(keys) != 1:
        raise UsageError("--base compares one case at two revisions; name one case")
    if len(keys) > 2:
        raise UsageError("--instructions counts one case, or diffs two; name at most two")
    counted = []
    if base:
        try:
            sha = git.resolve(REPO, base)
        except git.NoRevision as e:
            raise UsageError(f"--base {base}: {e}") from None
        print(
            printable(f"counting {keys[0].label} at {base} and in the working tree under Callgrind ..."),
            file=sys.stderr,
        )
        with git.worktree(REPO, sha) as tree:
            counted = explain.count(keys[0], out, (base, tree))
    else:
        for key in keys:
            print(printable(f"counting {key.label} under Callgrind ..."), file=sys.stderr, flush=True)
            counted += explain.count(key, out)
    for c in counted:
        print("\n".join(printable(line) for line in explain.counted_lines(c, top)))
        print()
    if len(counted) == 2:
        print("\n".join(printable(line) for line in explain.counted_diff(counted[0], counted[1], top)))
    print(printable(f"Callgrind's dumps: {out} (callgrind_annotate or KCachegrind read them)"))
    return 0


COMMANDS = {"explain": cmd_explain}


def errors() -> "tuple[type[ExplainError]]":
    from bench.explain import ExplainError

    return (ExplainError,)
