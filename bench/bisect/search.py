"""Bisection: the first commit between GOOD and BAD that changed a case. Every step measures a
commit beside both ends in one paired run (the ends' steps in the same process where only the
steps' code changed in the range, else each commit's own harness in processes of its own, as the
gate chooses), so whatever the machine does over a long bisection moves all three alike. Counters,
which are exact, decide where they changed; times decide the rest: a commit is bad when its
interval lies nearer BAD's time than GOOD's. Each step is kept in a folder (a stopped bisection
resumes from it) and, with a history, added to it. The command line only parses and prints."""

import contextlib
import fnmatch
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import REPO, defaults, frameworks, git
from bench.compare import PROCESSES, ROUNDS, Comparison, How, Result, Thresholds, compare, counted
from bench.gate import settings
from bench.gate.errors import GateError
from bench.gate.plan import CHECK_S, START_S, choose_pairing, outside_kernels, specs
from bench.gate.plan import Request as GateRequest
from bench.gate.processes import RunSpec, interleave, run_args, run_harness, stderr_line
from bench.records import CaseKey, Record

STATE_FILE = "bisect.json"
STATE_VERSION = 1
GOOD, COMMIT, BAD = "good", "commit", "bad"  # the sides of a step
COUNTERS_BUDGET_S = 0.05  # a step that reads counters alone: they are exact, its times are not used
RETRY_PAIRS = 2  # an undecided time step is measured once more, with this many times the pairs
UNSTEADY = "differ in their counters"  # counter_changes' line for a side whose own runs disagree


class BisectError(ValueError):
    """A bisection that cannot run as asked (a revision, the range, a pattern, the state folder);
    str() is one line."""


@dataclass(frozen=True)
class Request:
    """What the command line asked, as plain values (None: not given, the default)."""

    good: str
    bad: str
    cases: tuple[str, ...] = ()  # fnmatch patterns of case names or labels
    repo: str | None = None
    frameworks: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    sizes: tuple = ()
    device: str = "all"
    budget_s: float | None = None
    pairs: int | None = None
    threads: int | None = None
    pairing: str = "auto"
    threshold: str | None = None
    instructions: tuple[str, ...] = ()  # patterns of cases also counted under Callgrind (none by default)
    by: str = "auto"  # what finds the commit: auto (counters where they changed, else times), counters, times
    out: str | None = None
    db: str | None = None
    max_steps: int = defaults.BISECT_MAX_STEPS
    max_minutes: float | None = None
    run_mode: bool = False  # `git bisect run`: judge the checked-out commit once, exit 0 / 1 / 125


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """A bisection resolved before anything runs: the range, its pairing, what each step times."""

    request: Request
    repo: Path
    good: str
    bad: str
    commits: tuple[tuple[str, str], ...]  # (sha, subject): GOOD first, then its first-parent line to BAD
    pairing: str | None  # "calls" or "processes"; None: nothing timed differs
    why: str
    spec: RunSpec
    pairs: int
    how: How
    cases: tuple[str, ...]  # the labels of the cases bisected (those the patterns match)
    out: Path
    nothing: str | None = None

    @property
    def searched(self) -> int:
        """Commits the answer can be: those after GOOD, BAD included."""
        return len(self.commits) - 1

    def key(self) -> dict[str, Any]:
        """What a kept state must match to be resumed: the range, the pairing and what each step times."""
        return {
            "good": self.good,
            "bad": self.bad,
            "pairing": self.pairing,
            "spec": self.spec.describe(),
            "pairs": self.pairs,
            "cases": list(self.cases),
            "by": self.request.by,
        }

    def step_estimate_s(self, sides: int = 3, budget_s: float | None = None, pairs: int | None = None) -> float:
        """About how long one step takes: its timed calls, known from the spec, and the gate's
        allowances for starting processes and checking cases."""
        cases, budget, pairs = (
            len(self.cases),
            self.spec.budget_s if budget_s is None else budget_s,
            pairs or self.pairs,
        )
        if self.pairing == "calls":
            return sides * cases * (budget * pairs + CHECK_S) + len(self.spec.frameworks) * START_S
        return sides * pairs * (START_S + cases * (budget + CHECK_S))

    def estimate(self) -> tuple[int, float]:
        """(steps, seconds) a bisection by times takes at most without retries: the ends, log2 of
        the commits searched, and the confirming comparison."""
        probes = math.ceil(math.log2(self.searched)) if self.searched > 1 else 0
        return probes + 2, self.step_estimate_s(2) * 2 + probes * self.step_estimate_s(3)

    def describe(self) -> list[str]:
        """`bisect --plan`: the range, the pairing, what a step times, how many steps and how long."""
        lines = [
            f"bisect plan: {short(self.good)} (good) .. {short(self.bad)} (bad) in {self.repo}: "
            f"{self.searched} commit(s) on the first-parent line"
        ]
        if self.nothing:
            return [*lines, f"  nothing to bisect: {self.nothing}"]
        steps, seconds = self.estimate()
        counters = self.step_estimate_s(1, COUNTERS_BUDGET_S, 1)
        return [
            *lines,
            f"  pairing: {_pairing_text(self.pairing, self.pairs)} ({self.why})",
            f"  times: {self.spec.describe()}",
            f"  cases: {len(self.cases)}: {', '.join(self.cases[:4])}{', ...' if len(self.cases) > 4 else ''}",
            f"  steps: the ends (GOOD beside BAD), then each commit tried beside both ends, then the first bad "
            f"commit beside its parent: about {steps} steps by times, about {_minutes(seconds)} "
            f"({_minutes(self.step_estimate_s(3))} a step); where the counters changed, each commit tried "
            f"reads its counters alone (about {_minutes(counters)} a step)",
            f"  judged: a commit is bad when its time's 95% interval lies nearer BAD's than GOOD's (the "
            f"midpoint of the two, measured in the same step); GOOD and BAD must differ by more than "
            f"{self.how.thresholds.default:.0%} (their interval clear of half of it) or in their counters",
            f"  cap: {self.request.max_steps} steps"
            + (f" or {self.request.max_minutes:g} minutes" if self.request.max_minutes else "")
            + f"; kept in {self.out} (the same command resumes)",
        ]


