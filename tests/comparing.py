"""The comparison as tests call it: records of two sides and the old keyword shapes (a threshold,
paired=, run_sd=) mapped onto bench.compare's How, the pairing taken as the command line takes it
(process pairs where paired, else from the records' run ids)."""

from collections.abc import Sequence

from bench import compare
from bench.compare import PROCESSES, Comparison, How, Result, Thresholds
from bench.noise import Noise


def _pairing(base, cand, paired):
    if paired:
        return PROCESSES
    return compare.pairing_between([r for r in base if r is not None], [r for r in cand if r is not None])


def case(
    base: Sequence,
    cand: Sequence,
    threshold: float = 0.10,
    paired: bool = False,
    run_sd: float | None = None,
    same_run_sd: float | None = None,
    scale=None,
) -> Comparison:
    how = How(
        _pairing(base, cand, paired), Thresholds(threshold), Noise(run_sd=run_sd, same_run_sd=same_run_sd), scale=scale
    )
    return compare.compare_case(base, cand, how)


def sides(
    base: Sequence,
    cand: Sequence,
    thresholds: Thresholds | None = None,
    allow_mismatch: bool = False,
    paired: bool = False,
    run_sd: float | None = None,
    same_run_sd: float | None = None,
    allow_missing: bool = True,
) -> Result:
    """allow_missing: True, as before cases only the base has failed a comparison (tests of that say so)."""
    flat = ([r for rs in base if rs for r in rs], [r for rs in cand if rs for r in rs]) if paired else (base, cand)
    how = How(
        _pairing(*flat, paired),
        thresholds or Thresholds(),
        Noise(run_sd=run_sd, same_run_sd=same_run_sd),
        allow_mismatch=allow_mismatch,
        allow_missing=allow_missing,
    )
    return compare.compare(base, cand, how)
