"""Statistics of raw samples: the median CI, the noisy flag, and ratio CIs with and without pairing."""
import math

import numpy as np

from bench import stats


def test_median_ci_uses_order_statistics():
    x = list(range(1, 101))               # 1..100, median 50.5
    lo, hi = stats.median_ci(x)
    assert lo < 50.5 < hi
    assert (lo, hi) == (41.0, 61.0)       # ranks 40 and 60 (0-based) for n=100 at 95%
    assert math.isnan(stats.median_ci([1, 2, 3, 4, 5, 6, 7])[0])   # too few for 95%
    assert stats.ci_half_width_fraction([5.0] * 8) == 0.0
    assert stats.ci_half_width_fraction([5.0] * 7) == math.inf


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = sum(lo <= 1.0 <= hi for lo, hi in (stats.median_ci(rng.lognormal(0, 0.3, 40)) for _ in range(400)))
    assert 0.92 <= hits / 400 <= 0.995


def test_noisy_flag():
    assert not stats.is_noisy([1.0, 1.01, 0.99, 1.02])
    assert stats.is_noisy([1.0, 1.3, 0.8, 1.2])


def test_pairing_needs_enough_shared_rounds():
    assert stats.can_pair(range(6), range(6))
    assert not stats.can_pair(range(5), range(5))
    assert not stats.can_pair(range(6), range(10, 16))


def test_paired_ratio_ci_cancels_drift():
    """Both cases slow down together round by round; pairing sees the steady 2x ratio."""
    rng = np.random.default_rng(1)
    drift = np.repeat(np.linspace(1.0, 3.0, 20), 3)
    rounds = np.repeat(np.arange(20), 3)
    a = 2.0 * drift * rng.normal(1, 0.01, 60)
    b = 1.0 * drift * rng.normal(1, 0.01, 60)
    ratio, lo, hi = stats.ratio_ci(a, b, paired=(rounds, rounds))
    _, ulo, uhi = stats.ratio_ci(a, b)
    assert lo <= ratio <= hi and lo <= 2.0 <= hi
    assert (hi - lo) < (uhi - ulo) / 3


def test_ratio_ci_falls_back_to_unpaired_with_few_rounds():
    a, b = [2.0, 2.2, 1.9, 2.1], [1.0, 1.1, 0.9, 1.05]
    assert stats.ratio_ci(a, b, paired=([0, 0, 1, 1], [0, 0, 1, 1])) == stats.ratio_ci(a, b)
