"""Records -> pandas frames: per-case statistics, speed-ups with confidence intervals, compile
pay-back and crossovers; and numbers formatted to what their spread supports. NumPy and pandas only."""
import math
import re

import numpy as np
import pandas as pd

from bench import stats

# A table is one device (with its hardware) at one size and dtype.
GROUP = ["where", "n", "m", "nh", "dtype"]
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
        samples = tuple(r.samples_s or ())
        ceilings = r.ceilings or {}
        median = stats.median(samples) if samples else math.nan
        q1, q3 = np.percentile(samples, [25, 75]) if samples else (math.nan, math.nan)
        ci = stats.median_ci(samples) if samples else (math.nan, math.nan)
        gflops = r.flops / median / 1e9 if r.flops and median > 0 else math.nan
        gemm, copy = _num(ceilings.get("gemm_gflops")), _num(ceilings.get("copy_gbps"))
        intensity = r.flops / r.min_bytes if r.flops and r.min_bytes else math.nan
        bound = None
        if intensity == intensity and gemm > 0 and copy > 0:
            bound = "compute" if intensity >= gemm / copy else "memory"
        rows.append({
            "framework": r.framework, "step": r.step, "backend": r.backend, "device": r.device,
            "where": where(r.device, r.env), "n": r.n, "m": r.m, "nh": r.nh, "dtype": r.dtype,
            "run_id": r.run_id or "", "status": r.status, "error": r.error, "note": r.note, "data": r.data or "",
            "median_ms": median * 1e3, "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3, "iqr_ms": (q3 - q1) * 1e3,
            "iqr_pct": 100 * (q3 - q1) / median if median > 0 else math.nan,
            "ci_lo_ms": ci[0] * 1e3, "ci_hi_ms": ci[1] * 1e3, "samples": len(samples),
            "noisy": stats.is_noisy(samples), "stop_reason": r.stop_reason,
            "trace_ms": _num(r.trace_s, 1e3), "first_call_ms": _num(r.first_call_s, 1e3),
            "max_rel_err": _num(r.max_rel_err), "gflops": gflops,
            "pct_of_peak": 100 * gflops / gemm if gemm > 0 else math.nan,
            "gemm_peak_gflops": gemm, "copy_peak_gbps": copy, "intensity": intensity, "bound": bound,
            "peak_mib": _num(r.peak_bytes, 2.0 ** -20), "peak_method": r.peak_method,
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


# ---------------------------------------------------------------- numbers shown to their spread

def decimals(value, half_width, min_sig=2, max_sig=4, default_sig=3):
    """Decimal places (negative: tens, hundreds...) to show `value` with, given the half-width of
    its confidence interval: the last digit kept is the finest whose unit is at least half the
    half-width (finer digits are noise), e.g. 1.2345 +- 0.037 (3%) -> 1 place, '1.2'; keeping
    min_sig to max_sig significant figures; default_sig when the spread is unknown (None, nan, inf)."""
    if value is None or not math.isfinite(value) or value == 0:
        return 0
    lead = math.floor(math.log10(abs(value)))
    if half_width is not None and math.isfinite(half_width) and half_width > 0:
        sig = max(lead - math.ceil(math.log10(half_width / 2)) + 1, min_sig)
    elif half_width == 0:
        sig = max_sig
    else:
        sig = default_sig
    return min(sig, max_sig) - 1 - lead


def fixed(value, places):
    """`value` rounded to `places` decimal places (negative: to tens, hundreds...); '–' when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    if places >= 0:
        return f"{value:.{places}f}"
    return f"{round(value, places):.0f}"


def round_to_spread(value, half_width, **kw):
    """`value` as text with the digits its spread supports, e.g. (1.2345, 0.037) -> '1.2'."""
    return fixed(value, decimals(value, half_width, **kw))


def sig(value, figures=2):
    """`value` to `figures` significant figures, without an exponent for everyday magnitudes."""
    return round_to_spread(value, None, default_sig=figures)


def median_half_width(row):
    """Half-width of a row's median CI in ms; half the IQR when the CI needs more samples."""
    if math.isfinite(row.ci_lo_ms) and math.isfinite(row.ci_hi_ms):
        return (row.ci_hi_ms - row.ci_lo_ms) / 2
    return row.iqr_ms / 2 if math.isfinite(row.iqr_ms) else None


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

    def label(k, with_run):
        return " · ".join(str(k[i]) for i, column in enumerate(columns)
                          if column == "backend" or (len({kk[i] for kk in keys}) > 1
                                                     and (with_run or column != "run_id")))

    with_run = len({label(k, False) for k in keys}) < len(set(keys))
    return label(key, with_run)


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
