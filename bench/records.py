"""Records: one frozen dataclass of raw samples and metadata per case, stored as JSON lines.

Statistics (median, IQR) are derived from the samples, so any table or plot can be rebuilt
from the file. Each record carries its run's environment, so files from many runs merge."""

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from bench import stats
from bench.text import printable

# The records file's schema: 2 since each case has one final record in records.jsonl (checkpoints in
# a journal beside it), 3 since a case may name its environment (deps), 4 since the run's fingerprint
# is stored as "fingerprint" (it was "env"), 5 since a case names its model and loss (model, loss_fn).
# A reader takes any schema up to its own and refuses a newer one.
SCHEMA = 5
STATUSES = ("ok", "failed", "skipped")
STOP_REASONS = ("ci", "budget", "max_samples", "interrupted")
TIME = {"kind": "time"}  # a field's metadata: a duration in seconds (its annotation, a float, says only "number")


class RecordsError(ValueError):
    """A results file is missing or broken; str() is one line naming the file and the problem."""


@dataclass(frozen=True)
class CaseKey:
    """What identifies a case across runs: the ONE definition. Records take their key fields from
    here (Record subclasses it), and the validator, compare, export, the history's table and the
    report's tables and plot lines derive their columns from CASE_FIELDS. A new axis is one field
    here, with the default that older records take."""

    framework: str
    step: str
    backend: str
    device: str
    n: int
    m: int
    nh: int
    dtype: str
    tf32: bool = False  # float32 matrix products in TF32 (a GPU feature)
    cache: str = field(default="warm", metadata={"choices": ("warm", "cold")})  # "cold": the device's
    # last-level cache flushed before each timed call
    engine: str = ""  # the framework's data-parallel engine ("" one device, no engine; bench/distributed/)
    replicas: int = 1  # devices the global batch n is split over
    deps: str = ""  # the requirement set whose environment ran it (run --env, bench/venvs.py); "" the
    # harness's own environment
    model: str = "lesson"  # the network (kernels/models.py): "lesson" (m -> nh -> 1) or "mlp:W0,...,WL"
    loss_fn: str = field(default="mse", metadata={"choices": ("mse", "xent")})  # its loss

    def asdict(self) -> dict:
        return {f: getattr(self, f) for f in CASE_FIELDS}

    @property
    def key(self) -> "CaseKey":
        """The case alone (a Record's key without its measurement)."""
        return CaseKey(**self.asdict())

    @property
    def precision(self) -> str:
        return "tf32" if self.tf32 and self.dtype == "float32" else self.dtype

    @property
    def name(self) -> str:
        """framework/step/backend/device: what per-case gate thresholds match."""
        return f"{self.framework}/{self.step}/{self.backend}/{self.device}"

    @property
    def label(self) -> str:
        """The case in one line of text, every field that differs from its default shown: export
        names, the gate's rows and progress lines use it, so two cases never share a label."""
        return (
            f"{self.name} n={self.n} m={self.m} nh={self.nh} {self.dtype}"
            + ("+tf32" if self.tf32 else "")
            + (f" {self.cache}" if self.cache != "warm" else "")
            + (f" {self.engine} x{self.replicas}" if self.engine else "")
            + (f" x{self.replicas}" if not self.engine and self.replicas != 1 else "")
            + (f" [{self.deps}]" if self.deps else "")
            + (f" {self.model}" if self.model != "lesson" else "")
            + (f" {self.loss_fn}" if self.loss_fn != "mse" else "")
        )


CASE_FIELDS = tuple(f.name for f in fields(CaseKey))
CASE_DEFAULTS = {f.name: f.default for f in fields(CaseKey) if f.default is not MISSING}


