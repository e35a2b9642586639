"""GPU-grade measurement, tested on a CPU with fakes where a GPU would be: device timers beside the
host clock, cold caches, telemetry (a fake NVML, a fake psutil), the precision axis and its
tolerances, GPU-only settings skipped on a CPU saying so, and what the report makes of it all."""

import dataclasses
import threading
import time

import numpy as np
import pytest

from bench import frameworks, run, telemetry, timing
from bench.frameworks import base
from bench.records import Record, read
from bench.report import document, frames, plots
from bench.run import measure
from kernels import reference
from tests.helpers import SMALL_CEILINGS
from tests.test_timing import FakeClock

# ---------------------------------------------------------------- timers and flushes


class HalfTimer(timing.HostTimer):
    """A device timer that reports half the host time (the rest: launch and sync overhead)."""

    name = "fake events"

    def measure(self, call, sync, clock):
        _, host = super().measure(call, sync, clock)
        return host / 2, host


def test_a_device_timer_reports_its_time_and_keeps_the_host_time_beside_it():
    clock = FakeClock()
    cases = {
        "gpu": timing.taker(lambda: clock.advance(2.0), lambda: clock.advance(1.0), HalfTimer(), clock=clock),
        "cpu": timing.taker(lambda: clock.advance(3.0), lambda: None, clock=clock),
    }
    out = timing.interleaved(cases, timing.Rounds(min_samples=8, min_rounds=8, budget_s=100.0), clock=clock)
    assert out["gpu"].samples_s == (1.5,) * 8 and out["gpu"].host_s == (3.0,) * 8
    assert out["cpu"].samples_s == (3.0,) * 8 and out["cpu"].host_s == ()  # the host clock is its timer
    # each call starts when the one before ended, 3 s apart, the order rotated and reversed by turns
    assert out["gpu"].starts == (0.0, 9.0, 15.0, 18.0, 24.0, 33.0, 39.0, 42.0)


def test_a_cold_sample_runs_the_flush_first_and_leaves_it_out_of_the_time():
    clock, log = FakeClock(), []
    flush = lambda: (log.append("flush"), clock.advance(50.0))  # noqa: E731
    cases = {
        "a": timing.taker(lambda: (log.append("call"), clock.advance(1.0)), lambda: None, flush=flush, clock=clock)
    }
    out = timing.interleaved(cases, timing.Rounds(min_samples=8, min_rounds=8, budget_s=100.0), clock=clock)
    assert log == ["flush", "call"] * 8
    assert out["a"].samples_s == (1.0,) * 8


def test_the_budget_counts_host_time_not_the_shorter_device_time():
    clock = FakeClock()
    durations = iter([1.0, 3.0] * 50)  # its median's CI never narrows
    cases = {"a": timing.taker(lambda: clock.advance(next(durations)), lambda: None, HalfTimer(), clock=clock)}
    out = timing.interleaved(cases, timing.Rounds(min_samples=2, min_rounds=2, budget_s=10.0), clock=clock)
    host = out["a"].host_s
    assert out["a"].stop_reason == "budget" and sum(host[:-1]) < 10.0 <= sum(host)
    assert sum(out["a"].samples_s) == sum(host) / 2


def test_the_cpu_flush_writes_every_line_of_a_buffer_twice_the_last_level_cache():
    flush = base.cpu_cache_flush()
    assert flush is base.cpu_cache_flush()  # one buffer per process
    (buffer,) = [c.cell_contents for c in flush.__closure__]
    assert buffer.nbytes >= 2 * base._llc_bytes() > 0
    before = buffer[::4096].copy()
    flush()
    np.testing.assert_array_equal(buffer[::4096], before + 1)


def test_llc_size_is_read_from_sysfs(tmp_path, monkeypatch):
    cache = tmp_path / "cpu0" / "cache"
    for name, size in (("index0", "48K"), ("index2", "2048K"), ("index3", "105M"), ("index4", "junk")):
        (cache / name).mkdir(parents=True)
        (cache / name / "size").write_text(size + "\n")
    real = base.Path
    monkeypatch.setattr(base, "Path", lambda p: real(str(p).replace("/sys/devices/system/cpu", str(tmp_path))))
    assert base._llc_bytes() == 105 << 20


