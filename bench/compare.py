"""The ONE comparison: two measurements of a case in; the ratio candidate/base, its 95% interval,
the method that made it, the smallest change it could have seen and a verdict out. `compare` and
`gate` (records of two sides), the report (two cases of a run, or of two runs) and the history all
call it, so the same two measurements give the same answer wherever they are shown.

How two sides pair is given, never guessed: ROUNDS (one run, its cases timed in the same
interleaved rounds: the machine's state divides out of each round's ratio), PROCESSES (the gate's
process pairs A B B A: one ratio a pair) or RUNS (separate runs: widened by the machine's noise
between runs, bench/noise.py)."""

import fnmatch
import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench import defaults, stats
from bench.machine import Machine
from bench.noise import Noise
from bench.records import CaseKey, Record

LEVEL = 0.95
ROUNDS, PROCESSES, RUNS = "rounds", "processes", "runs"
PAIRINGS = (ROUNDS, PROCESSES, RUNS)
PAIRED_BY_ROUND = "paired by round (Hodges-Lehmann over the rounds' log-ratios, Wilcoxon signed-rank interval)"

# The rule, as one line for reports and the A/A file (a stored false-positive rate belongs to it).
RULE = (
    "regressed iff ratio > 1+t and CI low > 1+t/2; improved symmetrically in 1/ratio; same iff the CI lies "
    "within [1/(1+t), 1+t]; else inconclusive"
)
# Where both sides counted a case's instructions (bench/instructions.py), they judge it with their
# own threshold; time still judges what instructions cannot see (memory stalls, a GPU).
INSTRUCTIONS_RULE = (
    "where both sides counted instructions: a time regression stands; else instructions regressed or improved "
    "decide, unless time shows the opposite (inconclusive); instructions same and time not improved: same; "
    "instructions inconclusive: the time's verdict"
)
COUNTER_POLICIES = ("report", "more-work", "fail")
COUNTER_POLICY = "more-work"
LOAD_APART = 0.5  # cores: two runs whose other processes kept this many more cores busy ran under different loads


class CompareError(ValueError):
    """Input that cannot be compared (bad threshold, bad config, mismatched machines); one line."""


def parse_threshold(value: str | float) -> float:
    """A threshold as a fraction: "10%" -> 0.1, or a number already a fraction (0.1). CompareError
    for anything else, and for a bare number above 1 (write 150% for 1.5)."""
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


# The default threshold of instructions, as a fraction (the history's too).
INSTRUCTIONS_FRACTION = parse_threshold(defaults.INSTRUCTIONS_THRESHOLD)


# ---------------------------------------------------------------- the rule


def verdict(ratio: float, lo: float, hi: float, threshold: float) -> str:
    """'regressed', 'improved', 'same' or 'inconclusive' for ratio = candidate/base time with its
    interval [lo, hi]. regressed: the point beyond the threshold (ratio > 1+t) and the whole
    interval above 1+t/2: the point alone flags noise on a shared machine, and an interval that
    merely excludes 1 flags negligible changes once samples are many. improved: the same in
    1/ratio, so a threshold means the same size of change both ways. same: neither, and the
    interval within [1/(1+t), 1+t]. inconclusive: the run could not have told a change of the
    threshold's size from none (detectable() says what it could have seen). At t = 0 the rule is
    "the interval lies wholly on one side of 1": what the report calls shown faster."""
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
    """The smallest slowdown (0.14 for +14%) an interval this wide could have flagged: the rule
    needs ratio > 1+t and the low end above 1+t/2, which an interval of this half-width (in log
    space) around a true ratio R puts at R / exp(half). nan without an interval."""
    if any(v is None or math.isnan(v) or v <= 0 for v in (ratio, lo, hi)):
        return math.nan
    half = math.log(hi / lo) / 2
    return max(1 + threshold, (1 + threshold / 2) * math.exp(half)) - 1


