"""A case's history as a series: one point per commit and machine (the median of that commit's runs,
with the median's 95% CI over their pooled samples), in commit order, and its change points.

Series of different machines are never mixed; with normalise=True each run's times are scaled by
its own measured GEMM ceiling (to the median ceiling of the case's runs), as the stored baseline
does, and the machines of a case become one series. Within a machine, the change points run on the
medians, on the medians scaled by each run's ceiling, or on the medians scaled by each run's canary
(bench/canary.py: timed in the cases' own rounds, so it saw the slow minute they saw), whichever is
quieter (Series.basis); or, where most commits were timed against their parent's steps in the same
process (a one-process gate added with `history add --paired-base`), on those paired ratios when they
are quieter still. A lone slow run the basis does not cancel is set apart as an outlier, and the
newest commits off the level before them as unconfirmed (changes.detect).
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from bench import stats
from bench.compare import INSTRUCTIONS_FRACTION
from bench.history import changes


@dataclass(frozen=True)
class Point:
    commit: str
    time: float | None  # committer time, seconds since the epoch
    branch: str | None
    median_s: float
    lo_s: float  # the median's 95% CI over the commit's pooled samples (nan with few)
    hi_s: float
    runs: tuple  # run ids
    sources: tuple  # the records files they were added from
    counters: dict = field(default_factory=dict)  # what the case executes at this commit ({} before counters)
    parent: tuple | None = None  # (parent sha, ratio, lo, hi): against the parent's steps in the same process
    instructions: float | None = None  # a call's instructions under Callgrind (median of its runs'), where counted


@dataclass(frozen=True)
class WorkChange:
    """A commit at which what the case executes changed: known exactly, whatever the noise."""

    index: int  # the point (commit) whose counters differ from the point before it
    commit: str
    what: tuple  # bench/counters.py changes(): "MatMul 6 -> 7", "FLOPs +25.0% ..."
    instructions: float | None = None  # where instructions changed: the ratio to the commit before it


@dataclass(frozen=True)
class Series:
    case: str
    machine: str
    points: tuple
    changes: tuple = field(default=())
    work_changes: tuple = field(default=())  # WorkChange per commit whose counters differ from its predecessor's
    basis: str = "median"  # what the change points ran on: BASES, the quieter
    excursions: tuple = field(default=())  # changes.Excursion: outliers and unconfirmed last commits, set apart

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None

    def trend(self, last: int = 10, least: int = 3) -> tuple[float, int]:
        """(the latest median over the median of up to `last` points before it, minus 1; how many
        points that was): nan with fewer than `least` points before it (too few to say anything)."""
        before = [p.median_s for p in self.points[-last - 1 : -1]]
        if len(before) < least:
            return math.nan, len(before)
        return self.points[-1].median_s / float(np.median(before)) - 1, len(before)


def build(points: Iterable[dict[str, Any]], normalise: bool = False, since_time: float | None = None) -> list[Series]:
    """[Series] from Store.points() rows, each with its change points found."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        if since_time is not None and (p["commit_time"] or 0) < since_time:
            continue
        key = (p["case"], "all machines, normalised by each run's GEMM ceiling" if normalise else p["machine"])
        groups.setdefault(key, []).append(p)
    out = []
    for (case, machine), rows in groups.items():
        scale = _scale(rows) if normalise else (lambda row: 1.0)
        if scale is None:
            continue  # some run lacks a ceiling: it cannot be normalised
        pts, bases = _points(rows, scale, {} if normalise else {"ceiling": _scale(rows), "canary": by_canary(rows)})
        if pts:
            out.append(_series(case, machine, pts, bases))
    return sorted(out, key=lambda s: (s.case, s.machine))


def _points(rows, scale, rescalings):
    """([Point] of the rows, one per commit in commit order; {basis: value per point} of each of
    `rescalings` ({basis: row -> factor, or None where some run lacks what it scales by}))."""
    by_commit: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_commit.setdefault(row["commit_sha"], []).append(row)
    pts = []
    bases: dict[str, list[float]] = {name: [] for name, factor in rescalings.items() if factor}
    for sha, rs in by_commit.items():  # rows come in commit order
        medians = [r["median_s"] * scale(r) for r in rs if r["median_s"]]
        samples = [s * scale(r) for r in rs for s in r["samples_s"]]
        if not medians:
            continue
        lo, hi = stats.median_ci(samples) if samples else (math.nan, math.nan)
        pts.append(
            Point(
                sha,
                rs[0]["commit_time"],
                rs[0]["branch"],
                float(np.median(medians)),
                lo,
                hi,
                tuple(r["run_id"] for r in rs),
                tuple(r["source"] for r in rs if r.get("source")),
                next((r["counters"] for r in rs if r.get("counters")), {}),
                _against_parent(rs),
                _instructions(rs),
            )
        )
        for name in bases:
            factor = rescalings[name]
            bases[name].append(float(np.median([r["median_s"] * factor(r) for r in rs if r["median_s"]])))
    return pts, bases


