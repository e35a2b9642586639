"""The timing core, the one every command times with (run, scale, overhead, the probe): phases of
one case (trace, first call, steady state), interleaved rounds of several cases, a batch with one
sync, each call measured by a timer (the host clock around the call and its sync, or a device's own
timer from the framework's contract) on an injected clock and sync. Imports no framework, so tests
drive it with a fake clock and assert exact numbers."""
import gc
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from bench import defaults

Clock = Callable[[], float]
_K = TypeVar("_K")


class Timer(Protocol):
    """What times each call: HOST, or a framework's device timer (bench/frameworks/base.py, Framework.timer)."""
    name: str

    def measure(self, call: Callable[[], object], sync: Callable[[], object], clock: Clock) -> tuple[float, float]: ...


@dataclass(frozen=True)
class FirstCall:
    trace_s: float | None   # building the graph only (None where nothing is traced: eager)
    first_call_s: float     # the first real call and its sync: graph optimisation or XLA compile, plus one run
    result: Any             # what the first call returned, for the correctness check


def first_call(call: Callable[[], Any], sync: Callable[[], object], trace: Callable[[], object] | None = None,
               clock: Clock = time.perf_counter) -> FirstCall:
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
    warmup_s: tuple         # calls before sampling, not in the statistics (kept, to show settling)
    samples_s: tuple        # one time per call by the timer, each call followed by a sync
    host_s: tuple = ()      # the host clock around each sampled call and its sync, where the timer is another


def steady(call: Callable[[], object], sync: Callable[[], object], *, warmup: int, min_samples: int, max_samples: int,
           budget_s: float, clock: Clock = time.perf_counter, timer: Timer | None = None,
           before: Callable[[], object] | None = None) -> Steady:
    """Time `call` (then `sync`) repeatedly by `timer` (the host clock by default): `warmup` calls,
    then samples until at least `min_samples` are taken and `budget_s` of host time has passed, or
    `max_samples` are taken. before(), when given, runs untimed before each call (a cache flush, a
    barrier between processes)."""
    timer = timer or HOST
    warm: list[float] = []
    samples: list[float] = []
    hosts: list[float] = []
    spent = 0.0
    collecting = gc.isenabled()
    gc.disable()   # as in taker(): a collection is not the step's
    try:
        for i in range(warmup + max_samples):
            if i >= warmup and len(samples) >= min_samples and spent >= budget_s:
                break
            if before:
                before()
            dt, host = timer.measure(call, sync, clock)
            if i < warmup:
                warm.append(dt)
                continue
            samples.append(dt)
            hosts.append(host)
            spent += host
    finally:
        if collecting:
            gc.enable()
    return Steady(tuple(warm), tuple(samples), tuple(hosts) if timer is not HOST else ())


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
    starts: tuple[float, ...]      # the clock when each call began (to place telemetry readings)
    samples_s: tuple[float, ...]   # one time per call by the case's timer
    host_s: tuple[float, ...]      # the host clock around each call and its sync; () where that is the timer


Take = Callable[[int], Taken]      # take(count): time `count` calls of one case


def taker(call: Callable[[], object], sync: Callable[[], object], timer: Timer | None = None,
          flush: Callable[[], object] | None = None, clock: Clock = time.perf_counter) -> Take:
    """The Take of one case in this process: each call (then `sync`) measured by `timer` (the host
    clock by default), after flush() where given (untimed: a cold-cache sample), with Python's
    garbage collector off meanwhile (as timeit and pytest-benchmark do: a collection is not the step's)."""
    timer = timer or HOST

    def take(count: int) -> Taken:
        starts, samples, hosts = [], [], []
        collecting = gc.isenabled()
        gc.disable()
        try:
            for _ in range(count):
                if flush:
                    flush()
                starts.append(clock())
                dt, host = timer.measure(call, sync, clock)
                samples.append(dt)
                hosts.append(host)
        finally:
            if collecting:
                gc.enable()
        return Taken(tuple(starts), tuple(samples), tuple(hosts) if timer is not HOST else ())
    return take


