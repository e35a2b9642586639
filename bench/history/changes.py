"""Change points in a case's history: a step (one commit +10%) and creep (ten commits of +2%), each
found and pointed at the first commit of the change.

Detection is ruptures' PELT (exact segmentation under a penalty, linear time) on the series' log
times in units of its own noise (a robust estimate from the commit-to-commit differences, so a
step does not inflate it), with a penalty calibrated so that a series without change raises at most
about one false alarm in 200 commits (`python -m bench history simulate` measures it). PELT finds
where the level moved; it places a creep's change somewhere inside the ramp, so each change is then
located by least squares: level, a linear ramp from its first to its last commit, level; a step is
a ramp of one commit. Changes of one direction whose ramps nearly touch (MERGE_GAP) are one change:
PELT may cut a long creep in two or three.

A commit off the level of the commits around it, that the commit after it undoes, is an outlier (a
slow run: the machine, not the code), and commits at the end of the series off the level before
them, too few to hold a level (MIN_SEGMENT), are unconfirmed: nothing can yet tell them from a
step. detect() sets both apart (Excursion), puts the level around them in their place, and looks
for changes in what is left, so a slow run is never read as a step and a creep back.

Where each commit was also timed against its parent's steps in the same process (a one-process
gate), its change is known directly, as a paired ratio with an interval far narrower than the
spread between runs; find_increments looks for changes in those: a window of consecutive commits
(one commit: a step; up to MAX_RAMP: creep) whose summed log-ratios lie Z_INCREMENT standard errors
from nothing.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_SEGMENT = 3  # commits a level must hold to count: a lone outlier is not a change
PENALTY = 5.0  # x log(n), in units of the series' noise variance (calibrated: module docstring)
MAX_RAMP = 25  # commits a creep may take
RAMP_COST = 0.6  # noise variances a ramp pays per commit, so a clean step is not read as a ramp
# Standard errors a window of commits' summed changes must reach: about one false alarm in a thousand
# commits of paired increments, at the power the simulation reports (experiment: history-simulate).
Z_INCREMENT = 3.7
MERGE_GAP = 4  # changes of one direction this close (commits from one's end to the next's start) are one
Z_EXCURSION = 5.0  # noise sds a commit must stand off the level around it to be set apart (outlier, unconfirmed)


@dataclass(frozen=True)
class Change:
    start: int  # index of the first commit the change reaches
    end: int  # index of the first commit at the new level (== start: a step)
    before: float  # the level before (median time, seconds)
    after: float  # the level after

    @property
    def ratio(self) -> float:
        return self.after / self.before

    @property
    def kind(self) -> str:
        return "step" if self.end == self.start else f"creep over {self.end - self.start + 1} commits"


@dataclass(frozen=True)
class Excursion:
    """Commits off the level around them, set apart from the change points: an "outlier" (one commit,
    the commit after it back at the level before it: a slow run says nothing of the code) or
    "unconfirmed" (the last commits of the series, fewer than a level needs: a step or a slow run,
    which the next commits will tell)."""

    start: int  # index of its first commit
    end: int  # index of its last commit (== start: one commit)
    level: float  # the level around it (median time, seconds)
    value: float  # its own level
    kind: str  # "outlier" or "unconfirmed"

    @property
    def ratio(self) -> float:
        return self.value / self.level


@dataclass(frozen=True)
class Found:
    """What detect() found in a series: its changes, its excursions, and the levels the changes were
    looked for in (the series with each excursion replaced by the level around it)."""

    changes: tuple
    excursions: tuple
    levels: tuple


def noise(logs: np.ndarray) -> float:
    """The commit-to-commit noise of log times: the MAD of first differences / sqrt(2), scaled to a
    normal's standard deviation; a step or a ramp moves few differences, so it barely shows here."""
    d = np.diff(logs)
    if len(d) < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def scale(logs: np.ndarray) -> float:
    """The noise the detector measures distances in: noise(), kept off zero (a series of equal times)."""
    return max(noise(logs), 1e-6, 1e-3 * float(np.std(logs)))


