"""The machine's canary: a fixed computation, timed once a round in the rounds the cases are timed
in (bench/timing.py interleaved), that no change to the steps or the frameworks touches: NumPy
elementwise work and a reduction on a fixed seeded array, single-threaded (no BLAS, so no thread
setting moves it), in the run's own process. A run whose cases and canary are slow together was
a slow machine, not slower code: the history scales by it (bench/history/series.py)."""

import time
from collections.abc import Callable

from bench import timing

SIZE = 1 << 15  # float64 elements: 256 KiB, held in a core's cache, so memory traffic barely counts
# Passes a call: a few ms, longer than the scheduler's time slice (a call within one slice mostly runs
# through, whatever other processes do, and would not see them), short next to a round.
REPEATS = 16


def work() -> Callable[[], float]:
    """The canary's call: the same arithmetic on the same numbers every time (seed 0)."""
    import numpy as np

    x = np.random.default_rng(0).random(SIZE) + 0.5
    y = np.empty_like(x)

    def call() -> float:
        total = 0.0
        for _ in range(REPEATS):
            np.multiply(x, x, out=y)
            np.sqrt(y, out=y)
            np.log(y, out=y)
            total += float(y.sum())
        return total

    return call


def take(clock: timing.Clock = time.perf_counter) -> timing.Take:
    """The canary as a Take (timing.taker): nothing to sync, the host clock around each call."""
    return timing.taker(work(), lambda: None, clock=clock)
