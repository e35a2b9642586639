"""How a step's time grows with the network's depth: per line of cases that differ in depth alone
(frames.scaling_lines against "depth"), the fit time = overhead + per_layer x depth, each with a
bootstrap 95% interval; the depth at which each compiled backend overtakes eager; and what
autodiff costs beside the hand-written backward, per layer and per call.

A line needs DEPTHS_TO_FIT depths. The intervals come from resampling each depth's samples (the
median of a resample), refitting every replicate: what the samples support, no more."""

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.report import frames

DEPTHS_TO_FIT = 3
REPLICATES = 2000
HAND_WRITTEN = "manual"
AUTODIFF = ("tape", "grad", "autograd", "keras")

FIT_COLUMNS = [
    "step", "framework", "backend", "where", "family", "n", "precision", "loss_fn", "depths",
    "per_layer_ms", "per_layer_lo", "per_layer_hi", "overhead_ms", "overhead_lo", "overhead_hi", "line",
]  # fmt: skip
VERSUS_COLUMNS = [
    "framework", "kind", "step", "backend", "against", "where", "family", "n", "precision", "loss_fn",
    "per_layer_ms", "per_layer_lo", "per_layer_hi", "overhead_ms", "overhead_lo", "overhead_hi",
    "crossing", "crossing_lo", "crossing_hi", "cheaper", "faster", "slower", "undecided", "faster_from",
]  # fmt: skip


def _medians(samples: tuple, rng: np.random.Generator) -> np.ndarray:
    """REPLICATES medians of resamples of `samples` (seconds) in ms."""
    a = np.asarray(samples, float) * 1e3
    return np.median(a[rng.integers(0, len(a), (REPLICATES, len(a)))], axis=1)


