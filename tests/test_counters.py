"""What a step executes (bench/counters.py, the frameworks' profile/compiled/flops): counted exactly,
the same on every run of the same code, compared exactly by compare, the gate and the history, and
explained op by op (`bench explain`)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import compare as rule
from bench import counters, frameworks, run
from bench.frameworks.base import OpTime, ProfilerUnavailable
from bench.gate import settings, text
from bench.records import CaseKey, Record, check
from kernels import reference
from tests.comparing import sides
from tests.helpers import CONFIG, tiny_inputs

REPO = Path(__file__).resolve().parent.parent


def _param(name):
    reason = frameworks.unavailable_reason(name)
    return pytest.param(name, marks=pytest.mark.skip(reason=reason) if reason else (), id=name)


def counted(fw, step, backend, n=200, m=30, nh=6, warm=3):
    """The counters of one case, as the run's counting pass takes them (a fresh compile each time),
    after `warm` calls (a case's timing makes from a few to thousands)."""
    inputs = tiny_inputs(n=n, m=m, nh=nh, dtype=np.float32)
    args = fw.to_device(inputs, "float32", "cpu")
    fn = fw.compile(step, backend)

    def call():
        with fw.placement("cpu"):
            return fn(*args)

    for _ in range(warm):  # warm, as after a case's timing
        call()
        fw.sync()
    return counters.count(fw, CaseKey(fw.name, step, backend, "cpu", n, m, nh, "float32"), fn, call, args)


def _steps():
    """(framework, step) of every framework's steps, from the classes (nothing imported to collect)."""
    out = []
    for name in frameworks.FRAMEWORKS:
        reason = frameworks.unavailable_reason(name)
        out += [
            pytest.param(name, step, marks=pytest.mark.skip(reason=reason) if reason else (), id=f"{name}-{step}")
            for step in frameworks.spec(name).steps
        ]
    return out


@pytest.mark.parametrize("name, step", _steps())
def test_every_step_and_backend_counts_the_same_twice(name, step):
    """Exact: two counting passes over fresh compiles of unchanged code give identical counters."""
    fw = frameworks.load(name)
    for backend in fw.backends:
        if backend in fw.gpu_backends:
            continue
        first, second = counted(fw, step, backend), counted(fw, step, backend)
        assert first == second, (step, backend)
        assert first.get("ops") and all(isinstance(v, int) and v > 0 for v in first["ops"].values()), (
            step,
            backend,
            first,
        )
        assert first.get("retraces", 0) == 0, (step, backend)


def test_a_tf_function_counts_the_same_after_three_calls_or_three_hundred():
    """TensorFlow's graph executor stops tracing a node once its running cost estimate (1e8 cycles
    at first, a tenth closer to the measured cost each call) falls under 8,000 cycles: every node
    of this tiny step after ~90 calls. Counted on a fresh executor, the count does not depend on
    how many calls the timing made before it."""
    if reason := frameworks.unavailable_reason("tensorflow"):
        pytest.skip(reason)
    fw = frameworks.load("tensorflow")
    few, many = counted(fw, "manual", "function", warm=3), counted(fw, "manual", "function", warm=300)
    assert many["ops"] == few["ops"] and sum(few["ops"].values()) >= 10, (few["ops"], many["ops"])


def test_explain_names_the_ops_its_profile_of_a_warm_step_missed(tmp_path):
    """explain profiles the timed, warm step (its times are the steady state's), where TensorFlow's
    graph executor no longer traces cheap ops; the counters count a fresh copy. What the profile
    missed is named, not silently left out of the table."""
    from bench import explain

    if reason := frameworks.unavailable_reason("tensorflow"):
        pytest.skip(reason)
    fw = frameworks.load("tensorflow")
    args = fw.to_device(tiny_inputs(n=200, m=30, nh=6, dtype=np.float32), "float32", "cpu")
    fn = fw.compile("manual", "function")

    def call():
        with fw.placement("cpu"):
            return fn(*args)

    for _ in range(300):  # as after a case's timing
        call()
    fw.sync()
    warm = fw.profile(call, 3, "cpu", tmp_path / "warm")
    counted = counters.count(
        fw, CaseKey("tensorflow", "manual", "function", "cpu", 200, 30, 6, "float32"), fn, call, args
    )
    # Which ops the warm profile misses is TensorFlow's call (its executor stops tracing the ops its
    # cost model, updated by each op's measured time, calls cheap: Relu here, on a quiet machine,
    # but not always on a loaded one), so the profile is also taken with Relu surely missing.
    missed = explain.untraced(warm, 3, counted)
    assert set(missed) <= set(counted["ops"]) and counted["ops"]["Relu"] >= 1, (missed, warm)
    assert "Relu" in explain.untraced({op: t for op, t in warm.items() if op != "Relu"}, 3, counted)
    assert explain.untraced(warm, 3, {**counted, "ops_source": "the compiled module"}) == []
    assert explain.untraced({op: OpTime(n * 3, 1e-6) for op, n in counted["ops"].items()}, 3, counted) == []


def test_counters_in_every_record_and_identical_across_processes(tmp_path):
    """A run in another process (its own compiles, its own timing, which disturbs this one) records
    every case's counters, and they are the ones this process counts for the same cases."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--quick",
            "--framework",
            "tensorflow",
            "--step",
            "manual",
            "--size",
            "300,784,8",
            "--no-report",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    fw = frameworks.load("tensorflow")
    here = {backend: counted(fw, "manual", backend, n=300, m=784, nh=8) for backend in ("eager", "function", "xla")}
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    there = {d["backend"]: d["counters"] for d in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    assert set(there) == {"eager", "function", "xla"} and there == here
    assert there["eager"]["ops"]["MatMul"] == 6  # the step's six matrix products, as run
    assert there["xla"]["fusions"] > 0 and there["xla"]["ops"].get("dot")  # the compiled module's instructions
    assert there["function"]["traced_flops"] == pytest.approx(there["eager"]["flops"])  # one graph, before Grappler
    assert "flops" not in there["function"] and "traced graph" in there["function"]["absent"]["flops"]
    dots = 2 * 300 * 8 * (3 * 784 + 3)  # the lesson's six products: x@w1, d_x, d_w1 (n x 784 x 8); h@w2, d_h, d_w2
    # the executed module's dot instructions: the three n x 784 x 8 products; XLA may rewrite one with a
    # single output column as a multiply and a reduction, which is no dot
    assert dots - 3 * 2 * 300 * 8 <= there["xla"]["flops"] <= dots


def test_changes_name_what_differs_exactly():
    base = {"ops": {"MatMul": 6, "Relu": 1}, "flops": 1.0e9, "fusions": 3}
    assert counters.changes(base, dict(base)) == []
    assert counters.changes(base, {}) == [] and counters.changes({}, base) == []  # records from before counters
    more = {"ops": {"MatMul": 7, "Relu": 1, "IsNan": 1}, "flops": 1.25e9, "fusions": 2}
    assert counters.changes(base, more) == [
        "ops 7 -> 9 a step",
        "IsNan 0 -> 1",
        "MatMul 6 -> 7",
        "fusions 3 -> 2",
        "FLOPs +25.0% (1e+09 -> 1.25e+09)",
    ]


def record(ops, run_id="a", samples=(0.01,) * 10, work=None, **kw):
    return Record(
        framework="tensorflow",
        step="manual",
        backend="function",
        device="cpu",
        n=100,
        m=784,
        nh=50,
        dtype="float32",
        status="ok",
        run_id=run_id,
        samples_s=samples,
        rounds=tuple(range(len(samples))),
        counters={"ops": ops, **(work or {})},
        **kw,
    )


def test_compare_reports_a_counter_change_and_fails_only_where_the_policy_says():
    base, cand = [record({"MatMul": 6})], [record({"MatMul": 7}, run_id="b")]
    result = sides(base, cand, rule.Thresholds())
    (c,) = result.comparisons
    assert c.verdict == "same" and c.counters == ("ops 6 -> 7 a step", "MatMul 6 -> 7") and not result.failed
    strict = rule.Thresholds(counter_overrides=(("tensorflow/*/function/*", "fail"),))
    assert sides(base, cand, strict).failed
    same = sides(base, [record({"MatMul": 6}, run_id="b")], strict)
    assert not same.failed and not same.comparisons[0].counters


def test_the_counter_policy_is_read_from_pyproject(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.backprop-bench.gate]\ncounters = "fail"\n'
        '[tool.backprop-bench.gate.counters-by-case]\n"numpy/*" = "report"\n'
    )
    t = settings.load_thresholds(path)
    assert (
        t.counters_for("tensorflow/manual/xla/cpu") == "fail" and t.counters_for("numpy/manual/eager/cpu") == "report"
    )
    path.write_text('[tool.backprop-bench.gate]\ncounters = "maybe"\n')
    with pytest.raises(rule.CompareError, match="'maybe' is not one of report, more-work, fail"):
        settings.load_thresholds(path)


def test_a_planted_extra_matmul_is_counted_whatever_the_times(tmp_path):
    """The gate's detection candidate (bench/gate/slower.py): a quarter more matmul work, in the
    counters exactly, while a single run's times may or may not show it."""
    from bench.gate.slower import slower

    fw = frameworks.load("tensorflow") if frameworks.unavailable_reason("tensorflow") is None else None
    if fw is None:
        pytest.skip("TensorFlow is not installed")
    import copy
    from types import SimpleNamespace

    slow = copy.copy(fw)
    slow.module = SimpleNamespace(**{**vars(fw.module), "manual_step": slower(fw.step("manual"))})
    a, b = counted(fw, "manual", "function"), counted(slow, "manual", "function")
    what = counters.changes(a, b)
    assert any(line.startswith("_MklMatMul ") or line.startswith("MatMul ") for line in what), what
    assert any(line.startswith("traced FLOPs +") for line in what), what  # tf.function: before Grappler
    assert not counters.more_work(a, b)  # the graph's FLOPs are not what executes; the times judge


def test_a_framework_without_a_profiler_still_gets_its_other_counters():
    fw = frameworks.load("numpy")

    class NoProfiler(type(fw)):
        def profile(self, call, steps, device, trace_dir):
            raise ProfilerUnavailable("no profiler in this build")

    c = counters.count(
        NoProfiler(),
        CaseKey("numpy", "manual", "eager", "cpu", 10, 4, 3, "float32"),
        fw.step("manual"),
        lambda: None,
        (),
    )
    assert "ops" not in c and c["absent"]["ops"] == "ProfilerUnavailable: no profiler in this build"


def test_records_carry_counters_and_bad_ones_are_refused(tmp_path):
    config = dataclasses.replace(
        CONFIG, out=tmp_path, frameworks=("numpy",), device="cpu", sizes=((200, 784, 8),), counters=True
    )
    recs = run.run(config)
    assert all(
        r.counters["ops"] == {"lin": 2, "lin_grad": 2, "mse": 1, "mse_grad": 1, "relu": 1, "relu_grad": 1} for r in recs
    )
    d = json.loads(recs[0].to_json())
    assert (
        check({**d, "counters": {"ops": {"MatMul": -1}}})
        == "counters.ops.'MatMul': expected a whole number of at least 0, got -1"
    )
    assert check({**d, "counters": {"flops": float("inf")}}).startswith("counters.flops: expected a finite number")
    assert check({**d, "counters": {"traced_flops": -1}}).startswith("counters.traced_flops: expected a finite")
    assert check({**d, "counters": [1]}).startswith("counters: expected a JSON object")
    none = run.run(dataclasses.replace(config, out=tmp_path / "none", counters=False))
    assert all(r.counters == {} for r in none)


def test_the_history_marks_a_work_change_at_its_commit():
    from bench.history import series

    points = [
        {
            "case": "c",
            "machine": "m",
            "commit_sha": f"{i:040x}",
            "commit_time": i,
            "branch": "main",
            "median_s": 0.01,
            "samples_s": (0.01,) * 5,
            "run_id": f"r{i}",
            "source": None,
            "counters": {"ops": {"MatMul": 6 if i < 3 else 7}} if i != 1 else {},
        }
        for i in range(5)
    ]
    (s,) = series.build(points)
    assert [(w.index, w.what) for w in s.work_changes] == [(3, ("ops 6 -> 7 a step", "MatMul 6 -> 7"))]


# ---------------------------------------------------------------- explain


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "case, words",
    [
        ("tensorflow/manul/eager", ["unknown case 'tensorflow/manul/eager'", "close: tensorflow/manual/eager/cpu"]),
        ("manual/eager", ["ambiguous case 'manual/eager'", "numpy/manual/eager/cpu"]),
        ("numpy/manual/eager n=abc", ["'n=abc': n must be a whole number"]),
        ("n=5 numpy/manual/eager", ["'n=5' comes before any case"]),
    ],
)
def test_explain_refuses_a_case_it_cannot_name_in_one_line(case, words):
    done = bench("explain", *case.split())
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        ("numpy/manual/eager --instructions --base no-such-rev", "unknown revision 'no-such-rev'"),
        ("numpy/manual/eager --instructions --base HEAD~99999", "HEAD~99999"),
        ("numpy/manual/eager --base HEAD", "--base needs --instructions"),
        ("numpy/manual/eager --instructions --beside numpy/module/eager", "are for the time profile"),
        ("numpy/manual/eager --instructions --budget 2", "are for the time profile"),
        ("numpy/manual/eager --top 0", "--top must be at least 1"),
        ("numpy/manual/eager numpy/module/eager torch/manual/eager --instructions", "name at most two"),
    ],
)
def test_explain_instructions_refuses_bad_input_in_one_line(args, words):
    done = bench("explain", *args.split())
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert words in done.stderr


