"""The grid: every framework x device x size x dtype x step x backend is a case. Each case is
checked against the float64 reference and warmed up; then the cases of one device, size and
dtype are timed together in interleaved rounds, and each record is appended as soon as it ends."""
import datetime
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench import backends, env, timing
from bench.memory import RssPeak
from bench.data import make_problem
from bench.records import Record, append, read, repair
from kernels import cost, reference

DEFAULT_SIZE = (50_000, 784, 50)   # the lesson's MNIST training set and hidden width
QUICK_SIZE = (5_000, 784, 50)
# The default suite runs these steps at a smaller n to stay within its time budget (the broadcast
# step moves an n x m x nh tensor: 7.8 GB at the default size); records and the report say so.
DEFAULT_STEP_N = {"broadcast": 2_000}
DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A run was asked for something that does not exist here; str() is one line."""


@dataclass(frozen=True)
class Config:
    out: Path
    frameworks: tuple = ("tensorflow",)
    steps: tuple | None = None        # None: every step each framework has
    backends: tuple | None = None
    device: str = "all"               # cpu, gpu or all (every device present)
    sizes: tuple = (DEFAULT_SIZE,)
    dtypes: tuple = ("float32",)
    data: str | None = None
    seed: int = 0
    step_n: dict = field(default_factory=lambda: dict(DEFAULT_STEP_N))
    warmup: int = 3
    min_samples: int = 10
    max_samples: int = 1000
    target_ci: float = 0.02           # stop sampling a case once its median's 95% CI is within +-2%
    budget_s: float = 4.0             # or once it has spent this long in timed calls
    round_s: float = 0.05             # timed calls per case per round: about this long
    batch_s: float = 0.2              # the batched (one sync) measurement: about this long
    memory_fraction: float = 0.5      # of the device's free memory a case may need
    resume: bool = False              # skip the cases already in out/records.jsonl
    run_id: str = field(default_factory=lambda: new_run_id())


def load_frameworks(names):
    """{name: adapter}; ConfigError naming the framework and why it cannot load."""
    adapters = {}
    for name in names:
        try:
            adapters[name] = backends.load(name)
        except backends.FrameworkUnavailable as e:
            raise ConfigError(f"framework {name}: {e}") from None
    return adapters


def plan(config, adapters):
    """[(adapter, device, step, backend)] for the config; ConfigError for names that exist nowhere."""
    for kind, asked in (("step", config.steps), ("backend", config.backends)):
        registry = "STEPS" if kind == "step" else "BACKENDS"
        known = sorted({k for fw in adapters.values() for k in getattr(fw, registry)})
        for name in asked or ():
            if name not in known:
                raise ConfigError(f"unknown {kind} {name!r} (available: {', '.join(known)})")
    cases = []
    for fw in adapters.values():
        present = fw.devices()
        if config.device == "all":
            devices = present
        elif config.device in present:
            devices = [config.device]
        else:
            raise ConfigError(f"device {config.device!r} is not available to {fw.NAME} here (present: {', '.join(present)})")
        for device in devices:
            for step in config.steps or fw.STEPS:
                for backend in config.backends or fw.BACKENDS:
                    if step in fw.STEPS and backend in fw.BACKENDS:
                        cases.append((fw, device, step, backend))
    return cases


def free_bytes(device):
    """Free memory on `device` now, or None when it cannot be told."""
    if device == "cpu":
        return env.memory_bytes()[1]
    gpus = env.gpus()
    return gpus[0].get("memory_free_bytes") if gpus else None


def ceilings(fw, device):
    """This device's measured ceilings: float32 GEMM GFLOP/s and copy GB/s (the best of the samples:
    a ceiling is what the device can reach)."""
    k = 2048 if device == "cpu" else 8192
    count = 2 ** 25 if device == "cpu" else 2 ** 28   # 128 MiB / 1 GiB of float32
    rng = np.random.default_rng(0)
    a, b = fw.to_device((rng.random((k, k), np.float32), rng.random((k, k), np.float32)), "float32", device)
    (v,) = fw.to_device((np.ones(count, np.float32),), "float32", device)
    with fw.placement(device):
        gemm = timing.steady(lambda: fw.gemm(a, b), fw.sync, warmup=2, min_samples=5, max_samples=20, budget_s=0.5)
        copy = timing.steady(lambda: fw.copy(v), fw.sync, warmup=2, min_samples=5, max_samples=20, budget_s=0.5)
    return {"gemm_gflops": 2 * k ** 3 / min(gemm.samples_s) / 1e9,
            "copy_gbps": 2 * 4 * count / min(copy.samples_s) / 1e9,
            "gemm_size": k, "copy_bytes": 4 * count, "measured_with": fw.NAME}


def _one_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


@dataclass
class Live:
    """A case that passed its check and is warm, waiting to be timed."""
    rec: Record
    call: object          # () -> outputs, under the case's device placement
    sync: object
    traces: object        # () -> how often the compiled step has traced so far (None: eager)
    traces_after_first: int | None
    per_call_s: float


def prepare_case(fw, device, step, backend, inputs, args, config, common, ref=None):
    """Record (skipped or failed) or Live (checked and warmed up): the memory estimate, trace,
    first call, correctness check and warm-up of one case, with its peak memory meanwhile.
    ref: the float64 Reference of `inputs`, shared by the cases that see them (made here if None)."""
    x, _, w1, _, _, _ = inputs
    (n, m), nh, dtype = x.shape, w1.shape[1], str(x.dtype)
    itemsize = x.dtype.itemsize
    rec = Record(framework=fw.NAME, step=step, backend=backend, device=device, n=n, m=m, nh=nh, dtype=dtype,
                 status="ok", flops=cost.flops(step, n, m, nh), min_bytes=cost.min_bytes(step, n, m, nh, itemsize),
                 memory_estimate_bytes=cost.memory_bytes(step, n, m, nh, itemsize), **common)
    free = free_bytes(device)
    if free is not None and rec.memory_estimate_bytes > config.memory_fraction * free:
        return replace(rec, status="skipped", error=(
            f"needs about {rec.memory_estimate_bytes / 2**30:.1f} GiB, over the budget of "
            f"{config.memory_fraction * free / 2**30:.1f} GiB ({config.memory_fraction:.0%} of {device}'s free memory)"))
    try:
        fn = fw.BACKENDS[backend](fw.STEPS[step])

        def call():
            with fw.placement(device):
                return fn(*args)

        traced = fw.tracing_count(fn) is not None   # eager has nothing to trace
        rss = RssPeak()
        with rss, fw.placement(device):
            fw.reset_peak(device)
            first = timing.first_call(call, fw.sync, trace=(lambda: fw.trace(fn, args)) if traced else None)
            got = dict(zip(reference.OUTPUTS, (fw.to_numpy(t) for t in first.result)))
            h_pre = fw.to_numpy(fw.hidden_pre(backend)(args[0], args[2], args[3]))
            check = (ref or reference.Reference(inputs, dtype)).check(got, h_pre)
            rec = replace(rec, loss=float(got["loss"]), max_rel_err=check.max_rel_err, rel_errs=check.errors,
                          tolerance=check.tolerance, mask_flips=check.mask_flips,
                          trace_s=first.trace_s, first_call_s=first.first_call_s)
            if not check.ok:
                return replace(rec, status="failed", error=f"wrong answer: {check.problem}", first_call_s=None)
            warm = timing.steady(call, fw.sync, warmup=0, min_samples=config.warmup, max_samples=config.warmup,
                                 budget_s=0.0).samples_s
            device_peak = fw.peak_bytes(device)
        peak, method = (device_peak, f"{fw.NAME} allocator peak") if device_peak is not None else (rss.peak_bytes, rss.method)
        rec = replace(rec, warmup_s=warm, peak_bytes=peak, peak_method=method and f"{method}, first call and warm-up")
        per_call = float(np.median(warm)) if warm else first.first_call_s
        return Live(rec, call, fw.sync, lambda: fw.tracing_count(fn), fw.tracing_count(fn), per_call)
    except Exception as e:  # an OOM or a compile error fails this case; the suite goes on
        return replace(rec, status="failed", error=_one_line(e))


def run_case(fw, device, step, backend, inputs, args, config, common):
    """One case end to end, timed on its own: a Record."""
    live = prepare_case(fw, device, step, backend, inputs, args, config, common)
    return live if isinstance(live, Record) else time_cases([live], config)[0]


def time_cases(lives, config, on_round=None):
    """Time checked, warm cases together in interleaved rounds; their finished Records."""
    sampled = timing.interleaved({i: (lv.call, lv.sync) for i, lv in enumerate(lives)}, on_round=on_round,
                                 target_ci=config.target_ci, min_samples=config.min_samples,
                                 max_samples=config.max_samples, budget_s=config.budget_s, round_s=config.round_s,
                                 per_call_s={i: lv.per_call_s for i, lv in enumerate(lives)})
    finished = []
    for i, lv in enumerate(lives):
        s = sampled[i]
        try:
            calls = max(3, min(100, int(config.batch_s / float(np.median(s.samples_s)))))
            batch = timing.batched(lv.call, lv.sync, calls)
            count = lv.traces()
            rec = replace(lv.rec, samples_s=s.samples_s, rounds=s.rounds, stop_reason=s.stop_reason,
                          batch_calls=batch.calls, batch_s=batch.batch_s, dispatch_s=batch.dispatch_s,
                          tracing_count=count,
                          retraced=None if count is None else count > lv.traces_after_first)
        except Exception as e:
            rec = replace(lv.rec, status="failed", error=_one_line(e))
        finished.append(rec)
    return finished


def new_run_id():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class Progress:
    """One line per event on stderr, with the case count and an ETA from the pace so far."""

    def __init__(self, total, write):
        self.total, self.done, self.write = total, 0, write
        self.start = time.monotonic()

    def eta(self):
        if not self.done or self.done >= self.total:
            return ""
        left = (time.monotonic() - self.start) / self.done * (self.total - self.done)
        return f", ETA {left:.0f} s"

    def rounds(self, lives, config, every_s=5.0):
        """An on_round callback: a line at most every `every_s` with the rounds done, the cases
        settled, and an ETA bounded by the sampling budgets still open."""
        last = [time.monotonic()]

        def on_round(r, stopped):
            if time.monotonic() - last[0] < every_s:
                return
            last[0] = time.monotonic()
            open_cases = len(lives) - len(stopped)
            self.write(f"[{self.done}/{self.total} +{time.monotonic() - self.start:.0f}s] timing: round {r + 1}, {len(stopped)} of {len(lives)} cases "
                       f"settled, at most ~{open_cases * config.budget_s:.0f} s to go")
        return on_round

    def __call__(self, phase, what, finished=0):
        self.done += finished
        self.write(f"[{self.done}/{self.total} +{time.monotonic() - self.start:.0f}s{self.eta()}] {phase}: {what}")


class DeferredInterrupt:
    """Ctrl-C during a run stops it at the next case or round boundary rather than inside a
    framework call; a second Ctrl-C stops at once. check() then raises KeyboardInterrupt or, with
    `exit_message`, prints it and ends the process at once: unwinding the stack through live
    TensorFlow objects after an interrupt aborted the process now and then ("free(): invalid
    pointer", SIGABRT), and every finished record is already on disk. Main thread only."""

    def __init__(self, write, exit_message=None):
        self.write, self.exit_message, self.asked = write, exit_message, False

    def _handler(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        self.write("interrupt: stopping at the next case or round (Ctrl-C again to stop now)")

    def check(self):
        if not self.asked:
            return
        if self.exit_message:
            self.write(self.exit_message)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise KeyboardInterrupt

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def run(config, progress=None, exit_on_interrupt=False):
    """Run the grid; returns the records, each also appended to config.out/records.jsonl as it ends.
    exit_on_interrupt: the command line's Ctrl-C ends the process (exit 130) at the next case or round."""
    write = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    adapters = load_frameworks(config.frameworks)
    for fw in adapters.values():
        fw.configure_gpus()
    cases = plan(config, adapters)
    for fw in adapters.values():
        fw.set_tf32(False)   # float32 matmuls stay float32 on Ampere+ GPUs, for the check and the timing
    out_file = Path(config.out) / "records.jsonl"
    repair(out_file)
    done = {r.case for r in read(out_file)} if config.resume and out_file.exists() else set()
    problems = {}

    def problem(n, m):
        if (n, m) not in problems:
            problems[n, m] = make_problem(n, m, data=config.data, seed=config.seed)
        return problems[n, m]

    fingerprint = env.fingerprint({name: fw.info() for name, fw in adapters.items()},
                                  data_source=problem(*config.sizes[0][:2]).source,
                                  seeds={"data": config.seed, "params": config.seed})
    device_ceilings, records = {}, []
    devices = list(dict.fromkeys(device for _, device, _, _ in cases))
    progress = Progress(len(cases) * len(config.sizes) * len(config.dtypes), write)

    def finish(rec):
        append(out_file, rec)
        records.append(rec)
        progress("done", _result_line(rec), finished=1)

    kept = f"interrupted: the cases that finished are kept in {out_file}" if exit_on_interrupt else None
    with DeferredInterrupt(write, kept) as stop:
        for n, m, nh in config.sizes:
            for dtype in config.dtypes:
                for device in devices:
                    lives, placed, refs = [], {}, {}
                    for fw, case_device, step, backend in cases:
                        if case_device != device:
                            continue
                        stop.check()
                        n_step = min(n, config.step_n.get(step, n))
                        if (fw.NAME, step, backend, device, n_step, m, nh, dtype) in done:
                            progress("resume", f"{fw.NAME}/{step}/{backend}/{device} n={n_step} {dtype} already recorded",
                                     finished=1)
                            continue
                        if (fw.NAME, device) not in device_ceilings:
                            progress("ceilings", f"measuring {device} GEMM and copy with {fw.NAME}")
                            device_ceilings[fw.NAME, device] = ceilings(fw, device)
                        p = problem(n_step, m)
                        if (n_step, dtype) not in refs:   # the inputs and their float64 oracle, once per group
                            refs[n_step, dtype] = reference.Reference(tuple(
                                a.astype(dtype) for a in (p.x, p.y, *reference.init_params(m, nh, config.seed))), dtype)
                        ref = refs[n_step, dtype]
                        inputs = ref.inputs
                        where = (fw.NAME, n_step, dtype)
                        if where not in placed:
                            placed[where] = fw.to_device(inputs, dtype, device)
                        note = f"{step} ran at n={n_step} instead of {n} (default suite limit)" if n_step != n else None
                        common = dict(run_id=config.run_id, data=p.source, note=note, tf32=False,
                                      ceilings=device_ceilings[fw.NAME, device], env=fingerprint)
                        progress("check", f"{fw.NAME}/{step}/{backend}/{device} n={n_step} m={m} nh={nh} {dtype}")
                        live = prepare_case(fw, device, step, backend, inputs, placed[where], config, common, ref)
                        if isinstance(live, Record):
                            finish(live)
                        else:
                            lives.append(live)
                    if lives:
                        progress("timing", f"{len(lives)} cases on {device} at n={n} nh={nh} {dtype} in interleaved rounds")
                        report_round = progress.rounds(lives, config)
                        for rec in time_cases(lives, config, lambda r, stopped: (stop.check(), report_round(r, stopped))):
                            finish(rec)
    return records


def _result_line(rec):
    if rec.status == "ok":
        lo, hi = rec.median_ci_s
        return (f"{rec.label}: median {rec.median_s * 1e3:.3g} ms [95% CI {lo * 1e3:.3g}, {hi * 1e3:.3g}] over "
                f"{len(rec.samples_s)} samples ({rec.stop_reason}), max rel err {rec.max_rel_err:.1e}")
    return f"{rec.label}: {rec.status.upper()}: {rec.error}"