# ---------------------------------------------------------------- telemetry


class FakeNvml:
    """The slice of pynvml the Sampler reads; `state` says what the card is doing now."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 1, 0

    def __init__(self):
        self.state = {"sm": 1980, "mem": 2619, "mw": 300_000, "temp": 40, "reasons": 0x0}

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"gpu{i}"

    def nvmlDeviceGetClockInfo(self, handle, which):
        return self.state["sm" if which == self.NVML_CLOCK_SM else "mem"]

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.state["mw"]

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self.state["temp"]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.state["reasons"]


def read_at(sampler, clock, t, **state):
    clock.now = t
    if state and sampler.nvml:
        sampler.nvml.state.update(state)
    sampler.readings.append((clock(), sampler.read()))


def test_samples_taken_while_the_gpu_was_power_capped_are_counted():
    nvml, clock = FakeNvml(), FakeClock()
    sampler = telemetry.Sampler("gpu", nvml=nvml, clock=clock)
    assert sampler.source == "nvml"
    read_at(sampler, clock, 0.0)
    read_at(sampler, clock, 1.0, reasons=0x4, sm=1600, mw=700_000, temp=71)  # software power cap
    read_at(sampler, clock, 2.0, reasons=0x1, sm=1980)  # GPU idle: not a throttle
    starts = [0.1, 0.5, 1.1, 1.5, 1.9, 2.2]
    out = sampler.summary(starts, [0.1] * 6)
    assert out["throttled_samples"] == 3  # the samples begun between 1.0 and 2.0
    assert out["sm_mhz"] == [1600, 1980] and out["power_w_max"] == 700 and out["temp_c_max"] == 71
    assert out["reasons_seen"] == ["0x0", "0x1", "0x4"] and out["readings"] == 3
    # a case timed wholly between two readings takes the state of the one before it
    assert sampler.summary([1.2, 1.3], [0.05, 0.05])["throttled_samples"] == 2


def test_the_older_nvml_name_for_throttle_reasons_is_used_where_the_new_one_is_missing():
    class OldNvml(FakeNvml):
        nvmlDeviceGetCurrentClocksEventReasons = None

        def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
            return 0x20

    sampler = telemetry.Sampler("gpu", nvml=OldNvml(), clock=FakeClock())
    assert sampler.read()["reasons"] == 0x20


class FakePsutil:
    """psutil as the Sampler reads it: 2 cores, both busy; this process half a core, its worker one."""

    Error = OSError

    class Process:
        """The harness's process (half a core) with one worker (a whole core) running the timed calls."""

        def __init__(self, pid=1, share=50.0):
            self.pid, self.share = pid, share

        def cpu_percent(self, interval):
            return self.share

        def children(self, recursive=False):
            return [type(self)(2, 100.0)] if self.pid == 1 else []

    def cpu_count(self):
        return 2

    def cpu_percent(self, interval):
        return 100.0  # of both cores: 2 cores busy, 1.5 of them the harness's

    def cpu_freq(self):
        return type("freq", (), {"current": 2100.0})()


def test_on_a_cpu_the_load_of_other_processes_is_recorded():
    clock = FakeClock()
    sampler = telemetry.Sampler("cpu", psutil=FakePsutil(), clock=clock)
    assert sampler.source == "psutil"
    read_at(sampler, clock, 0.0)
    read_at(sampler, clock, 1.0)
    out = sampler.summary([0.0, 0.5], [0.4, 0.4])
    # a neighbour's half core: the worker timing the calls is the harness's own, not another process
    assert out["other_cores"] == [0.5, 0.5] and out["cpu_mhz"] == [2100.0, 2100.0]
    assert "throttled_samples" not in out


