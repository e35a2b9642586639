"""The bisect command: its flags parsed into a request, the plan or the bisection printed, and its
summary and JSON written (bench/bisect/ does the work). Exit codes: 0 answered (the first bad
commit, or no change between GOOD and BAD), 1 no answer (a step could not tell, or the cap was
reached: the same command resumes), 2 bad input. With --run, for `git bisect run`: 0 good, 1 bad,
125 skip, and 128 (which stops git bisect) where the bisection itself cannot go on."""

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from bench import defaults
from bench.cli.args import Outputs, Parser, UsageError, names, output_flags, parse_size
from bench.text import printable

if TYPE_CHECKING:
    from bench import bisect

EXIT_NO_ANSWER = 1
EXIT_STOP_GIT_BISECT = 128  # `git bisect run` stops on an exit status of 128 or more


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    b = sub.add_parser(
        "bisect",
        help="find the commit between GOOD and BAD that changed a case: each commit tried is timed beside both "
        "ends, counters first",
    )
    b.add_argument("good", metavar="GOOD", help="a commit where the case is as it was (an ancestor of BAD)")
    b.add_argument("bad", metavar="BAD", help="a commit where it changed")
    b.add_argument(
        "--case",
        nargs="+",
        metavar="PATTERN",
        help="the cases to bisect, fnmatch patterns of framework/step/backend/device or labels, e.g. "
        "'numpy/manual/*' (default: every case a step times)",
    )
    b.add_argument("--repo", help="the git checkout whose history is bisected (default: this one)")
    b.add_argument("--framework", nargs="+", help="frameworks to time (default: the gate's, or those --case names)")
    b.add_argument("--step", nargs="+", help="steps to time (default: the gate's)")
    b.add_argument("--backend", nargs="+", help="backends to time (default: the gate's)")
    b.add_argument("--size", metavar="N,M,NH", nargs="+", help="problem sizes (default: the gate's)")
    b.add_argument("--device", choices=("cpu", "gpu", "all"), default="all")
    b.add_argument("--budget", type=float, metavar="SECONDS", help="timed seconds a case a pair (default: the gate's)")
    b.add_argument("--pairs", type=int, help=f"pairs (rounds) a step (default {defaults.GATE_PAIRS})")
    b.add_argument("--threads", type=int, help="CPU threads a process (default: the gate's)")
    b.add_argument(
        "--pairing",
        choices=("auto", "calls", "processes"),
        default="auto",
        help="calls: the commits' steps in one process; processes: each commit's own harness; auto: calls "
        "where only kernels/, tests and text changed in the range (default)",
    )
    b.add_argument(
        "--by",
        choices=("auto", "counters", "times"),
        default="auto",
        help="what finds the commit: counters where the ends' counters differ, else times (auto, default); "
        "or only one of them",
    )
    b.add_argument("--threshold", help="how far GOOD and BAD must differ to bisect (default: the gate's threshold)")
    b.add_argument(
        "--instructions",
        nargs="+",
        metavar="PATTERN",
        default=(),
        help="cases also counted under Callgrind in each step, as the gate counts them (default: none)",
    )
    b.add_argument(
        "--out", help="the folder that keeps every step (default: results/bisect/GOOD-BAD); the same command resumes"
    )
    b.add_argument("--db", metavar="URL", help="also add each step to this history store, and reuse what it holds")
    b.add_argument(
        "--max-steps",
        type=int,
        default=defaults.BISECT_MAX_STEPS,
        help="stop after this many steps (default %(default)s)",
    )
    b.add_argument("--max-minutes", type=float, help="stop before a step that would start after this long")
    b.add_argument("--plan", action="store_true", help="print the range, the steps and an estimate, then exit")
    b.add_argument(
        "--run",
        action="store_true",
        help="for `git bisect run`: judge the checked-out commit of --repo beside GOOD and BAD once; "
        "exit 0 good, 1 bad, 125 skip",
    )
    output_flags(b)


def request(args: argparse.Namespace) -> "bisect.Request":
    from bench.bisect import Request

    return Request(
        good=args.good,
        bad=args.bad,
        cases=tuple(args.case or ()),
        repo=args.repo,
        frameworks=names(args.framework) or (),
        steps=names(args.step) or (),
        backends=names(args.backend) or (),
        sizes=tuple(parse_size(s) for s in args.size or ()),
        device=args.device,
        budget_s=args.budget,
        pairs=args.pairs,
        threads=args.threads,
        pairing=args.pairing,
        threshold=args.threshold,
        instructions=tuple(p for p in args.instructions if p != "none"),
        by=args.by,
        out=args.out,
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        run_mode=args.run,
    )


def _markdown(answer: "bisect.Answer") -> str:
    from bench import bisect

    body = "\n".join(bisect.lines(answer))
    return f"## Bisect\n\n```\n{body}\n```\n"


def cmd_bisect(args: argparse.Namespace) -> int:

    outputs = Outputs.of(args)
    if args.run:  # git bisect run takes exit 2 for "bad": bad input stops it instead
        try:
            return _bisect(args, outputs)
        except (*errors(), UsageError) as e:
            print(f"python -m bench bisect: error: {printable(e)} (exit 128: git bisect run stops)", file=sys.stderr)
            return EXIT_STOP_GIT_BISECT
    return _bisect(args, outputs)


def _bisect(args: argparse.Namespace, outputs: Outputs) -> int:
    from bench import bisect

    plan = bisect.make(request(args))
    if args.plan:
        print("\n".join(plan.describe()))
        return 0
    history = None
    if args.db:
        from bench.history.store import Store

        history = bisect.History(Store(args.db), plan)

    def terminated(signum, frame):
        raise SystemExit(128 + signum)  # unwinds the worktrees; every finished step is kept

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        bisector = bisect.Bisector(plan, bisect.Hooks(), history)
        if args.run:
            code, line = bisector.judge_once()
            print(line)
            return code
        answer = bisector.bisect()
    except (KeyboardInterrupt, SystemExit) as e:
        code = e.code if isinstance(e, SystemExit) and isinstance(e.code, int) else 130
        print(f"bisect: stopped; every finished step is kept in {plan.out}: the same command resumes", file=sys.stderr)
        return EXIT_STOP_GIT_BISECT if args.run else code
    finally:
        signal.signal(signal.SIGTERM, previous)
    for line in [*bisect.lines(answer), *bisector.said, *(history.said() if history else [])]:
        print(line, flush=True)
    return outputs.write(
        "bisect", lambda: _markdown(answer), lambda: bisect.to_json(answer), EXIT_NO_ANSWER if answer.failed else 0
    )


COMMANDS = {"bisect": cmd_bisect}


def errors() -> "tuple[type[Exception], type[Exception], type[Exception]]":
    from bench.bisect import BisectError
    from bench.compare import CompareError
    from bench.history.store import HistoryError

    return (BisectError, CompareError, HistoryError)
