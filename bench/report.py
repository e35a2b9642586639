"""Records -> tables (pandas) and plots (matplotlib). Everything here is rebuilt from records alone."""
from pathlib import Path

import numpy as np
import pandas as pd

GROUP = ["device", "n", "m", "nh", "dtype"]


def frame(records):
    """One row per record, with the statistics derived from its samples."""
    rows = []
    for r in records:
        ceiling = r.ceilings.get("gemm_gflops")
        rows.append({
            "framework": r.framework, "step": r.step, "backend": r.backend, "device": r.device,
            "n": r.n, "m": r.m, "nh": r.nh, "dtype": r.dtype, "status": r.status, "error": r.error,
            "note": r.note, "data": r.data, "run_id": r.run_id,
            "median_ms": r.median_s * 1e3 if r.median_s else np.nan,
            "iqr_ms": r.iqr_s * 1e3 if r.samples_s else np.nan,
            "samples": len(r.samples_s),
            "first_call_ms": r.first_call_s * 1e3 if r.first_call_s is not None else np.nan,
            "max_rel_err": r.max_rel_err if r.max_rel_err is not None else np.nan,
            "gflops": r.gflops or np.nan,
            "pct_of_peak": 100 * r.gflops / ceiling if r.gflops and ceiling else np.nan,
            "gemm_peak_gflops": ceiling or np.nan,
        })
    return pd.DataFrame(rows)


def _cell(row):
    if row.status != "ok":
        return row.status
    return f"{row.median_ms:.3g} ± {row.iqr_ms:.2g}"


def comparison_tables(df):
    """{(device, n, m, nh, dtype): step x backend table of 'median ± IQR' in ms}."""
    tables = {}
    for key, g in df.groupby(GROUP, sort=True):
        g = g.assign(case=g.framework + "/" + g.step, cell=g.apply(_cell, axis=1))
        tables[key] = g.pivot_table(index="case", columns="backend", values="cell", aggfunc="first", sort=False)
    return tables


def _title(key):
    device, n, m, nh, dtype = key
    return f"{device}, n={n}, m={m}, nh={nh}, {dtype}"


def bar_plot(df, path):
    """Median time per case, grouped by step, one colour per backend, IQR as error bars; one panel per group."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"]
    groups = list(ok.groupby(GROUP, sort=True))
    if not groups:
        return None
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3.6 * len(groups)), squeeze=False)
    for ax, (key, g) in zip(axes[:, 0], groups):
        cases = list(dict.fromkeys(g.framework + "/" + g.step))
        backends = list(dict.fromkeys(g.backend))
        width = 0.8 / len(backends)
        for i, backend in enumerate(backends):
            sub = g[g.backend == backend].set_index(g[g.backend == backend].framework + "/" + g[g.backend == backend].step)
            xs = [j + i * width for j, c in enumerate(cases) if c in sub.index]
            ys = [sub.loc[c, "median_ms"] for c in cases if c in sub.index]
            errs = [sub.loc[c, "iqr_ms"] / 2 for c in cases if c in sub.index]
            ax.bar(xs, ys, width, yerr=errs, capsize=3, label=backend)
        ax.set_xticks([j + width * (len(backends) - 1) / 2 for j in range(len(cases))], cases)
        ax.set_ylabel("median time per step (ms)")
        ax.set_title(f"Forward + backward, {_title(key)} (error bars: IQR)")
        ax.legend(title="backend", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(df):
    lines = ["# backprop-bench report", ""]
    runs = ", ".join(sorted(df.run_id.unique()))
    lines += [f"Runs: {runs}", f"Data: {', '.join(sorted(df.data.unique()))}", ""]
    for key, table in comparison_tables(df).items():
        lines += [f"## {_title(key)}", "", "Median time per step in ms ± IQR.", "", table.to_markdown(), ""]
    notes = df[df.note.notna()].note.unique()
    problems = df[df.status != "ok"]
    if len(notes) or len(problems):
        lines += ["## Notes", ""]
        lines += [f"- {note}" for note in notes]
        lines += [f"- {row.framework}/{row.step}/{row.backend}/{row.device} n={row.n}: **{row.status}**: {row.error}"
                  for row in problems.itertuples()]
        lines.append("")
    ok = df[df.status == "ok"]
    if len(ok):
        best = ok.loc[ok.gflops.idxmax()]
        lines += ["## Best case", "",
                  f"{best.framework}/{best.step}/{best.backend} on {best.device} at n={best.n}: "
                  f"{best.gflops:.1f} GFLOP/s, {best.pct_of_peak:.0f}% of the measured {best.gemm_peak_gflops:.0f} "
                  f"GFLOP/s float32 GEMM ceiling.", ""]
    return "\n".join(lines)


def write(records, out_dir):
    """report.md and bars.png in out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = frame(records)
    written = [out_dir / "report.md"]
    plot = bar_plot(df, out_dir / "bars.png")
    text = markdown(df)
    if plot:
        text += "\n![median time per case](bars.png)\n"
        written.append(plot)
    written[0].write_text(text, encoding="utf-8")
    return written
