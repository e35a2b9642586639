"""The gate as a plan: one value, resolved before anything runs, of what a `gate` invocation will do:
its mode, REV and its commit, the settings and stored A/A figures it is judged by (REV's own, so a
change cannot loosen its own gate), the pairing (both sides' steps in one process, or each side's
harness in processes of its own), what each process times and about how long that takes, and what
it could see. `gate --plan` prints it; execute() runs it. The command line only parses and prints."""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import bench.gate.baselines as baselines
import bench.gate.experiments as experiments
import bench.gate.one_process as one_process
import bench.gate.process_pairs as process_pairs
import bench.gate.settings as settings
import bench.gate.text as text
from bench import REPO, defaults, fingerprint, frameworks, git, noise, process
from bench.compare import RULE, How, Thresholds
from bench.gate.errors import GateError, NothingToCompare
from bench.gate.outcome import Outcome
from bench.gate.processes import Launch, RunSpec, accepts, interleave, run_args, run_harness, stderr_line
from bench.records import CaseKey

MODES = ("paired", "stored", "save-baseline", "aa", "aa-calls", "rates")
PAIRINGS = ("auto", "calls", "processes")
HARNESS = "bench/__main__.py"  # a revision without it has nothing to compare
# What may differ for the steps to be the only code that changed: the steps, tests, text, and stored
# results (examples, baselines, the A/A figures: no run reads them; a gate reads REV's A/A figures).
UNTIMED_PREFIXES = ("kernels/", "tests/", "results/")
UNTIMED_SUFFIXES = (".md",)
# Allowances for the estimate `gate --plan` prints, beside the timed seconds it knows exactly:
# starting a harness process, and checking and warming one case (first call, compile, float64 check).
START_S = 8.0
CHECK_S = 1.5
COUNT_S = 60.0  # a counted case, both sides in one Valgrind process (NumPy's; a TensorFlow case takes longer)


@dataclass(frozen=True)
class Request:
    """What the command line asked, as plain values (None: not given, the mode's default)."""

    mode: str = "paired"
    rev: str = "HEAD~1"
    baseline: str | None = None  # stored mode: a baseline file, or the folder holding this machine's
    save: str | None = None  # save-baseline: the file or folder to write
    runs: int | None = None  # aa: gate runs; rates: rounds
    pairs: int | None = None
    sizes: tuple = ()  # (n, m, nh) each
    steps: tuple = ()
    backends: tuple = ()
    frameworks: tuple = ()
    device: str = "all"
    budget_s: float | None = None
    threads: int | None = None
    pin: str | tuple[int, ...] = defaults.GATE_PIN  # "auto", "off" or the CPUs
    pairing: str = "auto"
    tree: str | None = None
    aa_file: str | None = None
    threshold: str | None = None
    config: str | None = None
    allow_mismatch: bool = False
    allow_missing: bool = False
    instructions: tuple | None = None  # patterns of the cases whose instructions are counted; None: the settings'