def test_explain_shows_where_the_time_goes_and_writes_the_trace(tmp_path):
    done = bench(
        "explain",
        "numpy/manual/eager",
        "n=2000",
        "numpy/module/eager/cpu",
        "--size",
        "1000,784,20",
        "--budget",
        "0.1",
        "--out",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "numpy/manual/eager/cpu n=2000 m=784 nh=20 float32" in out and "numpy/module/eager/cpu n=1000" in out
    assert "lin_grad" in out and "counters: 8 ops a step" in out and "side by side" in out
    traces = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("trace.json"))
    assert traces == [
        "numpy-manual-eager-cpu-n2000-float32/trace.json",
        "numpy-module-eager-cpu-n1000-float32/trace.json",
    ]
    assert json.loads((tmp_path / traces[0]).read_text())["traceEvents"]


def test_explain_of_a_case_that_fails_its_check_says_so(tmp_path, monkeypatch):
    from bench import explain

    real = reference.Reference

    class Wrong(real):
        def check(self, got, h_pre=None):
            return super().check({**got, "d_w1": got["d_w1"] * 2}, h_pre)

    monkeypatch.setattr(reference, "Reference", Wrong)
    monkeypatch.setattr("bench.run.caches.reference.Reference", Wrong)
    with pytest.raises(explain.ExplainError, match="failed: wrong answer: d_w1"):
        explain.explain(CaseKey("numpy", "manual", "eager", "cpu", 100, 20, 5, "float32"), tmp_path)


