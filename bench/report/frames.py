"""Records -> pandas frames: each record's Summary (bench/records.py) as a row, speed-ups with
confidence intervals, compile pay-back and crossovers. NumPy and pandas only."""
import math
import re

import numpy as np
import pandas as pd

from bench import stats
from bench.records import CASE_FIELDS

# A table is one device (with its hardware) at one size and dtype: the case key without the
# framework, step and backend, the device named with its hardware.
GROUP = ["where"] + [f for f in CASE_FIELDS if f not in ("framework", "step", "backend", "device")]
SIZE_VARS = ("n", "nh")   # the sizes a scaling plot can put on its x axis

# Columns of frame(), in order; samples_s and rounds hold tuples and stay out of CSV files.
COLUMNS = [
    "framework", "step", "backend", "device", "where", "n", "m", "nh", "dtype", "run_id", "status",
    "error", "note", "data", "row", "median_ms", "q1_ms", "q3_ms", "iqr_ms", "iqr_pct", "ci_lo_ms",
    "ci_hi_ms", "samples", "noisy", "stop_reason", "trace_ms", "first_call_ms", "max_rel_err",
    "gflops", "pct_of_peak", "gemm_peak_gflops", "copy_peak_gbps", "intensity", "bound", "peak_mib",
    "peak_method", "tracing_count", "retraced", "speedup", "speedup_lo", "speedup_hi", "speedup_paired",
    "reference", "best", "samples_s", "rounds",
]
OBJECT_COLUMNS = ("samples_s", "rounds")


def _num(value, scale=1.0):
    """value * scale as a float, nan for None (fields that old or unfinished records leave empty)."""
    return float(value) * scale if value is not None else math.nan


def hardware(device, fingerprint):
    """A short name of the hardware behind `device` in a run's fingerprint, or None when unknown."""
    fingerprint = fingerprint or {}
    if device == "gpu":
        gpus = [g for g in fingerprint.get("gpus") or [] if isinstance(g, dict) and g.get("name")]
        return gpus[0]["name"] if gpus else None
    model = fingerprint.get("cpu_model")
    if not model:
        return None
    model = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|\bProcessor\b", "", model)
    return re.sub(r"\s+", " ", model).strip() or None


def where(device, fingerprint):
    """The device as tables and plots name it: 'cpu (AMD EPYC)', or just 'cpu' when the hardware is unknown."""
    name = hardware(device, fingerprint)
    return f"{device} ({name})" if name else device


def frame(records):
    """One row per record (COLUMNS), with the statistics derived from its samples, the speed-up
    against its group's reference case and whether it is the best of its row."""
    rows = []
    for r in records:
        s = r.summary
        samples = tuple(r.samples_s or ())
        rows.append({
            **r.case._asdict(), "where": where(r.device, r.env),
            "run_id": r.run_id or "", "status": r.status, "error": r.error, "note": r.note, "data": r.data or "",
            "median_ms": s.median_s * 1e3, "q1_ms": s.q1_s * 1e3, "q3_ms": s.q3_s * 1e3, "iqr_ms": s.iqr_s * 1e3,
            "iqr_pct": 100 * s.iqr_fraction, "ci_lo_ms": s.ci_lo_s * 1e3, "ci_hi_ms": s.ci_hi_s * 1e3,
            "samples": s.samples, "noisy": s.noisy, "stop_reason": r.stop_reason,
            "trace_ms": _num(r.trace_s, 1e3), "first_call_ms": _num(r.first_call_s, 1e3),
            "max_rel_err": _num(r.max_rel_err), "gflops": s.gflops, "pct_of_peak": s.pct_of_peak,
            "gemm_peak_gflops": s.gemm_gflops, "copy_peak_gbps": s.copy_gbps, "intensity": s.intensity,
            "bound": s.bound, "peak_mib": _num(r.peak_bytes, 2.0 ** -20), "peak_method": r.peak_method,
            "tracing_count": _num(r.tracing_count), "retraced": _retraced(r),
            "samples_s": samples,
            "rounds": tuple(r.rounds or ()) if len(r.rounds or ()) == len(samples) else (),
        })
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.empty:
        return df
    df["row"] = _row_labels(df)
    return _mark_best(_speedups(df))


def _retraced(r):
    """True when the timed loop traced again after the first call; None when it cannot be told."""
    if r.retraced is not None:
        return bool(r.retraced)
    return r.tracing_count > 1 if r.tracing_count is not None else None


