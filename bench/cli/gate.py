"""The compare and gate commands: their flags parsed into a request, the lines they print, and the
summary and JSON they write for CI (--summary, --json, $GITHUB_STEP_SUMMARY; bench/gate/text.py
renders them). Exit codes: 0 pass, 1 a regression or a lost case, 2 bad input (one line on stderr)."""

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench import defaults
from bench.cli.args import Outputs, Parser, UsageError, names, output_flags, parse_size, size_text

if TYPE_CHECKING:
    from bench import gate

EXIT_FAILED = 1  # a regression, a case the candidate broke or lost, a counter change set to fail


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    c = sub.add_parser("compare", help="compare two runs case by case: ratio with a 95%% CI and a verdict")
    c.add_argument("base", help="the base run: a run folder or records .jsonl file")
    c.add_argument("candidate", help="the candidate run")
    _rule_flags(c)
    output_flags(c)

    g = sub.add_parser(
        "gate",
        help="CI regression gate: a base revision against the working tree, paired; "
        "or against a stored baseline; or experiments that measure the gate itself",
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument(
        "--base",
        metavar="REV",
        help="paired mode (the default, REV HEAD~1): REV's harness in a temporary "
        "git worktree against the working tree, alternately, in separate processes",
    )
    mode.add_argument(
        "--baseline",
        metavar="PATH",
        help="stored mode: against a baseline file, or the one for this machine in a folder such as results/baselines/",
    )
    mode.add_argument(
        "--save-baseline",
        metavar="PATH",
        help="run the working tree and write a baseline (a folder gets <machine key>.jsonl)",
    )
    mode.add_argument(
        "--aa",
        type=int,
        metavar="N",
        help="run unchanged code against itself N times; print and store the rule's false-positive rate",
    )
    mode.add_argument(
        "--rates",
        type=int,
        metavar="ROUNDS",
        help="the A/A and detection experiment: ROUNDS rounds of the working tree, itself, and a copy "
        "whose manual step does 25%% more work; print and store both rates",
    )
    g.add_argument(
        "--pairs", type=int, help=f"process pairs per gate run (runs in stored mode; default {defaults.GATE_PAIRS})"
    )
    g.add_argument(
        "--size",
        metavar="N,M,NH",
        nargs="+",
        help=f"problem sizes (default: {size_text(defaults.GATE_SIZE)} in process pairs; "
        f"{' and '.join(size_text(s) for s in defaults.GATE_CALLS_SIZES)} in one process)",
    )
    g.add_argument(
        "--step",
        nargs="+",
        help=f"steps (default: {' '.join(defaults.GATE_STEPS)} in process pairs of "
        f"{defaults.GATE_FRAMEWORK}; else those of "
        f"{' '.join(defaults.GATE_CALLS_STEPS)} each framework has)",
    )
    g.add_argument(
        "--backend",
        nargs="+",
        help=f"backends (default: {' '.join(defaults.GATE_BACKENDS)} in process "
        f"pairs of {defaults.GATE_FRAMEWORK}; else every backend)",
    )
    g.add_argument("--device", choices=("cpu", "gpu", "all"), default="all")
    g.add_argument(
        "--instructions",
        nargs="+",
        metavar="PATTERN",
        help="the cases a one-process gate also counts under Callgrind, as framework/step/backend/device "
        f"patterns, or none (default: the settings' instructions-cases, else {' '.join(defaults.GATE_INSTRUCTIONS)})",
    )
    g.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help=f"timed seconds a case in each process (default {defaults.GATE_BUDGET_S:g}); in one process, "
        f"--pairs x this a side (default {defaults.GATE_CALLS_BUDGET_S:g})",
    )
    g.add_argument(
        "--threads",
        type=int,
        help=f"CPU threads a process (default {defaults.GATE_THREADS} in process pairs, "
        f"{defaults.GATE_CALLS_THREADS} a framework in one process; 0: the frameworks' default)",
    )
    g.add_argument(
        "--pin",
        metavar="auto|off|CPUS",
        default=defaults.GATE_PIN,
        help="bind the framework workers: auto: to the CPUs idle longest when the gate starts, as many as "
        "--threads (both sides the same ones; none with the frameworks' default threads); off; or "
        f"CPU numbers (default: {defaults.GATE_PIN})",
    )
    g.add_argument(
        "--pairing",
        choices=("auto", "calls", "processes"),
        default="auto",
        help="paired mode: calls (both sides' steps in one process, interleaved take by take), processes "
        "(each side's own harness, alternately), or auto (calls when nothing outside kernels/, tests/ and text "
        "changed; default)",
    )
    g.add_argument(
        "--framework",
        nargs="+",
        help=f"frameworks to time (default: {defaults.GATE_FRAMEWORK} in process "
        "pairs; every installed one in one process)",
    )
    g.add_argument("--tree", help="the git checkout whose working tree is the candidate (default: this one)")
    g.add_argument("--out", help="keep every process's records under this folder (default: a temporary one)")
    g.add_argument(
        "--aa-file",
        help="where A/A rates are stored and read (default: <tree>/results/baselines/aa.json; "
        "a gate against REV reads REV's committed copy)",
    )
    g.add_argument(
        "--plan",
        action="store_true",
        help="print what the gate would run, about how long it would take "
        "and what judges it, then exit without running anything",
    )
    _rule_flags(g)
    output_flags(g)