@dataclass(frozen=True)
class Plan:
    request: Request
    tree: Path
    spec: RunSpec  # what each harness process times (process pairs, stored, experiments)
    calls_spec: RunSpec  # what the one process times (a change to kernels/ alone)
    pairs: int
    how: How  # thresholds and what may differ; pairing and noise are set when it runs
    aa_file: Path  # where experiments store figures
    figures: dict = field(default_factory=dict)  # the stored A/A figures it is judged by (REV's, paired mode)
    own_figures: dict = field(default_factory=dict)  # the working tree's, where they are not those
    said: tuple[str, ...] = ()  # what to say before it runs: whose settings and figures judge it
    rev: str | None = None
    sha: str | None = None
    changed: tuple[str, ...] = ()
    pairing: str | None = None  # paired mode: "calls" or "processes"
    why: str = ""  # why that pairing
    nothing: str | None = None  # why there is nothing to compare (the gate passes)

    @property
    def base_name(self) -> str:
        return f"{self.rev} = {self.sha[:10]}" if self.sha else str(self.rev)

    def timed(self) -> RunSpec:
        return self.calls_spec if self.pairing == "calls" or self.request.mode == "aa-calls" else self.spec

    def estimate_s(self) -> tuple[float, float]:
        """(timed seconds, a rough whole): the seconds spent in timed calls are known from the
        spec; starting processes and checking cases add the START_S and CHECK_S allowances."""
        spec, cases = self.timed(), count_cases(self.timed())
        if self.pairing == "calls" or self.request.mode == "aa-calls":
            runs = self.request.runs or 1 if self.request.mode == "aa-calls" else 1
            timed = 2 * cases * spec.budget_s * self.pairs * runs
            counted = len(counted_cases(spec, self.how.thresholds)) * COUNT_S
            return timed, timed + runs * (len(spec.frameworks) * START_S + 2 * cases * CHECK_S + counted)
        processes = {
            "paired": 2 * self.pairs,
            "stored": self.pairs,
            "save-baseline": self.pairs,
            "aa": 2 * self.pairs * (self.request.runs or 0),
            "rates": 3 * (self.request.runs or 0),
        }
        n = processes.get(self.request.mode, 0)
        timed = n * cases * spec.budget_s
        return timed, timed + n * (START_S + cases * CHECK_S)

    def describe(self) -> list[str]:
        """`gate --plan`: what would run, about how long, what it is judged by and what it could see."""
        req, spec = self.request, self.timed()
        lines = [f"gate plan ({req.mode}): the working tree {self.tree}"]
        if req.mode == "paired":
            lines.append(
                f"  base: {self.base_name}; {len(self.changed)} file(s) changed"
                + (
                    f" ({', '.join(self.changed[:4])}{', ...' if len(self.changed) > 4 else ''})"
                    if self.changed
                    else ""
                )
            )
        if self.nothing:
            return [*lines, f"  nothing to compare: {self.nothing}; the gate would pass"]
        if req.mode == "paired":
            lines.append(f"  pairing: {self.pairing_text()} ({self.why})")
        timed, whole = self.estimate_s()
        lines += [
            f"  times: {spec.describe()}",
            f"  cases: {count_cases(spec)} a side; about {minutes(whole)} in all ({timed:.0f} s of timed "
            f"calls, plus allowances of {START_S:g} s a process start and {CHECK_S:g} s a case check)",
            f"  judged by: {self._judged_text()}",
            *(f"  {line}" for line in self.said),
            "  could see: a case regresses when its ratio exceeds 1 + threshold with its 95% interval above "
            "1 + threshold/2; each row then prints the smallest slowdown its own interval could see",
            f"  stored for this machine: {self._stored_text()}",
        ]
        return lines

    def pairing_text(self) -> str:
        """How the two sides are paired, in words."""
        if self.pairing == "calls":
            return "one process: both sides' steps interleaved take by take, paired by round"
        return f"process pairs: {self.pairs} pairs of each side's own harness, alternately"

    def _judged_text(self) -> str:
        t = self.how.thresholds
        overrides = f", {len(t.overrides)} per-case override(s)" if t.overrides else ""
        counted = (
            f", instructions {t.instructions * 100:g}% where both sides counted them ({', '.join(t.instruction_cases)} "
            f"in one process, at n={defaults.INSTRUCTIONS_SIZE[0]})"
            if t.instruction_cases and (self.pairing == "calls" or self.request.mode == "aa-calls")
            else ""
        )
        return f"threshold {t.default:.0%}{overrides}, counters {t.counters}{counted}; rule: {RULE}"

    def _stored_text(self) -> str:
        fp = fingerprint.collect()
        fp["frameworks"] = {f: {"version": frameworks.version(f)} for f in self.timed().frameworks}
        if self.pairing == "calls" or self.request.mode == "aa-calls":
            return noise.calls_noise(self.figures, fp, self.calls_spec.describe())[1]
        return experiments.rate_line(self.figures, fp, self.spec, self.pairs, self.how.thresholds)


