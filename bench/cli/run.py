"""The run, list and overhead commands: flags -> run.Config -> the run engine, with progress and
Ctrl-C handled here."""

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import defaults, frameworks
from bench.cli.args import Parser, UsageError, check_problem_memory, names, parse_grid, parse_size, size_text
from bench.text import printable

if TYPE_CHECKING:
    from bench.run import Config


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    r = sub.add_parser("run", help="check and time the grid of cases; write records, a report and plots")
    r.add_argument("--framework", nargs="+", help="frameworks (default: every one installed here)")
    r.add_argument("--step", nargs="+", help="steps (default: all)")
    r.add_argument("--backend", nargs="+", help="backends (default: all)")
    r.add_argument(
        "--device",
        default="all",
        choices=("cpu", "gpu", "all"),
        help="cpu, gpu, or all: every device each framework sees (default: all)",
    )
    r.add_argument("--size", nargs="+", metavar="N,M,NH", help=f"problem sizes (default: {size_text(defaults.SIZE)})")
    r.add_argument(
        "--sizes",
        nargs="+",
        metavar="AXIS=V1,V2",
        help="a grid over n, m and nh, e.g. n=1000,5000,50000 nh=50,100 (the others: the default size's)",
    )
    r.add_argument(
        "--model",
        nargs="+",
        metavar="lesson|mlp:W0,...,WL|FILE.py:NAME",
        help="networks: lesson (m -> nh -> 1, from the size), mlp:784,256,256,1 (any widths, ReLU between; "
        "its first width is the data's m) or FILE.py:NAME, your own layers (examples/tanh_model.py) "
        "(default: lesson)",
    )
    r.add_argument(
        "--loss",
        nargs="+",
        metavar="mse|xent",
        help="mse (the lesson's) and/or xent: softmax "
        "cross-entropy over the 10 digits, the last width made 10 (default: mse)",
    )
    r.add_argument(
        "--depths",
        metavar="D1,D2",
        help="each model at these numbers of hidden layers of its hidden width (the lesson's nh), e.g. 1,2,4,8,16",
    )
    r.add_argument(
        "--measure",
        nargs="+",
        metavar="instructions|cache",
        help="also count each CPU case's instructions a call under Valgrind's Callgrind, after the run "
        "(minutes a case: use a small --size); cache: with its simulated caches' misses and a cycle estimate",
    )
    r.add_argument(
        "--dtype",
        nargs="+",
        help=f"any of {', '.join(defaults.DTYPES)} (default: {defaults.DTYPE}); inputs and parameters in that dtype",
    )
    r.add_argument(
        "--tf32",
        nargs="+",
        metavar="off|on",
        help="float32 matrix products in TF32 too (on GPUs that "
        "have it; on a CPU the case is skipped, saying so) "
        "(default: off)",
    )
    r.add_argument(
        "--cache",
        nargs="+",
        metavar="warm|cold",
        help="cold: flush the device's last-level cache before each timed call (default: warm)",
    )
    r.add_argument("--data", help="MNIST file (.pkl.gz, .pkl, .gz or .npz); default: data/ if present, else synthetic")
    r.add_argument("--out", help="output folder (default: results/<run-id>)")
    r.add_argument("--quick", action="store_true", help="small size and few samples: a smoke test, not a measurement")
    r.add_argument(
        "--seed",
        type=int,
        default=defaults.SEED,
        help=f"seed of the synthetic data and of the parameters (default: {defaults.SEED})",
    )
    r.add_argument("--resume", action="store_true", help="skip the cases already recorded in --out")
    r.add_argument(
        "--budget",
        type=float,
        metavar="SECONDS",
        help=f"timed seconds per case at most (default: {defaults.BUDGET_S:g})",
    )
    r.add_argument(
        "--history",
        metavar="URL",
        help="also add each case to this history store as it is recorded "
        "(sqlite:///FILE or postgresql://...; see `history`)",
    )
    r.add_argument(
        "--no-counters",
        action="store_true",
        help="leave out each case's counters (what a step executes; an untimed pass after its timing)",
    )
    r.add_argument(
        "--no-report",
        action="store_true",
        help="records only: no report files (python -m bench report OUT writes them later)",
    )
    r.add_argument(
        "--pin",
        metavar="CPUS|auto",
        help="bind every framework worker, and each thread it starts, to these CPUs (e.g. 1 or 0,1), or "
        "auto: the one CPU idle longest just now (a core another process keeps busy avoided); default: unbound",
    )
    r.add_argument(
        "--env",
        action="append",
        metavar="SET",
        help="run the cases in the environment of this requirement set (repeat: one environment each, "
        "their workers taking turns), e.g. --env tensorflow==2.20.0 --env 'tensorflow==2.21.0 numpy<2', "
        "or a requirements / pyproject / pylock file; built with uv once, cached "
        "(python -m bench env list); default frameworks: those the sets name",
    )
    r.add_argument(
        "--target-ci",
        type=float,
        metavar="FRACTION",
        help=f"stop a case once its median's 95%% CI is within +-this (default: {defaults.TARGET_CI:g})",
    )
    ls = sub.add_parser("list", help="what can run here, and why not the rest (imports no framework)")
    ls.add_argument("--devices", action="store_true", help="also load each framework and ask which devices it sees")
    o = sub.add_parser(
        "overhead",
        help="the harness's timing of one case against a bare loop of the same timer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    o.add_argument("--framework", default="tensorflow", help="framework")
    o.add_argument("--step", default="manual", help="step")
    o.add_argument("--backend", default="function", help="backend")
    o.add_argument("--device", default="cpu", choices=("cpu", "gpu"), help="device")
    o.add_argument("--size", default=size_text(defaults.QUICK_SIZE), metavar="N,M,NH", help="problem size")
    o.add_argument("--rounds", type=int, default=10, help="rounds, each timing the case both ways")


def default_frameworks() -> tuple[str, ...]:
    """Every framework installed here, found without importing any (a run loads each in its own
    worker, and leaves out, with a note, one that is installed but fails to load)."""
    found = frameworks.installed()
    if not found:
        raise UsageError(
            "no framework can run here: "
            + "; ".join(str(frameworks.unavailable_reason(name)) for name in frameworks.FRAMEWORKS)
        )
    return found


def check_names(
    asked_frameworks: tuple[str, ...] | None, steps: tuple[str, ...] | None, backends: tuple[str, ...] | None
) -> None:
    """UsageError for a framework, step or backend that no registered framework has (the ones asked
    for, else any): checked against the frameworks' classes, before any framework is imported."""
    for framework in asked_frameworks or ():
        if framework not in frameworks.FRAMEWORKS:
            raise UsageError(f"unknown framework {framework!r} (known: {', '.join(frameworks.FRAMEWORKS)})")
    for axis, asked in (("steps", steps), ("backends", backends)):
        known = frameworks.names(axis, asked_frameworks)
        for name in asked or ():
            if name not in known:
                raise UsageError(f"unknown {axis[:-1]} {name!r} (available: {', '.join(known)})")


def config_from_args(args: argparse.Namespace) -> "Config":
    """The run's Config from its flags, every one checked (UsageError naming the first bad one) and
    any --env set resolved and built before a folder is made."""
    from bench import run

    _check_flags(args)
    sizes: tuple[tuple[int, ...], ...] | None
    sizes = tuple(parse_size(s) for s in args.size or ()) + (
        parse_grid(args.sizes, defaults.SIZE) if args.sizes else ()
    )
    sizes = tuple(dict.fromkeys(sizes)) or None
    dtypes = names(args.dtype) or (defaults.DTYPE,)
    tf32s = tuple(dict.fromkeys(_switch(v, "--tf32", {"off": False, "on": True}) for v in names(args.tf32) or ("off",)))
    caches = tuple(
        dict.fromkeys(_switch(v, "--cache", {"warm": "warm", "cold": "cold"}) for v in names(args.cache) or ("warm",))
    )
    run_id = run.new_run_id()
    kwargs: dict[str, Any] = dict(
        run_id=run_id,
        **parse_models(args.model, args.loss, args.depths),
        steps=names(args.step),
        backends=names(args.backend),
        device=args.device,
        dtypes=dtypes,
        tf32s=tf32s,
        caches=caches,
        data=args.data,
        seed=args.seed,
        resume=args.resume,
        counters=not args.no_counters,
        pin=parse_pin(args.pin) if args.pin else (),
    )
    kwargs.update(_sampling(args, sizes))
    if args.data:  # the file read and checked against every size now, before any framework loads
        from bench.data import check_fits

        steps = names(args.step) or frameworks.names("steps", names(args.framework))
        step_n = kwargs.get("step_n", defaults.STEP_N)
        check_fits(
            args.data,
            {(min(n, step_n.get(s, n)), m) for n, m, _ in kwargs.get("sizes", (defaults.SIZE,)) for s in steps},
        )
    networks = check_networks(kwargs)
    check_problem_memory(networks, dtypes)
    resolved = None
    if args.env:  # every set resolved (a typo, an unknown version, no network: refused here, no folder made)
        from bench import venvs

        resolved = venvs.resolve_all(args.env)
    out = Path(args.out) if args.out else Path("results") / run_id
    check_out(out, args.resume)
    if args.env:  # then built, or taken from the cache
        built = tuple(venvs.build_all(args.env, lambda line: print(line, file=sys.stderr, flush=True), resolved))
        return run.Config(out=out, frameworks=names(args.framework) or env_frameworks(built), venvs=built, **kwargs)
    return run.Config(
        out=out,
        frameworks=names(args.framework) or default_frameworks(),
        leave_out_broken=not names(args.framework),
        **kwargs,
    )


def parse_models(model: list[str] | None, loss: list[str] | None, depths: str | None) -> dict[str, tuple]:
    """The Config's models, losses and depths from --model, --loss and --depths; UsageError naming
    the first bad one (kernels/models.py)."""
    from kernels import models

    try:
        out: dict[str, tuple] = {
            "models": tuple(dict.fromkeys(models.parse(v) for v in model or ())) or (models.LESSON,),
            "losses": tuple(dict.fromkeys(models.check_loss(v) for v in names(loss) or ("mse",))),
        }
    except models.ModelError as e:
        raise UsageError(str(e)) from None
    if depths is not None:
        try:
            out["depths"] = tuple(dict.fromkeys(int(d) for d in depths.split(",")))
        except ValueError:
            raise UsageError(f"bad --depths {depths!r}: whole numbers separated by commas, e.g. 1,2,4,8") from None
        if not out["depths"] or min(out["depths"]) < 1 or max(out["depths"]) > models.MAX_LAYERS:
            raise UsageError(
                f"bad --depths {depths!r}: each depth is a number of hidden layers, 1 to {models.MAX_LAYERS}"
            )
    return out


def check_networks(kwargs: dict[str, Any]) -> list[tuple[tuple[int, int, int], tuple[int, ...]]]:
    """[(size, widths)] of every size, model, depth and loss the Config's fields ask for; UsageError
    where a model does not fit a size (its first width is not the data's m)."""
    from bench import run
    from kernels import models

    config = run.Config(out=None, **{k: v for k, v in kwargs.items() if k in ("sizes", "models", "losses", "depths")})
    try:
        networks = [((n, m, nh), models.widths(model, m, nh, loss)) for n, m, nh, model, loss in run.networks(config)]
        for model in config.models:  # a user's layers: their backward against their forward, once
            models.check_backward(model)
        return networks
    except (run.ConfigError, models.ModelError) as e:
        raise UsageError(str(e)) from None


def count_instructions(records: list, out_file: Path, say: Any, cache: bool = False) -> list:
    """Each checked CPU case counted under Callgrind (bench/instructions.py), its record appended
    again with `instructions` (the newest record of a case is the one read); the others as they were."""
    from dataclasses import replace

    from bench import instructions
    from bench import records as records_io

    out = []
    for rec in records:
        if rec.status != "ok":
            out.append(rec)
            continue
        say(f"instructions: counting {rec.case.label} under Callgrind")
        seed = rec.fingerprint.get("seeds", {}).get("data", defaults.SEED)
        counted = instructions.measure(rec.case, seed=seed, cache=cache)
        rec = replace(rec, instructions=counted)
        records_io.append(out_file, rec)
        if "absent" in counted:
            say(f"instructions: {rec.case.label}: not counted: {counted['absent']}")
        else:
            say(
                f"instructions: {rec.case.label}: {counted['per_call']:,.0f} a call "
                f"(spread {counted['spread']:.3%} over {len(counted['calls'])} calls, {counted['wall_s']:.0f} s)"
                + (_cache_text(counted["cache"]) if "cache" in counted else "")
            )
        out.append(rec)
    return out


def _cache_text(cache: dict) -> str:
    return (
        f"; simulated caches: {cache['l1_misses']:,.0f} L1 and {cache['ll_misses']:,.0f} LL misses, "
        f"about {cache['cycles_estimate']:,.0f} cycles"
    )


def _check_flags(args: argparse.Namespace) -> None:
    """UsageError for a flag that cannot work, before anything is resolved or made."""
    if args.resume and not args.out:
        raise UsageError("--resume needs --out: the run folder whose cases to skip")
    for name, value in (("--budget", args.budget), ("--target-ci", args.target_ci)):
        if value is not None and not value > 0:
            raise UsageError(f"{name} must be positive, got {value}")
    for dtype in names(args.dtype) or ():
        if dtype not in defaults.DTYPES:
            raise UsageError(f"unknown dtype {dtype!r} (available: {', '.join(defaults.DTYPES)})")
    check_names(names(args.framework), names(args.step), names(args.backend))
    for measure in names(args.measure) or ():
        if measure not in ("instructions", "cache"):
            raise UsageError(f"unknown --measure {measure!r} (available: instructions, cache)")
    if args.data and Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: is a folder, not a data file (.pkl.gz or .npz)")
    if args.data and not Path(args.data).is_file():
        raise UsageError(f"--data {args.data}: no such file")


def _sampling(args: argparse.Namespace, sizes: tuple | None) -> dict[str, Any]:
    """The Config fields the sizes, --quick, --budget and --target-ci set; explicit flags win over
    --quick's settings, and sizes given run every step at those sizes."""
    out: dict[str, Any] = dict(sizes=sizes, step_n={}) if sizes else {}
    if args.quick:
        out.update(defaults.QUICK)
        if not sizes:
            out.update(sizes=(defaults.QUICK_SIZE,))
    if args.budget:
        out["budget_s"] = args.budget
    if args.target_ci:
        out["target_ci"] = args.target_ci
    return out


def env_frameworks(built: tuple) -> tuple[str, ...]:
    """The frameworks an --env run times by default: those whose package the sets name (a file's set:
    those it pins); UsageError when no set has any."""
    from packaging.requirements import Requirement

    from bench import venvs

    named = {venvs.normalise(Requirement(r).name) for e in built for r in e.requirements if not Path(r).is_file()}
    pinned = {d for e in built for d in e.versions()}
    for want in (named, pinned):
        found = tuple(n for n in frameworks.FRAMEWORKS if venvs.normalise(frameworks.spec(n).package) in want)
        if found:
            return found
    raise UsageError(
        f"no framework in the --env sets (known: {', '.join(frameworks.FRAMEWORKS)}); name one, "
        "e.g. --env tensorflow==2.20.0"
    )


def parse_pin(text: str) -> tuple[int, ...]:
    """--pin's CPUs: "auto" (process.quietest_cpus) or numbers separated by commas, each one this process
    may run on; UsageError naming the problem."""
    from bench import process

    allowed = sorted(os.sched_getaffinity(0))
    if text == "auto":
        return process.quietest_cpus(1)
    try:
        cpus = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise UsageError(f"--pin {text!r}: give CPU numbers separated by commas (e.g. 1 or 0,1), or auto") from None
    outside = [c for c in cpus if c not in allowed]
    if outside:
        raise UsageError(
            f"--pin {text!r}: CPU {outside[0]} is not one this process may use ({','.join(map(str, allowed))})"
        )
    return cpus


def _switch(value, flag, choices):
    if value not in choices:
        raise UsageError(f"{flag} {value!r}: expected {' or '.join(choices)}")
    return choices[value]


def check_out(out: Path, resume: bool) -> None:
    """UsageError unless `out` can take this run's records: a folder (made if missing) that this
    process can write to, holding no records unless the run resumes them."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    existing = out / "records.jsonl"
    if not resume and existing.is_file() and existing.stat().st_size > 0:
        raise UsageError(f"--out {out}: already holds records; --resume continues that run, or choose another folder")


def cmd_run(args: argparse.Namespace) -> int:
    from bench import records as records_io
    from bench import run
    from bench.cli.progress import Progress, Signals

    config = config_from_args(args)
    assert config.out is not None  # config_from_args always sets it
    out_file = config.out / "records.jsonl"
    progress = Progress(config=config)
    observer: run.Observer = progress
    if args.history:
        from bench.history.recorder import Recorder

        observer = run.Observers(observer, Recorder(args.history, source=out_file))  # checked now, before anything runs
    if args.quick:  # once every flag is checked: a bad one's error stays the only line
        print("\n".join(smoke_banner(config)), file=sys.stderr, flush=True)
    with Signals() as signals:
        records = run.run(config, observer, stop=signals.stop)
    if signals.received is not None:
        print(
            f"stopped by {signal_name(signals.received)}: every checked case is in {out_file} (those cut short "
            f"marked interrupted; --resume times them again); report: python -m bench report {config.out}",
            file=sys.stderr,
        )
        return signals.exit_code
    if args.measure:
        records = count_instructions(records, out_file, progress.say, cache="cache" in (names(args.measure) or ()))
    progress.say(f"report: {'the table' if args.no_report else f'tables and plots in {config.out}'}")
    from bench import noise, report  # pandas and matplotlib: only once there is something to report

    if args.no_report:
        written = f"not written (--no-report; python -m bench report {config.out} writes it)"
    else:
        everything, _ = records_io.load(out_file)  # a resumed run reports every case of its folder
        written = ", ".join(str(p) for p in report.write(everything, config.out, noise.repository())[:2])
    df = report.frame(records, noise.repository())
    for line in report.text_tables(df, smoke=args.quick):
        print(printable(line))
    if args.quick:
        print("\n" + "\n".join(smoke_banner(config, end=True)))
    print(f"\nrecords: {config.out / 'records.jsonl'}\nreport: {written}")
    return 0 if all(r.status != "failed" for r in records) else 1


def smoke_banner(config: "Config", end: bool = False) -> list[str]:
    """What --quick is, said where a run starts and under its table: its figures come from few samples
    and rough ceilings (the settings `config` has), so they show that each case runs and is right, not
    how fast it is; and how to run a measurement."""
    copy_mib = (config.ceiling_copy_bytes or 0) / 2**20
    return [
        f"SMOKE TEST (--quick): {'the times above are' if end else 'this run is'} not a measurement",
        f"  few samples (about {config.budget_s:g} s of timed calls a case, {config.min_samples} to "
        f"{config.max_samples} samples) and rough ceilings (a {config.ceiling_gemm}^3 GEMM, a {copy_mib:g} MiB "
        "copy): it shows that each case runs and is right, not how fast it is",
        "  a measurement: make bench (or python -m bench run, without --quick)",
    ]


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def cmd_list(args: argparse.Namespace) -> int:
    """What can run here, read from the frameworks' classes and package metadata: no framework is
    imported unless --devices asks each which devices it sees."""
    from bench import fingerprint

    for name in frameworks.FRAMEWORKS:
        fw = frameworks.spec(name)
        reason = frameworks.unavailable_reason(name)
        if reason:
            print(f"{name}: not available ({reason})")
            continue
        print(f"{name} {frameworks.version(name) or '(version unknown)'}: installed")
        print(f"  steps:    {', '.join(fw.steps)}")
        print(
            f"  backends: {', '.join(fw.backends)}"
            + (f" ({', '.join(fw.gpu_backends)}: GPU only)" if fw.gpu_backends else "")
        )
        if args.devices:
            try:
                present = frameworks.load(name).devices()
            except frameworks.FrameworkUnavailable as e:
                print(f"  devices:  none: {e}")
                continue
            print(f"  devices:  {', '.join(present)}" + ("" if "gpu" in present else f" (no GPU visible to {name})"))
    gpus = [g.get("name") or "a GPU" for g in fingerprint.gpus()]
    print(
        f"GPUs on this machine: {', '.join(gpus) if gpus else 'none (nvidia-smi finds none)'}"
        + ("" if args.devices else "; --devices asks each framework what it sees (imports it)")
    )
    print(f"dtypes: {', '.join(defaults.DTYPES)}")
    print(
        "models: lesson (m -> nh -> 1, from --size), mlp:W0,W1,...,WL (any widths; --depths repeats the "
        "hidden one), FILE.py:NAME (your own layers: examples/tanh_model.py)"
    )
    print("losses: mse (the lesson's), xent (softmax cross-entropy over 10 digits)")
    return 0


def cmd_overhead(args: argparse.Namespace) -> int:
    from bench import overhead, run
    from bench.data import make_problem
    from kernels import reference

    n, m, nh = parse_size(args.size)
    if args.rounds < 2:
        raise UsageError("--rounds must be at least 2")
    check_names((args.framework,), (args.step,), (args.backend,))
    fw = run.load_frameworks([args.framework])[args.framework]
    run.plan(
        run.Config(
            out=None, frameworks=(args.framework,), steps=(args.step,), backends=(args.backend,), device=args.device
        ),
        {fw.name: fw},
    )
    p = make_problem(n, m)
    args_dev = fw.to_device((p.x, p.y, *reference.init_params(m, nh)), "float32", args.device)
    fn = fw.compile(args.step, args.backend)

    def call():
        with fw.placement(args.device):
            return fn(*args_dev)

    for _ in range(3):
        call()
        fw.sync()
    harness, bare, (ratio, lo, hi) = overhead.compare(call, fw.sync, rounds=args.rounds, timer=fw.timer(args.device))
    print(
        f"{fw.name}/{args.step}/{args.backend}/{args.device} n={n} m={m} nh={nh}: harness median "
        f"{sorted(harness)[len(harness) // 2] * 1e3:.3f} ms, bare loop {sorted(bare)[len(bare) // 2] * 1e3:.3f} ms, "
        f"harness/bare {ratio:.3f} [95% CI {lo:.3f}, {hi:.3f}] over {len(harness)} + {len(bare)} samples"
    )
    return 0


COMMANDS = {"run": cmd_run, "list": cmd_list, "overhead": cmd_overhead}