@dataclass(frozen=True)
class Summary:
    """A record's statistics, derived from its samples and analytic counts in this one place (report,
    compare and export all read it); nan where the record lacks what a figure needs."""

    median_s: float
    q1_s: float
    q3_s: float
    ci_lo_s: float  # the median's 95% CI (order statistics); nan with under 8 samples
    ci_hi_s: float
    samples: int
    noisy: bool  # IQR over stats.NOISY_IQR_FRACTION of the median
    gflops: float
    gemm_gflops: float  # the device's measured ceilings, from the record's run
    copy_gbps: float
    intensity: float  # FLOPs per byte that must move (kernels/cost.py)
    canary_s: float = math.nan  # the machine's canary (bench/canary.py): its median over the case's rounds
    shape_gflops: float = math.nan  # what the size's own GEMM shapes allow (bench/run/caches.py shape_ceiling)

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @property
    def iqr_fraction(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else math.nan

    @property
    def pct_of_peak(self) -> float:
        """Achieved GFLOP/s as a percentage of the device's measured float32 GEMM ceiling."""
        return 100 * self.gflops / self.gemm_gflops if self.gemm_gflops > 0 else math.nan

    @property
    def pct_of_shape_peak(self) -> float:
        """Achieved GFLOP/s as a percentage of what the size's own GEMM shapes allow."""
        return 100 * self.gflops / self.shape_gflops if self.shape_gflops > 0 else math.nan

    @property
    def bound(self) -> str | None:
        """'compute' or 'memory': which measured ceiling limits the case at its intensity; None if unknown."""
        if not (self.intensity > 0 and self.gemm_gflops > 0 and self.copy_gbps > 0):
            return None
        return "compute" if self.intensity >= self.gemm_gflops / self.copy_gbps else "memory"


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def summarize(
    samples_s: Iterable[float] | None,
    flops: float | None = None,
    min_bytes: float | None = None,
    ceilings: Mapping[str, Any] | None = None,
    canary_s: Iterable[float] | None = None,
) -> Summary:
    """The Summary of raw samples (seconds) and a case's analytic counts, device ceilings and canary times."""
    samples = tuple(samples_s or ())
    canary = tuple(canary_s or ())
    ceilings = ceilings or {}
    median = stats.median(samples) if samples else math.nan
    q1, q3 = stats.quartiles(samples) if samples else (math.nan, math.nan)
    lo, hi = stats.median_ci(samples) if samples else (math.nan, math.nan)
    flops, min_bytes = _number(flops), _number(min_bytes)
    return Summary(
        median_s=median,
        q1_s=q1,
        q3_s=q3,
        ci_lo_s=lo,
        ci_hi_s=hi,
        samples=len(samples),
        noisy=stats.is_noisy(samples),
        gflops=flops / median / 1e9 if flops > 0 and median > 0 else math.nan,
        gemm_gflops=_number(ceilings.get("gemm_gflops")),
        copy_gbps=_number(ceilings.get("copy_gbps")),
        intensity=flops / min_bytes if flops > 0 and min_bytes > 0 else math.nan,
        canary_s=stats.median(canary) if canary else math.nan,
        shape_gflops=_number(ceilings.get("shape_gflops")),
    )


@dataclass(frozen=True, kw_only=True)
class Record(CaseKey):
    """One case's measurement: its key fields (CaseKey's), its status, and the raw samples and
    facts every figure is derived from."""

    status: str = field(metadata={"choices": STATUSES})  # ok / failed / skipped
    error: str | None = None  # why, when not ok
    run_id: str = ""
    data: str = ""  # where x and y came from
    note: str | None = None  # e.g. why this case ran at a smaller n
    loss: float | None = None
    max_rel_err: float | None = None
    rel_errs: dict = field(default_factory=dict)  # output -> relative error against float64
    tolerance: float | None = None
    mask_flips: int | None = None  # ReLU mask entries near zero where the case and float64 disagree
    trace_s: float | None = field(default=None, metadata=TIME)
    first_call_s: float | None = field(default=None, metadata=TIME)
    warmup_s: tuple = ()
    samples_s: tuple = ()
    rounds: tuple = field(
        default=(), metadata={"kind": "rounds"}
    )  # round id of each sample: the cases of one run are timed in
    # interleaved rounds, and samples of the same round are paired
    stop_reason: str | None = field(default=None, metadata={"choices": STOP_REASONS})  # why sampling stopped:
    # "ci" (median known to +-2%), "budget", "max_samples", "interrupted"
    batch_s: float | None = field(default=None, metadata=TIME)  # per call, a batch of calls with one sync at the end
    dispatch_s: float | None = field(default=None, metadata=TIME)  # per call, host time of that batch before its sync
    batch_calls: int | None = None
    tracing_count: int | None = None  # after timing; >1 means the timed loop retraced
    retraced: bool | None = None  # a retrace happened after the first call (timings then suspect)
    parameters: int | None = None  # the model's weights and biases, counted
    flops: int | None = None  # analytic, per call (kernels/cost.py)
    min_bytes: int | None = None
    memory_estimate_bytes: int | None = None
    peak_bytes: int | None = None
    peak_method: str | None = None
    distributed: dict = field(default_factory=dict)  # data-parallel: hosts, processes, the engine's settings,
    # all-reduce times where the engine exposes them
    timer: str | None = None  # what timed samples_s: "host clock + sync", "CUDA events"
    host_samples_s: tuple = ()  # the host clock around each sampled call and its sync, where the
    # timer is another (the gap is launch and sync overhead)
    canary_s: tuple = ()  # the machine's canary (bench/canary.py), timed once a round in the run's
    # process: its time in each round this case was sampled in (() before it)
    telemetry: dict = field(default_factory=dict)  # clocks, power, throttling, CPU load while timed
    counters: dict = field(default_factory=dict)  # what a step executes, counted exactly (bench/counters.py)
    instructions: dict = field(default_factory=dict)  # instructions a call, under Callgrind (bench/instructions.py)
    ceilings: dict = field(default_factory=dict)  # this device's measured gemm_gflops, copy_gbps
    fingerprint: dict = field(default_factory=dict)  # the run's fingerprint (bench/fingerprint.py)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        for name, default in CASE_DEFAULTS.items():  # older records: null (or no value) is the default
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.status not in STATUSES:
            raise RecordsError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        for name in KINDS["object"]:
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, {})
            elif not isinstance(value, dict):
                raise RecordsError(f"{name} must be a JSON object, got {type(value).__name__}")
        for name in (f.name for f in fields(CaseKey) if f.type is int):
            if not isinstance(getattr(self, name), int):
                raise RecordsError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in (*KINDS["times"], *KINDS["rounds"]):
            values = getattr(self, name)
            if not all(isinstance(v, (int, float)) for v in values):
                raise RecordsError(f"{name} must be a list of numbers")
            # JSON has no tuples: normalise, so a record read back equals the one written.
            object.__setattr__(self, name, tuple(values))

    @cached_property
    def case(self) -> CaseKey:
        """What identifies a case across runs."""
        return self.key

    @cached_property
    def summary(self) -> Summary:
        return summarize(self.samples_s, self.flops, self.min_bytes, self.ceilings, self.canary_s)

    def derived(self) -> dict[str, Any]:
        """The statistics, for readers of the JSON file; recomputed from the samples, never read back."""
        s = self.summary
        finite = lambda v: v if isinstance(v, float) and math.isfinite(v) else None  # noqa: E731
        return {
            "median_s": finite(s.median_s),
            "iqr_s": finite(s.iqr_s),
            "median_ci95_s": [finite(s.ci_lo_s), finite(s.ci_hi_s)] if s.samples else None,
            "noisy": s.noisy,
            "gflops": finite(s.gflops),
            "pct_of_peak": finite(s.pct_of_peak),
            "pct_of_shape_peak": finite(s.pct_of_shape_peak),
            "intensity_flop_per_byte": finite(s.intensity),
            "bound": s.bound,
        }

    def to_json(self) -> str:
        """The record as a line of this schema (one read from an older file is written as this one)."""
        return json.dumps({**asdict(self), "schema": SCHEMA, "derived": self.derived()}, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        """A Record from a JSON object; RecordsError naming the first bad field (`field: problem`)."""
        problem = check(d)
        if problem:
            raise RecordsError(problem)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in upgraded(d).items() if k in known})


