"""The scale command: the manual step data-parallel over 1, 2, ... replicas under each framework's
own engine (bench/distributed/), beside the plain single-device case, each checked then timed; the
records, then the report with its scaling tables and plot."""

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench import defaults, frameworks
from bench.cli.args import Parser, UsageError, check_problem_memory, names, parse_size, size_text
from bench.text import printable

if TYPE_CHECKING:
    from bench.distributed.launch import DistributedError, Request


def add_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    s = sub.add_parser(
        "scale",
        help="data-parallel scaling: the manual step over R replicas under tf.distribute, "
        "jax.sharding and torch.distributed",
    )
    s.add_argument(
        "--engine",
        nargs="+",
        help="mirrored, multiworker, sharding, torch.distributed (default: every one whose framework is installed)",
    )
    s.add_argument("--backend", nargs="+", help="backends (default: every one the engine has)")
    s.add_argument(
        "--replicas",
        nargs="+",
        metavar="R",
        help=f"replica counts (default: {' '.join(map(str, defaults.SCALE_REPLICAS))})",
    )
    s.add_argument(
        "--size", nargs="+", metavar="N,M,NH", help=f"problem sizes (default: {size_text(defaults.SCALE_SIZE)})"
    )
    s.add_argument(
        "--scaling",
        nargs="+",
        metavar="strong|weak",
        help="strong: each size's n is the global batch at every R; weak: it is the batch of each "
        "replica (global n x R) (default: both)",
    )
    s.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu: a core a replica; gpu: a GPU a replica (default: cpu)",
    )
    s.add_argument(
        "--samples",
        type=int,
        default=defaults.SCALE_SAMPLES,
        help=f"timed steps in every process (default: {defaults.SCALE_SAMPLES})",
    )
    s.add_argument(
        "--warmup",
        type=int,
        default=defaults.SCALE_WARMUP,
        help=f"untimed steps after the first call (default: {defaults.SCALE_WARMUP})",
    )
    s.add_argument(
        "--timeout",
        type=float,
        default=defaults.SCALE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"a case's processes are killed after this (default: {defaults.SCALE_TIMEOUT_S:g})",
    )
    s.add_argument("--port", type=int, help="first TCP port for the workers (default: free ports chosen)")
    s.add_argument(
        "--no-single", action="store_true", help="leave out the single-device cases that R=1 is compared with"
    )
    s.add_argument("--seed", type=int, default=defaults.SEED, help=f"seed (default: {defaults.SEED})")
    s.add_argument("--out", help="output folder (default: results/<run-id>)")
    s.add_argument("--resume", action="store_true", help="skip the cases already recorded in --out")


def _ints(values, flag):
    out = []
    for v in names(values) or ():
        try:
            out.append(int(v))
        except ValueError:
            raise UsageError(f"{flag} {v!r}: expected a whole number") from None
        if out[-1] < 1:
            raise UsageError(f"{flag} {v!r}: expected at least 1")
    return tuple(dict.fromkeys(out))


def plan(args: argparse.Namespace) -> "list[Request]":
    """[launch.Request] in the order they run: per size, the single-device cases, then each engine x
    backend x R."""
    from bench.distributed import launch

    replicas = _ints(args.replicas, "--replicas") or defaults.SCALE_REPLICAS
    kinds = names(args.scaling) or ("strong", "weak")
    for k in kinds:
        if k not in ("strong", "weak"):
            raise UsageError(f"--scaling {k!r}: expected strong or weak")
    sizes = [parse_size(s) for s in args.size] if args.size else [defaults.SCALE_SIZE]
    check_problem_memory(tuple((s, None) for s in sizes), ("float32",))  # the global batch and its float64 reference
    engines = _engines(names(args.engine))
    asked = names(args.backend)
    for b in asked or ():
        if not any(b in launch.ENGINES[e].backends for e in engines):
            raise UsageError(f"unknown backend {b!r} for engines {', '.join(engines)}")
    if args.samples < 1 or args.warmup < 0 or not args.timeout > 0:
        raise UsageError("--samples must be at least 1, --warmup at least 0 and --timeout positive")
    requests = []
    for (n, m, nh), e in ((size, e) for size in sizes for e in engines):
        spec = launch.ENGINES[e]
        for b in (b for b in spec.backends if not asked or b in asked):
            if not args.no_single and 1 in replicas:  # what R=1 under the engine is compared with
                requests.append(launch.Request("", spec.framework, b, args.device, 1, n, m, nh))
            for r in replicas:
                ns = sorted({n * r if kind == "weak" else n for kind in kinds})
                requests += [launch.Request(e, spec.framework, b, args.device, r, g, m, nh) for g in ns]
    return list(dict.fromkeys(requests))


