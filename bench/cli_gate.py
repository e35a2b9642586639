"""The compare, gate and export subcommands: their flags, and flags -> bench.compare / bench.gate /
bench.export calls. Exit codes: 0 pass, 1 a regression, 2 bad input (one line on stderr)."""
import sys
import tempfile
import time
from pathlib import Path

from bench import env

EXIT_REGRESSED = 1


def add_parsers(sub):
    c = sub.add_parser("compare", help="compare two runs case by case: ratio with a 95%% CI and a verdict")
    c.add_argument("base", help="the base run: a run folder or records .jsonl file")
    c.add_argument("candidate", help="the candidate run")
    _rule_flags(c)

    g = sub.add_parser("gate", help="CI regression gate: a base revision against the working tree, paired; "
                                    "or against a stored baseline; or A/A runs to measure false positives")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--base", metavar="REV", help="paired mode (the default, REV HEAD~1): REV's harness in a temporary "
                                                    "git worktree against the working tree, alternately, in separate processes")
    mode.add_argument("--baseline", metavar="PATH", help="stored mode: against a baseline file, or the one for this "
                                                         "machine in a folder such as results/baselines/")
    mode.add_argument("--save-baseline", metavar="PATH", help="run the working tree and write a baseline (a folder gets "
                                                              "<machine key>.jsonl)")
    mode.add_argument("--aa", type=int, metavar="N", help="run unchanged code against itself N times; print and store "
                                                          "the rule's false-positive rate")
    g.add_argument("--pairs", type=int, help=f"process pairs per gate run (runs in stored mode; default {_default_pairs()})")
    g.add_argument("--size", metavar="N,M,NH", help="problem size of every process (default 5000,784,50)")
    g.add_argument("--step", nargs="+", help="steps (default: manual tape)")
    g.add_argument("--backend", nargs="+", help="backends (default: eager function xla)")
    g.add_argument("--device", choices=("cpu", "gpu", "all"), default="all")
    g.add_argument("--budget", type=float, metavar="SECONDS", help="timed seconds a case in each process (default 0.5)")
    g.add_argument("--threads", type=int, help="CPU threads a process (default 1; 0: the frameworks' default)")
    g.add_argument("--tree", help="the git checkout whose working tree is the candidate (default: this one)")
    g.add_argument("--out", help="keep every process's records under this folder (default: a temporary one)")
    g.add_argument("--aa-file", help="where A/A rates are stored (default: <tree>/results/baselines/aa.json)")
    _rule_flags(g)

    e = sub.add_parser("export", help="write a run's records in another tool's format")
    e.add_argument("run", help="a run folder or records .jsonl file")
    e.add_argument("--format", required=True, choices=("pytest-benchmark",))
    e.add_argument("--out", help="output file (default: standard output)")


def _rule_flags(p):
    p.add_argument("--threshold", help="default threshold, e.g. 10%% (default: pyproject's, else 10%%); "
                                       "per-case overrides in pyproject.toml still apply")
    p.add_argument("--config", help="the pyproject.toml with [tool.backprop-bench.gate] (default: the repository's)")
    p.add_argument("--allow-mismatch", action="store_true", help="compare runs whose machine or framework versions differ")


def _default_pairs():
    from bench import gate
    return gate.DEFAULT_PAIRS


def _thresholds(args, tree):
    from bench import compare
    return compare.load_thresholds(Path(args.config) if args.config else Path(tree) / "pyproject.toml", args.threshold)


def cmd_compare(args):
    from bench import compare, records
    thresholds = _thresholds(args, env.REPO)
    base, candidate = records.read(args.base), records.read(args.candidate)
    for name, recs in ((args.base, base), (args.candidate, candidate)):
        if not recs:
            raise records.RecordsError(f"{name}: no records")
    result = compare.compare(base, candidate, thresholds, allow_mismatch=args.allow_mismatch)
    for line in [*compare.table(result), compare.summary(result)]:
        print(line)
    return EXIT_REGRESSED if result.regressed else 0


def _names(values):
    """`--step a b` and `--step a,b` alike; None when not given."""
    return tuple(v for value in values or () for v in value.split(",") if v) or None