@dataclass(frozen=True)
class Sampled:
    samples_s: tuple        # one time per call by the case's timer (device time where it has one)
    rounds: tuple           # the round of each sample; samples of one round across cases are paired
    stop_reason: str        # "ci": the median's 95% CI is within +-target; "budget"; "max_samples";
                            # "interrupted": stopped from outside (a signal) with what it had;
                            # "failed": a take measured nothing (a worker process died)
    host_s: tuple = ()      # the host-clock time of each call and its sync, where the timer is another
    starts: tuple = ()      # the clock when each call began (to place telemetry readings)
    canary_s: tuple = ()    # the canary's time in each round the case was sampled in (interleaved's `canary`)


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


def interleaved(cases: Mapping[_K, Take], clock: Clock = time.perf_counter,
                target_ci: float = defaults.TARGET_CI, min_samples: int = defaults.MIN_SAMPLES,
                min_rounds: int = defaults.MIN_ROUNDS, max_samples: int = defaults.MAX_SAMPLES,
                budget_s: float = defaults.BUDGET_S, round_s: float = defaults.ROUND_S,
                per_call_s: Mapping[_K, float] | None = None,
                on_round: Callable[[int, dict[_K, str], dict[_K, float]], object] | None = None,
                stop: Callable[[], bool] | None = None,
                checkpoint: Callable[[dict[_K, Sampled]], object] | None = None,
                checkpoint_s: float = defaults.CHECKPOINT_S, budget_rounds: int = 0,
                blocks: Mapping[_K, Hashable] | None = None, canary: Take | None = None) -> dict[_K, Sampled]:
    """Time several cases in rounds (A B C, C B A, B C A, A C B, ...) so machine drift hits all
    alike and no case always follows the same other.

    blocks: {key: the process that runs it}: the cases of one process run together (a switch to
    another process costs its threads waking, its caches refilling), and each block's order is
    rotated on its own. The take right after a switch (and the first take of all) makes one call
    more and drops it: that call pays for the switch. In ten default one-process gates beside a
    CPU-bound neighbour (2-core VM), the first call after a switch took 10% longer than its take's
    later calls (median; 14% mean) and the second 0.5% longer; in five more, a round where one
    side of a case came first after a switch moved that case's ratio by 4-9% (-1.2% to +1.0% with
    the call dropped), on the one or two cases the few rotations of a 12-24-round gate put there.

    cases: {key: take} (a Take: taker() in this process, or a worker's: bench/run/worker.py). Each
    round takes each active case's calls enough times to fill about `round_s` (at least once, at
    most 50): in the first round by `per_call_s[key]` (e.g. from warm-up), then by the median of the
    case's own samples so far. A warm-up call slowed by a neighbour would otherwise set one call a
    round for good, and two sides of a comparison paired by round, one at 1 call a round (each one
    the first after a switch, paying for it) and one at 50, differ by that cost, not by their code
    (an A/A of identical steps in one process was judged regressed by 20%). A case stops when its
    median's 95% CI is within +-target_ci of the median (after min_samples samples and min_rounds
    rounds), when it has spent `budget_s` of host time in timed calls (and has at least MIN_SPREAD_SAMPLES samples, so a
    spread exists, and `budget_rounds` rounds, so it pairs by round), or at max_samples.
    on_round(round, stopped, spent) is called after each round with {key: stop reason} of the
    cases stopped so far and {key: host seconds of timed calls} of every case.

    stop() is asked after every take (a round's calls of one case, about round_s): when it is
    true, sampling ends there and the cases not done stop with reason "interrupted", keeping what
    they have. checkpoint({key: Sampled}) receives the samples so far (reason "interrupted" where
    not done) every `checkpoint_s` of clock time, so whoever keeps them loses at most that much
    timing if the process is killed.

    canary: a fixed computation (bench/canary.py) timed by one call at the start of each round,
    before the round's first case and outside its order, so the cases' rotation and pairing are as
    without it; each case's Sampled.canary_s holds its times in the rounds that case was sampled in:
    what the machine was doing while it was timed."""
    from bench.stats import ci_half_width_fraction

    keys = list(cases)
    per_call_s = per_call_s or {}

    def filling(per_call: float | None) -> int:
        return max(1, min(50, int(round_s / per_call))) if per_call else 1

    calls_per_round = {k: filling(per_call_s.get(k)) for k in keys}
    samples: dict[_K, list[float]] = {k: [] for k in keys}
    hosts: dict[_K, list[float]] = {k: [] for k in keys}
    device_timed: set[_K] = set()   # the cases whose timer is not the host clock
    starts: dict[_K, list[float]] = {k: [] for k in keys}
    rounds: dict[_K, list[int]] = {k: [] for k in keys}
    spent = dict.fromkeys(keys, 0.0)
    done: dict[_K, str] = {}
    canary_by_round: dict[int, float] = {}

    def so_far():
        return {k: Sampled(tuple(samples[k]), tuple(rounds[k]), done.get(k, "interrupted"),
                           tuple(hosts[k]) if k in device_timed else (), tuple(starts[k]),
                           tuple(canary_by_round[q] for q in dict.fromkeys(rounds[k]) if q in canary_by_round))
                for k in keys}

    last_checkpoint = clock()
    r = 0
    last_block: object = _NONE   # the block of the last take (none yet): a take in another follows a switch
    while len(done) < len(keys):
        active = [k for k in keys if k not in done]
        if canary is not None:
            canary_by_round[r] = canary(1).samples_s[0]
        order = _rotated(active, r // 2, blocks)
        # rotated every other round, and reversed every other: each case goes first in turn, and
        # each pair of cases runs in both orders (a rotation alone keeps A right before B, so B
        # would always find A's data in the caches)
        for k in (order if r % 2 == 0 else order[::-1]):
            count = min(calls_per_round[k], max_samples - len(samples[k]))
            if count <= 0:
                continue
            block = blocks.get(k) if blocks is not None else last_block   # one process: no switch
            got = _after_switch(cases[k](count + 1)) if block != last_block else cases[k](count)
            last_block = block
            if not got.samples_s:   # it measured nothing (its worker died): it is done
                done[k] = "failed"
                continue
            if got.host_s:
                device_timed.add(k)
            samples[k] += got.samples_s
            hosts[k] += got.host_s or got.samples_s
            starts[k] += got.starts
            rounds[k] += [r] * len(got.samples_s)
            spent[k] += sum(got.host_s or got.samples_s)
            if stop and stop():
                return so_far()
            if checkpoint and clock() - last_checkpoint >= checkpoint_s:
                checkpoint(so_far())
                last_checkpoint = clock()
        r += 1
        for k in active:
            n = len(samples[k])
            if k in per_call_s and n:
                calls_per_round[k] = filling(statistics.median(samples[k]))
            if n >= min_samples and r >= min_rounds and ci_half_width_fraction(samples[k]) <= target_ci:
                done[k] = "ci"
            elif spent[k] >= budget_s and n >= min(MIN_SPREAD_SAMPLES, max_samples) and r >= budget_rounds:
                done[k] = "budget"
            elif n >= max_samples:
                done[k] = "max_samples"
        if on_round:
            on_round(r, dict(done), dict(spent))
    return so_far()


_NONE = object()


def _after_switch(got: Taken) -> Taken:
    """A take's calls less its first, which paid for the switch to its process (interleaved)."""
    return Taken(got.starts[1:], got.samples_s[1:], got.host_s[1:])


@dataclass(frozen=True)
class Batch:
    calls: int
    dispatch_s: float       # per call: host time until the last call returned, before the sync
    batch_s: float          # per call: the whole batch including one sync at the end


def batched(call: Callable[[], object], sync: Callable[[], object], calls: int,
            clock: Clock = time.perf_counter) -> Batch:
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