def test_back_to_back_ops_of_a_trace_at_an_epoch_timestamp_are_each_counted(tmp_path):
    """Three StridedSlice ops of 0.2 us, 5 ns apart, on a line stamped in nanoseconds since the
    epoch: each counted (in float seconds since the epoch they overlapped, and one was dropped as the
    other's inner layer: a graph op that came and went between processes)."""
    pytest.importorskip("tensorflow", reason="TensorFlow (its XSpace protobuf) is not installed")
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from bench.frameworks import xplane
    from bench.frameworks.tensorflow import _tf_op

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    plane.event_metadata[1].name = "node_1:StridedSlice"
    line = plane.lines.add(name="tf_Compute/1", timestamp_ns=1_764_662_400_123_456_789)
    for offset_ps in (128_613, 333_613, 538_613):
        line.events.add(metadata_id=1, offset_ps=offset_ps, duration_ps=200_000)
    path = tmp_path / "t.xplane.pb"
    path.write_bytes(space.SerializeToString())
    events = list(xplane.events_from_protobuf(path, xplane_pb2))
    assert [round(e.start_s * 1e12) for e in events] == [128_613, 333_613, 538_613]
    assert xplane.tally(iter(events), _tf_op)["StridedSlice"][0] == 3


def test_more_work_is_executed_arithmetic_not_ops():
    """Work is what executes: FLOPs and bytes of the module or ops that run, a GPU's kernel
    launches, retraces. More ops or HLO instructions at the same FLOPs (a compiler fusing
    differently, a matmul split in pieces) are a change, reported, not work; so is a traced graph's
    FLOP count that the optimiser may have cut (traced_flops)."""
    base = {"ops": {"MatMul": 6, "Relu": 1}, "flops": 1.0e9, "retraces": 0, "traced_flops": 1.0e9}
    assert counters.more_work(base, dict(base)) == [] and counters.more_work(base, {}) == []
    assert counters.more_work(base, {"ops": {"MatMul": 6}, "flops": 0.5e9, "retraces": 0}) == []  # less of everything
    split = {"ops": {"MatMul": 8}, "flops": 1.0e9, "retraces": 1}  # a matmul split in pieces: more ops, same FLOPs
    assert counters.more_work(base, split) == ["retraces 0 -> 1"]
    assert "ops 7 -> 8 a step" in counters.changes(base, split)
    assert counters.more_work(base, {**base, "flops": 1.1e9}) == ["FLOPs +10.0%"]
    traced = {**base, "traced_flops": 1.33e9}  # a duplicate product the optimiser removed
    assert counters.more_work(base, traced) == [] and "traced FLOPs +33.0% (1e+09 -> 1.33e+09)" in counters.changes(
        base, traced
    )
    bump = {"ops": {"fusion:kLoop": 8, "reduce-window": 6, "dot": 6}, "fusions": 8, "flops": 1.0e9}
    was = {"ops": {"fusion:kLoop": 13, "dot": 6}, "fusions": 13, "flops": 1.0e9}
    assert counters.more_work(was, bump) == []  # a dependency that fuses differently does no more work
    gpu = {"kernels": {"gemm": 6}}
    assert counters.more_work(gpu, {"kernels": {"gemm": 7}}) == ["kernels 6 -> 7"]


