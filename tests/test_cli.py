"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def bench(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("args, words", [
    (["--backend", "nope"], ["unknown backend 'nope'"]),
    (["--step", "manual,bogus"], ["unknown step 'bogus'"]),
    (["--framework", "caffe"], ["unknown framework 'caffe'"]),
    (["--dtype", "float16"], ["unknown dtype 'float16'"]),
    (["--size", "0,784,50"], ["bad size '0,784,50'", "at least 1"]),
    (["--size=-5,784,50"], ["bad size"]),
    (["--size", "-5,784,50"], ["expected at least one argument"]),
    (["--size", "a,b,c"], ["bad size 'a,b,c'", "whole numbers"]),
    (["--size", "100,784"], ["expected N,M,NH"]),
    (["--data", "/no/such/mnist.npz"], ["no such file"]),
])
def test_bad_run_arguments(args, words, tmp_path):
    assert_one_line_error(bench("run", "--quick", "--out", tmp_path / "out", *args), *words)
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_corrupt_data_file(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip file")
    assert_one_line_error(bench("run", "--quick", "--data", bad, "--out", tmp_path / "out"), "mnist.npz")


def test_malicious_pickle_is_refused(tmp_path):
    import gzip
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(((Evil(), None), None, None), f)
    assert_one_line_error(bench("run", "--quick", "--data", path, "--out", tmp_path / "out"), "refused")
    assert not (tmp_path / "pwned").exists()


def test_quick_run_then_report(tmp_path):
    out = tmp_path / "run"
    result = bench("run", "--quick", "--step", "manual", "tape", "--backend", "eager,function",
                   "--size", "300,784,10", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "| tensorflow/manual" in result.stdout
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["status"] == "ok" for line in lines)
    for name in ("report.md", "bars.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "report.md").unlink()
    result = bench("report", out)
    assert result.returncode == 0, result.stderr
    assert "tensorflow/tape" in (out / "report.md").read_text()


def test_report_of_a_broken_results_file(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"framework": \n{}\n')
    assert_one_line_error(bench("report", path), "line 1", "not valid JSON")
    assert path.read_text() == '{"framework": \n{}\n'   # nothing already written is lost
    assert_one_line_error(bench("report", tmp_path / "missing"), "no such results file")


def test_list_says_what_is_available():
    result = bench("list")
    assert result.returncode == 0, result.stderr
    assert "tensorflow" in result.stdout and "manual" in result.stdout and "xla" in result.stdout
    assert result.stderr == ""   # TensorFlow's import noise is filtered
