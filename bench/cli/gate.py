"""The compare and gate commands: their flags -> bench.gate calls, and the lines they print.
Exit codes: 0 pass, 1 a regression, 2 bad input (one line on stderr)."""
import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import defaults, env
from bench.cli.args import Parser, names, parse_size, size_text

if TYPE_CHECKING:
    from bench.gate import CompareError, GateError

EXIT_REGRESSED = 1


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    c = sub.add_parser("compare", help="compare two runs case by case: ratio with a 95%% CI and a verdict")
    c.add_argument("base", help="the base run: a run folder or records .jsonl file")
    c.add_argument("candidate", help="the candidate run")
    _rule_flags(c)

    g = sub.add_parser("gate", help="CI regression gate: a base revision against the working tree, paired; "
                                    "or against a stored baseline; or experiments that measure the gate itself")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--base", metavar="REV", help="paired mode (the default, REV HEAD~1): REV's harness in a temporary "
                                                    "git worktree against the working tree, alternately, in separate processes")
    mode.add_argument("--baseline", metavar="PATH", help="stored mode: against a baseline file, or the one for this "
                                                         "machine in a folder such as results/baselines/")
    mode.add_argument("--save-baseline", metavar="PATH", help="run the working tree and write a baseline (a folder gets "
                                                              "<machine key>.jsonl)")
    mode.add_argument("--aa", type=int, metavar="N", help="run unchanged code against itself N times; print and store "
                                                          "the rule's false-positive rate")
    mode.add_argument("--rates", type=int, metavar="ROUNDS",
                      help="the A/A and detection experiment: ROUNDS rounds of the working tree, itself, and a copy "
                           "whose manual step does 25%% more work; print and store both rates")
    g.add_argument("--pairs", type=int, help=f"process pairs per gate run (runs in stored mode; default {defaults.GATE_PAIRS})")
    g.add_argument("--size", metavar="N,M,NH", nargs="+",
                   help=f"problem sizes (default: {size_text(defaults.GATE_SIZE)} in process pairs; "
                        f"{' and '.join(size_text(s) for s in defaults.GATE_CALLS_SIZES)} in one process)")
    g.add_argument("--step", nargs="+", help=f"steps (default: {' '.join(defaults.GATE_STEPS)} in process pairs of "
                                              f"{defaults.GATE_FRAMEWORK}; else those of "
                                              f"{' '.join(defaults.GATE_CALLS_STEPS)} each framework has)")
    g.add_argument("--backend", nargs="+", help=f"backends (default: {' '.join(defaults.GATE_BACKENDS)} in process "
                                                f"pairs of {defaults.GATE_FRAMEWORK}; else every backend)")
    g.add_argument("--device", choices=("cpu", "gpu", "all"), default="all")
    g.add_argument("--budget", type=float, metavar="SECONDS",
                   help=f"timed seconds a case in each process (default {defaults.GATE_BUDGET_S:g}); in one process, "
                        f"--pairs x this a side (default {defaults.GATE_CALLS_BUDGET_S:g})")
    g.add_argument("--threads", type=int,
                   help=f"CPU threads a process (default {defaults.GATE_THREADS} in process pairs, "
                        f"{defaults.GATE_CALLS_THREADS} a framework in one process; 0: the frameworks' default)")
    g.add_argument("--pin", metavar="auto|off|CPUS", default=defaults.GATE_PIN,
                   help="bind the framework workers: auto: to the CPUs idle longest when the gate starts, as many as "
                        "--threads (both sides the same ones; none with the frameworks' default threads); off; or "
                        f"CPU numbers (default: {defaults.GATE_PIN})")
    g.add_argument("--pairing", choices=("auto", "calls", "processes"), default="auto",
                   help="paired mode: calls (both sides' steps in one process, interleaved take by take), processes "
                        "(each side's own harness, alternately), or auto (calls when nothing outside kernels/, tests/ and text changed; default)")
    g.add_argument("--framework", nargs="+", help=f"frameworks to time (default: {defaults.GATE_FRAMEWORK} in process "
                                                  "pairs; every installed one in one process)")
    g.add_argument("--tree", help="the git checkout whose working tree is the candidate (default: this one)")
    g.add_argument("--out", help="keep every process's records under this folder (default: a temporary one)")
    g.add_argument("--aa-file", help="where A/A rates are stored and read (default: <tree>/results/baselines/aa.json; "
                                     "a gate against REV reads REV's committed copy)")
    _rule_flags(g)