# ---------------------------------------------------------------- validation on read

MAX_INT = 2**62  # counts and sizes beyond this are not real
MAX_SAMPLE_S = 1e6  # a timed call of over 11 days is not a measurement
MAX_SAMPLES = 10**6  # samples a record may carry
# Each field's kind, from its annotation (a metadata "kind" where the annotation cannot say): what
# __post_init__ normalises and what the validator checks. A new field is typed once, where it is declared.
_BY_TYPE: dict[Any, str] = {
    str: "text",
    str | None: "optional text",
    int: "count",
    int | None: "count",
    float | None: "number",
    bool | None: "flag",
    dict: "object",
    tuple: "times",
}


def _kinds() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for f in fields(Record):
        if f.name in CASE_FIELDS or f.name == "status":
            continue
        out.setdefault(f.metadata.get("kind") or _BY_TYPE[f.type], []).append(f.name)
    return {kind: tuple(names) for kind, names in out.items()}


KINDS = _kinds()
CHOICES = {f.name: f.metadata["choices"] for f in fields(Record) if "choices" in f.metadata}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (not isinstance(v, int) or abs(v) < MAX_INT)


def _finite(v):
    return _is_number(v) and math.isfinite(v)


def _key_problem(d):
    """The case's key fields checked by their type in CaseKey: a field without a default must be
    there; one with a default may be missing or null (an older record: the default)."""
    for f in fields(CaseKey):
        required = f.default is MISSING
        if f.name not in d or d[f.name] is None:
            if required:
                return f"{f.name}: missing"
            continue
        value = d[f.name]
        if f.type is str and (not isinstance(value, str) or len(value) > 200 or required and not value):
            return f"{f.name}: expected a short{' non-empty' if required else ''} string, got {_shown(value)}"
        if f.type is int and (not _is_int(value) or not 1 <= value < MAX_INT):
            return f"{f.name}: expected a whole number of at least 1, got {_shown(value)}"
        if f.type is bool and not isinstance(value, bool):
            return f"{f.name}: expected true, false or null, got {_shown(value)}"
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            return f"{f.name}: {_shown(value)} is not one of {', '.join(choices)}"
    return None