def test_more_work_fails_the_gate_unless_its_times_clear_it():
    """The default policy, "more-work": a case doing more by its counters fails unless its times
    show it within the threshold (same) or faster; a time verdict that cannot tell (inconclusive)
    does not clear it. Less work, or the "report" policy, never fails on counters."""
    noisy = (0.01, 0.02) * 10  # an interval far wider than 5%: inconclusive
    base = [record({"MatMul": 6}, samples=noisy, work={"flops": 1.0e9})]
    more = [record({"MatMul": 7}, run_id="b", samples=noisy, work={"flops": 1.2e9})]
    result = sides(base, more, rule.Thresholds())
    (c,) = result.comparisons
    assert c.verdict == "inconclusive" and result.failed
    assert c.counters_fail == "more work (FLOPs +20.0%) and its time inconclusive, not shown within 5%"
    assert "verdict: FAILED on counters" in text.summary(result) and c.label in text.summary(result)
    assert not sides(base, more, rule.Thresholds(counters="report")).failed
    fewer = [record({"MatMul": 5}, run_id="b", samples=noisy, work={"flops": 0.8e9})]
    assert not sides(base, fewer, rule.Thresholds()).failed  # less work: the times alone judge
    refused = [record({"MatMul": 9}, run_id="b", samples=noisy, work={"flops": 1.0e9})]
    assert not sides(base, refused, rule.Thresholds()).failed  # more ops, the same FLOPs: not work
    steady = [record({"MatMul": 6}, work={"flops": 1.0e9})], [record({"MatMul": 7}, run_id="b", work={"flops": 1.2e9})]
    cleared = sides(*steady, rule.Thresholds())
    assert cleared.comparisons[0].verdict == "same" and not cleared.failed  # more work, shown to cost nothing


