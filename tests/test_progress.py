"""The run's progress lines (bench/cli/progress.py) on a fake clock: an ETA from a model of what is
left, which falls while nothing happens and is right where cases use their budget."""

import itertools
from functools import partial
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

from bench import stats, timing
from bench.cli.progress import BATCH_MIN_CALLS, Progress
from bench.records import CaseKey, Record
from bench.run import Case, Config, Group, Observer


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def settings(budget_s, **kw):
    """A run's settings as the Progress reads them; no batch and no counters unless asked: their
    finish then costs nothing, and the timing is the whole story."""
    return Config(out=None, budget_s=budget_s, **{"counters": False, "batch_s": None, **kw})


def live(k, per_call_s=0.01):
    """A checked case as the loop's timing event hands it over."""
    return SimpleNamespace(rec=Record(**k.asdict(), status="ok"), per_call_s=per_call_s)


def key(step, n=1000):
    return CaseKey("numpy", step, "eager", "cpu", n, 784, 50, "float32")


def test_the_eta_counts_down_and_is_right_where_cases_use_their_budget():
    clock, lines = Clock(), []
    p = Progress(lines.append, settings(10.0), clock=clock)
    keys = [key("manual"), key("module"), key("manual", 2000), key("module", 2000)]
    p.started(4)
    for i, k in enumerate(keys[:2]):  # a check takes 1 s
        clock.now = i
        p.checking(Case(None, k))
    clock.now = 2.0
    lives = [live(k) for k in keys[:2]]
    p.timing(Group("cpu", 1000, 784, 50, "float32", False, "warm", []), lives)
    # left: this group's 2 x 10 s of timing, then 2 cases of 1 s check + 10 s timing: 42 s, the truth here
    assert p.eta_s() == pytest.approx(42.0)
    seen = []
    for t in (5.0, 12.0, 21.0):  # nothing happens: the ETA only falls
        clock.now = t
        seen.append(p.eta_s())
    assert seen == sorted(seen, reverse=True) and seen[-1] == pytest.approx(23.0)
    clock.now = 22.0
    for k in keys[:2]:
        p.finished(Record(**k.asdict(), status="ok", samples_s=(0.01,) * 3, max_rel_err=1e-7))
    assert p.eta_s() == pytest.approx(22.0)  # the second group: 2 x (1 + 10)
    for i, k in enumerate(keys[2:]):
        clock.now = 22.0 + i
        p.checking(Case(None, k))
    clock.now = 24.0
    p.timing(Group("cpu", 2000, 784, 50, "float32", False, "warm", []), [live(k) for k in keys[2:]])
    assert p.eta_s() == pytest.approx(20.0)
    clock.now = 44.0
    for k in keys[2:]:
        p.finished(Record(**k.asdict(), status="ok", samples_s=(0.01,) * 3, max_rel_err=1e-7))
    assert "ETA" not in lines[-1] and lines[-1].startswith("[4/4 +44s]")


def test_the_timing_line_says_which_cases_run_smaller():
    lines = []
    p = Progress(lines.append, settings(1.0), clock=Clock())
    p.started(3)
    lives = [live(key(s, n)) for s, n in (("manual", 50000), ("module", 50000), ("broadcast", 2000))]
    p.timing(Group("cpu", 50000, 784, 50, "float32", False, "warm", []), lives)
    assert "timing: 3 cases on cpu at n=50000 (1 at n=2000: their default-suite limit) nh=50" in lines[-1]


def test_a_groups_eta_is_calibrated_by_the_wall_seconds_its_timed_seconds_took():
    clock, lines = Clock(), []
    p = Progress(lines.append, settings(10.0), clock=clock)
    keys = [key("manual"), key("module")]
    p.started(2)
    for k in keys:
        p.checking(Case(None, k))
    lives = [live(k) for k in keys]
    p.timing(Group("cpu", 1000, 784, 50, "float32", False, "warm", []), lives)
    clock.now = 3.0  # one round: 1 s of timed calls each took 3 s of wall time (1.5 wall s a timed s)
    p.round(1, {}, lives, {0: 1.0, 1: 1.0})
    assert p.eta_s() == pytest.approx((9.0 + 9.0) * 1.5)
    clock.now = 5.0
    assert p.eta_s() == pytest.approx(27.0 - 2.0)  # counting down until the next round
    clock.now = 6.0
    p.round(2, {0: "ci"}, lives, {0: 1.5, 1: 2.0})  # a case settled: only the other's budget is left
    assert p.eta_s() == pytest.approx(8.0 * 6.0 / 3.5)


