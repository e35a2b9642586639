"""The gate's comparisons as text lines, for the command line to print."""

from collections import defaultdict

from bench.compare import LEVEL, RULE, Comparison, Result
from bench.gate.outcome import Outcome
from bench.text import printable


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def _seen(c: Comparison) -> str:
    return "-" if c.detectable != c.detectable else f">= {c.detectable:+.0%}"


def _ci(c):
    if c.ratio is None:
        return "-"
    return f"{c.ratio:.3f} [{c.lo:.3f}, {c.hi:.3f}]"


def table(result: Result, base_name: str = "base", candidate_name: str = "candidate") -> list[str]:
    """The comparison as aligned text lines: one row per common case, then the cases on one side only."""
    header = ("case", f"{base_name} ms", f"{candidate_name} ms", "ratio [95% CI]", "threshold", "could see", "verdict")
    rows = [
        (
            printable(c.label),
            _ms(c.base_s),
            _ms(c.candidate_s),
            _ci(c),
            f"{c.threshold:.0%}",
            _seen(c),
            c.verdict + (f" ({printable(c.note)})" if c.note else ""),
        )
        for c in result.comparisons
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    align = lambda row: "  ".join(
        str(v).ljust(w) if i in (0, 6) else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))
    ).rstrip()
    lines = [align(header), align(["-" * w for w in widths])] + [align(row) for row in rows] if rows else []
    methods = sorted({c.method for c in result.comparisons if c.method})
    if methods:
        lines.append(
            f"CI: {LEVEL:.0%} intervals, {'; '.join(methods)}. Rule: {RULE}. 'could see': the smallest "
            "slowdown each comparison's own interval could have flagged."
        )
    seen = [c.detectable for c in result.comparisons if c.detectable == c.detectable]
    unsure = [c for c in result.comparisons if c.verdict == "inconclusive"]
    wide = sum(not c.note for c in unsure)  # a note says why otherwise (a different load)
    if seen:
        lines.append(
            f"This run could see a slowdown of {min(seen):+.0%} in its clearest case and {max(seen):+.0%} in "
            "its least clear"
            + (f"; {len(unsure)} inconclusive" if unsure else "")
            + (
                f", {'all' if wide == len(unsure) else wide} with an interval reaching past the threshold"
                if wide
                else ""
            )
            + "."
        )
    for c in result.comparisons:  # exact, whatever the noise: what a case executes changed
        if c.counters:
            lines.append(
                f"counters changed{f' (FAIL: {c.counters_fail})' if c.counters_fail else ''}: {printable(c.key)} "
                f"{printable(c.label[len(c.key) :].strip())}: {printable('; '.join(c.counters))}"
            )
    for label in result.only_base:
        lines.append(
            f"only in {base_name}: {printable(label)}"
            + ("" if result.allow_missing else " (the candidate lost it: FAIL; --allow-missing allows it)")
        )
    for label in result.only_candidate:
        lines.append(f"only in {candidate_name}: {printable(label)}")
    for line in result.mismatch:
        lines.append(f"warning: compared despite an identity difference: {printable(line)}")
    return lines


def summary(result: Result) -> str:
    """One line: the overall verdict."""
    counts: defaultdict[str, int] = defaultdict(int)
    for c in result.comparisons:
        counts[c.verdict] += 1
    if not result.comparisons:
        if result.lost:
            return (
                f"verdict: FAILED, no case is in both runs and the candidate lacks all {len(result.lost)} of "
                "the base's (--allow-missing allows it)"
            )
        return "verdict: nothing to compare (no case is in both runs)"
    parts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    changed = sum(bool(c.counters) for c in result.comparisons)
    if changed:
        parts += f"; counters changed in {changed} case{'s' if changed != 1 else ''}"
    # a case the counters fail beside a time verdict that does not: named after the headline
    by_counters = [c for c in result.counter_failures if c.verdict not in ("regressed", "failed")]
    failing = ", ".join(printable(f"{c.label} ({c.counters_fail})") for c in by_counters)
    also = f"; failed on its counters: {failing}" if by_counters else ""
    if result.regressed:
        names = ", ".join(printable(c.label) for c in result.regressed)
        return f"verdict: REGRESSED ({parts}): {names}{also}"
    if result.broken:
        names = ", ".join(printable(c.label) for c in result.broken)
        return f"verdict: FAILED, the candidate broke a case the base ran ({parts}): {names}{also}"
    if result.lost:
        names = ", ".join(printable(label) for label in result.lost[:3]) + (", ..." if len(result.lost) > 3 else "")
        return (
            f"verdict: FAILED, the candidate lacks {len(result.lost)} case(s) the base has ({parts}): {names}"
            f"{also} (--allow-missing allows it)"
        )
    if by_counters:
        return f"verdict: FAILED on counters ({parts}): {failing}"
    return f"verdict: no regression ({parts})"


def report(outcome: Outcome, base_name: str = "base", candidate_name: str = "candidate") -> list[str]:
    """Lines to print for one gate run."""
    return [*table(outcome.result, base_name, candidate_name), *outcome.notes, summary(outcome.result)]