def _pairing_text(pairing: str | None, pairs: int) -> str:
    if pairing == "calls":
        return "one process: the steps of the commits of a step interleaved take by take, paired by round"
    return f"processes: {pairs} rounds of each commit's own harness, in rotating order"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def short(sha: str) -> str:
    return sha[:10]


def make(request: Request) -> Plan:
    """The Plan of `request`: the revisions resolved and checked, the pairing chosen from what the
    range changes, the cases the patterns name. BisectError, one line, on bad input."""
    repo = Path(request.repo).resolve() if request.repo else REPO
    if not repo.is_dir():
        raise BisectError(f"--repo {request.repo}: no such folder")
    if request.max_steps < 1:
        raise BisectError(f"--max-steps {request.max_steps}: give at least 1")
    if request.max_minutes is not None and not request.max_minutes > 0:
        raise BisectError(f"--max-minutes {request.max_minutes:g}: must be positive")
    good, bad = (_resolve(repo, rev, name) for rev, name in ((request.good, "GOOD"), (request.bad, "BAD")))
    if good == bad:
        raise BisectError(
            f"GOOD {request.good} and BAD {request.bad} are the same commit ({short(good)}): nothing between"
        )
    if not git.is_ancestor(repo, good, bad):
        raise BisectError(
            f"GOOD {request.good} ({short(good)}) is not an ancestor of BAD {request.bad} ({short(bad)}): a bisection "
            "searches forward from a good commit to a bad one"
        )
    if request.run_mode and git.dirty(repo):
        raise BisectError(
            f"{repo} has uncommitted changes: `git bisect run` measures the checked-out commit, and this would be "
            "another (commit or stash them)"
        )
    commits = ((good, git.subject(repo, good)), *git.first_parents(repo, good, bad))
    if commits[-1][0] != bad:
        raise BisectError(f"git listed no first-parent line from {short(good)} to {short(bad)}")
    touched = tuple(_touched(repo, good, bad))
    pairing, why, nothing = choose_pairing(request.pairing, touched, "GOOD")
    spec, pairs = _spec(request, pairing)
    cases = _cases(spec, request.cases)
    spec = _narrowed(spec, cases, request.cases)
    thresholds = settings.load_thresholds(repo / "pyproject.toml", request.threshold)
    thresholds = replace(thresholds, instruction_cases=settings.case_patterns(request.instructions))
    out = Path(request.out) if request.out else repo / "results" / "bisect" / f"{short(good)}-{short(bad)}"
    labels = tuple(k.label for k in cases)
    return Plan(request, repo, good, bad, commits, pairing, why, spec, pairs, How("", thresholds), labels, out, nothing)


def _resolve(repo: Path, rev: str, name: str) -> str:
    try:
        return git.resolve(repo, rev)
    except git.RevisionError as e:
        raise BisectError(f"{name}: {e}") from None
    except git.NoRevision as e:
        raise BisectError(f"{name} {rev}: {e}") from None


def _touched(repo: Path, good: str, bad: str) -> list[str]:
    """Every file a commit of the range changed (a change undone later still changes what a step
    between the two runs)."""
    listed = git.out(
        repo, "log", "--first-parent", "--diff-merges=first-parent", "--name-only", "--format=", f"{good}..{bad}", "--"
    )
    return sorted({f for f in (listed or "").splitlines() if f})


def _spec(request: Request, pairing: str | None) -> tuple[RunSpec, int]:
    """The gate's RunSpec for the pairing (its defaults, each flag given applied), and the pairs.
    Case patterns without --framework look among every installed framework."""
    fws = request.frameworks or (frameworks.installed() if request.cases else ())
    try:
        pair_spec, calls_spec, pairs = specs(
            GateRequest(
                pairs=request.pairs,
                sizes=request.sizes,
                steps=request.steps,
                backends=request.backends,
                frameworks=fws,
                device=request.device,
                budget_s=request.budget_s,
                threads=request.threads,
            )
        )
    except GateError as e:
        raise BisectError(str(e)) from None
    return (calls_spec if pairing == "calls" else pair_spec), pairs