def _spec(args):
    from bench import gate
    size = args.size or gate.DEFAULT_SIZE
    parts = size.split(",")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise gate.GateError(f"bad size {size!r}: expected N,M,NH, whole numbers of at least 1 (e.g. 5000,784,50)")
    pairs = gate.DEFAULT_PAIRS if args.pairs is None else args.pairs
    if pairs < (1 if args.baseline or args.save_baseline else 2):
        raise gate.GateError(f"--pairs {pairs}: a paired gate needs at least 2 pairs for a confidence interval")
    if args.aa is not None and args.aa < 1:
        raise gate.GateError(f"--aa {args.aa}: give the number of A/A runs, at least 1")
    budget_s = gate.DEFAULT_BUDGET_S if args.budget is None else args.budget
    if not budget_s > 0:
        raise gate.GateError(f"--budget {args.budget}: must be positive")
    threads = gate.DEFAULT_THREADS if args.threads is None else args.threads
    if threads < 0:
        raise gate.GateError(f"--threads {threads}: give a number of threads, or 0 for the frameworks' default")
    spec = gate.RunSpec(size=size, steps=_names(args.step) or gate.DEFAULT_STEPS,
                        backends=_names(args.backend) or gate.DEFAULT_BACKENDS, device=args.device, budget_s=budget_s,
                        threads=threads)
    return spec, pairs


def cmd_gate(args):
    from bench import gate
    tree = Path(args.tree).resolve() if args.tree else env.REPO
    if not tree.is_dir():
        raise gate.GateError(f"--tree {args.tree}: no such folder")
    spec, pairs = _spec(args)
    thresholds = _thresholds(args, tree)
    aa_file = Path(args.aa_file) if args.aa_file else tree / gate.AA_FILE
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-gate-runs-") as scratch:
        workdir = Path(args.out) if args.out else Path(scratch)
        try:
            if args.save_baseline:
                path = gate.save_baseline(tree, args.save_baseline, spec, pairs, workdir)
                print(f"baseline written: {path}")
                return 0
            if args.aa is not None:
                return _aa(args, tree, spec, pairs, thresholds, aa_file, workdir)
            if args.baseline:
                outcome = gate.stored(tree, args.baseline, spec, pairs, thresholds, workdir, args.allow_mismatch)
                names = ("baseline", "candidate")
            else:
                rev = args.base or "HEAD~1"
                outcome = gate.paired(tree, rev, spec, pairs, thresholds, workdir, args.allow_mismatch)
                names = (rev, "working tree")
        except gate.NothingToCompare as e:
            print(f"gate: nothing to compare: {e}; passing")
            return 0
    for line in gate.report(outcome, *names):
        print(line)
    line = gate.rate_line(aa_file, gate.first_env(outcome), spec, pairs, thresholds)
    print(f"{line} [of the paired gate; stored mode's rate is not measured]" if args.baseline else line)
    print(f"gate wall time: {time.perf_counter() - t0:.0f} s")
    return EXIT_REGRESSED if outcome.flagged else 0


def _aa(args, tree, spec, pairs, thresholds, aa_file, workdir):
    """N gate runs of the working tree against itself; the share flagged is the false-positive rate."""
    from bench import gate
    args_ = gate.run_args(spec, [tree])
    outcomes = []
    for i in range(args.aa):
        processes = gate.interleave({"base": tree, "candidate": tree}, pairs, args_, workdir / f"aa-{i}",
                                    extra_env=spec.env())
        outcome = gate.paired_outcome(processes, thresholds, args.allow_mismatch)
        outcomes.append(outcome)
        print(f"A/A run {i + 1}/{args.aa}: {gate.compare.summary(outcome.result)}", flush=True)
    entry = gate.experiment_entry(outcomes, spec, pairs, thresholds,
                                  method=f"gate --aa {args.aa}: {args.aa} independent gate runs of the working tree against itself")
    key = gate.store_experiment(aa_file, gate.first_env(outcomes[0]), "aa", entry)
    lo, hi = entry["rate_ci95"]
    print(f"A/A: {entry['flagged']} of {entry['runs']} runs flagged a regression: false-positive rate "
          f"{entry['rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}); stored in {aa_file} under {key}")
    return 0


def cmd_export(args):
    from bench import export, records
    recs = records.read(args.run)
    if not recs:
        raise records.RecordsError(f"{args.run}: no records")
    doc, left_out = export.pytest_benchmark(recs)
    text = export.dumps(doc)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {len(doc['benchmarks'])} benchmarks", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for label in left_out:
        print(f"not exported (not timed): {label}", file=sys.stderr)
    return 0


COMMANDS = {"compare": cmd_compare, "gate": cmd_gate, "export": cmd_export}


def errors():
    """The exceptions of these commands that mean bad input (exit 2, one line)."""
    from bench import compare, gate
    return (compare.CompareError, gate.GateError)
