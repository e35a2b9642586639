"""export: records as pytest-benchmark JSON, with pytest-benchmark's own statistics, read back by
pytest-benchmark's own loader and compare command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import export, records
from bench.records import Record

REPO = Path(__file__).resolve().parent.parent
ENV = {
    "hostname": "box",
    "machine": "x86_64",
    "cpu_model": "Test CPU",
    "python": "3.11.9",
    "python_impl": "CPython",
    "kernel": "6.8.0",
    "os": "Linux-6.8.0-x86_64-with-glibc2.39",
    "cpu_count_logical": 2,
    "git_commit": "abc123",
    "git_dirty": False,
    "git_branch": "main",
    "time_utc": "2026-01-02T03:04:05+00:00",
    "frameworks": {"tensorflow": {"version": "2.21.0"}},
}


def rec(samples, step="manual", status="ok", **kw):
    return Record(
        framework="tensorflow",
        step=step,
        backend="xla",
        device="cpu",
        n=2000,
        m=784,
        nh=50,
        dtype="float32",
        status=status,
        samples_s=tuple(samples),
        warmup_s=(0.02, 0.011),
        run_id="r1",
        fingerprint=ENV,
        flops=10**9,
        max_rel_err=1e-6,
        first_call_s=0.5,
        **kw,
    )


SAMPLE_SETS = [
    [0.5],
    [0.2, 0.1],
    [0.3, 0.1, 0.2],
    [0.4, 0.1, 0.3, 0.2],
    [0.011, 0.012, 0.010, 0.013, 0.030],
    [0.01 * (1 + (i * 7919 % 13) / 10) for i in range(9)],
    [0.01 * (1 + (i * 104729 % 17) / 5) for i in range(24)],
]


@pytest.mark.parametrize("data", SAMPLE_SETS, ids=lambda d: f"{len(d)} samples")
def test_statistics_match_pytest_benchmark(data):
    pb_stats = pytest.importorskip("pytest_benchmark.stats")
    theirs = pb_stats.Stats()
    for v in data:
        theirs.update(v)
    ours = export.sample_stats(data)
    for name, value in theirs.as_dict().items():
        assert (
            ours[name] == pytest.approx(value, rel=1e-12, abs=1e-15)
            if isinstance(value, float)
            else ours[name] == value
        ), name
    assert ours["data"] == data and ours["iterations"] == 1


def test_document():
    doc, left_out = export.pytest_benchmark(
        [rec([0.012, 0.010, 0.011]), rec((), step="tape", status="failed", error="x")]
    )
    assert left_out == [rec((), step="tape", status="failed").label]
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["machine_info"]["cpu"]["brand_raw"] == "Test CPU" and doc["machine_info"]["system"] == "Linux"
    assert doc["commit_info"]["id"] == "abc123" and doc["commit_info"]["dirty"] is False
    (b,) = doc["benchmarks"]
    assert b["name"] == "tensorflow/manual/xla[cpu-2000x784x50-float32]"
    assert b["group"] == "cpu n=2000 m=784 nh=50 float32"
    assert b["params"]["step"] == "manual" and b["options"]["warmup"] == 2
    assert b["stats"]["median"] == pytest.approx(0.011) and b["stats"]["rounds"] == 3
    assert b["stats"]["data"] == [0.012, 0.010, 0.011] and b["extra_info"]["first_call_s"] == 0.5
    json.loads(export.dumps(doc))


def test_non_finite_numbers_become_null():
    assert json.loads(export.dumps({"a": float("nan"), "b": [float("inf"), 1.0]})) == {"a": None, "b": [None, 1.0]}


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def exported(tmp_path):
    run = tmp_path / "run"
    for r in (rec([0.012, 0.010, 0.011, 0.013]), rec([0.020, 0.021, 0.022], step="tape")):
        records.append(run / "records.jsonl", r)
    out = tmp_path / "storage" / "Linux-CPython-3.11-64bit" / "0001_export.json"
    result = bench("export", "--format", "pytest-benchmark", run, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_pytest_benchmark_loads_the_file(exported):
    pytest.importorskip("pytest_benchmark")
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.storage.file import FileStorage

    warnings = []

    class Recording(Logger):
        def warning(self, text, **kwargs):
            warnings.append(text)

    storage = FileStorage(exported.parent.parent, Recording(Logger.QUIET))
    loaded = list(storage.load_benchmarks(exported))
    assert warnings == []
    assert [b["name"] for b in loaded] == [
        "tensorflow/manual/xla[cpu-2000x784x50-float32]",
        "tensorflow/tape/xla[cpu-2000x784x50-float32]",
    ]
    assert loaded[0]["median"] == pytest.approx(0.0115) and loaded[0]["ops"] > 0


def test_pytest_benchmark_compare_reads_it(exported, tmp_path):
    pytest.importorskip("pytest_benchmark")
    csv = tmp_path / "table"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_benchmark",
            "--storage",
            f"file://{exported.parent.parent}",
            "compare",
            str(exported),
            "--csv",
            str(csv),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "tensorflow/tape/xla" in result.stdout + result.stderr
    assert "Failed to load" not in result.stdout + result.stderr
    text = csv.with_suffix(".csv").read_text()
    assert "tensorflow/manual/xla" in text and "tensorflow/tape/xla" in text


def test_export_to_stdout_and_errors(exported, tmp_path):
    run = tmp_path / "run"
    out = bench("export", "--format", "pytest-benchmark", run)
    assert out.returncode == 0 and len(json.loads(out.stdout)["benchmarks"]) == 2
    bad = bench("export", "--format", "csv", run)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = bench("export", "--format", "pytest-benchmark", tmp_path / "nope")
    assert missing.returncode == 2 and "no such results file" in missing.stderr
