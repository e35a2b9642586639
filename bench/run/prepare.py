"""One case before it is timed: its memory estimate, trace, first call, correctness check against
the float64 reference and warm-up, with its peak memory meanwhile."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench import counters, fingerprint, timing
from bench.frameworks.base import Framework
from bench.memory import RssPeak
from bench.records import CaseKey, Record
from bench.run.plan import Config
from bench.text import one_line
from kernels import cost, models, reference


def free_bytes(device: str) -> int | None:
    """Free memory on `device` now, or None when it cannot be told."""
    if device == "cpu":
        return fingerprint.memory_bytes()[1]
    gpus = fingerprint.gpus()
    return gpus[0].get("memory_free_bytes") if gpus else None


@dataclass
class Live:
    """A case that passed its check and is warm, waiting to be timed."""

    rec: Record
    call: Callable[[], Any]  # the step's outputs, under the case's device placement
    sync: Callable[[], None]
    traces: Callable[[], int | None]  # how often the compiled step has traced so far (None: eager)
    traces_after_first: int | None
    per_call_s: float
    timer: timing.Timer | None = None  # what times each call (bench/timing.py HOST where None)
    flush: Callable[[], None] | None = None  # run before each timed call: a cold-cache sample
    count: Callable[[], dict] | None = None  # the case's counters (bench/counters.py), an untimed pass
    batch_s: float | None = 0.0  # how long its batch of calls with one sync should take (None: no batch)

    def take(self, count: int) -> timing.Taken:
        """`count` timed calls (bench/timing.py taker)."""
        return timing.taker(self.call, self.sync, self.timer, self.flush)(count)

    def finish(self, rec: Record, counters: bool) -> Record:
        """The final Record from `rec` (the case with its samples): a batch of calls with one sync
        for the dispatch time (none when batch_s is None: the gate reads no dispatch time), the trace
        count once more to catch a retrace, and the counters (an untimed pass) when `counters`."""
        try:
            if self.batch_s is not None:
                calls = max(3, min(100, int(self.batch_s / float(np.median(rec.samples_s)))))
                batch = timing.batched(self.call, self.sync, calls)
                rec = replace(rec, batch_calls=batch.calls, batch_s=batch.batch_s, dispatch_s=batch.dispatch_s)
            count = self.traces()  # None exactly when traces_after_first is (an eager step)
            rec = replace(rec, tracing_count=count, retraced=None if count is None else count > self.traces_after_first)  # type: ignore[operator]
        except Exception as e:
            return replace(self.rec, status="failed", error=one_line(e))
        if rec.status == "ok" and counters and self.count:
            rec = replace(rec, counters=self.count())
        return rec


def skip_reason(fw: Framework, key: CaseKey, flush: Callable[[], None] | None = None) -> str | None:
    """Why the case `key` cannot run here (it is recorded as skipped, with this), or None; `flush`
    is the device's cache flush, for a cold case (None where the framework has none)."""
    if key.backend in fw.gpu_backends and key.device != "gpu":
        return f"{fw.name}'s {key.backend} backend is a GPU feature"
    if key.tf32 and key.device != "gpu":
        return f"TF32 is a GPU feature: on the {key.device} this is the float32 case"
    if key.dtype not in fw.dtypes:
        return f"{fw.name} has no {key.dtype} steps here (it has {', '.join(fw.dtypes)})"
    if key.cache == "cold" and flush is None:
        return f"{fw.name} cannot flush the {key.device}'s cache here"
    if models.is_user(key.model):
        if key.step in USER_MODEL_SKIPS:
            return f"{fw.name}'s {key.step} step {USER_MODEL_SKIPS[key.step]}; a user's model runs the others"
        lacking = {op: layer for op, layer in models.needs(key.model).items() if not hasattr(fw.ops, op)}
        if lacking:
            return f"{fw.name}'s ops lack " + ", ".join(f"{op} (layer {layer})" for op, layer in lacking.items())
    return None