# ---- a simulated run: the loop's events in their order, the real interleaved rounds on a fake clock


class SimClock(Clock):
    """A fake clock that the simulated work advances; on the way it reads the ETA at each probe time
    and, at the start, middle and end of each step, keeps (events so far, ETA) to check it never rises
    between events."""

    def __init__(self, probes=()):
        self.now, self.probes, self.at, self.trace, self.progress = 0.0, sorted(probes), {}, [], None

    def advance(self, dt):
        end = self.now + dt
        for t in self.probes:
            if self.now < t <= end:
                self.now = t
                self.at[t] = self.progress.eta_s()
        for t in (self.now, (self.now + end) / 2, end):
            self.now = t
            self.trace.append((self.progress.events, self.progress.eta_s()))


class Traced(Progress):
    """A Progress that counts the events it hears."""

    events = 0


def _counted(name):
    def event(self, *args):
        self.events += 1
        return getattr(Progress, name)(self, *args)

    return event


for _name in [n for n in vars(Observer) if not n.startswith("_")]:
    setattr(Traced, _name, _counted(_name))


class Sim(NamedTuple):
    key: CaseKey
    check_s: float
    per_call_s: float
    spread: float  # relative sd of a call's time: a quiet case reaches its CI target before its budget
    finish_s: float


def simulate(clock, groups, config, start_s=12.0, ceilings_s=8.0, wall_per_timed=1.25, lines=None):
    """Drive a Traced Progress through a run of `groups` (lists of Sim) as the loop would, timing each
    group with bench.timing.interleaved on `clock`: (the Progress, the time of the last result)."""
    rng = np.random.default_rng(0)
    p = Traced(lines.append if lines is not None else (lambda line: None), config, clock=clock)
    clock.progress = p
    frameworks = list(dict.fromkeys(c.key.framework for cases in groups for c in cases))
    p.starting(frameworks)
    clock.advance(start_s)
    p.started(sum(len(cases) for cases in groups))
    unmeasured = set(frameworks)  # a framework's first check measures the ceilings first
    for cases in groups:
        for c in cases:
            extra_s = ceilings_s if c.key.framework in unmeasured else 0.0
            if extra_s:
                unmeasured.remove(c.key.framework)
                p.measuring_ceilings(SimpleNamespace(name=c.key.framework), "cpu")
            p.checking(Case(None, c.key))
            clock.advance(extra_s + c.check_s)
        lives = [live(c.key, c.per_call_s) for c in cases]
        p.timing(Group("cpu", cases[0].key.n, 784, 50, "float32", False, "warm", []), lives)

        sampled = timing.interleaved(
            {i: _calls(c, clock, rng, wall_per_timed) for i, c in enumerate(cases)},
            config.rounds(),
            per_call_s={i: c.per_call_s for i, c in enumerate(cases)},
            watch=timing.Watch(
                partial(lambda r, stopped, spent, lives: p.round(r, stopped, lives, spent), lives=lives),
                checkpoint=partial(lambda so_far, cases: p.sampled(_records(cases, so_far)), cases=cases),
            ),
            clock=clock,
        )
        finals = []
        for i, c in enumerate(cases):
            clock.advance(c.finish_s)
            finals.append(_records([c], {0: sampled[i]})[0])
            p.result(finals[-1])
        end_s = clock.now
        for rec in finals:
            p.finished(rec)
    return p, end_s


def _calls(c, clock, rng, wall_per_timed):
    """The Take of a simulated case: each call's time drawn around its per_call_s, the clock moved on
    by it and the wall seconds a timed second costs."""

    def take(count):
        xs = c.per_call_s * (1 + c.spread * np.abs(rng.standard_normal(count)))
        starts = []
        for x in xs:
            starts.append(clock.now)
            clock.advance(x * wall_per_timed)
        return timing.Taken(tuple(starts), tuple(xs), ())

    return take


def _records(cases, so_far):
    return [
        Record(
            **c.key.asdict(),
            status="ok",
            samples_s=so_far[i].samples_s,
            stop_reason=so_far[i].stop_reason,
            max_rel_err=1e-7,
        )
        for i, c in enumerate(cases)
    ]


