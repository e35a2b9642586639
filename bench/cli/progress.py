"""The terminal side of a run: one line per event, each with a counter of the stage it belongs to
(cases checked, timed, done), the time so far and an ETA (Progress, a run Observer); and SIGINT /
SIGTERM turned into a stop at the next call (Signals)."""

import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.records import CaseKey, Record
from bench.run import Case, Config, Group, Observer
from bench.run.measure import Timed
from bench.stats import ci_half_width_fraction
from bench.timing import MIN_SPREAD_SAMPLES

BATCH_MIN_CALLS = 3  # a batch's calls at least, however long they take (bench/run/prepare.py Live.finish)


def result_line(rec: Record) -> str:
    if rec.status == "ok":
        s = rec.summary
        ci = f" [95% CI {s.ci_lo_s * 1e3:.3g}, {s.ci_hi_s * 1e3:.3g}]" if math.isfinite(s.ci_lo_s) else ""
        return (
            f"{rec.label}: median {s.median_s * 1e3:.3g} ms{ci} over {s.samples} samples ({rec.stop_reason}), "
            f"max rel err {rec.max_rel_err:.1e}"
        )
    return f"{rec.label}: {rec.status.upper()}: {rec.error}"


@dataclass
class _Timing:
    """The group being timed, as its rounds tell it: each case's key, the host seconds of timed calls
    each has spent, and which have stopped."""

    began: float
    keys: list[CaseKey]
    spent: dict[int, float] = field(default_factory=dict)
    stopped: dict[int, str] = field(default_factory=dict)
    ci_stop_s: dict[int, float] = field(default_factory=dict)  # timed seconds at which its CI would reach the target
    last_round: float | None = None
    written: int = 0

    def over(self) -> bool:
        return len(self.stopped) == len(self.keys)

    def finishing(self) -> list[CaseKey]:
        """The cases that get a batch and counters after the rounds (not those that failed or were
        interrupted), in the order they are finished."""
        return [k for i, k in enumerate(self.keys) if self.stopped.get(i) not in ("failed", "interrupted")]