def planned(spec: RunSpec) -> list[CaseKey]:
    """The CPU cases `spec` times, read from the framework classes (none imported)."""
    keys = []
    for name in spec.frameworks:
        cls = frameworks.spec(name)
        for step in (s for s in spec.steps if s in cls.steps):
            for backend in spec.backends or cls.backends:
                if backend in cls.backends and backend not in cls.gpu_backends:
                    keys += [CaseKey(name, step, backend, "cpu", n, m, nh, "float32") for n, m, nh in spec.sizes]
    return keys


def matches(key: CaseKey | str, patterns: tuple[str, ...]) -> bool:
    """Whether a case (a CaseKey, or a label) is one the patterns name (all, where none is given)."""
    if not patterns:
        return True
    label = key.label if isinstance(key, CaseKey) else key
    name = key.name if isinstance(key, CaseKey) else key.split(" ")[0]
    return any(fnmatch.fnmatchcase(label, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _cases(spec: RunSpec, patterns: tuple[str, ...]) -> list[CaseKey]:
    cases = planned(spec)
    for pattern in patterns:
        if not any(matches(k, (pattern,)) for k in cases):
            raise BisectError(
                f"--case {pattern}: matches none of the {len(cases)} case(s) a step would time "
                f"({spec.describe()}); `python -m bench list` shows the cases"
            )
    if not cases:
        raise BisectError(f"no case to time: {spec.describe()}")
    return [k for k in cases if matches(k, patterns)]


def _narrowed(spec: RunSpec, cases: list[CaseKey], patterns: tuple[str, ...]) -> RunSpec:
    """`spec` timing only the frameworks, steps, backends and sizes of `cases` (where patterns chose them)."""
    if not patterns:
        return spec
    return replace(
        spec,
        frameworks=tuple(dict.fromkeys(k.framework for k in cases)),
        steps=tuple(dict.fromkeys(k.step for k in cases)),
        backends=tuple(dict.fromkeys(k.backend for k in cases)),
        sizes=tuple(dict.fromkeys((k.n, k.m, k.nh) for k in cases)),
    )


# ---------------------------------------------------------------- measuring a step


@dataclass(frozen=True)
class Measured:
    """What one step measured: {side: records} in one process (calls), or {side: [each process's
    records, None for one that wrote none]} (processes); and what went wrong where nothing was."""

    pairing: str
    sides: dict[str, Any]
    wall_s: float = 0.0
    notes: tuple[str, ...] = ()

    def records(self, side: str) -> list[Record]:
        got = self.sides.get(side) or []
        return [r for recs in got if recs for r in recs] if self.pairing == "processes" else list(got)

    def judge(self, base: str, candidate: str, how: How) -> Result:
        """The one comparison (bench/compare.py) of two of the step's sides, paired as they were run."""
        return compare(
            self.sides[base],
            self.sides[candidate],
            replace(how, pairing=PROCESSES if self.pairing == "processes" else ROUNDS),
        )


# measure(trees {side: checkout}, spec, pairs, folder, progress) -> Measured
Measure = Callable[[dict[str, Path], RunSpec, int, Path, Callable[[str], None]], Measured]


def measurer(pairing: str, thresholds: Thresholds) -> Measure:
    """The Measure of a pairing: every side's steps in one process per framework (the harness of
    this checkout: bench/gate/one_process.py), or each side's own harness in processes of its own,
    the sides in rotating order (bench/gate/processes.py)."""

    def in_one_process(trees, spec, pairs, folder, progress):
        from bench.gate import one_process

        kept, _, wall_s, notes = one_process.measure(trees, spec, pairs, thresholds, folder, progress)
        return Measured("calls", kept, wall_s, notes)

    def in_processes(trees, spec, pairs, folder, progress):
        t0 = time.perf_counter()
        processes = interleave(
            trees, pairs, run_args(spec, trees.values()), folder, run_harness, progress, spec.variables()
        )
        notes = tuple(
            f"{side}: a process wrote no records (exit {p.rc}: {p.last_line})"
            for side, ps in processes.items()
            for p in ps[:1]
            if not p.records
        )
        return Measured(
            "processes",
            {side: [p.records for p in ps] for side, ps in processes.items()},
            time.perf_counter() - t0,
            notes,
        )

    return in_one_process if pairing == "calls" else in_processes


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """One step as it is kept: which commit, what kind (ends, counters, times, confirm), its verdict
    (good, bad, skip, inconclusive; for the ends and the confirmation: changed or same), why, and
    each bisected case's figures."""

    kind: str
    sha: str
    index: int  # in Plan.commits (0: GOOD)
    verdict: str
    why: str
    cases: tuple = ()  # dicts: label, ratio, lo, hi, verdict, counters, ends (BAD/GOOD in this step)
    counters: dict = field(default_factory=dict)  # {label: counters} of the commit (ends: {"good"|"bad": {...}})
    wall_s: float = 0.0
    pairs: int = 0
    reused: str = ""  # where it came from, when not measured now

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "reused"}

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Step":
        return cls(**{**data, "cases": tuple(data.get("cases") or ())})


@dataclass(frozen=True)
class Answer:
    """How a bisection ended: found (first bad commit named, or a set of candidates where commits
    were skipped), no change, inconclusive, or capped; the steps it took."""

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
        """No answer: it could not tell, or it stopped at its cap."""
        return self.kind in ("inconclusive", "capped")


@dataclass(frozen=True)
class Hooks:
    """How a bisection measures, checks out commits and talks (tests give stand-ins)."""

    measure: Measure | None = None  # None: measurer(plan.pairing, ...)
    worktree: Callable[[Path, str], Any] = git.worktree
    progress: Callable[[str], None] = stderr_line
    clock: Callable[[], float] = time.monotonic


class Bisector:
    """One bisection running: its kept state, its worktrees, its steps."""

    def __init__(self, plan: Plan, hooks: Hooks, history: Any = None) -> None:
        self.plan, self.hooks, self.history = plan, hooks, history
        self.measure = hooks.measure or measurer(plan.pairing or "processes", plan.how.thresholds)
        self.steps: list[Step] = []
        self.kept = self._load()
        self.trees: dict[str, Path] = {}
        self.stack = contextlib.ExitStack()
        self.t0 = hooks.clock()
        self.measured = 0  # steps measured now (the cap counts every step, reused or not)

    # -------------------------------------------------------- state

    def _load(self) -> dict[tuple[str, str, int], Step]:
        path = self.plan.out / STATE_FILE
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError("not a bisection's state")
            steps = [Step.of(s) for s in data.get("steps") or ()]
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise BisectError(
                f"{path}: unreadable ({type(e).__name__}: {str(e)[:80]}); remove it, or give another --out"
            ) from None
        if data.get("key") != self.plan.key():
            other = data.get("key") or {}
            raise BisectError(
                f"{path}: holds another bisection ({str(other.get('good', '?'))[:10]}.."
                f"{str(other.get('bad', '?'))[:10]}, {other.get('spec', '?')}); give another --out, or remove it "
                "to start again"
            )
        return {(s.kind, s.sha, s.pairs): s for s in steps}

    def _save(self) -> None:
        self.plan.out.mkdir(parents=True, exist_ok=True)
        path = self.plan.out / STATE_FILE
        body = {"version": STATE_VERSION, "key": self.plan.key(), "steps": [s.to_json() for s in self.kept.values()]}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # a kill leaves the old state or the new, never half of one

    # -------------------------------------------------------- trees

    def tree(self, sha: str) -> Path:
        """A checkout of `sha` for the rest of the bisection (the working tree itself in run mode)."""
        if self.plan.request.run_mode and sha == git.head(self.plan.repo):
            return self.plan.repo
        if sha not in self.trees:
            self.trees[sha] = self.stack.enter_context(self.hooks.worktree(self.plan.repo, sha))
        return self.trees[sha]

    # -------------------------------------------------------- one step

    def over_cap(self) -> str | None:
        req = self.plan.request
        if len(self.steps) >= req.max_steps:
            return f"--max-steps {req.max_steps} reached"
        if req.max_minutes and (self.hooks.clock() - self.t0) / 60 >= req.max_minutes:
            return f"--max-minutes {req.max_minutes:g} reached"
        return None

    def run_step(
        self, kind: str, sha: str, sides: dict[str, str], pairs: int, budget_s: float | None = None
    ) -> tuple[Step, Measured | None]:
        """The step `kind` of commit `sha` ({side: commit} measured together), reused from the kept
        state where it is there; else measured, kept, and added to the history."""
        index = self.index(sha)
        if (kind, sha, pairs) in self.kept:
            step = replace(self.kept[(kind, sha, pairs)], reused=f"kept in {self.plan.out}")
            self.steps.append(step)
            return step, None
        found = self.from_history(kind, sha, index, sides, pairs) if self.history is not None else None
        if found is not None:
            self.steps.append(found)
            return found, None
        spec = self.plan.spec if budget_s is None else replace(self.plan.spec, budget_s=budget_s)
        folder = self.plan.out / f"{len(self.steps):02d}-{kind}-{short(sha)}"
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
        step = self.judge_step(kind, sha, index, sides, measured, pairs)
        self.steps.append(step)
        self.kept[(kind, sha, pairs)] = step
        self._save()
        if self.history is not None:
            self.history.add(kind, sides, pairs, measured)
        return step, measured

    def from_history(self, kind: str, sha: str, index: int, sides: dict[str, str], pairs: int) -> Step | None:
        """The step from the history store: a counters step from the commit's counters there, any
        other from the same step a bisection added to it; None where it holds neither."""
        base: dict[str, Any] = dict(kind=kind, sha=sha, index=index, pairs=pairs, reused="the history")
        if kind == "counters":
            mine = self.history.counters(sha)
            if all(label in mine for label in self.counter_cases):
                return replace(self.by_counters(base, mine), reused="counters in the history")
            return None
        found = self.history.find(kind, sides, pairs)
        if found is None:
            return None
        return replace(self.judge_step(kind, sha, index, sides, found, pairs), reused="the history")

    def index(self, sha: str) -> int:
        return next(i for i, (c, _) in enumerate(self.plan.commits) if c == sha)

    def judge_step(self, kind: str, sha: str, index: int, sides: dict[str, str], m: Measured, pairs: int) -> Step:
        """A step's verdict from what it measured (the ends' verdicts kept in self.ends)."""
        base: dict[str, Any] = dict(kind=kind, sha=sha, index=index, wall_s=m.wall_s, pairs=pairs)
        missing = [side for side in sides if not _usable(m.records(side), self.plan.cases)]
        if kind in ("ends", "confirm"):
            if missing:
                return Step(**base, verdict="failed", why=_failed_why(m, missing))
            first, second = tuple(sides)
            result = m.judge(first, second, self.plan.how)
            rows = tuple(_row(c) for c in result.comparisons if c.label in self.plan.cases)
            changed = any(r["verdict"] in ("regressed", "improved") or r["counters"] for r in rows)
            counters = {side: _counters_of(m.records(side), self.plan.cases) for side in sides}
            return Step(**base, verdict="changed" if changed else "same", why="", cases=rows, counters=counters)
        if COMMIT in missing:
            return Step(**base, verdict="skip", why=_failed_why(m, [COMMIT]))
        if missing:
            return Step(**base, verdict="inconclusive", why=_failed_why(m, missing))
        if kind == "run":  # git bisect run: the ends come from this one step
            self.ends(self.judge_step("ends", self.plan.bad, 0, {GOOD: "", BAD: ""}, m, pairs))
            if not (self.counter_cases or self.time_cases):
                return Step(**base, verdict="same ends", why=_same_line(self.steps_ends, self.plan))
        if kind == "counters" or (kind == "run" and self.counter_cases):
            return self.by_counters(base, _counters_of(m.records(COMMIT), self.plan.cases))
        return self.by_times(base, m)

    def ends(self, step: Step) -> None:
        """What the ends step found: the counters of each end, and which cases changed how."""
        self.steps_ends = step
        self.end_counters = step.counters
        self.counter_cases = (
            [r["case"] for r in step.cases if [c for c in r["counters"] if UNSTEADY not in c]]
            if self.plan.request.by != "times"
            else []
        )
        self.time_cases = [r["case"] for r in step.cases if r["verdict"] in ("regressed", "improved")]

    def by_counters(self, base: dict[str, Any], mine: dict[str, Any]) -> Step:
        """good where every counted case's counters are GOOD's, bad where one's differ from GOOD's."""
        from bench import counters

        rows, differ = [], []
        for label in self.counter_cases:
            ours, good, bad = mine.get(label), self.end_counters[GOOD].get(label), self.end_counters[BAD].get(label)
            if not ours:
                return Step(**base, verdict="skip", why=f"{label}: no counters", counters=mine)
            change = counters.changes(good, ours)
            rows.append(
                {
                    "case": label,
                    "counters": change,
                    "as": "GOOD's" if not change else "BAD's" if ours == bad else "neither end's",
                }
            )
            differ += [label] if change else []
        if differ:
            kind = "BAD's" if all(r["as"] == "BAD's" for r in rows if r["counters"]) else "not GOOD's"
            return Step(
                **base,
                verdict="bad",
                why=f"counters {kind}: " + "; ".join(rows[0]["counters"][:3]),
                cases=tuple(rows),
                counters=mine,
            )
        return Step(**base, verdict="good", why="counters as GOOD's", cases=tuple(rows), counters=mine)

    def by_times(self, base: dict[str, Any], m: Measured) -> Step:
        """Each case whose time changed between the ends: bad where the commit's ratio to GOOD has
        its interval beyond the midpoint of GOOD and BAD (both measured in this step), good where it
        is short of it, else undecided; the step bad or good where the decided cases agree."""
        to_commit = {c.label: c for c in m.judge(GOOD, COMMIT, self.plan.how).comparisons}
        to_bad = {c.label: c for c in m.judge(GOOD, BAD, self.plan.how).comparisons}
        rows, votes = [], []
        for label in self.time_cases:
            c, e = to_commit.get(label), to_bad.get(label)
            if not (c and e and c.ratio and c.lo and c.hi and e.ratio):
                why = next((x.note for x in (c, e) if x is not None and x.note), "not timed on every side")
                rows.append({"case": label, "verdict": "inconclusive", "why": why})
                continue
            mid = math.sqrt(e.ratio)  # geometric midpoint: a ratio's halfway in log space
            up = e.ratio > 1
            if (e.lo or 0) <= 1 <= (e.hi or 0):
                said = "inconclusive"  # in this step the ends themselves could not be told apart
            elif (c.lo > mid) if up else (c.hi < mid):
                said = "bad"
            elif (c.hi < mid) if up else (c.lo > mid):
                said = "good"
            else:
                said = "inconclusive"
            rows.append(
                {**_row(c), "verdict": said, "ends": e.ratio, "ends_lo": e.lo, "ends_hi": e.hi, "midpoint": mid}
            )
            votes.append(said)
        decided = {v for v in votes if v in ("good", "bad")}
        if len(decided) == 1 and (verdict := decided.pop()):
            n = sum(v == verdict for v in votes)
            why = f"{n} of {len(rows)} case(s) nearer {'BAD' if verdict == 'bad' else 'GOOD'}"
            return Step(**base, verdict=verdict, why=why, cases=tuple(rows))
        why = (
            "the cases disagree (more than one change in the range? bisect one with --case)"
            if decided
            else ("no case's interval cleared the midpoint between GOOD and BAD")
        )
        return Step(**base, verdict="inconclusive", why=why, cases=tuple(rows))

    # -------------------------------------------------------- the bisection

    def bisect(self) -> Answer:
        plan = self.plan
        if plan.nothing:
            return Answer("no change", plan, (), said=(f"nothing to bisect: {plan.nothing}",))
        with self.stack:
            ends, _ = self.run_step("ends", plan.bad, {GOOD: plan.good, BAD: plan.bad}, plan.pairs)
            if ends.verdict == "failed":
                raise BisectError(f"the ends could not be measured: {ends.why}")
            self.ends(ends)
            if plan.request.by == "counters" and not self.counter_cases:
                return self.answer(
                    "no change", said=("GOOD and BAD run the same counters: nothing to bisect by counters",)
                )
            if not self.counter_cases and not self.time_cases:
                return self.answer("no change", said=(_same_line(ends, plan),))
            by = "counters" if self.counter_cases else "times"
            found = self.search(by)
            if found.kind != "found":
                return found
            return self.confirm(found)

    def search(self, by: str) -> Answer:
        plan = self.plan
        lo, hi, skipped = 0, len(plan.commits) - 1, set()
        while hi - lo > 1:
            left = [i for i in range(lo + 1, hi) if i not in skipped]
            if not left:
                break
            capped = self.over_cap()
            if capped:
                return self.answer("capped", lo, hi, by, said=(f"stopped: {capped}",))
            mid = (lo + hi) / 2
            i = min(left, key=lambda k: (abs(k - mid), k))
            sha = plan.commits[i][0]
            if by == "counters":
                step, _ = self.run_step("counters", sha, {COMMIT: sha}, 1, COUNTERS_BUDGET_S)
            else:
                step, _ = self.run_step("times", sha, {GOOD: plan.good, COMMIT: sha, BAD: plan.bad}, plan.pairs)
                if step.verdict == "inconclusive" and not self.over_cap():
                    step, _ = self.run_step(
                        "times", sha, {GOOD: plan.good, COMMIT: sha, BAD: plan.bad}, plan.pairs * RETRY_PAIRS
                    )
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
        """The first bad commit beside its parent (or the last good commit, where the commits between
        were skipped), timed as the ends were: the change it made to each case."""
        plan, hi = self.plan, found.first_bad
        assert hi is not None and found.last_good is not None
        if found.candidates or self.over_cap():
            return found
        parent = plan.commits[found.last_good][0]  # hi's parent: found.candidates holds any skipped between
        step, _ = self.run_step(
            "confirm", plan.commits[hi][0], {"parent": parent, COMMIT: plan.commits[hi][0]}, plan.pairs
        )
        unmoved = [
            r["case"]
            for r in step.cases
            if r["case"] in self.time_cases and r["verdict"] not in ("regressed", "improved")
        ]
        said = (
            (
                f"the time of {', '.join(unmoved)} did not change at {short(plan.commits[hi][0])}, though it did "
                "between GOOD and BAD: that change lies at another commit (--by times finds it)",
            )
            if found.by == "counters" and unmoved
            else ()
        )
        return replace(found, steps=tuple(self.steps), said=said, wall_s=self.hooks.clock() - self.t0)

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
        """`git bisect run` mode: the checked-out commit beside both ends in one step: (exit status
        0 good / 1 bad / 125 skip, the line that says why)."""
        plan = self.plan
        sha = git.head(plan.repo) or ""
        with self.stack:
            step, m = self.run_step("run", sha, {GOOD: plan.good, COMMIT: sha, BAD: plan.bad}, plan.pairs)
        if step.verdict in ("good", "bad", "skip", "inconclusive"):
            code = {"good": 0, "bad": 1}.get(step.verdict, 125)
            line = f"bisect run: {short(sha)} is {step.verdict}: {step.why}"
            return code, line + (" (exit 125: git bisect skips it)" if code == 125 else "")
        raise BisectError(f"{short(sha)}: {step.why}")


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
        "detectable": c.detectable if c.detectable == c.detectable else None,
        "counters": [x for x in c.counters],
        "note": c.note,
    }


