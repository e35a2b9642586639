"""Records in other tools' formats: pytest-benchmark JSON (which pytest-benchmark compare,
github-action-benchmark and Bencher read), its statistics computed from the raw samples."""

import bisect
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from bench.records import CASE_DEFAULTS, CaseKey, Record

PYTEST_BENCHMARK_VERSION = "5.1.0"  # the file format written here (unchanged from 4.0 to 5.x)


def sample_stats(data: Iterable[float]) -> dict[str, Any]:
    """pytest-benchmark's stats of one benchmark from its raw samples (seconds, one call each),
    with its own definitions: sample stddev, quartiles by its Wikipedia methods 2/3, Tukey fences."""
    data = [float(v) for v in data]
    s = sorted(data)
    n = len(s)
    mean = statistics.mean(s)
    stddev = statistics.stdev(s) if n > 1 else 0
    q1, q3 = _quartiles(s)
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    total = sum(s)
    stddev_outliers = sum(v < mean - stddev or v > mean + stddev for v in s)
    iqr_outliers = sum(v < lo_fence or v > hi_fence for v in s)
    return {
        "min": s[0],
        "max": s[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(s),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": s[0] if n == 1 else s[bisect.bisect_left(s, lo_fence)],
        "hd15iqr": s[0] if n == 1 else s[bisect.bisect_right(s, hi_fence) - 1],
        "ops": n / total if total else 0,
        "total": total,
        "data": data,
        "iterations": 1,
    }


def _quartiles(s):
    n = len(s)
    if n == 1:
        return s[0], s[0]
    if n % 2:  # method 3
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * s[k - 1] + 0.75 * s[k], 0.75 * s[3 * k] + 0.25 * s[3 * k + 1]
        return 0.75 * s[k] + 0.25 * s[k + 1], 0.25 * s[3 * k + 1] + 0.75 * s[3 * k + 2]
    return statistics.median(s[: n // 2]), statistics.median(s[n // 2 :])  # method 2


def machine_info(fp: dict[str, Any] | None) -> dict[str, Any]:
    """pytest-benchmark's machine_info from a run's fingerprint."""
    fp = fp or {}
    return {
        "node": fp.get("hostname"),
        "processor": fp.get("machine"),
        "machine": fp.get("machine"),
        "python_compiler": None,
        "python_implementation": fp.get("python_impl"),
        "python_implementation_version": fp.get("python"),
        "python_version": fp.get("python"),
        "python_build": None,
        "release": fp.get("kernel"),
        "system": (fp.get("os") or "").split("-")[0] or None,
        "cpu": {
            "brand_raw": fp.get("cpu_model"),
            "arch_string_raw": fp.get("machine"),
            "count": fp.get("cpu_count_logical"),
            "flags": fp.get("cpu_flags_simd") or [],
        },
        "gpus": [g.get("name") for g in fp.get("gpus") or [] if isinstance(g, dict)],
    }


def commit_info(fp: dict[str, Any] | None) -> dict[str, Any]:
    fp = fp or {}
    return {
        "id": fp.get("git_commit"),
        "time": fp.get("time_utc"),
        "author_time": fp.get("time_utc"),
        "dirty": fp.get("git_dirty"),
        "project": "backprop-bench",
        "branch": fp.get("git_branch"),
    }


def _finite(value):
    return value if math.isfinite(value) else None


def benchmark_name(case: CaseKey) -> str:
    """A case's pytest-benchmark name: 'tensorflow/manual/xla[cpu-2000x784x50-float32]', with every
    other key field that differs from its default after it ('-cache=cold', '-engine=mirrored-replicas=2'),
    so no two cases share a name."""
    extras = "".join(f"-{k}={v}" for k, v in case.asdict().items() if k in CASE_DEFAULTS and v != CASE_DEFAULTS[k])
    return (
        f"{case.framework}/{case.step}/{case.backend}[{case.device}-{case.n}x{case.m}x{case.nh}-{case.dtype}{extras}]"
    )


def _benchmark(rec):
    params = rec.case.asdict()
    param = "-".join(str(v) for v in params.values())
    name = benchmark_name(rec.case)
    extra = {
        "run_id": rec.run_id,
        "data": rec.data,
        "note": rec.note,
        "max_rel_err": rec.max_rel_err,
        "trace_s": rec.trace_s,
        "first_call_s": rec.first_call_s,
        "tracing_count": rec.tracing_count,
        "gflops": _finite(rec.summary.gflops),
        "pct_of_peak": _finite(rec.summary.pct_of_peak),
        "stop_reason": rec.stop_reason,
        "peak_bytes": rec.peak_bytes,
    }
    return {
        "group": f"{rec.device} n={rec.n} m={rec.m} nh={rec.nh} {rec.dtype}",
        "name": name,
        "fullname": f"backprop-bench::{name}",
        "params": params,
        "param": param,
        "extra_info": {k: v for k, v in extra.items() if v is not None},
        "options": {
            "disable_gc": False,
            "timer": "perf_counter",
            "min_rounds": len(rec.samples_s),
            "max_time": None,
            "min_time": None,
            "warmup": len(rec.warmup_s),
        },
        "stats": sample_stats(rec.samples_s),
    }


def pytest_benchmark(records: Sequence[Record]) -> tuple[dict[str, Any], list[str]]:
    """(document, labels left out): a pytest-benchmark JSON document of the timed records (status
    ok, with samples), machine and commit taken from the first one's fingerprint."""
    is_timed = lambda r: r.status == "ok" and len(r.samples_s) > 0
    timed = [r for r in records if is_timed(r)]
    first = next(iter(timed or records), None)
    fp = first.fingerprint if first is not None else {}
    doc = {
        "machine_info": machine_info(fp),
        "commit_info": commit_info(fp),
        "benchmarks": [_benchmark(r) for r in timed],
        "datetime": (fp or {}).get("time_utc"),
        "version": PYTEST_BENCHMARK_VERSION,
    }
    return doc, [r.label for r in records if not is_timed(r)]


def dumps(doc: dict[str, Any]) -> str:
    """JSON text; non-finite floats (which JSON cannot hold) become null."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(doc), indent=2) + "\n"
