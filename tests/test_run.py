"""The grid runner: a wrong step fails and is not timed, an oversized case is skipped, errors are recorded."""

import copy
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from bench import run
from bench.records import read
from bench.run import prepare
from kernels import cost, reference
from tests.helpers import COMMON, CONFIG, SMALL_CEILINGS, load_or_skip

tf_backend = load_or_skip("tensorflow")
import tensorflow as tf  # noqa: E402


def adapter_with(**steps):
    """The TensorFlow framework with extra (test-only) steps: named in its `steps`, found in its module."""
    fw = copy.copy(tf_backend)
    fw.module = SimpleNamespace(**vars(tf_backend.module), **{f"{name}_step": fn for name, fn in steps.items()})
    fw.steps = {**tf_backend.steps, **{name: f"{name}_step" for name in steps}}
    return fw


def case_inputs(n=300, m=20, nh=5, dtype="float32"):
    rng = np.random.default_rng(0)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.float32)
    inputs = tuple(a.astype(dtype) for a in (x, y, *reference.init_params(m, nh, 0)))
    return inputs, tf_backend.to_device(inputs, dtype, "cpu")


def wrong_step(x, y, w1, b1, w2, b2):
    loss, d_x, d_w1, d_b1, d_w2, d_b2 = tf_backend.step("manual")(x, y, w1, b1, w2, b2)
    return loss, d_x, d_w1 * 1.001, d_b1, d_w2, d_b2  # a 0.1% error in one gradient


def raising_step(*args):
    raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor\nwith a second line")


@pytest.mark.parametrize("backend", list(tf_backend.backends))
def test_a_correct_case_is_checked_then_timed(backend):
    inputs, args = case_inputs()
    rec = run.run_case(tf_backend, "cpu", "manual", backend, inputs, args, CONFIG, COMMON)
    assert rec.status == "ok", rec.error
    assert len(rec.samples_s) == 3 and len(rec.warmup_s) == 1 and rec.first_call_s > 0
    assert rec.max_rel_err < 1e-5 and set(rec.rel_errs) == set(reference.OUTPUTS)
    assert rec.tracing_count == (None if backend == "eager" else 1)
    assert (rec.trace_s is None) == (backend == "eager")


@pytest.mark.parametrize("backend", list(tf_backend.backends))
def test_a_wrong_gradient_fails_and_is_not_timed(backend):
    inputs, args = case_inputs()
    rec = run.run_case(adapter_with(wrong=wrong_step), "cpu", "wrong", backend, inputs, args, CONFIG, COMMON)
    assert rec.status == "failed" and "d_w1" in rec.error
    assert rec.samples_s == () and rec.max_rel_err > 1e-4


def test_an_error_is_recorded_in_one_line():
    inputs, args = case_inputs()
    rec = run.run_case(adapter_with(oom=raising_step), "cpu", "oom", "eager", inputs, args, CONFIG, COMMON)
    assert rec.status == "failed"
    assert rec.error == "ResourceExhaustedError: OOM when allocating tensor"


def test_a_case_over_the_memory_budget_is_skipped_without_running(monkeypatch):
    inputs, args = case_inputs()
    monkeypatch.setattr(prepare, "free_bytes", lambda device: 1000)
    rec = run.run_case(adapter_with(oom=raising_step), "cpu", "oom", "eager", inputs, args, CONFIG, COMMON)
    assert rec.status == "skipped" and "budget" in rec.error and rec.memory_estimate_bytes > 500


def test_plan_rejects_unknown_names_and_missing_devices():
    adapters = {"tensorflow": tf_backend}
    with pytest.raises(run.ConfigError, match="unknown backend 'jit'"):
        run.plan(run.Config(out=None, backends=("jit",)), adapters)
    with pytest.raises(run.ConfigError, match="unknown step"):
        run.plan(run.Config(out=None, steps=("nope",)), adapters)
    if "gpu" not in tf_backend.devices():
        with pytest.raises(run.ConfigError, match="device 'gpu' is not available"):
            run.plan(run.Config(out=None, device="gpu"), adapters)
    groups = run.plan(
        run.Config(out=None, sizes=((300, 784, 8), (400, 784, 8)), dtypes=("float32", "float64")), adapters
    )
    assert [(g.n, g.dtype, g.device) for g in groups] == [
        (n, dtype, device) for n in (300, 400) for dtype in ("float32", "float64") for device in tf_backend.devices()
    ]
    assert all(len(g.cases) == len(tf_backend.steps) * len(tf_backend.backends) for g in groups)


