"""Records: one frozen dataclass of raw samples and metadata per case, stored as JSON lines.

Statistics (median, IQR) are derived from the samples, so any table or plot can be rebuilt
from the file. Each record carries its run's environment, so files from many runs merge."""
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from bench import stats

SCHEMA = 1
STATUSES = ("ok", "failed", "skipped")


class RecordsError(ValueError):
    """A results file is missing or broken; str() is one line naming the file and the problem."""


class CaseKey(NamedTuple):
    """What identifies a case across runs: run, compare, export, tables and the gate key on it.
    A new axis (precision, replicas) is a new field here, with a default that old records take."""
    framework: str
    step: str
    backend: str
    device: str
    n: int
    m: int
    nh: int
    dtype: str

    @property
    def name(self):
        """framework/step/backend/device: what per-case gate thresholds match."""
        return f"{self.framework}/{self.step}/{self.backend}/{self.device}"

    @property
    def label(self):
        return f"{self.name} n={self.n} m={self.m} nh={self.nh} {self.dtype}"


CASE_FIELDS = CaseKey._fields


@dataclass(frozen=True)
class Summary:
    """A record's statistics, derived from its samples and analytic counts in this one place (report,
    compare and export all read it); nan where the record lacks what a figure needs."""
    median_s: float
    q1_s: float
    q3_s: float
    ci_lo_s: float             # the median's 95% CI (order statistics); nan with under 8 samples
    ci_hi_s: float
    samples: int
    noisy: bool                # IQR over stats.NOISY_IQR_FRACTION of the median
    gflops: float
    gemm_gflops: float         # the device's measured ceilings, from the record's run
    copy_gbps: float
    intensity: float           # FLOPs per byte that must move (kernels/cost.py)

    @property
    def iqr_s(self):
        return self.q3_s - self.q1_s

    @property
    def iqr_fraction(self):
        return self.iqr_s / self.median_s if self.median_s > 0 else math.nan

    @property
    def pct_of_peak(self):
        """Achieved GFLOP/s as a percentage of the device's measured float32 GEMM ceiling."""
        return 100 * self.gflops / self.gemm_gflops if self.gemm_gflops > 0 else math.nan

    @property
    def bound(self):
        """'compute' or 'memory': which measured ceiling limits the case at its intensity; None if unknown."""
        if not (self.intensity > 0 and self.gemm_gflops > 0 and self.copy_gbps > 0):
            return None
        return "compute" if self.intensity >= self.gemm_gflops / self.copy_gbps else "memory"


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def summarize(samples_s, flops=None, min_bytes=None, ceilings=None):
    """The Summary of raw samples (seconds) and a case's analytic counts and device ceilings."""
    samples = tuple(samples_s or ())
    ceilings = ceilings or {}
    median = stats.median(samples) if samples else math.nan
    q1, q3 = stats.quartiles(samples) if samples else (math.nan, math.nan)
    lo, hi = stats.median_ci(samples) if samples else (math.nan, math.nan)
    flops, min_bytes = _number(flops), _number(min_bytes)
    return Summary(median_s=median, q1_s=q1, q3_s=q3, ci_lo_s=lo, ci_hi_s=hi, samples=len(samples),
                   noisy=stats.is_noisy(samples), gflops=flops / median / 1e9 if flops > 0 and median > 0 else math.nan,
                   gemm_gflops=_number(ceilings.get("gemm_gflops")), copy_gbps=_number(ceilings.get("copy_gbps")),
                   intensity=flops / min_bytes if flops > 0 and min_bytes > 0 else math.nan)