@dataclass(frozen=True)
class Thresholds:
    """The default threshold and per-case overrides: (pattern, fraction) pairs matched with fnmatch
    against "framework/step/backend/device", the first match winning; the same for what a change
    of a case's counters does (COUNTER_POLICIES). bench/gate/settings.py reads them from a
    pyproject.toml."""

    default: float = field(default_factory=lambda: parse_threshold(defaults.GATE_THRESHOLD))
    overrides: tuple = ()
    counters: str = COUNTER_POLICY
    counter_overrides: tuple = ()
    instructions: float = field(default_factory=lambda: INSTRUCTIONS_FRACTION)
    instruction_cases: tuple = defaults.GATE_INSTRUCTIONS  # patterns: the cases a one-process gate counts

    def counts(self, key: CaseKey) -> bool:
        """Whether a one-process gate counts the instructions of the case `key`: a CPU case at
        INSTRUCTIONS_SIZE's n that instruction_cases name (fnmatch on framework/step/backend/device)."""
        return (
            key.device == "cpu"
            and key.n == defaults.INSTRUCTIONS_SIZE[0]
            and any(fnmatch.fnmatchcase(key.name, p) for p in self.instruction_cases)
        )

    def for_key(self, key: str) -> float:
        return next(
            (fraction for pattern, fraction in self.overrides if fnmatch.fnmatchcase(key, pattern)), self.default
        )

    def counters_for(self, key: str) -> str:
        return next(
            (policy for pattern, policy in self.counter_overrides if fnmatch.fnmatchcase(key, pattern)), self.counters
        )


# ---------------------------------------------------------------- measurements and their ratio


@dataclass(frozen=True)
class Measurement:
    """What a comparison needs of one side's measurement of a case: its samples (scaled where
    asked), the round of each, its run and the cores other processes kept busy meanwhile."""

    samples_s: tuple[float, ...]
    rounds: tuple[int, ...] = ()
    run: str = ""
    other_cores: float | None = None

    @classmethod
    def of(cls, rec: Record, factor: float = 1.0) -> "Measurement":
        busy = (rec.telemetry or {}).get("other_cores")
        samples = tuple(s * factor for s in rec.samples_s)
        return cls(
            samples,
            tuple(rec.rounds) if len(rec.rounds) == len(samples) else (),
            rec.run_id or "",
            float(busy[0]) if isinstance(busy, list) and busy and isinstance(busy[0], (int, float)) else None,
        )

    @functools.cached_property
    def median_s(self) -> float:
        return stats.median(self.samples_s)


@dataclass(frozen=True)
class Estimate:
    """candidate/base time with its LEVEL interval, the medians it rests on and how it was made."""

    ratio: float
    lo: float
    hi: float
    method: str
    base_s: float
    candidate_s: float
    note: str | None = None  # a different load on the two sides, where there was one
    extra_cores: float = 0.0  # the candidate's busy cores less the base's (separate runs)

    def inverse(self) -> "Estimate":
        """base/candidate, the same interval inverted: a speed-up of the candidate."""
        return replace(
            self,
            ratio=1 / self.ratio,
            lo=1 / self.hi,
            hi=1 / self.lo,
            base_s=self.candidate_s,
            candidate_s=self.base_s,
            extra_cores=-self.extra_cores,
        )

    def verdict(self, threshold: float) -> str:
        """The rule's verdict; a difference the load alone could make is inconclusive."""
        judged = verdict(self.ratio, self.lo, self.hi, threshold)
        return "inconclusive" if load_explains(judged, self.lo, self.hi, self.extra_cores) else judged

    def detectable(self, threshold: float) -> float:
        seen = detectable(self.ratio, self.lo, self.hi, threshold)
        if self.extra_cores >= LOAD_APART:  # a slowdown is judged only once its interval clears what the load can cost
            seen = max(seen, (1 + self.extra_cores) * math.sqrt(self.hi / self.lo) - 1)
        return seen

    @property
    def faster(self) -> bool:
        """The candidate shown faster: the rule's 'improved' with no threshold (interval below 1)."""
        return self.verdict(0.0) == "improved"


def pairing_between(base: Iterable[Record], candidate: Iterable[Record]) -> str:
    """ROUNDS where every record of both sides comes from one run (e.g. the two sides a
    one-process gate wrote), else RUNS: for records whose origin only their run ids tell."""
    runs = {r.run_id for r in (*base, *candidate)}
    return ROUNDS if len(runs) == 1 and "" not in runs else RUNS