def minutes(seconds: float) -> str:
    """A duration as an estimate prints it: seconds under two minutes, else whole minutes."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def cases_of(spec: RunSpec, sizes: tuple | None = None) -> list[CaseKey]:
    """The cases `spec` times a side (at `sizes`, else its own): its frameworks' steps and backends,
    those each has; read from the framework classes, no framework imported. On the CPU, unless the
    spec names the GPU alone (whether a GPU is there is known once a framework has loaded)."""
    device = "gpu" if spec.device == "gpu" else "cpu"
    keys = []
    for name in spec.frameworks:
        cls = frameworks.spec(name)
        for step in (s for s in spec.steps if s in cls.steps):
            for backend in spec.backends or cls.backends:
                if backend in cls.backends and (device == "gpu" or backend not in cls.gpu_backends):
                    keys += [
                        CaseKey(name, step, backend, device, n, m, nh, "float32") for n, m, nh in sizes or spec.sizes
                    ]
    return keys


def count_cases(spec: RunSpec) -> int:
    """How many cases `spec` times a side (cases_of)."""
    return len(cases_of(spec))


def counted_cases(spec: RunSpec, thresholds: Thresholds) -> list[str]:
    """The cases of `spec` whose instructions a one-process gate counts (Thresholds.counts), at
    INSTRUCTIONS_SIZE."""
    return [key.name for key in cases_of(spec, (defaults.INSTRUCTIONS_SIZE,)) if thresholds.counts(key)]


# ---------------------------------------------------------------- making the plan


def make(request: Request) -> Plan:
    """The Plan of `request`: every flag checked, REV resolved and its settings and stored figures
    read, the pairing chosen. GateError, CompareError or git.RevisionError, one line, on bad input."""
    if request.mode not in MODES:
        raise GateError(f"unknown gate mode {request.mode!r}")
    tree = Path(request.tree).resolve() if request.tree else REPO
    if not tree.is_dir():
        raise GateError(f"--tree {request.tree}: no such folder")
    spec, calls_spec, pairs = specs(request)
    thresholds = settings.load_thresholds(
        Path(request.config) if request.config else tree / "pyproject.toml",
        request.threshold,
        explicit=bool(request.config),
    )
    aa_file = Path(request.aa_file) if request.aa_file else tree / noise.AA_FILE
    how = How(
        pairing="", thresholds=thresholds, allow_mismatch=request.allow_mismatch, allow_missing=request.allow_missing
    )
    plan = Plan(request, tree, spec, calls_spec, pairs, how, aa_file, noise.load(aa_file))
    plan = _as_of_base(plan) if request.mode == "paired" else plan
    if request.instructions is not None:  # the command line names what to count, whatever the settings say
        thresholds = replace(plan.how.thresholds, instruction_cases=settings.case_patterns(request.instructions))
        plan = replace(plan, how=replace(plan.how, thresholds=thresholds))
    return plan


def _as_of_base(plan: Plan) -> Plan:
    """A paired plan with REV resolved, judged by REV's own settings and stored figures, and the
    pairing chosen from what the working tree changes."""
    req, tree = plan.request, plan.tree
    try:
        sha = git.resolve(tree, req.rev)
    except git.NoRevision as e:
        return replace(plan, rev=req.rev, nothing=str(e))
    plan = replace(plan, rev=req.rev, sha=sha)
    if not git.has_file(tree, sha, HARNESS):
        return replace(plan, nothing=f"{req.rev} ({sha[:10]}) has no harness ({HARNESS})")
    said = []
    if not req.config:  # a change cannot loosen its own gate, nor switch it off by a slip
        thresholds, line = _thresholds_of(plan, sha)
        plan = replace(plan, how=replace(plan.how, thresholds=thresholds))
        said += [line] if line else []
    if not req.aa_file:  # nor widen its own intervals by editing or re-measuring the stored figures
        plan = replace(
            plan, own_figures=plan.figures, figures=noise.loads(git.text_at(tree, sha, noise.AA_FILE.as_posix()))
        )
    changed = tuple(git.changed_files(tree, sha))
    pairing, why, nothing = choose_pairing(req.pairing, changed, req.rev)
    return replace(plan, said=tuple(said), changed=changed, pairing=pairing, why=why, nothing=nothing)


def _thresholds_of(plan: Plan, sha: str) -> tuple[Thresholds, str]:
    """(the thresholds REV is compared by, a line saying so or ""): REV's own pyproject.toml's; the
    working tree's where REV's are unusable (said)."""
    rev, mine = plan.request.rev, plan.how.thresholds
    try:  # none there: the defaults, as for a tree without one
        base = settings.thresholds_from(
            git.text_at(plan.tree, sha, "pyproject.toml"), f"{rev}:pyproject.toml", plan.request.threshold
        )
    except settings.CompareError as e:
        return mine, f"gate: {rev}'s gate settings are unusable ({e}); judged by the working tree's"
    if base == mine:
        return mine, ""
    return base, (
        f"gate: the working tree changes the gate's settings in pyproject.toml; judged by {rev}'s, as "
        "every change is (the new ones judge the changes after it; --config names a file to use instead)"
    )


def outside_kernels(files: tuple[str, ...] | list[str]) -> list[str]:
    """The files of `files` that could change what the harness does, not only the steps it times."""
    return [f for f in files if not f.startswith(UNTIMED_PREFIXES) and not f.endswith(UNTIMED_SUFFIXES)]


def choose_pairing(asked: str, changed: tuple[str, ...], rev: str) -> tuple[str | None, str, str | None]:
    """(pairing, why, why there is nothing to compare or None): "calls" when asked, or under "auto"
    when the change is to the steps' code (kernels/) with at most tests, text and stored results
    besides; "processes" when asked or anything else changed; nothing when only tests, text and
    stored results changed (no timed code to compare)."""
    outside = outside_kernels(changed)
    if asked == "calls":
        return "calls", "asked for", None
    if asked == "processes":
        return "processes", "asked for", None
    if changed and not outside and not any(f.startswith("kernels/") for f in changed):
        return (
            None,
            "",
            (
                f"only tests, text and stored results changed against {rev} ({', '.join(changed[:3])}"
                f"{', ...' if len(changed) > 3 else ''}): no timed code to compare "
                "(--pairing calls times both sides anyway)"
            ),
        )
    if changed and not outside:
        return "calls", "only the steps' code (kernels/) changed", None
    if outside:
        return (
            "processes",
            (
                f"{len(outside)} file(s) outside kernels/ changed ({', '.join(outside[:3])}"
                f"{', ...' if len(outside) > 3 else ''})"
            ),
            None,
        )
    return "processes", "no file changed", None


def specs(request: Request) -> tuple[RunSpec, RunSpec, int]:
    """(the process pairs' RunSpec, the one-process gate's RunSpec, pairs): each flag given applies to
    both; what is not given takes each mode's default (defaults.GATE_* and GATE_CALLS_*)."""
    _check_numbers(request)
    sizes = tuple(request.sizes)
    for framework in request.frameworks:
        if framework not in frameworks.FRAMEWORKS:
            raise GateError(f"unknown framework {framework!r} (known: {', '.join(frameworks.FRAMEWORKS)})")
    pairs = defaults.GATE_PAIRS if request.pairs is None else request.pairs

    def given(value, default):
        return default if value is None else value

    threads, calls_threads = (
        given(request.threads, defaults.GATE_THREADS),
        given(request.threads, defaults.GATE_CALLS_THREADS),
    )
    pair_fws = request.frameworks or (defaults.GATE_FRAMEWORK,)
    named = pair_fws == (defaults.GATE_FRAMEWORK,)  # GATE_STEPS and GATE_BACKENDS are its own
    spec = RunSpec(
        frameworks=pair_fws,
        sizes=sizes or (defaults.GATE_SIZE,),
        steps=request.steps or (defaults.GATE_STEPS if named else autodiff(pair_fws)),
        backends=request.backends or (defaults.GATE_BACKENDS if named else None),
        device=request.device,
        budget_s=given(request.budget_s, defaults.GATE_BUDGET_S),
        threads=threads,
        pin=gate_pin(request.pin, threads),
    )
    calls_fws = request.frameworks or frameworks.installed()  # found, not imported
    if not calls_fws:
        raise GateError("no framework can run here (python -m bench list says why)")
    calls = RunSpec(
        frameworks=calls_fws,
        sizes=sizes or defaults.GATE_CALLS_SIZES,
        steps=request.steps or autodiff(calls_fws),
        backends=request.backends or None,
        device=request.device,
        budget_s=given(request.budget_s, defaults.GATE_CALLS_BUDGET_S),
        threads=calls_threads,
        pin=gate_pin(request.pin, calls_threads),
    )
    return spec, calls, pairs