def _rule_flags(p):
    p.add_argument(
        "--threshold",
        help=f"default threshold, e.g. 10%% (default: pyproject's, else "
        f"{defaults.GATE_THRESHOLD.replace('%', '%%')}); per-case overrides in "
        "pyproject.toml still apply",
    )
    p.add_argument(
        "--config",
        help="the pyproject.toml with [tool.backprop-bench.gate] (default: the repository's; "
        "gate --base REV: REV's own)",
    )
    p.add_argument(
        "--allow-mismatch", action="store_true", help="compare runs whose machine or framework versions differ"
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass although the candidate lacks cases the base has, or records lines are unreadable "
        "(by default each fails: a verdict never passes on missing data)",
    )


def _read(path: str, side: str, allow_missing: bool) -> list:
    """A side's records; RecordsError (exit 2) where a line is unreadable, unless allow_missing (a
    warning then names what was dropped)."""
    from bench import records
    from bench.cli.report import warn

    recs, problems = records.load(path)
    if problems and not allow_missing:
        raise records.RecordsError(
            f"{side} {path}: {len(problems)} unreadable record line(s), the first {problems[0]}; "
            "--allow-missing compares what is left"
        )
    if not recs:
        first = f" ({len(problems)} bad line(s), the first {problems[0]})" if problems else ""
        raise records.RecordsError(f"{path}: no usable records{first}")
    for line in problems:
        warn(line)
    if problems:
        warn(f"{side}: dropped {len(problems)} bad record(s); kept {len(recs)}")
    return recs


def cmd_compare(args: argparse.Namespace) -> int:
    from bench import REPO, compare, noise
    from bench.gate import settings, text

    outputs = Outputs.of(args)
    thresholds = settings.load_thresholds(
        Path(args.config) if args.config else REPO / "pyproject.toml", args.threshold, explicit=bool(args.config)
    )
    base = _read(args.base, "base", args.allow_missing)
    candidate = _read(args.candidate, "candidate", args.allow_missing)
    pairing = compare.pairing_between(base, candidate)
    between = noise.between_runs(noise.repository(), candidate[0].fingerprint)
    how = compare.How(
        pairing, thresholds, between, allow_mismatch=args.allow_mismatch, allow_missing=args.allow_missing
    )
    result = compare.compare(base, candidate, how)
    widened = any("run-to-run" in c.method for c in result.comparisons)
    notes = (
        [
            f"separate runs: intervals widened by the run-to-run noise between runs, sd {between.run_sd:.0%} "
            f"({between.run_source})"
        ]
        if widened
        else []
    )
    for line in [*text.table(result), text.summary(result), *notes]:
        print(line)
    about = [f"base: {args.base}", f"candidate: {args.candidate}"]
    return outputs.write(
        "compare",
        lambda: text.markdown_section("Comparison", about, result, notes),
        lambda: {"command": "compare", "base": args.base, "candidate": args.candidate, **text.result_json(result)},
        EXIT_FAILED if result.failed else 0,
    )


def request(args: argparse.Namespace) -> "gate.Request":
    """The gate's Request from its flags (sizes and CPUs parsed; UsageError naming a bad one)."""
    from bench.cli.run import parse_pin
    from bench.gate import Request

    mode = (
        "save-baseline"
        if args.save_baseline
        else "stored"
        if args.baseline
        else "rates"
        if args.rates is not None
        else ("aa-calls" if args.pairing == "calls" else "aa")
        if args.aa is not None
        else "paired"
    )
    pin = args.pin if args.pin in ("auto", "off") else parse_pin(args.pin)
    return Request(
        mode=mode,
        rev=args.base or "HEAD~1",
        baseline=args.baseline,
        save=args.save_baseline,
        runs=args.aa if args.aa is not None else args.rates,
        pairs=args.pairs,
        sizes=tuple(parse_size(s) for s in args.size or ()),
        steps=names(args.step) or (),
        backends=names(args.backend) or (),
        frameworks=names(args.framework) or (),
        device=args.device,
        budget_s=args.budget,
        threads=args.threads,
        pin=pin,
        pairing=args.pairing,
        tree=args.tree,
        aa_file=args.aa_file,
        threshold=args.threshold,
        config=args.config,
        allow_mismatch=args.allow_mismatch,
        allow_missing=args.allow_missing,
        instructions=None if args.instructions is None else tuple(p for p in args.instructions if p != "none"),
    )


def cmd_gate(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.gate.plan import Done

    outputs = Outputs.of(args)
    plan = gate.make(request(args))
    if args.plan:
        done = Done(plan.describe(), nothing=plan.nothing)
        print("\n".join(done.lines))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-gate-runs-") as scratch:
            # absolute: each side's harness runs in its own tree, where a relative --out would put
            # the base's records in its temporary worktree, gone with it
            done = gate.execute(plan, Path(args.out).resolve() if args.out else Path(scratch))
        for line in done.lines:
            print(line, flush=True)
    return outputs.write(
        "gate",
        lambda: gate.summary_markdown(plan, done),
        lambda: gate.summary_json(plan, done),
        EXIT_FAILED if done.failed else 0,
    )


COMMANDS = {"compare": cmd_compare, "gate": cmd_gate}


def errors() -> tuple[type[Exception], type[Exception], type[Exception], type[Exception]]:
    """The exceptions of these commands that mean bad input (exit 2, one line)."""
    from bench import git
    from bench.compare import CompareError
    from bench.gate import GateError

    return (CompareError, GateError, git.RevisionError, UsageError)