def estimate(
    base: Sequence[Measurement], candidate: Sequence[Measurement], pairing: str, noise: Noise | None = None
) -> Estimate:
    """The ratio of `candidate` to `base` (each a list of measurements) under `pairing`: ROUNDS
    (one measurement a side from one run: paired by round where they share enough rounds, else
    their samples bootstrapped, widened by noise.same_run_sd where given), PROCESSES (lists of
    equal length, item i of each side one process pair: a t interval over the pairs' log-ratios),
    RUNS (separate runs: three or more a side, a Welch interval over their medians' logarithms;
    fewer, their samples pooled and bootstrapped, widened by noise.run_sd where given)."""
    noise = noise or Noise()
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r}: not one of {', '.join(PAIRINGS)}")
    if pairing == PROCESSES:
        return _over_pairs(base, candidate)
    if pairing == ROUNDS and len(base) == len(candidate) == 1 and base[0].run == candidate[0].run:
        return _within_run(base[0], candidate[0], noise)
    return _between_runs(base, candidate, noise)


def _over_pairs(base: Sequence[Measurement], candidate: Sequence[Measurement]) -> Estimate:
    """Per-pair ratios: a machine state shared by a pair divides out of its ratio. A t interval over
    their logarithms keeps its coverage with few pairs, where a percentile bootstrap does not."""
    base_m, cand_m = [m.median_s for m in base], [m.median_s for m in candidate]
    ratio, lo, hi = stats.log_t_ci([c / b for b, c in zip(base_m, cand_m)], level=LEVEL)
    return Estimate(
        ratio, lo, hi, f"t over {len(base_m)} process pairs' log-ratios", stats.median(base_m), stats.median(cand_m)
    )


def _within_run(b: Measurement, c: Measurement, noise: Noise) -> Estimate:
    if b.rounds and c.rounds and stats.can_pair(c.rounds, b.rounds):
        ratio, lo, hi = stats.round_ratio_ci(c.samples_s, b.samples_s, c.rounds, b.rounds, level=LEVEL)
        method = PAIRED_BY_ROUND
        if noise.same_run_sd:
            ratio, lo, hi = stats.widen(ratio, lo, hi, noise.same_run_sd, level=LEVEL)
            method += f", widened by the one-process A/A spread (sd {noise.same_run_sd:.3f} of the log-ratio)"
    else:  # one run's cases that cannot pair by round are still not runs apart: no run-to-run noise
        ratio, lo, hi, method = _bootstrapped(c.samples_s, b.samples_s, "bootstrap over samples")
    return Estimate(ratio, lo, hi, method, b.median_s, c.median_s)


def _bootstrapped(cs: Sequence[float], bs: Sequence[float], method: str) -> tuple[float, float, float, str]:
    """(ratio of medians, lo, hi, method) of a bootstrap, or no interval where a side has fewer
    samples than a median's own interval needs: a bootstrap of a handful of values has few distinct
    outcomes, and claims a certainty they do not have."""
    least = stats.min_ci_samples(LEVEL)
    if min(len(cs), len(bs)) < least:
        return (
            stats.median(cs) / stats.median(bs),
            math.nan,
            math.nan,
            f"too few samples for an interval ({len(bs)} and {len(cs)}; {least} needed)",
        )
    return (*stats.ratio_ci(cs, bs, level=LEVEL), method)


def _between_runs(base: Sequence[Measurement], candidate: Sequence[Measurement], noise: Noise) -> Estimate:
    if min(len(base), len(candidate)) >= 3:
        base_m, cand_m = [m.median_s for m in base], [m.median_s for m in candidate]
        ratio, lo, hi = stats.log_welch_ci(cand_m, base_m, level=LEVEL)
        method = f"Welch t over {len(base)} and {len(candidate)} run medians' logarithms"
        base_s, cand_s = stats.median(base_m), stats.median(cand_m)
    else:
        bs = [s for m in base for s in m.samples_s]
        cs = [s for m in candidate for s in m.samples_s]
        ratio, lo, hi, method = _bootstrapped(
            cs, bs, "bootstrap over samples" if len(base) == len(candidate) == 1 else "bootstrap over pooled samples"
        )
        base_s, cand_s = stats.median(bs), stats.median(cs)
        if noise.run_sd and math.isfinite(lo):
            ratio, lo, hi = stats.between_runs(ratio, lo, hi, noise.run_sd, len(base), len(candidate), level=LEVEL)
            method += f", widened by the run-to-run noise between separate runs (sd {noise.run_sd:.0%} of a median)"
    note, extra = _load_note(base, candidate)
    return Estimate(ratio, lo, hi, method, base_s, cand_s, note, extra)


def _busy(side: Sequence[Measurement]) -> float | None:
    got = [m.other_cores for m in side if m.other_cores is not None]
    return stats.median(got) if got else None


