"""Data-parallel engines (bench/distributed/): each engine at R=1 and R=2 checked against the float64
reference on the global batch and recorded; faults (a worker that dies or hangs, a port in use, more
replicas than devices) end in one line, within the timeout, with no process left behind."""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from bench.distributed import launch
from bench.records import Record, check, read
from bench.report import document, frames
from tests.test_cli import assert_one_line_error, bench

N, M, NH = 400, 784, 20
ENGINE_BACKEND = [
    ("mirrored", "function"),
    ("multiworker", "function"),
    ("sharding", "jit"),
    ("torch.distributed", "eager"),
]


def needs(framework):
    return pytest.mark.skipif(importlib.util.find_spec(framework) is None, reason=f"{framework} is not installed")


def two_cores():
    return pytest.mark.skipif(launch.devices_available("cpu") < 2, reason="needs two CPU cores (a core a replica)")


def workers_left(tmp_path):
    """Worker processes still running on this test's files."""
    out = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    return [pid for pid in out if int(pid) != os.getpid()]


def run(tmp_path, engine, backend, replicas, n=N, timeout_s=120, **kw):
    req = launch.Request(
        engine, launch.ENGINES[engine].framework if engine else kw.pop("framework"), backend, "cpu", replicas, n, M, NH
    )
    return launch.run(
        req, tmp_path / f"{engine or 'single'}-{replicas}", samples=3, warmup=1, timeout_s=timeout_s, **kw
    )


@pytest.mark.parametrize("replicas", [1, pytest.param(2, marks=two_cores())])
@pytest.mark.parametrize(
    "engine, backend", [pytest.param(e, b, marks=needs(launch.ENGINES[e].framework)) for e, b in ENGINE_BACKEND]
)
def test_every_engine_is_checked_against_the_global_batch_and_recorded(tmp_path, engine, backend, replicas):
    rec = run(tmp_path, engine, backend, replicas)
    assert rec.status == "ok", rec.error
    assert rec.max_rel_err < rec.tolerance == 1e-4
    assert set(rec.rel_errs) == {"loss", "d_x", "d_w1", "d_b1", "d_w2", "d_b2"}
    assert rec.engine == engine and rec.replicas == replicas and rec.n == N and len(rec.samples_s) == 3
    assert rec.case.label.endswith(f"{engine} x{replicas}")
    d = rec.distributed
    assert d["hosts"] == 1 and d["processes"] == (replicas if launch.ENGINES[engine].per_replica_process else 1)
    assert d["settings"] and d["wall_s"] > 0
    assert d["settings"]["cores"] == sorted(os.sched_getaffinity(0))[:replicas]  # a core a replica
    if engine == "torch.distributed":
        assert len(d["allreduce_samples_s"]) == 3 and d["settings"]["process_group"] == "gloo"
    if engine == "sharding" and replicas == 2:
        assert d["settings"]["all_reduces_in_program"] >= 1  # XLA reduced the gradients, not this harness
    if engine == "mirrored":
        assert d["settings"]["replicas_in_sync"] == replicas
    assert Record.from_dict(json.loads(rec.to_json())) == rec  # the record reads back


@needs("jax")
def test_a_wrong_answer_under_an_engine_fails_the_case(tmp_path, monkeypatch):
    real = launch.reference.Reference

    class Doubled(real):  # as if the engine had summed two replicas' d_w1 without dividing by R
        def check(self, got, h_pre=None):
            return super().check({**got, "d_w1": got["d_w1"] * 2}, h_pre)

    monkeypatch.setattr(launch.reference, "Reference", Doubled)
    rec = run(tmp_path, "sharding", "jit", 1)
    assert rec.status == "failed" and rec.error.startswith("wrong answer: d_w1") and not rec.samples_s


@needs("torch")
@two_cores()
def test_a_worker_that_dies_fails_the_case_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WORKER_FAULT", "die:1")
    rec = run(tmp_path, "torch.distributed", "eager", 2, timeout_s=60)
    assert rec.status == "failed" and "rank 1 exited with code 9" in rec.error
    assert workers_left(tmp_path) == []


