"""Measuring the gate itself: the A/A false-positive rate (unchanged code against itself) and the
detection rate (a candidate whose manual step does 25% more work, bench/gate/slower.py), stored per
machine in results/baselines/aa.json and printed beside every verdict."""

import datetime
import math
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import bench.gate.process_pairs as process_pairs
from bench import git, noise
from bench.compare import LEVEL, RULE, How, Thresholds
from bench.gate.outcome import Outcome
from bench.gate.processes import RunSpec, interleave, run_args

# Appended to the candidate copy's kernels/tf_steps.py: its manual step made slower.
SLOWER_HOOK = """
from kernels._gate_slowdown import slower as _slower  # a gate detection experiment's candidate only
manual_step = _slower(manual_step)
"""
SLOWDOWN = 0.25


def rate_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def settings(spec: RunSpec, pairs: int, thresholds: Thresholds) -> dict[str, Any]:
    """What a stored rate was measured with; a rate applies to a gate run with the same settings."""
    return {
        "pairs": pairs,
        "run": spec.describe(),
        "threshold": thresholds.default,
        "overrides": [list(o) for o in thresholds.overrides],
        "rule": RULE,
    }


def experiment_entry(
    outcomes: Sequence[Outcome], spec: RunSpec, pairs: int, thresholds: Thresholds, method: str
) -> dict[str, Any]:
    """The stored summary of repeated gate runs (A/A or detection)."""
    flagged = sum(o.flagged for o in outcomes)
    per_case: dict[str, dict[str, int]] = {}
    for o in outcomes:
        for c in o.result.comparisons:
            counts = per_case.setdefault(
                c.label, {"regressed": 0, "improved": 0, "same": 0, "inconclusive": 0, "n/a": 0}
            )
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
    lo, hi = rate_ci(flagged, len(outcomes))
    # the noise between separate processes: one process's two sides (pairing "calls") are not that
    sd = run_sd_of(outcomes) if all(o.pairing == "processes" for o in outcomes) else None
    intervals = [c for o in outcomes for c in o.result.comparisons if c.lo is not None and c.hi is not None]
    excluding = sum(not c.lo <= 1 <= c.hi for c in intervals)
    return {
        **settings(spec, pairs, thresholds),
        "method": method,
        "runs": len(outcomes),
        "flagged": flagged,
        "rate": flagged / len(outcomes) if outcomes else None,
        "rate_ci95": [lo, hi],
        "per_case": per_case,
        # For unchanged code a 95% interval should exclude 1 about 5% of the time: its coverage.
        "intervals": len(intervals),
        "intervals_excluding_1": excluding,
        # the noise between separate runs (A/A: of unchanged code), what `compare` widens an unpaired interval by
        **({"run_sd_log": sd} if sd is not None else {}),
        "measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_sd_of(outcomes: Iterable[Outcome]) -> float | None:
    """The sd of the log of a case's median between separate processes: from each pair of
    processes' medians of the same case (a pair's log-ratio has twice one process's variance)."""
    logs = []
    for o in outcomes:
        sides = [procs for procs in o.processes.values()]
        if len(sides) != 2:
            continue
        for a, b in zip(*sides):
            ma = {r.case: r.summary.median_s for r in a.records or () if r.status == "ok" and r.samples_s}
            mb = {r.case: r.summary.median_s for r in b.records or () if r.status == "ok" and r.samples_s}
            logs += [math.log(mb[k] / ma[k]) for k in ma.keys() & mb.keys() if ma[k] > 0 and mb[k] > 0]
    if len(logs) < 4:
        return None
    return float(statistics.stdev(logs) / math.sqrt(2))


def extra_sd_of(outcomes: Iterable[Outcome]) -> float | None:
    """What one-process A/A runs' intervals miss: the sd of their cases' log-ratios about 0 (where
    unchanged code belongs), less the part their own intervals account for, in quadrature. A
    process-level effect that pairing by round cannot cancel (the two sides' copies placed
    differently in one process) shows here."""
    z = NormalDist().inv_cdf(0.5 + LEVEL / 2)
    logs, within = [], []
    for o in outcomes:
        for c in o.result.comparisons:
            if c.ratio and c.lo and c.hi and c.lo > 0:
                logs.append(math.log(c.ratio))
                within.append((math.log(c.hi / c.lo) / (2 * z)) ** 2)
    if len(logs) < 4:
        return None
    return math.sqrt(max(0.0, statistics.fmean(v * v for v in logs) - statistics.fmean(within)))


def rate_line(figures: noise.Figures, fp: dict[str, Any], spec: RunSpec, pairs: int, thresholds: Thresholds) -> str:
    """The stored A/A false-positive rate for this machine, as a line to print beside a verdict."""
    aa, det = noise.entry(figures, fp, "aa"), noise.entry(figures, fp, "detection")
    if not aa:
        return f"A/A false-positive rate: not measured on this machine (measure it: {noise.MEASURE_RUNS})"
    lo, hi = aa.get("rate_ci95", [math.nan, math.nan])
    machine = fp.get("cpu_model") or fp.get("machine") or "this machine"
    now = settings(spec, pairs, thresholds)
    line = (
        f"A/A false-positive rate stored for {machine}, measured {aa.get('measured_utc', '?')[:10]}: "
        f"{aa['flagged']}/{aa['runs']} runs flagged ({aa['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}{_resampled(aa)})"
        f"{_other_settings(aa, now)}"
    )
    if det:  # measured apart, maybe on another day and at another threshold: each says its own
        line += (
            f"; a +{det.get('slowdown', 0):.0%} slowdown was flagged in {det['flagged']}/{det['runs']} runs"
            f"{_resampled(det, ' (', ')')}, measured {det.get('measured_utc', '?')[:10]}{_other_settings(det, now)}"
        )
    return line


def _other_settings(entry: dict[str, Any], now: dict[str, Any]) -> str:
    differ = [k for k in ("pairs", "run", "threshold", "overrides", "rule") if entry.get(k) != now[k]]
    return f" (with other settings: {', '.join(differ)} differ)" if differ else ""


def _resampled(entry, before="; ", after=""):
    r = entry.get("resampled")
    return f"{before}{r['flagged']}/{r['runs']} resampled runs{after}" if r else ""


# ---------------------------------------------------------------- the rates experiment


def slower_copy(tree: Path | str, dest: Path) -> Path:
    """A copy of `tree`'s working tree (tracked and untracked, not ignored, files) whose manual
    TensorFlow step does about 25% more work."""
    for name in git.working_files(tree):
        src = Path(tree) / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shutil.copy2(Path(__file__).with_name("slower.py"), dest / "kernels" / "_gate_slowdown.py")
    with open(dest / "kernels" / "tf_steps.py", "a", encoding="utf-8") as f:
        f.write(SLOWER_HOOK)
    return dest


def windows(rounds: int, pairs: int, sliding: bool) -> list[list[int]]:
    step = 1 if sliding else pairs
    return [list(range(j, j + pairs)) for j in range(0, rounds - pairs + 1, step)]


def _judge(procs, candidate, window, how):
    return process_pairs.outcome(
        {"base": [procs["base"][i] for i in window], "candidate": [procs[candidate][i] for i in window]}, how
    )


@dataclass(frozen=True)
class RatesRun:
    """What one rates experiment ran: its spec, rounds and pairs a gate run, the rule it judges by."""

    spec: RunSpec
    rounds: int
    pairs: int
    how: How
    wall_s: float = 0.0
    subsets: int = 100
    also_pairs: tuple[int, ...] = (6, 8)


def rates(
    tree: Path | str, run: RatesRun, workdir: Path | str, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """One interleaved sequence of `run.rounds` rounds, each running three processes in rotating
    order: `tree` (base), `tree` again (the A/A candidate) and a copy whose manual step is slower
    (the detection candidate). Every `run.pairs` consecutive rounds form one gate run of each kind,
    judged by the gate's own rule; disjoint windows are the independent runs counted, sliding
    windows and random subsets of rounds add overlapping ones. ({"aa": entry, "detection": entry},
    the fingerprint)."""
    t0 = time.perf_counter()
    trees = {"base": Path(tree), "same": Path(tree), "slower": slower_copy(tree, Path(workdir) / "slower-tree")}
    procs = interleave(
        trees,
        run.rounds,
        run_args(run.spec, trees.values()),
        Path(workdir) / "runs",
        progress=progress,
        extra_env=run.spec.variables(),
    )
    run = replace(run, wall_s=time.perf_counter() - t0)
    fp: dict[str, Any] = next((r.fingerprint for p in procs["base"] for r in p.records or ()), {})
    entries = {"aa": _rate_entry(procs, "same", run), "detection": _rate_entry(procs, "slower", run)}
    entries["detection"].update(slowdown=SLOWDOWN, slowed="manual step: one extra (0.75n x m) @ (m x nh) matmul")
    return entries, fp


def _rate_entry(procs: dict[str, list], candidate: str, run: RatesRun) -> dict[str, Any]:
    """The stored entry of one kind (the A/A or the slower candidate) of a rates experiment."""
    rounds, pairs, thresholds = run.rounds, run.pairs, run.how.thresholds
    judged = {s: [_judge(procs, candidate, w, run.how) for w in windows(rounds, pairs, s)] for s in (False, True)}
    method = (
        f"gate --rates {rounds}: {rounds} rounds of 3 processes (base, A/A candidate, slower candidate) in "
        f"rotating order; {len(judged[False])} disjoint windows of {pairs} pairs are the runs counted; "
        f"{pairs}-round sliding windows reported apart; {run.wall_s:.0f} s"
    )
    entry = experiment_entry(judged[False], run.spec, pairs, thresholds, method)
    slide = judged[True]
    entry["sliding"] = {
        "runs": len(slide),
        "flagged": sum(o.flagged for o in slide),
        "per_case": experiment_entry(slide, run.spec, pairs, thresholds, "")["per_case"],
    }
    rng = random.Random(0)
    picks = [sorted(rng.sample(range(rounds), pairs)) for _ in range(run.subsets)] if pairs <= rounds else []
    entry["resampled"] = {
        "runs": len(picks),
        "flagged": sum(_judge(procs, candidate, w, run.how).flagged for w in picks),
        "note": f"random {pairs}-round subsets of the {rounds} rounds (not independent)",
    }
    entry["other_pairs"] = {}
    for k in run.also_pairs:
        ks = [sorted(rng.sample(range(rounds), k)) for _ in range(run.subsets)] if k <= rounds else []
        entry["other_pairs"][k] = {
            "disjoint_runs": rounds // k,
            "disjoint_flagged": sum(_judge(procs, candidate, w, run.how).flagged for w in windows(rounds, k, False)),
            "subsets": len(ks),
            "subsets_flagged": sum(_judge(procs, candidate, w, run.how).flagged for w in ks),
        }
    return entry