def _load_note(base: Sequence[Measurement], candidate: Sequence[Measurement]) -> tuple[str | None, float]:
    """(what to say, the candidate's busy cores less the base's) where separate runs ran under
    different loads (other processes' busy cores, from the records' telemetry); (None, 0) otherwise."""
    b, c = _busy(base), _busy(candidate)
    if b is not None and c is not None and abs(b - c) >= LOAD_APART:
        return (
            f"different load: other processes kept {b:.1f} cores busy in the base's run, {c:.1f} in the candidate's"
        ), c - b
    return None, 0.0


def load_explains(judged: str, lo: float, hi: float, extra_cores: float) -> bool:
    """Whether a regressed or improved verdict between separate runs could be the load alone: the
    slower side had `extra_cores` more cores kept busy by other processes (>0: the candidate), and
    the interval reaches within what that load can cost, a factor 1 + extra cores (a busy core at
    worst halves a thread that shares it, and a step waits for its slowest thread)."""
    if judged == "regressed" and extra_cores >= LOAD_APART:
        return lo < 1 + extra_cores
    if judged == "improved" and extra_cores <= -LOAD_APART:
        return hi > 1 / (1 - extra_cores)
    return False


# ---------------------------------------------------------------- comparing the records of a case

Scale = Callable[[Record], float]


@dataclass(frozen=True)
class How:
    """How two sides are compared: their pairing (PAIRINGS), the noise that widens their intervals,
    the thresholds and counter policies, a scale for each record's times (stored baselines:
    ceiling_scale), and what may differ between them without failing: the machine
    (allow_mismatch), cases or records (allow_missing)."""

    pairing: str
    thresholds: Thresholds = field(default_factory=Thresholds)
    noise: Noise = field(default_factory=Noise)
    scale: Scale | None = None
    allow_mismatch: bool = False
    allow_missing: bool = False


@dataclass(frozen=True)
class Comparison:
    case: CaseKey  # Record.case
    label: str
    key: str  # framework/step/backend/device (what per-case thresholds match)
    threshold: float
    verdict: str  # regressed / improved / same / inconclusive; failed (the candidate broke a case the
    # base ran) or n/a (not timed on a side), with `note` saying why
    base_s: float | None = None  # medians; in stored mode scaled to the baseline's machine speed
    candidate_s: float | None = None
    ratio: float | None = None  # candidate/base
    lo: float | None = None
    hi: float | None = None
    method: str = ""  # how the interval was made
    note: str | None = None
    detectable: float = math.nan  # the smallest slowdown this comparison could have flagged (detectable())
    counters: tuple = ()  # what the two sides' counters differ in, exactly (bench/counters.py changes)
    counters_fail: str = ""  # why the counters fail the gate whatever the times say ("" where they do not)
    rests_on: str = "time"  # what the verdict rests on: "time" or "instructions"
    time_verdict: str = ""  # the times' own verdict where instructions decided ("" where they did not)
    instructions: "Counted | None" = None  # both sides' instructions a call, where both counted them


def usable(rec: Record) -> bool:
    """A timed record; one cut short by a signal only with enough samples for a median's CI."""
    if rec.status != "ok" or not rec.samples_s:
        return False
    return rec.stop_reason != "interrupted" or len(rec.samples_s) >= stats.min_ci_samples()


def _why_not(side: str, recs: Sequence[Record]) -> str:
    if not recs:
        return f"no {side} record"
    r = next(r for r in recs if not usable(r))
    if r.status == "ok" and r.samples_s:
        return f"{side} interrupted after {len(r.samples_s)} samples"
    return f"{side} {r.status}" + (f": {r.error}" if r.error else " (no samples)")


def _not_compared(made: Comparison, base: Sequence[Record], candidate: Sequence[Record]) -> Comparison:
    """A case one side could not time: "failed" where the base timed it and the candidate failed
    it (the change broke the case, which fails the gate), else "n/a", saying why."""
    if base and all(usable(r) for r in base):
        if any(r.status == "failed" for r in candidate):
            return replace(made, verdict="failed", note=_why_not("candidate", candidate))
        return replace(made, note=_why_not("candidate", candidate))
    return replace(made, note=_why_not("base", base))