def test_the_sampler_reads_in_the_background_while_a_group_is_timed():
    nvml = FakeNvml()
    with telemetry.Sampler("gpu", interval_s=0.005, nvml=nvml) as sampler:
        deadline = time.monotonic() + 5
        while len(sampler.readings) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert len(sampler.readings) >= 3
    assert not any(t.name.startswith("Thread") and t.is_alive() and t is sampler._thread for t in threading.enumerate())


def test_without_nvml_or_psutil_there_is_no_telemetry_and_no_thread():
    sampler = telemetry.Sampler("gpu", nvml=None)
    sampler.nvml = None  # wherever this runs, pretend the driver is absent
    with sampler:
        pass
    assert sampler.source in (None, "psutil") or sampler.summary([0.0], [1.0]) == {}
    assert telemetry.Sampler("gpu", nvml=FakeNvml()).summary([], []) == {}


# ---------------------------------------------------------------- precisions


def rounded_inputs(dtype, n=400, m=30, nh=8, seed=4):
    rng = np.random.default_rng(seed)
    x = rng.random((n, m))
    y = rng.integers(0, 10, n).astype(float)
    w1, b1, w2, b2 = reference.init_params(m, nh, seed, np.float64)
    b1 = rng.normal(0, 0.1, nh)  # a bias, so the ReLU inputs are sums rounded in the case's own dtype
    return tuple(np.asarray(a, reference.numpy_dtype(dtype)) for a in (x, y, w1, b1, w2, b2))


def emulated(inputs, dtype):
    """The step as a reduced-precision library computes it: products accumulated in float32, every
    result rounded to `dtype` (ml_dtypes rounds to nearest even, as the hardware does)."""
    t = reference.numpy_dtype(dtype)
    r = lambda a: np.asarray(np.asarray(a, np.float32), t)
    x, y, w1, b1, w2, b2 = (np.asarray(a, np.float32) for a in inputs)
    h_pre = r(x @ w1 + b1)
    mask = np.asarray(h_pre, np.float32) > 0
    h = r(np.where(mask, h_pre, 0))
    out = r(np.asarray(h, np.float32) @ w2 + b2)
    diff = np.asarray(out, np.float32)[:, 0] - y
    d_out = r(2 * diff[:, None] / len(x))
    d_h = r(np.where(mask, np.asarray(d_out, np.float32) @ w2.T, 0))
    d_h32, d_out32, h32 = (np.asarray(a, np.float32) for a in (d_h, d_out, h))
    got = {
        "loss": r(np.mean(diff**2)),
        "d_x": r(d_h32 @ w1.T),
        "d_w1": r(x.T @ d_h32),
        "d_b1": r(d_h32.sum(0)),
        "d_w2": r(h32.T @ d_out32),
        "d_b2": r(d_out32.sum(0)),
    }
    return {k: np.asarray(v, np.float32) for k, v in got.items()}, np.asarray(h_pre, np.float32)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_right_reduced_precision_answer_passes_within_a_few_unit_roundoffs(dtype):
    inputs = rounded_inputs(dtype)
    got, h_pre = emulated(inputs, dtype)
    result = reference.Reference(inputs, dtype).check(got, h_pre)
    assert result.ok, result.problem
    u = reference.UNIT_ROUNDOFF[dtype]
    assert u / 100 < result.max_rel_err < 4 * u  # what the tolerance's comment says (about 1 u)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("wrong", ["no mask", "transposed product", "a fifth off"])
def test_a_wrong_reduced_precision_answer_fails(dtype, wrong):
    inputs = rounded_inputs(dtype)
    got, h_pre = emulated(inputs, dtype)
    x, y, w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in inputs)
    if wrong == "no mask":
        got["d_w1"] = reference.forward_backward(x, y, w1, b1, w2, b2, mask=np.ones_like(h_pre, bool))["d_w1"]
    elif wrong == "transposed product":
        got["d_w2"] = got["d_w2"][::-1]
    else:
        got["d_b1"] = got["d_b1"] * 1.2
    result = reference.Reference(inputs, dtype).check(got, h_pre)
    assert not result.ok


