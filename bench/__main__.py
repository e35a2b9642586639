"""The command line: flags -> Config -> run / list / report. Errors in what the user asked for
(names, sizes, files) print one line and exit 2; nothing here prints a traceback for them."""
import argparse
import sys
from pathlib import Path

from bench import backends
from bench.data import DataError
from bench.records import RecordsError

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    pass


def _names(values):
    """Accept both `--step a b` and `--step a,b`."""
    if not values:
        return None
    out = tuple(v for value in values for v in value.split(",") if v)
    return out or None


def parse_size(text):
    parts = text.split(",")
    if len(parts) != 3:
        raise UsageError(f"bad size {text!r}: expected N,M,NH (e.g. 50000,784,50)")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad size {text!r}: N, M and NH must be whole numbers") from None
    if min(size) < 1:
        raise UsageError(f"bad size {text!r}: N, M and NH must be at least 1")
    return size


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line, not argparse's usage block: the message is what the user needs."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def parse_grid(items):
    """['n=1000,5000', 'nh=50,100'] -> every (n, m, nh) of the grid; m and nh default to the lesson's."""
    axes = {"n": [50_000], "m": [784], "nh": [50]}
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or axis not in axes:
            raise UsageError(f"bad --sizes item {item!r}: expected n=..., m=... or nh=... (e.g. n=1000,5000)")
        try:
            axes[axis] = [int(v) for v in values.split(",") if v]
        except ValueError:
            raise UsageError(f"bad --sizes item {item!r}: values must be whole numbers") from None
        if not axes[axis] or min(axes[axis]) < 1:
            raise UsageError(f"bad --sizes item {item!r}: values must be at least 1")
    return tuple((n, m, nh) for n in axes["n"] for m in axes["m"] for nh in axes["nh"])