def _check_numbers(request: Request) -> None:
    """GateError naming the flag for a count or time out of range."""
    pairs = defaults.GATE_PAIRS if request.pairs is None else request.pairs
    if pairs < (1 if request.mode in ("stored", "save-baseline") else 2):
        raise GateError(f"--pairs {pairs}: a paired gate needs at least 2 pairs for a confidence interval")
    if request.mode in ("aa", "aa-calls") and (request.runs is None or request.runs < 1):
        raise GateError(f"--aa {request.runs}: give the number of A/A runs, at least 1")
    if request.mode == "rates" and (request.runs is None or request.runs < pairs):
        raise GateError(f"--rates {request.runs}: give the number of rounds, at least --pairs ({pairs})")
    if request.budget_s is not None and not request.budget_s > 0:
        raise GateError(f"--budget {request.budget_s}: must be positive")
    if request.threads is not None and request.threads < 0:
        raise GateError(f"--threads {request.threads}: give a number of threads, or 0 for the frameworks' default")


def autodiff(fws: tuple[str, ...]) -> tuple[str, ...]:
    """Those of defaults.GATE_CALLS_STEPS (manual and each framework's autodiff step) that `fws` have."""
    has = frameworks.names("steps", tuple(fws))
    return tuple(s for s in defaults.GATE_CALLS_STEPS if s in has)


