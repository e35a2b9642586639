"""Records -> pandas frames: each record's Summary (bench/records.py) as a row, speed-ups with
confidence intervals, compile pay-back and crossovers. NumPy and pandas only."""

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench import compare, noise, stats
from bench.compare import ROUNDS, RUNS, Estimate, Measurement
from bench.noise import Noise
from bench.records import CASE_DEFAULTS, CASE_FIELDS, Record
from kernels import models

# A table is one device (with its hardware) at one size and dtype: the case key without the
# framework, step and backend, the device named with its hardware.
GROUP = ["where"] + [f for f in CASE_FIELDS if f not in ("framework", "step", "backend", "device")]
# What tells cases of one device and size apart besides their framework, step and backend.
VARIANT = [f for f in GROUP if f not in ("where", "n", "m", "nh")]
SIZE_VARS = ("n", "nh")  # the sizes a scaling plot can put on its x axis

# Columns of frame(), in order; samples_s and rounds hold tuples and stay out of CSV files.
COLUMNS = [
    *CASE_FIELDS,
    "where",
    "precision",
    "parameters",
    "depth",
    "family",
    "framework_version",
    "timer",
    "host_median_ms",
    "dispatch_ms",
    "batch_ms",
    "throttled_samples",
    "other_cores",
    "run_id",
    "status",
    "error",
    "note",
    "data",
    "row",
    "median_ms",
    "q1_ms",
    "q3_ms",
    "iqr_ms",
    "iqr_pct",
    "ci_lo_ms",
    "ci_hi_ms",
    "samples",
    "noisy",
    "stop_reason",
    "trace_ms",
    "first_call_ms",
    "max_rel_err",
    "gflops",
    "pct_of_peak",
    "pct_of_shape_peak",
    "shape_peak_gflops",
    "gemm_peak_gflops",
    "copy_peak_gbps",
    "own_gemm_gflops",
    "own_copy_gbps",
    "intensity",
    "bound",
    "peak_mib",
    "estimate_mib",
    "peak_method",
    "tracing_count",
    "retraced",
    "speedup",
    "speedup_lo",
    "speedup_hi",
    "speedup_paired",
    "reference",
    "best",
    "samples_s",
    "rounds",
    "hosts",
    "allreduce_ms",
    "run_sd",
    "run_sd_source",
    "side",
]
OBJECT_COLUMNS = ("samples_s", "rounds", "side")


def _num(value, scale=1.0):
    """value * scale as a float, nan for None (fields that old or unfinished records leave empty)."""
    return float(value) * scale if value is not None else math.nan


def hardware(device: str, fingerprint: dict[str, Any] | None) -> str | None:
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


def where(device: str, fingerprint: dict[str, Any] | None) -> str:
    """The device as tables and plots name it: 'cpu (Some CPU)', or just 'cpu' when the hardware is unknown."""
    name = hardware(device, fingerprint)
    return f"{device} ({name})" if name else device


