"""Stored baselines: the working tree against a file of earlier runs of this machine, times
normalised by each run's measured GEMM ceiling (unpaired: the baseline was measured at another time)."""
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from bench import env, records
from bench.gate import rule
from bench.gate.errors import GateError, NothingToCompare
from bench.gate.paired import Outcome
from bench.gate.processes import Runner, RunSpec, accepts, interleave, run_args, run_harness, stderr_line


def gemm_scale(base_records: Iterable[records.Record]) -> Callable[[records.Record], float] | None:
    """scale(rec) for compare_case: a record's times expressed at the baseline machine's speed,
    t * gemm_gflops(run) / gemm_gflops(baseline), the baseline's being the median over its runs
    on that device. None when some record lacks the GEMM ceiling (times are then compared raw)."""
    refs: dict[str, list[float | None]] = {}
    for r in base_records:
        refs.setdefault(r.device, []).append(r.ceilings.get("gemm_gflops"))
    if not refs or any(v is None for vs in refs.values() for v in vs):
        return None
    ref = {device: sorted(cast("list[float]", vs))[len(vs) // 2] for device, vs in refs.items()}

    def scale(rec):
        own = rec.ceilings.get("gemm_gflops")
        return own / ref[rec.device] if own and rec.device in ref else 1.0
    return scale


def identity_key(fp: dict[str, Any] | None) -> str:
    """A readable file-name-safe key of a fingerprint's identity, e.g.
    x86_64-intel-xeon-platinum-8488c-nogpu-tensorflow-2.21.0."""
    ident = env.identity(fp or {})
    parts = [ident["machine"] or "unknown", ident["cpu_model"] or "unknown-cpu",
             "+".join(ident["gpu_names"]) or "nogpu",
             *(f"{k}-{v}" for k, v in sorted(ident["framework_versions"].items()))]
    return re.sub(r"[^a-z0-9._+]+", "-", "-".join(parts).lower().replace("(r)", "").replace("(tm)", "")).strip("-")


def _hardware(fp):
    ident = env.identity(fp or {})
    return (ident["cpu_model"], ident["machine"], ident["gpu_names"])


def find_baseline(path: Path | str) -> Path:
    """The baseline file to use: `path` itself, or in a folder the .jsonl whose machine (CPU model,
    architecture, GPUs) is this one. NothingToCompare when the folder has none for this machine."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise GateError(f"--baseline {path}: no such file or folder")
    here = _hardware(env.fingerprint())
    for candidate in sorted(path.glob("*.jsonl")):
        recs, _ = records.load(candidate)
        if recs and _hardware(recs[0].env) == here:
            return candidate
    raise NothingToCompare(f"no baseline for this machine ({here[0]}) in {path}; make one with --save-baseline {path}")


def stored(tree: Path | str, baseline: Path | str, spec: RunSpec, runs: int, thresholds: rule.Thresholds,
           workdir: Path | str, allow_mismatch: bool = False, runner: Runner = run_harness,
           probe: Callable[[str, str], bool] = accepts, progress: Callable[[str], None] | None = None,
           aa_file: Path | str | None = None) -> Outcome:
    """The working tree run `runs` times against a stored baseline's runs, times normalised by
    each run's GEMM ceiling (unpaired: the baseline was measured at another time, so with one or
    two runs a side each interval is widened by the machine's run-to-run noise, as `compare`
    widens it: experiments.run_noise from `aa_file`, else the default)."""
    progress = progress or stderr_line
    path = find_baseline(baseline)
    base, problems = records.load(path)
    if not base:
        raise GateError(f"--baseline {path}: no usable records" + (f" ({problems[0]})" if problems else ""))
    t0 = time.perf_counter()
    progress(f"gate: the working tree {tree} against {path}: {runs} runs, {spec.describe()}")
    processes = interleave({"candidate": Path(tree)}, runs, run_args(spec, [tree], probe), workdir, runner, progress,
                           spec.env())
    cand = [r for p in processes["candidate"] for r in p.records or ()]
    if not cand:
        p = processes["candidate"][0]
        raise GateError(f"the candidate's harness wrote no records (exit {p.rc}: {p.last_line})")
    scale = gemm_scale(base + cand)
    notes = [f"baseline {path} ({len({r.run_id for r in base})} runs)",
             "times normalised by each run's measured GEMM GFLOP/s" if scale else
             "warning: times NOT normalised (some records lack the GEMM ceiling)"]
    from bench.gate.experiments import AA_FILE, run_noise  # (experiments reads this module's identity keys)
    run_sd, where = run_noise(aa_file or Path(tree) / AA_FILE, cand[0].env)
    if min(len({r.run_id for r in base}), len(processes["candidate"])) < 3:   # else a Welch t over run medians
        notes.append(f"intervals widened by the run-to-run noise between separate runs, sd {run_sd:.0%} ({where})")
    result = rule.compare(base, cand, thresholds, allow_mismatch=allow_mismatch, scale=scale, run_sd=run_sd)
    return Outcome(result, processes, time.perf_counter() - t0, tuple(notes))


def save_baseline(tree: Path | str, path: Path | str, spec: RunSpec, runs: int, workdir: Path | str,
                  runner: Runner = run_harness, probe: Callable[[str, str], bool] = accepts,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Run the working tree `runs` times and write every record to the baseline file (a folder gets
    <identity key>.jsonl); returns the file."""
    processes = interleave({"candidate": Path(tree)}, runs, run_args(spec, [tree], probe), workdir, runner, progress,
                           spec.env())
    recs = [r for p in processes["candidate"] for r in p.records or ()]
    if not recs:
        p = processes["candidate"][0]
        raise GateError(f"the harness wrote no records (exit {p.rc}: {p.last_line})")
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / f"{identity_key(recs[0].env)}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.unlink(missing_ok=True)
    for r in recs:
        records.append(tmp, r)
    tmp.replace(path)
    return path