def _rule_flags(p):
    p.add_argument("--threshold", help=f"default threshold, e.g. 10%% (default: pyproject's, else "
                                       f"{defaults.GATE_THRESHOLD.replace('%', '%%')}); per-case overrides in "
                                       "pyproject.toml still apply")
    p.add_argument("--config", help="the pyproject.toml with [tool.backprop-bench.gate] (default: the repository's; gate --base REV: REV's own)")
    p.add_argument("--allow-mismatch", action="store_true", help="compare runs whose machine or framework versions differ")


def _thresholds(args, tree):
    from bench import gate
    return gate.load_thresholds(Path(args.config) if args.config else Path(tree) / "pyproject.toml", args.threshold,
                                explicit=bool(args.config))


def _as_of(args, tree, sha, rev, thresholds):
    """(the thresholds REV is compared with the working tree by, a line saying so or ""): without
    --config, those of REV's own pyproject.toml, so a change cannot loosen its own gate, nor switch it
    off by a slip: settings it writes there judge the changes after it. The working tree's where REV's
    are unusable (said)."""
    from bench import gate
    from bench.gate.rule import thresholds_from
    from bench.gate.worktree import text_at
    if args.config:
        return thresholds, ""
    try:   # none there: the defaults, as for a tree without one
        base = thresholds_from(text_at(tree, sha, "pyproject.toml"), f"{rev}:pyproject.toml", args.threshold)
    except gate.CompareError as e:
        return thresholds, f"gate: {rev}'s gate settings are unusable ({e}); judged by the working tree's"
    if base == thresholds:
        return thresholds, ""
    return base, (f"gate: the working tree changes the gate's settings in pyproject.toml; judged by {rev}'s, as "
                  "every change is (the new ones judge the changes after it; --config names a file to use instead)")


def _aa_of(tree, sha, folder):
    """REV's stored A/A figures (results/baselines/aa.json as commit `sha` holds it; none where it
    has none), in a file in `folder`: they widen a one-process gate's intervals, so a change cannot
    widen its own by editing or re-measuring them (its figures judge the changes after it)."""
    from bench import gate
    from bench.gate.worktree import text_at
    path = Path(folder) / "aa-of-base.json"
    path.write_text(text_at(tree, sha, gate.AA_FILE.as_posix()) or "{}", encoding="utf-8")
    return path


def _own_aa(tree_aa, used, fp, spec):
    """What to add to the A/A line where the working tree stores another figure for this gate than
    the one used (REV's): "" where they agree."""
    from bench.gate import experiments
    own, used_sd = (experiments.calls_noise(path, fp, spec)[0] for path in (tree_aa, used))
    if own == used_sd:
        return ""
    figure = "none" if own is None else f"sd {own:.3f}"
    return (f"; the working tree's stored figure ({figure}) is not its base's: it judges the changes after this one "
            "(--aa-file names a file to use instead)")


def cmd_compare(args: argparse.Namespace) -> int:
    from bench import gate, records
    from bench.cli.report import warn
    from bench.gate import experiments, text
    thresholds = _thresholds(args, env.REPO)
    base, candidate = records.read_usable([args.base], warn), records.read_usable([args.candidate], warn)
    run_sd, where = gate.run_noise(env.REPO / experiments.AA_FILE, candidate[0].env)
    result = gate.compare(base, candidate, thresholds, allow_mismatch=args.allow_mismatch, run_sd=run_sd)
    for line in [*text.table(result), text.summary(result)]:
        print(line)
    if any("run-to-run" in c.method for c in result.comparisons):
        print(f"separate runs: intervals widened by this machine's run-to-run noise, sd {run_sd:.0%} ({where})")
    return EXIT_REGRESSED if result.failed else 0