def frame(records: Iterable[Record], figures: noise.Figures | None = None) -> pd.DataFrame:
    """One row per record (COLUMNS), with the statistics derived from its samples, the speed-up
    against its group's reference case and whether it is the best of its row. figures: the stored
    noise figures (bench/noise.py) a comparison of separate runs is widened by, each run by its own
    machine's (the default where it has none)."""
    rows = []
    noises: dict[str, Noise] = {}
    for r in records:
        if r.run_id not in noises:
            noises[r.run_id] = noise.between_runs(figures or {}, r.fingerprint)
        s = r.summary
        samples = tuple(r.samples_s or ())
        rounds = tuple(r.rounds or ()) if len(r.rounds or ()) == len(samples) else ()
        host = stats.median(r.host_samples_s) * 1e3 if r.host_samples_s else math.nan
        rows.append(
            {
                **r.case.asdict(),
                "where": where(r.device, r.fingerprint),
                "precision": r.case.precision,
                "parameters": _num(r.parameters),
                **_shape(r),
                "framework_version": _framework_version(r),
                "timer": r.timer or "host clock + sync",
                "host_median_ms": host,
                "dispatch_ms": _num(r.dispatch_s, 1e3),
                "batch_ms": _num(r.batch_s, 1e3),
                "throttled_samples": _num((r.telemetry or {}).get("throttled_samples")),
                "other_cores": _other_cores(r.telemetry),
                "run_id": r.run_id or "",
                "status": r.status,
                "error": r.error,
                "note": r.note,
                "data": r.data or "",
                "median_ms": s.median_s * 1e3,
                "q1_ms": s.q1_s * 1e3,
                "q3_ms": s.q3_s * 1e3,
                "iqr_ms": s.iqr_s * 1e3,
                "iqr_pct": 100 * s.iqr_fraction,
                "ci_lo_ms": s.ci_lo_s * 1e3,
                "ci_hi_ms": s.ci_hi_s * 1e3,
                "samples": s.samples,
                "noisy": s.noisy,
                "stop_reason": r.stop_reason,
                "trace_ms": _num(r.trace_s, 1e3),
                "first_call_ms": _num(r.first_call_s, 1e3),
                "max_rel_err": _num(r.max_rel_err),
                "gflops": s.gflops,
                "pct_of_peak": s.pct_of_peak,
                "pct_of_shape_peak": s.pct_of_shape_peak,
                "shape_peak_gflops": s.shape_gflops,
                "gemm_peak_gflops": s.gemm_gflops,
                "copy_peak_gbps": s.copy_gbps,
                "intensity": s.intensity,
                "bound": s.bound,
                "peak_mib": _num(r.peak_bytes, 2.0**-20),
                "estimate_mib": _num(r.memory_estimate_bytes, 2.0**-20),
                "peak_method": r.peak_method,
                "tracing_count": _num(r.tracing_count),
                "retraced": _retraced(r),
                "samples_s": samples,
                "rounds": rounds,
                "hosts": _num((r.distributed or {}).get("hosts")),
                "allreduce_ms": _allreduce_ms(r.distributed),
                "run_sd": noises[r.run_id].run_sd,
                "run_sd_source": noises[r.run_id].run_source,
                "side": _side(r, samples, rounds, noises[r.run_id]),
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.empty:
        return df
    df["row"] = _row_labels(df)
    return _mark_best(_speedups(_in_plan_order(_machine_ceilings(df))))


def _shape(r: Record) -> dict[str, Any]:
    """The record's number of hidden layers and its depth sweep's family (kernels/models.py); nan
    and the model's name for a model this version cannot read."""
    try:
        return {"depth": models.depth(r.model, r.m, r.nh), "family": models.family(r.model, r.m, r.nh)}
    except (models.ModelError, ValueError):
        return {"depth": math.nan, "family": r.model}


def _machine_ceilings(df: pd.DataFrame) -> pd.DataFrame:
    """Each device's ceilings as the best any framework measured there (a framework whose copy
    kernel allocates its output measures page faults, not bandwidth): gemm_peak_gflops and
    copy_peak_gbps become the device's, % of peak and the bound follow from them, and each case's
    own framework's measurement stays in own_gemm_gflops and own_copy_gbps."""
    df["own_gemm_gflops"], df["own_copy_gbps"] = df.gemm_peak_gflops, df.copy_peak_gbps
    for column in ("gemm_peak_gflops", "copy_peak_gbps"):
        df[column] = df.groupby("where", sort=False)[column].transform("max")
    shapes = df.groupby(["where", "n", "m", "nh"], sort=False, dropna=False).shape_peak_gflops
    df["shape_peak_gflops"] = shapes.transform("max")  # the best any framework reached at those shapes
    with np.errstate(divide="ignore", invalid="ignore"):
        df["pct_of_peak"] = 100 * df.gflops / df.gemm_peak_gflops
        df["pct_of_shape_peak"] = 100 * df.gflops / df.shape_peak_gflops
        ridge = df.gemm_peak_gflops / df.copy_peak_gbps
    known = df.intensity.notna() & ridge.notna()
    df["bound"] = df.bound.where(~known, np.where(df.intensity < ridge, "memory", "compute"))
    return df


def _in_plan_order(df):
    """Rows ordered by framework, step, backend and environment (--env) as the run planned them,
    which is the order its timed cases were written in; a failed or skipped case is written as soon
    as it is checked, ahead of the group's timed ones, so first appearances among the timed cases come
    first (the first environment timed is the one the others are compared with)."""
    ranks = {}
    for col in ("framework", "row", "backend", "deps"):
        seen = list(dict.fromkeys([*df.loc[df.status == "ok", col], *df[col]]))
        ranks[col] = df[col].map({v: i for i, v in enumerate(seen)})
    order = pd.DataFrame(ranks).sort_values(list(ranks), kind="stable").index
    return df.loc[order].reset_index(drop=True)


def _framework_version(r: Record) -> str:
    """The version of the case's own framework its run recorded ("" where it did not)."""
    info = ((r.fingerprint or {}).get("frameworks") or {}).get(r.framework)
    return str(info.get("version") or "") if isinstance(info, dict) else ""


def _allreduce_ms(distributed):
    """The median time of the all-reduce alone, where the engine exposes it (nan: not recorded)."""
    values = (distributed or {}).get("allreduce_samples_s")
    ok = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)] if isinstance(values, list) else []
    return stats.median(ok) * 1e3 if ok else math.nan


def _other_cores(telemetry):
    """The median number of cores other processes kept busy while the case was timed (nan: not recorded)."""
    value = (telemetry or {}).get("other_cores")
    return float(value[0]) if isinstance(value, list) and value and isinstance(value[0], (int, float)) else math.nan


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