def test_run_appends_every_case_with_its_environment(tmp_path):
    config = run.Config(
        out=tmp_path,
        steps=("manual", "broadcast"),
        backends=("eager", "xla"),
        device="cpu",
        sizes=((400, 784, 8),),
        step_n={"broadcast": 100},
        warmup=1,
        min_samples=2,
        max_samples=2,
        budget_s=0.0,
        batch_s=0.0,
        round_s=0.0,
        isolate=False,
        **SMALL_CEILINGS,
    )
    records = run.run(config)
    assert read(tmp_path) == records
    assert [(r.step, r.backend, r.n, r.status) for r in records] == [
        ("manual", "eager", 400, "ok"),
        ("manual", "xla", 400, "ok"),
        ("broadcast", "eager", 100, "ok"),
        ("broadcast", "xla", 100, "ok"),
    ]
    assert "broadcast ran at n=100" in records[-1].note
    r = records[0]
    assert r.fingerprint["frameworks"]["tensorflow"]["version"] == tf.__version__
    assert r.ceilings["gemm_gflops"] > 0 and r.ceilings["copy_gbps"] > 0
    assert r.data.startswith(("synthetic", "mnist"))
    # and what each size's own GEMM shapes reach, measured per size (broadcast's n=100 its own)
    assert r.ceilings["shape_gflops"] > 0 and r.ceilings["shapes"] == [list(s) for s in cost.gemms(400, 784, 8)]
    assert records[-1].ceilings["shapes"][0] == [100, 784, 8] and records[-1].summary.pct_of_shape_peak > 0


def test_a_retrace_inside_the_timed_loop_is_flagged():
    inputs, args = case_inputs()
    fw = adapter_with()
    counts = {}

    def tracing_count(fn):  # pretend the step retraced after the first call (queried twice before timing)
        counts[fn] = counts.get(fn, 0) + 1
        return 1 if counts[fn] <= 2 else counts[fn]

    fw.tracing_count = tracing_count
    rec = run.run_case(fw, "cpu", "manual", "function", inputs, args, CONFIG, COMMON)
    assert rec.status == "ok" and rec.retraced is True and rec.tracing_count > 1
    rec = run.run_case(tf_backend, "cpu", "manual", "function", inputs, args, CONFIG, COMMON)
    assert rec.retraced is False and rec.tracing_count == 1


def test_interleaving_pairs_samples_by_round(tmp_path):
    config = run.Config(
        out=tmp_path,
        steps=("manual", "tape"),
        backends=("eager",),
        device="cpu",
        sizes=((300, 784, 8),),
        warmup=1,
        min_samples=8,
        max_samples=8,
        budget_s=100.0,
        batch_s=0.0,
        round_s=0.0,
        isolate=False,
        **SMALL_CEILINGS,
    )
    a, b = run.run(config)
    assert a.rounds == b.rounds == tuple(range(8))
    assert len(a.canary_s) == len(b.canary_s) == 8 and a.canary_s == b.canary_s  # the machine's canary, a round each
    assert a.summary.canary_s > 0
    assert a.stop_reason in ("ci", "max_samples") and a.batch_calls >= 3 and a.dispatch_s > 0
    assert a.peak_bytes is not None and "RSS" in a.peak_method


class Killed(BaseException):
    """A process killed outright (kill -9): nothing after it runs."""


def test_a_killed_run_leaves_a_journal_that_every_reader_takes_and_resume_folds(tmp_path):
    from bench import records
    from tests.helpers import SMALL_CEILINGS, worker_processes

    config = run.Config(
        out=tmp_path,
        frameworks=("numpy",),
        device="cpu",
        sizes=((200, 784, 8), (300, 784, 8)),
        warmup=1,
        min_samples=30,
        max_samples=30,
        budget_s=100.0,
        batch_s=0.0,
        round_s=0.0,
        checkpoint_s=0.01,
        **SMALL_CEILINGS,
    )
    journal = tmp_path / records.JOURNAL

    def kill_once_the_second_group_is_journalled():
        if journal.exists() and all(r.n == 300 for r in records.load_file(journal)[0]):
            raise Killed
        return False

    with pytest.raises(Killed):
        run.run(config, stop=kill_once_the_second_group_is_journalled)
    assert worker_processes() == []  # its framework's worker process went with it
    final = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert sorted((r["step"], r["n"]) for r in final) == [("manual", 200), ("module", 200)]  # the first group
    kept, problems = records.load(tmp_path)  # the journal's cases too, as interrupted
    assert not problems and len(kept) == 4
    assert {(r.n, r.stop_reason) for r in kept if r.n == 300} == {(300, "interrupted")}
    again = run.run(dataclasses.replace(config, resume=True))
    assert sorted((r.step, r.n) for r in again) == [("manual", 300), ("module", 300)]
    lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and len({(r["step"], r["n"]) for r in lines}) == 4  # one final record a case
    assert all(r["stop_reason"] != "interrupted" for r in lines) and not journal.exists()


def test_a_shape_ceiling_that_cannot_be_timed_fails_no_case(monkeypatch):
    """The shapes' ceiling is a side measurement: where a product raises, the record says why under
    ceilings.shape_error and its column stays empty, and the size's cases run as before."""
    from bench import frameworks
    from bench.run import caches

    fw = frameworks.load("numpy")
    assert caches.shape_ceiling(fw, "cpu", 300, 784, 10)["shape_gflops"] > 0

    def broken(a, b):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr(fw, "gemm", broken)
    assert caches.shape_ceiling(fw, "cpu", 300, 784, 10) == {"shape_error": "RuntimeError: no such kernel"}
