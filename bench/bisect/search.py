"""The search: each step measured (or read back from the kept state or the history), judged, kept;
counters first where the ends' counters differ, times against both ends otherwise; skips, the cap,
the confirmation beside the first bad commit's parent, and `git bisect run`'s one step."""

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import counters, git
from bench.bisect.plan import COUNTERS_BUDGET_S, BisectError, Plan, short
from bench.compare import PROCESSES, ROUNDS, CompareError, Comparison, How, Result, Thresholds, compare, counted
from bench.gate.errors import GateError
from bench.gate.processes import RunSpec, interleave, run_args, run_harness, stderr_line
from bench.records import Record

STATE_FILE = "bisect.json"
STATE_VERSION = 1
GOOD, COMMIT, BAD = "good", "commit", "bad"  # the sides of a step
# An undecided time step is measured again with these many times the pairs, until one decides: a
# commit near the midpoint, or a noisy spell of the machine, needs a narrower interval.
RETRY_PAIRS = (2, 4)
DECIDED = ("good", "bad", "skip")  # verdicts about a commit that hold whatever the timing


@dataclass(frozen=True)
class Measured:
    """What one step measured: {side: records} in one process (calls), or {side: [each round's
    process's records, None for one that wrote none]} (processes); notes on what went wrong."""

    pairing: str
    sides: dict[str, Any]
    wall_s: float = 0.0
    notes: tuple[str, ...] = ()

    def records(self, side: str) -> list[Record]:
        got = self.sides.get(side) or []
        return [r for recs in got if recs for r in recs] if self.pairing == "processes" else list(got)

    def judge(self, base: str, candidate: str, how: How) -> Result:
        """The one comparison (bench/compare.py) of two sides of the step, paired as they ran."""
        pairing = PROCESSES if self.pairing == "processes" else ROUNDS
        return compare(self.sides[base], self.sides[candidate], replace(how, pairing=pairing))


# measure(trees {side: checkout}, spec, pairs, folder, progress) -> Measured
Measure = Callable[[dict[str, Path], RunSpec, int, Path, Callable[[str], None]], Measured]


def measurer(pairing: str, thresholds: Thresholds) -> Measure:
    """The Measure of a pairing: every side's steps in one process per framework, this checkout's
    harness (bench/gate/one_process.py); or each side's own harness in processes of its own, the
    sides in rotating order (bench/gate/processes.py)."""

    def in_one_process(trees, spec, pairs, folder, progress):
        from bench.gate import one_process

        kept, _, wall_s, notes = one_process.measure(trees, spec, pairs, thresholds, folder, progress)
        return Measured("calls", kept, wall_s, notes)

    def in_processes(trees, spec, pairs, folder, progress):
        t0 = time.perf_counter()
        args = run_args(spec, trees.values())
        processes = interleave(trees, pairs, args, folder, run_harness, progress, spec.variables())
        notes = tuple(
            f"{side}: a process wrote no records (exit {p.rc}: {p.last_line})"
            for side, ps in processes.items()
            for p in ps[:1]
            if not p.records
        )
        sides = {side: [p.records for p in ps] for side, ps in processes.items()}
        return Measured("processes", sides, time.perf_counter() - t0, notes)

    return in_one_process if pairing == "calls" else in_processes


@dataclass(frozen=True)
class Step:
    """One step as it is kept: its kind (ends, counters, times, confirm, run), the commit, its
    verdict (good, bad, skip, inconclusive; the ends and the confirmation: changed, same,
    undecided or failed), why, each bisected case's figures, and the timing it was measured with."""

    kind: str
    sha: str
    index: int  # in Plan.commits (0: GOOD; -1: a commit off the first-parent line, in run mode)
    verdict: str
    why: str
    cases: tuple = ()  # dicts: case, ratio, lo, hi, verdict, counters; a time step's ends and midpoint
    counters: dict = field(default_factory=dict)  # {label: counters} (ends, confirm: {side: {label: ...}})
    wall_s: float = 0.0
    pairs: int = 0
    timing: str = ""  # Plan.timing() of the step
    reused: str = ""  # where it came from, when not measured now

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "reused"}

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Step":
        return cls(**{**data, "cases": tuple(data.get("cases") or ())})