def _same_line(ends: Step, plan: Plan) -> str:
    rows = "; ".join(
        f"{r['case']} x{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
        + (f", could see {r['detectable']:.1%}" if r.get("detectable") else "")
        for r in ends.cases
        if r.get("ratio")
    )
    return (
        f"no change: GOOD and BAD cannot be told apart (no case beyond {plan.how.thresholds.default:.0%} by its "
        f"interval, no counter changed): {rows or 'no case timed on both'}"
    )


def _inconclusive_line(step: Step, plan: Plan) -> str:
    return (
        f"inconclusive at {short(step.sha)}: {step.why}, even with {step.pairs} pairs; it would take a longer "
        f"step (--pairs {step.pairs * 2} or --budget {plan.spec.budget_s * 2:g}), a quieter machine, or "
        "--case naming one case"
    )


def run(plan: Plan, hooks: Hooks = Hooks(), history: Any = None) -> Answer:
    return Bisector(plan, hooks, history).bisect()


# ---------------------------------------------------------------- what it prints


def _case_text(r: dict[str, Any]) -> str:
    if r.get("ratio") is None:
        return f"{r['case']}: {r.get('note') or r.get('why') or 'not compared'}"
    text = f"{r['case']}: x{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
    if r.get("midpoint"):
        text += f", midpoint x{r['midpoint']:.3f}"
    return text + (f"; counters: {'; '.join(r['counters'][:3])}" if r.get("counters") else "")


