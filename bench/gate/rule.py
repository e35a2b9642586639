"""Comparing runs case by case: base and candidate medians, the ratio candidate/base with a 95%
confidence interval, and a verdict (regressed / improved / same) under per-case thresholds read
from pyproject.toml. Pure functions of records; the CLI and the gate print what they return."""
import fnmatch
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, overload

import tomllib

from bench import defaults, env, stats
from bench.records import CaseKey, Record

LEVEL = 0.95
PAIRED_BY_ROUND = "paired by round (Hodges-Lehmann over the rounds' log-ratios, Wilcoxon signed-rank interval)"
CONFIG_TABLE = ("tool", "backprop-bench", "gate")

# The rule, as one line for reports and the A/A file (a stored false-positive rate belongs to it).
RULE = ("regressed iff ratio > 1+t and CI low > 1+t/2; improved symmetrically in 1/ratio; same iff the CI lies "
        "within [1/(1+t), 1+t]; else inconclusive")


class CompareError(ValueError):
    """Input that cannot be compared (bad threshold, bad config, mismatched machines); one line."""


# ---------------------------------------------------------------- thresholds

def parse_threshold(value: str | float) -> float:
    """A threshold as a fraction: "10%" -> 0.1, or a number already a fraction (0.1).
    CompareError for anything else, and for fractions outside (0, 1] (write 150% for 1.5)."""
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise CompareError(f"bad threshold {value!r}: expected a percentage such as 10%") from None
    if not text.endswith("%") and fraction > 1:
        raise CompareError(f"bad threshold {value!r}: a bare number is a fraction; did you mean {text}%?")
    if not 0 < fraction < math.inf:
        raise CompareError(f"bad threshold {value!r}: must be above 0%")
    return fraction


DEFAULT_THRESHOLD = parse_threshold(defaults.GATE_THRESHOLD)


# What a change of a case's counters does to the verdict: "report" it only; "more-work" (the default):
# fail when the candidate does more work (counters.more_work) and its times do not show it the same
# or faster (the run could not rule out a slowdown beyond the threshold); "fail" on any change.
COUNTER_POLICIES = ("report", "more-work", "fail")
COUNTER_POLICY = "more-work"


@dataclass(frozen=True)
class Thresholds:
    """The default threshold and per-case overrides: (pattern, fraction) pairs matched with fnmatch
    against "framework/step/backend/device"; the first pattern that matches wins. The same for what
    a change of a case's counters does (COUNTER_POLICIES)."""
    default: float = DEFAULT_THRESHOLD
    overrides: tuple = ()
    counters: str = COUNTER_POLICY
    counter_overrides: tuple = ()

    def for_key(self, key: str) -> float:
        for pattern, fraction in self.overrides:
            if fnmatch.fnmatchcase(key, pattern):
                return fraction
        return self.default

    def counters_for(self, key: str) -> str:
        for pattern, policy in self.counter_overrides:
            if fnmatch.fnmatchcase(key, pattern):
                return policy
        return self.counters


def load_thresholds(path: Path | str, default: str | float | None = None, explicit: bool = False) -> Thresholds:
    """Thresholds from `path` (a pyproject.toml), table [tool.backprop-bench.gate]:

        threshold = "10%"                    # the default
        counters = "more-work"               # a counter change: "report" it; fail when it adds work
                                             # and the times do not clear it ("more-work"); or "fail"
        [tool.backprop-bench.gate.thresholds]
        "tensorflow/*/eager/*" = "15%"      # per-case overrides, first match wins
        [tool.backprop-bench.gate.counters-by-case]
        "*/*/xla/*" = "fail"                 # per-case counter policies, first match wins

    A missing file or table gives the defaults, unless `explicit` (the user named the file: it
    must exist and be one). `default` (e.g. from --threshold) replaces the file's default; the
    overrides still apply. CompareError, naming the flag or the file, for anything unusable."""
    if default is not None:
        try:
            parse_threshold(default)
        except CompareError as e:
            raise CompareError(f"--threshold: {e}") from None
    path = Path(path)
    if explicit and not path.is_file():
        raise CompareError(f"--config {path}: {'is a folder' if path.is_dir() else 'no such file'}, "
                           "expected a pyproject.toml")
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"{path}: cannot read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return thresholds_from(text, str(path), default)


