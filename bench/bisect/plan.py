"""A bisection as a plan, resolved before anything runs: GOOD and BAD checked, the commits between
them, the pairing chosen from what the range changes (as the gate chooses it), the cases the
patterns name, what each step times and about how long it takes."""

import fnmatch
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import REPO, defaults, frameworks, git
from bench.compare import How
from bench.gate import settings
from bench.gate.errors import GateError
from bench.gate.plan import CHECK_S, START_S, cases_of, choose_pairing, minutes, specs
from bench.gate.plan import Request as GateRequest
from bench.gate.processes import RunSpec
from bench.records import CaseKey

COUNTERS_BUDGET_S = 0.05  # a step that reads counters alone: they are exact, its times are not used


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
    max_steps: int = defaults.BISECT_MAX_STEPS
    max_minutes: float | None = None
    run_mode: bool = False  # `git bisect run`: judge the checked-out commit once, exit 0 / 1 / 125


@dataclass(frozen=True)
class Plan:
    request: Request
    repo: Path
    good: str
    bad: str
    commits: tuple[tuple[str, str], ...]  # (sha, subject): GOOD, then BAD's first-parent line after it
    pairing: str | None  # "calls" or "processes"; None: nothing timed differs
    why: str
    spec: RunSpec
    pairs: int
    how: How
    cases: tuple[str, ...]  # the labels of the cases bisected
    out: Path
    nothing: str | None = None

    @property
    def searched(self) -> int:
        """Commits the answer can be: those after GOOD, BAD included."""
        return len(self.commits) - 1

    def key(self) -> dict[str, Any]:
        """What a kept state must match to be resumed: the range, the pairing, the cases and what
        finds the commit. How long each step times may change between runs (--pairs, --budget):
        a step is reused where it decided, or where it was timed alike (timing())."""
        return {
            "good": self.good,
            "bad": self.bad,
            "pairing": self.pairing,
            "cases": list(self.cases),
            "by": self.request.by,
        }

    def timing(self, pairs: int, budget_s: float | None = None) -> str:
        """What a step's figures depend on besides its commits: what it times, how long, and the
        threshold the ends are judged by."""
        spec = self.spec if budget_s is None else replace(self.spec, budget_s=budget_s)
        t = self.how.thresholds
        return (
            f"{spec.describe()}; {pairs} pairs; threshold {t.default:g}; instructions {','.join(t.instruction_cases)}"
        )

    def step_estimate_s(self, sides: int = 3, budget_s: float | None = None, pairs: int | None = None) -> float:
        """About how long one step takes: its timed calls, known from the spec, and the gate's
        allowances for starting processes and checking cases."""
        cases, pairs = len(self.cases), pairs or self.pairs
        budget = self.spec.budget_s if budget_s is None else budget_s
        if self.pairing == "calls":
            return sides * cases * (budget * pairs + CHECK_S) + len(self.spec.frameworks) * START_S
        return sides * pairs * (START_S + cases * (budget + CHECK_S))

    def estimate(self) -> tuple[int, float]:
        """(steps, seconds) a bisection by times takes without retries: the ends, log2 of the
        commits searched, and the confirmation."""
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
        req = self.request
        return [
            *lines,
            f"  pairing: {pairing_text(self.pairing, self.pairs)} ({self.why})",
            f"  times: {self.spec.describe()}",
            f"  cases: {len(self.cases)}: {', '.join(self.cases[:4])}{', ...' if len(self.cases) > 4 else ''}",
            f"  steps: the ends (GOOD beside BAD), each commit tried beside both ends, then the first bad commit "
            f"beside its parent: about {steps} steps by times, about {minutes(seconds)} "
            f"({minutes(self.step_estimate_s(3))} a step); where the counters changed, each commit tried reads "
            f"its counters alone (about {minutes(counters)} a step)",
            f"  judged: a commit is bad when its time's 95% interval lies nearer BAD's than GOOD's (beyond the "
            f"midpoint of the two, measured in the same step); GOOD and BAD must differ by more than "
            f"{self.how.thresholds.default:.0%} (their interval clear of half of it) or in their counters",
            f"  cap: {req.max_steps} steps measured"
            + (f" or {req.max_minutes:g} minutes" if req.max_minutes else "")
            + f"; kept in {self.out} (the same command resumes)",
        ]