@needs("torch")
@two_cores()
def test_a_worker_that_hangs_is_killed_at_the_timeout_with_its_peers(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WORKER_FAULT", "hang:1")
    rec = run(tmp_path, "torch.distributed", "eager", 2, timeout_s=3)  # rank 1 hangs before importing anything
    assert rec.status == "failed" and rec.error.startswith("timed out after 3 s")
    assert workers_left(tmp_path) == []


def test_requests_the_machine_cannot_serve_are_refused_before_anything_starts():
    cores = launch.devices_available("cpu")
    with pytest.raises(launch.DistributedError, match=f"{cores + 1} replicas asked, but this machine has {cores} CPU"):
        launch.validate(launch.Request("sharding", "jax", "jit", "cpu", cores + 1, 1000 * (cores + 1), M, NH))
    if cores >= 2:
        with pytest.raises(launch.DistributedError, match="n=1001 does not split evenly over 2 replicas"):
            launch.validate(launch.Request("sharding", "jax", "jit", "cpu", 2, 1001, M, NH))
    with pytest.raises(launch.DistributedError, match="has no backend 'xla'"):
        launch.validate(launch.Request("sharding", "jax", "xla", "cpu", 1, 1000, M, NH))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(launch.DistributedError, match=f"port {port} is in use"):
            launch.validate(launch.Request("torch.distributed", "torch", "eager", "cpu", 1, 1000, M, NH), port)


def test_scale_refuses_bad_input_in_one_line(tmp_path):
    cores = launch.devices_available("cpu")  # mirrored: TensorFlow's engine, a core dependency
    assert_one_line_error(
        bench("scale", "--engine", "mirrored", "--replicas", str(cores + 1), "--out", tmp_path / "a"),
        f"{cores + 1} replicas asked",
    )
    assert_one_line_error(bench("scale", "--engine", "horovod", "--out", tmp_path / "b"), "unknown engine 'horovod'")
    assert_one_line_error(bench("scale", "--replicas", "two", "--out", tmp_path / "c"), "--replicas 'two'")
    assert_one_line_error(bench("scale", "--scaling", "sideways", "--out", tmp_path / "d"), "--scaling 'sideways'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert_one_line_error(
            bench("scale", "--engine", "mirrored", "--port", str(port), "--out", tmp_path / "e"),
            f"port {port} is in use",
        )
    assert not any((tmp_path / d / "records.jsonl").exists() for d in "abcde")


@needs("jax")
@two_cores()
def test_scale_runs_strong_and_weak_and_reports_them(tmp_path):
    out = tmp_path / "out"
    done = bench(
        "scale",
        "--engine",
        "sharding",
        "--replicas",
        "1",
        "2",
        "--size",
        f"{N},{M},{NH}",
        "--samples",
        "8",
        "--warmup",
        "1",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    recs = read(out)
    got = {(r.engine, r.replicas, r.n) for r in recs}
    assert got == {("", 1, N), ("sharding", 1, N), ("sharding", 2, N), ("sharding", 2, 2 * N)}
    assert all(r.status == "ok" for r in recs)
    text = (out / "report.md").read_text()
    assert "## Data-parallel scaling" in text and "### Strong scaling" in text and "### Weak scaling" in text
    assert "### The engine's cost at R=1" in text and (out / "plots" / "replicas.png").exists()
    assert "Strong scaling" in done.stdout or "strong scaling" in done.stdout
    again = bench(
        "scale", "--engine", "sharding", "--replicas", "1", "2", "--size", f"{N},{M},{NH}", "--out", out, "--resume"
    )
    assert again.returncode == 0 and len(read(out)) == len(recs)  # nothing left to run


def make(**kw):
    base = dict(
        framework="jax",
        step="manual",
        backend="jit",
        device="cpu",
        n=1000,
        m=784,
        nh=50,
        dtype="float32",
        status="ok",
        run_id="r",
        engine="sharding",
        replicas=1,
        samples_s=(0.010,) * 20,
    )
    base.update(kw)
    return Record(**base)


def test_scaling_tables_compute_speed_up_efficiency_and_the_engines_cost():
    rs = [
        make(),
        make(replicas=2, samples_s=(0.008,) * 20),
        make(replicas=2, n=2000, samples_s=(0.0125,) * 20),
        make(engine="", samples_s=(0.005,) * 20),
        make(replicas=2, n=4000, status="failed", error="timed out", samples_s=()),
    ]
    sc = frames.scaling(frames.frame(rs)).set_index(["kind", "replicas", "n"])
    assert sc.loc[("strong", 2, 1000), "speedup"] == pytest.approx(1.25)
    assert sc.loc[("strong", 2, 1000), "efficiency"] == pytest.approx(0.625)
    assert sc.loc[("weak", 2, 2000), "efficiency"] == pytest.approx(0.8)  # 10 ms for 1000 rows, 12.5 for 2 x 1000
    assert sc.loc[("strong", 1, 1000), "overhead"] == pytest.approx(2.0)  # 10 ms under the engine, 5 ms on one device
    assert ("strong", 2, 4000) not in sc.index  # failed: not a point
    tables = document.scaling_tables(sc.reset_index())
    assert {k[-1] for k in tables} == {"strong", "weak"}
    assert "1 (base)" in tables[("cpu", 784, 50, "float32", "strong")]["efficiency [95% CI]"].tolist()


def test_records_from_before_the_replicas_axis_read_as_one_device():
    old = json.loads(make().to_json())
    for key in ("engine", "replicas", "distributed"):
        old.pop(key)
    rec = Record.from_dict(old)
    assert rec.case.engine == "" and rec.case.replicas == 1
    assert check({**old, "replicas": 0}) == "replicas: expected a whole number of at least 1, got 0"
    assert check({**old, "distributed": [1]}).startswith("distributed: expected a JSON object")


@needs("jax")
@two_cores()
def test_sigterm_stops_the_scale_run_keeping_its_records_and_no_worker(tmp_path):
    import time

    out = tmp_path / "out"
    common = [
        "scale",
        "--engine",
        "sharding",
        "--size",
        f"{N},{M},{NH}",
        "--scaling",
        "strong",
        "--no-single",
        "--out",
        str(out),
    ]
    assert bench(*common, "--replicas", "1", "--samples", "3").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *common, "--replicas", "1", "2", "--samples", "1000000", "--resume"],
        cwd=launch.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = ""
    while proc.poll() is None and "sharding x2" not in err:  # R=2 has started: its million steps
        err += proc.stderr.readline()
    time.sleep(1)
    proc.terminate()
    _, rest = proc.communicate(timeout=60)
    err += rest
    assert proc.returncode == 143 and "--resume runs the rest" in err, err
    assert [(r.engine, r.replicas) for r in read(out)] == [("sharding", 1)]
    assert workers_left(tmp_path) == []


def test_an_engine_faster_at_one_replica_is_not_read_as_its_cost():
    """Each side is its own process, timed at another time: a ratio is read against the noise between
    processes (defaults.RUN_SD), not against its samples' own interval alone."""
    rng = np.random.default_rng(0)
    noisy = lambda level: tuple(level * (1 + 0.01 * rng.standard_normal(20)))  # noqa: E731
    sc = frames.scaling(
        frames.frame(
            [
                make(engine="", samples_s=noisy(0.010)),
                make(samples_s=noisy(0.005)),
                make(backend="eager", engine="", samples_s=noisy(0.010)),
                make(backend="eager", samples_s=noisy(0.020)),
                make(backend="pmap", engine="", samples_s=noisy(0.010)),
                make(backend="pmap", samples_s=noisy(0.0085)),
            ]
        )
    )
    table = document.engine_overhead_table(sc)
    readings = dict(zip(table["case"], table["reading"]))
    assert readings["jax/manual · jit"].startswith("faster under the engine beyond the noise between processes")
    assert readings["jax/manual · eager"] == "the engine's cost"
    # x0.85 with +-1% samples: within the noise between two processes, so no reading either way
    assert readings["jax/manual · pmap"] == "no difference shown"
    o = sc[sc.backend == "pmap"].iloc[0]
    assert o.overhead_lo < 1 < o.overhead_hi and (o.overhead_hi / o.overhead_lo) > 1.4