def step_line(n: int, step: Step, plan: Plan) -> str:
    """One step as `bisect` prints it: the commit, what judged it, its verdict and the figure it rests on."""
    subject = plan.commits[step.index][1] if step.index < len(plan.commits) else ""
    what = {"ends": "GOOD beside BAD", "confirm": "beside its parent"}.get(step.kind, f"by {step.kind}")
    figures = "; ".join(_case_text(r) for r in step.cases[:2] if r.get("ratio") is not None or step.kind != "counters")
    head = f"  {n:>2}. {short(step.sha)} [{step.index}/{plan.searched}] {what}: {step.verdict}"
    return (
        head
        + (f" ({step.why})" if step.why else "")
        + (f"; {figures}" if figures else "")
        + (f" [{step.reused}]" if step.reused else f" [{step.wall_s:.0f} s]")
        + (f'  "{subject[:50]}"' if subject and step.kind not in ("ends",) else "")
    )


def sureness(answer: Answer) -> str:
    """How sure the answer is, in words: counters are exact; a time step is as sure as the margin
    by which its interval cleared the midpoint."""
    decided = [s for s in answer.steps if s.kind in ("times", "run") and s.verdict in ("good", "bad")]
    if answer.by == "counters":
        return "exact: each commit tried ran GOOD's counters or not, with nothing sampled"
    margins = [  # decided: the whole interval on one side of the midpoint; its nearer edge's distance
        min(abs(r["lo"] / r["midpoint"] - 1), abs(r["hi"] / r["midpoint"] - 1))
        for s in decided
        for r in s.cases
        if r.get("midpoint") and r["verdict"] in ("good", "bad")
    ]
    if not margins:
        return "no time step was needed"
    return (
        f"{len(decided)} time step(s), each decided by a 95% interval clear of the midpoint between GOOD and BAD "
        f"measured in the same step; the narrowest cleared it by {min(margins):.1%}"
    )