@dataclass(frozen=True)
class Side:
    """What the one comparison needs of a frame row, made once per row (the `side` column): its
    measurement and the noise between runs of the machine that measured it."""

    measurement: Measurement
    noise: Noise


def _side(r: Record, samples: tuple, rounds: tuple, noise: Noise) -> Side:
    busy = _other_cores(r.telemetry)
    return Side(Measurement(samples, rounds, r.run_id or "", None if busy != busy else busy), noise)


def compare_sides(base: Side, candidate: Side) -> Estimate:
    """candidate/base time by the one comparison (bench/compare.py): paired by round within one run,
    else separate runs widened by the candidate's machine's noise between runs (that machine's
    stored figure, else the default)."""
    b, c = base.measurement, candidate.measurement
    pairing = ROUNDS if b.run and b.run == c.run else RUNS
    return compare.estimate([b], [c], pairing, candidate.noise)


def estimate(base: Any, candidate: Any) -> Estimate:
    """candidate/base time of two frame rows (compare_sides of their `side`)."""
    return compare_sides(base.side, candidate.side)


def shown_faster(a: Any, b: Any) -> bool:
    """Whether case `a` (a frame row) is shown faster than `b`: the one comparison's interval of
    a's time over b's lies wholly below 1 (compare.Estimate.faster)."""
    return estimate(b, a).faster


def shown_higher_gflops(a: Any, b: Any) -> bool:
    """Whether case `a` is shown to reach more GFLOP/s than `b`: their throughputs' ratio, the FLOPs
    a call does over the one comparison's interval of their times, wholly above 1."""
    flops_a, flops_b = a.gflops * a.median_ms, b.gflops * b.median_ms  # FLOPs a call, in the same unit
    if not (flops_a > 0 and flops_b > 0):
        return False
    times = estimate(b, a)  # a's time over b's
    return flops_a / flops_b / times.hi > 1


def _reference_of(df: pd.DataFrame) -> pd.Series:
    """Each row's reference case (an index of df; nan where its group timed nothing): its group's
    first ok manual/eager case, else its first ok case; every group at once."""
    ok = df[(df.status == "ok") & (df.samples > 0)]
    manual = ok[(ok.step == "manual") & (ok.backend == "eager")]
    first = pd.concat([manual, ok]).groupby(GROUP, sort=False, dropna=False).head(1)
    first = first[~first.set_index(GROUP).index.duplicated()]  # a group's manual/eager row before its first ok
    refs = pd.Series(first.index, index=pd.MultiIndex.from_frame(first[GROUP]))
    keys = pd.MultiIndex.from_frame(df[GROUP])
    return pd.Series(refs.reindex(keys).to_numpy(), index=df.index)


def _speedups(df):
    """speedup = reference median / case median (>1: faster than the reference), with its 95%
    interval: the inverse of estimate(reference, case), so the report and `compare` of the same
    two records print the same ratio and interval."""
    df = df.copy()
    refs = _reference_of(df)
    timed = (df.status == "ok") & (df.samples > 0)
    out: dict[str, list[Any]] = {
        "speedup": [],
        "speedup_lo": [],
        "speedup_hi": [],
        "speedup_paired": [],
        "reference": [],
    }
    names = df.row + "/" + df.backend
    for i, ref, side, ok in zip(df.index, refs, df.side, timed):
        values: tuple[Any, ...]
        if ref != ref:  # nothing in the group was timed
            values = (math.nan, math.nan, math.nan, False, "")
        elif not ok:
            values = (math.nan, math.nan, math.nan, False, names[ref])
        elif i == ref:
            values = (1.0, 1.0, 1.0, False, names[ref])
        else:
            s = compare_sides(df.side[ref], side).inverse()
            values = (s.ratio, s.lo, s.hi, s.method.startswith(compare.PAIRED_BY_ROUND), names[ref])
        for column, value in zip(out, values):
            out[column].append(value)
    for column, found in out.items():
        df[column] = found
    return df


def _mark_best(df):
    """best: the fastest of its row (one step) in its group, where that is shown: of the two lowest
    medians, the one the comparison shows faster than the other (its paired estimate may rank them
    otherwise than their medians do). A row with one timed case has nothing to be
    fastest of; one whose two lowest are not told apart has no fastest (the tables bold and the bars
    outline `best`)."""
    df = df.copy()
    df["best"] = False
    timed = df[(df.status == "ok") & df.median_ms.notna()].sort_values("median_ms", kind="stable")
    by = timed.groupby(GROUP + ["row"], sort=False, dropna=False)
    rank, group = by.cumcount(), by.ngroup()
    first = pd.Series(timed.index[rank == 0], index=group[rank == 0].to_numpy())
    second = pd.Series(timed.index[rank == 1], index=group[rank == 1].to_numpy())
    for g, runner in second.items():
        e = compare_sides(df.side[runner], df.side[first[g]])  # the lowest median's time over the runner-up's
        if e.faster or e.inverse().faster:  # the comparison, paired by round, may order them otherwise
            df.at[first[g] if e.faster else runner, "best"] = True
    return df


