"""The timing core, the one every command times with (run, scale, overhead, the probe): phases of
one case (trace, first call, steady state), interleaved rounds of several cases, a batch with one
sync, each call measured by a timer (the host clock around the call and its sync, or a device's own
timer from the framework's contract) on an injected clock and sync. Imports no framework, so tests
drive it with a fake clock and assert exact numbers."""

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from bench import defaults

Clock = Callable[[], float]
_K = TypeVar("_K")


class Timer(Protocol):
    """What times each call: HOST, or a framework's device timer (bench/frameworks/base.py, Framework.timer)."""

    name: str

    def measure(self, call: Callable[[], object], sync: Callable[[], object], clock: Clock) -> tuple[float, float]: ...


@dataclass(frozen=True)
class FirstCall:
    trace_s: float | None  # building the graph only (None where nothing is traced: eager)
    first_call_s: float  # the first real call and its sync: graph optimisation or XLA compile, plus one run
    result: Any  # what the first call returned, for the correctness check


def first_call(
    call: Callable[[], Any],
    sync: Callable[[], object],
    trace: Callable[[], object] | None = None,
    clock: Clock = time.perf_counter,
) -> FirstCall:
    trace_s = None
    if trace is not None:
        t0 = clock()
        trace()
        trace_s = clock() - t0
    t0 = clock()
    result = call()
    sync()
    return FirstCall(trace_s, clock() - t0, result)


@dataclass(frozen=True)
class Steady:
    warmup_s: tuple  # calls before sampling, not in the statistics (kept, to show settling)
    samples_s: tuple  # one time per call by the timer, each call followed by a sync
    host_s: tuple = ()  # the host clock around each sampled call and its sync, where the timer is another


def steady(
    call: Callable[[], object],
    sync: Callable[[], object],
    *,
    warmup: int,
    min_samples: int,
    max_samples: int,
    budget_s: float,
    clock: Clock = time.perf_counter,
    timer: Timer | None = None,
    before: Callable[[], object] | None = None,
) -> Steady:
    """Time `call` (then `sync`) repeatedly by `timer` (the host clock by default): `warmup` calls,
    then samples until at least `min_samples` are taken and `budget_s` of host time has passed, or
    `max_samples` are taken. before(), when given, runs untimed before each call (a cache flush, a
    barrier between processes)."""
    take = taker(call, sync, timer, before, clock)
    warm = take(warmup).samples_s if warmup else ()
    samples: list[float] = []
    hosts: list[float] = []
    while len(samples) < max_samples and not (len(samples) >= min_samples and sum(hosts) >= budget_s):
        got = take(1)
        samples += got.samples_s
        hosts += got.host_s or got.samples_s
    return Steady(tuple(warm), tuple(samples), tuple(hosts) if (timer or HOST) is not HOST else ())


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    """Python's garbage collector off within (as timeit and pytest-benchmark do): a collection is
    not the step's."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


class HostTimer:
    """The host clock around a call and its sync: all there is on a CPU, and on a device without
    its own timers what the host waits (launch and sync overhead included)."""

    name = "host clock + sync"

    def measure(self, call: Callable[[], object], sync: Callable[[], object], clock: Clock) -> tuple[float, float]:
        """(the time to report, the host-clock time), in seconds: here one and the same."""
        t0 = clock()
        call()
        sync()
        dt = clock() - t0
        return dt, dt


HOST = HostTimer()

MIN_SPREAD_SAMPLES = 3


class Taken(NamedTuple):
    """What one take of a case's calls measured."""

    starts: tuple[float, ...]  # the clock when each call began (to place telemetry readings)
    samples_s: tuple[float, ...]  # one time per call by the case's timer
    host_s: tuple[float, ...]  # the host clock around each call and its sync; () where that is the timer


Take = Callable[[int], Taken]  # take(count): time `count` calls of one case


def taker(
    call: Callable[[], object],
    sync: Callable[[], object],
    timer: Timer | None = None,
    flush: Callable[[], object] | None = None,
    clock: Clock = time.perf_counter,
) -> Take:
    """The Take of one case in this process: each call (then `sync`) measured by `timer` (the host
    clock by default), after flush() where given (untimed: a cold-cache sample), the garbage
    collector off meanwhile (gc_off). The one measuring loop: steady() takes through it too."""
    timer = timer or HOST

    def take(count: int) -> Taken:
        starts, samples, hosts = [], [], []
        with gc_off():
            for _ in range(count):
                if flush:
                    flush()
                starts.append(clock())
                dt, host = timer.measure(call, sync, clock)
                samples.append(dt)
                hosts.append(host)
        return Taken(tuple(starts), tuple(samples), tuple(hosts) if timer is not HOST else ())

    return take