def lines(answer: Answer) -> list[str]:
    """The bisection's result as it prints it: the answer first, then the steps it rests on."""
    plan = answer.plan
    out = []
    if answer.kind == "found":
        hi = answer.first_bad
        assert hi is not None
        sha, subject = plan.commits[hi]
        if answer.candidates:
            out.append(
                f"bisect: the first bad commit is one of {len(answer.candidates)} (commits that could not be "
                f"measured were skipped): " + ", ".join(short(plan.commits[i][0]) for i in answer.candidates)
            )
        else:
            out.append(f'bisect: the first bad commit is {short(sha)} "{subject}" (found by {answer.by})')
        confirm = next((s for s in answer.steps if s.kind == "confirm"), None)
        if confirm:
            parent = (
                "its parent"
                if confirm.index - 1 == answer.last_good
                else f"the last good commit {short(plan.commits[answer.last_good or 0][0])}"
            )
            out += [f"  its change beside {parent}: {_case_text(r)} ({r['verdict']})" for r in confirm.cases]
        out.append(f"  how sure: {sureness(answer)}")
        out += [f"  note: {line}" for line in answer.said]
    elif answer.kind == "no change":
        out += [f"bisect: {line}" for line in answer.said] or ["bisect: no change"]
    else:
        lo, hi = answer.last_good or 0, answer.first_bad or plan.searched
        out += [f"bisect: {answer.kind}: {line}" for line in answer.said]
        out.append(
            f"  the first bad commit lies after {short(plan.commits[lo][0])} and at or before "
            f"{short(plan.commits[hi][0])} ({hi - lo} commit(s)); the same command resumes from {plan.out}"
        )
    if answer.steps:
        out.append(f"steps ({len(answer.steps)}, {_minutes(answer.wall_s)}; kept in {plan.out}):")
        out += [step_line(n, s, plan) for n, s in enumerate(answer.steps, 1)]
    return out