def _series(case, machine, pts, bases):
    """The Series of `pts`, its change points found on the quieter of its bases (or its paired ratios)."""
    basis, values = quieter({"median": [p.median_s for p in pts], **bases})
    found = changes.detect(values)
    found_changes, apart = found.changes, found.excursions
    paired = increments(pts, list(found.levels))
    if paired and paired[2] < changes.noise(np.log(values)) * math.sqrt(2):  # quieter than the levels
        basis, found_changes = "parent", tuple(changes.find_increments(list(found.levels), *paired[:2]))
        # an unconfirmed commit paired with its parent is judged by that ratio, not set apart
        apart = tuple(
            e for e in apart if e.kind == "outlier" or not all(_paired(pts, i) for i in range(e.start, e.end + 1))
        )
    return Series(case, machine, tuple(pts), found_changes, tuple(work_changes(pts)), basis, apart)


BASES = {
    "median": "the medians",
    "ceiling": "the medians x each run's GEMM ceiling (a reference timed in the same process)",
    "canary": "the medians / each run's canary (a fixed computation timed in the same rounds)",
    "parent": "each commit's ratio to its parent's steps, timed in the same process",
}


def _instructions(rows):
    """The median of the rows' instructions a call, None where no run counted them."""
    from bench.instructions import COUNTING

    counted = [
        r["instructions"]["per_call"]
        for r in rows
        if isinstance(r.get("instructions"), dict)
        and isinstance(r["instructions"].get("per_call"), (int, float))
        and r["instructions"].get("counting") == COUNTING  # counted another way: another series
    ]
    return float(np.median(counted)) if counted else None


def _against_parent(rows):
    """(parent sha, ratio, lo, hi) of the commit's narrowest interval against its parent, or None."""
    have = [r for r in rows if r.get("parent_ratio") and r.get("parent_lo") and r.get("parent_hi")]
    if not have:
        return None
    r = min(have, key=lambda r: r["parent_hi"] / r["parent_lo"])
    return r["parent_sha"], r["parent_ratio"], r["parent_lo"], r["parent_hi"]


def increments(points: list[Point], levels: list[float]) -> tuple[list[float], list[float], float] | None:
    """(log change from each point to the next, its standard error, the noise of the paired ones)
    where most of the commits were timed against their parent's steps (Point.parent naming the
    point before): those changes from the pairing (error from its 95% interval), the others
    from the two points' `levels` (error from their commit-to-commit noise). None otherwise."""
    if len(points) < 2:
        return None
    z = NormalDist().inv_cdf(0.975)
    level_error = max(changes.noise(np.log(levels)) * math.sqrt(2), 1e-6)
    d, se, paired = [], [], []
    for i, p in enumerate(points[1:]):
        if p.parent and _paired(points, i + 1):
            _, ratio, lo, hi = p.parent
            d.append(math.log(ratio))
            se.append(max((math.log(hi) - math.log(lo)) / (2 * z), 1e-6))
            paired.append(i)
        else:
            d.append(math.log(levels[i + 1] / levels[i]))
            se.append(level_error)
    if not paired or 2 * len(paired) < len(d):
        return None
    # their noise: what their intervals say, or their own spread (robust, about no change) where that is wider
    noise = max(float(np.median([se[i] for i in paired])), 1.4826 * float(np.median([abs(d[i]) for i in paired])))
    return d, se, noise


def _paired(points: list[Point], i: int) -> bool:
    """Whether point i was timed against the steps of the point before it, in the same process."""
    p = points[i]
    return i > 0 and p.parent is not None and p.parent[0] == points[i - 1].commit


