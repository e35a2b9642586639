"""Records -> report.md, a self-contained report.html, tables/*.csv and plots/*.png|svg: each run's
environment, what to distrust, the per-device tables and the figures. Rebuilt from records alone;
needs NumPy, pandas and matplotlib, never a framework."""

import base64
import html
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import bench.report.fmt as fmt
import bench.report.frames as frames
import bench.report.plots as plots
from bench import fingerprint, noise, process, stats, telemetry
from bench.records import CASE_FIELDS, Record
from bench.report.frames import frame, title

MAX_DISTRUST_ITEMS = 20  # items listed under one heading of "What to distrust"; the rest are counted

# file name -> (heading, what the figure shows in one sentence); the order of the report.
PLOTS = {
    "bars": (
        "Time per case",
        "Median time of each case, grouped by step, one colour per backend, one panel per device and size; "
        "error bars span the median's 95% interval and the fastest case of each step is outlined where the "
        "comparison shows it faster than the runner-up (as the bold cells).",
    ),
    "scaling_n": (
        "Scaling with n",
        "Time against n on log-log axes, one line per case (colour: backend, marker: framework, "
        "line style: what else differs, e.g. the device or nh), with every crossing of two lines marked and "
        "numbered as in the crossover table.",
    ),
    "scaling_nh": (
        "Scaling with nh",
        "Time against the hidden width nh on log-log axes, one line per case, crossings marked.",
    ),
    "depth": (
        "Depth",
        "Median time per step against the number of hidden layers (a depth sweep: run --depths), "
        "each measured depth with its 95% interval, each backend's least-squares line dashed; the legend "
        "gives its per-layer cost and per-call overhead with their bootstrap 95% intervals.",
    ),
    "roofline": (
        "Roofline",
        "Each device's measured float32 GEMM (compute) and copy (bandwidth) ceilings (the best any "
        "framework reached there, which % of peak in the tables is also against; a framework's own, where "
        "lower, dashed), with every case (hollow: bfloat16, float16 or TF32) "
        "at its analytic arithmetic intensity and achieved GFLOP/s (the cases of one size share an intensity: "
        "their markers are spread sideways, and the plot says so).",
    ),
    "payback": (
        "Compile pay-back",
        "For each compiled backend (tf.function, XLA, torch.compile, jax.jit) at each size, how "
        "many steady calls it takes for the saving per call against eager to repay the compile overhead "
        "(trace + first call - one steady call).",
    ),
    "launch": (
        "Launch overhead",
        "Per device, step and precision, each backend's timed median against n (solid: the "
        "case's timer, CUDA events where it has them), the host clock around the same calls and their sync "
        "(dashed, where the timer is a device's own: on a CPU the host clock is the timer, so no dashed line) "
        "and the time a call takes to return without a sync (dotted). Where the lines flatten "
        "towards small n, launching and synchronising, not the arithmetic, set the time.",
    ),
    "replicas": (
        "Data-parallel scaling",
        "Per device and scaling kind, the efficiency of each engine and backend against "
        "the replicas R (strong: the same global n, speed-up / R; weak: the same n per replica, T1 / TR), "
        "with its 95% CI; 1 is perfect scaling.",
    ),
    "versions": (
        "Environments",
        "Each case that ran in several environments (run --env): its speed against the same "
        "case in the first environment (>1 faster), with its 95% CI, one marker per environment; "
        "filled where the environment is shown fastest.",
    ),
    "distribution": (
        "Distribution of the timed calls",
        "Every timed call of every case as a dot over its box (quartiles, whiskers at 1.5 IQR), in % "
        "of the case's median: noise, drift and outliers at a glance.",
    ),
}

_Drawn = tuple[tuple[Path, Path] | None, str | None, list[str]]  # what figure() returns


# ---------------------------------------------------------------- tables as text


def _cell_md(text):
    """A table cell: its own text is already inert (fmt.md for what came from records); a bare |
    would still end the cell."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(text).replace("\n", " "))


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame of text as a GitHub markdown table, its index as the first column, columns padded."""
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    rows = [[_cell_md(i)] + [_cell_md(v) for v in row] for i, row in zip(df.index, df.itertuples(index=False))]
    widths = [max(3, *(len(r[k]) for r in [header, *rows])) for k in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


_INLINE = re.compile(r"\\(.)|\*\*|`([^`]*)`")


def _inline_html(text):
    """The report's inline Markdown as HTML: backslash escapes (fmt.md) read back as the character,
    **bold** and `code`; everything else escaped."""
    out, bold, at = [], False, 0
    text = str(text)
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[at : m.start()]))
        if m.group(1) is not None:
            out.append(html.escape(m.group(1)))
        elif m.group(0) == "**":
            out.append("</strong>" if bold else "<strong>")
            bold = not bold
        else:
            out.append(f"<code>{html.escape(m.group(2))}</code>")
        at = m.end()
    out.append(html.escape(text[at:]))
    return "".join(out) + ("</strong>" if bold else "")


