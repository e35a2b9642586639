"""The timing core: phases of one case (trace, first call, steady state) on an injected clock and
sync. Imports no framework, so tests drive it with a fake clock and assert exact numbers."""
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class FirstCall:
    trace_s: float | None   # building the graph only (None where nothing is traced: eager)
    first_call_s: float     # the first real call and its sync: graph optimisation or XLA compile, plus one run
    result: object          # what the first call returned, for the correctness check


def first_call(call, sync, trace=None, clock=time.perf_counter):
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
    warmup_s: tuple         # untimed-for-statistics calls before sampling (kept, to show settling)
    samples_s: tuple        # one wall-clock time per call, each call followed by a sync


def steady(call, sync, warmup=3, min_samples=10, max_samples=200, budget_s=2.0, clock=time.perf_counter):
    """Time `call` (then `sync`) repeatedly: `warmup` calls, then samples until at least
    `min_samples` are taken and `budget_s` has passed, or `max_samples` are taken."""
    def timed():
        t0 = clock()
        call()
        sync()
        return clock() - t0

    warm = tuple(timed() for _ in range(warmup))
    samples = []
    start = clock()
    while len(samples) < max_samples and (len(samples) < min_samples or clock() - start < budget_s):
        samples.append(timed())
    return Steady(warm, tuple(samples))