def thresholds_from(text: str | None, name: str, default: str | float | None = None) -> Thresholds:
    """Thresholds from the text of a pyproject.toml called `name` in messages (None: there is no
    file, so the defaults), as load_thresholds reads them from a file."""
    table = {}
    where = f"{name} [{'.'.join(CONFIG_TABLE)}]"
    if text is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CompareError(f"{name}: cannot read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        for depth, key in enumerate(CONFIG_TABLE):
            data = data.get(key, {})
            if not isinstance(data, dict):
                raise CompareError(f"{name}: [{'.'.join(CONFIG_TABLE[:depth + 1])}] must be a table, "
                                   f"got {type(data).__name__}")
        table = data
        known = {"threshold", "thresholds", "counters", "counters-by-case"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise CompareError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        fraction = parse_threshold(default if default is not None else table.get("threshold", DEFAULT_THRESHOLD))
        overrides = table.get("thresholds", {})
        if not isinstance(overrides, dict):
            raise CompareError("thresholds must be a table of pattern = \"N%\"")
        pairs = tuple((str(pattern), parse_threshold(value)) for pattern, value in overrides.items())
        policy = _counter_policy(table.get("counters", COUNTER_POLICY), "counters")
        by_case = table.get("counters-by-case", {})
        if not isinstance(by_case, dict):
            raise CompareError("counters-by-case must be a table of pattern = "
                               + " or ".join(f'"{p}"' for p in COUNTER_POLICIES))
        policies = tuple((str(pattern), _counter_policy(value, pattern)) for pattern, value in by_case.items())
    except CompareError as e:
        raise CompareError(f"{where}: {e}") from None
    return Thresholds(fraction, pairs, policy, policies)


def _counter_policy(value: Any, name: str) -> str:
    if value not in COUNTER_POLICIES:
        raise CompareError(f"{name}: {value!r} is not one of {', '.join(COUNTER_POLICIES)}")
    return value


# ---------------------------------------------------------------- the rule

def verdict(ratio: float, lo: float, hi: float, threshold: float) -> str:
    """'regressed', 'improved', 'same' or 'inconclusive' for ratio = candidate/base time with its CI
    [lo, hi].

    regressed: the point estimate is beyond the threshold (ratio > 1+t) AND the whole CI lies
    above 1+t/2. The first part alone is what flags noise on shared machines (pytest-benchmark's
    --benchmark-compare-fail=median:10% fired on 3 of 3 reruns of unchanged code here); "the CI
    excludes 1" alone flags real but negligible changes once samples are many. Asking the CI to
    clear half the threshold, not just 1, buys margin for the CI's own error at a small cost in
    power. improved: the same in the other direction, in ratio space (1/ratio > 1+t and 1/hi >
    1+t/2), so a 10% threshold means the same size of change both ways.
    same: neither, and the CI lies within [1/(1+t), 1+t]: the run rules out a change beyond the
    threshold either way. inconclusive: neither, and the CI reaches beyond: the run could not have
    told a change of the threshold's size from none (detectable() says what it could have seen)."""
    if any(v is None or math.isnan(v) for v in (ratio, lo, hi)):
        return "inconclusive"
    if ratio > 1 + threshold and lo > 1 + threshold / 2:
        return "regressed"
    if ratio < 1 / (1 + threshold) and hi < 1 / (1 + threshold / 2):
        return "improved"
    if lo >= 1 / (1 + threshold) and hi <= 1 + threshold:
        return "same"
    return "inconclusive"


def detectable(ratio: float, lo: float, hi: float, threshold: float) -> float:
    """The smallest slowdown (a fraction: 0.14 for +14%) this run's interval could have flagged:
    the rule needs ratio > 1+t and the CI's low end above 1+t/2, and an interval as wide as this one
    (its half-width in log space) around a true ratio R has its low end at R / exp(half). nan
    without an interval."""
    if any(v is None or math.isnan(v) or v <= 0 for v in (ratio, lo, hi)):
        return math.nan
    half = math.log(hi / lo) / 2
    return max(1 + threshold, (1 + threshold / 2) * math.exp(half)) - 1


# ---------------------------------------------------------------- comparing cases

@dataclass(frozen=True)
class Comparison:
    case: CaseKey              # Record.case
    label: str
    key: str                   # framework/step/backend/device (what per-case thresholds match)
    threshold: float
    verdict: str               # regressed / improved / same / inconclusive; failed (the candidate broke a case the
                               # base ran) or n/a (not timed on a side), with `note` saying why
    base_s: float | None = None        # medians; in stored mode scaled to the baseline's machine speed
    candidate_s: float | None = None
    ratio: float | None = None         # candidate/base
    lo: float | None = None
    hi: float | None = None
    method: str = ""           # how the CI was made
    note: str | None = None
    detectable: float = math.nan   # the smallest slowdown this comparison could have flagged (detectable())
    counters: tuple = ()       # what the two sides' counters differ in, exactly (bench/counters.py changes)
    counters_fail: str = ""    # why the counters fail the gate whatever the times say ("" where they do not):
                               # a change under "fail", or more work under "more-work" its times did not clear


def _usable(rec):
    """A timed record; one cut short by a signal only with enough samples for a median's CI."""
    if rec.status != "ok" or not rec.samples_s:
        return False
    return rec.stop_reason != "interrupted" or len(rec.samples_s) >= stats.min_ci_samples()


def _why_not(side, recs):
    if not recs:
        return f"no {side} record"
    r = next(r for r in recs if not _usable(r))
    if r.status == "ok" and r.samples_s:
        return f"{side} interrupted after {len(r.samples_s)} samples"
    return f"{side} {r.status}" + (f": {r.error}" if r.error else " (no samples)")


def _not_compared(made: Comparison, base: Sequence[Record], candidate: Sequence[Record]) -> Comparison:
    """The Comparison of a case one side could not time: "failed" where the base timed it and the
    candidate failed it (a wrong answer, an error: the change broke the case, which fails the gate),
    else "n/a", saying why."""
    if base and all(_usable(r) for r in base):
        if any(r.status == "failed" for r in candidate):
            return replace(made, verdict="failed", note=_why_not("candidate", candidate))
        return replace(made, note=_why_not("candidate", candidate))
    return replace(made, note=_why_not("base", base))


def compare_case(base: Sequence[Record | None], candidate: Sequence[Record | None], threshold: float,
                 paired: bool = False, scale: Callable[[Record], float] | None = None,
                 run_sd: float | None = None, same_run_sd: float | None = None) -> Comparison:
    """One Comparison from the records of one case on each side (lists, in group order).

    One record a side: the samples are compared, paired by `rounds` when both were measured in the
    same run (their rounds share the machine's state: stats.round_ratio_ci over the rounds'
    log-ratios), else bootstrapped independently.
    Several records a side (processes or runs): each record is reduced to its median. paired=True
    pairs record i of one side with record i of the other (the gate's A B A B process pairs): the
    ratio is the geometric mean of the per-pair ratios with a t interval over their logarithms
    (stats.log_t_ci), so drift between pairs cancels; a None entry is a process that failed, and
    drops its pair. Unpaired, three or more records a side: the ratio of the geometric means of the
    run medians with a Welch t interval; fewer are pooled and bootstrapped.
    scale(rec) -> factor multiplies a record's samples (stored mode's calibration); default 1.
    run_sd: the machine's run-to-run noise (sd of the log of a median between separate runs): an
    unpaired comparison of one or two runs a side has its interval widened by it (None: not).
    same_run_sd: what a comparison paired by round within one run misses (the sd of the log-ratio
    between one-process A/A runs beyond their intervals: experiments.extra_sd_of); such an
    interval is widened by it (None: not)."""
    first = next(r for r in (*candidate, *base) if r is not None)   # a failed process is None: any other names the case
    made = Comparison(case=first.case, label=first.label, key=first.case.name, threshold=threshold, verdict="n/a")
    scale = scale or (lambda rec: 1.0)
    if paired:
        pairs = [(b, c) for b, c in zip(base, candidate) if b is not None and c is not None]
        bad = [(b, c) for b, c in pairs if not (_usable(b) and _usable(c))]
        if bad:
            return _not_compared(made, [b for b, _ in bad], [c for _, c in bad])
        if len(pairs) < 2:
            return replace(made, note=f"{len(pairs)} complete pair(s); at least 2 are needed")
        base_m = [_median(b, scale) for b, _ in pairs]
        cand_m = [_median(c, scale) for _, c in pairs]
        # Per-pair ratios: a machine state shared by a pair divides out of its ratio, where a ratio
        # of the two sides' medians would still carry it. With 4 to 8 pairs a percentile bootstrap
        # of them covered about 90% where it said 95% (9 of 90 A/A intervals excluded 1); a t
        # interval over the log-ratios reaches its nominal coverage with few pairs.
        ratio, lo, hi = stats.log_t_ci([c / b for b, c in zip(base_m, cand_m)], level=LEVEL)
        method = f"t over {len(pairs)} process pairs' log-ratios"
    else:
        runs_b: list[Record] = [r for r in base if r is not None]
        runs_c: list[Record] = [r for r in candidate if r is not None]
        if not (runs_b and runs_c and all(_usable(r) for r in (*runs_b, *runs_c))):
            return _not_compared(made, runs_b, runs_c)
        if len(runs_b) == 1 and len(runs_c) == 1:
            b, c = runs_b[0], runs_c[0]
            bs, cs = _scaled(b, scale), _scaled(c, scale)
            same_run = b.run_id and b.run_id == c.run_id and len(b.rounds) == len(bs) and len(c.rounds) == len(cs)
            if same_run and stats.can_pair(c.rounds, b.rounds):
                ratio, lo, hi = stats.round_ratio_ci(cs, bs, c.rounds, b.rounds, level=LEVEL)
                method = PAIRED_BY_ROUND
                if same_run_sd:
                    ratio, lo, hi = stats.widen(ratio, lo, hi, same_run_sd, level=LEVEL)
                    method += f", widened by the one-process A/A spread (sd {same_run_sd:.3f} of the log-ratio)"
            else:
                ratio, lo, hi = stats.ratio_ci(cs, bs, level=LEVEL)
                method = "bootstrap over samples"
                if run_sd and b.run_id != c.run_id:   # one run's cases that cannot pair by round are not runs apart
                    ratio, lo, hi, method = _between_runs(ratio, lo, hi, method, run_sd, 1, 1)
            base_m, cand_m = [_median(b, scale)], [_median(c, scale)]
        elif min(len(runs_b), len(runs_c)) >= 3:
            base_m = [_median(r, scale) for r in runs_b]
            cand_m = [_median(r, scale) for r in runs_c]
            ratio, lo, hi = stats.log_welch_ci(cand_m, base_m, level=LEVEL)
            method = f"Welch t over {len(runs_b)} and {len(runs_c)} run medians' logarithms"
        else:
            bs = [s for r in runs_b for s in _scaled(r, scale)]
            cs = [s for r in runs_c for s in _scaled(r, scale)]
            ratio, lo, hi = stats.ratio_ci(cs, bs, level=LEVEL)
            base_m, cand_m = [stats.median(bs)], [stats.median(cs)]
            method = "bootstrap over pooled samples"
            if run_sd:
                ratio, lo, hi, method = _between_runs(ratio, lo, hi, method, run_sd, len(runs_b), len(runs_c))
        note, extra_cores = _load_note(runs_b, runs_c)
        made = replace(made, note=note)
        judged = verdict(ratio, lo, hi, threshold)
        if load_explains(judged, lo, hi, extra_cores):   # the load alone could make it: not a verdict on the code
            made = replace(made, note=f"{note}: up to x{1 + abs(extra_cores):.1f} from the load alone, so not "
                                      f"judged {judged}")
            judged = "inconclusive"
        seen = detectable(ratio, lo, hi, threshold)
        if extra_cores >= LOAD_APART:   # a slowdown is judged only once its interval clears what the load can cost
            seen = max(seen, (1 + extra_cores) * math.sqrt(hi / lo) - 1)
        return replace(made, base_s=stats.median(base_m), candidate_s=stats.median(cand_m), ratio=ratio, lo=lo,
                       hi=hi, method=method, verdict=judged, detectable=seen)
    return replace(made, base_s=stats.median(base_m), candidate_s=stats.median(cand_m), ratio=ratio, lo=lo, hi=hi,
                   method=method, verdict=verdict(ratio, lo, hi, threshold),
                   detectable=detectable(ratio, lo, hi, threshold))


# A machine's run-to-run noise: the sd of the log of a case's median between separate runs of
# unchanged code, where `gate --aa` / `--rates` has not measured it (this VM kind measured 0.16-0.17
# between processes minutes apart; a quiet benchmark machine a few hundredths).
DEFAULT_RUN_SD = defaults.RUN_SD


def _between_runs(ratio: float, lo: float, hi: float, method: str, run_sd: float, n_base: int,
                  n_candidate: int) -> tuple[float, float, float, str]:
    """stats.between_runs, with the method's text saying so."""
    ratio, lo, hi = stats.between_runs(ratio, lo, hi, run_sd, n_base, n_candidate, level=LEVEL)
    return ratio, lo, hi, f"{method}, widened by the run-to-run noise between separate runs (sd {run_sd:.0%} of a median)"


LOAD_APART = 0.5   # cores: two runs whose other processes kept this many more cores busy ran under different loads


def _busy(recs: Sequence[Record | None]) -> float | None:
    """The median of the records' other_cores (cores other processes kept busy while they were timed)."""
    got = [r.telemetry["other_cores"][0] for r in recs if r is not None and r.telemetry.get("other_cores")]
    return stats.median(got) if got else None


def _load_note(base: Sequence[Record | None], candidate: Sequence[Record | None]) -> tuple[str | None, float]:
    """(what to say, candidate's busy cores - base's) when the two sides ran under different loads:
    other processes' cores busy (CPU), from the records' telemetry; (None, 0) otherwise."""
    b, c = _busy(base), _busy(candidate)
    if b is not None and c is not None and abs(b - c) >= LOAD_APART:
        return (f"different load: other processes kept {b:.1f} cores busy in the base's run, {c:.1f} in the "
                "candidate's"), c - b
    return None, 0.0


def load_explains(verdict: str, lo: float, hi: float, extra_cores: float) -> bool:
    """Whether a regressed or improved verdict between separate runs could be the load alone: the
    side that was slower had `extra_cores` (>0: the candidate) more cores kept busy by other processes,
    and the interval reaches within the most that load can cost, a factor 1 + extra cores (a busy
    core at worst halves a thread that shares it, and a step waits for its slowest thread)."""
    if verdict == "regressed" and extra_cores >= LOAD_APART:
        return lo < 1 + extra_cores
    if verdict == "improved" and extra_cores <= -LOAD_APART:
        return hi > 1 / (1 - extra_cores)
    return False


def _median(rec, scale):
    """The record's median (its Summary's), at the scale of compare_case."""
    return rec.summary.median_s * scale(rec)


def _scaled(rec, scale):
    factor = scale(rec)
    return [s * factor for s in rec.samples_s]


def by_case(records: Iterable[Record]) -> dict[CaseKey, list[Record]]:
    """{case: [records in file order]}."""
    out = defaultdict(list)
    for r in records:
        out[r.case].append(r)
    return dict(out)


@dataclass(frozen=True)
class Result:
    comparisons: tuple      # Comparison per case present on both sides, in the candidate's order
    only_base: tuple        # labels
    only_candidate: tuple
    mismatch: tuple = ()    # identity differences that were allowed (--allow-mismatch)

    @property
    def regressed(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.verdict == "regressed")

    @property
    def counter_failures(self) -> tuple[Comparison, ...]:
        """Cases whose counters fail the gate under their policy (Comparison.counters_fail)."""
        return tuple(c for c in self.comparisons if c.counters_fail)

    @property
    def broken(self) -> tuple[Comparison, ...]:
        """Cases the base ran and the candidate failed (a wrong answer, an error): no time to compare,
        and no pass either."""
        return tuple(c for c in self.comparisons if c.verdict == "failed")

    @property
    def failed(self) -> bool:
        """What makes compare and gate exit 1: a regression, a case the candidate broke, or a
        counter change set to fail."""
        return bool(self.regressed or self.broken or self.counter_failures)


@overload
def compare(base: Iterable[Record], candidate: Iterable[Record], thresholds: Thresholds, allow_mismatch: bool = False,
            paired: Literal[False] = False, scale: Callable[[Record], float] | None = None,
            run_sd: float | None = None, same_run_sd: float | None = None) -> Result: ...


@overload
def compare(base: Sequence[Sequence[Record] | None], candidate: Sequence[Sequence[Record] | None],
            thresholds: Thresholds, allow_mismatch: bool = False, *, paired: Literal[True],
            scale: Callable[[Record], float] | None = None, run_sd: float | None = None,
            same_run_sd: float | None = None) -> Result: ...


def compare(base: Iterable[Any], candidate: Iterable[Any], thresholds: Thresholds, allow_mismatch: bool = False,
            paired: bool = False, scale: Callable[[Record], float] | None = None,
            run_sd: float | None = None, same_run_sd: float | None = None) -> Result:
    """A Result for two lists of records. With paired=False each side's records of a case are runs
    of it; with paired=True `base` and `candidate` are lists of lists, one per process pair (None
    for a process that failed), matched by position. CompareError when the runs' identities differ
    (machine, device, framework version), unless allow_mismatch."""
    if paired:
        base_cases = [by_case(recs or []) for recs in base]
        cand_cases = [by_case(recs or []) for recs in candidate]
        flat_base = [r for recs in base for r in recs or []]
        flat_cand = [r for recs in candidate for r in recs or []]
    else:
        flat_base, flat_cand = list(base), list(candidate)
    base_all, cand_all = by_case(flat_base), by_case(flat_cand)
    common = [case for case in cand_all if case in base_all]
    mismatch = identity_differences(base_all, cand_all, common)
    if mismatch and not allow_mismatch:
        raise CompareError("refusing to compare runs from different machines or software ("
                           + "; ".join(mismatch) + "); pass --allow-mismatch to compare anyway")
    comparisons = []
    for case in common:
        rec = cand_all[case][0]
        threshold = thresholds.for_key(rec.case.name)
        if paired:
            def pick(groups, case=case):
                return [(g.get(case) or [None])[-1] if g is not None else None for g in groups]
            made = compare_case(pick(base_cases), pick(cand_cases), threshold, paired=True, scale=scale)
        else:
            made = compare_case(base_all[case], cand_all[case], threshold, scale=scale, run_sd=run_sd,
                                same_run_sd=same_run_sd)
        changed = counter_changes(base_all[case], cand_all[case])
        why = counters_failing(made, changed, base_all[case], cand_all[case], thresholds.counters_for(rec.case.name))
        comparisons.append(replace(made, counters=tuple(changed), counters_fail=why))
    return Result(tuple(comparisons),
                  tuple(recs[0].label for case, recs in base_all.items() if case not in cand_all),
                  tuple(recs[0].label for case, recs in cand_all.items() if case not in base_all),
                  tuple(mismatch))


def counters_failing(made: Comparison, changed: list[str], base: Sequence[Record], candidate: Sequence[Record],
                     policy: str) -> str:
    """Why a case's counter change fails the gate under `policy` ("" where it does not): under
    "fail" any change; under "more-work" one where the candidate does more (counters.more_work)
    and its times were not judged same or improved: more work that the run could not show to
    cost less than the threshold. Counters are exact and the times, on a shared machine, are
    not: a slowdown the interval was too wide to flag still shows as more work."""
    from bench import counters
    if not changed or policy == "report":
        return ""
    if policy == "fail":
        return "counters changed, set to fail"
    sides = [_counted(recs) for recs in (base, candidate)]
    more = counters.more_work(sides[0][0], sides[1][0]) if all(sides) else []
    if not more or made.verdict in ("same", "improved"):
        return ""
    why = f"more work ({', '.join(more)})"
    return why if made.verdict == "regressed" else \
        f"{why} and its time {made.verdict}, not shown within {made.threshold * 100:g}%"


def _counted(recs: Sequence[Record]) -> list[dict[str, Any]]:
    """The counters of a case's timed records (one per record that has them)."""
    return [r.counters for r in recs if r.counters and r.status == "ok"]


def counter_changes(base: Sequence[Record], candidate: Sequence[Record]) -> list[str]:
    """How the counters of a case differ between the two sides (bench/counters.py changes), and
    whether either side's own records disagree (counters are exact: they should not); [] where a
    side has none (records from before counters, or a case not timed)."""
    from bench import counters
    sides = [_counted(recs) for recs in (base, candidate)]
    if not all(sides):
        return []
    unsteady = [name for name, side in zip(("base", "candidate"), sides) if any(c != side[0] for c in side)]
    changed = counters.changes(sides[0][0], sides[1][0])
    return changed + [f"the {name}'s own runs differ in their counters" for name in unsteady]


def identity_differences(base_cases: Mapping[CaseKey, list[Record]], cand_cases: Mapping[CaseKey, list[Record]],
                         cases: Iterable[CaseKey]) -> list[str]:
    """One-line identity differences between the environments of matched cases: CPU model,
    architecture, GPU names and the version of the case's own framework (a run that also loaded
    another framework is not a mismatch)."""
    lines = []
    for case in cases:
        for b in {id(r.env): r for r in base_cases[case]}.values():
            for c in {id(r.env): r for r in cand_cases[case]}.values():
                fw = c.framework
                fa = {**b.env, "frameworks": {fw: (b.env.get("frameworks") or {}).get(fw)}}
                fb = {**c.env, "frameworks": {fw: (c.env.get("frameworks") or {}).get(fw)}}
                for line in env.differences(fa, fb, keys=env.IDENTITY_KEYS):
                    if line not in lines:
                        lines.append(line)
    return lines