def gate_pin(pin: str | tuple[int, ...], threads: int) -> tuple[int, ...]:
    """--pin's CPUs for processes of `threads` threads: auto: that many of the quietest CPUs (none
    for the frameworks' default threads, 0), off: none; else the CPUs named."""
    if pin == "off" or (pin == "auto" and not threads):
        return ()
    if isinstance(pin, str):
        return process.quietest_cpus(threads)  # "auto"
    return tuple(pin)


# ---------------------------------------------------------------- running it


@dataclass(frozen=True)
class Done:
    """What a gate run leaves to print: its lines, and whether it failed (exit 1); for a summary, what
    its lines are made of (summary_markdown, summary_json)."""

    lines: list[str]
    failed: bool = False
    outcome: Outcome | None = None
    sides: tuple[str, str] = ("base", "candidate")  # the table's names of its two sides
    aa: str = ""  # what the stored A/A figures say of this gate on this machine
    wall_s: float | None = None
    nothing: str | None = None  # why there was nothing to compare (it passed)


@dataclass(frozen=True)
class Hooks:
    """How a plan's processes run and what it says meanwhile (tests give stand-ins)."""

    launch: Launch = run_harness
    probe: Callable[[Path | str, str], bool] = accepts
    progress: Callable[[str], None] = stderr_line  # progress lines (stderr)
    say: Callable[[str], None] = functools.partial(print, flush=True)  # results as they come (stdout)


def execute(plan: Plan, workdir: Path, hooks: Hooks = Hooks()) -> Done:
    """Run the plan; its lines to print. NothingToCompare is a pass, said."""
    t0 = time.perf_counter()
    runs = {
        "paired": _paired,
        "stored": _stored,
        "save-baseline": _save,
        "aa": _aa,
        "aa-calls": _aa_calls,
        "rates": _rates,
    }
    try:
        if plan.nothing:
            raise NothingToCompare(plan.nothing)
        done = runs[plan.request.mode](plan, workdir, hooks)
    except NothingToCompare as e:
        return Done([f"gate: nothing to compare: {e}; passing"], nothing=str(e))
    if done.outcome is not None:
        wall_s = time.perf_counter() - t0
        done = replace(done, lines=[*done.lines, f"gate wall time: {wall_s:.0f} s"], wall_s=wall_s)
    return done