def _spec(args):
    """(the process pairs' RunSpec, the one-process gate's RunSpec, pairs): each flag given applies to
    both; what is not given takes each mode's default (defaults.GATE_* and GATE_CALLS_*)."""
    from bench import frameworks, gate
    from bench.cli.args import UsageError
    from bench.cli.run import default_frameworks
    try:
        sizes = tuple(parse_size(s) for s in args.size or ())
    except UsageError as e:
        raise gate.GateError(str(e)) from None
    pairs = defaults.GATE_PAIRS if args.pairs is None else args.pairs
    if pairs < (1 if args.baseline or args.save_baseline else 2):
        raise gate.GateError(f"--pairs {pairs}: a paired gate needs at least 2 pairs for a confidence interval")
    for flag, value in (("--aa", args.aa), ("--rates", args.rates)):
        if value is not None and value < (1 if flag == "--aa" else pairs):
            raise gate.GateError(f"{flag} {value}: give the number of {'A/A runs, at least 1' if flag == '--aa' else f'rounds, at least --pairs ({pairs})'}")
    if args.budget is not None and not args.budget > 0:
        raise gate.GateError(f"--budget {args.budget}: must be positive")
    if args.threads is not None and args.threads < 0:
        raise gate.GateError(f"--threads {args.threads}: give a number of threads, or 0 for the frameworks' default")
    for framework in names(args.framework) or ():
        if framework not in frameworks.FRAMEWORKS:
            raise gate.GateError(f"unknown framework {framework!r} (known: {', '.join(frameworks.FRAMEWORKS)})")
    given = lambda value, default: default if value is None else value   # noqa: E731
    steps, backends = names(args.step), names(args.backend)
    threads, calls_threads = given(args.threads, defaults.GATE_THREADS), given(args.threads, defaults.GATE_CALLS_THREADS)
    pair_fws = names(args.framework) or (defaults.GATE_FRAMEWORK,)
    named = pair_fws == (defaults.GATE_FRAMEWORK,)   # GATE_STEPS and GATE_BACKENDS are its own; others get the one process's
    spec = gate.RunSpec(frameworks=pair_fws, sizes=sizes or (defaults.GATE_SIZE,),
                        steps=steps or (defaults.GATE_STEPS if named else _autodiff(pair_fws)),
                        backends=backends or (defaults.GATE_BACKENDS if named else None), device=args.device,
                        budget_s=given(args.budget, defaults.GATE_BUDGET_S), threads=threads,
                        pin=gate_pin(args.pin, threads))
    calls_fws = names(args.framework) or default_frameworks()   # found, not imported
    calls = gate.RunSpec(frameworks=calls_fws, sizes=sizes or defaults.GATE_CALLS_SIZES,
                         steps=steps or _autodiff(calls_fws),
                         backends=backends or None, device=args.device,
                         budget_s=given(args.budget, defaults.GATE_CALLS_BUDGET_S),
                         threads=calls_threads, pin=gate_pin(args.pin, calls_threads))
    return spec, calls, pairs


def _autodiff(fws):
    """Those of defaults.GATE_CALLS_STEPS (manual and each framework's autodiff step) that `fws` have."""
    from bench import frameworks
    has = frameworks.names("steps", tuple(fws))
    return tuple(s for s in defaults.GATE_CALLS_STEPS if s in has)


def gate_pin(text: str, threads: int) -> tuple[int, ...]:
    """--pin's CPUs for processes of `threads` threads: auto: that many of the quietest CPUs (none
    for the frameworks' default threads, 0), off: none; else the CPUs named. GateError naming the problem."""
    from bench import env, gate
    from bench.cli.args import UsageError
    from bench.cli.run import parse_pin
    if text == "off" or (text == "auto" and not threads):
        return ()
    if text == "auto":
        return env.quietest_cpus(threads)
    try:
        return parse_pin(text)
    except UsageError as e:
        raise gate.GateError(str(e)) from None


