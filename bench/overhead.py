"""The harness's own cost: one case timed in the run engine's interleaved rounds and by the timing
core's plainest loop (timing.steady: the timer around each call and its sync, nothing else),
alternately, so their ratio (the one comparison, paired by round) shows what the rounds'
bookkeeping adds (it should be ~1.00)."""

from collections.abc import Callable

from bench import timing
from bench.compare import ROUNDS, Measurement, estimate


def compare(
    call: Callable[[], object],
    sync: Callable[[], object],
    rounds: int = 10,
    per_round: int = 5,
    timer: timing.Timer | None = None,
) -> tuple[list[float], list[float], tuple[float, float, float]]:
    """(harness samples, plain samples, (ratio, lo, hi)): `rounds` rounds, each taking `per_round`
    samples with the run engine's rounds and then with the plain loop (order alternating by round)."""
    harness: list[float] = []
    plain: list[float] = []
    r_h: list[int] = []
    r_p: list[int] = []
    for r in range(rounds):
        order = ("harness", "plain") if r % 2 == 0 else ("plain", "harness")
        for who in order:
            if who == "harness":
                got = timing.interleaved(
                    {0: timing.taker(call, sync, timer)},
                    timing.Rounds(
                        min_samples=per_round,
                        min_rounds=per_round,
                        max_samples=per_round,
                        budget_s=float("inf"),
                        round_s=0.0,
                    ),
                )[0].samples_s
                harness += got
                r_h += [r] * len(got)
            else:
                got = timing.steady(
                    call, sync, warmup=0, min_samples=per_round, max_samples=per_round, budget_s=0.0, timer=timer
                ).samples_s
                plain += got
                r_p += [r] * len(got)
    e = estimate(
        [Measurement(tuple(plain), tuple(r_p), "overhead")],
        [Measurement(tuple(harness), tuple(r_h), "overhead")],
        ROUNDS,
    )
    return harness, plain, (e.ratio, e.lo, e.hi)
