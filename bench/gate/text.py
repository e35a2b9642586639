"""The gate's comparisons for people and tools: aligned text lines for the command line to print, a
Markdown summary for a CI page ($GITHUB_STEP_SUMMARY, --summary) and a JSON document (--json), all
from the same Result, so the three cannot disagree."""

import math
from collections import defaultdict
from typing import Any

from bench.compare import INSTRUCTIONS_RULE, LEVEL, RULE, Comparison, Result
from bench.gate.outcome import Outcome
from bench.text import markdown, markdown_table, printable

# The overall verdict of a Result (overall()), in the order that decides it, and its headline.
HEADLINES = {
    "regressed": "REGRESSED",
    "broken": "FAILED: the candidate broke a case",
    "lost": "FAILED: the candidate lacks cases the base has",
    "counters": "FAILED on counters",
    "passed": "no regression",
    "nothing": "nothing to compare",
}
FAILING = ("regressed", "broken", "lost", "counters")


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3g}"


def _seen(c: Comparison) -> str:
    return "-" if c.detectable != c.detectable else f">= {c.detectable:+.0%}"


def _ci(c):
    if c.ratio is None:
        return "-"
    return f"{c.ratio:.3f} [{c.lo:.3f}, {c.hi:.3f}]"


def header(base_name: str = "base", candidate_name: str = "candidate", counted: bool = False) -> tuple[str, ...]:
    """The table's columns; `counted`: with an instructions column (some case counted them)."""
    return (
        "case",
        f"{base_name} ms",
        f"{candidate_name} ms",
        "ratio [95% CI]",
        *(("instructions [range]",) if counted else ()),
        "threshold",
        "could see",
        "verdict",
    )


def _counted(c: Comparison) -> str:
    i = c.instructions
    return "-" if i is None else f"{i.ratio:.4f} [{i.lo:.4f}, {i.hi:.4f}]"


def _verdict(c: Comparison) -> str:
    """The verdict, what it rests on where instructions decided, and the time's own where it differs."""
    said = c.verdict
    if c.rests_on == "instructions":
        said += " by instructions" + (f", time {c.time_verdict}" if c.time_verdict else "")
    notes = [printable(c.note)] if c.note else []
    return said + (f" ({'; '.join(notes)})" if notes else "")


def counts_instructions(result: Result) -> bool:
    return any(c.instructions is not None for c in result.comparisons)


def rows(result: Result) -> list[tuple[str, ...]]:
    """One row of cells per common case, under header(): the text table's and the Markdown table's."""
    counted = counts_instructions(result)
    return [
        (
            printable(c.label),
            _ms(c.base_s),
            _ms(c.candidate_s),
            _ci(c),
            *((_counted(c),) if counted else ()),
            f"{c.threshold:.0%}" if c.rests_on == "time" else f"{c.threshold:.1%}",
            _seen(c),
            _verdict(c),
        )
        for c in result.comparisons
    ]


def table(result: Result, base_name: str = "base", candidate_name: str = "candidate") -> list[str]:
    """The comparison as aligned text lines: one row per common case, then the cases on one side only."""
    head, body = header(base_name, candidate_name, counts_instructions(result)), rows(result)
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    last = len(head) - 1
    align = lambda row: "  ".join(
        str(v).ljust(w) if i in (0, last) else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))
    ).rstrip()
    lines = [align(head), align(["-" * w for w in widths])] + [align(row) for row in body] if body else []
    return lines + after_table(result, base_name, candidate_name)


def after_table(result: Result, base_name: str = "base", candidate_name: str = "candidate") -> list[str]:
    """What the table's rows do not say, a sentence a line: how the intervals were made and what the
    run could see, counters changed, cases on one side only, identity differences allowed."""
    lines = []
    methods = sorted({c.method for c in result.comparisons if c.method})
    if methods:
        lines.append(
            f"CI: {LEVEL:.0%} intervals, {'; '.join(methods)}. Rule: {RULE}. 'could see': the smallest "
            "slowdown each comparison's own interval could have flagged."
        )
    if counts_instructions(result):
        by_count = [c.detectable for c in result.comparisons if c.rests_on == "instructions"]
        lines.append(
            "instructions: a call's instructions under Callgrind, candidate/base, in the range of every pair of "
            f"the two sides' counted calls. Rule: {INSTRUCTIONS_RULE}."
            + (
                f" Where instructions judged, the smallest change they could see was {max(by_count):+.1%}."
                if by_count and all(x == x for x in by_count)
                else ""
            )
        )
    seen = [c.detectable for c in result.comparisons if c.detectable == c.detectable and c.rests_on == "time"]
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


def overall(result: Result) -> str:
    """The overall verdict, one of HEADLINES, in the order that decides it: a regression, a case the
    candidate broke, cases it lacks, a counter change set to fail; else passed (or nothing in common)."""
    if not result.comparisons:
        return "lost" if result.lost else "nothing"
    if result.regressed:
        return "regressed"
    if result.broken:
        return "broken"
    if result.lost:
        return "lost"
    return "counters" if result.counter_failures else "passed"


