"""How well the change-point detector does on this machine's noise: synthetic histories whose
commit-to-commit noise is resampled from real repeated measurements of unchanged code (the spread
of repeated medians, e.g. the processes `gate --aa` or `gate --rates` keep with --out), with no
change, a +10% step, or ten commits of +2% creep, at a random commit.

    python -m bench history simulate RUNS... [--commits 200] [--cases 12] [--series 20]
"""
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from bench.history import changes
from bench.records import Record


@dataclass(frozen=True)
class Outcome:
    scenario: str
    series: int
    false_alarms: int            # changes found where there is none (or away from the true one)
    detected: int                # the true change found, in the right direction
    offsets: tuple               # found start - true start, of each detection


def residuals(records: Iterable[Record]) -> dict[str, np.ndarray]:
    """{case label: log deviations of each repeated median from the case's mean}, from records of
    repeated runs of the same code."""
    by_case: dict[str, list[float]] = {}
    for r in records:
        if r.status == "ok" and r.samples_s:
            by_case.setdefault(r.label, []).append(math.log(r.summary.median_s))
    return {case: np.asarray(v) - np.mean(v) for case, v in by_case.items() if len(v) >= 4}


def _series(noise, commits, rng, scenario):
    """(medians of one synthetic history, first commit of its change or None)."""
    logs = rng.choice(noise, commits, replace=True)
    start = None
    if scenario == "step":
        start = int(rng.integers(20, commits - 20))
        logs[start:] += math.log(1.10)
    elif scenario == "creep":
        start = int(rng.integers(20, commits - 30))
        logs += np.clip(np.arange(commits) - start + 1, 0, 10) * math.log(1.02)
    return np.exp(logs) * 0.01, start


def run(noise_by_case: Mapping[str, np.ndarray], commits: int = 200, cases: int = 12, series: int = 20, seed: int = 0,
        tolerance: int = 3) -> list[Outcome]:
    """Outcome per scenario ("none", "step", "creep") over cases x series synthetic histories. A
    change counts as detected when its first commit is within `tolerance` commits of the true one
    and it is a slowdown; any other change found is a false alarm."""
    rng = np.random.default_rng(seed)
    pools = list(noise_by_case.values())
    out = []
    for scenario in ("none", "step", "creep"):
        false_alarms, detected, offsets, total = 0, 0, [], 0
        for c in range(cases):
            noise = pools[c % len(pools)]
            for _ in range(series):
                values, start = _series(noise, commits, rng, scenario)
                found = changes.find(values)
                total += 1
                hit = None
                if start is not None:
                    near = [ch for ch in found if ch.ratio > 1 and abs(ch.start - start) <= tolerance]
                    hit = min(near, key=lambda ch: abs(ch.start - start)) if near else None
                if hit:
                    detected += 1
                    offsets.append(hit.start - start)
                false_alarms += len([ch for ch in found if ch is not hit])
        out.append(Outcome(scenario, total, false_alarms, detected, tuple(offsets)))
    return out