# Steps that build the lesson's own layers rather than a model's (kernels/models.py user models).
USER_MODEL_SKIPS = {"keras": "builds Keras Dense layers", "broadcast": "is the lesson's weight gradient for Lin layers"}


def prepare_case(
    fw: Framework,
    key: CaseKey,
    ref: reference.Reference | reference.Evaluated,
    args: tuple[Any, ...],
    config: Config,
    common: dict[str, Any],
    free: Callable[[str], int | None] | None = None,
    flush: Callable[[], None] | None = None,
) -> Record | Live:
    """Record (skipped or failed) or Live (checked and warmed up) of the case `key`. ref: the
    float64 reference.Reference of the case's inputs; args: those inputs on the key's device;
    common: the Record fields every case of the run shares; free(device): free bytes, or None
    where unknown; flush: run before each timed call (a cold cache)."""
    n, m, nh, step, device, backend = key.n, key.m, key.nh, key.step, key.device, key.backend
    itemsize = ref.inputs[0].dtype.itemsize
    widths = models.widths(key.model, m, nh, key.loss_fn)
    estimate = cost.memory_bytes(step, n, m, nh, itemsize, widths)
    rec = Record(
        **key.asdict(),
        status="ok",
        parameters=models.parameters(widths),
        flops=cost.flops(step, n, m, nh, widths),
        min_bytes=cost.min_bytes(step, n, m, nh, itemsize, widths),
        memory_estimate_bytes=estimate,
        **common,
    )
    available = (free or free_bytes)(device)
    if available is not None and estimate > config.memory_fraction * available:
        return replace(
            rec,
            status="skipped",
            error=(
                f"needs about {estimate / 2**30:.1f} GiB, over the budget of "
                f"{config.memory_fraction * available / 2**30:.1f} GiB "
                f"({config.memory_fraction:.0%} of {device}'s free memory)"
            ),
        )
    try:
        spec = models.spec(key.model)
        fn = fw.compile(step, backend, spec)

        def call():
            with fw.placement(device):
                return fn(*args)

        traced = fw.tracing_count(fn) is not None  # eager has nothing to trace
        rss = RssPeak()
        with rss, fw.placement(device):
            fw.reset_peak(device)
            first = timing.first_call(call, fw.sync, trace=(lambda: fw.trace(fn, args)) if traced else None)
            got = dict(zip(ref.names, (fw.to_numpy(t) for t in first.result)))
            h_pre = None if spec else [fw.to_numpy(t) for t in fw.mask_probe(backend)(args[0], *args[2:])]
            check = ref.check(got, h_pre)
            rec = replace(
                rec,
                loss=float(got["loss"]),
                max_rel_err=check.max_rel_err,
                rel_errs=check.errors,
                tolerance=check.tolerance,
                mask_flips=check.mask_flips,
                trace_s=first.trace_s,
                first_call_s=first.first_call_s,
            )
            if not check.ok:
                return replace(rec, status="failed", error=f"wrong answer: {check.problem}", first_call_s=None)
            warm = timing.steady(
                call, fw.sync, warmup=0, min_samples=config.warmup, max_samples=config.warmup, budget_s=0.0
            ).samples_s
            device_peak = fw.peak_bytes(device)
        peak, method = (
            (device_peak, f"{fw.name} allocator peak") if device_peak is not None else (rss.peak_bytes, rss.method)
        )
        timer = fw.timer(device)
        rec = replace(
            rec,
            warmup_s=warm,
            peak_bytes=peak,
            peak_method=method and f"{method}, first call and warm-up",
            timer=timer.name,
        )
        per_call = float(np.median(warm)) if warm else first.first_call_s
        return Live(
            rec,
            call,
            fw.sync,
            lambda: fw.tracing_count(fn),
            fw.tracing_count(fn),
            per_call,
            timer,
            flush,
            count=lambda: counters.count(fw, key, fn, call, args),
            batch_s=config.batch_s,
        )
    except Exception as e:  # an OOM or a compile error fails this case; the suite goes on
        return replace(rec, status="failed", error=one_line(e))
