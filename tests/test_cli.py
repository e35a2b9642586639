"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import records

REPO = Path(__file__).resolve().parent.parent


def bench(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--backend", "nope"], ["unknown backend 'nope'"]),
        (["--step", "manual,bogus"], ["unknown step 'bogus'"]),
        (["--framework", "caffe"], ["unknown framework 'caffe'"]),
        (["--dtype", "float8"], ["unknown dtype 'float8'"]),
        (["--tf32", "maybe"], ["tf32"]),
        (["--size", "0,784,50"], ["bad size '0,784,50'", "at least 1"]),
        (["--size=-5,784,50"], ["bad size"]),
        (["--size", "-5,784,50"], ["expected at least one argument"]),
        (["--size", "a,b,c"], ["bad size 'a,b,c'", "whole numbers"]),
        (["--size", "100,784"], ["expected N,M,NH"]),
        (["--data", "/no/such/mnist.npz"], ["no such file"]),
        (["--pin", "4096"], ["--pin '4096'", "not one this process may use"]),
        (["--pin", "one"], ["--pin 'one'", "CPU numbers"]),
        (["--env", "tensorflow=2.20"], ["--env 'tensorflow=2.20'", "not a pip requirement"]),
        (["--measure", "cycles"], ["unknown --measure 'cycles'", "instructions"]),
    ],
)
def test_bad_run_arguments(args, words, tmp_path):
    assert_one_line_error(bench("run", "--quick", "--out", tmp_path / "out", *args), *words)
    assert not (tmp_path / "out" / "records.jsonl").exists()