def default_like():
    """One group as a default run on a CPU: a framework of 15 cases (its compiled backends slower to
    check and to finish) and one of 2, most cases noisy enough to spend their budget, a few quiet."""
    cases = []
    for i, (step, backend) in enumerate(
        itertools.product(("manual", "tape", "module", "broadcast", "keras"), BACKENDS)
    ):
        check_s = {"eager": 2.0, "function": 3.0, "xla": 4.0}[backend] + 0.1 * i
        k = CaseKey("tensorflow", step, backend, "cpu", 50000, 784, 50, "float32")
        cases.append(Sim(k, check_s, 0.1, 0.02 if i % 4 == 0 else 0.4, 1.1 * check_s + 0.2))
    cases += [Sim(key(step, 50000), 1.0, 0.12, 0.4, 1.3) for step in ("manual", "module")]
    return [cases]


def quick_like():
    """A smoke test of four frameworks: a budget shorter than three calls, so each case stops at its
    third sample; a framework's first compile far slower to check than its others (the compiler's
    start, which its finish does not pay again); finishes a little shorter than checks."""
    grid = [("tensorflow", s, b) for s in ("manual", "tape", "module", "broadcast", "keras") for b in BACKENDS]
    grid += [("torch", s, b) for s in ("manual", "autograd", "module") for b in ("eager", "compile")]
    grid += [("jax", s, b) for s in ("manual", "grad") for b in ("eager", "jit")]
    grid += [("numpy", s, "eager") for s in ("manual", "module")]
    cases = []
    for i, (framework, step, backend) in enumerate(grid):
        check_s = 0.4 + 0.05 * (i % 5)
        start_s = 6.5 if (framework, step, backend) == ("torch", "manual", "compile") else 0.0
        k = CaseKey(framework, step, backend, "cpu", 5000, 784, 50, "float32")
        cases.append(Sim(k, start_s + check_s, 0.03 + 0.005 * (i % 7), 0.3, 0.8 * check_s))
    return [cases]


def sweep_like():
    """A sweep of four sizes, a group each: calls longer as n grows, the smallest capped by max_samples."""
    return [
        [Sim(key(step, n), 0.3 + n / 10000, n / 500000, 0.2, 0.5 + n / 20000) for step in ("manual", "module")]
        for n in (1000, 5000, 20000, 50000)
    ]


BACKENDS = ("eager", "function", "xla")
SCENARIOS = {
    "default": (default_like, settings(4.0, counters=True, batch_s=0.2, target_ci=0.02)),
    "quick": (quick_like, settings(0.1, counters=True, batch_s=0.02, min_samples=5, max_samples=20)),
}
SWEEP = settings(1.0, counters=True, batch_s=0.2, max_samples=200)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_eta_is_within_a_quarter_of_the_truth_from_the_runs_midpoint(scenario):
    groups, config = SCENARIOS[scenario]
    _, end_s = simulate(SimClock(), groups(), config)
    probes = (0.5 * end_s, 0.75 * end_s)
    clock = SimClock(probes)
    simulate(clock, groups(), config)
    for t in probes:
        assert clock.at[t] == pytest.approx(end_s - t, rel=0.25), (t, clock.at[t], end_s - t)


@pytest.mark.parametrize("scenario", [*SCENARIOS, "sweep"])
def test_the_eta_never_rises_while_nothing_happens(scenario):
    groups, config = SCENARIOS.get(scenario, (sweep_like, SWEEP))
    clock = SimClock()
    simulate(clock, groups(), config)
    between = itertools.groupby(clock.trace, key=lambda point: point[0])
    for events, points in between:
        etas = [eta for _, eta in points if eta is not None]
        assert etas == sorted(etas, reverse=True), (events, etas)