def to_json(answer: Answer) -> dict[str, Any]:
    plan = answer.plan
    first = plan.commits[answer.first_bad] if answer.first_bad is not None and answer.kind == "found" else None
    return {
        "command": "bisect",
        "good": plan.good,
        "bad": plan.bad,
        "commits": plan.searched,
        "pairing": plan.pairing,
        "cases": list(plan.cases),
        "answer": answer.kind,
        "first_bad": {"sha": first[0], "subject": first[1]} if first and not answer.candidates else None,
        "candidates": [plan.commits[i][0] for i in answer.candidates],
        "by": answer.by or None,
        "sure": sureness(answer) if answer.kind == "found" else None,
        "said": list(answer.said),
        "steps": [
            {**s.to_json(), "subject": plan.commits[s.index][1], "reused": s.reused or None} for s in answer.steps
        ],
        "wall_s": round(answer.wall_s, 1),
        "lines": lines(answer),
        "exit": 1 if answer.failed else 0,
    }


# ---------------------------------------------------------------- the history (--db)


class History:
    """A bisection's steps in the history store: each side's records added under its own commit,
    with run ids named after the step, so a later bisection that asks for the same step reads it
    back instead of timing it again; and counters the store holds for a commit (exact, whichever
    run measured them on this machine) read instead of measuring them."""

    def __init__(self, store: Any, plan: Plan) -> None:
        self.store, self.plan = store, plan
        self.said: list[str] = []
        self._counters: dict[tuple[str, str], dict[str, Any]] | None = None
        # In one process, this checkout's harness timed each commit's steps: those are the commit's
        # own records only where this harness is the range's (only the steps' code changed in it).
        self.restamp = plan.pairing == "calls"
        self.usable = not self.restamp or _harness_is(plan.bad)
        if not self.usable:
            self.said.append(
                f"not added to the history: this checkout's harness, which timed the steps, is not that of "
                f"{short(plan.bad)} (--pairing processes runs each commit's own)"
            )

    def prefix(self, kind: str, sides: dict[str, str], pairs: int) -> str:
        key = json.dumps({**self.plan.key(), "kind": kind, "sides": sides, "pairs": pairs}, sort_keys=True)
        return f"bisect-{hashlib.sha256(key.encode()).hexdigest()[:16]}-"

    def find(self, kind: str, sides: dict[str, str], pairs: int) -> Measured | None:
        """The step as the store holds it, where every side of it is there."""
        if not self.usable:
            return None
        runs = self.store.run_records(self.prefix(kind, sides, pairs))
        got: dict[str, Any] = {}
        for side in sides:
            mine = sorted((rid, recs) for rid, recs in runs.items() if rid.split("-")[2] == side)
            if not mine:
                return None
            got[side] = [recs for _, recs in mine] if self.plan.pairing == "processes" else mine[0][1]
        return Measured(self.plan.pairing or "processes", got)

    def add(self, kind: str, sides: dict[str, str], pairs: int, measured: Measured) -> None:
        """Each side's records under its commit (parent and time from git)."""
        from bench.history.commits import commit_of

        if not self.usable:
            return
        prefix = self.prefix(kind, sides, pairs)
        for side, sha in sides.items():
            got = measured.sides.get(side) or []
            groups = got if measured.pairing == "processes" else [got]
            for i, recs in enumerate(groups):
                if not recs:
                    continue
                recs = [_stamped(r, f"{prefix}{side}-{i}", sha, self.restamp) for r in recs]
                self.store.add(recs, commit_of(recs, self.plan.repo), source=f"bisect {short(sha)}")

    def counters(self, sha: str) -> dict[str, Any]:
        """{label: counters} the store holds of commit `sha` on this machine, for the bisected cases."""
        if self._counters is None:
            from bench import fingerprint
            from bench.machine import Machine

            here = Machine.of(fingerprint.collect()).series_key
            self._counters = {}
            for row in self.store.points():
                if row["machine"] == here and row.get("counters") and row["case"] in self.plan.cases:
                    self._counters[(row["commit_sha"], row["case"])] = row["counters"]
        return {label: c for (commit, label), c in self._counters.items() if commit == sha}


def _harness_is(sha: str) -> bool:
    """Whether this checkout's harness (everything but the steps' code, tests, text and results)
    is that of commit `sha`, uncommitted changes included."""
    if git.git(REPO, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
        return False
    return not outside_kernels(git.changed_files(REPO, sha))


def _stamped(rec: Record, run_id: str, sha: str, restamp: bool) -> Record:
    """A step's record as the history keeps it: its run id the step's; in one process, its commit
    the one whose steps it timed (the harness's own commit kept beside it)."""
    fp = dict(rec.fingerprint or {})
    if restamp:
        fp.update(harness_commit=fp.get("git_commit"), git_commit=sha, git_dirty=False)
    return replace(rec, run_id=run_id, fingerprint=fp)