def test_tolerances_follow_each_precisions_unit_roundoff():
    assert reference.UNIT_ROUNDOFF["bfloat16"] == 2.0**-8 and reference.UNIT_ROUNDOFF["float16"] == 2.0**-11
    for p in ("tf32", "float16", "bfloat16"):
        assert reference.TOLERANCE[p] == 16 * reference.UNIT_ROUNDOFF[p]
    assert reference.TOLERANCE["float32"] < reference.TOLERANCE["tf32"] < reference.TOLERANCE["bfloat16"]
    assert (
        reference.precision("float32", tf32=True) == "tf32" and reference.precision("bfloat16", tf32=True) == "bfloat16"
    )


def test_the_relu_bound_widens_with_the_precision():
    """TF32 rounds every product's inputs (the bound grows with m); bfloat16 rounds x @ w1 before the
    bias is added (a sign can flip only where the bias nearly cancels it)."""
    inputs64 = rounded_inputs("float64")
    near = {
        p: reference.Reference(tuple(np.asarray(a, reference.numpy_dtype(d)) for a in inputs64), p).near_zero.sum()
        for p, d in (("float32", "float32"), ("tf32", "float32"), ("bfloat16", "bfloat16"))
    }
    assert near["tf32"] > near["float32"] and near["bfloat16"] > near["float32"]


def _param(name):
    reason = frameworks.unavailable_reason(name)
    return pytest.param(name, marks=pytest.mark.skip(reason=reason) if reason else (), id=name)


@pytest.mark.parametrize("name", [_param(n) for n in frameworks.FRAMEWORKS])
def test_every_step_passes_its_own_tolerance_in_every_reduced_precision_it_has(name):
    """Eager steps of every framework at each reduced dtype it declares, at the lesson's m and nh and
    a small n (at larger n some do not: Keras's bfloat16 bias gradient on a CPU errs by 0.7 at
    n = 3000, and TensorFlow's float16 loss overflows; the run records those as failed)."""
    fw = frameworks.load(name)
    for dtype in set(fw.dtypes) & {"bfloat16", "float16"}:
        inputs = rounded_inputs(dtype, n=300, m=784, nh=50, seed=1)
        args = fw.to_device(inputs, dtype, "cpu")
        ref = reference.Reference(inputs, dtype)
        h_pre = [fw.to_numpy(t) for t in fw.mask_probe("eager")(args[0], *args[2:])]
        for step in fw.steps:
            with fw.placement("cpu"):
                out = fw.compile(step, "eager")(*args)
                fw.sync()
            got = dict(zip(reference.OUTPUTS, (np.asarray(fw.to_numpy(t), np.float32) for t in out)))
            result = ref.check(got, h_pre)
            assert result.ok, f"{name} {step} {dtype}: {result.problem}"


# ---------------------------------------------------------------- the run: GPU-only settings on a CPU


def numpy_config(tmp_path, **kw):
    return run.Config(
        out=tmp_path,
        frameworks=("numpy",),
        device="cpu",
        sizes=((300, 784, 8),),
        warmup=1,
        isolate=False,
        **SMALL_CEILINGS,
        min_samples=3,
        max_samples=3,
        budget_s=0.0,
        batch_s=0.0,
        round_s=0.0,
        **kw,
    )


def test_tf32_and_cold_cache_on_a_cpu(tmp_path):
    records = run.run(numpy_config(tmp_path, tf32s=(False, True), caches=("warm", "cold")))
    assert read(tmp_path) == records
    by = {(r.tf32, r.cache): r for r in records}
    assert set(by) == {(False, "warm"), (False, "cold"), (True, "warm"), (True, "cold")}
    for cache in ("warm", "cold"):
        assert by[False, cache].status == "ok" and by[False, cache].timer == "host clock + sync"
        assert by[True, cache].status == "skipped" and "TF32 is a GPU feature" in by[True, cache].error
    assert len(by[False, "cold"].samples_s) == 3 and by[False, "cold"].case.label.endswith(" cold")
    assert by[False, "warm"].telemetry.get("source") in ("psutil", None)