def test_each_line_counts_its_stage_and_results_come_one_by_one():
    lines = []
    cases = [Sim(key(step), 1.0, 0.01, 0.3, 0.5) for step in ("manual", "module", "broadcast")]
    simulate(SimClock(), [cases], settings(0.1, counters=True), lines=lines)
    assert lines[0] == "[+0s] starting: loading numpy in a worker process of its own"
    checks = [line for line in lines if " check: " in line]
    assert [line.split(" +")[0] for line in checks] == ["[0/3 checked", "[1/3 checked", "[2/3 checked"]
    assert [line for line in lines if " timing: 3 cases" in line][0].startswith("[3/3 checked +")
    over = [line for line in lines if "timing: over after round" in line]
    assert (
        len(over) == 1
        and over[0].startswith("[3/3 timed +")
        and "; then for each case its counters, untimed" in over[0]
    )
    done = [line for line in lines if " done: " in line]
    assert [line.split(" +")[0] for line in done] == ["[1/3", "[2/3", "[3/3"]  # each as its result is final
    assert lines.index(done[0]) > lines.index(over[0]) and lines[-1] == done[-1]  # written later, not said twice
    assert "ETA" in done[0] and "ETA" not in done[-1]


def test_a_check_that_also_measured_the_ceilings_does_not_set_the_pace():
    """A framework's first check measures the device's ceilings too: the other cases' checks and
    finishes are estimated from the checks without them, the ceilings once a framework to come."""
    clock, lines = Clock(), []
    p = Progress(lines.append, settings(1.0, counters=True, frameworks=("tensorflow", "numpy")), clock=clock)
    p.started(4)
    tf = [CaseKey("tensorflow", s, "eager", "cpu", 1000, 784, 50, "float32") for s in ("manual", "tape")]
    p.measuring_ceilings(SimpleNamespace(name="tensorflow"), "cpu")
    p.checking(Case(None, tf[0]))
    assert p.eta_s() is None  # only a check with ceilings in it is known: nothing to scale from yet
    clock.now = 10.0  # 8 s of ceilings, 2 s of check
    p.checking(Case(None, tf[1]))
    clock.now = 12.0
    p.measuring_ceilings(SimpleNamespace(name="numpy"), "cpu")
    p.checking(Case(None, key("manual")))
    # left: this check (2 + 8 s of ceilings), one more (2 s), four timings (1 s) and four finishes (2 s)
    assert p.eta_s() == pytest.approx(10.0 + 2.0 + 4 * 1.0 + 4 * 2.0)
    assert "ETA 24 s" in lines[-1]


def test_samples_so_far_bring_a_quiet_case_s_end_forward():
    """A case whose samples' CI narrows fast stops before its budget: once its samples show it, the
    ETA counts n * (half-width / target)^2 samples in all, not the budget."""
    clock = Clock()
    p = Progress(lambda line: None, settings(10.0, target_ci=0.02, min_samples=10), clock=clock)
    k = key("manual")
    p.started(1)
    p.checking(Case(None, k))
    p.timing(Group("cpu", 1000, 784, 50, "float32", False, "warm", []), [live(k, 0.1)])
    clock.now = 2.0
    p.round(20, {}, [live(k, 0.1)], {0: 2.0})  # 20 calls of 0.1 s: 2 s of the 10 s budget, one wall s each
    assert p.eta_s() == pytest.approx(8.0)
    samples = tuple(0.1 * (1 + 0.07 * np.random.default_rng(1).standard_normal(20)))
    p.sampled([Record(**k.asdict(), status="ok", samples_s=samples)])
    half_width = stats.ci_half_width_fraction(samples)
    assert 0.02 < half_width < 0.04  # a target reached at 20 * (half-width / 0.02)^2 < 80 samples: before 10 s
    assert p.eta_s() == pytest.approx(20 * (half_width / 0.02) ** 2 * sum(samples) / 20 - 2.0)


def test_a_finish_costs_its_batch_and_about_a_check_of_its_kind():
    """After its rounds a case's batch takes batch_s, or BATCH_MIN_CALLS calls where those are
    longer, and its counters about a check of its kind; long calls make the batch the larger part."""
    clock = Clock()
    p = Progress(lambda line: None, settings(1.0, counters=True, batch_s=0.2), clock=clock)
    keys = [key("manual"), key("module")]
    p.started(2)
    for t, k in enumerate(keys):  # checks of 1 s each, of one kind (numpy eager)
        clock.now = float(t)
        p.checking(Case(None, k))
    clock.now = 2.0
    p.timing(Group("cpu", 1000, 784, 50, "float32", False, "warm", []), [live(k, 0.5) for k in keys])
    # each: timing max(1 s budget, 3 calls of 0.5 s), then a batch of 3 calls and 1 s of counters
    assert p.eta_s() == pytest.approx(2 * 1.5 + 2 * (BATCH_MIN_CALLS * 0.5 + 1.0))