def _fit(depths: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Least squares of times (depths x replicates) on [1, depth]: (2, replicates), overhead and slope."""
    design = np.column_stack([np.ones_like(depths), depths])
    return np.linalg.pinv(design) @ times


def _interval(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5]) if np.isfinite(values).any() else (math.nan, math.nan)
    return float(lo), float(hi)


class _Line:
    """One line of the depth plot: its rows by depth, the point fit and the bootstrap replicates."""

    def __init__(self, key: tuple, rows: pd.DataFrame, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.key, self.rows = key, rows.sort_values("depth")
        self.depths = self.rows.depth.to_numpy(float)
        self.point = _fit(self.depths, self.rows.median_ms.to_numpy(float)[:, None])[:, 0]
        self.boot = _fit(self.depths, np.stack([_medians(s, rng) for s in self.rows.samples_s]))

    def field(self, name: str) -> Any:
        return self.key[frames.line_key_columns("depth").index(name)]


def _lines(df: pd.DataFrame) -> dict[str, dict[tuple, _Line]]:
    """{step: {line key: _Line}} of the lines with DEPTHS_TO_FIT depths or more, every point timed."""
    out: dict[str, dict[tuple, _Line]] = {}
    for step, lines in frames.scaling_lines(df[df.depth.notna()], "depth").items():
        for i, (key, rows) in enumerate(lines.items()):
            if rows.depth.nunique() >= DEPTHS_TO_FIT and all(len(s) >= 2 for s in rows.samples_s):
                out.setdefault(step, {})[key] = _Line(key, rows, seed=i)
    return out


def fits(df: pd.DataFrame) -> pd.DataFrame:
    """One row per line: per-layer cost and per-call overhead in ms, each with its 95% interval."""
    labels = frames.line_labels([k for lines in _lines(df).values() for k in lines], "depth")
    out = []
    for step, lines in _lines(df).items():
        for key, line in lines.items():
            (a_lo, a_hi), (b_lo, b_hi) = _interval(line.boot[0]), _interval(line.boot[1])
            first = line.rows.iloc[0]
            out.append(
                {
                    "step": step,
                    "framework": line.field("framework"),
                    "backend": line.field("backend"),
                    "where": line.field("where"),
                    "family": line.field("family"),
                    "n": first.n,
                    "precision": first.precision,
                    "loss_fn": first.loss_fn,
                    "depths": ",".join(str(int(d)) for d in line.depths),
                    "per_layer_ms": line.point[1],
                    "per_layer_lo": b_lo,
                    "per_layer_hi": b_hi,
                    "overhead_ms": line.point[0],
                    "overhead_lo": a_lo,
                    "overhead_hi": a_hi,
                    "line": labels[key],
                }
            )
    return pd.DataFrame(out, columns=FIT_COLUMNS)


def _context(line: _Line) -> tuple:
    """What two lines must share to be set side by side: all of the key but framework and backend."""
    return tuple(v for v, c in zip(line.key, frames.line_key_columns("depth")) if c not in ("framework", "backend"))


def _verdicts(case: _Line, other: _Line) -> dict[str, list[int]]:
    """The measured depths at which the one comparison shows `case` faster than `other`, slower,
    or neither (its interval holds 1, or too few samples for one)."""
    case_at = dict(zip(case.rows.depth, case.rows.side))
    other_at = dict(zip(other.rows.depth, other.rows.side))
    out: dict[str, list[int]] = {"faster": [], "slower": [], "undecided": []}
    for d in sorted(set(case_at) & set(other_at)):
        if frames.compare_sides(other_at[d], case_at[d]).faster:
            out["faster"].append(int(d))
        elif frames.compare_sides(case_at[d], other_at[d]).faster:
            out["slower"].append(int(d))
        else:
            out["undecided"].append(int(d))
    return out


def _faster_from(verdicts: dict[str, list[int]]) -> float:
    """The least measured depth from which the case is shown faster at every deeper measured one."""
    every = sorted(d for ds in verdicts.values() for d in ds)
    start = math.nan
    for d in reversed(every):
        if d not in verdicts["faster"]:
            break
        start = d
    return start


def _versus(kind: str, case: _Line, base: _Line, step: str, base_step: str) -> dict[str, Any]:
    """`case` beside `base`: the difference of their slopes and intercepts (case minus base) with
    intervals, the depth where case's fit crosses below base's, and where it is shown faster."""
    slope, over = case.boot[1] - base.boot[1], case.boot[0] - base.boot[0]
    d_slope, d_over = case.point[1] - base.point[1], case.point[0] - base.point[0]
    crossing = -d_over / d_slope if d_slope != 0 and -d_over / d_slope > 0 else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_boot = np.where(np.sign(slope) == np.sign(d_slope), -over / slope, np.nan)
    lo, hi = _interval(cross_boot) if math.isfinite(crossing) else (math.nan, math.nan)
    first = case.rows.iloc[0]
    return {
        "framework": case.field("framework"),
        "kind": kind,
        "step": step,
        "backend": case.field("backend"),
        "against": f"{base.field('framework')}/{base_step}/{base.field('backend')}",
        "where": case.field("where"),
        "family": case.field("family"),
        "n": first.n,
        "precision": first.precision,
        "loss_fn": first.loss_fn,
        "per_layer_ms": d_slope,
        "per_layer_lo": _interval(slope)[0],
        "per_layer_hi": _interval(slope)[1],
        "overhead_ms": d_over,
        "overhead_lo": _interval(over)[0],
        "overhead_hi": _interval(over)[1],
        "crossing": crossing,
        "crossing_lo": lo,
        "crossing_hi": hi,
        "cheaper": "deeper" if d_slope < 0 else "shallower",
        **(verdicts := _verdicts(case, base)),
        "faster_from": _faster_from(verdicts),
    }


def versus(df: pd.DataFrame) -> pd.DataFrame:
    """Each compiled backend against eager (same framework, step and context) and each autodiff step
    against the hand-written one (same framework, backend and context): per-layer and per-call
    differences (case minus the other; negative is cheaper), the positive depth where the fitted
    lines cross (nan: none) and on which side of it the case is cheaper, the measured depths at
    which the one comparison shows it faster, slower or neither, and the least measured depth from
    which it is shown faster at every measured depth."""
    lines = _lines(df)
    out = []
    for step, by_key in lines.items():
        for line in by_key.values():
            if line.field("backend") == "eager":
                continue
            for other in by_key.values():
                same = other.field("framework") == line.field("framework") and _context(other) == _context(line)
                if same and other.field("backend") == "eager":
                    out.append(_versus("compiled", line, other, step, step))
    for step in AUTODIFF:
        for line in lines.get(step, {}).values():
            for other in lines.get(HAND_WRITTEN, {}).values():
                same = other.field("framework") == line.field("framework") and _context(other) == _context(line)
                if same and other.field("backend") == line.field("backend"):
                    out.append(_versus("autodiff", line, other, step, HAND_WRITTEN))
    return pd.DataFrame(out, columns=VERSUS_COLUMNS)