@dataclass(frozen=True)
class Record:
    framework: str
    step: str
    backend: str
    device: str
    n: int
    m: int
    nh: int
    dtype: str
    status: str                       # ok / failed / skipped
    error: str | None = None          # why, when not ok
    run_id: str = ""
    data: str = ""                    # where x and y came from
    note: str | None = None           # e.g. why this case ran at a smaller n
    loss: float | None = None
    max_rel_err: float | None = None
    rel_errs: dict = field(default_factory=dict)   # output -> relative error against float64
    tolerance: float | None = None
    mask_flips: int | None = None     # ReLU mask entries near zero where the case and float64 disagree
    trace_s: float | None = None
    first_call_s: float | None = None
    warmup_s: tuple = ()
    samples_s: tuple = ()
    rounds: tuple = ()                # round id of each sample: the cases of one run are timed in
                                      # interleaved rounds, and samples of the same round are paired
    stop_reason: str | None = None    # why sampling stopped: "ci" (median known to +-2%), "budget", "max_samples"
    batch_s: float | None = None      # per call, timing a batch of calls with one sync at the end
    dispatch_s: float | None = None   # per call, host time of that batch before its sync
    batch_calls: int | None = None
    tracing_count: int | None = None  # after timing; >1 means the timed loop retraced
    retraced: bool | None = None      # a retrace happened after the first call (timings then suspect)
    flops: int | None = None          # analytic, per call (kernels/cost.py)
    min_bytes: int | None = None
    memory_estimate_bytes: int | None = None
    peak_bytes: int | None = None
    peak_method: str | None = None
    tf32: bool | None = None
    ceilings: dict = field(default_factory=dict)   # this device's measured gemm_gflops, copy_gbps
    env: dict = field(default_factory=dict)        # the run's environment fingerprint
    schema: int = SCHEMA

    def __post_init__(self):
        if self.status not in STATUSES:
            raise RecordsError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        for name in ("rel_errs", "ceilings", "env"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, {})
            elif not isinstance(value, dict):
                raise RecordsError(f"{name} must be a JSON object, got {type(value).__name__}")
        for name in ("n", "m", "nh"):
            if not isinstance(getattr(self, name), int):
                raise RecordsError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("warmup_s", "samples_s", "rounds"):
            values = getattr(self, name)
            if not all(isinstance(v, (int, float)) for v in values):
                raise RecordsError(f"{name} must be a list of numbers")
            # JSON has no tuples: normalise, so a record read back equals the one written.
            object.__setattr__(self, name, tuple(values))

    @property
    def case(self):
        """What identifies a case across runs."""
        return CaseKey(self.framework, self.step, self.backend, self.device, self.n, self.m, self.nh, self.dtype)

    @property
    def label(self):
        return self.case.label

    @cached_property
    def summary(self):
        return summarize(self.samples_s, self.flops, self.min_bytes, self.ceilings)

    def derived(self):
        """The statistics, for readers of the JSON file; recomputed from the samples, never read back."""
        s = self.summary
        finite = lambda v: v if isinstance(v, float) and math.isfinite(v) else None  # noqa: E731
        return {"median_s": finite(s.median_s), "iqr_s": finite(s.iqr_s),
                "median_ci95_s": [finite(s.ci_lo_s), finite(s.ci_hi_s)] if s.samples else None,
                "noisy": s.noisy, "gflops": finite(s.gflops), "pct_of_peak": finite(s.pct_of_peak),
                "intensity_flop_per_byte": finite(s.intensity), "bound": s.bound}

    def to_json(self):
        return json.dumps({**asdict(self), "derived": self.derived()}, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as e:
            raise RecordsError(f"record is missing fields or has wrong ones ({e})") from None


def append(path, record):
    """Append one record as a line and make it durable now, so an interrupted run keeps it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(record.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair(path):
    """Cut a last line left unfinished by an interrupted write, so appends start on a line of their own."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = f.seek(0) or f.read()
        f.truncate(data.rfind(b"\n") + 1)


def records_file(path):
    """A run folder's records.jsonl, or the path itself when it is a file."""
    path = Path(path)
    return path / "records.jsonl" if path.is_dir() else path


def read(path):
    """Records of a run folder or a .jsonl file. A last line cut short by an interrupted write is
    dropped (it never completed); any other bad line is a RecordsError naming file and line."""
    path = records_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordsError(f"{path}: cannot read ({e})") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = number == len(lines)  # only the final line can lack its newline
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            if last:
                continue
            raise RecordsError(f"{path} line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(d, dict):
            raise RecordsError(f"{path} line {number}: expected a JSON object, got {type(d).__name__}")
        try:
            records.append(Record.from_dict(d))
        except RecordsError as e:
            raise RecordsError(f"{path} line {number}: {e}") from None
    return records
