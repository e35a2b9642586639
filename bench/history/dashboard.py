"""The history as it is shown. `history check`'s findings as lines to print, a Markdown summary for a
CI page and JSON for tools. And a static site: index.html with every series in a table, and a
section per series (case x machine): its time over commits with the 95% CI band, the change points,
outliers and unconfirmed commits marked, and a link to the latest run's report. Opens from disk: no
server, no network, no script; the plots are inline SVG, the style is inline."""

import datetime
import html
import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.history.changes import Change, Excursion
from bench.history.series import BASES as series_bases
from bench.history.series import Check, Series
from bench.report import fmt
from bench.text import markdown, printable

STYLE = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1250px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}th{background:#f0f0f0}
td.case,td.machine,th.left{text-align:left}
.slower{color:#b22222;font-weight:bold}.faster{color:#1a7f37}.work{color:#6a3d9a;font-weight:bold}
.outlier{color:#c76e00}.unconfirmed{color:#b22222;font-style:italic}section{border-top:1px solid #ddd;margin-top:1.5em}
figure{margin:.5em 0}figure svg{max-width:100%;height:auto}code{background:#f3f3f3;padding:0 .2em}"""


def _e(text):
    return html.escape(printable(text))


def _ms(seconds):
    return fmt.sig(seconds * 1e3, 3) if seconds and math.isfinite(seconds) else "–"


def _anchor(i):
    return f"series-{i}"


def change_text(series: Series, ch: Change) -> tuple[str, str]:
    pts = series.points
    first, last = pts[ch.start].commit[:10], pts[ch.end].commit[:10]
    span = f"at {first}" if ch.start == ch.end else f"from {first} to {last}"
    direction = "slower" if ch.ratio > 1 else "faster"
    paired = pts[ch.start].parent if series.basis == "parent" and ch.start == ch.end else None
    against = (
        f", x{paired[1]:.3f} [{paired[2]:.3f}, {paired[3]:.3f}] against its parent in one process" if paired else ""
    )
    return f"{(ch.ratio - 1) * 100:+.1f}% ({direction}, {ch.kind}{against}) {span}", direction


def excursion_text(series: Series, e: Excursion) -> tuple[str, str]:
    """An outlier or unconfirmed commits in one line, and its CSS class (its kind)."""
    pts = series.points
    span = (
        f"at {pts[e.start].commit[:10]}"
        if e.start == e.end
        else f"from {pts[e.start].commit[:10]} to {pts[e.end].commit[:10]}"
    )
    why = (
        f"one commit, undone by the next: a {'slow' if e.ratio > 1 else 'fast'} run, left out of the change points"
        if e.kind == "outlier"
        else "the newest commit" + ("s" if e.end > e.start else "") + ": a step or a slow run, which the next "
        "commits will tell; not a change until its level holds"
    )
    return f"{e.kind}: {(e.ratio - 1) * 100:+.1f}% {span} ({why})", e.kind


def work_source(w: Any) -> str:
    """Where a work change was seen: the counters (exact) or the instructions under Callgrind."""
    return "instructions under Callgrind" if w.instructions is not None else "exact, from the counters"


def bisect_hint(series: Series, start: int, end: int) -> str:
    """The command that names the commit of a change found between measured commits: from the last
    measured commit before it to the first at the new level ("" for the first commit measured)."""
    if start < 1:
        return ""
    good, bad = series.points[start - 1].commit, series.points[end].commit
    name, *fields = series.case.split(" ")
    size = dict(f.split("=", 1) for f in fields if f.count("=") == 1)
    parts = name.split("/")
    if len(parts) != 4 or not all(k in size for k in ("n", "m", "nh")):
        return ""  # not a case label bisect can time
    framework, step, backend, device = parts
    return (
        f"python -m bench bisect {good[:12]} {bad[:12]} --framework {framework} --step {step} --backend {backend} "
        f"--device {device} --size {size['n']},{size['m']},{size['nh']} --case {shlex.quote(series.case)}"
    )


def check_lines(check: Check) -> list[str]:
    """`history check`'s findings, a line each (a change, with the bisection that names its commit),
    then the line that says the verdict (check_verdict)."""
    lines = []
    for s, ch in check.slowdowns:
        hint = bisect_hint(s, ch.start, ch.end)
        lines += [f"SLOWER: {s.case} [{s.machine}]: {change_text(s, ch)[0]}", *([f"  bisect: {hint}"] if hint else [])]
    lines += [f"{s.case} [{s.machine}]: {excursion_text(s, x)[0]}" for s, x in check.apart]
    for s, w, fails in check.work:
        hint = bisect_hint(s, w.index, w.index) if fails else ""
        lines += [
            f"{'WORK CHANGED' if fails else 'work changed'}: {s.case} [{s.machine}] at {w.commit[:10]} "
            f"({work_source(w)}): {'; '.join(w.what)}",
            *([f"  bisect: {hint}"] if hint else []),
        ]
    return [printable(line) for line in [*lines, check_verdict(check)]]


def check_verdict(check: Check) -> str:
    """One line: how many slowdowns, work changes, outliers and unconfirmed commits; passing or not."""
    kinds = [x.kind for _, x in check.apart]
    failing = sum(fails for _, _, fails in check.work)
    return (
        f"history check: {len(check.slowdowns)} slowdown(s) over {check.threshold:.0%} among the last "
        f"{check.last} commits"
        + (f", {len(check.work)} work change(s) ({failing} failing)" if check.work else "")
        + (f", {kinds.count('outlier')} outlier(s)" if "outlier" in kinds else "")
        + (
            f", {kinds.count('unconfirmed')} unconfirmed (not failing until confirmed)"
            if "unconfirmed" in kinds
            else ""
        )
        + ("" if check.failed else "; passing")
    )


def check_markdown(check: Check, db_shown: str) -> str:
    """`history check` as a Markdown section for a CI page: the verdict, then the slowdowns (which
    fail), the work changes, and the outliers and unconfirmed commits (which do not)."""
    slow, work = len(check.slowdowns), sum(fails for _, _, fails in check.work)
    headline = (
        f"{slow} slowdown(s)" + (f", {work} failing work change(s)" if work else "") if check.failed else "passing"
    )
    groups = [
        (
            "Slowdowns (failing)",
            [
                f"{s.case} [{s.machine}]: {change_text(s, ch)[0]}"
                + (f"; bisect: {hint}" if (hint := bisect_hint(s, ch.start, ch.end)) else "")
                for s, ch in check.slowdowns
            ],
        ),
        (
            "Work changed (exact, from the counters; or instructions under Callgrind)",
            [
                f"{s.case} [{s.machine}] at {w.commit[:10]}: {'; '.join(w.what)}" + (" (FAIL)" if fails else "")
                for s, w, fails in check.work
            ],
        ),
        (
            "Outliers and unconfirmed commits (not failing)",
            [f"{s.case} [{s.machine}]: {excursion_text(s, x)[0]}" for s, x in check.apart],
        ),
    ]
    lines = [f"## History check: {markdown(headline)}", "", f"Store: {markdown(db_shown)}", ""]
    for title, items in groups:
        if items:
            lines += [f"**{title}**", "", *(f"- {markdown(item)}" for item in items), ""]
    lines += [f"**{markdown(check_verdict(check))}**", ""]
    return "\n".join(lines) + "\n"


def check_json(check: Check, db_shown: str) -> dict[str, Any]:
    """`history check` as plain data for tools: each finding with its series, kind, ratio and commits."""

    def finding(s: Series, found: Change | Excursion, text: str) -> dict[str, Any]:
        """A change point or a set-apart excursion: its series, ratio, kind, first and last commit."""
        first, last = s.points[found.start].commit, s.points[found.end].commit
        return {
            "case": s.case,
            "machine": s.machine,
            "ratio": found.ratio,
            "kind": found.kind,
            "first": first,
            "last": last,
            "text": text,
        }

    return {
        "command": "history check",
        "store": db_shown,
        "threshold": check.threshold,
        "last": check.last,
        "verdict": "failed" if check.failed else "passing",
        "failed": check.failed,
        "summary": check_verdict(check),
        "slowdowns": [
            {**finding(s, ch, change_text(s, ch)[0]), "bisect": bisect_hint(s, ch.start, ch.end) or None}
            for s, ch in check.slowdowns
        ],
        "set_apart": [finding(s, x, excursion_text(s, x)[0]) for s, x in check.apart],
        "work_changes": [
            {
                "case": s.case,
                "machine": s.machine,
                "commit": w.commit,
                "what": list(w.what),
                "fails": fails,
                "bisect": bisect_hint(s, w.index, w.index) or None,
            }
            for s, w, fails in check.work
        ],
    }


# how the plot marks each kind of excursion (changes.Excursion), and what its legend says
MARKS: dict[str, dict[str, Any]] = {
    "outlier": dict(
        marker="o",
        markersize=10,
        markerfacecolor="none",
        markeredgecolor="#c76e00",
        markeredgewidth=1.6,
        label="outlier: one commit undone by the next (left out of the change points)",
    ),
    "unconfirmed": dict(
        marker="D",
        markersize=8,
        markerfacecolor="none",
        markeredgecolor="#b22222",
        markeredgewidth=1.6,
        label="unconfirmed: the newest commits, a step or a slow run (not a change yet)",
    ),
}


def plot_svg(series: Series) -> str:
    """The series' plot as SVG text: median per commit, its CI band, change points marked."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import io

    import matplotlib.pyplot as plt

    pts = series.points
    x = list(range(len(pts)))
    y = [p.median_s * 1e3 for p in pts]
    lo = [p.lo_s * 1e3 if math.isfinite(p.lo_s) else p.median_s * 1e3 for p in pts]
    hi = [p.hi_s * 1e3 if math.isfinite(p.hi_s) else p.median_s * 1e3 for p in pts]
    fig, ax = plt.subplots(figsize=(11, 3.4), layout="constrained")
    ax.fill_between(x, lo, hi, color="#1f77b4", alpha=0.2, linewidth=0, label="95% CI of the median")
    ax.plot(x, y, marker="o", markersize=3, color="#1f77b4", linewidth=1.2, label="median per commit")
    for kind, mark in MARKS.items():
        marked = [i for e in series.excursions if e.kind == kind for i in range(e.start, e.end + 1)]
        if marked:
            ax.plot(marked, [y[i] for i in marked], linestyle="none", **mark)
    for ch in series.changes:
        colour = "#b22222" if ch.ratio > 1 else "#1a7f37"
        ax.axvspan(ch.start - 0.5, ch.end + 0.5, color=colour, alpha=0.15, linewidth=0)
        ax.axvline(ch.start - 0.5, color=colour, linewidth=1.2, linestyle="--")
        ax.annotate(
            f"{(ch.ratio - 1) * 100:+.1f}%",
            (ch.start - 0.5, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            color=colour,
            fontsize=9,
            fontweight="bold",
        )
    step = max(1, len(pts) // 25)
    ax.set_xticks(x[::step], [p.commit[:7] for p in pts][::step], rotation=60, fontsize=7)
    ax.set_xlim(-0.5, len(pts) - 0.5)
    ax.set_ylabel("median ms per step")
    ax.set_xlabel("commit (oldest left)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _instructions_line(series: Series, last: int = 12) -> str:
    """The case's instructions a call under Callgrind, commit by commit (the last `last` counted), or ""."""
    counted = [p for p in series.points if p.instructions]
    if not counted:
        return ""
    shown = ", ".join(f"{_e(p.commit[:10])} {p.instructions:,.0f}" for p in counted[-last:])
    return f"<p>Instructions a call under Callgrind, by commit: {shown}.</p>"


def _report_link(series, out):
    """A relative link to the latest run's report.html when its folder is still there."""
    for source in reversed(series.points[-1].sources):
        report = (
            Path(source).parent / "report.html"
            if Path(source).name == "records.jsonl"
            else Path(source) / "report.html"
        )
        if report.is_file():
            return os.path.relpath(report.resolve(), out.resolve())
    return None


def write(all_series: Sequence[Series], out: Path | str, db_shown: str) -> Path:
    """out/index.html for `all_series` (series.Series); returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    commits = {p.commit for s in all_series for p in s.points}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    rows, sections = [], []
    for i, s in enumerate(all_series):
        found = [change_text(s, ch) for ch in s.changes] + [excursion_text(s, e) for e in s.excursions]
        found += [
            (f"work changed at {w.commit[:10]} ({work_source(w)}): {'; '.join(w.what)}", "work") for w in s.work_changes
        ]
        trend, _ = s.trend()
        assert s.latest is not None  # series.build() makes no series without points
        rows.append(
            f'<tr><td class="case"><a href="#{_anchor(i)}">{_e(s.case)}</a></td>'
            f'<td class="machine">{_e(s.machine)}</td>'
            f"<td>{len(s.points)}</td><td>{_ms(s.latest.median_s)}</td>"
            f"<td>{'–' if not math.isfinite(trend) else f'{trend * 100:+.1f}%'}</td>"
            f"<td>{'; '.join(f'<span class={d!r}>{_e(t)}</span>' for t, d in found) or 'none'}</td></tr>"
        )
        link = _report_link(s, out)
        sections.append(
            f'<section id="{_anchor(i)}"><h2>{_e(s.case)}</h2><p>{_e(s.machine)}: {len(s.points)} '
            f"commit{'s' if len(s.points) != 1 else ''}, latest "
            f"{_e(s.latest.commit[:10])} at {_ms(s.latest.median_s)} ms"
            + (f' (<a href="{_e(link)}">its report</a>)' if link else "")
            + ". Changes: "
            + ("; ".join(f'<span class="{d}">{_e(t)}</span>' for t, d in found) or "none")
            + (f" (change points on {_e(series_bases[s.basis])}, the quieter)" if s.basis != "median" else "")
            + ".</p>"
            + _instructions_line(s)
            + (
                f"<figure>{plot_svg(s)}</figure></section>"
                if len(s.points) > 1
                else "<p>One commit so far: nothing to chart yet.</p></section>"
            )
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>backprop-bench history</title><style>{STYLE}</style></head><body>
<h1>backprop-bench history</h1>
<p>{len(all_series)} series (case x machine), {len(commits)} commits, from {_e(db_shown)}; written {now}.
Each point is the median of a commit's runs; the band, the 95% confidence interval of that median; a dashed line and a
shaded span mark a change point (PELT on the log times, located to its first commit; a creep spans its commits);
a hollow orange circle, an outlier (one commit off the level around it that the next commit undid: a slow run, left
out of the change points); a hollow red diamond, unconfirmed commits (the newest, off the level before them: a step
or a slow run, which the next commits will tell; <code>history check</code> does not fail on them).</p>
<table><thead><tr><th class="left">case</th><th class="left">machine</th><th>commits</th><th>latest ms</th>
<th>latest vs the 10 before</th>
<th>change points, outliers, unconfirmed</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{"".join(sections)}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