def _problem_of(d):
    problem = _key_problem(d)
    if problem:
        return problem
    if "status" not in d:
        return "status: missing"
    if d["status"] not in STATUSES:
        return f"status: {_shown(d['status'])} is not one of {', '.join(STATUSES)}"
    if _is_int(d.get("schema")) and d["schema"] > SCHEMA:
        return (
            f"schema: {d['schema']} is newer than this harness reads ({SCHEMA}); "
            "update backprop-bench to read this file"
        )
    return _scalar_problem(d) or _samples_problem(d) or _nested_problem(d)


# kind -> (what a value of it must be, what the message says is expected)
_SCALARS = {
    "text": (lambda v: isinstance(v, str), "expected a string"),
    "optional text": (lambda v: isinstance(v, str), "expected a string or null"),
    "count": (lambda v: _is_int(v) and 0 <= v < MAX_INT, "expected a whole number of at least 0"),
    "time": (lambda v: _finite(v) and 0 <= v <= MAX_SAMPLE_S, "expected a time in seconds"),
    "number": (_is_number, "expected a number or null"),  # may be nan or inf in a failed case
    "flag": (lambda v: isinstance(v, bool), "expected true, false or null"),
}


def _scalar_problem(d):
    """The single values: each field by its kind; null is the default but for text, which must be one."""
    for kind, (ok, expected) in _SCALARS.items():
        for name in KINDS[kind]:
            value = d.get(name)
            if value is None and (kind != "text" or name not in d):
                continue
            if not ok(value):
                return f"{name}: {expected}, got {_shown(value)}"
            if name in CHOICES and value not in CHOICES[name]:
                return f"{name}: {value!r} is not one of {', '.join(CHOICES[name])}"
    return None


def _samples_problem(d):
    """The lists of times, the round of each sample, and that their lengths agree."""
    for name in KINDS["times"]:
        values = d.get(name, [])
        if not isinstance(values, list) or len(values) > MAX_SAMPLES:
            return f"{name}: expected a list of at most {MAX_SAMPLES:,} times, got {_shown(values)}"
        bad = next(
            (v for v in values if not _finite(v) or not 0 < v <= MAX_SAMPLE_S and not (name == "warmup_s" and v == 0)),
            None,
        )
        if bad is not None or any(not _finite(v) for v in values):
            return f"{name}: {_shown(bad)} is not a time in seconds (finite, positive)"
    samples = d.get("samples_s", [])
    if d["status"] == "ok" and not samples:
        return "samples_s: a case with status ok needs at least one sample"
    rounds = d.get("rounds", [])
    if not isinstance(rounds, list) or not all(_is_int(r) and 0 <= r < MAX_INT for r in rounds):
        return f"rounds: expected a list of whole numbers, got {_shown(rounds)}"
    if rounds and len(rounds) != len(samples):
        return f"rounds: {len(rounds)} round ids for {len(samples)} samples"
    host = d.get("host_samples_s", [])
    if host and len(host) != len(samples):
        return f"host_samples_s: {len(host)} host times for {len(samples)} samples"
    distinct = len(set(rounds or range(len(samples))))
    if len(d.get("canary_s", [])) > distinct:
        return f"canary_s: {len(d['canary_s'])} canary times for {distinct} rounds"
    return None