def _paired(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    for line in plan.said:
        hooks.say(line)
    with git.worktree(plan.tree, plan.sha or "") as base_tree:
        if plan.pairing == "calls":
            hooks.progress(
                f"gate: {plan.base_name} against the working tree {plan.tree}: {plan.why}, so both sides' "
                f"steps run in one process, interleaved take by take; {plan.calls_spec.describe()}"
            )
            outcome = one_process.run(
                {"base": base_tree, "candidate": plan.tree},
                plan.calls_spec,
                plan.pairs,
                plan.how,
                workdir,
                hooks.progress,
                notes=(_calls_note(plan),),
            )
            outcome, aa_line = _with_calls_noise(plan, outcome)
            return _judged(plan, outcome, (plan.rev or "base", "working tree"), aa_line)
        if plan.request.pairing == "auto" and outside_kernels(plan.changed):
            hooks.progress(f"gate: {plan.why}: each side in its own processes")
        sides = process_pairs.Sides(
            base_tree,
            plan.tree,
            plan.base_name,
            plan.sha,
            any(Path(f).name in process_pairs.REQUIREMENT_FILES for f in plan.changed),
        )
        outcome = process_pairs.run(
            sides, plan.spec, plan.pairs, plan.how, workdir, hooks.launch, hooks.probe, hooks.progress
        )
    rate = experiments.rate_line(plan.figures, outcome.fingerprint, plan.spec, plan.pairs, plan.how.thresholds)
    return _judged(plan, outcome, (plan.rev or "base", "working tree"), rate)


def _calls_note(plan: Plan) -> str:
    why = plan.why
    if any(Path(f).name in process_pairs.REQUIREMENT_FILES for f in plan.changed):
        why += "; the requirements changed too, and both sides ran in this environment"
    return f"base is {plan.base_name}; paired in one process ({why})"


def _with_calls_noise(plan: Plan, outcome: Outcome) -> tuple[Outcome, str]:
    """A one-process gate judged with what this machine's one-process A/A runs showed its intervals
    miss, where they did (REV's stored figures, unless --aa-file); the line that says so."""
    run = plan.calls_spec.describe()
    extra, source = noise.calls_noise(plan.figures, outcome.fingerprint, run)
    whose = "" if plan.request.aa_file else f" (as {plan.rev} stored it)"
    line = f"A/A of this one-process gate{whose}: {source}" + (
        "; its intervals are within-run only"
        if extra is None
        else "; its intervals held there (they missed nothing measurable)"
        if extra == 0
        else f"; its intervals missed an sd of {extra:.3f} in the log-ratio there, and are widened by it"
    )
    if extra:
        how = replace(plan.how, noise=noise.Noise(same_run_sd=extra, same_run_source=source))
        outcome = one_process.rejudged(
            outcome, how, f"intervals widened by sd {extra:.3f} of the log-ratio, from {source}"
        )
    own = noise.calls_noise(plan.own_figures, outcome.fingerprint, run)[0] if plan.own_figures else extra
    if own != extra:
        figure = "none" if own is None else f"sd {own:.3f}"
        line += (
            f"; the working tree's stored figure ({figure}) is not its base's: it judges the changes after "
            "this one (--aa-file names a file to use instead)"
        )
    return outcome, line


def _judged(plan: Plan, outcome: Outcome, sides: tuple[str, str], rate: str) -> Done:
    return Done([*text.report(outcome, *sides), rate], outcome.flagged, outcome, sides, rate)


def _stored(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    path = baselines.find_baseline(plan.request.baseline or "")
    base = baselines.read_baseline(path)
    t0 = time.perf_counter()
    hooks.progress(f"gate: the working tree {plan.tree} against {path}: {plan.pairs} runs, {plan.spec.describe()}")
    processes = _candidate_runs(plan, workdir, hooks)
    cand = [r for p in processes["candidate"] for r in p.records or ()]
    result, notes = baselines.judge(base, cand, plan.how, plan.figures)
    outcome = Outcome(
        result, processes, time.perf_counter() - t0, (f"baseline {path} ({len({r.run_id for r in base})} runs)", *notes)
    )
    rate = experiments.rate_line(plan.figures, outcome.fingerprint, plan.spec, plan.pairs, plan.how.thresholds)
    return _judged(
        plan, outcome, ("baseline", "candidate"), rate + " [of the paired gate; stored mode's rate is not measured]"
    )


def _candidate_runs(plan: Plan, workdir: Path, hooks: Hooks) -> dict[str, list[Any]]:
    """`pairs` runs of the working tree's harness; GateError where none wrote a record."""
    processes = interleave(
        {"candidate": plan.tree},
        plan.pairs,
        run_args(plan.spec, [plan.tree], hooks.probe),
        workdir,
        hooks.launch,
        hooks.progress,
        plan.spec.variables(),
    )
    if not any(p.records for p in processes["candidate"]):
        p = processes["candidate"][0]
        raise GateError(f"the candidate's harness wrote no records (exit {p.rc}: {p.last_line})")
    return processes


def _save(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    processes = _candidate_runs(plan, workdir, hooks)
    path = baselines.write_baseline(
        [r for p in processes["candidate"] for r in p.records or ()], plan.request.save or ""
    )
    return Done([f"baseline written: {path}"])


def _aa(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    """N gate runs of the working tree against itself; the share flagged is the false-positive rate."""
    n, outcomes = plan.request.runs or 0, []
    args = run_args(plan.spec, [plan.tree], hooks.probe)
    for i in range(n):
        processes = interleave(
            {"base": plan.tree, "candidate": plan.tree},
            plan.pairs,
            args,
            workdir / f"aa-{i}",
            hooks.launch,
            hooks.progress,
            plan.spec.variables(),
        )
        outcomes.append(process_pairs.outcome(processes, plan.how))
        hooks.say(f"A/A run {i + 1}/{n}: {text.summary(outcomes[-1].result)}")
    entry = experiments.experiment_entry(
        outcomes,
        plan.spec,
        plan.pairs,
        plan.how.thresholds,
        method=f"gate --aa {n}: {n} independent gate runs of the working tree against itself",
    )
    key = _store(plan, outcomes[0].fingerprint, "aa", entry)
    lo, hi = entry["rate_ci95"]
    return Done(
        [
            f"A/A: {entry['flagged']} of {entry['runs']} runs flagged a regression: false-positive rate "
            f"{entry['rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}); {entry['intervals_excluding_1']} of "
            f"{entry['intervals']} case intervals excluded 1 (95% intervals should, about 5% of the time); "
            f"stored in {plan.aa_file} under {key}"
        ]
    )


def _aa_calls(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    """N one-process gate runs of the working tree's steps against themselves: the share flagged,
    and the sd of the log-ratio their intervals miss (experiments.extra_sd_of), which widens every
    later one-process gate's intervals on this machine."""
    n, outcomes = plan.request.runs or 0, []
    for i in range(n):
        outcomes.append(
            one_process.run(
                {"base": plan.tree, "candidate": plan.tree},
                plan.calls_spec,
                plan.pairs,
                plan.how,
                workdir / f"aa-{i}",
                hooks.progress,
            )
        )
        hooks.say(f"A/A run {i + 1}/{n} (one process): {text.summary(outcomes[-1].result)}")
    entry = experiments.experiment_entry(
        outcomes,
        plan.calls_spec,
        plan.pairs,
        plan.how.thresholds,
        method=f"gate --aa {n} --pairing calls: {n} one-process gate runs of the "
        "working tree's steps against themselves",
    )
    entry["extra_sd_log"] = experiments.extra_sd_of(outcomes)
    key = _store(plan, outcomes[0].fingerprint, noise.CALLS_AA, entry)
    lo, hi = entry["rate_ci95"]
    return Done(
        [
            f"A/A (one process): {entry['flagged']} of {entry['runs']} runs flagged a regression: "
            f"false-positive rate {entry['rate']:.0%} (95% CI {lo:.0%}-{hi:.0%}); {entry['intervals_excluding_1']}"
            f" of {entry['intervals']} case intervals excluded 1; {missed(entry['extra_sd_log'])}; stored in "
            f"{plan.aa_file} under {key}"
        ]
    )


def missed(extra: float | None) -> str:
    """What a one-process A/A's intervals missed, as its summary line says it."""
    if extra is None:
        return "too few intervals to tell whether they miss any spread"
    if extra == 0:
        return "the intervals held (they missed nothing measurable; later one-process gates use them as they are)"
    return f"the intervals miss an sd of {extra:.3f} in the log-ratio (later one-process gates widen theirs by it)"


def _rates(plan: Plan, workdir: Path, hooks: Hooks) -> Done:
    """The A/A and detection rates from one interleaved experiment (bench/gate/experiments.py)."""
    run = experiments.RatesRun(plan.spec, plan.request.runs or 0, plan.pairs, plan.how)
    entries, fp = experiments.rates(plan.tree, run, workdir, hooks.progress)
    lines = []
    for kind, entry in entries.items():
        _store(plan, fp, kind, entry)
        lines.append(
            f"{kind}: {entry['flagged']}/{entry['runs']} disjoint runs flagged; "
            f"{entry['sliding']['flagged']}/{entry['sliding']['runs']} sliding windows; "
            f"{entry['resampled']['flagged']}/{entry['resampled']['runs']} random subsets"
        )
        lines += [
            f"  with {k} pairs: {o['disjoint_flagged']}/{o['disjoint_runs']} disjoint runs; "
            f"{o['subsets_flagged']}/{o['subsets']} random subsets"
            for k, o in entry["other_pairs"].items()
        ]
        lines += [f"  {label}: {counts}" for label, counts in entry["sliding"]["per_case"].items()]
    return Done([*lines, f"stored in {plan.aa_file}"])


def _store(plan: Plan, fp: dict[str, Any], name: str, entry: dict[str, Any]) -> str:
    try:
        return noise.store(plan.aa_file, fp, name, entry)
    except ValueError as e:
        raise GateError(f"{plan.aa_file}: not stored: {e}") from None


def _gate_about(plan: Plan, done: Done) -> list[str]:
    if plan.request.mode != "paired":
        return [f"mode: {plan.request.mode}"]
    about = [f"base: {plan.base_name} against the working tree"]
    if plan.pairing and not done.nothing:
        about.append(f"pairing: {plan.pairing_text()} ({plan.why})")
    return about


def summary_markdown(plan: Plan, done: Done) -> str:
    """The gate run `done` of `plan` as a Markdown section: its base and pairing, then its verdict
    table and notes; a gate that compared nothing (or measured the gate itself) shows its lines."""
    outcome = done.outcome
    if outcome is None:  # nothing compared: its lines say why, or what the plan or experiment is
        title = "Regression gate" + (": nothing to compare, passing" if done.nothing else "")
        return text.markdown_section(title, _gate_about(plan, done), None, list(done.lines))
    wall = [f"gate wall time: {done.wall_s:.0f} s"] if done.wall_s is not None else []
    notes = [*outcome.notes, *([done.aa] if done.aa else []), *wall]
    return text.markdown_section("Regression gate", _gate_about(plan, done), outcome.result, notes, done.sides)


def summary_json(plan: Plan, done: Done) -> dict[str, Any]:
    """The gate run `done` of `plan` as plain data: what the plan resolved (mode, base revision and
    commit, pairing and why), the Result where there is one, the lines it printed and the exit status."""
    found = (
        text.result_json(done.outcome.result)
        if done.outcome is not None
        else {"verdict": "nothing" if done.nothing else None, "failed": done.failed, "comparisons": []}
    )
    return {
        "command": "gate",
        "plan": {
            "mode": plan.request.mode,
            "base": plan.rev,
            "sha": plan.sha,
            "baseline": plan.request.baseline,
            "pairing": plan.pairing,
            "why": plan.why or None,
            "changed": list(plan.changed),
        },
        "nothing": done.nothing,
        **found,
        "sides": list(done.sides),
        "notes": [*(done.outcome.notes if done.outcome is not None else ()), *([done.aa] if done.aa else [])],
        "wall_s": text.json_number(done.wall_s),
        "lines": list(done.lines),
        "exit": 1 if done.failed else 0,
    }
