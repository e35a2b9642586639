"""The harness's own cost: one case timed by the harness's engine and by a bare perf_counter loop,
alternately, so the ratio of their medians shows what the harness adds (it should be ~1.00)."""
import time

from bench import stats, timing


def bare_loop(call, sync, count):
    """The simplest honest timing: perf_counter around each call and its sync."""
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        sync()
        samples.append(time.perf_counter() - t0)
    return samples


def compare(call, sync, rounds=10, per_round=5):
    """(harness samples, bare samples, (ratio, lo, hi)): `rounds` rounds, each taking `per_round`
    samples with the harness engine and then with the bare loop (order alternating by round)."""
    harness, bare, r_h, r_b = [], [], [], []
    for r in range(rounds):
        order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
        for who in order:
            if who == "harness":
                got = timing.interleaved({0: (call, sync)}, min_samples=per_round, min_rounds=per_round,
                                         max_samples=per_round, budget_s=float("inf"), round_s=0.0)[0].samples_s
                harness += got
                r_h += [r] * len(got)
            else:
                got = bare_loop(call, sync, per_round)
                bare += got
                r_b += [r] * len(got)
    return harness, bare, stats.ratio_ci(harness, bare, paired=(r_h, r_b))