def test_a_duplicate_product_the_optimiser_removes_is_not_executed_work():
    """A step plus 0 x the loss of a duplicate of its first product, sliced to one column: Grappler
    merges the duplicate under tf.function and XLA computes one column of it, so the FLOPs of what
    executes barely move (tf.function's traced graph says a third more, kept as traced_flops); a
    product with other weights, used whole, is executed work under both."""
    fw = frameworks.load("tensorflow") if not frameworks.unavailable_reason("tensorflow") else None
    if fw is None:
        pytest.skip(frameworks.unavailable_reason("tensorflow"))
    import tensorflow as tf

    from kernels import tf_steps

    def removable(x, y, w1, b1, w2, b2):
        loss, *grads = tf_steps.manual_step(x, y, w1, b1, w2, b2)
        return (loss + 0.0 * tf_steps.mse(tf_steps.lin(x, w1, b1)[:, :1], y), *grads)

    def kept(x, y, w1, b1, w2, b2):
        loss, *grads = tf_steps.manual_step(x, y, w1, b1, w2, b2)
        return (loss + 0.0 * tf.reduce_sum(tf_steps.lin(x, w1 * 1.5, b1)), *grads)

    n, m, nh = 400, 60, 16
    args = fw.to_device(tiny_inputs(n=n, m=m, nh=nh, dtype=np.float32), "float32", "cpu")

    def count(step, backend):
        fn = fw.backends[backend](step)
        fn(*args)
        key = CaseKey("tensorflow", "manual", backend, "cpu", n, m, nh, "float32")
        return counters.count(fw, key, fn, lambda: fn(*args), args)

    for backend in ("function", "xla"):
        base, plant, whole = (count(step, backend) for step in (tf_steps.manual_step, removable, kept))
        product = 2 * n * m * nh
        if backend == "function":
            assert "flops" not in base and "traced FLOPs" in " ".join(counters.changes(base, plant))
            assert base["traced_flops"] < plant["traced_flops"]
            matmuls = [sum(k for op, k in c["ops"].items() if "MatMul" in op) for c in (base, plant, whole)]
            assert matmuls[0] == matmuls[1] < matmuls[2]  # the duplicate merged by Grappler, the other run
        else:
            assert 0 <= plant["flops"] - base["flops"] < 0.1 * product  # one column of the duplicate at most
            assert whole["flops"] - base["flops"] >= product  # a whole product it cannot remove
            assert counters.more_work(base, whole) and "FLOPs" in counters.more_work(base, whole)[0]


