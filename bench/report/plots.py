"""The report's figures, drawn from a frames.frame(). Each plot function returns a matplotlib
Figure, or a str saying why the data cannot support the plot; save() writes it as PNG and SVG."""

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import bench.report.fmt as fmt
import bench.report.frames as frames

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import LineStyleType

# Fixed colours, so a backend looks the same in every figure and every report: one per backend of
# every framework; a backend not listed takes the next spare colour.
BACKEND_COLOURS = {"eager": "#1f77b4", "function": "#ff7f0e", "xla": "#2ca02c", "compile": "#9467bd", "jit": "#8c564b"}
SPARE_COLOURS = ("#e377c2", "#17becf", "#bcbd22", "#d62728", "#7f7f7f")
LINESTYLES: "tuple[LineStyleType, ...]" = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LOG_RANGE = 30  # a time axis spanning more than this factor is drawn on a log scale
# What a figure draws at most; a merged fleet's results are summarised to these, and the figure
# says what it left out (every number stays in the report's tables and tables/*.csv).
MAX_PANELS = 6
MAX_ROWS = 24  # cases in a panel of the distribution plot, bars in a panel of the pay-back plot
MAX_LINES = 12  # lines in a panel of a scaling plot
MAX_BAR_ROWS = 12  # steps (framework/step, with the run where several runs share a panel) in a bars panel


MAX_TEXT = 48  # characters of a record's text (a name, a label) a figure shows


def _inert_text(text):
    from bench.text import printable

    text = printable(text)
    return (text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…").replace("$", r"\$")


def inert(frame: "pd.DataFrame") -> "pd.DataFrame":
    """A copy of a frame whose text (from records) matplotlib draws as it is: no control characters,
    no '$' (it would start mathtext, and a malformed formula stops the drawing), and no name so long
    that the panels collapse around it."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or str(frame[column].dtype) in ("str", "string"):
            frame[column] = frame[column].map(lambda v: _inert_text(v) if isinstance(v, str) else v)
    return frame


def _note(fig, text):
    """Attach a line saying what the figure summarised (document.py prints it under the caption)."""
    if text:
        fig.bench_notes = [*getattr(fig, "bench_notes", []), text]
    return fig


def _busiest(groups, limit=MAX_PANELS):
    """The `limit` groups [(key, rows)] with the most timed cases (then the larger size), in
    their order; and a note when some were left out."""
    if len(groups) <= limit:
        return groups, None
    ranked = sorted(range(len(groups)), key=lambda i: (-int((groups[i][1].status == "ok").sum()), -groups[i][0][1]))
    keep = sorted(ranked[:limit])
    return [groups[i] for i in keep], (
        f"{limit} of {len(groups)} device/size panels drawn (those with the most "
        "timed cases); the tables hold every case"
    )


MAX_WIDTH_IN = 12.0  # a figure's width; with 9 pt text at least, >= 11 px at the HTML page's width
MIN_FONT_PT = 9


def _bottom_legend(fig: "Figure", handles: list, labels: list[str], ncol: int, title: str | None = None) -> None:
    """A legend below the panels in at most `ncol` columns, and in as few as it needs to fit the
    figure's width (a legend wider than its figure is cut at the edges: "tensorflo"); the figure
    grows by the legend's height, so a long legend does not squeeze the panels above it."""
    char_in, handle_in = 0.55 * MIN_FONT_PT / 72, 0.8

    def width(k):  # matplotlib fills a legend column by column; each column is as wide as its widest label
        rows = math.ceil(len(labels) / k)
        return sum(max(map(len, labels[i : i + rows])) * char_in + handle_in for i in range(0, len(labels), rows))

    k = max(1, min(ncol, len(labels)))
    while k > 1 and width(k) > fig.get_figwidth():
        k -= 1
    rows = math.ceil(len(labels) / k) + (1 if title else 0)
    fig.set_figheight(fig.get_figheight() + rows * 1.45 * MIN_FONT_PT / 72)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=k,
        frameon=False,
        fontsize=MIN_FONT_PT,
        title=title,
        title_fontsize=MIN_FONT_PT,
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "font.size": 10,
            "legend.fontsize": MIN_FONT_PT,
            "xtick.labelsize": MIN_FONT_PT,
            "ytick.labelsize": MIN_FONT_PT,
            "legend.title_fontsize": MIN_FONT_PT,
        }
    )
    # SVG text as text, not a path per glyph: many times faster to write, smaller, and searchable.
    matplotlib.rcParams["svg.fonttype"] = "none"
    # Element ids from a fixed salt: the same records give the same SVG, so a regenerated example diffs clean.
    matplotlib.rcParams["svg.hashsalt"] = "backprop-bench"
    import matplotlib.pyplot as plt

    return plt


def colours(df: "pd.DataFrame") -> dict[str, str]:
    """{backend: colour} for every backend in df."""
    return backend_colours(df.backend)


def backend_colours(backends: Iterable[str]) -> dict[str, str]:
    spare = iter(c for c in SPARE_COLOURS)
    return {b: BACKEND_COLOURS.get(b) or next(spare, "#7f7f7f") for b in dict.fromkeys(backends)}


