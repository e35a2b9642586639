"""How well the change-point detector does on this machine's noise: synthetic histories whose
commit-to-commit noise is resampled from real repeated measurements of unchanged code (the spread
of repeated medians, e.g. the processes `gate --aa` or `gate --rates` keep with --out), with no
change, a +10% step, ten commits of +2% creep, or one slow run (a lone commit +50%, the next back:
an outlier), at a random commit; the detector is the history's own (changes.detect).

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
    false_alarms: int  # changes found where there is none (or away from the true one)
    detected: int  # the true change (or the slow run, as an outlier) found, in the right direction
    offsets: tuple  # found start - true start, of each detection
    set_apart: int = 0  # outliers and unconfirmed last commits flagged other than the true slow run


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
    elif scenario == "outlier":
        start = int(rng.integers(20, commits - 20))
        logs[start] += math.log(SLOW_RUN)
    return np.exp(logs) * 0.01, start


SCENARIOS = ("none", "step", "creep", "outlier")
SLOW_RUN = 1.5  # the lone slow run of the "outlier" scenario: x its commit's time


def run(
    noise_by_case: Mapping[str, np.ndarray],
    commits: int = 200,
    cases: int = 12,
    series: int = 20,
    seed: int = 0,
    tolerance: int = 3,
) -> list[Outcome]:
    """Outcome per scenario (SCENARIOS) over cases x series synthetic histories. A change counts as
    detected when its first commit is within `tolerance` commits of the true one and it is a
    slowdown; any other change found is a false alarm. In "outlier" every change is a false alarm,
    and the slow run set apart as an outlier at its commit is the detection."""
    rng = np.random.default_rng(seed)
    pools = list(noise_by_case.values())
    out = []
    for scenario in SCENARIOS:
        false_alarms, detected, offsets, total, apart = 0, 0, [], 0, 0
        for c in range(cases):
            noise = pools[c % len(pools)]
            for _ in range(series):
                values, start = _series(noise, commits, rng, scenario)
                found = changes.detect(values)
                total += 1
                hit, lone = _hits(found, start, scenario, tolerance)
                if hit or lone:
                    detected += 1
                    offsets.append((hit or lone).start - start)
                false_alarms += len([ch for ch in found.changes if ch is not hit])
                apart += len([e for e in found.excursions if e is not lone])
        out.append(Outcome(scenario, total, false_alarms, detected, tuple(offsets), apart))
    return out


def _hits(found: changes.Found, start: int | None, scenario: str, tolerance: int):
    """(the change found for the true one, the outlier found for the true slow run): each or None."""
    if start is None:
        return None, None
    if scenario == "outlier":
        return None, next((e for e in found.excursions if e.kind == "outlier" and e.start == start), None)
    near = [ch for ch in found.changes if ch.ratio > 1 and abs(ch.start - start) <= tolerance]
    return (min(near, key=lambda ch: abs(ch.start - start)) if near else None), None