def quieter(bases: dict[str, list[float]]) -> tuple[str, list[float]]:
    """(basis, values) for the change points: of `bases` ({"median": the medians, and any of BASES'
    rescalings that every point has}), the one with the smallest commit-to-commit noise
    (changes.noise), the medians on a tie. A machine that runs slower in one run runs its GEMM and
    its canary slower too, and the ratio to them cancels that, unless their own noise is the larger.
    A lone slow run barely moves that noise: it is set apart as an outlier whatever the basis."""
    medians = bases["median"]
    usable = {
        name: v
        for name, v in bases.items()
        if len(v) == len(medians) >= 4 and all(x > 0 for x in v) and all(x > 0 for x in medians)
    }
    if "median" not in usable:
        return "median", medians
    name = min(usable, key=lambda b: (changes.noise(np.log(usable[b])), b != "median"))
    return name, usable[name]


@dataclass(frozen=True)
class Check:
    """What `history check` found among the last `last` commits of each series: slowdowns over the
    threshold (these fail), outliers and unconfirmed commits (said, never failing: an outlier was
    undone by the next commit, and unconfirmed commits become a change once their level holds), and
    work changes (exact, from the counters; failing where the case's counter policy is "fail")."""

    threshold: float
    last: int
    slowdowns: tuple = ()  # (Series, changes.Change)
    apart: tuple = ()  # (Series, changes.Excursion)
    work: tuple = ()  # (Series, WorkChange, fails: bool)

    @property
    def failed(self) -> bool:
        return bool(self.slowdowns) or any(fails for _, _, fails in self.work)


def check(
    found: Iterable[Series],
    last: int,
    threshold: float,
    policy: Callable[[str], str],
    instructions: float = INSTRUCTIONS_FRACTION,
) -> Check:
    """The Check of `found` over each series' last `last` commits; `policy(case)` is the case's
    counter policy (only "fail" fails here: "more-work" weighs a work change against a paired time
    verdict, which the gate has and a history's separate runs do not); a commit whose instructions a
    call grew by more than `instructions` fails."""
    found = list(found)
    recent = lambda s, index: index >= len(s.points) - last

    def fails(s: Series, w: WorkChange) -> bool:
        if w.instructions is not None:  # repeatable where times are not: over the threshold fails
            return w.instructions > 1 + instructions
        return policy(s.case) == "fail"

    return Check(
        threshold,
        last,
        tuple((s, ch) for s in found for ch in s.changes if recent(s, ch.end) and ch.ratio > 1 + threshold),
        tuple((s, x) for s in found for x in s.excursions if recent(s, x.end)),
        tuple((s, w, fails(s, w)) for s in found for w in s.work_changes if recent(s, w.index)),
    )


def work_changes(points: list[Point], least: float = INSTRUCTIONS_FRACTION) -> list[WorkChange]:
    """Each commit whose counters differ from those of the commit before it that has counters, and
    each whose instructions a call moved by more than `least` from the commit before it that has them."""
    from bench import counters

    out: list[WorkChange] = []
    before: dict | None = None
    counted: float | None = None
    for i, p in enumerate(points):
        if p.counters:
            what = counters.changes(before, p.counters) if before is not None else []
            if what:
                out.append(WorkChange(i, p.commit, tuple(what)))
            before = p.counters
        if p.instructions:
            ratio = p.instructions / counted if counted else 1.0
            if abs(math.log(ratio)) > math.log1p(least):
                said = f"instructions {ratio - 1:+.2%} a call ({counted:,.0f} -> {p.instructions:,.0f})"
                out.append(WorkChange(i, p.commit, (said,), ratio))
            counted = p.instructions
    return out


def by_canary(rows: list[dict[str, Any]]) -> Callable[[dict[str, Any]], float] | None:
    """row -> the factor that puts its run's times at the machine speed typical of `rows`: the
    median canary of the rows over the row's own (bench/canary.py); None where some row lacks one
    (a run recorded before the canary), so a series is scaled throughout or not at all."""
    canaries = [r.get("canary_s") or 0.0 for r in rows]
    if not all(c > 0 for c in canaries):
        return None
    typical = float(np.median(canaries))
    return lambda row: typical / row["canary_s"]


def _scale(rows):
    """row -> its times' factor at the rows' reference GEMM ceiling (compare.reference_ceiling), or None."""
    from bench.compare import reference_ceiling

    reference = reference_ceiling(r.get("gemm_gflops") for r in rows)
    return None if reference is None else (lambda row: row["gemm_gflops"] / reference)