# ---------------------------------------------------------------- instructions (Callgrind)


def test_instructions_are_counted_under_callgrind_and_repeat(tmp_path):
    """run --measure instructions: a NumPy case counted under Valgrind, instrumentation on around
    each call only; the counts of three calls agree within 0.5% and the record carries them."""
    from bench import instructions
    from bench import records as records_io

    key = CaseKey("numpy", "manual", "eager", "cpu", 300, 784, 8, "float32")
    reason = instructions.unavailable_reason(key)
    if reason:
        pytest.skip(reason)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--framework", "numpy", "--step", "manual", "--size", "300,784,8",
         "--quick", "--no-counters", "--no-report", "--measure", "cache", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (rec,) = records_io.read(out / "records.jsonl")
    counted = rec.instructions
    assert "absent" not in counted, counted
    assert len(counted["calls"]) == 3 and counted["spread"] < 5e-3 and counted["per_call"] > 1e6
    assert "valgrind" in counted["tool"].lower()
    cached = counted["cache"]  # --measure cache: Valgrind's simulated caches beside the instructions
    assert cached["l1_misses"] > 0 and cached["cycles_estimate"] > counted["per_call"]
    gpu = instructions.measure(dataclasses.replace(key, device="gpu"))
    assert "CPU only" in gpu["absent"]


THREADED = """
import ctypes, sys, threading
import numpy as np
sys.path.insert(0, sys.argv[1])
from bench import instructions

lib = ctypes.CDLL(str(instructions.client_library()))
lib.bench_stop.argtypes = [ctypes.c_char_p]
a = np.ones((200, 200), np.float32)
wake, done = threading.Event(), threading.Event()


def pool():  # a runtime's thread: it runs the work it is handed, as a graph executor's do
    while True:
        wake.wait()
        wake.clear()
        np.dot(a, a)
        done.set()


threading.Thread(target=pool, daemon=True).start()


def handed():
    wake.set()
    done.wait()
    done.clear()


handed()
lib.bench_on()
for name, call in (("warm-up here", lambda: np.dot(a, a)), ("here 1", lambda: np.dot(a, a)), ("pool 1", handed)):
    lib.bench_start()
    call()
    lib.bench_stop(name.encode())
"""


def test_a_calls_count_holds_the_work_it_hands_to_another_thread(tmp_path):
    """A compiled step's ops run on its runtime's threads: each call's dump must hold them. The same
    product on the calling thread and on another thread counts about the same."""
    from bench import instructions

    reason = instructions.unavailable_reason(CaseKey("numpy", "manual", "eager", "cpu", 300, 784, 8, "float32"))
    if reason:
        pytest.skip(reason)
    script = tmp_path / "threaded.py"
    script.write_text(THREADED)
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", *instructions.THREADS,
         f"--callgrind-out-file={tmp_path}/cg.out", sys.executable, str(script), str(REPO)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    dumps = instructions._dumps(tmp_path)
    counts = {name: sum(events["Ir"] for events in files.values()) for name, files in dumps.items()}
    here, pool = counts["here 1"], counts["pool 1"]
    assert here > 1e6 and 0.9 < pool / here < 1.5, counts  # the pool's product counted, plus its handing over