def test_a_problem_too_big_for_the_memory_is_refused_before_anything_is_made(tmp_path):
    """The size's own arrays (data and float64 reference) pass the memory estimate the cases do:
    refused in one line with the estimate and the memory free, no folder made, no framework loaded."""
    for command in (
        ("run", "--framework", "numpy", "--size", "100000000,784,50", "--quick"),
        ("explain", "numpy/manual/eager", "n=100000000"),
        ("scale", "--size", "100000000,784,50"),
    ):
        out = tmp_path / command[0]
        assert_one_line_error(bench(*command, "--out", out), "size 100000000,784,50", "GiB", "free now", "smaller n")
        assert not out.exists(), command


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
    result = bench(
        "run",
        "--quick",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "module",
        "--size",
        "300,784,10",
        "600,784,10",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "| numpy/manual" in result.stdout
    for said in (result.stderr.split("\n[")[0], result.stdout):  # as it starts, and under its tables
        assert "SMOKE TEST (--quick)" in said and "not a measurement" in said and "make bench" in said
    assert "**" not in result.stdout and "median ms [95% CI] (smoke test: not a measurement)" in result.stdout
    for counter in ("[1/4 checked +", "[2/4 timed +", "[1/4 +", "[4/4 +"):  # each stage's count moves
        assert counter in result.stderr, result.stderr
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["status"] == "ok" for line in lines)
    for name in ("report.md", "report.html", "plots/bars.png", "tables/cases.csv"):
        assert (out / name).stat().st_size > 0
    assert (out / "plots" / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = result.stdout.split("\n\nSMOKE TEST")[0].replace(" (smoke test: not a measurement)", "")
    (out / "report.md").unlink()
    result = bench("report", out, "--table")  # the tables the run printed, and nothing written
    assert result.returncode == 0 and not (out / "report.md").exists(), result.stderr
    assert result.stdout.strip() == printed.strip() and "| numpy/manual" in result.stdout
    result = bench("report", out)
    assert result.returncode == 0, result.stderr
    assert "numpy/module" in (out / "report.md").read_text()


def test_report_of_a_broken_results_file(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"framework": \n{}\n')
    assert_one_line_error(bench("report", path), "no usable records", "records.jsonl:1: not a valid JSON line")
    assert path.read_text() == '{"framework": \n{}\n'  # nothing already written is lost
    assert_one_line_error(bench("report", tmp_path / "missing"), "no such results file")


def test_list_says_what_is_available():
    result = bench("list")
    assert result.returncode == 0, result.stderr
    assert "tensorflow" in result.stdout and "manual" in result.stdout and "xla" in result.stdout
    assert result.stderr == ""  # TensorFlow's import noise is filtered


def test_overhead_command_runs_and_rejects_bad_input():
    result = bench("overhead", "--framework", "numpy", "--size", "200,784,8", "--rounds", "2", "--backend", "eager")
    assert result.returncode == 0, result.stderr
    assert "harness/bare" in result.stdout
    assert_one_line_error(bench("overhead", "--backend", "nope"), "unknown backend 'nope'")
    assert_one_line_error(bench("overhead", "--size", "0,1,1"), "bad size")


def wait_for(path, lines, proc, seconds=300):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= lines:
            return
        time.sleep(0.05)


def test_sweep_interrupt_and_resume(tmp_path):
    """SIGINT between groups: exit 130 with one line, every finished case kept, and --resume runs
    the rest (the sizes are groups of one case each)."""
    import signal

    out = tmp_path / "sweep"
    args = [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--quick",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "--backend",
        "eager",
        "--sizes",
        "n=100,200,300,400,500,600,700,800",
        "nh=4",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records_path = out / "records.jsonl"
    wait_for(records_path, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    kept = [json.loads(line) for line in records_path.read_text().splitlines()]  # still valid JSONL
    assert 2 <= len({r["n"] for r in kept}) <= 8
    if len({r["n"] for r in kept}) < 8:
        assert proc.returncode == 130, err[-3000:]
        assert "stopped by SIGINT" in err and "Traceback" not in err, err[-3000:]
    result = subprocess.run(args + ["--resume", "--no-report"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "report: not written (--no-report" in result.stdout
    final, _ = records.load(records_path)
    assert sorted(r.n for r in final) == [100, 200, 300, 400, 500, 600, 700, 800]
    assert len(records_path.read_text().splitlines()) == 8  # one final record a case, in the file itself
    assert len({r.run_id for r in final}) == 1  # the resumed run continues the same run
    done = {r["n"] for r in kept if r.get("stop_reason") != "interrupted"}
    assert result.stderr.count("already recorded") == len(done)


def sigterm_while_timing(out):
    """`bench run` of four cases, SIGTERM a second into their timing: (exit status, stderr)."""
    import signal
    import time

    args = [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--size",
        "500,784,20",
        "--budget",
        "60",
        "--target-ci",
        "0.00001",
        "--framework",
        "tensorflow",
        "--step",
        "manual",
        "tape",
        "--backend",
        "eager",
        "function",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    err = ""
    while proc.poll() is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        err += line
        if "timing: 4 cases" in line:
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    return proc.returncode, err + rest


def test_sigterm_mid_timing_keeps_every_checked_case(tmp_path):
    """SIGTERM while a group of four cases is being timed: all four are written with the samples
    taken so far, marked interrupted, and the run exits 143. Known and not root-caused: now and then
    (2 of 45 stress runs here) TensorFlow's process aborts (SIGABRT, glibc "corrupted
    size") or faults while it stops; such a run is tried once more, in a fresh folder."""
    out = tmp_path / "run"
    code, err = sigterm_while_timing(out)
    if code in (-6, -11):
        out = tmp_path / "again"
        code, err = sigterm_while_timing(out)
    assert code == 143, err[-3000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    got, problems = records.load(out)
    assert not problems and len(got) == 4
    assert len((out / "records.jsonl").read_text().splitlines()) == 4 and not (out / records.JOURNAL).exists()
    assert all(r.status == "ok" and r.stop_reason == "interrupted" and len(r.samples_s) > 3 for r in got)
    assert not (out / "report.md").exists()
    # an interrupted case gets no gate verdict from a handful of samples, but does from enough
    from tests.comparing import case

    few = dataclasses.replace(got[0], samples_s=got[0].samples_s[:3], rounds=got[0].rounds[:3])
    c = case([few], [few], 0.1)
    assert c.verdict == "n/a" and "interrupted after 3 samples" in c.note
    enough = case([got[0]], [got[0]], 0.1)  # a verdict, and no change (how sure: its interval)
    assert enough.verdict in ("same", "inconclusive") and enough.ratio == 1.0


def test_bad_sizes_grid(tmp_path):
    assert_one_line_error(bench("run", "--sizes", "q=1", "--out", tmp_path), "bad --sizes item 'q=1'")
    assert_one_line_error(bench("run", "--sizes", "n=0,5", "--out", tmp_path), "at least 1")
    assert_one_line_error(bench("run", "--resume"), "--resume needs --out")


def test_the_final_table_is_plain_text_and_tells_the_fastest_from_the_rest():
    """The issue's row: a fastest case (shown so, paired by round) within 0.03% of the runner-up, a
    third at 174 ms. Its cell is marked '*', printed to the digits that tell it from the runner-up,
    every cell with its interval, the runner-up's ratio with its own; no Markdown bold."""
    import numpy as np

    from bench.report import frame
    from bench.report.document import RUNNER_UP, legend, text_tables

    drift = 1 + 0.01 * np.random.default_rng(0).standard_normal(40)  # the machine, the same for all in a round
    own = np.random.default_rng(1)

    def case(backend, median_s):
        samples = tuple(median_s * drift * (1 + 1e-5 * own.standard_normal(40)))
        return records.Record(
            **records.CaseKey("tensorflow", "manual", backend, "cpu", 1000, 784, 50, "float32").asdict(),
            status="ok",
            run_id="r",
            samples_s=samples,
            rounds=tuple(range(40)),
        )

    df = frame([case("eager", 0.174), case("function", 0.17024), case("xla", 0.17020)])
    assert list(df[df.best].backend) == ["xla"]  # the one comparison's fastest
    lines = text_tables(df)
    assert "**" not in "\n".join(lines) and lines[-2:] == legend(True, True)
    header, row = lines[1], lines[3]
    assert RUNNER_UP in header
    cells = [c.strip() for c in row.strip("| ").split(" | ")]
    assert cells[0] == "tensorflow/manual" and all("[" in c for c in cells[1:])
    eager, function, xla, ratio = cells[1:]
    assert xla.endswith(" *") and not any(c.endswith("*") for c in (eager, function))
    assert xla.split(" [")[0] != function.split(" [")[0]  # 170.20 and 170.24, not 170 and 170
    assert ratio.startswith("×1.000") and float(ratio.split("[")[1].split(",")[0]) >= 1.0


def test_the_comparison_not_the_medians_orders_two_cases_timed_together():
    """Two cases timed in the same rounds: A has most of its calls in the machine's fast rounds, B in
    its slow ones, so A's median is the lower, yet round by round B takes 5% less. The paired
    comparison names B the fastest, and the grid's ratio and the headline say so, never ×0.95."""
    import numpy as np

    from bench.report import document, frame

    own = np.random.default_rng(2)

    def case(backend, time_s, calls_fast, calls_slow):
        rounds = [r for r in range(20) for _ in range(calls_fast if r < 10 else calls_slow)]
        machine = np.array([1.0 if r < 10 else 2.0 for r in rounds])
        samples = time_s * machine * (1 + 1e-4 * own.standard_normal(len(rounds)))
        return records.Record(
            **records.CaseKey("numpy", "manual", backend, "cpu", 1000, 784, 50, "float32").asdict(),
            status="ok",
            run_id="r",
            samples_s=tuple(samples),
            rounds=tuple(rounds),
        )

    df = frame([case("a", 0.100, 3, 1), case("b", 0.095, 1, 3)])
    assert df.set_index("backend").median_ms["a"] < df.set_index("backend").median_ms["b"]
    assert list(df[df.best].backend) == ["b"]
    row = [c.strip() for c in document.text_tables(df)[3].strip("| ").split(" | ")]
    assert row[2].endswith(" *") and row[3].startswith("×1.05")
    assert "fastest **numpy/manual/b**" in document._summary(df)[0]