def summary(result: Result) -> str:
    """One line: the overall verdict."""
    counts: defaultdict[str, int] = defaultdict(int)
    for c in result.comparisons:
        counts[c.verdict] += 1
    verdict = overall(result)
    if verdict == "lost" and not result.comparisons:
        return (
            f"verdict: FAILED, no case is in both runs and the candidate lacks all {len(result.lost)} of "
            "the base's (--allow-missing allows it)"
        )
    if verdict == "nothing":
        return "verdict: nothing to compare (no case is in both runs)"
    parts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    changed = sum(bool(c.counters) for c in result.comparisons)
    if changed:
        parts += f"; counters changed in {changed} case{'s' if changed != 1 else ''}"
    # a case the counters fail beside a time verdict that does not: named after the headline
    by_counters = [c for c in result.counter_failures if c.verdict not in ("regressed", "failed")]
    failing = ", ".join(printable(f"{c.label} ({c.counters_fail})") for c in by_counters)
    also = f"; failed on its counters: {failing}" if by_counters else ""
    if verdict == "regressed":
        names = ", ".join(printable(c.label) for c in result.regressed)
        return f"verdict: REGRESSED ({parts}): {names}{also}"
    if verdict == "broken":
        names = ", ".join(printable(c.label) for c in result.broken)
        return f"verdict: FAILED, the candidate broke a case the base ran ({parts}): {names}{also}"
    if verdict == "lost":
        names = ", ".join(printable(label) for label in result.lost[:3]) + (", ..." if len(result.lost) > 3 else "")
        return (
            f"verdict: FAILED, the candidate lacks {len(result.lost)} case(s) the base has ({parts}): {names}"
            f"{also} (--allow-missing allows it)"
        )
    if verdict == "counters":
        return f"verdict: FAILED on counters ({parts}): {failing}"
    return f"verdict: no regression ({parts})"


def report(outcome: Outcome, base_name: str = "base", candidate_name: str = "candidate") -> list[str]:
    """Lines to print for one gate run."""
    return [*table(outcome.result, base_name, candidate_name), *outcome.notes, summary(outcome.result)]


# ---------------------------------------------------------------- Markdown and JSON


def markdown_section(
    title: str,
    about: list[str],
    result: Result | None,
    notes: list[str],
    names: tuple[str, str] = ("base", "candidate"),
) -> str:
    """A Markdown section for a CI page: `title` and the overall verdict as its heading, `about` (what
    was compared), the verdict table with what each row could see, the sentences after it, `notes`,
    and the verdict line that says why. Without a result, `notes` alone (a gate that compared nothing)."""
    headline = HEADLINES[overall(result)] if result is not None else ""
    lines = [f"## {markdown(title)}" + (f": {markdown(headline)}" if headline else ""), ""]
    lines += [line for text in about for line in (markdown(text), "")]
    if result is not None and result.comparisons:
        head = header(*names, counts_instructions(result))
        lines += [*markdown_table(head, rows(result), right=tuple(range(1, len(head) - 1))), ""]
    more = [*(after_table(result, *names) if result is not None else []), *notes]
    lines += [f"- {markdown(text.strip())}" for text in more] + ([""] if more else [])
    if result is not None:
        lines += [f"**{markdown(summary(result))}**", ""]
    return "\n".join(lines) + "\n"


def json_number(x: Any) -> float | None:
    """A float JSON can hold: None for a missing or undefined figure (no interval: nan)."""
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def comparison_json(c: Comparison) -> dict[str, Any]:
    """One comparison as plain data: the case, the ratio and its interval, how it was made, what it
    could see, the verdict and why, the counters' changes."""
    return {
        "case": c.case.asdict(),
        "label": c.label,
        "key": c.key,
        "threshold": c.threshold,
        "base_s": json_number(c.base_s),
        "candidate_s": json_number(c.candidate_s),
        "ratio": json_number(c.ratio),
        "lo": json_number(c.lo),
        "hi": json_number(c.hi),
        "level": LEVEL,
        "method": c.method,
        "detectable": json_number(c.detectable),
        "verdict": c.verdict,
        "note": c.note,
        "counters": list(c.counters),
        "counters_fail": c.counters_fail or None,
        "rests_on": c.rests_on,
        "time_verdict": c.time_verdict or None,
        "instructions": None
        if c.instructions is None
        else {k: json_number(getattr(c.instructions, k)) for k in ("base", "candidate", "ratio", "lo", "hi")},
    }


def result_json(result: Result) -> dict[str, Any]:
    """A Result as plain data: the overall verdict and the line that says why, the pairing, every
    comparison, the cases on one side only and the identity differences allowed."""
    return {
        "verdict": overall(result),
        "failed": result.failed,
        "summary": summary(result),
        "pairing": result.pairing,
        "rule": RULE,
        "comparisons": [comparison_json(c) for c in result.comparisons],
        "only_base": list(result.only_base),
        "only_candidate": list(result.only_candidate),
        "lost": list(result.lost),
        "mismatch": list(result.mismatch),
    }
