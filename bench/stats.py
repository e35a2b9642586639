"""Statistics of raw samples, shared by the timing engine, reports and the gate: NumPy and the
standard library (SciPy only for the Student t quantile, imported where used).

Medians, not means: timing noise is one-sided (a call is delayed, never sped up), so a median
is robust where a mean is dragged by outliers."""

import functools
import math
from collections.abc import Sequence

import numpy as np

NOISY_IQR_FRACTION = 0.10  # a case whose IQR exceeds 10% of its median is flagged noisy
# Pair by round only with at least this many shared rounds: with fewer, resampling rounds gives a
# handful of distinct outcomes (2 rounds gave a CI that excluded its own ratio), so samples are
# resampled independently instead.
PAIRED_MIN_ROUNDS = 6

Samples = Sequence[float] | np.ndarray


def median(samples: Samples) -> float:
    return float(np.median(samples))


def quartiles(samples: Samples) -> tuple[float, float]:
    q1, q3 = np.percentile(samples, [25, 75])
    return float(q1), float(q3)


def iqr(samples: Samples) -> float:
    q1, q3 = quartiles(samples)
    return q3 - q1


def median_ci(samples: Samples, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics (binomial),
    (nan, nan) when there are too few samples (fewer than min_ci_samples(level): 8 at 95%)."""
    x = np.sort(np.asarray(samples, float))
    n = len(x)
    if n == 0:
        return (math.nan, math.nan)
    z = _z(level)
    half = z * math.sqrt(n) / 2
    lo = int(math.floor(n / 2 - half))
    hi = int(math.ceil(n / 2 + half))
    if lo < 0 or hi > n - 1:
        return (math.nan, math.nan)
    return (float(x[lo]), float(x[hi]))


def min_ci_samples(level: float = 0.95) -> int:
    """The fewest samples for which median_ci gives an interval at `level`."""
    return next(n for n in range(1, 1000) if not math.isnan(median_ci(range(n), level)[0]))


def ci_half_width_fraction(samples: Samples, level: float = 0.95) -> float:
    """The median CI's half-width as a fraction of the median (inf until it can be computed)."""
    lo, hi = median_ci(samples, level)
    if math.isnan(lo):
        return math.inf
    return (hi - lo) / 2 / median(samples)


def is_noisy(samples: Samples) -> bool:
    return len(samples) > 0 and iqr(samples) > NOISY_IQR_FRACTION * median(samples)


BOOTSTRAP_CELLS = 2_000_000  # resampled values held at once: bootstrap memory is bounded whatever the sample count


def _resampled_medians(x, group, counts):
    """The median of `x` with each value taken counts[k, group[value]] times, for every row k of
    `counts` (k resamples x G groups): np.median of the resampled concatenation, computed as a
    weighted median over x sorted once, so no resample is ever materialised."""
    order = np.argsort(x, kind="stable")
    xs, weights = x[order], counts[:, group[order]]
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    lower = np.argmax(cum >= ((total + 1) // 2)[:, None], axis=1)  # rank ceil(T/2), 1-based
    upper = np.argmax(cum >= (total // 2 + 1)[:, None], axis=1)  # rank T/2 + 1 (the same for odd T)
    return (xs[lower] + xs[upper]) / 2


def _resample_counts(rng, k, groups):
    """(k, groups) counts of each group in k resamples of `groups` groups with replacement."""
    picks = rng.integers(0, groups, (k, groups)) + (np.arange(k) * groups)[:, None]
    return np.bincount(picks.ravel(), minlength=k * groups).reshape(k, groups)


def _bootstrap(x, group, groups, n_boot, rng):
    """n_boot resampled medians of x, resampling its `groups` (ids 0..groups-1 in `group`) with
    replacement, in chunks of at most BOOTSTRAP_CELLS values."""
    out = np.empty(n_boot)
    chunk = max(1, BOOTSTRAP_CELLS // max(len(x), groups))
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        out[start : start + k] = _resampled_medians(x, group, _resample_counts(rng, k, groups))
    return out


def ratio_ci(
    a: Samples,
    b: Samples,
    paired: tuple[Samples, Samples] | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """median(a) / median(b) with a bootstrap confidence interval: (ratio, lo, hi).

    paired: sequences of round ids, one per sample of a and of b. When given and they share
    PAIRED_MIN_ROUNDS rounds (see can_pair), rounds are resampled together (a sample of a and of b
    taken in the same round share the machine's state then, so drift cancels); otherwise a and b
    are resampled independently. Memory is bounded (BOOTSTRAP_CELLS) whatever the sample count."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ratio = median(a) / median(b)
    rng = np.random.default_rng(seed)
    if paired is not None and can_pair(*paired):
        ra, rb = np.asarray(paired[0]), np.asarray(paired[1])
        rounds = np.intersect1d(ra, rb)
        keep_a, keep_b = np.isin(ra, rounds), np.isin(rb, rounds)
        ga, gb = np.searchsorted(rounds, ra[keep_a]), np.searchsorted(rounds, rb[keep_b])
        ratio = median(a[keep_a]) / median(b[keep_b])  # the estimate from the samples the interval rests on
        boots = np.empty(n_boot)
        chunk = max(1, BOOTSTRAP_CELLS // max(keep_a.sum(), keep_b.sum(), len(rounds)))
        for start in range(0, n_boot, chunk):
            k = min(chunk, n_boot - start)
            counts = _resample_counts(rng, k, len(rounds))
            boots[start : start + k] = _resampled_medians(a[keep_a], ga, counts) / _resampled_medians(
                b[keep_b], gb, counts
            )
    else:
        boots = _bootstrap(a, np.arange(len(a)), len(a), n_boot, rng) / _bootstrap(
            b, np.arange(len(b)), len(b), n_boot, rng
        )
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    # A percentile interval of a median over few rounds of several calls each can miss the estimate
    # itself (the resampled medians take few distinct values): widened to hold it, never narrowed.
    return (ratio, float(min(lo, ratio)), float(max(hi, ratio)))


def round_ratio_ci(
    a: Samples, b: Samples, rounds_a: Samples, rounds_b: Samples, level: float = 0.95
) -> tuple[float, float, float]:
    """(ratio, lo, hi) of a over b, two cases timed in the same rounds of one run: each shared
    round's log-ratio (the log of median(a's samples in it) / median(b's)), their Hodges-Lehmann
    estimate (the median of the pairwise means of the log-ratios) and its Wilcoxon signed-rank
    interval, back-transformed. The machine's state, shared by a round, divides out of its
    ratio; the interval is distribution-free, exact where the log-ratios are symmetric about
    their centre (so under no change at all: the two sides are then interchangeable), and a
    round another process disturbed moves its ends a few pairwise means along, not by its size (a t
    interval over the same ratios is widened by that round's whole size). Narrower than a bootstrap of
    the ratio of medians where a round holds one call a side, whose median resamples to few values.
    (nan, nan, nan) with fewer than 2 shared rounds."""
    rounds_a_seen, medians_a = round_medians(a, rounds_a)
    rounds_b_seen, medians_b = round_medians(b, rounds_b)
    _, in_a, in_b = np.intersect1d(rounds_a_seen, rounds_b_seen, return_indices=True)
    ratios = medians_a[in_a] / medians_b[in_b]
    if not (ratios > 0).all():  # a time at or below zero is no measurement: no interval
        return (math.nan, math.nan, math.nan)
    logs = np.log(ratios)
    n = len(logs)
    if n < 2 or not np.isfinite(logs).all():
        return (math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((logs[i] + logs[j]) / 2)  # n(n+1)/2 pairwise means, each log-ratio with itself included
    c = signed_rank_critical(n, level)
    centre = float(np.median(walsh))
    return (math.exp(centre), math.exp(walsh[c]), math.exp(walsh[len(walsh) - 1 - c]))


def round_medians(samples: Samples, rounds: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(the rounds, in order, the median of each round's samples): np.median's value for each,
    computed for every round at once (a report compares thousands of cases)."""
    x, r = np.asarray(samples, float), np.asarray(rounds).astype(np.int64)
    order = np.lexsort((x, r))
    xs, rs = x[order], r[order]
    seen, start, counts = np.unique(rs, return_index=True, return_counts=True)
    return seen, (xs[start + (counts - 1) // 2] + xs[start + counts // 2]) / 2


@functools.lru_cache(maxsize=256)
def signed_rank_critical(n: int, level: float = 0.95) -> int:
    """How many of the sorted pairwise means to drop at each end for a `level` interval: the
    largest c with P(T <= c) <= (1 - level) / 2, T the Wilcoxon signed-rank statistic of n values
    under no shift (exact by counting up to 60 values, the normal approximation beyond); 0 where
    none is (under 6 values: the interval is then the whole range, coverage 1 - 2 / 2^n)."""
    alpha = (1 - level) / 2
    if n > 60:
        mean, sd = n * (n + 1) / 4, math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        return max(0, math.floor(mean - _z(level) * sd))  # equal to the exact count at 40, 50 and 60 values
    total = n * (n + 1) // 2
    ways = np.zeros(total + 1)
    ways[0] = 1
    for rank in range(1, n + 1):  # subsets of {1..n} by their sum: the null distribution of T
        ways[rank:] = ways[rank:] + ways[:-rank].copy()
    cdf = np.cumsum(ways) / 2.0**n
    return max(0, int(np.searchsorted(cdf, alpha, side="right")) - 1)  # the largest t with P(T <= t) <= alpha


def can_pair(rounds_a: Samples, rounds_b: Samples) -> bool:
    """Whether two cases share enough rounds for ratio_ci to pair them."""
    return len(np.intersect1d(np.asarray(rounds_a), np.asarray(rounds_b))) >= PAIRED_MIN_ROUNDS


def _z(level):
    """Two-sided standard normal quantile for `level` (no SciPy needed)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def between_runs(
    ratio: float, lo: float, hi: float, run_sd: float, n_a: int = 1, n_b: int = 1, level: float = 0.95
) -> tuple[float, float, float]:
    """The interval (lo, hi) of a ratio of two separate runs' medians widened by the machine's
    run-to-run noise: one run's samples say nothing of where the next run's median lands, so an
    unpaired ratio is only as sure as that noise allows (run_sd: the sd of the log of a run's
    median; n_a, n_b: runs averaged on each side)."""
    return widen(ratio, lo, hi, run_sd * math.sqrt(1 / n_a + 1 / n_b), level)


def widen(ratio: float, lo: float, hi: float, sd: float, level: float = 0.95) -> tuple[float, float, float]:
    """The interval (lo, hi) of `ratio` widened by an independent error of sd `sd` in its log (the
    half-widths add in quadrature)."""
    within = math.log(hi / lo) / 2 if lo > 0 and hi > 0 else 0.0
    half = math.hypot(within, _z(level) * sd)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)


def log_t_ci(ratios: Samples, level: float = 0.95) -> tuple[float, float, float]:
    """(geometric mean, lo, hi) of positive paired `ratios`: a Student t interval over their
    logarithms. Exact coverage for log-normal ratios, and close to it for few pairs, where a
    percentile bootstrap of 4-8 values is too narrow. (nan, nan, nan) with fewer than 2."""
    from scipy.stats import t

    logs = np.log(np.asarray(ratios, float))
    n = len(logs)
    if n < 2 or not np.isfinite(logs).all():
        return (math.nan, math.nan, math.nan)
    mean, half = logs.mean(), t.ppf(0.5 + level / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n)
    return (math.exp(mean), math.exp(mean - half), math.exp(mean + half))


def log_welch_ci(a: Samples, b: Samples, level: float = 0.95) -> tuple[float, float, float]:
    """(ratio of geometric means a/b, lo, hi): Welch's t interval for the difference of the mean
    logarithms of two independent samples (run medians), back-transformed."""
    from scipy.stats import t

    la, lb = np.log(np.asarray(a, float)), np.log(np.asarray(b, float))
    if min(len(la), len(lb)) < 2 or not (np.isfinite(la).all() and np.isfinite(lb).all()):
        return (math.nan, math.nan, math.nan)
    va, vb = la.var(ddof=1) / len(la), lb.var(ddof=1) / len(lb)
    diff, se = la.mean() - lb.mean(), math.sqrt(va + vb)
    if se == 0:
        return (math.exp(diff), math.exp(diff), math.exp(diff))
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1)) if va + vb > 0 else len(la) + len(lb) - 2
    half = t.ppf(0.5 + level / 2, df) * se
    return (math.exp(diff), math.exp(diff - half), math.exp(diff + half))