def _nested_problem(d):
    """The JSON objects, and what readers take from inside them."""
    for name in KINDS["object"]:
        value = d.get(name)
        if value is not None and not isinstance(value, dict):
            return f"{name}: expected a JSON object, got {_shown(value)}"
    problem = _counters_problem(d.get("counters") or {})
    if problem:
        return problem
    for key, value in (d.get("rel_errs") or {}).items():
        if not _is_number(value):
            return f"rel_errs.{_shown(key)}: expected a number, got {_shown(value)}"
    ceilings = d.get("ceilings") or {}
    for key in ("gemm_gflops", "copy_gbps", "shape_gflops"):
        if ceilings.get(key) is not None and (not _finite(ceilings[key]) or ceilings[key] <= 0):
            return f"ceilings.{key}: expected a positive number, got {_shown(ceilings[key])}"
    return _fingerprint_problem(d.get("fingerprint") or {})


def _counters_problem(c):
    """The counters readers compare, checked for shape: counts whole and not negative, figures finite."""
    for name in ("ops", "kernels"):
        counts = c.get(name)
        if counts is None:
            continue
        if not isinstance(counts, dict):
            return f"counters.{name}: expected a JSON object, got {_shown(counts)}"
        for key, value in counts.items():
            if not _is_int(value) or not 0 <= value < MAX_INT:
                return f"counters.{name}.{_shown(key)}: expected a whole number of at least 0, got {_shown(value)}"
    for name in ("fusions", "retraces"):
        if c.get(name) is not None and (not _is_int(c[name]) or not 0 <= c[name] < MAX_INT):
            return f"counters.{name}: expected a whole number of at least 0, got {_shown(c[name])}"
    for name in ("flops", "bytes", "traced_flops"):
        if c.get(name) is not None and (not _finite(c[name]) or c[name] < 0):
            return f"counters.{name}: expected a finite number of at least 0, got {_shown(c[name])}"
    return None


_FINGERPRINT_STRINGS = (
    "hostname",
    "cpu_model",
    "machine",
    "os",
    "python",
    "numpy",
    "git_commit",
    "git_branch",
    "data_source",
    "time_utc",
    "kernel",
    "host_id",
)
_FINGERPRINT_OBJECTS = ("env", "packages", "seeds")


def _fingerprint_problem(fp):
    """The fingerprint fields readers use, checked for shape (the rest is kept as it is)."""
    for key in _FINGERPRINT_STRINGS:
        if fp.get(key) is not None and not isinstance(fp[key], str):
            return f"fingerprint.{key}: expected a string, got {_shown(fp[key])}"
    for key in _FINGERPRINT_OBJECTS:
        if fp.get(key) is not None and not isinstance(fp[key], dict):
            return f"fingerprint.{key}: expected an object, got {_shown(fp[key])}"
    count = fp.get("cpu_count_logical")
    if count is not None and not (_is_int(count) and 0 < count < MAX_INT):
        return f"fingerprint.cpu_count_logical: expected a whole number, got {_shown(count)}"
    return _gpus_problem(fp.get("gpus")) or _frameworks_problem(fp.get("frameworks"))


def _gpus_problem(gpus):
    if gpus is not None and (not isinstance(gpus, list) or not all(isinstance(g, dict) for g in gpus)):
        return f"fingerprint.gpus: expected a list of objects, got {_shown(gpus)}"
    bad = next((g["name"] for g in gpus or () if g.get("name") is not None and not isinstance(g["name"], str)), None)
    return f"fingerprint.gpus.name: expected a string, got {_shown(bad)}" if bad is not None else None