def test_instructions_say_why_they_are_absent(monkeypatch):
    from bench import instructions

    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    key = CaseKey("numpy", "manual", "eager", "cpu", 300, 784, 8, "float32")
    assert instructions.measure(key) == {"absent": "valgrind is not installed (apt-get install valgrind)"}


CALLGRIND_DUMP = """# callgrind format
version: 1
positions: line
events: Ir
summary: 1000
desc: Trigger: Client Request: candidate 1

fn=(1) step
10 100
+1 50
cfn=(2) matmul
calls=1 20
15 700
cfn=(3) step
calls=1 30
16 999
fn=(2)
20 700
fn=(4) convert
* 150
"""


def test_callgrind_dumps_are_read_function_by_function(tmp_path):
    """Self instructions where a cost line follows fn=; a call's cost only in its caller's inclusive;
    names given once and then by number; a direct recursion not counted twice."""
    from bench import instructions

    (tmp_path / "cg.out.1-01").write_text(CALLGRIND_DUMP)
    (tmp_path / "cg.out.2-01").write_text(CALLGRIND_DUMP.replace("candidate 1", "base 1"))
    found = instructions.functions(instructions.dumps_of(tmp_path, "candidate"))
    assert found["step"] == instructions.Function("step", 150, 850)
    assert found["matmul"] == instructions.Function("matmul", 700, 700)
    assert found["convert"].self == 150
    assert sum(f.self for f in found.values()) == 1000  # the dump's summary
    assert len(instructions.dumps_of(tmp_path, "base")) == 1


def test_explain_diffs_two_counts_biggest_change_first():
    from bench import explain
    from bench.instructions import Function

    a = explain.Profile("before", 1000, {"step": Function("step", 150, 1000), "matmul": Function("matmul", 850, 850)})
    b = explain.Profile(
        "after",
        1100,
        {
            "step": Function("step", 160, 1100),
            "matmul": Function("matmul", 850, 850),
            "range": Function("range", 90, 90),
        },
    )
    lines = explain.counted_diff(a, b)
    assert "+100 instructions a call (+10.00%)" in lines[0]
    assert lines[2].split()[:4] == ["range", "0", "90", "+90"] and lines[2].split()[-1] == "90%"
    assert lines[3].split()[0] == "step" and len(lines) == 4  # matmul did not change: not listed
    assert "matmul" in explain.counted_lines(a)[2]  # most of its own first


def test_the_history_keeps_instructions_and_fails_a_commit_that_grew_them(tmp_path):
    from bench.history import series

    def point(i, instructions):
        return series.Point(f"{i:040x}", float(i), "main", 0.01, 0.0099, 0.0101, (f"r{i}",), (), {}, None, instructions)

    pts = [point(0, 20.0e6), point(1, 20.001e6), point(2, None), point(3, 20.4e6), point(4, 20.3e6), point(5, 19.9e6)]
    changes = series.work_changes(pts)  # beyond 1% either way: +2% at 3 and -2% at 5, not the -0.5% at 4
    assert [(w.index, round(w.instructions, 3)) for w in changes] == [(3, 1.02), (5, 0.980)]
    assert "instructions +1.99% a call (20,001,000 -> 20,400,000)" in changes[0].what[0]
    s = series.Series("numpy/manual/eager/cpu", "m", tuple(pts), work_changes=tuple(changes))
    check = series.check([s], 20, 0.10, lambda case: "more-work")
    assert check.failed and [fails for _, _, fails in check.work] == [True, False]  # fewer instructions pass
    assert not series.check([s], 2, 0.10, lambda case: "more-work").failed  # the growth is older than the last 2
    from bench.history import dashboard

    page = dashboard.write([s], tmp_path / "dash", "test").read_text()
    assert "Instructions a call under Callgrind, by commit: " in page and "20,400,000" in page
    assert "(instructions under Callgrind): instructions +1.99% a call" in page