def _row_labels(df):
    """framework/step, with the run id on the rows of a step whose cases appear in several runs of
    one group (merging a CPU run here with a GPU run elsewhere needs no run ids: groups differ)."""
    label = df.framework + "/" + df.step
    twice = df.duplicated(GROUP + ["framework", "step", "backend"], keep=False)
    clash = twice.groupby([df[c] for c in GROUP] + [df.framework, df.step]).transform("any")
    return label.where(~clash, label + " [" + df.run_id + "]")


def reference_index(group):
    """Index of a group's reference case: its first ok manual/eager case, else its first ok case;
    None when nothing in the group was timed."""
    ok = group[(group.status == "ok") & (group.samples > 0)]
    if ok.empty:
        return None
    manual = ok[(ok.step == "manual") & (ok.backend == "eager")]
    return (manual if len(manual) else ok).index[0]


def _speedups(df):
    """speedup = reference median / case median (>1: faster than the reference), with its 95%
    bootstrap CI; paired by round when both share a run_id and enough rounds (stats.can_pair)."""
    df = df.copy()
    for column in ("speedup", "speedup_lo", "speedup_hi"):
        df[column] = math.nan
    df["speedup_paired"] = False
    df["reference"] = ""
    for _, group in df.groupby(GROUP, sort=False):
        ref = reference_index(group)
        if ref is None:
            continue
        r = df.loc[ref]
        for i in group.index:
            c = df.loc[i]
            df.at[i, "reference"] = f"{r.row}/{r.backend}"
            if c.status != "ok" or not c.samples:
                continue
            if i == ref:
                df.loc[i, ["speedup", "speedup_lo", "speedup_hi"]] = 1.0, 1.0, 1.0
                continue
            paired = c.run_id == r.run_id and stats.can_pair(r.rounds, c.rounds)
            ratio, lo, hi = stats.ratio_ci(r.samples_s, c.samples_s, paired=(r.rounds, c.rounds) if paired else None)
            df.loc[i, ["speedup", "speedup_lo", "speedup_hi"]] = ratio, lo, hi
            df.at[i, "speedup_paired"] = paired
    return df


def _mark_best(df):
    """best: the lowest median of its row (one step) in its group."""
    df = df.copy()
    df["best"] = False
    timed = df[(df.status == "ok") & df.median_ms.notna()]
    for _, g in timed.groupby(GROUP + ["row"], sort=False):
        df.at[g.median_ms.idxmin(), "best"] = True
    return df


def groups(df):
    """[(key, rows)] for each table, in a stable order: device, then size, then dtype."""
    if df.empty:
        return []
    return list(df.groupby(GROUP, sort=True))


def title(key):
    w, n, m, nh, dtype = key
    return f"{w}, n={n}, m={m}, nh={nh}, {dtype}"


# ---------------------------------------------------------------- compile pay-back

def payback_calls(overhead_s, saving_s):
    """Steady calls after which a compile overhead is paid back by a per-call saving:
    ceil(overhead / saving), 0 when there is no overhead, inf (never) when there is no saving."""
    if not saving_s > 0:
        return math.inf
    return max(0, math.ceil(overhead_s / saving_s))


def payback(df):
    """One row per timed non-eager case: its compile overhead (trace + first call - steady median),
    its saving per call against the eager case of the same step, device, size and dtype (from the
    same run when there is one), and the calls it takes to pay back (inf: never)."""
    out = []
    timed = df[(df.status == "ok") & df.median_ms.notna()]
    for i, c in timed[timed.backend != "eager"].iterrows():
        eager = timed[(timed.backend == "eager") & (timed.framework == c.framework) & (timed.step == c.step)
                      & (timed["where"] == c["where"]) & (timed.n == c.n) & (timed.m == c.m)
                      & (timed.nh == c.nh) & (timed["dtype"] == c["dtype"])]
        if eager.empty or not math.isfinite(c.first_call_ms):
            continue
        same_run = eager[eager.run_id == c.run_id]
        e = (same_run if len(same_run) else eager).iloc[0]
        overhead = (c.trace_ms if math.isfinite(c.trace_ms) else 0.0) + c.first_call_ms - c.median_ms
        saving = e.median_ms - c.median_ms
        out.append({**{k: c[k] for k in GROUP + ["framework", "step", "backend", "run_id", "row"]},
                    "first_call_ms": c.first_call_ms, "trace_ms": c.trace_ms, "median_ms": c.median_ms,
                    "eager_median_ms": e.median_ms, "overhead_ms": overhead, "saving_ms": saving,
                    "payback_calls": float(payback_calls(overhead, saving))})
    columns = GROUP + ["framework", "step", "backend", "run_id", "row", "first_call_ms", "trace_ms",
                       "median_ms", "eager_median_ms", "overhead_ms", "saving_ms", "payback_calls"]
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------- crossovers