def compare_case(base: Sequence[Record | None], candidate: Sequence[Record | None], how: How) -> Comparison:
    """The Comparison of one case's records on each side (lists in group order; under PROCESSES
    item i of each side is pair i, None a process that failed, which drops its pair)."""
    first = next(r for r in (*candidate, *base) if r is not None)
    threshold = how.thresholds.for_key(first.case.name)
    made = Comparison(case=first.case, label=first.label, key=first.case.name, threshold=threshold, verdict="n/a")
    counted = instructions_ratio([r for r in base if r is not None], [r for r in candidate if r is not None])
    scale = how.scale or (lambda rec: 1.0)
    if how.pairing == PROCESSES:
        pairs = [(b, c) for b, c in zip(base, candidate) if b is not None and c is not None]
        bad = [(b, c) for b, c in pairs if not (usable(b) and usable(c))]
        if bad:
            return _not_compared(made, [b for b, _ in bad], [c for _, c in bad])
        if len(pairs) < 2:
            return replace(made, note=f"{len(pairs)} complete pair(s); at least 2 are needed")
        sides = ([Measurement.of(b, scale(b)) for b, _ in pairs], [Measurement.of(c, scale(c)) for _, c in pairs])
    else:
        runs_b = [r for r in base if r is not None]
        runs_c = [r for r in candidate if r is not None]
        if not (runs_b and runs_c and all(usable(r) for r in (*runs_b, *runs_c))):
            return _not_compared(made, runs_b, runs_c)
        sides = ([Measurement.of(r, scale(r)) for r in runs_b], [Measurement.of(r, scale(r)) for r in runs_c])
    est = estimate(*sides, how.pairing, how.noise)
    judged, note = est.verdict(threshold), est.note
    if judged != verdict(est.ratio, est.lo, est.hi, threshold):  # the load alone could make it: not a verdict
        note = (
            f"{note}: up to x{1 + abs(est.extra_cores):.1f} from the load alone, so not judged "
            f"{verdict(est.ratio, est.lo, est.hi, threshold)}"
        )
    timed = replace(
        made,
        base_s=est.base_s,
        candidate_s=est.candidate_s,
        ratio=est.ratio,
        lo=est.lo,
        hi=est.hi,
        method=est.method,
        verdict=judged,
        note=note,
        detectable=est.detectable(threshold),
    )
    return timed if counted is None else with_instructions(timed, counted, how.thresholds)


@dataclass(frozen=True)
class Counted:
    """candidate/base instructions a call (bench/instructions.py), with the range every pairing of
    the two sides' counted calls spans: counts of the same code repeat closely (experiment:
    instructions-spread), so the range is the interval."""

    base: float
    candidate: float
    ratio: float
    lo: float
    hi: float
    calls: int  # counted calls a side (the fewer)

    def verdict(self, threshold: float) -> str:
        return verdict(self.ratio, self.lo, self.hi, threshold)


def instructions_ratio(base: Sequence[Record], candidate: Sequence[Record]) -> Counted | None:
    """The Counted of two sides' records of the same case, None where a side counted none (the case's
    records keep `instructions` {"calls": [...]}: bench/instructions.py) or the sides are different
    cases: instructions compare a case with itself at another revision, not one case with another."""

    def calls(recs: Sequence[Record]) -> list[float]:
        return [
            float(c)
            for r in recs
            if r.status == "ok"
            for c in (r.instructions or {}).get("calls") or ()
            if isinstance(c, (int, float)) and c > 0
        ]

    if {r.case for r in base} != {r.case for r in candidate}:
        return None  # two different cases (a report's): another framework's instructions are no time
    if {counting(r) for r in (*base, *candidate) if r.instructions.get("calls")} != {instructions_counting()}:
        return None  # counted another way (one thread's counts alone): not comparable
    b, c = calls(base), calls(candidate)
    if not (b and c):
        return None
    mb, mc = stats.median(b), stats.median(c)
    return Counted(mb, mc, mc / mb, min(c) / max(b), max(c) / min(b), min(len(b), len(c)))


def counting(rec: Record) -> str:
    """How a record's instructions were counted (bench/instructions.COUNTING; "" before it was said)."""
    return str((rec.instructions or {}).get("counting", ""))


def instructions_counting() -> str:
    from bench import instructions

    return instructions.COUNTING


