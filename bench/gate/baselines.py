"""Stored baselines: the working tree against a file of earlier runs of this machine, times
normalised by each run's measured GEMM ceiling (unpaired: the baseline was measured at another time)."""

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import fingerprint, noise, records
from bench.compare import RUNS, How, Result, ceiling_scale, compare
from bench.gate.errors import GateError, NothingToCompare
from bench.machine import Machine


def find_baseline(path: Path | str) -> Path:
    """The baseline file to use: `path` itself, or in a folder the .jsonl whose machine (CPU model,
    architecture, GPUs) is this one. NothingToCompare when the folder has none for this machine."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise GateError(f"--baseline {path}: no such file or folder")
    here = Machine.of(fingerprint.collect()).hardware()
    for candidate in sorted(path.glob("*.jsonl")):
        recs, _ = records.load(candidate)
        if recs and Machine.of(recs[0].fingerprint).hardware() == here:
            return candidate
    raise NothingToCompare(f"no baseline for this machine ({here[0]}) in {path}; make one with --save-baseline {path}")


def read_baseline(path: Path) -> list[records.Record]:
    """The baseline's records; GateError where it has none usable."""
    base, problems = records.load(path)
    if not base:
        raise GateError(f"--baseline {path}: no usable records" + (f" ({problems[0]})" if problems else ""))
    return base


def judge(
    base: Sequence[records.Record], candidate: Sequence[records.Record], how: How, figures: noise.Figures
) -> tuple[Result, list[str]]:
    """The candidate's runs against the baseline's, each run's times scaled by its GEMM ceiling
    (compare.ceiling_scale), with one or two runs a side widened by the machine's noise between
    separate runs (bench/noise.py: its stored figure, else the default); (the Result, notes)."""
    scale = ceiling_scale([*base, *candidate])
    notes = [
        "times normalised by each run's measured GEMM GFLOP/s"
        if scale
        else "warning: times NOT normalised (some records lack the GEMM ceiling)"
    ]
    between = noise.between_runs(figures, candidate[0].fingerprint)
    if min(len({r.run_id for r in base}), len({r.run_id for r in candidate})) < 3:  # else a Welch t over run medians
        notes.append(
            f"intervals widened by the run-to-run noise between separate runs, sd {between.run_sd:.0%} "
            f"({between.run_source})"
        )
    result = compare(base, candidate, replace(how, pairing=RUNS, scale=scale, noise=between))
    return result, notes


def write_baseline(recs: Sequence[records.Record], path: Path | str) -> Path:
    """Every record in the baseline file `path` (a folder gets <baseline key>.jsonl); the file."""
    if not recs:
        raise GateError("the harness wrote no records to make a baseline of")
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / f"{Machine.of(recs[0].fingerprint).baseline_key}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.unlink(missing_ok=True)
    for r in recs:
        records.append(tmp, r)
    tmp.replace(path)
    return path