class Progress(Observer):
    """Writes one line per event (to stderr by default). Each line counts the stage it is part of:
    cases checked (a check line), timed (a round), done (a result); a group's cases are timed
    together, so a count of records written alone would stand still until the group's end.

    The ETA is a model of the work left, from what the run has shown so far (`config`: its budget,
    counters and batch; no config, no ETA):
    - a case not yet checked costs the mean check so far (a framework's first check also measures
      the device's ceilings: that is counted apart, once for each framework yet to start), then its
      timing, then its finish;
    - its timing: the host seconds its stop rule leaves it (the budget; at least MIN_SPREAD_SAMPLES
      calls; at most max_samples; sooner where its samples so far, their median's CI shrinking as
      1/sqrt(n), reach the target sooner), at the wall seconds per timed second its group's rounds
      have taken (settling, switches, the canary; before the first round, the earlier groups');
    - its finish: its batch (batch_s, at least BATCH_MIN_CALLS calls) and its counters (a fresh
      compile, a few profiled calls), about a check of its kind (framework and backend) less the
      one-off costs the first of each kind pays (ceilings, a compiler's start), all scaled by its
      framework's finishes so far (each profiles its own way).
    Between events only the current item (a check, the rest of a group's rounds, one finish) counts
    down, floored at zero, and the rest stands: the ETA never rises while nothing happens. It ends
    with the last result; the report after it says so on a line of its own."""

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        config: Config | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.config, self.every_s, self.clock = config, every_s, clock
        self.total = 0
        self.seen: set[CaseKey] = set()  # past their check: checked, skipped, failed or resumed
        self.timed: set[CaseKey] = set()  # past their timing (stopped, or never to be timed)
        self.done: set[CaseKey] = set()  # whose result is final (a line says so)
        self.check_s: dict[CaseKey, float] = {}  # each check's wall seconds, from its event to the next
        self.with_ceilings: set[CaseKey] = set()  # the checks that measured their device's ceilings first
        self.first_of_kind: set[CaseKey] = set()  # the first check of each framework and backend
        self.ceilings_to_come = set(config.frameworks if config else ())  # frameworks yet to measure theirs
        self._ceilings_next = False
        self.per_call_s: dict[CaseKey, float] = {}  # a timed case's seconds a call: its warm-up's, then its samples'
        self.waiting: dict[CaseKey, None] = {}  # checked or being checked, their group's timing not begun
        self.finishes: dict[str, list[tuple[float, float]]] = {}  # per framework: (prior, wall s) of each finish
        self.groups_s = [0.0, 0.0]  # wall and timed seconds of the groups timed so far
        self.group: _Timing | None = None
        self.checking_now: CaseKey | None = None
        self.start = self.anchor = self._last_round_line = clock()
        self._lock = threading.Lock()  # results may come from several threads (measure.time_cases)

    # ---- the model

    def eta_s(self) -> float | None:
        """Seconds left by the model above; None before anything can be said."""
        if self.config is None or not self.total:
            return None
        if len(self.done) >= self.total:
            return 0.0
        costs = self._check_costs()
        if costs is None:
            return None
        current = max(0.0, self._current_s(*costs) - (self.clock() - self.anchor))
        return self._future_s(*costs) + current

    def _check_costs(self) -> tuple[float, float] | None:
        """(seconds a check takes, seconds a framework's ceilings add to its first) from the checks so
        far; None while no check without ceilings is known and cases are left to check."""
        plain = [s for k, s in self.check_s.items() if k not in self.with_ceilings]
        first = [s for k, s in self.check_s.items() if k in self.with_ceilings]
        if not plain and (not first or len(self.seen) < self.total):
            return None
        check_s = statistics.fmean(plain or first)
        return check_s, max(0.0, statistics.fmean(first) - check_s) if first and plain else 0.0

    def _current_s(self, check_s: float, ceilings_s: float) -> float:
        """The item in progress since the last event, whole: a check, a group's rounds, or one finish."""
        g = self.group
        if self.checking_now is not None:
            return check_s + (ceilings_s if self.checking_now in self.with_ceilings else 0.0)
        if g is None:
            return 0.0
        if not g.over():
            return self._group_timed_left_s(g) * self._wall_per_timed(g)
        pending = [k for k in g.finishing() if k not in self.done]
        return self._finish_s(pending[0], check_s) if pending else 0.0

    def _future_s(self, check_s: float, ceilings_s: float) -> float:
        """Everything after the current item, fixed between events."""
        assert self.config is not None
        timing_s = self.config.budget_s * self._wall_per_timed(None)  # a case not yet in rounds
        unchecked = max(0, self.total - len(self.seen))
        left = unchecked * (check_s + timing_s + self._finish_s(None, check_s))
        left += min(unchecked, len(self.ceilings_to_come)) * ceilings_s
        left += sum(timing_s + self._finish_s(k, check_s) for k in self.waiting)
        g = self.group
        if g is not None:
            pending = [k for k in g.finishing() if k not in self.done]
            if g.over():
                pending = pending[1:]  # the first is the current item
            left += sum(self._finish_s(k, check_s) for k in pending)
        return left

    def _group_timed_left_s(self, g: _Timing) -> float:
        """Host seconds of timed calls the open cases of `g` have left by their stop rule."""
        assert self.config is not None
        budget_s, max_samples = self.config.budget_s, self.config.max_samples
        left = 0.0
        for i, key in enumerate(g.keys):
            if i in g.stopped:
                continue
            spent, per_call_s = g.spent.get(i, 0.0), self.per_call_s[key]
            needed = min(
                max(budget_s, MIN_SPREAD_SAMPLES * per_call_s), max_samples * per_call_s, g.ci_stop_s.get(i, math.inf)
            )
            left += max(0.0, needed - spent)
        return left

    def _wall_per_timed(self, g: _Timing | None) -> float:
        """Wall seconds per timed second: the group's rounds so far, else the earlier groups', else 1."""
        if g is not None and g.last_round is not None:
            timed = sum(g.spent.values())
            if timed > 0:
                return (g.last_round - g.began) / timed
        wall, timed = self.groups_s
        return wall / timed if timed > 0 else 1.0

    def _finish_prior_s(self, key: CaseKey | None, check_s: float) -> float:
        """A finish before any is seen: the counters cost about a check of the case's kind (a fresh
        compile, a few profiled calls), the batch its length."""
        assert self.config is not None
        counters = self._kind_check_s(key, check_s) if self.config.counters else 0.0
        if self.config.batch_s is None:
            return counters
        calls_s = BATCH_MIN_CALLS * self.per_call_s.get(key, 0.0) if key is not None else 0.0
        return counters + max(self.config.batch_s, calls_s)

    def _kind_check_s(self, key: CaseKey | None, check_s: float) -> float:
        """What a check of `key`'s kind costs without one-off costs: its own check unless it was the
        first of its kind, else the mean of its kind's later ones, else of its framework's, else its
        own where that measured no ceilings, else `check_s`."""
        if key is None:
            return check_s
        if key in self.check_s and key not in self.first_of_kind:
            return self.check_s[key]
        later = {k: s for k, s in self.check_s.items() if k not in self.first_of_kind and k.framework == key.framework}
        kind = [s for k, s in later.items() if k.backend == key.backend]
        if kind or later:
            return statistics.fmean(kind or later.values())
        return self.check_s[key] if key in self.check_s and key not in self.with_ceilings else check_s

    def _finish_s(self, key: CaseKey | None, check_s: float) -> float:
        prior = self._finish_prior_s(key, check_s)
        seen = self.finishes.get(key.framework, []) if key else [f for fs in self.finishes.values() for f in fs]
        priors, walls = sum(p for p, _ in seen), sum(w for _, w in seen)
        return prior * walls / priors if priors > 0 else prior

    # ---- the lines

    def _prefix(self, stage: str = "done") -> str:
        count = {
            "checked": len(self.seen) - (self.checking_now is not None),
            "timed": len(self.timed),
            "done": len(self.done),
        }[stage]
        elapsed = self.clock() - self.start
        eta = self.eta_s()
        word = "" if stage == "done" else f" {stage}"
        return f"[{count}/{self.total}{word} +{elapsed:.0f}s{f', ETA {eta:.0f} s' if eta else ''}]"

    def say(self, text: str) -> None:
        """A line of the command's own (the report being written), prefixed as the run's were."""
        self.write(f"{self._prefix()} {text}")

    def _event(self) -> float:
        """The time of an event; a check in progress ends with it."""
        now = self.clock()
        if self.checking_now is not None:
            self.check_s[self.checking_now] = now - self.anchor
            self.checking_now = None
        self.anchor = now
        return now

    # ---- the events

    def starting(self, frameworks: Sequence[str]) -> None:
        where = "a worker process of its own" if self.config is None or self.config.isolate else "this process"
        self.ceilings_to_come = set(frameworks)
        names = " and ".join([", ".join(frameworks[:-1]), frameworks[-1]] if len(frameworks) > 1 else frameworks)
        each = ", each" if len(frameworks) > 1 else ""
        self.write(f"[+{self.clock() - self.start:.0f}s] starting: loading {names}{each} in {where}")

    def started(self, total: int) -> None:
        self.total = total

    def left_out(self, framework: str, reason: str) -> None:
        self.ceilings_to_come.discard(framework)
        self.write(f"python -m bench run: leaving out {framework} ({reason})")

    def measuring_ceilings(self, fw: Any, device: str) -> None:
        self._event()
        self.ceilings_to_come.discard(fw.name)
        self._ceilings_next = True  # in the check that follows
        self.write(f"{self._prefix('checked')} ceilings: measuring {device} GEMM and copy with {fw.name}")

    def resumed(self, case: Case) -> None:
        self._event()
        self.seen.add(case.key)
        self.timed.add(case.key)
        self.done.add(case.key)
        self.write(f"{self._prefix()} resume: {case.key.label} already recorded")

    def checking(self, case: Case) -> None:
        self._event()
        self.seen.add(case.key)
        self.waiting[case.key] = None
        self.checking_now = case.key
        if self._ceilings_next:
            self.with_ceilings.add(case.key)
            self._ceilings_next = False
        if not any(k.framework == case.key.framework and k.backend == case.key.backend for k in self.first_of_kind):
            self.first_of_kind.add(case.key)
        self.write(f"{self._prefix('checked')} check: {case.key.label}")

    def timing(self, group: Group, lives: Sequence[Timed]) -> None:
        now = self._event()
        keys = [lv.rec.case for lv in lives]
        for key in keys:
            self.waiting.pop(key, None)
        self.group = _Timing(now, keys)
        self.per_call_s.update((lv.rec.case, lv.per_call_s) for lv in lives)
        other = [lv.rec.n for lv in lives if lv.rec.n != group.n]
        smaller = f" ({len(other)} at n={min(other)}: their default-suite limit)" if other else ""
        self.write(
            f"{self._prefix('checked')} timing: {len(lives)} case{'s' if len(lives) != 1 else ''} on {group.device} "
            f"at n={group.n}{smaller} nh={group.nh} {group.dtype}{'+tf32' if group.tf32 else ''}"
            f"{', cold cache' if group.cache == 'cold' else ''} in interleaved rounds"
        )

    def round(
        self, r: int, stopped: Mapping[int, str], lives: Sequence[Timed], spent: Mapping[int, float] | None = None
    ) -> None:
        g = self.group
        if g is None:
            return
        now = self._event()
        g.stopped, g.last_round = dict(stopped), now
        if spent:
            g.spent = dict(spent)
        self.timed.update(g.keys[i] for i in stopped)
        if g.over():
            self.groups_s = [self.groups_s[0] + now - g.began, self.groups_s[1] + sum(g.spent.values())]
            self.write(f"{self._prefix('timed')} timing: over after round {r}{self._then()}")
        elif now - self._last_round_line >= self.every_s:
            self._last_round_line = now
            self.write(f"{self._prefix('timed')} timing: round {r}, {len(stopped)} of {len(lives)} cases settled")

    def _then(self) -> str:
        """What follows a group's rounds before its results."""
        parts = []
        if self.config is None or self.config.batch_s is not None:
            parts.append("a batch of calls with one sync")
        if self.config is None or self.config.counters:
            parts.append("its counters")
        return f"; then for each case {' and '.join(parts)}, untimed" if parts else ""

    def sampled(self, records: Sequence[Record]) -> None:
        """When each open case's CI would reach the target, from its samples so far: a median's CI
        narrows as 1/sqrt(n), so n * (half-width / target)^2 samples, at its host seconds a sample."""
        g = self.group
        if g is None or self.config is None:
            return
        for i, rec in enumerate(records[: len(g.keys)]):
            samples = rec.samples_s or ()
            if i in g.stopped or len(samples) < MIN_SPREAD_SAMPLES:
                continue
            self.per_call_s[g.keys[i]] = statistics.median(samples)
            half_width = ci_half_width_fraction(samples)
            if math.isfinite(half_width):
                n = max(len(samples) * (half_width / self.config.target_ci) ** 2, self.config.min_samples)
                g.ci_stop_s[i] = n * sum(rec.host_samples_s or samples) / len(samples)

    def result(self, rec: Record) -> None:
        with self._lock:
            now = self.clock()
            costs = self._check_costs()
            finish = (self._finish_prior_s(rec.case, costs[0] if costs else 0.0), now - self.anchor)
            self.finishes.setdefault(rec.framework, []).append(finish)
            self.anchor = now
            self.done.add(rec.case)
            self.write(f"{self._prefix()} done: {result_line(rec)}")

    def finished(self, rec: Record) -> None:
        with self._lock:
            self._event()
            g = self.group
            if g is not None and rec.case in g.keys:
                g.written += 1
                if g.written == len(g.keys):
                    self.group = None  # the group is written
            self.seen.add(rec.case)  # a skipped case finishes without a check
            self.timed.add(rec.case)
            self.waiting.pop(rec.case, None)
            if rec.case in self.done:
                return  # its line came with its result
            self.done.add(rec.case)
            self.write(f"{self._prefix()} done: {result_line(rec)}")


class Signals:
    """SIGINT and SIGTERM as a request to stop: the first sets `received` (the run engine asks
    stop() after every take of a case's calls and between cases, writes what it has, and the command exits
    128 + the signal: 130, 143); a second ends the process at once, leaving every record already
    written (each is flushed and synced as it is appended).

    The handler only sets a flag and writes with os.write: raising from it (KeyboardInterrupt)
    unwound the stack from wherever the signal landed, at times inside TensorFlow's Python layer
    around a native call, and a double Ctrl-C then aborted the process now and then ("corrupted
    size vs. prev_size", SIGABRT). Main thread only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is not None:
            os.write(2, f"{name} again: stopping now; every record written so far is kept\n".encode())
            os._exit(128 + signum)
        self.received = signum
        os.write(
            2,
            f"{name}: stopping after the current round of calls, keeping what was measured "
            f"({name} again to stop at once)\n".encode(),
        )

    def stop(self) -> bool:
        return self.received is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.received if self.received is not None else 0

    def __enter__(self) -> "Signals":
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