def crossovers(x, ya, yb):
    """Where line a crosses line b, both linear between points on log-log axes.

    x: increasing positive values; ya, yb: positive, one per x. Returns [(x, y, faster)], faster
    being 'a' or 'b', the line that is lower beyond the crossing. A line touching the other at a
    measured point without crossing is no crossing."""
    lx, la, lb = np.log(np.asarray(x, float)), np.log(np.asarray(ya, float)), np.log(np.asarray(yb, float))
    d = la - lb
    nonzero = [i for i in range(len(d)) if d[i] != 0]
    found = []
    for i, j in zip(nonzero, nonzero[1:]):
        if d[i] * d[j] > 0:
            continue
        if j == i + 1:
            t = d[i] / (d[i] - d[j])
            at_x, at_y = lx[i] + t * (lx[j] - lx[i]), la[i] + t * (la[j] - la[i])
        else:   # equal at the measured points between i and j: the crossing is the first of them
            at_x, at_y = lx[i + 1], la[i + 1]
        found.append((float(np.exp(at_x)), float(np.exp(at_y)), "a" if d[j] < 0 else "b"))
    return found


def line_key_columns(var):
    """What identifies one line of a scaling plot against `var` (every column but var and the step)."""
    return ["framework", "backend", "where", "run_id"] + [v for v in ("n", "m", "nh") if v != var] + ["dtype"]


def scaling_lines(df, var):
    """{step: {line key: rows sorted by var}} for the lines with at least two values of var."""
    timed = df[(df.status == "ok") & (df.median_ms > 0)]
    lines = {}
    for step, g in timed.groupby("step", sort=False):
        for key, rows in g.groupby(line_key_columns(var), sort=False):
            rows = rows.drop_duplicates(var).sort_values(var)
            if len(rows) >= 2:
                lines.setdefault(step, {})[key] = rows
    return lines


def line_label(key, keys, var):
    """A line's legend label: the backend and the parts of its key that differ between `keys`;
    the run id only when the rest does not tell the lines apart."""
    columns = line_key_columns(var)

    def part(column, value):
        return f"{column}={value:,}" if column in ("n", "m", "nh") else str(value)

    def label(k, with_run):
        return " · ".join(part(column, k[i]) for i, column in enumerate(columns)
                          if column == "backend" or (len({kk[i] for kk in keys}) > 1
                                                     and (with_run or column != "run_id")))

    with_run = len({label(k, False) for k in keys}) < len(set(keys))
    return label(key, with_run)


def line_variant(key, var):
    """The parts of a line's key other than its framework and backend (device, run, the other
    sizes, dtype): lines of one framework and backend that differ in these differ in line style."""
    return tuple(v for v, column in zip(key, line_key_columns(var)) if column not in ("framework", "backend"))


def scaling_crossovers(df, var):
    """Every crossing between two lines of the same step in the scaling plot against `var`:
    one row each, numbered panel by panel from left to right."""
    out = []
    by_step = scaling_lines(df, var)
    every = [k for lines in by_step.values() for k in lines]   # labels as the plot's legend shows them
    for step, lines in by_step.items():
        keys = list(lines)
        for ia, ka in enumerate(keys):
            for kb in keys[ia + 1:]:
                a, b = lines[ka].set_index(var).median_ms, lines[kb].set_index(var).median_ms
                shared = sorted(set(a.index) & set(b.index))
                if len(shared) < 2:
                    continue
                for x, y, faster in crossovers(shared, a[shared].to_numpy(), b[shared].to_numpy()):
                    fast, slow = (ka, kb) if faster == "a" else (kb, ka)
                    out.append({"step": step, "var": var, "crossing": x, "time_ms": y,
                                "faster_beyond": line_label(fast, every, var),
                                "slower_beyond": line_label(slow, every, var)})
    df_out = pd.DataFrame(out, columns=["step", "var", "crossing", "time_ms", "faster_beyond", "slower_beyond"])
    order = {step: i for i, step in enumerate(by_step)}
    df_out = df_out.sort_values(["step", "crossing"], key=lambda c: c.map(order) if c.name == "step" else c,
                                kind="stable", ignore_index=True)
    df_out.insert(0, "number", range(1, len(df_out) + 1))
    return df_out