def with_instructions(made: Comparison, counted: Counted, thresholds: Thresholds) -> Comparison:
    """`made` (its time's verdict) judged again with both sides' instructions, as INSTRUCTIONS_RULE
    says; the row keeps both."""
    t = thresholds.instructions
    by_instructions = counted.verdict(t)
    time_verdict = made.verdict
    counted_made = replace(
        made,
        instructions=counted,
        threshold=t,
        detectable=detectable(counted.ratio, counted.lo, counted.hi, t),
        rests_on="instructions",
        time_verdict=time_verdict,
        verdict=by_instructions,
    )
    if time_verdict == "regressed" or by_instructions == "inconclusive":
        return replace(made, instructions=counted)  # the time's verdict stands
    opposite = {"regressed": "improved", "improved": "regressed"}.get(by_instructions)
    if opposite and time_verdict == opposite:
        return replace(
            counted_made,
            verdict="inconclusive",
            note=f"instructions {by_instructions} ({counted.ratio - 1:+.2%}) but time {time_verdict}",
        )
    if by_instructions == "same" and time_verdict == "improved":
        return replace(made, instructions=counted)  # faster in time at the same instructions: time says so
    return counted_made


def reference_ceiling(gflops: Iterable[Any]) -> float | None:
    """The GEMM ceiling times are scaled to: the median of `gflops` (each run's measured GFLOP/s),
    None where one is missing (times are then compared raw)."""
    values = list(gflops)
    if not values or not all(isinstance(v, (int, float)) and v > 0 for v in values):
        return None
    return stats.median(values)


def ceiling_scale(records: Iterable[Record]) -> Scale | None:
    """scale(rec): a record's times expressed at the speed of `records`' machine, t x (its run's
    measured GEMM GFLOP/s) / reference_ceiling(the ceilings of `records` on its device). None where
    a record lacks the ceiling. The stored baseline and the history both scale so."""
    by_device: dict[str, list[Any]] = {}
    for r in records:
        by_device.setdefault(r.device, []).append(r.ceilings.get("gemm_gflops"))
    ref = {device: reference_ceiling(values) for device, values in by_device.items()}
    if not ref or any(v is None for v in ref.values()):
        return None

    def scale(rec: Record) -> float:
        own, to = rec.ceilings.get("gemm_gflops"), ref.get(rec.device)
        return own / to if own and to else 1.0

    return scale


# ---------------------------------------------------------------- comparing two sides


def by_case(records: Iterable[Record]) -> dict[CaseKey, list[Record]]:
    """{case: [records in file order]}."""
    out = defaultdict(list)
    for r in records:
        out[r.case].append(r)
    return dict(out)


@dataclass(frozen=True)
class Result:
    comparisons: tuple  # Comparison per case present on both sides, in the candidate's order
    only_base: tuple  # labels: cases the candidate lost
    only_candidate: tuple
    mismatch: tuple = ()  # identity differences that were allowed (--allow-mismatch)
    pairing: str = ""
    allow_missing: bool = False  # cases only the base has do not fail (--allow-missing)

    @property
    def regressed(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.verdict == "regressed")

    @property
    def counter_failures(self) -> tuple[Comparison, ...]:
        """Cases whose counters fail under their policy (Comparison.counters_fail)."""
        return tuple(c for c in self.comparisons if c.counters_fail)

    @property
    def broken(self) -> tuple[Comparison, ...]:
        """Cases the base ran and the candidate failed (a wrong answer, an error): no pass."""
        return tuple(c for c in self.comparisons if c.verdict == "failed")

    @property
    def lost(self) -> tuple[str, ...]:
        """Cases the base has and the candidate lacks, unless allowed: a verdict never passes on
        missing data."""
        return () if self.allow_missing else self.only_base

    @property
    def failed(self) -> bool:
        """What makes compare and gate exit 1: a regression, a case the candidate broke or lost, or
        a counter change set to fail."""
        return bool(self.regressed or self.broken or self.counter_failures or self.lost)