def test_a_dtype_a_framework_lacks_is_skipped_saying_which_it_has(tmp_path):
    records = run.run(numpy_config(tmp_path, dtypes=("bfloat16",)))
    assert records and all(r.status == "skipped" and "numpy has no bfloat16 steps" in r.error for r in records)


def test_cuda_graphs_are_left_out_on_a_cpu_unless_asked_for():
    pytest.importorskip("torch")
    loaded = run.load_frameworks(["torch"])
    groups = run.plan(run.Config(out=None, device="cpu", steps=("manual",)), loaded)
    assert {c.key.backend for g in groups for c in g.cases} == {"eager", "compile"}
    groups = run.plan(run.Config(out=None, device="cpu", steps=("manual",), backends=("graphs",)), loaded)
    (case,) = [c for g in groups for c in g.cases]
    assert run.prepare.skip_reason(case.fw, case.key) == "torch's graphs backend is a GPU feature"


def test_tf32_is_an_axis_of_float32_only():
    loaded = run.load_frameworks(["numpy"])
    groups = run.plan(run.Config(out=None, device="cpu", dtypes=("float32", "float64"), tf32s=(False, True)), loaded)
    assert [(g.dtype, g.tf32) for g in groups] == [("float32", False), ("float32", True), ("float64", False)]


# ---------------------------------------------------------------- the report


def make(**kw):
    base_ = dict(
        framework="torch",
        step="manual",
        backend="eager",
        device="gpu",
        n=1000,
        m=784,
        nh=50,
        dtype="float32",
        status="ok",
        run_id="r1",
        samples_s=(0.010,) * 20,
        rounds=tuple(range(20)),
    )
    base_.update(kw)
    return Record(**base_)


def test_precisions_are_compared_against_float32_per_case():
    rs = [
        make(),
        make(tf32=True, samples_s=(0.005,) * 20),
        make(dtype="bfloat16", samples_s=(0.0025,) * 20, max_rel_err=3e-3),
        make(dtype="float16", status="failed", error="loss: inf"),
        make(step="autograd"),
    ]
    pr = frames.precisions(frames.frame(rs)).set_index("precision")
    assert list(pr.index) == ["float32", "tf32", "bfloat16", "float16"]  # autograd ran in one precision only
    assert pr.loc["tf32", "speedup"] == pytest.approx(2) and pr.loc["bfloat16", "speedup"] == pytest.approx(4)
    assert pr.loc["float32", "speedup"] == 1 and np.isnan(pr.loc["float16", "speedup"])
    text = document.to_markdown(
        document.document(rs, frames.frame(rs), frames.payback(frames.frame(rs)), frames.frame(rs).iloc[:0], {})
    )
    assert "## Precisions" in text and "| torch/manual · eager | bfloat16  | 2.50" in text


def test_throttled_and_busy_cases_are_listed_under_what_to_distrust():
    rs = [
        make(telemetry={"source": "nvml", "throttled_samples": 2}),  # 10%: listed
        make(backend="compile", telemetry={"source": "nvml", "throttled_samples": 1}),  # 5%: not
        make(device="cpu", backend="graphs", telemetry={"source": "psutil", "other_cores": [0.9, 1.4]}),
        make(device="cpu", backend="jit", telemetry={"source": "psutil", "other_cores": [0.1, 0.2]}),
    ]
    found = dict(document.distrust(rs, frames.frame(rs)))
    (throttled,) = [v for k, v in found.items() if k.startswith("Throttled")]
    (busy,) = [v for k, v in found.items() if k.startswith("Busy machine")]
    assert len(throttled) == 1 and "2 of 20 samples" in throttled[0] and "eager" in throttled[0]
    assert len(busy) == 1 and "0.90 cores" in busy[0] and "graphs" in busy[0]
    plain = [make()]
    found = dict(document.distrust(plain, frames.frame(plain)))
    assert [v for k, v in found.items() if k.startswith(("Throttled", "Busy"))] == [None, None]  # not recorded