@dataclass(frozen=True)
class Answer:
    """How a bisection ended: found (the first bad commit, or the commits it could be where some
    were skipped), no change, inconclusive or capped; the steps it rests on."""

    kind: str
    plan: Plan
    steps: tuple[Step, ...]
    first_bad: int | None = None  # index in plan.commits
    candidates: tuple[int, ...] = ()  # where skipped commits leave more than one
    last_good: int | None = None
    by: str = ""  # "counters" or "times"
    said: tuple[str, ...] = ()
    wall_s: float = 0.0

    @property
    def failed(self) -> bool:
        """No answer: a step could not tell, or the cap stopped it."""
        return self.kind in ("inconclusive", "capped")


@dataclass(frozen=True)
class Hooks:
    """How a bisection measures, checks out commits and talks (tests give stand-ins)."""

    measure: Measure | None = None  # None: measurer(plan.pairing, ...)
    worktree: Callable[[Path, str], Any] = git.worktree
    progress: Callable[[str], None] = stderr_line
    clock: Callable[[], float] = time.monotonic


class Bisector:
    """One bisection running: its kept state, its checkouts, its steps."""

    def __init__(self, plan: Plan, hooks: Hooks = Hooks(), history: Any = None) -> None:
        self.plan, self.hooks, self.history = plan, hooks, history
        self.measure = hooks.measure or measurer(plan.pairing or "processes", plan.how.thresholds)
        self.steps: list[Step] = []
        self.kept: list[Step] = self._load()
        self.trees: dict[str, Path] = {}
        self.stack = contextlib.ExitStack()
        self.t0 = hooks.clock()
        self.measured = 0  # steps measured by this invocation: what the cap counts
        self.said: list[str] = []
        self.steps_ends: Step | None = None
        self.end_counters: dict[str, dict[str, Any]] = {GOOD: {}, BAD: {}}
        self.counter_cases: list[str] = []
        self.time_cases: list[str] = []

    # -------------------------------------------------------- state

    def _load(self) -> list[Step]:
        path = self.plan.out / STATE_FILE
        if not path.exists():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError("not a bisection's state")
            steps = [Step.of(s) for s in data.get("steps") or ()]
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise BisectError(
                f"{path}: unreadable ({type(e).__name__}: {str(e)[:80]}); remove the folder, or give another --out"
            ) from None
        if data.get("key") != self.plan.key():
            other = data.get("key") or {}
            raise BisectError(
                f"{path}: holds another bisection ({str(other.get('good', '?'))[:10]}.."
                f"{str(other.get('bad', '?'))[:10]} of {len(other.get('cases') or ())} case(s), by "
                f"{other.get('by', '?')}); give another --out, or remove the folder to start again"
            )
        return steps

    def _save(self) -> None:
        path = self.plan.out / STATE_FILE
        body = {"version": STATE_VERSION, "key": self.plan.key(), "steps": [s.to_json() for s in self.kept]}
        try:
            self.plan.out.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(body, indent=1, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, path)  # a kill leaves the old state or the new, never half of one
        except OSError as e:
            raise BisectError(f"--out {self.plan.out}: cannot keep the steps there ({e.strerror or e})") from None

    def reusable(self, kind: str, sha: str, timing: str) -> Step | None:
        """A kept step of `kind` at `sha`: one timed alike, else one whose verdict holds whatever
        the timing (a commit decided good, bad or skipped; counters are exact)."""
        mine = [s for s in self.kept if s.kind == kind and s.sha == sha]
        alike = [s for s in mine if s.timing == timing]
        decided = [s for s in mine if kind in ("times", "counters") and s.verdict in DECIDED]
        either = alike or decided
        return either[-1] if either else None

    # -------------------------------------------------------- checkouts

    def tree(self, sha: str) -> Path:
        """A checkout of `sha` for the rest of the bisection (run mode: the working tree at HEAD)."""
        if self.plan.request.run_mode and sha == git.head(self.plan.repo):
            return self.plan.repo
        if sha not in self.trees:
            self.trees[sha] = self.stack.enter_context(self.hooks.worktree(self.plan.repo, sha))
        return self.trees[sha]

    def index(self, sha: str) -> int:
        return next((i for i, (c, _) in enumerate(self.plan.commits) if c == sha), -1)

    # -------------------------------------------------------- one step

    def over_cap(self) -> str | None:
        req = self.plan.request
        if self.measured >= req.max_steps:
            return f"--max-steps {req.max_steps} reached"
        if req.max_minutes and (self.hooks.clock() - self.t0) / 60 >= req.max_minutes:
            return f"--max-minutes {req.max_minutes:g} reached"
        return None

    def run_step(self, kind: str, sha: str, sides: dict[str, str], pairs: int, budget_s: float | None = None) -> Step:
        """The step `kind` of commit `sha` ({side: commit}, measured together): from the kept state,
        else from the history, else measured, then kept and added to the history."""
        timing = self.plan.timing(pairs, budget_s)
        index = self.index(sha)
        kept = self.reusable(kind, sha, timing)
        if kept is not None:
            return self._took(replace(kept, reused=f"kept in {self.plan.out}"))
        found = self.from_history(kind, sha, index, sides, pairs, timing) if self.history is not None else None
        if found is not None:
            return self._took(found)
        spec = self.plan.spec if budget_s is None else replace(self.plan.spec, budget_s=budget_s)
        folder = self.plan.out / f"{kind}-{short(sha)}-{pairs}p"
        shutil.rmtree(folder, ignore_errors=True)  # what an interrupted measurement of this step left
        self.hooks.progress(
            f"bisect: step {len(self.steps) + 1} ({kind}): "
            + ", ".join(f"{side} {short(c)}" for side, c in sides.items())
        )
        try:
            trees = {side: self.tree(c) for side, c in sides.items()}
            measured = self.measure(trees, spec, pairs, folder, self.hooks.progress)
        except (GateError, git.RevisionError) as e:
            measured = Measured(self.plan.pairing or "processes", {}, 0.0, (str(e),))
        self.measured += 1
        step = replace(self.judge(kind, sha, index, sides, measured, pairs), timing=timing)
        if (
            measured.sides and step.verdict != "failed"
        ):  # a failure to measure at all is not kept: it may pass next time
            self.kept.append(step)
            self._save()
            if self.history is not None:
                self.history.add(sides, timing, measured, self.said)
        return self._took(step)

    def _took(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def from_history(
        self, kind: str, sha: str, index: int, sides: dict[str, str], pairs: int, timing: str
    ) -> Step | None:
        """The step from the history: a counters step from the commit's counters there (where the
        history's counters of GOOD are this bisection's: counted alike); another from the same step
        measured before; None where it holds neither."""
        base: dict[str, Any] = dict(kind=kind, sha=sha, index=index, pairs=pairs, timing=timing)
        if kind == "counters":
            there, good = self.history.counters(sha), self.history.counters(self.plan.good)
            alike = all(good.get(label) == self.end_counters[GOOD].get(label) for label in self.counter_cases)
            if alike and all(label in there for label in self.counter_cases):
                return replace(self.by_counters(base, there), reused="counters in the history")
            return None
        found = self.history.find(sides, timing)
        if found is None:
            return None
        return replace(self.judge(kind, sha, index, sides, found, pairs), timing=timing, reused="the history")

    def judge(self, kind: str, sha: str, index: int, sides: dict[str, str], m: Measured, pairs: int) -> Step:
        """A step's verdict from what it measured."""
        base: dict[str, Any] = dict(kind=kind, sha=sha, index=index, wall_s=m.wall_s, pairs=pairs)
        missing = [side for side in sides if not _usable(m.records(side), self.plan.cases)]
        try:
            if kind in ("ends", "confirm"):
                return self.by_ends(base, sides, m, missing)
            if COMMIT in missing:
                return Step(**base, verdict="skip", why=_failed_why(m, [COMMIT]))
            if missing:  # an end that ran before failed now: a hiccup (or, in run mode, a broken end)
                return Step(**base, verdict="failed" if kind == "run" else "inconclusive", why=_failed_why(m, missing))
            if kind == "run":  # git bisect run: the ends come from this one step
                self.ends(self.by_ends(dict(base, kind="ends"), {GOOD: "", BAD: ""}, m, []))
                if not (self.counter_cases or self.time_cases):
                    return Step(**base, verdict="failed", why=_same_line(self.plan, self.steps_ends))  # type: ignore[arg-type]
            if kind == "counters" or (kind == "run" and self.counter_cases):
                return self.by_counters(base, _counters_of(m.records(COMMIT), self.plan.cases))
            return self.by_times(base, m)
        except CompareError as e:  # the sides ran under different software or machines
            return Step(**base, verdict="failed" if kind in ("ends", "run") else "inconclusive", why=str(e))

    def by_ends(self, base: dict[str, Any], sides: dict[str, str], m: Measured, missing: list[str]) -> Step:
        """Two commits side by side (the ends; the first bad commit and its parent): each case's
        ratio, interval, verdict and counters changed; changed or same."""
        if missing:
            return Step(**base, verdict="failed", why=_failed_why(m, missing))
        first, second = tuple(sides)
        rows = tuple(_row(c) for c in m.judge(first, second, self.plan.how).comparisons if c.label in self.plan.cases)
        changed = any(r["verdict"] in ("regressed", "improved") or r["counters"] for r in rows)
        same = all(r["verdict"] == "same" for r in rows)
        verdict = "changed" if changed else "same" if same else "undecided"
        counted = {side: _counters_of(m.records(side), self.plan.cases) for side in sides}
        return Step(**base, verdict=verdict, why="", cases=rows, counters=counted)

    def ends(self, step: Step) -> None:
        """What the ends found: each end's counters, the cases whose counters differ and those whose
        times differ beyond the threshold."""
        self.steps_ends = step
        self.end_counters = {side: step.counters.get(side) or {} for side in (GOOD, BAD)}
        good, bad = self.end_counters[GOOD], self.end_counters[BAD]
        self.counter_cases = [
            label
            for label in self.plan.cases
            if self.plan.request.by != "times" and good.get(label) and bad.get(label)
            if counters.changes(good[label], bad[label])
        ]
        self.time_cases = [r["case"] for r in step.cases if r["verdict"] in ("regressed", "improved")]

    def by_counters(self, base: dict[str, Any], mine: dict[str, Any]) -> Step:
        """good where every counted case's counters are GOOD's, bad where one's differ from GOOD's."""
        rows = []
        for label in self.counter_cases:
            if not mine.get(label):
                return Step(**base, verdict="skip", why=f"{label}: no counters", counters=mine)
            change = counters.changes(self.end_counters[GOOD][label], mine[label])
            whose = (
                "GOOD's" if not change else "BAD's" if mine[label] == self.end_counters[BAD][label] else "neither end's"
            )
            rows.append({"case": label, "counters": change, "as": whose})
        moved = [r for r in rows if r["counters"]]
        if not moved:
            return Step(**base, verdict="good", why="counters as GOOD's", cases=tuple(rows), counters=mine)
        whose = "BAD's" if all(r["as"] == "BAD's" for r in moved) else "not GOOD's"
        why = f"counters {whose}: " + "; ".join(moved[0]["counters"][:3])
        return Step(**base, verdict="bad", why=why, cases=tuple(rows), counters=mine)

    def by_times(self, base: dict[str, Any], m: Measured) -> Step:
        """Each case whose time changed between the ends: bad where the commit's ratio to GOOD has
        its interval beyond the midpoint of GOOD and BAD (both measured in this step), good where
        short of it, else undecided. The step is decided where more than half of the cases decided
        alike and none the other way."""
        to_commit = {c.label: c for c in m.judge(GOOD, COMMIT, self.plan.how).comparisons}
        to_bad = {c.label: c for c in m.judge(GOOD, BAD, self.plan.how).comparisons}
        rows, votes = [], []
        for label in self.time_cases:
            c, e = to_commit.get(label), to_bad.get(label)
            said = "inconclusive"
            if not (c and e and c.ratio and c.lo and c.hi and e.ratio and e.lo and e.hi):
                why = next((x.note for x in (c, e) if x is not None and x.note), "not timed on every side")
                rows.append({"case": label, "verdict": said, "why": why})
                votes.append(said)
                continue
            mid, up = math.sqrt(e.ratio), e.ratio > 1  # the geometric midpoint: halfway in log space
            if e.lo <= 1 <= e.hi:
                pass  # in this step the ends themselves could not be told apart
            elif (c.lo > mid) if up else (c.hi < mid):
                said = "bad"
            elif (c.hi < mid) if up else (c.lo > mid):
                said = "good"
            rows.append(
                {**_row(c), "verdict": said, "ends": e.ratio, "ends_lo": e.lo, "ends_hi": e.hi, "midpoint": mid}
            )
            votes.append(said)
        decided = {v for v in votes if v in ("good", "bad")}
        if len(decided) == 1 and 2 * sum(v in decided for v in votes) > len(votes):
            verdict = decided.pop()
            nearer = "BAD" if verdict == "bad" else "GOOD"
            why = f"{sum(v == verdict for v in votes)} of {len(votes)} case(s) nearer {nearer}"
            return Step(**base, verdict=verdict, why=why, cases=tuple(rows))
        why = (
            "the cases disagree (more than one change in the range? bisect one with --case)"
            if len(decided) > 1
            else "too few cases' intervals cleared the midpoint between GOOD and BAD"
        )
        return Step(**base, verdict="inconclusive", why=why, cases=tuple(rows))

    # -------------------------------------------------------- the bisection

    def bisect(self) -> Answer:
        plan = self.plan
        if plan.nothing:
            return Answer("no change", plan, (), said=(f"nothing to bisect: {plan.nothing}",))
        with self.stack:
            sides = {GOOD: plan.good, BAD: plan.bad}
            for factor in (1, *RETRY_PAIRS):  # measured again while nothing changed and a case is undecided
                ends = self.run_step("ends", plan.bad, sides, plan.pairs * factor)
                if ends.verdict == "failed":
                    raise BisectError(f"the ends could not be measured: {ends.why}")
                self.ends(ends)
                undecided = any(r["verdict"] == "inconclusive" for r in ends.cases)
                if self.counter_cases or self.time_cases or not undecided or self.over_cap():
                    break
            if plan.request.by == "counters" and not self.counter_cases:
                return self.answer(
                    "no change", said=("GOOD and BAD run the same counters: nothing to bisect by counters",)
                )
            if not self.counter_cases and not self.time_cases:
                if any(r["verdict"] == "inconclusive" for r in ends.cases):  # neither shown changed nor the same
                    return self.answer("inconclusive", said=(_undecided_ends_line(plan, ends),))
                return self.answer("no change", said=(_same_line(plan, ends),))
            found = self.search("counters" if self.counter_cases else "times")
            return self.confirm(found) if found.kind == "found" else found

    def search(self, by: str) -> Answer:
        """The binary search over the commits between GOOD (index 0) and BAD: a commit tried is the
        untried one nearest the middle; a skipped one is passed over, as git bisect skip does."""
        plan = self.plan
        lo, hi, skipped = 0, len(plan.commits) - 1, set()
        while hi - lo > 1:
            left = [i for i in range(lo + 1, hi) if i not in skipped]
            if not left:
                break
            if capped := self.over_cap():
                return self.answer("capped", lo, hi, by, said=(f"stopped: {capped}",))
            i = min(left, key=lambda k: (abs(k - (lo + hi) / 2), k))
            sha = plan.commits[i][0]
            if by == "counters":
                step = self.run_step("counters", sha, {COMMIT: sha}, 1, COUNTERS_BUDGET_S)
            else:
                sides = {GOOD: plan.good, COMMIT: sha, BAD: plan.bad}
                step = self.run_step("times", sha, sides, plan.pairs)
                for factor in RETRY_PAIRS:
                    if step.verdict != "inconclusive":
                        break
                    if capped := self.over_cap():
                        said = (f"stopped before measuring {short(sha)} again: {capped}",)
                        return self.answer("capped", lo, hi, by, said=said)
                    step = self.run_step("times", sha, sides, plan.pairs * factor)
            if step.verdict == "good":
                lo = i
            elif step.verdict == "bad":
                hi = i
            elif step.verdict == "skip":
                skipped.add(i)
            else:
                return self.answer("inconclusive", lo, hi, by, said=(_inconclusive_line(step, plan),))
        between = tuple(i for i in range(lo + 1, hi) if i in skipped)
        return self.answer("found", lo, hi, by, candidates=(*between, hi) if between else ())

    def confirm(self, found: Answer) -> Answer:
        """The first bad commit beside its parent, timed as the ends were (again with more pairs
        while a changed case's verdict is undecided): the change it made."""
        plan, hi, lo = self.plan, found.first_bad, found.last_good
        assert hi is not None and lo is not None
        if found.candidates:
            return found
        sha, said = plan.commits[hi][0], []
        sides = {"parent": plan.commits[lo][0], COMMIT: sha}
        step = None
        for factor in (1, *RETRY_PAIRS):
            if capped := self.over_cap():
                said.append(f"not timed beside its parent{' again' if step else ''}: {capped}")
                break
            step = self.run_step("confirm", sha, sides, plan.pairs * factor)
            if not any(r["verdict"] == "inconclusive" for r in step.cases if r["case"] in self.time_cases):
                break
        verdicts = {r["case"]: r["verdict"] for r in step.cases} if step else {}
        if found.by == "counters" and (same := [c for c in self.time_cases if verdicts.get(c) == "same"]):
            said.append(
                f"the time of {', '.join(same)} did not change at {short(sha)}, though it did between GOOD and BAD: "
                "that change lies at another commit (--by times finds it)"
            )
        if found.by == "times" and step and all(verdicts.get(c) == "same" for c in self.time_cases):
            said.append(
                "beside its parent no bisected case changed: the change may be spread over several commits, or "
                "smaller than one step can see"
            )
        return replace(found, steps=tuple(self.steps), said=tuple(said), wall_s=self.hooks.clock() - self.t0)

    def answer(
        self,
        kind: str,
        lo: int | None = None,
        hi: int | None = None,
        by: str = "",
        said: tuple = (),
        candidates: tuple = (),
    ) -> Answer:
        return Answer(kind, self.plan, tuple(self.steps), hi, candidates, lo, by, said, self.hooks.clock() - self.t0)

    def judge_once(self) -> tuple[int, str]:
        """`git bisect run` mode: the checked-out commit beside both ends in one step: (0 good, 1 bad,
        125 skip, the line that says why); BisectError where the bisection itself cannot go on."""
        plan = self.plan
        sha = git.head(plan.repo) or ""
        with self.stack:
            step = self.run_step("run", sha, {GOOD: plan.good, COMMIT: sha, BAD: plan.bad}, plan.pairs)
        if step.verdict == "failed":
            raise BisectError(f"{short(sha)}: {step.why}")
        code = {"good": 0, "bad": 1}.get(step.verdict, 125)
        line = f"bisect run: {short(sha)} is {step.verdict}: {step.why}"
        return code, line + (" (exit 125: git bisect skips it)" if code == 125 else "")


def run(plan: Plan, hooks: Hooks = Hooks(), history: Any = None) -> Answer:
    return Bisector(plan, hooks, history).bisect()


def _usable(recs: list[Record], cases: tuple[str, ...]) -> bool:
    """Whether a side timed every bisected case."""
    ok = {r.label for r in recs if r.status == "ok" and r.samples_s}
    return bool(recs) and all(label in ok for label in cases)


def _failed_why(m: Measured, sides: list[str]) -> str:
    for side in sides:
        bad = [r for r in m.records(side) if r.status != "ok"]
        if bad:
            return f"{side}: {bad[0].label}: {bad[0].status}" + (f": {bad[0].error}" if bad[0].error else "")
    return "; ".join(m.notes) or f"{', '.join(sides)}: no records"


def _counters_of(recs: list[Record], cases: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for r in recs:
        if r.label in cases and (got := counted([r])):
            out[r.label] = got[0]
    return out


def _row(c: Comparison) -> dict[str, Any]:
    return {
        "case": c.label,
        "ratio": c.ratio,
        "lo": c.lo,
        "hi": c.hi,
        "verdict": c.verdict,
        "detectable": c.detectable if math.isfinite(c.detectable) else None,
        "counters": list(c.counters),
        "note": c.note,
    }


def _same_line(plan: Plan, ends: Step) -> str:
    rows = "; ".join(
        f"{r['case']} x{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
        + (f", the smallest change it could see {r['detectable']:.1%}" if r.get("detectable") else "")
        for r in ends.cases
        if r.get("ratio")
    )
    counters_said = "counters set aside (--by times)" if plan.request.by == "times" else "no counter changed"
    return (
        f"no change: GOOD and BAD cannot be told apart (no case beyond {plan.how.thresholds.default:.0%} by its "
        f"interval, {counters_said}): {rows or 'no case timed on both'}"
    )


def _undecided_ends_line(plan: Plan, ends: Step) -> str:
    rows = "; ".join(
        f"{r['case']} x{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
        for r in ends.cases
        if r["verdict"] == "inconclusive"
    )
    return (
        f"GOOD and BAD could not be told apart at {plan.how.thresholds.default:.0%}, nor shown the same: {rows}; it "
        f"would take a narrower interval (the same command with --pairs {ends.pairs * 2} resumes, or a longer --budget)"
    )


def _inconclusive_line(step: Step, plan: Plan) -> str:
    return (
        f"inconclusive at {short(step.sha)}: {step.why}, with {step.pairs} pairs; it would take a longer step "
        f"(the same command with --pairs {step.pairs * 2} or --budget {plan.spec.budget_s * 2:g} resumes), a "
        "quieter machine, or --case naming one case"
    )