def build_parser():
    p = Parser(prog="python -m bench", description="Check, then time, forward+backward passes of the lesson's MLP.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    r = sub.add_parser("run", help="check and time the grid of cases; write records, a report and plots")
    r.add_argument("--framework", nargs="+", help="frameworks (default: every one installed here)")
    r.add_argument("--step", nargs="+", help="steps (default: all)")
    r.add_argument("--backend", nargs="+", help="backends (default: all)")
    r.add_argument("--device", default="all", choices=("cpu", "gpu", "all"))
    r.add_argument("--size", nargs="+", metavar="N,M,NH", help="problem sizes (default: 50000,784,50)")
    r.add_argument("--sizes", nargs="+", metavar="AXIS=V1,V2", help="a grid over n, m and nh, e.g. n=1000,5000,50000 nh=50,100 (m defaults to 784)")
    r.add_argument("--dtype", nargs="+", help="float32 and/or float64 (default: float32)")
    r.add_argument("--data", help="MNIST file (.pkl.gz or .npz); default: data/ if present, else synthetic")
    r.add_argument("--out", help="output folder (default: results/<run-id>)")
    r.add_argument("--quick", action="store_true", help="small size and few samples: a smoke test, not a measurement")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--resume", action="store_true", help="skip the cases already recorded in --out")
    r.add_argument("--budget", type=float, metavar="SECONDS", help="timed seconds per case at most (default: 4)")
    r.add_argument("--target-ci", type=float, metavar="FRACTION", help="stop a case once its median's 95%% CI is within +-this (default: 0.02)")
    sub.add_parser("list", help="what can run here, and why not the rest")
    o = sub.add_parser("overhead", help="the harness's timing of one case against a bare perf_counter loop")
    o.add_argument("--framework", default="tensorflow")
    o.add_argument("--step", default="manual")
    o.add_argument("--backend", default="function")
    o.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    o.add_argument("--size", default="50000,784,50", metavar="N,M,NH")
    o.add_argument("--rounds", type=int, default=10)
    rep = sub.add_parser("report", help="rebuild report.md, report.html, plots/ and tables/ from the records of one or more runs")
    rep.add_argument("results", nargs="+", help="run folders or records .jsonl files (merged)")
    rep.add_argument("--out", help="output folder (default: the first run folder)")
    from bench import cli_gate
    cli_gate.add_parsers(sub)
    return p


def default_frameworks():
    """Every framework installed here; one that is installed but fails to import is left out, with a note."""
    names, reasons = [], []
    for name in backends.FRAMEWORKS:
        try:
            backends.load(name)
        except backends.FrameworkUnavailable as e:
            reasons.append(str(e))
            if backends.unavailable_reason(name) is None:   # installed, but broken
                print(f"python -m bench run: leaving out {name} ({e})", file=sys.stderr)
            continue
        names.append(name)
    if not names:
        raise UsageError("no framework can run here: " + "; ".join(reasons))
    return tuple(names)


def config_from_args(args):
    from bench import run
    sizes = tuple(parse_size(s) for s in args.size or ()) + (parse_grid(args.sizes) if args.sizes else ())
    sizes = tuple(dict.fromkeys(sizes)) or None
    if args.resume and not args.out:
        raise UsageError("--resume needs --out: the run folder whose cases to skip")
    for name, value in (("--budget", args.budget), ("--target-ci", args.target_ci)):
        if value is not None and not value > 0:
            raise UsageError(f"{name} must be positive, got {value}")
    dtypes = _names(args.dtype) or ("float32",)
    for dtype in dtypes:
        if dtype not in run.DTYPES:
            raise UsageError(f"unknown dtype {dtype!r} (available: {', '.join(run.DTYPES)})")
    for framework in _names(args.framework) or ():
        if framework not in backends.FRAMEWORKS:
            raise UsageError(f"unknown framework {framework!r} (known: {', '.join(backends.FRAMEWORKS)})")
    if args.data and not Path(args.data).is_file():
        raise UsageError(f"--data {args.data}: no such file")
    run_id = run.new_run_id()
    kwargs = dict(
        out=Path(args.out) if args.out else Path("results") / run_id, run_id=run_id,
        frameworks=_names(args.framework) or default_frameworks(), steps=_names(args.step),
        backends=_names(args.backend), device=args.device, dtypes=dtypes, data=args.data, seed=args.seed,
        resume=args.resume)
    if args.budget:
        kwargs["budget_s"] = args.budget
    if args.target_ci:
        kwargs["target_ci"] = args.target_ci
    if sizes:   # sizes given by the user run every step at those sizes
        kwargs.update(sizes=sizes, step_n={})
    if args.quick:
        kwargs.update(warmup=1, min_samples=5, max_samples=20, budget_s=0.1, batch_s=0.02)
        if not sizes:
            kwargs.update(sizes=(run.QUICK_SIZE,))
    return run.Config(**kwargs)


def cmd_run(args):
    from bench import report, run
    config = config_from_args(args)
    try:
        records = run.run(config, exit_on_interrupt=True)
    except KeyboardInterrupt:
        print(f"interrupted: the cases that finished are kept in {config.out / 'records.jsonl'}", file=sys.stderr)
        return 130
    paths = report.write(records, config.out)
    df = report.frame(records)
    for key, table in report.comparison_tables(df).items():
        print(f"\n{report.title(key)}: median ms ±IQR%\n{report.markdown_table(table)}")
    print(f"\nrecords: {config.out / 'records.jsonl'}\nreport: {', '.join(str(p) for p in paths[:2])}")
    return 0 if all(r.status != "failed" for r in records) else 1


def cmd_list(args):
    from bench import run
    for name in backends.FRAMEWORKS:
        reason = backends.unavailable_reason(name)
        if reason:
            print(f"{name}: not available ({reason})")
            continue
        try:
            fw = backends.load(name)
        except backends.FrameworkUnavailable as e:
            print(f"{name}: not available ({e})")
            continue
        print(f"{name} {fw.info()['version']}: available")
        print(f"  steps:    {', '.join(fw.STEPS)}")
        print(f"  backends: {', '.join(fw.BACKENDS)}")
        present = fw.devices()
        print(f"  devices:  {', '.join(present)}" + ("" if "gpu" in present else f" (no GPU visible to {name})"))
    print(f"dtypes: {', '.join(run.DTYPES)}")
    return 0


def cmd_overhead(args):
    from bench import overhead, run
    from bench.data import make_problem
    from kernels import reference
    n, m, nh = parse_size(args.size)
    if args.rounds < 2:
        raise UsageError("--rounds must be at least 2")
    fw = run.load_frameworks([args.framework])[args.framework]
    run.plan(run.Config(out=None, steps=(args.step,), backends=(args.backend,), device=args.device), {fw.NAME: fw})
    p = make_problem(n, m)
    inputs = (p.x, p.y, *reference.init_params(m, nh))
    args_dev = fw.to_device(inputs, "float32", args.device)
    fn = fw.BACKENDS[args.backend](fw.STEPS[args.step])

    def call():
        with fw.placement(args.device):
            return fn(*args_dev)

    for _ in range(3):
        call()
        fw.sync()
    harness, bare, (ratio, lo, hi) = overhead.compare(call, fw.sync, rounds=args.rounds)
    print(f"{fw.NAME}/{args.step}/{args.backend}/{args.device} n={n} m={m} nh={nh}: harness median "
          f"{sorted(harness)[len(harness) // 2] * 1e3:.3f} ms, bare loop {sorted(bare)[len(bare) // 2] * 1e3:.3f} ms, "
          f"harness/bare {ratio:.3f} [95% CI {lo:.3f}, {hi:.3f}] over {len(harness)} + {len(bare)} samples")
    return 0


def cmd_report(args):
    from bench import records, report
    loaded = [r for path in args.results for r in records.read(path)]
    if not loaded:
        raise RecordsError(f"{', '.join(args.results)}: no records")
    out = Path(args.out) if args.out else records.records_file(args.results[0]).parent
    for path in report.write(loaded, out):
        print(path)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from bench import cli_gate
    from bench.run import ConfigError
    try:
        return {"run": cmd_run, "list": cmd_list, "report": cmd_report, "overhead": cmd_overhead,
                **cli_gate.COMMANDS}[args.command](args)
    except (UsageError, ConfigError, DataError, RecordsError, backends.FrameworkUnavailable, *cli_gate.errors()) as e:
        print(f"python -m bench {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