def _frameworks_problem(frameworks):
    if frameworks is not None and (
        not isinstance(frameworks, dict) or not all(isinstance(v, dict) for v in frameworks.values())
    ):
        return f"fingerprint.frameworks: expected an object of objects, got {_shown(frameworks)}"
    for name, info in (frameworks or {}).items():
        if info.get("version") is not None and not isinstance(info["version"], str):
            return f"fingerprint.frameworks.{_shown(name)}.version: expected a string"
    return None


def _shown(value, limit=40):
    """A value as an error message shows it: short, one line, no control characters."""
    text = repr(value) if not isinstance(value, (list, dict)) else f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
        text = f"a {len(str(abs(value))) if abs(value) < 10**4000 else 'huge'}-digit number"
    return printable(text)[:limit]


def upgraded(d: dict[str, Any]) -> dict[str, Any]:
    """A record's JSON object as this schema names its fields (before schema 4 the fingerprint was "env")."""
    if "env" in d and "fingerprint" not in d:
        d = {k: v for k, v in d.items() if k != "env"} | {"fingerprint": d["env"]}
    return d


def check(d: object) -> str | None:
    """None if the JSON object `d` is a record every reader can use, else 'field: problem'."""
    if not isinstance(d, dict):
        return f"expected a JSON object, got {type(d).__name__}"
    try:
        return _problem_of(upgraded(d))
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        return f"unreadable ({type(e).__name__})"


def append(path: str | Path, record: Record) -> None:
    """Append one record as a line and make it durable now, so an interrupted run keeps it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(record.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair(path: str | Path) -> None:
    """Cut a last line left unfinished by an interrupted write, so appends start on a line of their own."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def records_file(path: str | Path) -> Path:
    """A run folder's records.jsonl, or the path itself when it is a file."""
    path = Path(path)
    return path / "records.jsonl" if path.is_dir() else path


# ---------------------------------------------------------------- the journal of cases in progress
# records.jsonl holds one final record per case. While a group is timed, the samples so far are
# kept apart, in journal.jsonl beside it, replaced whole (atomically) every few seconds and removed
# once the group's records are final: a process killed outright (kill -9, out of memory) leaves it,
# and every reader takes its records for the cases records.jsonl lacks ("interrupted": a signal
# stopped them); `run --resume` folds it into records.jsonl.

JOURNAL = "journal.jsonl"


def journal_file(path: str | Path) -> Path:
    """The journal beside `path`'s records file."""
    return records_file(path).with_name(JOURNAL)


def _replace(path, text):
    """Write `text` to `path` atomically: a reader sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself, durable
    finally:
        os.close(fd)


def write_journal(path: str | Path, recs: Iterable[Record]) -> None:
    """The samples so far of the cases being timed, replacing the journal beside `path`'s records."""
    journal = journal_file(path)
    journal.parent.mkdir(parents=True, exist_ok=True)
    _replace(journal, "".join(r.to_json() + "\n" for r in recs))


def clear_journal(path: str | Path) -> None:
    journal_file(path).unlink(missing_ok=True)


def replace_case(path: str | Path, record: Record) -> None:
    """Append `record` to `path`, dropping the records of the same run and case already there (a
    case timed again after an interruption): the file keeps one final record per case. Lines that
    are not records are kept as they are."""
    path = Path(path)
    kept = []
    for _, raw in _lines(path) if path.exists() else ():
        try:
            d = json.loads(raw)
            same = (
                isinstance(d, dict)
                and d.get("run_id", "") == record.run_id
                and check(d) is None
                and Record.from_dict(d).case == record.case
            )
        except (ValueError, RecursionError, RecordsError):
            same = False
        if not same:
            kept.append(raw.decode("utf-8", errors="replace").rstrip("\n") + "\n")
    _replace(path, "".join(kept) + record.to_json() + "\n")