def html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{_inline_html(c)}</th>" for c in [df.index.name or "", *df.columns])
    body = "".join(
        "<tr><th>" + _inline_html(i) + "</th>" + "".join(f"<td>{_inline_html(v)}</td>" for v in row) + "</tr>"
        for i, row in zip(df.index, df.itertuples(index=False))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bold(text, on):
    return f"**{text}**" if on else text


RUNNER_UP = "slower ÷ faster [95% CI]"
TABLE_LEGEND = (
    "the fastest of its row: of its two lowest medians, the one shown faster than the other by the one "
    "comparison (bench/compare.py)",
    f"{RUNNER_UP}: of the same two, the slower's time over the faster's, as that comparison orders them "
    "(no mark where its interval holds 1)",
)


def _bold_text(text: str) -> str:
    return f"**{text}**"


def comparison_tables(df: pd.DataFrame, mark: Callable[[str], str] = _bold_text) -> dict[tuple, pd.DataFrame]:
    """{(where, n, m, nh, dtype, ...): a step x backend table}, the one the report, the terminal and
    the README show: each cell the median ms with its 95% interval, the fastest of its row (the
    frame's `best`, from the one comparison) marked by `mark` and printed to the digits that tell it
    from the rest of its row; a last column the runner-up's time over the lowest, with its interval,
    where a row has two timed cases."""
    out = {}
    for key, g in frames.groups(df):
        backends = list(dict.fromkeys(g.backend))
        cases = g[["row", "backend", "status", "median_ms", "ci_lo_ms", "ci_hi_ms", "best", "side"]]
        rows: dict[str, list] = {}
        for c in cases.itertuples(index=False):  # the few columns a cell needs: a wide row is slow to make
            rows.setdefault(c.row, []).append(c)
        cells = {row: _grid_row(found, backends, mark) for row, found in rows.items()}
        table = pd.DataFrame.from_dict(cells, orient="index", columns=[*backends, RUNNER_UP])
        if not table[RUNNER_UP].any():  # no row has two timed cases: nothing to compare
            table = table.drop(columns=RUNNER_UP)
        table.index.name, table.columns.name = "step", None
        out[key] = table
    return out


def text_tables(df: pd.DataFrame, smoke: bool = False) -> list[str]:
    """The comparison tables as text for a terminal (comparison_tables, the fastest of a row marked
    '*'), each under its group's title, then a legend of what the table shows."""
    lines = []
    for key, table in comparison_tables(df, mark=lambda text: f"{text} *").items():
        lines.append(f"{title(key)}: median ms [95% CI]{' (smoke test: not a measurement)' if smoke else ''}")
        lines += markdown_table(table).splitlines()
    return lines + legend(bool(df.best.any()), any(RUNNER_UP in line for line in lines))


def legend(marked: bool, compared: bool) -> list[str]:
    """The lines under a text table: what '*' and the last column say, those the table shows."""
    lines = [f"* {TABLE_LEGEND[0]}", TABLE_LEGEND[1]]
    return [text for text, shown in zip(lines, (marked, compared)) if shown]


def _grid_row(cells: list[Any], backends: list[str], mark: Callable[[str], str]) -> list[str]:
    """One step's cells (each backend's first record), then of its two lowest medians the slower's
    time over the faster's, as the one comparison (the estimate the frame's `best` rests on) orders
    them: its paired estimate may rank two close cases otherwise than their medians do."""
    timed = sorted((c for c in cells if c.status == "ok" and c.median_ms > 0), key=lambda c: c.median_ms)
    best = [c for c in timed if c.best]
    places = _distinct_places(best[0].median_ms, [c.median_ms for c in timed if not c.best]) if best else None
    first = {c.backend: c for c in reversed(cells)}
    out = [_grid_cell(first[b], places, mark) if b in first else "" for b in backends]
    if len(timed) < 2:
        return [*out, ""]
    e = frames.estimate(*_two_fastest(timed))
    return [*out, fmt.interval(e.ratio, e.lo, e.hi, "×")]


def _grid_cell(c: Any, places: int | None, mark: Callable[[str], str]) -> str:
    if c.status != "ok" or not c.median_ms > 0:
        return str(c.status)
    text = fmt.interval(c.median_ms, c.ci_lo_ms, c.ci_hi_ms, min_places=places)
    return mark(text) if c.best else text


def _distinct_places(best_ms: float, others_ms: Any) -> int | None:
    """The fewest decimal places (from hundreds) at which `best_ms` prints unlike each of `others_ms`."""
    for places in range(-2, 7):
        if all(fmt.fixed(o, places) != fmt.fixed(best_ms, places) for o in others_ms):
            return places
    return None


def _speedup_cell(ratio: float, lo: float, hi: float, base: str, paired: bool = True) -> str:
    """A speed-up against a base as a table cell: `base` for the base itself (1 [1, 1]), the ratio
    with its interval (fmt.interval), marked "(unpaired)" where it is, "–" where there is none."""
    if ratio == lo == hi == 1:
        return base
    if not math.isfinite(ratio):
        return "–"
    return fmt.interval(ratio, lo, hi, "×") + ("" if paired else " (unpaired)")


def _peak_cell(c: Any) -> str:
    """A device allocator's peak, measured for each case alike; "–" where the peak is the process's
    RSS, which depends on which cases ran before in the process."""
    return fmt.sig(c.peak_mib, 3) if isinstance(c.peak_method, str) and "allocator peak" in c.peak_method else "–"


def detail_table(g: pd.DataFrame, short: Callable[[str], str]) -> pd.DataFrame:
    """One row per case of a group: every figure the report has for it."""
    rows = {}
    for c in g.itertuples():
        name = _bold(f"{short(c.row)} · {c.backend}", c.best)
        flags = [
            f
            for f, on in (
                ("noisy", c.noisy),
                ("retraced", c.retraced is True),
                ("reduced n", isinstance(c.note, str) and bool(c.note)),
            )
            if on
        ]
        if c.status != "ok":
            rows[name] = {"median ms [95% CI]": c.status, "flags": ", ".join([*flags, "see 'What to distrust'"])}
            continue
        hw = fmt.median_half_width(c)
        relative = hw / c.median_ms if hw is not None and c.median_ms > 0 else None
        speedup = _speedup_cell(c.speedup, c.speedup_lo, c.speedup_hi, "reference", c.speedup_paired)
        first = (c.trace_ms if math.isfinite(c.trace_ms) else 0) + c.first_call_ms
        rows[name] = {
            "median ms [95% CI]": fmt.interval(c.median_ms, c.ci_lo_ms, c.ci_hi_ms),
            "IQR": fmt.pct(c.iqr_pct),
            "speed-up [95% CI]": speedup,
            "GFLOP/s": fmt.round_to_spread(c.gflops, c.gflops * relative if relative else None),
            "% of peak": fmt.round_to_spread(c.pct_of_peak, c.pct_of_peak * relative if relative else None),
            "% of its shapes' peak": (
                fmt.round_to_spread(c.pct_of_shape_peak, c.pct_of_shape_peak * relative if relative else None)
                if math.isfinite(c.pct_of_shape_peak)
                else "–"
            ),
            "memory MiB (analytic)": fmt.sig(c.estimate_mib, 3),
            "allocator peak MiB": _peak_cell(c),
            **(
                {
                    "host-clock ms (gap)": f"{fmt.sig(c.host_median_ms, 3)} "
                    f"(+{fmt.sig(c.host_median_ms - c.median_ms, 2)})"
                }
                if math.isfinite(c.host_median_ms)
                else {}
            ),
            **({"dispatch ms": fmt.sig(c.dispatch_ms, 2)} if math.isfinite(c.dispatch_ms) else {}),
            "first call ms (of which trace)": fmt.sig(first, 2)
            + (f" ({fmt.sig(c.trace_ms, 2)})" if math.isfinite(c.trace_ms) else ""),
            "max rel err": f"{c.max_rel_err:.1e}" if math.isfinite(c.max_rel_err) else "–",
            "samples": f"{c.samples}" + (f" ({c.stop_reason})" if c.stop_reason else ""),
            "flags": ", ".join(flags),
        }
    out = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    out.index.name = "case"
    return out


def payback_table(pb: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for c in pb.sort_values(["where", "n"], kind="stable").itertuples():
        rows.append(
            {
                "device and size": f"{c.where}, n={c.n}, {frames.variant([getattr(c, f) for f in frames.VARIANT])}",
                "case": f"{c.row} · {c.backend}",
                "compile overhead ms": fmt.sig(c.overhead_ms, 2),
                "saving ms per call [95% CI]": fmt.interval(c.saving_ms, c.saving_lo_ms, c.saving_hi_ms),
                "pays back after": _payback_cell(c),
            }
        )
    return pd.DataFrame(rows).set_index("device and size")


def _payback_cell(c: Any) -> str:
    """Calls to pay back with their interval where the compiled case is shown faster than eager;
    'never' where it is shown slower; where neither is shown, no count (the saving may be none)."""
    if c.shown == "slower":
        return "never (slower than eager)"
    if c.shown != "faster":
        return "not shown: its saving's interval holds 0"
    calls = int(c.payback_calls)
    high = "∞" if not math.isfinite(c.payback_hi) else f"{int(c.payback_hi):,}"
    return f"{calls:,} call{'s' if calls != 1 else ''} [{int(c.payback_lo):,}, {high}]"


def precision_tables(pr: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """{(where, n, m, nh, cache): one row per case and precision}: median, speed-up against float32, error."""
    out = {}
    for key, g in pr.groupby(["where", "n", "m", "nh", "cache"], sort=False):
        rows = []
        for c in g.itertuples():
            if c.status != "ok":
                timing = c.status
            else:
                timing = fmt.sig(c.median_ms, 3)
            speedup = _speedup_cell(c.speedup, c.speedup_lo, c.speedup_hi, "float32")
            rows.append(
                {
                    "case": f"{c.framework}/{c.step} · {c.backend}",
                    "precision": c.precision,
                    "median ms": timing,
                    "against float32 [95% CI]": speedup,
                    "max rel err": f"{c.max_rel_err:.1e}" if math.isfinite(c.max_rel_err) else "–",
                }
            )
        out[key] = pd.DataFrame(rows).set_index("case")
    return out


def _group_tables(tables: dict[tuple, Any]) -> list[tuple[str, Any]]:
    """A heading and a table per group of {(device, n, m, nh, [more...], cache): table}: the
    precision and environment sections."""
    blocks: list[tuple[str, Any]] = []
    for (w, n, m, nh, *more, cache), table in tables.items():
        heading = ", ".join([w, f"n={n}", f"m={m}", f"nh={nh}", *map(str, more)])
        blocks += [("h3", heading + (f", {cache} cache" if cache != "warm" else "")), ("table", table)]
    return blocks


def version_tables(vr: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """{(where, n, m, nh, precision, cache): one row per case and environment}: the framework's
    version, the median with its CI, the speed against the first environment."""
    out = {}
    for key, g in vr.groupby(["where", "n", "m", "nh", "precision", "cache"], sort=False):
        first = g.deps.iloc[0]
        rows = []
        for c in g.itertuples():
            if c.status != "ok":
                timing = f"{c.status}: {c.error}" if c.error else c.status
            else:
                timing = fmt.sig(c.median_ms, 3)
            against = _speedup_cell(c.speedup, c.speedup_lo, c.speedup_hi, "first", c.paired)
            rows.append(
                {
                    "case": f"{c.framework}/{c.step} · {c.backend}",
                    "environment": _bold(c.deps, c.standing == "fastest"),
                    "version": c.framework_version or "?",
                    "median ms": timing,
                    f"against {first} [95% CI]": against,
                }
            )
        out[key] = pd.DataFrame(rows).set_index("case")
    return out


def scaling_tables(sc: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """{(where, m, nh, precision, kind): one row per case and R}: median, speed-up and efficiency
    with their CIs, the all-reduce's time where the engine exposes it."""
    out = {}
    for key, g in sc.groupby(["where", "m", "nh", "precision", "kind"], sort=False):
        if g.replicas.nunique() < 2:
            continue  # R=1 alone scales nothing (the engine's cost at R=1 has its own table)
        rows = []
        for c in g.sort_values(
            ["framework", "engine", "backend", "n_per_replica" if key[-1] == "weak" else "n", "replicas"], kind="stable"
        ).itertuples():
            base = c.speedup == c.speedup_lo == c.speedup_hi == 1
            rows.append(
                {
                    "case": f"{c.framework}/{c.step} · {c.backend}",
                    "engine": c.engine,
                    "R": c.replicas,
                    "n": f"{c.n:,}",
                    "n per replica": f"{c.n_per_replica:,}",
                    "median ms": fmt.sig(c.median_ms, 3),
                    "speed-up [95% CI]": "×1 (base)"
                    if base
                    else fmt.interval(c.speedup, c.speedup_lo, c.speedup_hi, "×"),
                    "efficiency [95% CI]": "1 (base)"
                    if base
                    else fmt.interval(c.efficiency, c.efficiency_lo, c.efficiency_hi),
                    "all-reduce ms (share)": f"{fmt.sig(c.allreduce_ms, 2)} ({c.allreduce_share:.0%})"
                    if math.isfinite(c.allreduce_ms)
                    else "not exposed",
                }
            )
        table = pd.DataFrame(rows).set_index("case")
        out[key] = table.drop(columns=["speed-up [95% CI]"]) if key[-1] == "weak" else table
    return out


def _overhead_reading(lo: float, hi: float) -> str:
    """What an R=1 ratio's interval says: a cost only where it lies above 1."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    if lo > 1:
        return "the engine's cost"
    if hi < 1:
        return (
            "faster under the engine beyond the noise between processes: no cost can be; the two runs "
            "differ in more than the engine"
        )
    return "no difference shown"


def engine_overhead_table(sc: pd.DataFrame) -> pd.DataFrame:
    """R=1 under each engine against the plain single-device case, both timed by the same loop."""
    one = sc[(sc.kind == "strong") & (sc.replicas == 1) & sc.overhead.notna()]
    rows = [
        {
            "device": c.where,
            "case": f"{c.framework}/{c.step} · {c.backend}",
            "engine": c.engine,
            "n": f"{c.n:,}",
            "one device ms": fmt.sig(c.single_ms, 3),
            "R=1 under the engine ms": fmt.sig(c.median_ms, 3),
            "overhead [95% CI]": fmt.interval(c.overhead, c.overhead_lo, c.overhead_hi, "×"),
            "reading": _overhead_reading(c.overhead_lo, c.overhead_hi),
        }
        for c in one.itertuples()
    ]
    return pd.DataFrame(rows).set_index("device") if rows else pd.DataFrame()


MAX_COUNTER_ROWS = 40


def counters_table(records: Iterable[Record]) -> pd.DataFrame:
    """One row per timed case with counters: its ops a step, the most frequent types, fusions, the
    framework's FLOPs against the analytic count, retraces (newest record of a case, in order)."""
    from bench import counters

    rows = {}
    for r in records:
        c = r.counters
        if r.status != "ok" or not c:
            continue
        ops = c.get("ops") or {}
        top = sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
        flops = c.get("flops")
        rows[r.case] = {
            "case": f"{r.framework}/{r.step} · {r.backend}",
            "where": f"{r.device}, n={r.n:,}, {r.case.precision}",
            "ops a step": counters.total(ops) if ops else "-",
            "most frequent": ", ".join(f"{n} {k}" for k, n in top) + (", ..." if len(ops) > 4 else ""),
            "fusions": c.get("fusions", "-"),
            "kernels a step": counters.total(c["kernels"]) if c.get("kernels") else "-",
            "FLOPs (framework)": f"{flops:.4g}" if flops else "-",
            "vs analytic": f"{flops / r.flops:.3f}" if flops and r.flops else "-",
            "retraces": c.get("retraces", "-"),
        }
    return pd.DataFrame(list(rows.values())).set_index("case") if rows else pd.DataFrame()


def counters_long(records: Iterable[Record]) -> pd.DataFrame:
    """Every counted op type of every case, long format: one row per case and op type."""
    out = []
    for r in records:
        for field in ("ops", "kernels"):
            for op, n in sorted((r.counters.get(field) or {}).items()):
                out.append({**r.case.asdict(), "run_id": r.run_id, "counter": field, "type": op, "per_step": n})
    return pd.DataFrame(out, columns=[*CASE_FIELDS, "run_id", "counter", "type", "per_step"])


def crossover_table(crossings: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {
            "#": c.number,
            "step": c.step,
            "crossing at": f"{c.var} ≈ {fmt.sig(c.crossing, 2)}",
            "time ms": fmt.sig(c.time_ms, 2),
            "faster beyond": c.faster_beyond,
            "slower beyond": c.slower_beyond,
            "either side": "shown: each faster on its side" if c.supported else "not shown to cross",
        }
        for c in crossings.itertuples()
    ]
    return pd.DataFrame(rows).set_index("#")


# ---------------------------------------------------------------- runs and what to distrust


def _runs(records):
    """{run_id: [records]} in order of first appearance."""
    runs: dict[str, list[Record]] = {}
    for r in records:
        runs.setdefault(r.run_id or "(no run id)", []).append(r)
    return runs


def run_summary(records: Iterable[Record]) -> pd.DataFrame:
    """Environment fingerprint summary: one column per run, one row per fact."""
    columns = {}
    for run_id, rs in _runs(records).items():
        fp = rs[0].fingerprint or {}
        fws = {k: v for k, v in (fp.get("frameworks") or {}).items() if isinstance(v, dict)}
        gpus = [g for g in fp.get("gpus") or [] if isinstance(g, dict)]
        statuses = pd.Series([r.status for r in rs]).value_counts()
        tf = fws.get("tensorflow", {})
        on = sum(bool(r.tf32) for r in rs)  # what the cases ran with, not a framework's default switch
        tf32 = (
            "off in every case" if not on else "on in every case" if on == len(rs) else f"on in {on} of {len(rs)} cases"
        )
        commit = fp.get("git_commit")
        columns[run_id] = {
            "recorded (UTC)": fp.get("time_utc") or "unknown",
            "host": fp.get("hostname") or "unknown",
            "CPU": f"{fp.get('cpu_model') or 'unknown'}"
            + (f", {fp['cpu_count_logical']} logical cores" if fp.get("cpu_count_logical") else ""),
            "GPU": ", ".join(
                f"{g.get('name')}" + (f" (driver {g['driver_version']})" if g.get("driver_version") else "")
                for g in gpus
            )
            or "none",
            "devices timed": ", ".join(sorted({frames.where(r.device, r.fingerprint) for r in rs})),
            "frameworks": ", ".join(
                f"{name} {info.get('version', '?')}"
                + (f" (CUDA {info['cuda_version']})" if info.get("cuda_version") and gpus else "")
                for name, info in fws.items()
            )
            or "unknown",
            "Python, NumPy": f"{fp.get('python') or '?'}, {fp.get('numpy') or '?'}",
            "git": (commit[:10] + (" (uncommitted changes)" if fp.get("git_dirty") else "") if commit else "unknown"),
            "data": fp.get("data_source") or rs[0].data or "unknown",
            "TF32": tf32,
            "oneDNN": (
                str(tf.get("onednn") or (fp.get("env") or {}).get("TF_ENABLE_ONEDNN_OPTS") or "unknown")
                if "tensorflow" in {r.framework for r in rs}
                else "no TensorFlow case"
            ),
            "cases": ", ".join(f"{statuses[s]} {s}" for s in ("ok", "failed", "skipped") if s in statuses),
        }
    out = pd.DataFrame(columns)
    out.index.name = "run"
    return out


def _case(c):
    """A frame row (from itertuples) as one line naming its device, size and case."""
    variant = frames.variant([getattr(c, f) for f in frames.VARIANT])
    return f"{c.where}, n={c.n}, m={c.m}, nh={c.nh}, {variant}: {c.row}/{c.backend}"


def distrust(records: Iterable[Record], df: pd.DataFrame) -> list[tuple[str, list[str] | None]]:
    """[(heading, [items] or None)] of everything that makes a number less trustworthy; an empty
    list means 'checked, none found', None 'not recorded' (records without that field)."""
    runs = _runs(records)
    noisy = [
        f"{_case(c)}: IQR {fmt.pct(c.iqr_pct)} of the median"
        + (f" (stopped: {c.stop_reason})" if c.stop_reason else "")
        for c in df[df.noisy].itertuples()
    ]
    checked = df.retraced.notna().any()
    retraced = (
        None
        if not checked
        else [
            f"{_case(c)}: traced {int(c.tracing_count) if math.isfinite(c.tracing_count) else 'again'} times; "
            "its timed calls include tracing"
            for c in df[df.retraced.eq(True)].itertuples()
        ]
    )
    failed = [f"{_case(c)}: {c.error or 'no reason recorded'}" for c in df[df.status == "failed"].itertuples()]
    skipped = [f"{_case(c)}: {c.error or 'no reason recorded'}" for c in df[df.status == "skipped"].itertuples()]
    notes = df[df.note.notna() & (df.note != "")]
    reduced = [f"{_case(c)}: {c.note}" for c in notes.itertuples()]
    interrupted = [
        f"{_case(c)}: {c.samples} samples when a signal stopped the run (--resume times it again)"
        for c in df[(df.stop_reason == "interrupted") & (df.status == "ok")].itertuples()
    ]
    few = [
        f"{_case(c)}: {c.samples} samples, too few for a 95% CI of the median ({stats.min_ci_samples()} needed)"
        for c in df[(df.status == "ok") & (df.samples > 0) & df.ci_lo_ms.isna()].itertuples()
    ]
    mismatches = []
    (first_id, first), *others = runs.items() or [(None, None)]
    for run_id, rs in others:
        lines = fingerprint.differences(first[0].fingerprint or {}, rs[0].fingerprint or {})
        mismatches += [fmt.md(f"{first_id} vs {run_id}: {line}") for line in lines]
    synthetic = [
        fmt.md(f"run {run_id}: {source}")
        for run_id, rs in runs.items()
        for source in sorted({r.data for r in rs if (r.data or "").startswith("synthetic")})
    ]
    tf32 = [
        fmt.md(f"run {run_id}: {ran} case(s) timed with float32 matmuls in TF32 (labelled +tf32)")
        for run_id, rs in runs.items()
        if (ran := sum(1 for r in rs if r.tf32 and r.status == "ok"))
    ]
    above = [
        f"{_case(c)}: {fmt.sig(c.gflops, 3)} GFLOP/s, {fmt.sig(c.pct_of_peak, 3)}% of the measured "
        f"{fmt.sig(c.gemm_peak_gflops, 3)} GFLOP/s"
        for c in df[df.pct_of_peak > 100].itertuples()
    ]
    throttled = None
    if df.throttled_samples.notna().any():
        share = df.throttled_samples / df.samples.where(df.samples > 0)
        throttled = [
            f"{_case(c)}: {int(c.throttled_samples)} of {c.samples} samples taken while the GPU held its "
            "clocks down (power or thermal)"
            for c in df[share > telemetry.THROTTLED_SHARE].itertuples()
        ]
    busy = None
    if df.other_cores.notna().any():
        busy = [
            f"{_case(c)}: other processes kept {fmt.sig(c.other_cores, 2)} cores busy (median) while it was timed"
            for c in df[df.other_cores > telemetry.BUSY_CORES].itertuples()
        ]
    return [
        ("Noisy cases (IQR over 10% of the median)", noisy),
        (
            f"Throttled cases (over {telemetry.THROTTLED_SHARE:.0%} of samples under a power or thermal clock limit)",
            throttled,
        ),
        (
            f"Busy machine (other processes kept over {telemetry.BUSY_CORES} of a core busy while a case was timed)",
            busy,
        ),
        ("Retraces during timing", retraced),
        ("Failed cases", failed),
        ("Skipped cases", skipped),
        ("Interrupted cases (timing cut short)", interrupted),
        ("Cases at a reduced n", reduced),
        ("Too few samples", few),
        ("Fingerprint differences between merged runs (times across them are not like for like)", mismatches),
        ("Synthetic data (times are valid; losses are not MNIST's)", synthetic),
        ("TF32 (reduced-precision float32 matmuls)", tf32),
        ("Above the measured GEMM ceiling (the ceiling was measured low, e.g. on a busy machine)", above),
    ]


# ---------------------------------------------------------------- the document


def _ms(c: Any) -> str:
    """A case's median with its interval, in ms."""
    return fmt.interval(c.median_ms, c.ci_lo_ms, c.ci_hi_ms) + " ms"


def _summary(df):
    """One line per table from the one comparison (frames.estimate): the fastest case where it is
    shown faster than the runner-up (else the two are named, not told apart), the ratio between
    them with its interval, and the speed-up against the reference case, each naming its cases."""
    items = []
    for key, g in frames.groups(df):
        timed = g[(g.status == "ok") & (g.median_ms > 0)].sort_values("median_ms", kind="stable")
        if timed.empty:
            continue
        best, second = _two_fastest(list(timed.head(2).itertuples()))
        name = f"**{best.row}/{best.backend}**"
        text = f"{title(key)}: {name}, {_ms(best)}"
        if second is not None:
            against = frames.estimate(best, second)  # the runner-up's time over the best's: its speed-up
            ratio = fmt.interval(against.ratio, against.lo, against.hi, "×")
            runner = f"{second.row}/{second.backend}"
            text = (
                f"{title(key)}: fastest {name}, {_ms(best)}, {ratio} as fast as the runner-up {runner}"
                if against.inverse().faster
                else f"{title(key)}: {name} and **{runner}** not told apart ({ratio} as fast, 95% interval holding 1), "
                f"{_ms(best)} and {_ms(second)}"
            )
        if math.isfinite(best.speedup) and best.speedup != 1 and math.isfinite(best.speedup_lo):
            ratio = fmt.interval(best.speedup, best.speedup_lo, best.speedup_hi, "×")
            shown = best.speedup_lo > 1 or best.speedup_hi < 1
            text += (
                f"; {name} against the reference {best.reference}: {ratio}"
                if shown
                else f"; {name} against the reference {best.reference}: not told apart ({ratio})"
            )
        if math.isfinite(best.pct_of_peak):
            pct = best.pct_of_peak
            text += f"; {fmt.sig(pct, 2) if pct < 100 else f'{pct:.0f}'}% of the measured GEMM peak"
        items.append(text)
    return items


def _two_fastest(timed: Sequence[Any]) -> tuple[Any, Any]:
    """(faster, slower) of the two lowest medians of `timed` (rows sorted by median) as the one
    comparison orders them (its paired estimate may rank two close cases otherwise than their
    medians do), or (the one, None)."""
    if len(timed) < 2:
        return timed[0], None
    a, b = timed[0], timed[1]
    return (b, a) if frames.estimate(a, b).ratio < 1 else (a, b)


def _noise_text(df: pd.DataFrame) -> str:
    """Which run-to-run noise figures widened the unpaired ratios, and where each comes from."""
    figures = df[["run_sd", "run_sd_source"]].dropna().drop_duplicates()
    return (
        "; ".join(f"sd {sd:.0%} of a median: {source}" for sd, source in figures.itertuples(index=False))
        or "none needed"
    )


def escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a frame whose text (all of it from records) is inert Markdown (fmt.md); numbers,
    and the tuples of samples, as they were."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: fmt.md(v) if isinstance(v, str) else v)
    return frame


def _escaped_table(table):
    out = table.map(lambda v: fmt.md(v) if isinstance(v, str) else v)
    out.index = out.index.map(fmt.md)
    out.columns = out.columns.map(fmt.md)
    out.index.name = table.index.name
    return out


Blocks = list[tuple[str, Any]]


def document(
    records: Sequence[Record],
    df: pd.DataFrame,
    pb: pd.DataFrame,
    crossings: pd.DataFrame,
    figures: dict[str, _Drawn],
    pr: pd.DataFrame | None = None,
) -> Blocks:
    """The report as blocks: (kind, content) with kind h1/h2/h3/p/ul/table/img. Every text that
    comes from records is escaped here (df, pb, crossings and pr, the precisions, are the raw frames).
    What a reader comes for first: the headline, then the results; what qualifies them after."""
    pr = frames.precisions(df) if pr is None else pr
    df, pb, crossings, pr = escaped(df), escaped(pb), escaped(crossings), escaped(pr)
    return [
        *_header(records, df),
        *_results(df),
        *_runs_and_distrust(records, df),
        *_precisions(pr),
        *_environments(df),
        *_scaling(df),
        *_depth(df),
        *_counters(records),
        *_payback(pb),
        *_crossovers(crossings),
        *_plots(figures),
        *_files(),
    ]


def _header(records: Sequence[Record], df: pd.DataFrame) -> Blocks:
    files = sorted({fmt.md(r.data) for r in records})
    return [
        ("h1", "backprop-bench report"),
        (
            "p",
            f"{len(records)} cases from {len(_runs(records))} run(s): the forward and backward pass of "
            "the lesson's MLP (lin, relu, lin, mse), each checked against a float64 reference, then timed. "
            "Times are medians of single calls, each followed by a device sync, timed by the host clock or, "
            "where a record says so, by device events (its host-clock time kept beside). "
            f"Data: {', '.join(d for d in files if d) or 'unknown'}. What qualifies these figures (noise, "
            "failures, retraces, a busy machine) is listed under 'What to distrust', after the results.",
        ),
        ("h2", "At a glance"),
        ("ul", _summary(df) or ["no case was timed"]),
    ]


def _results(df: pd.DataFrame) -> Blocks:
    blocks: Blocks = [
        ("h2", "Results per device and size"),
        (
            "p",
            "Grid: median ms of one call per step and backend, [its 95% confidence interval]; in bold "
            f"{TABLE_LEGEND[0]}; {TABLE_LEGEND[1]}. Digits are kept only where the interval "
            "supports them, the interval is rounded outward, and the point always lies inside it. "
            "Every ratio here, the bold marks, the headline, the pay-back and the crossings come from "
            "one comparison, the one `compare` and `gate` use: speed-up = reference median / case "
            "median (>1 is faster), paired by timing round when both cases come from one run and "
            "share enough rounds. 'unpaired' ones are not: within one run their samples are "
            "bootstrapped; from separate runs or processes they are widened by the noise between runs "
            f"({_noise_text(df)}). % of peak is "
            "against the device's measured float32 GEMM GFLOP/s, a square product; % of its shapes' peak "
            "against what the lesson's own products at that size reach there (its six skinny GEMMs, the "
            "best any framework timed, float32): how far a step is from what its shapes allow.",
        ),
    ]
    grids, short = comparison_tables(df), plots.short_names(df)
    for key, g in frames.groups(df):
        ref = g.reference.iloc[0] if len(g) else ""
        blocks += [
            ("h3", title(key)),
            ("table", grids[key]),
            ("p", f"Reference for speed-ups: {ref or 'none (nothing timed)'}."),
            ("table", detail_table(g, short)),
        ]
    return blocks


def _runs_and_distrust(records: Sequence[Record], df: pd.DataFrame) -> Blocks:
    items, clean, unrecorded = [], [], []
    for heading, found in distrust(records, df):
        if found is None:
            unrecorded.append(heading.split(" (")[0].lower())
            continue
        if not found:
            clean.append(heading.split(" (")[0].lower())
            continue
        count = len(found)
        if count > MAX_DISTRUST_ITEMS:  # a fleet's merged report: the tables hold every case
            found = found[:MAX_DISTRUST_ITEMS] + [
                f"... and {count - MAX_DISTRUST_ITEMS} more (tables/cases.csv lists every case)"
            ]
        items.append((f"**{heading}**: {count}", found))
    if clean:
        items.append((f"Checked, none found: {', '.join(clean)}", []))
    if unrecorded:
        items.append((f"Not recorded in these records: {', '.join(unrecorded)}", []))
    return [
        ("h2", "Runs"),
        ("table", _escaped_table(run_summary(records))),
        ("h2", "What to distrust"),
        ("causes", items),
    ]


def _precisions(pr: pd.DataFrame) -> Blocks:
    if pr.empty:
        return [("h2", "Precisions"), ("p", "No case ran at more than one precision (--dtype, --tf32).")]
    return [
        ("h2", "Precisions"),
        (
            "p",
            "Each case at every precision it ran in: its median, its speed against the same case in float32 "
            "(the one comparison; precisions are timed in separate groups, so not paired by round) and its "
            "largest error against the float64 reference, which passed the precision's own tolerance "
            "(kernels/reference.py) unless the case failed.",
        ),
        *_group_tables(precision_tables(pr)),
    ]


def _environments(df: pd.DataFrame) -> Blocks:
    vr = frames.versions(df)
    if vr.empty:
        return []
    return [
        ("h2", "Environments"),
        (
            "p",
            "Each case that ran in several environments (run --env: one environment per requirement set, its "
            "framework in a worker process of its own, the environments' workers taking turns round by "
            "round): its median and its speed against the same case in the first environment (first median "
            "/ this median, >1 faster) with its 95% interval, paired by round within one run; in bold the "
            "fastest environment of a case where it is shown faster than every other. Per case, the "
            "environment with the lowest median, those not told apart from it and those shown slower:",
        ),
        ("ul", frames.fastest_versions(vr)),
        *_group_tables(version_tables(vr)),
    ]


def _scaling(df: pd.DataFrame) -> Blocks:
    sc = frames.scaling(df)
    if sc.empty:
        return []
    blocks: Blocks = [
        ("h2", "Data-parallel scaling"),
        (
            "p",
            "The manual step over R replicas under each framework's own engine (bench/distributed/), every case "
            "checked against the float64 reference on the global batch first; times are each step's slowest "
            "process. Strong scaling keeps the global n (ideal speed-up R, efficiency speed-up / R); weak scaling "
            "keeps n per replica (ideal efficiency T1 / TR = 1). Intervals are the one comparison's for separate "
            "runs (each R runs in processes of its own, at another time), widened by the noise between runs "
            f"({_noise_text(df)}).",
        ),
    ]
    for (w, m, nh, precision, kind), table in scaling_tables(sc).items():
        blocks += [("h3", f"{kind.capitalize()} scaling: {w}, m={m}, nh={nh}, {precision}"), ("table", table)]
    overhead = engine_overhead_table(sc)
    if not overhead.empty:
        blocks += [
            ("h3", "The engine's cost at R=1"),
            (
                "p",
                "R=1 under each engine against the plain case on one device (same framework, backend, n "
                "and timing loop): overhead = engine time / one-device time. Only an interval above 1 is "
                "a cost, one below 1 a difference beyond the engine (the reading says); both intervals "
                "include the noise between runs.",
            ),
            ("table", overhead),
        ]
    return blocks


def depth_tables(fits: pd.DataFrame, vs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The depth fits and the compiled-vs-eager and autodiff-vs-hand-written differences as the
    report prints them (bench/report/depth.py; every number unrounded in tables/depth*.csv)."""
    fit_rows = pd.DataFrame(
        {
            "step": fits.step,
            "line": fits.line,
            "context": [f"{c.where}, {c.family}, n={c.n:,}, {c.precision}, {c.loss_fn}" for c in fits.itertuples()],
            "depths": fits.depths,
            "per layer ms [95% CI]": [
                fmt.interval(c.per_layer_ms, c.per_layer_lo, c.per_layer_hi) for c in fits.itertuples()
            ],
            "per call ms [95% CI]": [
                fmt.interval(c.overhead_ms, c.overhead_lo, c.overhead_hi) for c in fits.itertuples()
            ],
        }
    )

    def faster(c):
        said = [
            f"{kind} at {', '.join(map(str, getattr(c, kind)))}" for kind in ("faster", "slower") if getattr(c, kind)
        ]
        if c.undecided:
            said.append(f"undecided at {', '.join(map(str, c.undecided))}")
        return "; ".join(said)

    def crossing(c):
        if not math.isfinite(c.crossing):
            return "none at a positive depth"
        return f"{fmt.interval(c.crossing, c.crossing_lo, c.crossing_hi)}, the case cheaper {c.cheaper}"

    vs_rows = pd.DataFrame(
        {
            "case": [f"{c.framework}/{c.step}/{c.backend}" for c in vs.itertuples()],
            "against": vs.against,
            "context": [f"{c.where}, {c.family}, n={c.n:,}, {c.precision}, {c.loss_fn}" for c in vs.itertuples()],
            "extra ms per layer [95% CI]": [
                fmt.interval(c.per_layer_ms, c.per_layer_lo, c.per_layer_hi) for c in vs.itertuples()
            ],
            "extra ms per call [95% CI]": [
                fmt.interval(c.overhead_ms, c.overhead_lo, c.overhead_hi) for c in vs.itertuples()
            ],
            "fitted lines cross at depth [95% CI]": [crossing(c) for c in vs.itertuples()],
            "the comparison at each depth": [faster(c) for c in vs.itertuples()],
        }
    )
    return fit_rows.set_index("step"), vs_rows.set_index("case")


def _depth(df: pd.DataFrame) -> Blocks:
    from bench.report import depth

    fits = depth.fits(df)
    if fits.empty:
        return []
    fit_rows, vs_rows = depth_tables(fits, depth.versus(df))
    blocks: Blocks = [
        ("h2", "Depth"),
        (
            "p",
            "Each line of cases that differ in depth alone (the number of hidden layers of one width), fitted "
            "by least squares: time = per-call overhead + per-layer cost x depth. Intervals: 95%, from "
            f"{depth.REPLICATES} bootstrap resamples of each depth's samples, refitted. A step that dispatches "
            "ops one by one pays its dispatch per layer; a compiled one mostly once a call.",
        ),
        ("table", fit_rows),
    ]
    if not vs_rows.empty:
        blocks += [
            ("h3", "Compiled against eager, autodiff against the hand-written backward"),
            (
                "p",
                "Differences of the fits (case minus the other; negative is cheaper), the depth where the "
                "fitted lines cross (none: they do not cross at a positive depth), and at which measured "
                "depths the one comparison (paired by round within a run) shows the case faster, slower, or "
                "neither (its interval holds 1, or a side has under 8 samples).",
            ),
            ("table", vs_rows),
        ]
    return blocks


def _counters(records: Sequence[Record]) -> Blocks:
    executes = counters_table(records)
    if executes.empty:
        return []
    more = (
        f" The first {MAX_COUNTER_ROWS} of {len(executes)} cases; tables/counters.csv has every op type of every case."
        if len(executes) > MAX_COUNTER_ROWS
        else " tables/counters.csv has every op type of every case."
    )
    return [
        ("h2", "What each backend executes"),
        (
            "p",
            "Counted exactly in an untimed pass after each case's timing (bench/counters.py): the ops a step "
            "runs, by type (the compiler's instructions where a compiler made the step, else what the "
            "framework's profiler saw run), fusions, and FLOPs as the framework or compiler counts them beside "
            "the analytic count (kernels/cost.py). Two runs of the same code count the same; a change here is "
            "a change of the work, whatever the times say." + more,
        ),
        ("table", escaped(executes.head(MAX_COUNTER_ROWS))),
    ]


def _payback(pb: pd.DataFrame) -> Blocks:
    if pb.empty:
        return [
            ("h2", "Compile pay-back"),
            ("p", "No compiled case has a first-call time and an eager case to compare with."),
        ]
    return [
        ("h2", "Compile pay-back"),
        (
            "p",
            "Calls after which a compiled backend repays its compile overhead (trace + first call - one steady "
            "call) through its saving per call against eager of the same step, with the calls the ends of "
            "the saving's 95% interval give; a count only where the comparison shows the compiled case "
            "faster, 'never' where it shows it slower.",
        ),
        ("table", payback_table(pb)),
    ]


def _crossovers(crossings: pd.DataFrame) -> Blocks:
    if crossings.empty:
        return [("h2", "Crossovers"), ("p", "No two cases' lines cross (or no case ran at several sizes).")]
    return [
        ("h2", "Crossovers"),
        (
            "p",
            "Where one case's time line crosses another's (log-log interpolation between measured sizes); the "
            "numbers match the marks in the scaling plots. A crossing is shown by the data only where the "
            "comparison shows each line faster on its side of it, at the measured sizes either side.",
        ),
        ("table", crossover_table(crossings)),
    ]


def _plots(figures: dict[str, _Drawn]) -> Blocks:
    blocks: Blocks = [("h2", "Plots")]
    for name, (paths, reason, notes) in figures.items():
        heading, caption = PLOTS[name]
        blocks.append(("h3", heading))
        if paths:
            blocks += [("p", caption + "".join(f" Summarised: {note}." for note in notes)), ("img", name)]
        else:
            blocks.append(("p", f"Not drawn: {reason}."))
    return blocks


def _files() -> Blocks:
    return [
        ("h2", "Files"),
        (
            "p",
            "`tables/cases.csv` holds every number above unrounded (one row per case); `tables/payback.csv`, "
            "`tables/crossovers.csv`, `tables/precisions.csv`, `tables/runs.csv`, `tables/scaling.csv`, "
            "`tables/versions.csv`, `tables/counters.csv` and `tables/median_ms.csv` (every table's medians "
            "with their intervals, in long format) hold the rest. The raw samples are in the records (JSON "
            "lines) this report was built from.",
        ),
    ]


def _list_items(items):
    return [(i, []) if isinstance(i, str) else i for i in items]


def to_markdown(blocks: Iterable[tuple[str, Any]]) -> str:
    out = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + content, ""]
        elif kind == "p":
            out += [content, ""]
        elif kind in ("ul", "causes"):
            for text, sub in _list_items(content):
                out.append(f"- {text}")
                out += [f"  - {s}" for s in sub]
            out.append("")
        elif kind == "table":
            out += [markdown_table(content), ""]
        elif kind == "img":
            out += [f"![{content}](plots/{content}.png)", ""]
    return "\n".join(out)


STYLE = """body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}thead th{background:#f0f0f0}
tbody th{text-align:left;font-weight:normal;background:#fafafa}code{background:#f3f3f3;padding:0 .2em}
img{max-width:100%;height:auto;border:1px solid #eee}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def to_html(blocks: Iterable[tuple[str, Any]], images: dict[str, bytes]) -> str:
    """A single HTML file: inline style, images as base64 data: URIs, no external resources.
    images: {name: SVG bytes}."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>backprop-bench report</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline_html(content)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(content)}</p>")
        elif kind in ("ul", "causes"):
            out.append("<ul>")
            for text, sub in _list_items(content):
                inner = "".join(f"<li>{_inline_html(s)}</li>" for s in sub)
                if inner and kind == "causes":  # one line a cause; its cases folded away
                    inner = f"<details><summary>the cases</summary><ul>{inner}</ul></details>"
                elif inner:
                    inner = f"<ul>{inner}</ul>"
                out.append(f"<li>{_inline_html(text)}{inner}</li>")
            out.append("</ul>")
        elif kind == "table":
            out.append(html_table(content))
        elif kind == "img":
            data = base64.b64encode(images[content]).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(content)}" src="data:image/svg+xml;base64,{data}"></figure>')
    out.append("</body></html>")
    return "\n".join(out)


# ---------------------------------------------------------------- files


def write_csvs(
    df: pd.DataFrame,
    pb: pd.DataFrame,
    crossings: pd.DataFrame,
    records: Iterable[Record],
    out: Path,
    pr: pd.DataFrame | None = None,
) -> list[Path]:
    """tables/*.csv: every number unrounded; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("median_ms_*.csv"):  # the per-group grids of earlier versions
        stale.unlink()
    paths = []

    def put(name, table, index=False):
        path = out / name
        table.to_csv(path, index=index)
        paths.append(path)

    put("cases.csv", df.drop(columns=list(frames.OBJECT_COLUMNS)))
    put("payback.csv", pb)
    put("crossovers.csv", crossings)
    put("precisions.csv", frames.precisions(df) if pr is None else pr)
    put("scaling.csv", frames.scaling(df))
    from bench.report import depth

    put("depth.csv", depth.fits(df))
    put("depth_versus.csv", depth.versus(df))
    put("versions.csv", frames.versions(df))
    put("runs.csv", run_summary(records), index=True)
    put("counters.csv", counters_long(records))
    # every table of the report in one long file (a fleet's 2,000 sizes are 2,000 rows' groups, not files)
    put("median_ms.csv", df[[*frames.GROUP, "row", "backend", "status", "median_ms", "ci_lo_ms", "ci_hi_ms"]])
    return paths


def figure(name: str, df: pd.DataFrame, pb: pd.DataFrame, crossings: pd.DataFrame, out: Path) -> _Drawn:
    """Draw and save one plot from frames whose text is inert for matplotlib (plots.inert): (png and
    svg paths, None, notes) or (None, why not drawn, []); the files of a plot not drawn are removed."""
    if name.startswith("scaling_"):
        var = name.split("_", 1)[1]
        fig = plots.scaling(df, var, crossings[crossings["var"] == var])
    else:
        fig = {
            "bars": plots.bars,
            "roofline": plots.roofline,
            "distribution": plots.distribution,
            "launch": plots.launch,
            "replicas": plots.replicas,
            "versions": plots.versions,
            "payback": lambda _: plots.payback(pb),
            "depth": plots.depth,
        }[name](df)
    if isinstance(fig, str):
        for suffix in (".png", ".svg"):
            (out / name).with_suffix(suffix).unlink(missing_ok=True)
        return None, fig, []
    return plots.save(fig, out / name), None, getattr(fig, "bench_notes", [])


class _Drawing:
    """The report's figures, drawn while the rest of the report is made: in forked processes where
    there are several CPUs (matplotlib draws on one core), else here. A process that loaded a
    framework (its threads must not be forked) draws here too: a spawned process would spend longer
    importing pandas and matplotlib again than drawing. The figures that need no crossings start at
    once; the scaling plots when the crossings are known (scaling())."""

    def __init__(self, df: pd.DataFrame, pb: pd.DataFrame, out: Path) -> None:
        import sys

        out.mkdir(parents=True, exist_ok=True)
        self.df, self.shown, self.pb, self.out = df, plots.inert(df), plots.inert(pb), out
        workers = min(len(PLOTS), os.cpu_count() or 1)
        loaded = any(name in sys.modules for name in ("tensorflow", "torch", "jax"))  # threads a fork would copy
        self.pool = None
        if workers >= 2 and not loaded:
            import concurrent.futures
            import multiprocessing

            self.pool = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=process.die_with_parent
            )
        self.jobs: dict[str, Any] = {}
        for name in PLOTS:
            if not name.startswith("scaling_"):
                self._draw(name, self.shown.iloc[:0])

    def _draw(self, name: str, crossings: pd.DataFrame) -> None:
        args = (name, self.shown, self.pb, crossings, self.out)
        self.jobs[name] = self.pool.submit(figure, *args) if self.pool else figure(*args)

    def scaling(self, crossings: pd.DataFrame) -> None:
        """Draw the scaling plots, their crossings named as the figures name their lines."""
        columns = frames.line_key_columns("n")
        if not self.shown[columns].equals(self.df[columns]):  # text the figures show differently
            crossings = pd.concat(
                [frames.scaling_crossovers(self.shown, var) for var in frames.SIZE_VARS], ignore_index=True
            )
            crossings["number"] = range(1, len(crossings) + 1)  # as the report's crossover table numbers them
        for name in PLOTS:
            if name.startswith("scaling_"):
                self._draw(name, crossings)

    def results(self) -> dict[str, _Drawn]:
        """{plot name: figure(...)}, in the report's order, once every figure is drawn."""
        try:
            return {
                name: job.result() if self.pool else job for name, job in ((name, self.jobs[name]) for name in PLOTS)
            }
        finally:
            if self.pool:
                self.pool.shutdown()


def write(records: Iterable[Record], out_dir: Path | str, stored: noise.Figures | None = None) -> list[Path]:
    """report.md, report.html, plots/ and tables/ in out_dir, from records (duplicates merged) and
    the stored noise figures that widen comparisons of separate runs (bench/noise.py; none: the
    default); returns the paths written, report.md and report.html first."""
    out_dir = Path(out_dir)
    records = list({(r.run_id, r.case, r.status, r.samples_s, r.first_call_s, r.error): r for r in records}.values())
    df = frame(records, stored)
    pb = frames.payback(df)
    drawing = _Drawing(df, pb, out_dir / "plots")  # drawn while the crossings and tables are made
    try:
        crossings = pd.concat([frames.scaling_crossovers(df, var) for var in frames.SIZE_VARS], ignore_index=True)
        crossings["number"] = range(1, len(crossings) + 1)
        drawing.scaling(crossings)
        pr = frames.precisions(df)
        csvs = write_csvs(df, pb, crossings, records, out_dir / "tables", pr)
    finally:
        figures = drawing.results()
    blocks = document(records, df, pb, crossings, figures, pr)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(blocks), encoding="utf-8")
    images = {name: paths[1].read_bytes() for name, (paths, _, _) in figures.items() if paths}
    page.write_text(to_html(blocks, images), encoding="utf-8")
    drawn = [p for paths, _, _ in figures.values() if paths for p in paths]
    return [md, page, *drawn, *csvs]