def cmd_gate(args: argparse.Namespace) -> int:
    from bench import gate
    from bench.gate import text
    tree = Path(args.tree).resolve() if args.tree else env.REPO
    if not tree.is_dir():
        raise gate.GateError(f"--tree {args.tree}: no such folder")
    spec, calls_spec, pairs = _spec(args)
    thresholds = _thresholds(args, tree)
    aa_file = Path(args.aa_file) if args.aa_file else tree / gate.AA_FILE
    t0 = time.perf_counter()
    aa_line = ""   # a one-process gate's own A/A line (calls.with_aa)
    with tempfile.TemporaryDirectory(prefix="bench-gate-runs-") as scratch:
        workdir = Path(args.out) if args.out else Path(scratch)
        try:
            if args.save_baseline:
                path = gate.save_baseline(tree, args.save_baseline, spec, pairs, workdir)
                print(f"baseline written: {path}")
                return 0
            if args.aa is not None and args.pairing == "calls":
                return _aa_calls(args, tree, calls_spec, pairs, thresholds, aa_file, workdir)
            if args.aa is not None:
                return _aa(args, tree, spec, pairs, thresholds, aa_file, workdir)
            if args.rates is not None:
                return _rates(args, tree, spec, pairs, thresholds, aa_file, workdir)
            if args.baseline:
                outcome = gate.stored(tree, args.baseline, spec, pairs, thresholds, workdir, args.allow_mismatch,
                                      aa_file=aa_file)
                sides = ("baseline", "candidate")
            else:
                rev = args.base or "HEAD~1"
                sha = gate.resolve(tree, rev)
                thresholds, said = _as_of(args, tree, sha, rev, thresholds)
                if said:
                    print(said, flush=True)
                # judged by REV's stored A/A figures (the rate line below too); the working tree's only compared
                tree_aa, aa_file = aa_file, (aa_file if args.aa_file else _aa_of(tree, sha, scratch))
                outcome = gate.paired(tree, rev, spec, pairs, thresholds, workdir, args.allow_mismatch,
                                      pairing=args.pairing, calls_spec=calls_spec)
                sides = (rev, "working tree")
                if outcome.pairing == "calls":   # judged with this machine's one-process A/A, if measured
                    from bench.gate import calls
                    whose = "" if args.aa_file else f" (as {rev} stored it)"
                    outcome, aa_line = calls.with_aa(outcome, aa_file, calls_spec, thresholds, args.allow_mismatch, whose)
                    aa_line += _own_aa(tree_aa, aa_file, outcome.env, calls_spec)
        except gate.NothingToCompare as e:
            print(f"gate: nothing to compare: {e}; passing")
            return 0
        rate = gate.rate_line(aa_file, outcome.env, spec, pairs, thresholds)   # while REV's A/A file is there
    if args.baseline:
        rate += " [of the paired gate; stored mode's rate is not measured]"
    elif outcome.pairing == "calls":   # its own A/A experiment, not the process pairs'
        rate = aa_line
    for line in [*text.report(outcome, *sides), rate]:
        print(line)
    print(f"gate wall time: {time.perf_counter() - t0:.0f} s")
    return EXIT_REGRESSED if outcome.result.failed else 0


def _aa(args, tree, spec, pairs, thresholds, aa_file, workdir):
    """N gate runs of the working tree against itself; the share flagged is the false-positive rate."""
    from bench import gate
    from bench.gate import text
    run_args = gate.run_args(spec, [tree])
    outcomes = []
    for i in range(args.aa):
        processes = gate.interleave({"base": tree, "candidate": tree}, pairs, run_args, workdir / f"aa-{i}",
                                    extra_env=spec.env())
        outcome = gate.paired_outcome(processes, thresholds, args.allow_mismatch)
        outcomes.append(outcome)
        print(f"A/A run {i + 1}/{args.aa}: {text.summary(outcome.result)}", flush=True)
    entry = gate.experiment_entry(outcomes, spec, pairs, thresholds,
                                  method=f"gate --aa {args.aa}: {args.aa} independent gate runs of the working tree against itself")
    key = gate.store_experiment(aa_file, outcomes[0].env, "aa", entry)
    lo, hi = entry["rate_ci95"]
    print(f"A/A: {entry['flagged']} of {entry['runs']} runs flagged a regression: false-positive rate "
          f"{entry['rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}); {entry['intervals_excluding_1']} of {entry['intervals']} "
          f"case intervals excluded 1 (95% intervals should, about 5% of the time); stored in {aa_file} under {key}")
    return 0