@dataclass(frozen=True)
class Sampled:
    samples_s: tuple  # one time per call by the case's timer (device time where it has one)
    rounds: tuple  # the round of each sample; samples of one round across cases are paired
    stop_reason: str  # "ci": the median's 95% CI is within +-target; "budget"; "max_samples";
    # "interrupted": stopped from outside (a signal) with what it had;
    # "failed": a take measured nothing (a worker process died)
    host_s: tuple = ()  # the host-clock time of each call and its sync, where the timer is another
    starts: tuple = ()  # the clock when each call began (to place telemetry readings)
    canary_s: tuple = ()  # the canary's time in each round the case was sampled in (interleaved's `canary`)


def _rotated(active: list[_K], shift: int, blocks: Mapping[_K, Hashable] | None) -> list[_K]:
    """`active` rotated by `shift`; with blocks, the blocks (in order of first appearance) rotated
    by it, each block's own cases rotated once every len(blocks) shifts."""
    if not blocks:
        s = shift % len(active)
        return active[s:] + active[:s]
    grouped: dict[Hashable, list[_K]] = {}
    for k in active:
        grouped.setdefault(blocks.get(k), []).append(k)
    # the members turn once a cycle of the blocks' order: turning both by `shift` would tie which
    # case follows the switch to which block goes first
    members = [_rotated(ks, shift // len(grouped), None) for ks in grouped.values()]
    return [k for ks in _rotated(members, shift, None) for k in ks]


@dataclass(frozen=True)
class Rounds:
    """When interleaved() stops a case, and how long its takes are: the run's sampling settings
    (bench/run/plan.py Config.rounds())."""

    target_ci: float = defaults.TARGET_CI  # stop once the median's 95% CI is within +-this ...
    min_samples: int = defaults.MIN_SAMPLES  # ... after this many samples
    min_rounds: int = defaults.MIN_ROUNDS  # ... and rounds
    max_samples: int = defaults.MAX_SAMPLES
    budget_s: float = defaults.BUDGET_S  # or once this much host time went to its timed calls ...
    budget_rounds: int = 0  # ... and it has this many rounds (a gate pairs by round)
    round_s: float = defaults.ROUND_S  # a case's calls a round: about this long
    checkpoint_s: float = defaults.CHECKPOINT_S


@dataclass(frozen=True)
class Watch(Generic[_K]):
    """Who follows interleaved(): on_round(round, {key: stop reason}, {key: host seconds}) after each
    round; stop() asked after every take (true: the cases not done stop "interrupted", keeping what
    they have); checkpoint({key: Sampled}) every checkpoint_s of clock time, with the samples so far."""

    on_round: Callable[[int, dict[_K, str], dict[_K, float]], object] | None = None
    stop: Callable[[], bool] | None = None
    checkpoint: Callable[[dict[_K, Sampled]], object] | None = None


def interleaved(
    cases: Mapping[_K, Take],
    rounds: Rounds = Rounds(),
    *,
    per_call_s: Mapping[_K, float] | None = None,
    blocks: Mapping[_K, Hashable] | None = None,
    canary: Take | None = None,
    watch: Watch[_K] | None = None,
    clock: Clock = time.perf_counter,
) -> dict[_K, Sampled]:
    """Time several cases in rounds (A B C, C B A, B C A, A C B, ...) so machine drift hits all
    alike and no case always follows the same other.

    cases: {key: take} (a Take: taker() in this process, or a worker's: bench/run/worker.py). Each
    round takes each active case's calls enough times to fill about `rounds.round_s` (at least once,
    at most 50): in the first round by `per_call_s[key]` (e.g. from warm-up), then by the median of
    the case's own samples so far, so that a warm-up call slowed by another process does not set one
    call a round for good (two sides paired by round, one at 1 call a round, each the first after a
    switch, and one at 50, would differ by that cost, not by their code). A case stops as `rounds`
    says: its median known to +-target_ci, its budget spent (with at least MIN_SPREAD_SAMPLES
    samples, so a spread exists, and budget_rounds rounds), or max_samples.

    blocks: {key: the process that runs it}: the cases of one process run together (a switch to
    another process costs its threads waking, its caches refilling), each block's order rotated on
    its own. The take right after a switch (and the first of all) makes one call more and drops
    it: that call pays for the switch (experiment: switch-cost).

    canary: a fixed computation (bench/canary.py) timed by one call at the start of each round,
    outside the round's order, so the cases' rotation and pairing are as without it; each case's
    Sampled.canary_s holds its times in the rounds that case was sampled in."""
    return _Interleaving(cases, rounds, per_call_s or {}, blocks, canary, watch or Watch(), clock).run()


class _Interleaving(Generic[_K]):
    """interleaved()'s state: each case's samples so far and what stopped it."""

    def __init__(
        self,
        cases: Mapping[_K, Take],
        rounds: Rounds,
        per_call_s: Mapping[_K, float],
        blocks: Mapping[_K, Hashable] | None,
        canary: Take | None,
        watch: Watch[_K],
        clock: Clock,
    ) -> None:
        self.cases, self.rounds, self.per_call_s, self.blocks = cases, rounds, per_call_s, blocks
        self.canary, self.watch, self.clock = canary, watch, clock
        self.keys = list(cases)
        self.calls = {k: self._filling(per_call_s.get(k)) for k in self.keys}
        self.samples: dict[_K, list[float]] = {k: [] for k in self.keys}
        self.hosts: dict[_K, list[float]] = {k: [] for k in self.keys}
        self.starts: dict[_K, list[float]] = {k: [] for k in self.keys}
        self.round_of: dict[_K, list[int]] = {k: [] for k in self.keys}
        self.device_timed: set[_K] = set()  # the cases whose timer is not the host clock
        self.spent = dict.fromkeys(self.keys, 0.0)
        self.done: dict[_K, str] = {}
        self.canary_s: dict[int, float] = {}
        self.last_block: object = _NONE  # the block of the last take: a take in another follows a switch
        self.last_checkpoint = clock()

    def _filling(self, per_call: float | None) -> int:
        return max(1, min(50, int(self.rounds.round_s / per_call))) if per_call else 1

    def so_far(self) -> dict[_K, Sampled]:
        return {
            k: Sampled(
                tuple(self.samples[k]),
                tuple(self.round_of[k]),
                self.done.get(k, "interrupted"),
                tuple(self.hosts[k]) if k in self.device_timed else (),
                tuple(self.starts[k]),
                tuple(self.canary_s[q] for q in dict.fromkeys(self.round_of[k]) if q in self.canary_s),
            )
            for k in self.keys
        }

    def run(self) -> dict[_K, Sampled]:
        r = 0
        while len(self.done) < len(self.keys):
            active = [k for k in self.keys if k not in self.done]
            if self.canary is not None:
                self.canary_s[r] = self.canary(1).samples_s[0]
            order = _rotated(active, r // 2, self.blocks)
            # rotated every other round, and reversed every other: each case goes first in turn, and
            # each pair of cases runs in both orders (a rotation alone keeps A right before B, so B
            # would always find A's data in the caches)
            for k in order if r % 2 == 0 else order[::-1]:
                if self._take(k, r):
                    return self.so_far()
            r += 1
            self._judge(active, r)
            if self.watch.on_round:
                self.watch.on_round(r, dict(self.done), dict(self.spent))
        return self.so_far()

    def _take(self, k: _K, r: int) -> bool:
        """Take case k's calls of round r; whether the watcher asked to stop."""
        count = min(self.calls[k], self.rounds.max_samples - len(self.samples[k]))
        if count <= 0:
            return False
        block = self.blocks.get(k) if self.blocks is not None else self.last_block  # one process: no switch
        got = _after_switch(self.cases[k](count + 1)) if block != self.last_block else self.cases[k](count)
        self.last_block = block
        if not got.samples_s:  # it measured nothing (its worker died): it is done
            self.done[k] = "failed"
            return False
        if got.host_s:
            self.device_timed.add(k)
        self.samples[k] += got.samples_s
        self.hosts[k] += got.host_s or got.samples_s
        self.starts[k] += got.starts
        self.round_of[k] += [r] * len(got.samples_s)
        self.spent[k] += sum(got.host_s or got.samples_s)
        if self.watch.stop and self.watch.stop():
            return True
        if self.watch.checkpoint and self.clock() - self.last_checkpoint >= self.rounds.checkpoint_s:
            self.watch.checkpoint(self.so_far())
            self.last_checkpoint = self.clock()
        return False

    def _judge(self, active: list[_K], r: int) -> None:
        """After r rounds: each active case's calls a round from its own median, and whether it stops."""
        from bench.stats import ci_half_width_fraction

        rounds = self.rounds
        for k in active:
            n = len(self.samples[k])
            if k in self.per_call_s and n:
                self.calls[k] = self._filling(statistics.median(self.samples[k]))
            if (
                n >= rounds.min_samples
                and r >= rounds.min_rounds
                and ci_half_width_fraction(self.samples[k]) <= rounds.target_ci
            ):
                self.done[k] = "ci"
            elif (
                self.spent[k] >= rounds.budget_s
                and n >= min(MIN_SPREAD_SAMPLES, rounds.max_samples)
                and r >= rounds.budget_rounds
            ):
                self.done[k] = "budget"
            elif n >= rounds.max_samples:
                self.done[k] = "max_samples"


_NONE = object()


def _after_switch(got: Taken) -> Taken:
    """A take's calls less its first, which paid for the switch to its process (interleaved)."""
    return Taken(got.starts[1:], got.samples_s[1:], got.host_s[1:])


@dataclass(frozen=True)
class Batch:
    calls: int
    dispatch_s: float  # per call: host time until the last call returned, before the sync
    batch_s: float  # per call: the whole batch including one sync at the end


def batched(
    call: Callable[[], object], sync: Callable[[], object], calls: int, clock: Clock = time.perf_counter
) -> Batch:
    """Time `calls` calls with a single sync at the end. On an asynchronous device the gap between
    dispatch_s and the synced per-call time shows what the host costs; on CPU they nearly agree."""
    sync()
    t0 = clock()
    for _ in range(calls):
        call()
    t1 = clock()
    sync()
    t2 = clock()
    return Batch(calls, (t1 - t0) / calls, (t2 - t0) / calls)