def pairing_text(pairing: str | None, pairs: int) -> str:
    if pairing == "calls":
        return "one process: the commits' steps interleaved take by take, paired by round"
    return f"processes: {pairs} rounds of each commit's own harness, in rotating order"


def short(sha: str) -> str:
    return sha[:10]


def make(request: Request) -> Plan:
    """The Plan of `request`. BisectError, one line, on bad input."""
    repo = Path(request.repo).resolve() if request.repo else REPO
    if not repo.is_dir():
        raise BisectError(f"--repo {request.repo}: no such folder")
    if request.max_steps < 1:
        raise BisectError(f"--max-steps {request.max_steps}: give at least 1")
    if request.max_minutes is not None and not request.max_minutes > 0:
        raise BisectError(f"--max-minutes {request.max_minutes:g}: must be positive")
    good, bad = (_resolve(repo, rev, name) for rev, name in ((request.good, "GOOD"), (request.bad, "BAD")))
    if good == bad:
        raise BisectError(f"GOOD {request.good} and BAD {request.bad} are the same commit ({short(good)})")
    if not git.is_ancestor(repo, good, bad):
        raise BisectError(
            f"GOOD {request.good} ({short(good)}) is not an ancestor of BAD {request.bad} ({short(bad)}): a "
            "bisection searches forward from a good commit to a bad one"
        )
    commits = ((good, git.subject(repo, good)), *git.first_parents(repo, good, bad))
    if len(commits) < 2 or commits[-1][0] != bad or git.first_parent(repo, commits[1][0]) != good:
        raise BisectError(
            f"GOOD {request.good} ({short(good)}) is not on BAD's first-parent line (a merged branch's commit?): "
            "give the commit it was merged into, or its merge, as GOOD"
        )
    if request.run_mode and git.dirty(repo):
        raise BisectError(
            f"{repo} has uncommitted changes: `git bisect run` measures the checked-out commit, and this would be "
            "another (commit or stash them)"
        )
    out = Path(request.out) if request.out else repo / "results" / "bisect" / f"{short(good)}-{short(bad)}"
    if out.exists() and not out.is_dir():
        raise BisectError(f"--out {out}: is a file, not a folder")
    pairing, why, nothing = choose_pairing(request.pairing, tuple(git.touched(repo, good, bad)), "GOOD")
    spec, pairs = _spec(request, pairing)
    cases = _cases(spec, request.cases)
    if request.cases:  # time only what the patterns name
        spec = replace(
            spec,
            frameworks=tuple(dict.fromkeys(k.framework for k in cases)),
            steps=tuple(dict.fromkeys(k.step for k in cases)),
            backends=tuple(dict.fromkeys(k.backend for k in cases)),
            sizes=tuple(dict.fromkeys((k.n, k.m, k.nh) for k in cases)),
        )
    thresholds = settings.load_thresholds(repo / "pyproject.toml", request.threshold)
    thresholds = replace(thresholds, instruction_cases=settings.case_patterns(request.instructions))
    labels = tuple(k.label for k in cases)
    return Plan(request, repo, good, bad, commits, pairing, why, spec, pairs, How("", thresholds), labels, out, nothing)


def _resolve(repo: Path, rev: str, name: str) -> str:
    try:
        return git.resolve(repo, rev)
    except (git.RevisionError, git.NoRevision) as e:
        raise BisectError(f"{name}: {e}") from None


def _spec(request: Request, pairing: str | None) -> tuple[RunSpec, int]:
    """The gate's RunSpec for the pairing, each flag given applied, and the pairs. Case patterns
    without --framework look among every installed framework."""
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


def matches(key: CaseKey, patterns: tuple[str, ...]) -> bool:
    """Whether the patterns name the case, by its label or its name (every case, where none is given)."""
    return not patterns or any(fnmatch.fnmatchcase(key.label, p) or fnmatch.fnmatchcase(key.name, p) for p in patterns)


def _cases(spec: RunSpec, patterns: tuple[str, ...]) -> list[CaseKey]:
    cases = cases_of(spec)
    if not cases:
        raise BisectError(f"no case to time: {spec.describe()}")
    for pattern in patterns:
        if not any(matches(k, (pattern,)) for k in cases):
            raise BisectError(
                f"--case {pattern}: matches none of the {len(cases)} case(s) a step would time "
                f"({spec.describe()}); --framework, --step, --backend and --size choose them"
            )
    return [k for k in cases if matches(k, patterns)]