def groups(df: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """[(key, rows)] for each table, in a stable order: device, then size, then precision (float64,
    float32, tf32, bfloat16, float16), warm cache before cold."""
    if df.empty:
        return []

    def order(item):
        k = dict(zip(GROUP, item[0]))
        rank = PRECISIONS.index(k["dtype"]) if k["dtype"] in PRECISIONS else len(PRECISIONS)
        return (
            k["where"],
            k["n"],
            k["m"],
            k["nh"],
            rank,
            k["dtype"],
            bool(k["tf32"]),
            k["cache"] != "warm",
            k["cache"],
        )

    return sorted(df.groupby(GROUP, sort=True), key=order)


def variant(values: Iterable[object]) -> str:
    """A case's VARIANT fields (their values, in that order) as text: 'float32', 'float32+tf32, cold
    cache', 'float32, mirrored over 2 replicas'; a field without words of its own is named with its
    value where it differs from its default."""
    v = dict(zip(VARIANT, values))
    text = f"{v.pop('dtype')}" + ("+tf32" if v.pop("tf32") else "")
    cache, engine, replicas, deps = v.pop("cache"), v.pop("engine"), v.pop("replicas"), v.pop("deps")
    text += f", {cache} cache" if cache != "warm" else ""
    text += (
        f", {engine} over {replicas} replica{'s' if replicas != 1 else ''}"
        if engine
        else f", {replicas} replicas"
        if replicas != 1
        else ""
    )
    text += f", in {deps}" if deps else ""
    return text + "".join(f", {k}={value}" for k, value in v.items() if value != CASE_DEFAULTS.get(k))


def title(key: tuple) -> str:
    """A group's title (a GROUP key): 'cpu (Some CPU), n=50000, m=784, nh=50, float32' (+tf32, cold cache)."""
    w, n, m, nh, *rest = key
    return f"{w}, n={n}, m={m}, nh={nh}, {variant(rest)}"


# ---------------------------------------------------------------- precisions

PRECISIONS = ("float64", "float32", "tf32", "bfloat16", "float16")  # the order tables list them in
PRECISION_KEY = ["where", "n", "m", "nh", "cache", "framework", "step", "backend"]


def precisions(df: pd.DataFrame) -> pd.DataFrame:
    """Every case that ran at two or more precisions, one row per precision: its median, its time
    against the same case in float32 (speed-up = float32 median / this median, >1 faster, with a
    bootstrap 95% CI; unpaired, as precisions are timed in separate groups) and its max relative
    error. Columns: PRECISION_KEY + precision, status, median_ms, speedup, speedup_lo, speedup_hi,
    max_rel_err."""
    columns = PRECISION_KEY + ["precision", "status", "median_ms", "speedup", "speedup_lo", "speedup_hi", "max_rel_err"]
    out = []
    for key, g in df[df.engine == ""].groupby(PRECISION_KEY, sort=False):  # one device: no engine
        if g.precision.nunique() < 2:
            continue
        base = g[(g.precision == "float32") & (g.status == "ok") & (g.samples > 0)]
        base = base.iloc[0] if len(base) else None
        rank = {p: i for i, p in enumerate(PRECISIONS)}
        for c in sorted(g.itertuples(), key=lambda c: rank.get(c.precision, len(rank))):
            ratio = lo = hi = math.nan
            if base is not None and c.status == "ok" and c.samples:
                if c.Index == base.name:
                    ratio = lo = hi = 1.0
                else:
                    s = estimate(base, c).inverse()
                    ratio, lo, hi = s.ratio, s.lo, s.hi
            out.append(
                {
                    **dict(zip(PRECISION_KEY, key)),
                    "precision": c.precision,
                    "status": c.status,
                    "median_ms": c.median_ms if c.status == "ok" else math.nan,
                    "speedup": ratio,
                    "speedup_lo": lo,
                    "speedup_hi": hi,
                    "max_rel_err": c.max_rel_err,
                }
            )
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------- versions (--env)

VERSION_KEY = ["where", "framework", "step", "backend", "n", "m", "nh", "precision", "cache", "engine", "replicas"]
VERSION_COLUMNS = VERSION_KEY + [
    "deps",
    "framework_version",
    "status",
    "error",
    "median_ms",
    "ci_lo_ms",
    "ci_hi_ms",
    "speedup",
    "speedup_lo",
    "speedup_hi",
    "paired",
    "standing",
]


def versions(df: pd.DataFrame) -> pd.DataFrame:
    """Every case that ran in two or more environments (run --env), one row per environment in the
    order they ran: its median and its speed against the same case in the first environment
    (speed-up = first median / this median, >1 faster, with a bootstrap 95% CI: paired by round where
    both come from one run, else widened by the noise between processes), and its standing against
    the environment with the lowest median: "fastest" (that one, shown faster than every other),
    "lowest" (that one, not shown faster than the runner-up), "tied" (not shown slower than it) or
    "slower" (shown slower: shown_faster). Columns: VERSION_COLUMNS."""
    out = []
    for key, g in df.groupby(VERSION_KEY, sort=False):
        if g.deps.nunique() < 2:
            continue
        timed = g[(g.status == "ok") & g.median_ms.notna()].sort_values("median_ms", kind="stable")
        standing = {}
        if len(timed):
            low = timed.iloc[0]
            slower = {i: shown_faster(low, timed.loc[i]) for i in timed.index[1:]}
            standing = {i: "slower" if shown else "tied" for i, shown in slower.items()}
            standing[low.name] = "fastest" if slower and all(slower.values()) else "lowest"
        first = g.iloc[0]
        base = first if first.status == "ok" and first.samples else None
        for c in g.itertuples():
            ratio = lo = hi = math.nan
            paired = False
            if base is not None and c.status == "ok" and c.samples:
                if c.Index == base.name:
                    ratio = lo = hi = 1.0
                else:
                    s = estimate(base, c).inverse()
                    ratio, lo, hi, paired = s.ratio, s.lo, s.hi, s.method.startswith(compare.PAIRED_BY_ROUND)
            out.append(
                {
                    **dict(zip(VERSION_KEY, key)),
                    "deps": c.deps,
                    "framework_version": c.framework_version,
                    "status": c.status,
                    "error": c.error,
                    "median_ms": c.median_ms if c.status == "ok" else math.nan,
                    "ci_lo_ms": c.ci_lo_ms,
                    "ci_hi_ms": c.ci_hi_ms,
                    "speedup": ratio,
                    "speedup_lo": lo,
                    "speedup_hi": hi,
                    "paired": paired,
                    "standing": standing.get(c.Index, ""),
                }
            )
    return pd.DataFrame(out, columns=VERSION_COLUMNS)


def fastest_versions(vr: pd.DataFrame) -> list[str]:
    """One line per case of versions(): the environment with the lowest median, whether it is shown
    fastest, which are indistinguishable from it and which are shown slower."""
    lines = []
    for key, g in vr.groupby(VERSION_KEY, sort=False):
        k = dict(zip(VERSION_KEY, key))
        case = f"{k['framework']}/{k['step']} · {k['backend']}, {k['where']}, n={k['n']:,}, {k['precision']}"
        low = g[g.standing.isin(["fastest", "lowest"])]
        if low.empty:
            lines.append(f"{case}: not timed in any environment")
            continue
        b = low.iloc[0]
        tied, slower = list(g.deps[g.standing == "tied"]), list(g.deps[g.standing == "slower"])
        untimed = list(g.deps[g.standing == ""])
        text = (
            f"{case}: fastest in {b.deps} ({b.median_ms:.3g} ms)"
            if b.standing == "fastest"
            else f"{case}: lowest median in {b.deps} ({b.median_ms:.3g} ms), within the 95% CI of {', '.join(tied)}"
        )
        if slower:
            text += f"; shown slower: {', '.join(slower)}"
        if untimed:
            text += f"; not timed: {', '.join(untimed)}"
        lines.append(text)
    return lines


# ---------------------------------------------------------------- data-parallel scaling

SCALING_KEY = ["where", "framework", "step", "engine", "backend", "m", "nh", "precision", "run_id"]
SCALING_COLUMNS = SCALING_KEY + [
    "kind",
    "n",
    "n_per_replica",
    "replicas",
    "median_ms",
    "speedup",
    "speedup_lo",
    "speedup_hi",
    "efficiency",
    "efficiency_lo",
    "efficiency_hi",
    "allreduce_ms",
    "allreduce_share",
    "single_ms",
    "overhead",
    "overhead_lo",
    "overhead_hi",
]


def scaling(df: pd.DataFrame) -> pd.DataFrame:
    """The data-parallel cases (an engine over R replicas) against R=1 under the same engine:
    strong scaling (the same global n; speed-up T1/TR, efficiency speed-up/R) and weak scaling (the
    same n per replica; efficiency T1/TR, ideal 1), each with a bootstrap 95% CI widened by the
    noise between runs (the run_sd column, the sd of the log of a run's median: each R is its own set
    of processes, timed at another time, so the samples' own interval would claim a certainty that
    a second run does not repeat). The R=1 rows also compare with the plain single-device case of
    the same framework, backend and n timed by the same loop (engine ""): overhead = T(R=1) / T(one
    device), >1 is the engine's cost. Columns: SCALING_COLUMNS."""
    timed = df[(df.status == "ok") & (df.samples > 0)]
    dist = timed[timed.engine != ""]
    single = {
        (c.where, c.framework, c.step, c.backend, c.m, c.nh, c.precision, c.run_id, c.n): c
        for c in timed[timed.engine == ""].itertuples()
    }
    out = []
    for key, g in dist.groupby(SCALING_KEY, sort=False):
        ones = {c.n: c for c in g[g.replicas == 1].itertuples()}
        for c in sorted(g.itertuples(), key=lambda c: (c.n // c.replicas, c.replicas)):
            row = {
                **dict(zip(SCALING_KEY, key)),
                "n": c.n,
                "n_per_replica": c.n // c.replicas,
                "replicas": c.replicas,
                "median_ms": c.median_ms,
                "allreduce_ms": c.allreduce_ms,
                "allreduce_share": c.allreduce_ms / c.median_ms if c.median_ms > 0 else math.nan,
            }
            strong, weak = ones.get(c.n), ones.get(c.n // c.replicas)
            for kind, base in (("strong", strong), ("weak", weak)):
                if base is None:
                    continue
                ratio, lo, hi = (1.0, 1.0, 1.0) if base.Index == c.Index else _apart_ratio(base, c)
                per = c.replicas if kind == "strong" else 1
                extra = {}
                if c.replicas == 1:
                    plain = single.get((*key[:3], key[4], *key[5:], c.n))
                    if plain is not None:
                        o, olo, ohi = _apart_ratio(plain, c, speedup=False)
                        extra = {"single_ms": plain.median_ms, "overhead": o, "overhead_lo": olo, "overhead_hi": ohi}
                out.append(
                    {
                        **row,
                        "kind": kind,
                        "speedup": ratio,
                        "speedup_lo": lo,
                        "speedup_hi": hi,
                        "efficiency": ratio / per,
                        "efficiency_lo": lo / per,
                        "efficiency_hi": hi / per,
                        **extra,
                    }
                )
    return pd.DataFrame(out, columns=SCALING_COLUMNS)


def _apart_ratio(base: Any, case: Any, speedup: bool = True) -> tuple[float, float, float]:
    """A data-parallel case against another as processes apart (each R runs in processes of its own,
    at another time): the one comparison of separate runs; base/case with speedup, else case/base."""
    e = compare.estimate([base.side.measurement], [case.side.measurement], RUNS, case.side.noise)
    e = e.inverse() if speedup else e
    return e.ratio, e.lo, e.hi


# ---------------------------------------------------------------- launch overhead

LAUNCH_KEY = ["where", "framework", "step", "backend", "m", "nh", "precision", "cache", "run_id"]


def launch_lines(df: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[tuple[str, str], pd.DataFrame]]:
    """{(where, step, precision, cache): {(framework, backend): rows}} of the cases timed at two or
    more n, each line's rows sorted by n, where at least one of them has a host-clock time beside
    its timer's (host_median_ms) or a dispatch time: the data of the launch-overhead plot. A line
    that ran in several runs is drawn from the first (every run is in the tables)."""
    timed = df[(df.status == "ok") & (df.median_ms > 0) & (df.engine == "")]
    timed = timed[timed.host_median_ms.notna() | timed.dispatch_ms.notna()]
    out: dict[tuple[str, str, str, str], dict[tuple[str, str], pd.DataFrame]] = {}
    for key, rows in timed.groupby(LAUNCH_KEY, sort=False):
        if rows.n.nunique() < 2:
            continue
        line = dict(zip(LAUNCH_KEY, key))
        panel = out.setdefault((line["where"], line["step"], line["precision"], line["cache"]), {})
        name = (line["framework"], line["backend"])
        if name not in panel:
            panel[name] = rows.sort_values("n").drop_duplicates("n")
    return out


# ---------------------------------------------------------------- compile pay-back


def payback_calls(overhead_s: float, saving_s: float) -> float:
    """Steady calls after which a compile overhead is paid back by a per-call saving:
    ceil(overhead / saving), 0 when there is no overhead, inf (never) when there is no saving."""
    if not saving_s > 0:
        return math.inf
    return max(0, math.ceil(overhead_s / saving_s))


PAYBACK_COLUMNS = GROUP + [
    "framework",
    "step",
    "backend",
    "run_id",
    "row",
    "first_call_ms",
    "trace_ms",
    "median_ms",
    "eager_median_ms",
    "overhead_ms",
    "saving_ms",
    "saving_lo_ms",
    "saving_hi_ms",
    "payback_calls",
    "payback_lo",
    "payback_hi",
    "shown",
]


def payback(df: pd.DataFrame) -> pd.DataFrame:
    """One row per timed non-eager case: its compile overhead (trace + first call - steady median),
    its saving per call against the eager case of the same step, device, size and dtype (from the
    same run when there is one) with the interval the one comparison gives it, and the calls it
    takes to pay back. shown: "faster" where the case is shown faster than eager (calls with their
    interval), "slower" where shown slower (never pays back), "" where neither is shown."""
    out = []
    timed = df[(df.status == "ok") & df.median_ms.notna()]
    match = ["framework", "step", *GROUP]
    eagers: dict[tuple, list] = {}  # the eager cases of each (framework, step, device, size, dtype), in file order
    for e in timed[timed.backend == "eager"].itertuples(index=False):
        eagers.setdefault(tuple(getattr(e, k) for k in match), []).append(e)
    for c in timed[timed.backend != "eager"].itertuples(index=False):
        eager = eagers.get(tuple(getattr(c, k) for k in match), [])
        if not eager or not math.isfinite(c.first_call_ms):
            continue
        e = next((x for x in eager if x.run_id == c.run_id), eager[0])
        overhead = (c.trace_ms if math.isfinite(c.trace_ms) else 0.0) + c.first_call_ms - c.median_ms
        ratio = estimate(e, c)  # the compiled case's time over eager's
        saving, lo, hi = (e.median_ms * (1 - r) for r in (ratio.ratio, ratio.hi, ratio.lo))
        shown = "faster" if ratio.faster else "slower" if ratio.inverse().faster else ""
        out.append(
            {
                **{k: getattr(c, k) for k in GROUP + ["framework", "step", "backend", "run_id", "row"]},
                "first_call_ms": c.first_call_ms,
                "trace_ms": c.trace_ms,
                "median_ms": c.median_ms,
                "eager_median_ms": e.median_ms,
                "overhead_ms": overhead,
                "saving_ms": saving,
                "saving_lo_ms": lo,
                "saving_hi_ms": hi,
                "payback_calls": float(payback_calls(overhead, saving)),
                "payback_lo": float(payback_calls(overhead, hi)),
                "payback_hi": float(payback_calls(overhead, lo)),
                "shown": shown,
            }
        )
    return pd.DataFrame(out, columns=PAYBACK_COLUMNS)


# ---------------------------------------------------------------- crossovers


def crossovers(x: Sequence[float], ya: Sequence[float], yb: Sequence[float]) -> list[tuple[float, float, str]]:
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
        else:  # equal at the measured points between i and j: the crossing is the first of them
            at_x, at_y = lx[i + 1], la[i + 1]
        found.append((float(np.exp(at_x)), float(np.exp(at_y)), "a" if d[j] < 0 else "b"))
    return found


def line_key_columns(var: str) -> list[str]:
    """What identifies one line of a scaling plot against `var`: every field of the case
    (records.CASE_FIELDS) but the step and var, the device named with its hardware, and the run. A
    line so joins only cases that differ in var alone (an engine's x2 case never continues a
    one-device line). Against depth, the model's family stands for the model and its nh."""
    if var == "depth":
        skip = ("framework", "backend", "step", "device", "model", "nh")
        return ["framework", "backend", "where", "run_id", "family"] + [f for f in CASE_FIELDS if f not in skip]
    return ["framework", "backend", "where", "run_id"] + [
        f for f in CASE_FIELDS if f not in ("framework", "backend", "step", "device", var)
    ]


JOINED = "runs joined"  # the run_id of a line whose points come from several runs


def scaling_lines(df: pd.DataFrame, var: str) -> dict[str, dict[tuple, pd.DataFrame]]:
    """{step: {line key: rows sorted by var}} for the lines with at least two values of var. A
    case's points of several runs (a report merging a run at n=2000 with one at n=5000) are one line
    (its run_id JOINED) when no value of var repeats among them; else each run's points are its own."""
    columns = line_key_columns(var)
    run = columns.index("run_id")
    timed = df[(df.status == "ok") & (df.median_ms > 0)]
    timed = timed.drop_duplicates(["step", *columns, var]).sort_values(var, kind="stable")
    across = [c for c in columns if c != "run_id"]
    sizes = timed.groupby(["step", *across], sort=False, dropna=False)[var].transform("size")
    timed = timed[sizes >= 2]  # a point alone is no line: left out before the groups are walked
    lines: dict[str, dict[tuple, pd.DataFrame]] = {}
    for (step, *rest), rows in timed.groupby(["step", *across], sort=False, dropna=False):
        if rows.run_id.nunique() > 1 and not rows[var].duplicated().any():
            parts = {JOINED: rows}
        else:
            parts = dict(tuple(rows.groupby("run_id", sort=False)))
        for run_id, part in parts.items():
            if len(part) >= 2:
                lines.setdefault(step, {})[tuple(rest[:run] + [run_id] + rest[run:])] = part
    order = list(dict.fromkeys(timed.step))  # steps in the order they first appear
    return {step: lines[step] for step in order if step in lines}


def line_labels(keys: Iterable[tuple], var: str) -> dict[tuple, str]:
    """{key: legend label} of a scaling plot's lines: the backend and the parts of the key that
    differ between `keys`; the run id only when the rest does not tell the lines apart. Linear in
    the number of lines."""
    keys = list(dict.fromkeys(keys))
    columns = line_key_columns(var)
    differ = [column == "backend" or len({k[i] for k in keys}) > 1 for i, column in enumerate(columns)]

    def part(column, value):
        if column == "tf32":
            return "tf32" if value else "no tf32"
        return f"{column}={value:,}" if column in ("n", "m", "nh") else str(value)

    def label(k, with_run):
        return " · ".join(
            part(column, k[i]) for i, column in enumerate(columns) if differ[i] and (with_run or column != "run_id")
        )

    with_run = len({label(k, False) for k in keys}) < len(keys)
    return {k: label(k, with_run) for k in keys}


def line_variant(key: tuple, var: str) -> tuple:
    """The parts of a line's key other than its framework and backend (device, run, the other
    sizes, dtype): lines of one framework and backend that differ in these differ in line style."""
    return tuple(v for v, column in zip(key, line_key_columns(var)) if column not in ("framework", "backend"))


def _context(key, var):
    """What two lines must share for their crossing to mean something: the other sizes and the dtype."""
    return tuple(
        v for v, column in zip(key, line_key_columns(var)) if column not in ("framework", "backend", "where", "run_id")
    )


def _comparable_runs(keys, var):
    """(run a, run b) -> whether lines of the two runs are paired: always within one run; across
    two runs only when they timed different kinds of device (a CPU run here, a GPU run elsewhere),
    not when they are two machines of a fleet timing the same kind (that crossing means nothing)."""
    columns = line_key_columns(var)
    run, where = columns.index("run_id"), columns.index("where")
    kinds: dict[str, set[str]] = {}
    for k in keys:
        kinds.setdefault(k[run], set()).add(str(k[where]).split(" ", 1)[0])
    return lambda a, b: a == b or not kinds[a] & kinds[b]


def _shown_faster_at(fast: dict, slow: dict, x: float) -> bool:
    """Whether the line `fast` ({x: Side}) is shown faster than `slow` at x (the one comparison)."""
    return compare_sides(slow[x], fast[x]).faster


def scaling_crossovers(df: pd.DataFrame, var: str) -> pd.DataFrame:
    """Every crossing between two lines of the same step and context in the scaling plot against
    `var` (lines of one run, or of two runs of different devices: _comparable_runs): one row each,
    numbered panel by panel from left to right, `supported` where the one comparison shows the
    order both ways: the line slower beyond the crossing shown faster at the measured size before it,
    the faster one shown faster at the size after it (else the order may be noise). Linear in the
    runs of a fleet."""
    out = []
    by_step = scaling_lines(df, var)
    every = [k for lines in by_step.values() for k in lines]
    labels = line_labels(every, var)  # as the legend shows them
    comparable = _comparable_runs(every, var)
    run = line_key_columns(var).index("run_id")
    for step, lines in by_step.items():
        contexts: dict[tuple, dict[str, list[tuple]]] = {}
        for key in lines:
            contexts.setdefault(_context(key, var), {}).setdefault(key[run], []).append(key)
        for runs in contexts.values():
            series = {k: dict(zip(lines[k][var], lines[k].median_ms)) for keys in runs.values() for k in keys}
            rows = {k: dict(zip(lines[k][var], lines[k].side)) for keys in runs.values() for k in keys}
            names = list(runs)
            pairs = [
                (ka, kb)
                for i, ra in enumerate(names)
                for rb in names[i:]
                if comparable(ra, rb)
                for ia, ka in enumerate(runs[ra])
                for kb in (runs[rb][ia + 1 :] if ra == rb else runs[rb])
            ]
            for ka, kb in pairs:
                shared = sorted(set(series[ka]) & set(series[kb]))
                if len(shared) < 2:
                    continue
                ya = [series[ka][x] for x in shared]
                yb = [series[kb][x] for x in shared]
                for x, y, faster in crossovers(shared, ya, yb):
                    fast, slow = (ka, kb) if faster == "a" else (kb, ka)
                    left, right = max(v for v in shared if v <= x), min(v for v in shared if v >= x)
                    out.append(
                        {
                            "step": step,
                            "var": var,
                            "crossing": x,
                            "time_ms": y,
                            "faster_beyond": labels[fast],
                            "slower_beyond": labels[slow],
                            "supported": _shown_faster_at(rows[slow], rows[fast], left)
                            and _shown_faster_at(rows[fast], rows[slow], right),
                        }
                    )
    df_out = pd.DataFrame(
        out, columns=["step", "var", "crossing", "time_ms", "faster_beyond", "slower_beyond", "supported"]
    )
    order = {step: i for i, step in enumerate(by_step)}
    df_out = df_out.sort_values(
        ["step", "crossing"], key=lambda c: c.map(order) if c.name == "step" else c, kind="stable", ignore_index=True
    )
    df_out.insert(0, "number", range(1, len(df_out) + 1))
    return df_out
