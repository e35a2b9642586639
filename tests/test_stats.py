"""Statistics of raw samples: the median CI, the noisy flag, and ratio CIs with and without pairing."""

import math

import numpy as np
import pytest

from bench import stats


def test_median_ci_uses_order_statistics():
    x = list(range(1, 101))  # 1..100, median 50.5
    lo, hi = stats.median_ci(x)
    assert lo < 50.5 < hi
    assert (lo, hi) == (41.0, 61.0)  # ranks 40 and 60 (0-based) for n=100 at 95%
    assert math.isnan(stats.median_ci([1, 2, 3, 4, 5, 6, 7])[0])  # too few for 95%
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


def test_signed_rank_critical_values_are_the_published_ones():
    """Wilcoxon signed-rank, two-sided 5%: the table's critical values (n = 6..25), and the normal
    approximation where counting stops (it agrees with counting at 40, 50 and 60 values)."""
    table = {6: 0, 7: 2, 8: 3, 9: 5, 10: 8, 11: 10, 12: 13, 15: 25, 20: 52, 25: 89}
    assert {n: stats.signed_rank_critical(n) for n in table} == table
    assert stats.signed_rank_critical(5) == 0 and stats.signed_rank_critical(61) > stats.signed_rank_critical(60)


def test_round_ratio_ci_pairs_rounds_covers_and_shrugs_off_one_disturbed_round():
    rounds = np.repeat(np.arange(12), 3)
    drift = np.repeat(np.linspace(1.0, 3.0, 12), 3)  # the machine slows 3x over the run, both sides alike
    ratio, lo, hi = stats.round_ratio_ci(0.0105 * drift, 0.010 * drift, rounds, rounds)
    assert ratio == lo == hi == pytest.approx(1.05)
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(400):  # heavy-tailed, symmetric noise round to round, one call a round, 12 rounds
        b, a = (np.exp(rng.standard_t(3, 12) * 0.05) for _ in range(2))
        ratio, lo, hi = stats.round_ratio_ci(1.05 * a, b, range(12), range(12))
        hits += lo <= 1.05 <= hi
    assert 0.92 <= hits / 400 <= 0.99
    calm = np.exp(np.random.default_rng(3).normal(0, 0.02, 12))
    hit = calm.copy()
    hit[4] *= 3.0  # a neighbour took the core for one of the candidate's calls
    quiet, loud = (
        stats.round_ratio_ci(calm, np.ones(12), range(12), range(12)),
        stats.round_ratio_ci(hit, np.ones(12), range(12), range(12)),
    )
    width = {
        name: math.log(hi / lo) for name, (_, lo, hi) in (("quiet", quiet), ("loud", loud), ("t", stats.log_t_ci(hit)))
    }
    # the disturbed round moves the interval's end a few pairwise means along (under 2x wider), not by its size:
    # a t interval over the same log-ratios widens 10x (0.04 -> 0.40)
    assert width["loud"] < 2 * width["quiet"] and width["t"] > 4 * width["loud"], width
    assert math.isnan(stats.round_ratio_ci([1.0], [1.0], [0], [0])[0])  # one shared round: none
    assert math.isnan(stats.round_ratio_ci([1.0, 2.0], [1.0, 2.0], [0, 1], [5, 6])[0])  # no round shared


def test_round_medians_are_each_rounds_median():
    """The per-round medians computed for every round at once are np.median's of each round."""
    rng = np.random.default_rng(3)
    samples = rng.lognormal(0, 0.2, 60)
    rounds = rng.integers(0, 9, 60)
    seen, medians = stats.round_medians(samples, rounds)
    assert list(seen) == sorted(set(rounds.tolist()))
    assert medians == pytest.approx([np.median(samples[rounds == r]) for r in seen])