def compare(base: Iterable[Any], candidate: Iterable[Any], how: How) -> Result:
    """The Result of two sides. Under PROCESSES `base` and `candidate` are lists of lists of
    records, one per process pair (None for a process that failed), matched by position; else
    lists of records. CompareError where the sides' machines or framework versions differ, unless
    how.allow_mismatch."""
    if how.pairing == PROCESSES:
        base_groups = [by_case(recs or []) if recs is not None else None for recs in base]
        cand_groups = [by_case(recs or []) if recs is not None else None for recs in candidate]
        flat_base = [r for g in base_groups if g for recs in g.values() for r in recs]
        flat_cand = [r for g in cand_groups if g for recs in g.values() for r in recs]
    else:
        flat_base, flat_cand = list(base), list(candidate)
    base_all, cand_all = by_case(flat_base), by_case(flat_cand)
    common = [case for case in cand_all if case in base_all]
    mismatch = identity_differences(base_all, cand_all, common)
    if mismatch and not how.allow_mismatch:
        raise CompareError(
            "refusing to compare runs from different machines or software ("
            + "; ".join(mismatch)
            + "); pass --allow-mismatch to compare anyway"
        )
    comparisons = []
    for case in common:
        if how.pairing == PROCESSES:

            def pick(groups, case=case):
                return [(g.get(case) or [None])[-1] if g is not None else None for g in groups]

            made = compare_case(pick(base_groups), pick(cand_groups), how)
        else:
            made = compare_case(base_all[case], cand_all[case], how)
        changed = counter_changes(base_all[case], cand_all[case])
        why = counters_failing(made, changed, base_all[case], cand_all[case], how.thresholds.counters_for(case.name))
        comparisons.append(replace(made, counters=tuple(changed), counters_fail=why))
    return Result(
        tuple(comparisons),
        tuple(recs[0].label for case, recs in base_all.items() if case not in cand_all),
        tuple(recs[0].label for case, recs in cand_all.items() if case not in base_all),
        tuple(mismatch),
        how.pairing,
        how.allow_missing,
    )


# ---------------------------------------------------------------- counters and identities


def counted(recs: Sequence[Record]) -> list[dict[str, Any]]:
    """The counters of a case's timed records (one per record that has them)."""
    return [r.counters for r in recs if r.counters and r.status == "ok"]


def counters_failing(
    made: Comparison, changed: list[str], base: Sequence[Record], candidate: Sequence[Record], policy: str
) -> str:
    """Why a case's counter change fails under `policy` ("" where it does not): under "fail" any
    change; under "more-work" one where the candidate does more (counters.more_work) and its times
    were not judged same or improved. Counters are exact and times on a shared machine are not:
    a slowdown the interval was too wide to flag still shows as more work."""
    from bench import counters

    if not changed or policy == "report":
        return ""
    if policy == "fail":
        return "counters changed, set to fail"
    sides = [counted(recs) for recs in (base, candidate)]
    more = counters.more_work(sides[0][0], sides[1][0]) if all(sides) else []
    if not more or made.verdict in ("same", "improved"):
        return ""
    why = f"more work ({', '.join(more)})"
    measured = "its instructions" if made.rests_on == "instructions" else "its time"
    return (
        why
        if made.verdict == "regressed"
        else f"{why} and {measured} {made.verdict}, not shown within {made.threshold * 100:g}%"
    )


def counter_changes(base: Sequence[Record], candidate: Sequence[Record]) -> list[str]:
    """How the counters of a case differ between the two sides (bench/counters.py changes), and
    whether either side's own records disagree (counters are exact: they should not); [] where a
    side has none."""
    from bench import counters

    sides = [counted(recs) for recs in (base, candidate)]
    if not all(sides):
        return []
    unsteady = [name for name, side in zip(("base", "candidate"), sides) if any(c != side[0] for c in side)]
    return counters.changes(sides[0][0], sides[1][0]) + [
        f"the {name}'s own runs differ in their counters" for name in unsteady
    ]


def identity_differences(
    base_cases: Mapping[CaseKey, list[Record]], cand_cases: Mapping[CaseKey, list[Record]], cases: Iterable[CaseKey]
) -> list[str]:
    """One line per identity difference (bench/machine.py) between the runs of matched cases: the
    hardware and the version of the case's own framework (a run that also loaded another framework
    is not a mismatch)."""
    lines: list[str] = []

    def own(rec: Record) -> Machine:  # the case's own framework's version, None where the run did not record it
        return Machine.of(
            {
                **rec.fingerprint,
                "frameworks": {rec.framework: (rec.fingerprint.get("frameworks") or {}).get(rec.framework)},
            }
        )

    for case in cases:
        for b in {id(r.fingerprint): r for r in base_cases[case]}.values():
            for c in {id(r.fingerprint): r for r in cand_cases[case]}.values():
                lines += [line for line in own(b).differences(own(c)) if line not in lines]
    return lines