def test_what_to_distrust_names_the_precision_and_cache_of_a_case():
    rs = [
        make(samples_s=(0.01, 0.02) * 10),
        make(cache="cold", samples_s=(0.01, 0.03) * 10),
        make(tf32=True, status="skipped", error="TF32 is a GPU feature"),
    ]
    found = dict(document.distrust(rs, frames.frame(rs)))
    noisy = found["Noisy cases (IQR over 10% of the median)"]
    assert sorted(line.split(":")[0] for line in noisy) == [
        "gpu, n=1000, m=784, nh=50, float32",
        "gpu, n=1000, m=784, nh=50, float32, cold cache",
    ]
    (skipped,) = found["Skipped cases"]
    assert "float32+tf32: torch/manual/eager: TF32 is a GPU feature" in skipped
    assert found["TF32 (reduced-precision float32 matmuls)"] == []  # skipped: nothing ran in TF32
    rs.append(make(tf32=True, backend="compile"))
    (tf32,) = dict(document.distrust(rs, frames.frame(rs)))["TF32 (reduced-precision float32 matmuls)"]
    assert "1 case(s) timed" in tf32


def test_a_long_distrust_list_is_cut_and_counted():
    rs = [make(n=n, samples_s=(0.01, 0.02) * 10) for n in range(100, 100 + 3 * document.MAX_DISTRUST_ITEMS)]
    text = document.to_markdown(
        document.document(rs, frames.frame(rs), frames.payback(frames.frame(rs)), frames.frame(rs).iloc[:0], {})
    )
    assert f"**Noisy cases (IQR over 10% of the median)**: {3 * document.MAX_DISTRUST_ITEMS}" in text
    assert f"... and {2 * document.MAX_DISTRUST_ITEMS} more" in text


def test_groups_run_in_precision_order_warm_before_cold():
    rs = [
        make(dtype="bfloat16"),
        make(cache="cold"),
        make(dtype="float16"),
        make(tf32=True),
        make(),
        make(dtype="float64"),
        make(n=500, dtype="bfloat16"),
    ]
    titles = [frames.title(key) for key, _ in frames.groups(frames.frame(rs))]
    assert [t.split(", ", 1)[1] for t in titles] == [
        "n=500, m=784, nh=50, bfloat16",
        "n=1000, m=784, nh=50, float64",
        "n=1000, m=784, nh=50, float32",
        "n=1000, m=784, nh=50, float32, cold cache",
        "n=1000, m=784, nh=50, float32+tf32",
        "n=1000, m=784, nh=50, bfloat16",
        "n=1000, m=784, nh=50, float16",
    ]


def test_a_case_that_failed_its_check_keeps_its_place_in_the_grid():
    # a failed case is written when it is checked, ahead of the group's timed cases
    rs = [
        make(step="module", status="failed", error="wrong answer", samples_s=()),
        make(step="manual"),
        make(step="manual", backend="compile"),
        make(step="autograd"),
        make(step="module", backend="compile"),
    ]
    (grid,) = document.comparison_tables(frames.frame(rs)).values()
    assert list(grid.index) == ["torch/manual", "torch/autograd", "torch/module"]
    assert (
        list(grid.columns) == ["eager", "compile", document.RUNNER_UP] and grid.loc["torch/module", "eager"] == "failed"
    )


def test_host_time_and_dispatch_appear_beside_the_device_time():
    rs = [make(timer="CUDA events", host_samples_s=(0.012,) * 20, dispatch_s=0.009)]
    df = frames.frame(rs)
    assert df.host_median_ms[0] == pytest.approx(12) and df.dispatch_ms[0] == pytest.approx(9)
    table = document.detail_table(df, lambda row: row)
    assert table["host-clock ms (gap)"].iloc[0] == "12.0 (+2.0)" and table["dispatch ms"].iloc[0] == "9.0"