def _engines(asked: Sequence[str] | None) -> list[str]:
    """The engines asked for, each known and its framework installed; none asked: every engine whose
    framework is installed here (the workers load it, not this process)."""
    from bench.distributed import launch

    for e in asked or ():
        if e not in launch.ENGINES:
            raise UsageError(f"unknown engine {e!r} (available: {', '.join(launch.ENGINES)})")
        reason = frameworks.unavailable_reason(launch.ENGINES[e].framework)
        if reason:
            raise UsageError(f"engine {e}: {reason}")
    engines = list(
        asked or (e for e, spec in launch.ENGINES.items() if frameworks.unavailable_reason(spec.framework) is None)
    )
    if not engines:
        raise UsageError("no engine's framework is installed here (tensorflow, jax or torch)")
    return engines


def cmd_scale(args: argparse.Namespace) -> int:
    from bench import fingerprint
    from bench import records as records_io
    from bench.cli.run import check_out
    from bench.distributed import launch
    from bench.run.plan import new_run_id

    requests = plan(args)
    for req in requests:  # everything this machine cannot serve is said before anything runs
        launch.validate(req, args.port)
    run_id = new_run_id()
    out = Path(args.out) if args.out else Path("results") / run_id
    check_out(out, args.resume)
    out_file = out / "records.jsonl"
    done = set()
    if args.resume and out_file.exists():
        old, _ = records_io.load(out_file)
        done = {r.case for r in old if r.status == "ok"}
        run_id = next((r.run_id for r in old if r.run_id), run_id)
    # the frameworks' versions from their package metadata: they load in the workers, not here
    used = dict.fromkeys(req.key.framework for req in requests)
    fp = fingerprint.collect(
        {name: {"version": frameworks.version(name)} for name in used},
        data_source=f"synthetic(seed={args.seed})",
        seeds={"data": args.seed},
    )

    def terminated(signum, frame):
        raise SystemExit(128 + signum)  # unwinds through the launcher, which kills its workers

    previous = signal.signal(signal.SIGTERM, terminated)
    written = []
    try:
        for i, req in enumerate(requests, 1):
            if req.key in done:
                continue
            print(printable(f"[{i}/{len(requests)}] {req.label}"), file=sys.stderr, flush=True)
            try:
                rec = launch.run(
                    req,
                    out / "work" / f"case{i}",
                    samples=args.samples,
                    warmup=args.warmup,
                    timeout_s=args.timeout,
                    seed=args.seed,
                    port=args.port,
                    run_id=run_id,
                    fp=fp,
                )
            except launch.DistributedError as e:  # e.g. --port taken since the check: this case, not the run
                rec = launch.failed(req, str(e), run_id, fp)
            records_io.append(out_file, rec)
            written.append(rec)
            what = (
                f"median {rec.summary.median_s * 1e3:.3g} ms, max rel err {rec.max_rel_err:.1e}"
                if rec.status == "ok"
                else f"FAILED: {rec.error}"
            )
            print(printable(f"[{i}/{len(requests)}] done: {req.label}: {what}"), file=sys.stderr, flush=True)
    except (KeyboardInterrupt, SystemExit) as e:
        code = e.code if isinstance(e, SystemExit) else 130
        print(f"stopped: every finished case is in {out_file}; --resume runs the rest", file=sys.stderr)
        return code if isinstance(code, int) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    everything, _ = records_io.load(out_file) if out_file.exists() else ([], 0)
    from bench import noise, report  # pandas and matplotlib: only once there is something to report

    paths = report.write(everything, out, noise.repository())
    from bench.report import document, frames

    sc = frames.scaling(report.frame(everything))
    for (w, m, nh, precision, kind), table in document.scaling_tables(sc).items():
        print(printable(f"{kind} scaling, {w}, m={m}, nh={nh}, {precision}"))
        print("\n".join(printable(line) for line in report.markdown_table(table).splitlines()))
    print(f"\nrecords: {out_file}\nreport: {', '.join(str(p) for p in paths[:2])}")
    return 0 if all(r.status != "failed" for r in written) else 1


COMMANDS = {"scale": cmd_scale}


def errors() -> "tuple[type[DistributedError]]":
    from bench.distributed.launch import DistributedError

    return (DistributedError,)