def _aa_calls(args, tree, spec, pairs, thresholds, aa_file, workdir):
    """N one-process gate runs of the working tree's steps against themselves: the share flagged,
    and the sd of the log-ratio their intervals miss (experiments.extra_sd_of), which widens every
    later one-process gate's intervals on this machine."""
    from bench import gate
    from bench.gate import calls, experiments, text
    from bench.gate.processes import stderr_line
    outcomes = []
    for i in range(args.aa):
        outcome = calls.one_process(tree, tree, spec, pairs, thresholds, workdir / f"aa-{i}", args.allow_mismatch,
                                    progress=stderr_line)
        outcomes.append(outcome)
        print(f"A/A run {i + 1}/{args.aa} (one process): {text.summary(outcome.result)}", flush=True)
    entry = gate.experiment_entry(outcomes, spec, pairs, thresholds,
                                  method=f"gate --aa {args.aa} --pairing calls: {args.aa} one-process gate runs of the "
                                         "working tree's steps against themselves")
    entry["extra_sd_log"] = experiments.extra_sd_of(outcomes)
    key = gate.store_experiment(aa_file, outcomes[0].env, experiments.CALLS_AA, entry)
    lo, hi = entry["rate_ci95"]
    extra = entry["extra_sd_log"]
    print(f"A/A (one process): {entry['flagged']} of {entry['runs']} runs flagged a regression: false-positive rate "
          f"{entry['rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}); {entry['intervals_excluding_1']} of {entry['intervals']} "
          f"case intervals excluded 1; {missed(extra)}; stored in {aa_file} under {key}")
    return 0


def missed(extra: float | None) -> str:
    """What a one-process A/A's intervals missed, as its summary line says it."""
    if extra is None:
        return "too few intervals to tell whether they miss any spread"
    if extra == 0:
        return "the intervals held (they missed nothing measurable; later one-process gates use them as they are)"
    return f"the intervals miss an sd of {extra:.3f} in the log-ratio (later one-process gates widen theirs by it)"


def _rates(args, tree, spec, pairs, thresholds, aa_file, workdir):
    """The A/A and detection rates from one interleaved experiment (bench/gate/experiments.py)."""
    from bench.gate import experiments
    entries, fp = experiments.rates(tree, spec, args.rates, pairs, thresholds, workdir)
    for kind, entry in entries.items():
        experiments.store_experiment(aa_file, fp, kind, entry)
        print(f"{kind}: {entry['flagged']}/{entry['runs']} disjoint runs flagged; "
              f"{entry['sliding']['flagged']}/{entry['sliding']['runs']} sliding windows; "
              f"{entry['resampled']['flagged']}/{entry['resampled']['runs']} random subsets")
        for k, o in entry["other_pairs"].items():
            print(f"  with {k} pairs: {o['disjoint_flagged']}/{o['disjoint_runs']} disjoint runs; "
                  f"{o['subsets_flagged']}/{o['subsets']} random subsets")
        for label, counts in entry["sliding"]["per_case"].items():
            print(f"  {label}: {counts}")
    print(f"stored in {aa_file}")
    return 0


COMMANDS = {"compare": cmd_compare, "gate": cmd_gate}


def errors() -> "tuple[type[CompareError], type[GateError]]":
    """The exceptions of these commands that mean bad input (exit 2, one line)."""
    from bench import gate
    return (gate.CompareError, gate.GateError)
