"""A bisection's answer as it prints it (the answer first, then the steps it rests on) and as JSON."""

from typing import Any

from bench.bisect.plan import Plan, short
from bench.bisect.search import Answer, Step
from bench.gate.plan import minutes


def _case_text(r: dict[str, Any]) -> str:
    if r.get("ratio") is None:
        return f"{r['case']}: {r.get('note') or r.get('why') or 'not compared'}"
    text = f"{r['case']}: x{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"
    if r.get("midpoint"):
        text += f", midpoint x{r['midpoint']:.3f}"
    return text + (f"; counters: {'; '.join(r['counters'][:3])}" if r.get("counters") else "")


def step_line(n: int, step: Step, plan: Plan) -> str:
    """One step: the commit and its place, what judged it, the verdict and the figures it rests on."""
    subject = plan.commits[step.index][1] if 0 <= step.index < len(plan.commits) else ""
    what = {"ends": "GOOD beside BAD", "confirm": "beside its parent"}.get(step.kind, f"by {step.kind}")
    shown = [r for r in step.cases if r.get("ratio") is not None][:2]
    return (
        f"  {n:>2}. {short(step.sha)} [{step.index}/{plan.searched}] {what}: {step.verdict}"
        + (f" ({step.why})" if step.why else "")
        + (f"; {'; '.join(_case_text(r) for r in shown)}" if shown else "")
        + (f" [{step.reused}]" if step.reused else f" [{step.wall_s:.0f} s]")
        + (f'  "{subject[:50]}"' if subject and step.kind != "ends" else "")
    )


def sureness(answer: Answer) -> str:
    """How sure the answer is: counters are exact; a time step is as sure as the margin by which its
    interval cleared the midpoint."""
    if answer.by == "counters":
        return "exact: each commit tried ran GOOD's counters or not, with nothing sampled"
    decided = [s for s in answer.steps if s.kind in ("times", "run") and s.verdict in ("good", "bad")]
    margins = [  # decided: the whole interval on one side of the midpoint; its nearer edge's distance
        min(abs(r["lo"] / r["midpoint"] - 1), abs(r["hi"] / r["midpoint"] - 1))
        for s in decided
        for r in s.cases
        if r.get("midpoint") and r["verdict"] in ("good", "bad")
    ]
    if not margins:
        return "no time step was needed"
    return (
        f"{len(decided)} time step(s), each decided by 95% intervals clear of the midpoint between GOOD and BAD "
        f"measured in the same step; the narrowest cleared it by {min(margins):.1%}"
    )


def lines(answer: Answer) -> list[str]:
    """The answer first, then the steps it rests on."""
    plan = answer.plan
    out = []
    if answer.kind == "found":
        hi, lo = answer.first_bad or 0, answer.last_good or 0
        sha, subject = plan.commits[hi]
        if answer.candidates:
            out.append(
                f"bisect: the first bad commit is one of {len(answer.candidates)} (the commits that could not be "
                "measured were skipped): " + ", ".join(short(plan.commits[i][0]) for i in answer.candidates)
            )
        else:
            out.append(f'bisect: the first bad commit is {short(sha)} "{subject}" (found by {answer.by})')
        confirm = next((s for s in reversed(answer.steps) if s.kind == "confirm"), None)  # the last, decided
        if confirm:
            out += [
                f"  its change beside its parent {short(plan.commits[lo][0])}: {_case_text(r)} ({r['verdict']})"
                for r in confirm.cases
            ]
        out.append(f"  how sure: {sureness(answer)}")
        out += [f"  note: {line}" for line in answer.said]
    elif answer.kind == "no change":
        out += [f"bisect: {line}" for line in answer.said] or ["bisect: no change"]
    else:
        lo, hi = answer.last_good or 0, plan.searched if answer.first_bad is None else answer.first_bad
        out += [f"bisect: {answer.kind}: {line}" for line in answer.said]
        if answer.last_good is not None:  # the search had begun
            out.append(
                f"  the first bad commit lies after {short(plan.commits[lo][0])}, at or before "
                f"{short(plan.commits[hi][0])} ({hi - lo} commit(s)); the same command resumes from {plan.out}"
            )
    if answer.steps:
        out.append(f"steps ({len(answer.steps)}, {minutes(answer.wall_s)}; kept in {plan.out}):")
        out += [step_line(n, s, plan) for n, s in enumerate(answer.steps, 1)]
    return out


def to_json(answer: Answer) -> dict[str, Any]:
    plan = answer.plan
    first = plan.commits[answer.first_bad] if answer.kind == "found" and answer.first_bad is not None else None
    return {
        "command": "bisect",
        "good": plan.good,
        "bad": plan.bad,
        "commits": plan.searched,
        "pairing": plan.pairing,
        "cases": list(plan.cases),
        "answer": answer.kind,
        "first_bad": {"sha": first[0], "subject": first[1]} if first and not answer.candidates else None,
        "candidates": [plan.commits[i][0] for i in answer.candidates],
        "by": answer.by or None,
        "sure": sureness(answer) if answer.kind == "found" else None,
        "said": list(answer.said),
        "steps": [
            {**s.to_json(), "subject": plan.commits[s.index][1] if s.index >= 0 else "", "reused": s.reused or None}
            for s in answer.steps
        ],
        "wall_s": round(answer.wall_s, 1),
        "lines": lines(answer),
        "exit": 1 if answer.failed else 0,
    }