def excursions(
    logs: np.ndarray, sigma: float, z: float = Z_EXCURSION, min_segment: int = MIN_SEGMENT
) -> tuple[list[Excursion], np.ndarray]:
    """([Excursion], the log times with each one replaced by the level around it). A commit is an
    outlier where it stands over z noise sds (`sigma`) off the mean of the commits either side and
    those two agree (they differ by under half as much: a step has the commit after it at the new
    level, never back); the last k < min_segment commits are unconfirmed where each stands z sds
    off the median of the min_segment commits before them, all to one side, and the commit before
    them does not (the last min_segment commits so placed hold a level: the change points' own)."""
    logs = np.array(logs, float)
    n, cut = (
        len(logs),
        z * sigma * math.sqrt(1.5),
    )  # the sd of a commit's distance from the mean of the commits either side
    found = []
    for i in range(1, n - 1):
        level = (logs[i - 1] + logs[i + 1]) / 2
        off = logs[i] - level
        if abs(off) > cut and abs(logs[i + 1] - logs[i - 1]) < abs(off) / 2:
            found.append(Excursion(i, i, math.exp(level), math.exp(logs[i]), "outlier"))
            logs[i] = level
    for k in range(min_segment, 0, -1):  # min_segment commits off the level before them hold a level: a change
        if n < k + min_segment:
            continue
        level = float(np.median(logs[n - k - min_segment : n - k]))
        off = logs[n - k :] - level
        if np.all(np.abs(off) > cut) and len(set(np.sign(off))) == 1:
            if k < min_segment:
                found.append(
                    Excursion(n - k, n - 1, math.exp(level), math.exp(float(np.mean(logs[n - k :]))), "unconfirmed")
                )
                logs[n - k :] = level
            break
    return found, logs


def detect(values: Sequence[float] | np.ndarray, penalty: float = PENALTY, min_segment: int = MIN_SEGMENT) -> Found:
    """The changes in a series of median times (find()) once its excursions (outliers, and the
    unconfirmed last commits) are set apart: what the history reports."""
    values = np.asarray(values, float)
    if len(values) < 3 or not np.all(values > 0):
        return Found(tuple(find(values, penalty, min_segment)), (), tuple(values))
    logs = np.log(values)
    sigma = scale(logs)  # the series' own noise, its excursions in it: their replacements would understate it
    apart, cleaned = excursions(logs, sigma, min_segment=min_segment)
    levels = np.exp(cleaned)
    return Found(
        tuple(find(levels, penalty, min_segment, sigma)),
        tuple(sorted(apart, key=lambda e: e.start)),
        tuple(float(v) for v in levels),
    )


def locate(y: np.ndarray, b: int, sigma: float) -> tuple[int, int, float, float]:
    """(start, end, a, c) of the change PELT put at index b of the window y (log times): of every
    ramp [start, end] around b (a step: start == end), the one with the least squared error plus
    RAMP_COST per ramp commit, levels a before and c after fitted by least squares. All candidate
    ramps are fitted at once: a weight matrix (how far each commit is into the change) and the
    2 x 2 normal equations solved for every row."""
    n = len(y)
    pairs = np.array(
        [(s, e) for s in range(max(1, b - MAX_RAMP), b + 1) for e in range(max(s, b), min(n - 1, s + MAX_RAMP) + 1)]
    )
    k = np.arange(n)[None, :]
    start, end = pairs[:, :1], pairs[:, 1:]
    w = np.where(end == start, (k >= start).astype(float), np.clip((k - start + 1) / (end - start + 1), 0.0, 1.0))
    u = 1 - w
    s00, s01, s11 = (u * u).sum(1), (u * w).sum(1), (w * w).sum(1)
    r0, r1 = u @ y, w @ y
    det = s00 * s11 - s01**2
    a = (s11 * r0 - s01 * r1) / det
    c = (s00 * r1 - s01 * r0) / det
    sse = float(y @ y) - (a * r0 + c * r1)
    score = sse / sigma**2 + RAMP_COST * (pairs[:, 1] - pairs[:, 0])
    i = int(np.argmin(score))
    return int(pairs[i, 0]), int(pairs[i, 1]), float(a[i]), float(c[i])