def fold_journal(path: str | Path) -> list[Record]:
    """Move the journal's records of cases that records.jsonl lacks into it (as they are, each an
    interrupted case), then remove the journal; the records folded."""
    journal = journal_file(path)
    if not journal.exists():
        return []
    main = records_file(path)
    have = {(r.run_id, r.case) for r in load_file(main)[0]} if main.exists() else set()
    folded = [r for r in load_file(journal)[0] if (r.run_id, r.case) not in have]
    for rec in folded:
        append(main, rec)
    clear_journal(path)
    return folded


MAX_FILE_BYTES = 1 << 30  # readers refuse records files over 1 GiB
MAX_LINE_BYTES = 64 << 20  # and lines over 64 MiB


def _lines(path):
    """(number, bytes) of each line of `path`, within MAX_FILE_BYTES and MAX_LINE_BYTES (a device
    such as /dev/zero, whose size says nothing, is read up to the cap and then refused)."""
    total = 0
    with open(path, "rb") as f:
        for number, line in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), 1):
            total += len(line)
            if len(line) > MAX_LINE_BYTES:
                raise RecordsError(f"{path}:{number}: a line over {MAX_LINE_BYTES >> 20} MiB; not a records file")
            if total > MAX_FILE_BYTES:
                raise RecordsError(f"{path}: over {MAX_FILE_BYTES >> 30} GiB; split it, or report its runs apart")
            yield number, line


def load(path: str | Path) -> tuple[list[Record], list[str]]:
    """(records, problems) of a run folder or a .jsonl file: every record that passes check(), the
    newest of each case per run when a case was recorded again (a resumed case replaces its
    interrupted record), and one 'file:line: field: problem' per line that does not; with the
    journal's records (see JOURNAL) of the cases the file lacks, where a killed run left one. A last
    line cut short by an interrupted write is no problem (it never completed). RecordsError when
    the file cannot be read at all."""
    path = records_file(path)
    if path.is_dir():
        raise RecordsError(f"{path}: a folder without records.jsonl")
    journal = journal_file(path)
    with_journal = path.name == "records.jsonl" and journal.exists()
    records, problems = load_file(path) if path.exists() or not with_journal else ([], [])
    if with_journal:
        have = {(r.run_id, r.case) for r in records}
        extra, bad = load_file(journal)
        records += [r for r in extra if (r.run_id, r.case) not in have]
        problems += bad
    return records, problems


def load_file(path: str | Path) -> tuple[list[Record], list[str]]:
    """(records, problems) of one .jsonl file, as load() describes, without the journal."""
    path = Path(path)
    try:
        lines = list(_lines(path))
    except FileNotFoundError:
        raise RecordsError(f"{path}: no such results file") from None
    except OSError as e:
        raise RecordsError(f"{path}: cannot read ({printable(e.strerror or e)})") from None
    newest: dict[tuple[str, CaseKey], Record] = {}
    problems: list[str] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        last = number == len(lines) and not raw.endswith(b"\n")
        try:
            d = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, numbers past Python's digit limit
            if last:
                continue
            why = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
            problems.append(f"{path}:{number}: not a valid JSON line ({printable(why)})")
            continue
        problem = check(d)
        if problem:
            problems.append(f"{path}:{number}: {problem}")
            continue
        rec = Record.from_dict(d)
        key = (rec.run_id, rec.case)
        newest.pop(key, None)  # re-inserted: the file order of the newest records
        newest[key] = rec
    return list(newest.values()), problems


def read(path: str | Path) -> list[Record]:
    """The records of a run folder or .jsonl file (see load); RecordsError naming the first bad line."""
    records, problems = load(path)
    if problems:
        raise RecordsError(problems[0])
    return records


def read_usable(paths: Sequence[str | Path], warn: Callable[[str], object]) -> list[Record]:
    """The good records of every path, each bad line passed to warn() and their count summed up;
    RecordsError when no path has a usable record."""
    good, bad = [], []
    for path in paths:
        records, problems = load(path)
        good += records
        bad += problems
    if not good:
        first = f" ({len(bad)} bad line{'s' if len(bad) != 1 else ''}, the first {bad[0]})" if bad else ""
        raise RecordsError(f"{', '.join(map(str, paths))}: no usable records{first}")
    for line in bad:
        warn(line)
    if bad:
        warn(f"dropped {len(bad)} bad record{'s' if len(bad) != 1 else ''}; kept {len(good)}")
    return good
