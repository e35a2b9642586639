"""The run's progress lines (bench/cli/progress.py) on a fake clock: an ETA from a model of what is
left, which falls while nothing happens and is right where cases use their budget."""

from types import SimpleNamespace

import pytest

from bench.cli.progress import Progress
from bench.records import CaseKey, Record
from bench.run import Case, Config, Group


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
    p.timing(
        Group("cpu", 2000, 784, 50, "float32", False, "warm", []),
        [live(k) for k in keys[2:]],
    )
    assert p.eta_s() == pytest.approx(20.0)
    clock.now = 44.0
    for k in keys[2:]:
        p.finished(Record(**k.asdict(), status="ok", samples_s=(0.01,) * 3, max_rel_err=1e-7))
    assert "ETA" not in lines[-1] and lines[-1].startswith("[4/4 +44s]")


def test_the_timing_line_says_which_cases_run_smaller():
    lines = []
    p = Progress(lines.append, settings(1.0), clock=Clock())
    p.started(3)
    lives = [
        live(key(s, n))
        for s, n in (("manual", 50000), ("module", 50000), ("broadcast", 2000))
    ]
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