def pair_colours(keys: Iterable[tuple]) -> dict[tuple, str]:
    """{(framework, backend): colour} for line keys starting with those two: the backend's own
    colour where one framework is drawn, else a colour per pair, distinct (tab20) up to 20 pairs."""
    pairs = list(dict.fromkeys(tuple(k[:2]) for k in keys))
    if len({fw for fw, _ in pairs}) <= 1:
        backend = backend_colours(b for _, b in pairs)
        return {pair: backend[pair[1]] for pair in pairs}
    from matplotlib import colormaps

    palette = [colormaps["tab20"](i) for i in range(20)]
    return {pair: _hex(palette[(2 * i) % 20 + (i // 10) % 2]) for i, pair in enumerate(pairs)}


def _hex(rgb: tuple) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3])


def short_names(df: "pd.DataFrame") -> Callable[[str], str]:
    """row label -> shown label: without the framework when there is only one."""
    single = df.framework.nunique() <= 1
    return lambda row: row.split("/", 1)[1] if single and "/" in row else row


def _figure(plt, count, ncols, width, height, extra_width=0.0, extra_height=0.0):
    """A constrained-layout figure with `count` panels in `ncols` columns, each `height` inches high
    (plus extra_width inches, e.g. for a legend at the side, and extra_height once, e.g. for a
    two-line title above panels whose height follows their rows); [axes] in reading order."""
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    # At most MAX_WIDTH_IN wide: the HTML report shows a figure at the page's width (1200 px), where
    # MIN_FONT_PT text stays at least 11 px high (a wider figure is scaled down, and its text with it).
    width = min(width, (MAX_WIDTH_IN - extra_width) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols + extra_width, height * nrows + extra_height),
        squeeze=False,
        layout="constrained",
    )
    axes = list(axes.flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _log(ax, values, axis="y"):
    """A log scale with plain-number ticks (0.5, 20, 1,000), denser the fewer decades `values` span."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    values = [v for v in values if v > 0 and math.isfinite(v)]
    decades = math.log10(max(values) / min(values)) if values else 3
    subs = (1, 2, 3, 5, 7) if decades < 1.2 else (1, 2, 5) if decades < 3.5 else (1,)
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(subs=subs))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    target.set_minor_locator(NullLocator())


def _spaced(values, min_ratio=1.4):
    """The increasing positive `values` with those closer than min_ratio to the previous one dropped,
    so tick labels on a log axis do not overlap."""
    kept: list[float] = []
    for v in values:
        if not kept or v / kept[-1] >= min_ratio:
            kept.append(v)
    return kept


def _log_if_wide(ax, values, axis="y"):
    """Log scale (True) when the values span more than LOG_RANGE."""
    values = [v for v in values if v > 0 and math.isfinite(v)]
    wide = bool(values) and max(values) / min(values) > LOG_RANGE
    if wide:
        _log(ax, values, axis)
    return wide


def save(fig: "Figure", stem: Path) -> tuple[Path, Path]:
    """stem.png and stem.svg; closes the figure; returns both paths."""
    plt = _pyplot()
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=110)
    fig.set_layout_engine("none")  # the layout the PNG computed, kept: the SVG need not lay it out again
    fig.savefig(svg, metadata={"Date": None})
    plt.close(fig)
    return png, svg


def _panel_title(key):
    """Device on one line, size and dtype on the next: fits a panel whatever the device's name."""
    w, n, m, nh, *rest = key
    return f"{w}\nn={n:,}, m={m}, nh={nh}, {frames.variant(rest)}"


def _timed(df):
    return df[(df.status == "ok") & (df.median_ms > 0)]


# ---------------------------------------------------------------- 1. bars


def _bar_rows(ax: "Axes", g: "pd.DataFrame", rows: list[str], colour: dict[str, Any]) -> None:
    """One group of bars a row (a step), one bar a backend the row has: the median with its 95%
    interval, outlined where the case is the fastest of its row, its median written above while
    the bars are few enough to read."""
    from matplotlib.transforms import blended_transform_factory

    below = blended_transform_factory(ax.transData, ax.transAxes)
    slots = max(len(set(g[g.row == row].backend)) for row in rows)
    width = 0.8 / slots  # one width for every bar of the panel, whatever its row's backends
    for j, row in enumerate(rows):
        # only the backends this row has: torch's row has no xla slot, TensorFlow's no jit slot
        in_row = [b for b in colour if b in set(g[g.row == row].backend)]
        for i, backend in enumerate(in_row):
            c, x = g[(g.row == row) & (g.backend == backend)].iloc[0], j - width * len(in_row) / 2 + width * (i + 0.5)
            if c.status != "ok" or not c.median_ms > 0:
                ax.text(
                    x,
                    0.03,
                    c.status,
                    transform=below,
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="#b22222",
                )
                continue
            known = math.isfinite(c.ci_lo_ms) and math.isfinite(c.ci_hi_ms)
            err = [[c.median_ms - c.ci_lo_ms], [c.ci_hi_ms - c.median_ms]] if known else None
            marked = c.best  # the fastest of its step, shown faster than the runner-up by the one comparison
            ax.bar(
                x,
                c.median_ms,
                width * 0.92,
                color=colour[backend],
                yerr=err,
                capsize=2,
                error_kw={"elinewidth": 1},
                edgecolor="black" if marked else "none",
                linewidth=1.6 if marked else 0,
            )
            if len(g) <= 24:  # a number a bar while they fit above it (the tables hold them all)
                ax.annotate(
                    fmt.point(c.median_ms, c.ci_lo_ms, c.ci_hi_ms),
                    (x, c.ci_hi_ms if known else c.median_ms),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    rotation=90 if len(g) > 12 else 0,
                )


def bars(df: "pd.DataFrame") -> "Figure | str":
    """Median time per case with its 95% interval as error bars, grouped by step, one colour per backend; one panel
    per device and size. Failed and skipped cases are written where their bar would be."""
    if _timed(df).empty:
        return "no case was timed"
    plt = _pyplot()
    from matplotlib.patches import Patch

    (groups, note), colour, short = _busiest(frames.groups(df)), colours(df), short_names(df)
    # A panel's bars: one column of panels where a panel holds many (its labels need the width)
    bars_in = [len(g) for _, g in groups]
    crowded = max(bars_in) > 12
    fig, axes = _figure(plt, len(groups), 1 if crowded else 2, 12.0 if crowded else 7.2, 3.9)
    _note(fig, note)
    cut = False
    same_size: dict[tuple, list] = {}  # panels of one device and size (precisions, caches): one y scale
    for ax, (key, g) in zip(axes, groups):
        rows = list(dict.fromkeys(g.row))
        if len(rows) > MAX_BAR_ROWS:
            rows = rows[:MAX_BAR_ROWS]
            g = g[g.row.isin(rows)]
            cut = True
        _bar_rows(ax, g, rows, colour)
        ax.set_xticks(
            range(len(rows)),
            [short(r).replace("/", "\n", 1) for r in rows],
            rotation=30 if len(rows) > 6 else 0,
            ha="right" if len(rows) > 6 else "center",
            rotation_mode="anchor",
        )
        ax.set_xlim(-0.6, len(rows) - 0.4)
        if not ((g.status == "ok") & (g.median_ms > 0)).any():  # every case skipped or failed: no time axis
            ax.set_yticks([])
            ax.text(
                0.5,
                0.5,
                "no case of this panel was timed",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="#b22222",
            )
            ax.set_title(_panel_title(key), fontsize=10)
            continue
        log = _log_if_wide(ax, g.median_ms)
        ax.margins(y=0.15)
        same_size.setdefault(tuple(key[:4]), []).append(ax)
        ax.set_ylabel("median ms per step" + (" (log scale)" if log else ""))
        ax.set_title(_panel_title(key), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for shared in same_size.values():
        if len(shared) > 1 and len({a.get_yscale() for a in shared}) == 1:
            lows, highs = zip(*(a.get_ylim() for a in shared))
            for a in shared:
                a.set_ylim(min(lows), max(highs))
    handles = [Patch(color=colour[b], label=b) for b in colour]
    if any(g.best.any() for _, g in groups):
        handles.append(
            Patch(
                facecolor="white",
                edgecolor="black",
                linewidth=1.6,
                label="fastest of its step (shown faster than the runner-up)",
            )
        )
    _bottom_legend(
        fig,
        handles,
        [str(h.get_label()) for h in handles],
        len(handles),
        title="backend (error bar: 95% interval of the median; number: median ms)",
    )
    fig.suptitle("Time of one forward + backward step, per case (lower is faster)", fontweight="bold")
    if cut:
        _note(fig, f"at most {MAX_BAR_ROWS} steps a panel drawn")
    return fig


# ---------------------------------------------------------------- 2. scaling

VAR_LABELS = {"n": "n, rows per step", "nh": "nh, hidden units"}


def scaling(df: "pd.DataFrame", var: str, crossings: "pd.DataFrame | None" = None) -> "Figure | str":
    """Median time against `var` on log-log axes, one line per case (colour: framework and backend,
    distinct within the figure; marker: framework; style: device and run), IQR as a band, one panel
    per step; crossings (frames.scaling_crossovers() rows for this var, computed when None) marked
    with their numbers."""
    by_step = frames.scaling_lines(df, var)
    if not by_step:
        return f"no case was timed at two or more values of {var}"
    total = sum(len(lines) for lines in by_step.values())
    labels = frames.line_labels([k for lines in by_step.values() for k in lines], var)  # as the crossings name them
    by_step = {step: dict(list(lines.items())[:MAX_LINES]) for step, lines in list(by_step.items())[:MAX_PANELS]}
    drawn = sum(len(lines) for lines in by_step.values())
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    every = [k for lines in by_step.values() for k in lines]
    fws = list(dict.fromkeys(k[0] for k in every))
    colour = pair_colours(every)
    variants = list(dict.fromkeys(frames.line_variant(k, var) for k in every))
    crossings = frames.scaling_crossovers(df, var) if crossings is None else crossings
    fig, axes = _figure(plt, len(by_step), 2, 6.4, 4.6)
    handles: dict[str, Line2D] = {}
    for ax, (step, lines) in zip(axes, by_step.items()):
        for key, rows in lines.items():
            style = LINESTYLES[variants.index(frames.line_variant(key, var)) % len(LINESTYLES)]
            label = labels[key]
            (line,) = ax.plot(
                rows[var],
                rows.median_ms,
                color=colour[key[:2]],
                linestyle=style,
                marker=MARKERS[fws.index(key[0]) % len(MARKERS)],
                markersize=5,
                label=label,
            )
            ax.fill_between(rows[var], rows.q1_ms, rows.q3_ms, color=colour[key[:2]], alpha=0.15, linewidth=0)
            handles.setdefault(label, line)
        shown = {labels[k] for k in lines}
        for c in crossings[
            (crossings.step == step) & crossings.faster_beyond.isin(shown) & crossings.slower_beyond.isin(shown)
        ].itertuples():
            supported = bool(getattr(c, "supported", True))  # grey: the CIs either side overlap
            ax.plot(
                c.crossing,
                c.time_ms,
                marker="X",
                color="black" if supported else "#9a9a9a",
                markersize=9,
                linestyle="none",
                zorder=5,
            )
            ax.annotate(
                str(c.number),
                (c.crossing, c.time_ms),
                xytext=(5, -12),
                textcoords="offset points",
                fontsize=9,
                fontweight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
            )
        values = _spaced(sorted({v for rows in lines.values() for v in rows[var]}))
        _log(ax, [v for rows in lines.values() for v in (*rows.q1_ms, *rows.q3_ms)], "y")
        ax.set_xscale("log")
        ax.set_xticks(values, [f"{v:,}" for v in values])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(VAR_LABELS.get(var, var) + " (log scale)")
        ax.set_ylabel("median ms per step (log scale)")
        fixed = [
            f"{d}={next(iter(rows[d]))}"
            for d in ("n", "m", "nh")
            if d != var
            if len({v for rows in lines.values() for v in rows[d]}) == 1
        ]
        replicas = {r for rows in lines.values() for r in rows.replicas}
        if len(replicas) == 1 and next(iter(replicas)) > 1:  # every line under an engine at one R: say so
            fixed.append(f"{next(iter(replicas))} replicas")
        ax.set_title(f"{step} step" + (f" ({', '.join(fixed)})" if fixed else ""), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    items = list(handles.items())
    if len(crossings):
        items.append(
            (
                "crossover, as numbered in the report (grey: CIs overlap)",
                Line2D([], [], marker="X", color="black", linestyle="none", markersize=8),
            )
        )
    _bottom_legend(fig, [h for _, h in items], [label for label, _ in items], 2 if len(items) > 3 else len(items))
    fig.suptitle(f"Step time against {var} (band: interquartile range)", fontweight="bold")
    if drawn < total:
        _note(
            fig,
            f"{drawn} of {total} lines drawn (at most {MAX_LINES} a step, {MAX_PANELS} steps); "
            "the crossover table covers them all",
        )
    return fig


def depth(df: "pd.DataFrame") -> "Figure | str":
    """Median time per step against the number of hidden layers, one panel per step (and family,
    size, precision and loss), a marker per measured depth with its 95% interval and each backend's
    fitted line (bench/report/depth.py), its per-layer cost and per-call overhead in the legend."""
    from bench.report import depth as depth_fit

    lines = depth_fit._lines(df)
    if not lines:
        return f"no case was timed at {depth_fit.DEPTHS_TO_FIT} or more depths of one model family"
    panels: dict[tuple, list] = {}
    for step, by_key in lines.items():
        for line in by_key.values():
            panels.setdefault((step, *depth_fit._context(line)), []).append(line)
    total = len(panels)
    chosen = list(panels.items())[:MAX_PANELS]
    plt = _pyplot()
    fig, axes = _figure(plt, len(chosen), 2, 6.4, 4.8)
    every = [line.key for _, group in chosen for line in group]
    colour = pair_colours(every)
    fws = list(dict.fromkeys(k[0] for k in every))
    for ax, ((step, *_), group) in zip(axes, chosen):
        for line in group[:MAX_LINES]:
            rows, c = line.rows, colour[line.key[:2]]
            below = (rows.median_ms - rows.ci_lo_ms).clip(lower=0).fillna(0)
            above = (rows.ci_hi_ms - rows.median_ms).clip(lower=0).fillna(0)
            marker = MARKERS[fws.index(line.key[0]) % len(MARKERS)]
            ax.errorbar(rows.depth, rows.median_ms, yerr=[below, above], fmt=marker, color=c, markersize=5, capsize=2)
            ends = np.array([0.0, float(rows.depth.max())])
            slope, over = (fmt.interval(line.point[i], *depth_fit._interval(line.boot[i])) for i in (1, 0))
            label = f"{line.field('framework')}/{line.field('backend')}: {slope} ms/layer + {over} ms"
            ax.plot(ends, line.point[0] + line.point[1] * ends, color=c, linestyle="--", linewidth=1.2, label=label)
        first = group[0]
        ax.set_title(
            f"{step}: {first.field('family')}, n={int(first.rows.n.iloc[0]):,}, "
            f"{first.rows.precision.iloc[0]}, {first.rows.loss_fn.iloc[0]}",
            fontsize=10,
        )
        ax.set_xlabel("hidden layers")
        ax.set_ylabel("median ms per step")
        ax.set_xticks(sorted({int(d) for line in group for d in line.depths}))
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Step time against depth: fitted per-layer cost and per-call overhead [95% CI]", fontweight="bold")
    if len(chosen) < total:
        _note(fig, f"{len(chosen)} of {total} panels drawn; the depth tables cover them all")
    return fig


# ---------------------------------------------------------------- 3. roofline


def _ceilings(
    ax: "Axes", g: "pd.DataFrame", own_lines: "dict[str, LineStyleType]"
) -> tuple[float, float, float, float]:
    """A device's roof (its best measured GEMM and copy ceilings) with its ridge, and each
    framework's own where lower (dashed, its label and style added to own_lines); (lo, hi, gemm, copy)."""
    gemm, copy = g.gemm_peak_gflops.max(), g.copy_peak_gbps.max()
    ridge = gemm / copy
    lo = min(g.intensity.min(), ridge) / 8
    hi = max(g.intensity.max(), ridge) * 8
    xs = np.geomspace(lo, hi, 200)
    ax.plot(xs, np.minimum(gemm, copy * xs), color="black", linewidth=2)
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    labels = (
        (f"GEMM ceiling {fmt.sig(gemm, 3)} GFLOP/s", (hi, gemm), (-4, 4), "right", "bottom", "black"),
        (f"copy ceiling\n{fmt.sig(copy, 3)} GB/s", (lo, copy * lo), (8, -4), "left", "top", "black"),
        (f"ridge {fmt.sig(ridge, 2)} FLOP/B", (ridge, copy * lo), (3, 0), "left", "bottom", "grey"),
    )
    for text, at, offset, ha, va, color in labels:
        ax.annotate(text, at, xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=9, color=color)
    own = g.groupby("framework", sort=False)[["own_gemm_gflops", "own_copy_gbps"]].max()
    for i, (fw, (own_gemm, own_copy)) in enumerate(own.iterrows()):  # a framework's own, where lower
        if own_gemm > 0 and own_copy > 0 and (own_gemm < 0.9 * gemm or own_copy < 0.9 * copy):
            style = LINESTYLES[1 + i % (len(LINESTYLES) - 1)]
            ax.plot(xs, np.minimum(own_gemm, own_copy * xs), color="grey", linewidth=0.9, linestyle=style)
            own_lines.setdefault(f"{fw}'s own: {fmt.sig(own_gemm, 3)} GFLOP/s, {fmt.sig(own_copy, 3)} GB/s", style)
    return lo, hi, gemm, copy


def _ring_the_best(ax: "Axes", g: "pd.DataFrame", nudge: dict, short: Callable[[str], str]) -> None:
    """Ring the case of the most GFLOP/s where the one comparison shows it above the runner-up, else
    the two highest, said so."""
    top = g.sort_values("gflops", ascending=False, kind="stable")
    best = top.iloc[0]
    ringed = top.iloc[: 1 if len(top) < 2 or frames.shown_higher_gflops(*top.iloc[:2].itertuples()) else 2]
    for r in ringed.itertuples():
        ax.plot(
            r.intensity * nudge[r.row, r.backend],
            r.gflops,
            marker="o",
            markersize=15,
            markerfacecolor="none",
            markeredgecolor="#b22222",
            linestyle="none",
        )
    said = (
        f"ringed, the best: {short(best.row)} · {best.backend}, n={best.n:,}"
        if len(ringed) == 1
        else "ringed, the two highest (not told apart):\n"
        + "\n".join(f"{short(r.row)} · {r.backend}, n={r.n:,}" for r in ringed.itertuples())
    )
    ax.text(
        0.98,
        0.03,
        f"{said}\n{fmt.sig(best.gflops, 2)} GFLOP/s = {fmt.sig(best.pct_of_peak, 2)}% of the GEMM ceiling",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=9,
        color="#b22222",
    )


def roofline(df: "pd.DataFrame") -> "Figure | str":
    """Per device: its measured compute (float32 GEMM) and bandwidth (copy) ceilings, and each timed
    case at its analytic arithmetic intensity and achieved GFLOP/s (colour: backend, marker: the
    framework, or the step when there is one framework). The cases of one size share an intensity:
    each (framework, step, backend) is nudged sideways by up to +-25% so that none hides another,
    and the x axis's label says so."""
    timed = _timed(df)
    timed = timed[
        (timed.gflops > 0) & (timed.intensity > 0) & (timed.gemm_peak_gflops > 0) & (timed.copy_peak_gbps > 0)
    ]
    if timed.empty:
        return "no timed case carries measured ceilings and an arithmetic intensity"
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colour = colours(timed)
    by = "step" if timed.framework.nunique() <= 1 else "framework"
    kinds = list(dict.fromkeys(timed[by]))
    short = short_names(timed)
    combos = list(dict.fromkeys(zip(timed.row, timed.backend)))
    nudge = {c: 1.25 ** ((2 * i - (len(combos) - 1)) / max(len(combos) - 1, 1)) for i, c in enumerate(combos)}
    wheres = list(dict.fromkeys(sorted(timed["where"])))
    note = f"{MAX_PANELS} of {len(wheres)} devices drawn" if len(wheres) > MAX_PANELS else None
    wheres = wheres[:MAX_PANELS]
    fig, axes = _figure(plt, len(wheres), 2, 6.0, 4.6, extra_width=2.6)
    _note(fig, note)
    own_lines: "dict[str, LineStyleType]" = {}  # legend label -> line style of a framework's own ceilings
    for ax, w in zip(axes, wheres):
        g = timed[timed["where"] == w]
        lo, hi, gemm, copy = _ceilings(ax, g, own_lines)
        for c in g.itertuples():
            reduced = c.dtype in ("bfloat16", "float16") or c.tf32
            ax.plot(
                c.intensity * nudge[c.row, c.backend],
                c.gflops,
                marker=MARKERS[kinds.index(getattr(c, by)) % len(MARKERS)],
                linestyle="none",
                color=colour[c.backend],
                markeredgecolor="black" if not reduced else colour[c.backend],
                markerfacecolor="none" if reduced else colour[c.backend],
                markeredgewidth=0.5 if not reduced else 1.6,
                markersize=7,
                alpha=0.85,
            )
        _ring_the_best(ax, g, nudge, short)
        _log(ax, [lo, hi], "x")
        _log(ax, [min(g.gflops.min(), copy * lo) / 3, gemm * 3], "y")
        ax.set_xlim(lo, hi)
        ax.set_ylim(min(g.gflops.min(), copy * lo) / 3, gemm * 3)
        ax.set_xlabel(
            "arithmetic intensity (FLOP per byte that must move)\n"
            "cases of one size share an intensity: their markers are spread up to ±25% sideways",
            fontsize=9,
        )
        ax.set_ylabel("achieved GFLOP/s (log scale)")
        ax.set_title(w, fontsize=10)
        ax.grid(alpha=0.3)
    handles: list[Artist] = [Patch(color=colour[b], label=b) for b in colour]
    handles += [
        Line2D(
            [],
            [],
            marker=MARKERS[i % len(MARKERS)],
            color="grey",
            markeredgecolor="black",
            linestyle="none",
            label=f"{k} step" if by == "step" else k,
        )
        for i, k in enumerate(kinds)
    ]
    if (timed.dtype.isin(["bfloat16", "float16"]) | timed.tf32.astype(bool)).any():
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                color="grey",
                markerfacecolor="none",
                markeredgewidth=1.6,
                linestyle="none",
                label="hollow: bfloat16, float16\nor TF32",
            )
        )
    handles += [
        Line2D([], [], color="grey", linestyle=style, label=label.replace(": ", ":\n", 1))
        for label, style in own_lines.items()
    ]
    fig.legend(handles=handles, loc="outside right center", frameon=False, title=f"colour: backend\nmarker: {by}")
    fig.suptitle("Roofline: achieved GFLOP/s under each device's measured float32 ceilings", fontweight="bold")
    return fig


# ---------------------------------------------------------------- 4. compile pay-back


def payback(pb: "pd.DataFrame") -> "Figure | str":
    """Steady calls until each compiled case's overhead (trace + first call - one steady call) is
    paid back by its saving per call against eager; one bar per case and size, one panel per device.
    `pb`: frames.payback()."""
    if pb.empty:
        return "no compiled case has a first-call time and an eager case of the same step to compare with"
    plt = _pyplot()
    from matplotlib.patches import Patch

    colour = colours(pb)
    wheres = list(dict.fromkeys(sorted(pb["where"])))
    notes = [f"{MAX_PANELS // 2} of {len(wheres)} devices drawn"] if len(wheres) > MAX_PANELS // 2 else []
    wheres = wheres[: MAX_PANELS // 2]
    if (pb[pb["where"].isin(wheres)].groupby("where").size() > MAX_ROWS).any():
        notes.append(f"at most {MAX_ROWS} cases a device drawn, the largest n first; the pay-back table lists them all")
    finite = pb.payback_calls[np.isfinite(pb.payback_calls)]
    top = max(10.0, finite.max() if len(finite) else 10.0) * 10
    rows = min(MAX_ROWS, pb[pb["where"].isin(wheres)].groupby("where").size().max())
    fig, axes = _figure(plt, len(wheres), 1, 12, 0.9 + 0.3 * rows, extra_height=0.4)
    _note(fig, "; ".join(notes))
    single = pb.framework.nunique() <= 1
    for ax, w in zip(axes, wheres):
        g = pb[pb["where"] == w]
        if len(g) > MAX_ROWS:
            g = g.sort_values("n", ascending=False, kind="stable").head(MAX_ROWS)
        g = g.assign(order=g.row.map({r: i for i, r in enumerate(dict.fromkeys(g.row))}))
        g = g.sort_values(["order", "backend", "n"], kind="stable")
        said = []  # what each bar means, written at the right of the panel (laid out with it, never clipped)
        for y, c in enumerate(g.itertuples()):
            compile_ms = f"compile {fmt.sig(c.overhead_ms, 2)} ms"
            if c.shown == "faster":
                high = c.payback_hi if math.isfinite(c.payback_hi) else top
                ax.barh(
                    y,
                    max(c.payback_calls, 1),
                    color=colour[c.backend],
                    height=0.7,
                    xerr=[[max(c.payback_calls, 1) - max(c.payback_lo, 1)], [high - max(c.payback_calls, 1)]],
                    error_kw={"elinewidth": 1, "capsize": 2},
                )
                said.append(
                    f"{int(c.payback_calls):,} call{'s' if c.payback_calls != 1 else ''} ({compile_ms}, "
                    f"saves {fmt.interval(c.saving_ms, c.saving_lo_ms, c.saving_hi_ms)} ms per call)"
                )
            elif c.shown == "slower":
                ax.barh(y, 1e30, color="white", edgecolor=colour[c.backend], hatch="///", height=0.7)
                said.append(f"never: {fmt.sig(-c.saving_ms, 2)} ms per call slower than eager ({compile_ms})")
            else:
                ax.barh(y, 1e30, color="white", edgecolor=colour[c.backend], hatch="...", height=0.7)
                said.append(
                    f"not shown: saving {fmt.interval(c.saving_ms, c.saving_lo_ms, c.saving_hi_ms)} ms per "
                    f"call holds 0 ({compile_ms})"
                )
        labels = [
            f"{c.step if single else c.row} · {c.backend}, n={c.n:,}"
            + ("" if g["nh"].nunique() <= 1 else f", nh={c.nh}")
            + ("" if g["dtype"].nunique() <= 1 else f", {c.dtype}")
            for c in g.itertuples()
        ]
        ax.set_yticks(range(len(g)), labels, fontsize=9)
        ax.set_ylim(len(g) - 0.5, -0.5)
        right = ax.twinx()
        right.set_ylim(len(g) - 0.5, -0.5)
        right.set_yticks(range(len(g)), said, fontsize=9)
        right.tick_params(axis="y", length=0)
        _log(ax, [0.8, top], "x")
        ax.set_xlim(0.8, top)
        ax.set_xlabel("steady calls until the compile overhead is paid back (log scale)")
        ax.set_title(w + "".join(f", {d}={g[d].iloc[0]}" for d in ("m", "nh") if g[d].nunique() == 1), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour[b], label=b) for b in colour]
    handles.append(Patch(facecolor="white", edgecolor="grey", hatch="///", label="never pays back (shown slower)"))
    if (pb.shown == "").any():
        handles.append(Patch(facecolor="white", edgecolor="grey", hatch="...", label="not shown either way"))
    _bottom_legend(fig, handles, [str(h.get_label()) for h in handles], len(handles))
    fig.suptitle("Compile pay-back: after how many steps a compiled backend beats eager", fontweight="bold")
    return fig


# ---------------------------------------------------------------- 5. distribution


def _boxplot(ax, data, **kw):
    """Horizontal boxes on any matplotlib >= 3.7 ('vert' gave way to 'orientation' in 3.10)."""
    try:
        return ax.boxplot(data, orientation="horizontal", **kw)
    except TypeError:
        return ax.boxplot(data, vert=False, **kw)


def distribution(df: "pd.DataFrame") -> "Figure | str":
    """Every timed call of every case as a dot, over a box (quartiles, whiskers at 1.5 IQR), in % of
    the case's median, so cases of any speed show their noise on one scale; one panel per device
    and size; noisy cases named in red."""
    timed = _timed(df)
    timed = timed[timed.samples > 0]
    if timed.empty:
        return "no case has timed samples"
    plt = _pyplot()
    (groups, note), colour, short = _busiest(frames.groups(timed)), colours(timed), short_names(timed)
    if any(len(g) > MAX_ROWS for _, g in groups):
        groups = [
            (
                key,
                g.loc[g.iqr_pct.sort_values(ascending=False, kind="stable").index[:MAX_ROWS]].sort_index()
                if len(g) > MAX_ROWS
                else g,
            )
            for key, g in groups
        ]
        note = "; ".join(filter(None, [note, f"at most {MAX_ROWS} cases a panel drawn, the noisiest"]))
    rng = np.random.default_rng(0)
    fig, axes = _figure(plt, len(groups), 2, 6.6, 0.9 + 0.36 * max(len(g) for _, g in groups), extra_height=0.6)
    _note(fig, note)
    for ax, (key, g) in zip(axes, groups):
        data = [100 * np.asarray(s) * 1e3 / m for s, m in zip(g.samples_s, g.median_ms)]
        box = _boxplot(
            ax,
            data,
            positions=range(len(g)),
            widths=0.6,
            whis=1.5,
            showfliers=False,
            patch_artist=True,
            medianprops={"color": "black"},
        )
        for patch, backend in zip(box["boxes"], g.backend):
            patch.set(facecolor=colour[backend], alpha=0.45)
        for y, values in enumerate(data):
            ax.scatter(
                values,
                y + rng.uniform(-0.22, 0.22, len(values)),
                s=7,
                color="black",
                alpha=0.55,
                linewidths=0,
                zorder=3,
                rasterized=True,
            )
        labels = [f"{short(c.row)} · {c.backend} ({fmt.sig(c.median_ms, 3)} ms)" for c in g.itertuples()]
        ax.set_yticks(range(len(g)), labels, fontsize=9)
        for tick, c in zip(ax.get_yticklabels(), g.itertuples()):
            if c.noisy:
                tick.set_color("#b22222")
        ax.set_ylim(len(g) - 0.5, -0.5)
        ax.axvline(100, color="grey", linewidth=0.8)
        ax.set_xlabel("time of one call, % of the case's median")
        ax.set_title(_panel_title(key), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "Spread of the timed calls around each case's median\n(dot: one call; red label: IQR over 10%)",
        fontweight="bold",
    )
    return fig


# ---------------------------------------------------------------- 6. launch overhead

LAUNCH_STYLES: "tuple[tuple[str, LineStyleType, str], ...]" = (
    ("median_ms", "-", "timed: the case's timer (device time where it has one, else host clock + sync)"),
    ("host_median_ms", "--", "host clock around call + sync (where a device timer timed)"),
    ("dispatch_ms", ":", "dispatch: host time for the call to return, no sync"),
)


def launch(df: "pd.DataFrame") -> "Figure | str":
    """Where launch and sync overhead bound a step: per device, step and precision, each backend's
    timed median against n (solid), beside the host clock around the same calls (dashed, where a
    device timer timed) and the time the call takes to return without a sync (dotted). Lines that
    flatten towards small n, and a wide gap between solid and dashed, are the launch-bound regime."""
    panels = frames.launch_lines(df)
    if not panels:
        return "no case with a host-clock or dispatch time was timed at two or more values of n"
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    total = len(panels)
    keys = sorted(panels, key=lambda k: (-len(panels[k]), k))[:MAX_PANELS]
    keys = [k for k in panels if k in keys]
    colour = colours(df)
    fws = list(dict.fromkeys(fw for k in keys for fw, _ in panels[k]))
    fig, axes = _figure(plt, len(keys), 2, 6.4, 4.6)
    if len(keys) < total:
        _note(fig, f"{len(keys)} of {total} device/step/precision panels drawn (those with the most lines)")
    cut = [k for k in keys if len(panels[k]) > MAX_LINES]
    if cut:
        _note(fig, f"at most {MAX_LINES} backends a panel drawn; the tables hold every case")
    drawn = set()
    for ax, key in zip(axes, keys):
        where, step, precision, cache = key
        values, sizes = [], set()
        for (fw, backend), rows in list(panels[key].items())[:MAX_LINES]:
            for column, style, _ in LAUNCH_STYLES:
                have = rows[rows[column].notna() & (rows[column] > 0)]
                if len(have) >= 2:
                    ax.plot(
                        have.n,
                        have[column],
                        color=colour[backend],
                        linestyle=style,
                        marker=MARKERS[fws.index(fw) % len(MARKERS)],
                        markersize=4 if style != "-" else 5,
                    )
                    values += list(have[column])
                    sizes |= set(have.n)
                    drawn.add(style)
        _log(ax, values, "y")
        ax.set_xscale("log")
        ticks = _spaced(sorted(sizes))
        ax.set_xticks(ticks, [f"{v:,}" for v in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("n, rows per step (log scale)")
        ax.set_ylabel("ms per step (log scale)")
        ax.set_title(
            f"{where}\n{step} step, {precision}" + (f", {cache} cache" if cache != "warm" else ""), fontsize=10
        )
        ax.grid(alpha=0.3, which="both")
    handles = [
        Line2D([], [], color="black", linestyle=style, label=label)
        for _, style, label in LAUNCH_STYLES
        if style in drawn
    ]
    handles += [
        Line2D([], [], color=colour[b], linewidth=3, label=b)
        for b in dict.fromkeys(b for k in keys for _, b in panels[k])
    ]
    handles += (
        [
            Line2D([], [], color="grey", marker=MARKERS[i % len(MARKERS)], linestyle="none", label=fw)
            for i, fw in enumerate(fws)
        ]
        if len(fws) > 1
        else []
    )
    _bottom_legend(fig, handles, [str(h.get_label()) for h in handles], 2)
    fig.suptitle("Launch overhead: device, host and dispatch time against n", fontweight="bold")
    return fig


# ---------------------------------------------------------------- 8. data-parallel scaling

VARIANT = ("m", "nh", "precision", "run_id")  # what else tells two scaling lines apart


def replicas(df: "pd.DataFrame") -> "Figure | str":
    """Efficiency against replicas: one panel per device and scaling kind (strong, weak), a line per
    engine, backend and size (colour: backend, marker: engine, line style: the size), its 95% CI as
    error bars; the dashed line at 1 is perfect scaling."""
    sc = frames.scaling(df)
    if sc.empty or sc.replicas.nunique() < 2:
        return "no engine ran at two or more replica counts"
    plt = _pyplot()
    from matplotlib.lines import Line2D

    keys = list(dict.fromkeys(zip(sc["where"], sc["kind"])))[:MAX_PANELS]
    colour = colours(df)
    engines = list(dict.fromkeys(sc.engine))
    fig, axes = _figure(plt, len(keys), 2, 6.4, 4.4)
    sizes_seen = []
    for ax, (where, kind) in zip(axes, keys):
        g = sc[(sc["where"] == where) & (sc["kind"] == kind)]
        size_col = "n" if kind == "strong" else "n_per_replica"
        lines = list(g.groupby(["framework", "engine", "backend", size_col, *VARIANT], sort=False))[:MAX_LINES]
        for (_, engine, backend, *size), rows in lines:
            size = tuple(size)  # n and whatever else tells two lines of one engine and backend apart
            rows = rows.sort_values("replicas")
            if size not in sizes_seen:
                sizes_seen.append(size)
            err = [rows.efficiency - rows.efficiency_lo, rows.efficiency_hi - rows.efficiency]
            ax.errorbar(
                rows.replicas,
                rows.efficiency,
                yerr=err,
                color=colour.get(backend, "grey"),
                marker=MARKERS[engines.index(engine) % len(MARKERS)],
                linestyle=LINESTYLES[sizes_seen.index(size) % len(LINESTYLES)],
                capsize=3,
                markersize=6,
            )
        ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xticks(sorted(g.replicas.unique()))
        ax.set_xlabel("replicas R")
        ax.set_ylabel("efficiency (1 = perfect)")
        ax.set_ylim(bottom=0)
        what = "the same global n: speed-up / R" if kind == "strong" else "the same n per replica: T1 / TR"
        ax.set_title(f"{where}\n{kind} scaling ({what})", fontsize=10)
        ax.grid(alpha=0.3)
    items = [(f"{b}", Line2D([], [], color=colour.get(b, "grey"), linewidth=3)) for b in dict.fromkeys(sc.backend)]
    items += [
        (f"engine {e}", Line2D([], [], color="grey", marker=MARKERS[i % len(MARKERS)], linestyle="none"))
        for i, e in enumerate(engines)
    ]
    varies = [c for c in VARIANT if sc[c].nunique() > 1]
    items += [
        (
            ", ".join(
                [
                    f"n={s[0]:,} (strong: global; weak: per replica)",
                    *(f"{c}={v}" for c, v in zip(VARIANT, s[1:]) if c in varies),
                ]
            ),
            Line2D([], [], color="grey", linestyle=LINESTYLES[i % len(LINESTYLES)]),
        )
        for i, s in enumerate(sizes_seen)
    ]
    _bottom_legend(fig, [h for _, h in items], [label for label, _ in items], 2)
    fig.suptitle("Data-parallel scaling: efficiency against replicas (error bars: 95% CI)", fontweight="bold")
    return fig


# ---------------------------------------------------------------- environments (--env)


def versions(df: "pd.DataFrame") -> "Figure | str":
    """Speed against the first environment: one panel per device, size and precision, a row per case
    (framework/step · backend), one marker per environment (colour) at its speed-up with its 95% CI
    as error bars, filled where it is the case's fastest environment, shown so; the dashed line at 1
    is the first environment."""
    vr = frames.versions(df)
    if vr.empty:
        return "no case ran in two or more environments (run --env)"
    plt = _pyplot()
    from matplotlib.lines import Line2D

    keys = list(dict.fromkeys(zip(vr["where"], vr["n"], vr["m"], vr["nh"], vr["precision"], vr["cache"])))
    notes = [f"{MAX_PANELS} of {len(keys)} panels drawn"] if len(keys) > MAX_PANELS else []
    keys = keys[:MAX_PANELS]
    deps = list(dict.fromkeys(vr.deps))
    palette = plt.get_cmap("tab10")
    colour = {d: palette(i % 10) for i, d in enumerate(deps)}
    rows = max(len(vr[(vr["where"] == k[0]) & (vr.n == k[1])].groupby(["framework", "step", "backend"])) for k in keys)
    rows = min(rows, MAX_ROWS)
    fig, axes = _figure(plt, len(keys), 2, 6.4, 1.2 + 0.45 * rows, extra_height=0.3)
    _note(fig, "; ".join(notes))
    offsets = {d: (i - (len(deps) - 1) / 2) * 0.8 / max(len(deps), 1) for i, d in enumerate(deps)}
    for ax, (where, n, m, nh, precision, cache) in zip(axes, keys):
        g = vr[
            (vr["where"] == where)
            & (vr.n == n)
            & (vr.m == m)
            & (vr.nh == nh)
            & (vr.precision == precision)
            & (vr.cache == cache)
        ]
        cases = list(dict.fromkeys(zip(g.framework, g.step, g.backend)))[:MAX_ROWS]
        values = [1.0]
        for y, (framework, step, backend) in enumerate(cases):
            for c in g[(g.framework == framework) & (g.step == step) & (g.backend == backend)].itertuples():
                if not math.isfinite(c.speedup):
                    ax.plot([1.0], [y + offsets[c.deps]], marker="x", color=colour[c.deps], linestyle="none")
                    continue
                err = [[c.speedup - c.speedup_lo], [c.speedup_hi - c.speedup]]
                ax.errorbar(
                    [c.speedup],
                    [y + offsets[c.deps]],
                    xerr=err,
                    color=colour[c.deps],
                    marker="o",
                    markerfacecolor=colour[c.deps] if c.standing == "fastest" else "white",
                    capsize=3,
                    linestyle="none",
                )
                values += [c.speedup_lo, c.speedup_hi]
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(cases)), [f"{f}/{s} · {b}" for f, s, b in cases], fontsize=9)
        ax.set_ylim(len(cases) - 0.5, -0.5)
        _log_if_wide(ax, [v for v in values if math.isfinite(v) and v > 0], "x")
        ax.set_xlabel(f"speed against {deps[0]} (>1 faster)")
        ax.set_title(f"{where}, n={n:,}, {precision}" + (f", {cache} cache" if cache != "warm" else ""), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=colour[d], marker="o", linestyle="none") for d in deps]
    handles.append(Line2D([], [], color="grey", marker="x", linestyle="none"))
    _bottom_legend(fig, handles, [*deps, "not timed there (failed or skipped)"], len(handles))
    fig.suptitle(
        "Environments: each case's speed against the first (error bars: 95% CI; filled: shown fastest)",
        fontweight="bold",
    )
    return fig