def test_the_launch_plot_needs_host_or_dispatch_times_at_two_sizes(tmp_path):
    assert isinstance(plots.launch(frames.frame([make(n=1000), make(n=10000)])), str)
    rs = [
        make(n=n, samples_s=(t,) * 20, host_samples_s=(t + 4e-4,) * 20, dispatch_s=3e-4, timer="CUDA events", backend=b)
        for n, t in ((1000, 5e-4), (10000, 6e-4), (100000, 3e-3))
        for b in ("eager", "graphs")
    ]
    fig = plots.launch(plots.inert(frames.frame(rs)))
    assert not isinstance(fig, str)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert len(ax.lines) == 6 and "manual step, float32" in ax.get_title()
    png, svg = plots.save(fig, tmp_path / "launch")
    assert png.stat().st_size > 0 and "Launch overhead" in svg.read_text()


class FakeTimed:
    """A case living in `block`'s process: takes of fixed times; finish() says on which thread it ran."""

    def __init__(self, name, barrier=None):
        self.rec = Record(
            framework=name,
            step="manual",
            backend="eager",
            device="cpu",
            n=10,
            m=784,
            nh=8,
            dtype="float32",
            status="ok",
        )
        self.per_call_s, self.barrier = 0.001, barrier

    def take(self, count):
        return timing.Taken((0.0,) * count, (0.001,) * count, ())

    def finish(self, rec, counters):
        if self.barrier is not None:
            self.barrier.wait(timeout=10)  # returns only once the other process's finish is under way too
        return dataclasses.replace(rec, note=threading.current_thread().name)


def test_without_a_batch_each_process_finishes_its_cases_while_the_others_finish_theirs():
    """The gate times no batch: each framework's counting pass runs beside the others'. With a batch
    (a timed pass) the cases finish one by one, on the timing thread, in order."""
    barrier = threading.Barrier(2)
    cases = [FakeTimed("tensorflow", barrier), FakeTimed("torch", barrier), FakeTimed("tensorflow")]
    config = run.Config(out=None, min_samples=3, max_samples=3, budget_s=100.0, round_s=0.0, batch_s=None)
    got = measure.time_cases(cases, config, blocks=["tf", "torch", "tf"])
    assert [r.framework for r in got] == ["tensorflow", "torch", "tensorflow"]  # in the cases' order
    assert got[0].note != got[1].note and got[0].note == got[2].note != threading.current_thread().name
    assert all(len(r.samples_s) == 3 for r in got)
    timed = [FakeTimed("tensorflow"), FakeTimed("torch")]
    got = measure.time_cases(timed, dataclasses.replace(config, batch_s=0.0), blocks=["tf", "torch"])
    assert {r.note for r in got} == {threading.current_thread().name}


def test_a_ctrl_c_while_the_processes_finish_stops_each_after_the_case_it_is_on():
    """Finishing at once must not make a Ctrl-C wait for every framework's remaining counting passes:
    each process ends the case it is on and takes no other."""
    counting, raised, finished = threading.Event(), threading.Event(), []

    class Interrupted(FakeTimed):
        def finish(self, rec, counters):
            counting.wait(10)  # the other process is on its first case
            raised.set()
            raise KeyboardInterrupt

    class Counting(FakeTimed):
        def finish(self, rec, counters):
            counting.set()
            raised.wait(10)
            time.sleep(0.5)  # still counting when the Ctrl-C reaches the caller
            finished.append(rec)
            return rec

    cases = [Interrupted("tensorflow"), Counting("torch"), Counting("torch"), Counting("torch")]
    config = run.Config(out=None, min_samples=3, max_samples=3, budget_s=100.0, round_s=0.0, batch_s=None)
    with pytest.raises(KeyboardInterrupt):
        measure.time_cases(cases, config, blocks=["tf", "torch", "torch", "torch"])
    assert len(finished) == 1
    assert measure.time_cases([], config, blocks=[]) == []