def find(
    values: Sequence[float] | np.ndarray,
    penalty: float = PENALTY,
    min_segment: int = MIN_SEGMENT,
    sigma: float | None = None,
) -> list[Change]:
    """The changes in a series of median times (one per commit, in commit order): [Change]; sigma:
    the noise of its log times, measured here (scale) unless given."""
    import ruptures as rpt

    values = np.asarray(values, float)
    n = len(values)
    if n < 2 * min_segment or not np.all(values > 0):
        return []
    logs = np.log(values)
    sigma = sigma or scale(logs)
    bkps = (
        rpt.Pelt(model="l2", min_size=min_segment, jump=1)
        .fit((logs / sigma).reshape(-1, 1))
        .predict(pen=penalty * math.log(n))[:-1]
    )
    bounds = [0, *bkps, n]
    found = []
    for i, b in enumerate(bkps, 1):
        lo, hi = bounds[i - 1], bounds[i + 1]
        s, e, a, c = locate(logs[lo:hi], b - lo, sigma)
        found.append([lo + s, lo + e, a, c])
    merged: list[list[Any]] = []
    for s, e, a, c in found:
        if merged and (c > a) == (merged[-1][3] > merged[-1][2]) and s <= merged[-1][1] + MERGE_GAP:
            merged[-1][1], merged[-1][3] = e, c  # one change cut in two: from the first start to the last end
        else:
            merged.append([s, e, a, c])
    return [Change(s, e, math.exp(a), math.exp(c)) for s, e, a, c in merged]


def find_increments(
    levels: Sequence[float], increments: Sequence[float], errors: Sequence[float], z: float = Z_INCREMENT
) -> list[Change]:
    """The changes in a series whose commit-to-commit changes are known: `levels` the median time at
    each commit, increments[k] the log of commit k+1's time over commit k's (from a pairing in one
    process, or the two medians), errors[k] its standard error. Greedily, the window of at most
    MAX_RAMP consecutive increments whose sum is most standard errors from 0, while it is over z, is
    a change, and its commits are taken; the
    errors are first scaled up by the other increments' spread where that is wider than their
    intervals claim (a process-level effect the pairing does not cancel is noise, not a change), and
    the increments are scored about their median (a bias of the pairing in every commit)."""
    d, se = np.asarray(increments, float), np.asarray(errors, float)
    n = len(d)
    if n < 1 or len(levels) != n + 1 or not np.all(np.isfinite(d)) or not np.all(se > 0):
        return []
    # Scored about the series' typical increment, not 0: a pairing's small bias (one of the two copies
    # of the steps placed a little better, in every process) adds up over a window of commits into
    # what would read as creep (a percent a commit is a quarter over a long window); a drift through the
    # whole series cannot be told from such a bias. The change's size is still the measured one.
    raw = np.concatenate([[0.0], np.cumsum(d)])
    d = d - float(np.median(d))
    sums, variances = np.concatenate([[0.0], np.cumsum(d)]), np.concatenate([[0.0], np.cumsum(se**2)])
    # every window [start, end] of up to MAX_RAMP increments: row = its start, column = its length - 1
    starts = np.arange(n)[:, None]
    ends = np.minimum(starts + np.arange(MAX_RAMP)[None, :], n - 1)
    ok = starts + np.arange(MAX_RAMP)[None, :] < n
    score = np.where(ok, (sums[ends + 1] - sums[starts]) / np.sqrt(variances[ends + 1] - variances[starts]), 0.0)
    taken = np.zeros(n, bool)
    found = []
    while True:
        held = np.concatenate([[0], np.cumsum(taken)])
        free = ok & (held[ends + 1] == held[starts])  # windows holding no commit of a change already found
        masked = np.where(free, np.abs(score), 0.0)
        s, length = (int(i) for i in np.unravel_index(int(np.argmax(masked)), masked.shape))
        e = s + length
        rest = ~taken
        rest[s : e + 1] = False
        if rest.sum() < 3:
            break
        # the errors' scale: the other increments' own spread in their errors' units (about no change),
        # where it is wider than their intervals say; it includes whatever noise the intervals miss
        scale = max(1.0, float(np.sqrt(np.mean((d[rest] / se[rest]) ** 2))))
        if masked[s, length] / scale <= z:
            break
        taken[s : e + 1] = True
        before = float(levels[s])
        found.append(Change(s + 1, e + 1, before, before * math.exp(float(raw[e + 1] - raw[s]))))
    return sorted(found, key=lambda ch: ch.start)
