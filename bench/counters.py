"""What a case executes, counted exactly: the ops (or kernels) a step runs, by type, what the
compiler made of it, the FLOPs and bytes where the framework or compiler reports them, and the
retraces; the same on any machine for the same code, where times are not. Taken in an untimed pass
after a case's timing, through the framework contract (bench/frameworks/base.py: profile,
compiled, flops); compared exactly between runs (changes()).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.frameworks.base import Framework, OpTime
    from bench.records import CaseKey

from bench.text import one_line  # noqa: E402  (after the TYPE_CHECKING block)

STEPS = 2  # steps profiled: the ops of a profile of none (the sync alone) taken from it, over STEPS
PROFILED = f"'s profiler: what ran, over {STEPS} steps"  # ops_source's end where the ops are what a profiler saw


def per_step(empty: dict[str, OpTime], profiled: dict[str, OpTime], steps: int) -> tuple[dict[str, int], list[str]]:
    """({op type: executions a step}, the types whose count is not a whole number a step: a
    profiler that samples them, or work that is not the same every step)."""
    exact, inexact = {}, []
    for op, t in profiled.items():
        n = t.count - (empty[op].count if op in empty else 0)
        if n % steps:
            inexact.append(op)
        elif n:
            exact[op] = n // steps
    return dict(sorted(exact.items())), sorted(inexact)


def _fresh_call(fw: Framework, fn: Callable, key: CaseKey, args: Sequence[Any]) -> Callable[[], Any] | None:
    """A call of `fn` made anew (Framework.fresh), once called (its trace kept out of the
    profile); None where the framework has nothing to make anew."""
    fresh = fw.fresh(fn, key.backend)
    if fresh is fn:
        return None

    def call() -> Any:
        with fw.placement(key.device):
            return fresh(*args)

    call()
    fw.sync()
    return call


def count(fw: Framework, key: CaseKey, fn: Callable, call: Callable[[], Any], args: Sequence[Any]) -> dict[str, Any]:
    """The counters of the case `key` (its compiled step `fn`, `call` running it on `args`):

    ops          {op type: executions a step}: the compiler's instructions where a compiler
                 made the step (XLA: its optimized module), else what the profiler saw run
                 (TensorFlow's eager ops or graph executor's ops after Grappler, PyTorch's ATen
                 ops, JAX's dispatched ops, the lesson's ops namespace)
    ops_source   which of those
    kernels      {kernel: launches a step} on a GPU
    fusions      fusion instructions of a compiled module
    flops, bytes, flops_source   of what executes, where the framework or compiler reports them
    traced_flops, traced_flops_source   a graph's FLOPs before its optimiser (TensorFlow's
                 tf.function): what the trace asked for, which Grappler or XLA may have removed
    retraces     traces or compiles during the pass (after warm-up and timing: should be 0)
    absent       {counter: why it is not here}
    """
    out: dict[str, Any] = {}
    absent: dict[str, str] = {}
    before = fw.tracing_count(fn)
    empty, profiled = _profiles(fw, fn, key, call, args, absent)
    after = fw.tracing_count(fn)
    counted, inexact = per_step(empty, profiled, STEPS)
    kernels = {op[len("kernel:") :]: n for op, n in counted.items() if op.startswith("kernel:")}
    ran = {op: n for op, n in counted.items() if not op.startswith(("kernel:", "xla:"))}
    try:
        compiled = fw.compiled(fn, args, key.backend)
    except Exception as e:  # noqa: BLE001
        compiled, absent["compiled"] = {}, one_line(e)
    if compiled.get("ops"):
        out.update(
            ops=compiled["ops"],
            ops_source=compiled.get("source", "the compiled module"),
            fusions=compiled.get("fusions", 0),
        )
    elif profiled or "ops" not in absent:
        out.update(ops=ran, ops_source=fw.name + PROFILED)
    if kernels:
        out["kernels"] = kernels
    elif key.device == "gpu" and "ops" not in absent:
        absent["kernels"] = "the profiler saw no kernel"
    inexact = [op for op in inexact if not op.startswith("xla:")]  # thunks are sampled: counted from the module
    if inexact:
        absent["inexact"] = f"not counted, not a whole number a step: {', '.join(inexact[:10])}"
    out.update(_work(fw, fn, key, args, compiled, absent))
    if before is not None and after is not None:
        out["retraces"] = after - before
    out["absent"] = absent
    return out


def _profiles(
    fw: Framework, fn: Callable, key: CaseKey, call: Callable[[], Any], args: Sequence[Any], absent: dict[str, str]
) -> tuple[dict, dict]:
    """(a profile of no step, a profile of STEPS steps) of the case; empty where there is no profiler
    (absent says why)."""
    with tempfile.TemporaryDirectory(prefix="bench-count-") as tmp:
        try:
            profiled_call = _fresh_call(fw, fn, key, args) or call
            return (
                fw.profile(profiled_call, 0, key.device, Path(tmp) / "empty"),
                fw.profile(profiled_call, STEPS, key.device, Path(tmp) / "steps"),
            )
        except Exception as e:  # noqa: BLE001 - no profiler here, a profiler that failed: said, not fatal
            absent["ops"] = one_line(e)
            return {}, {}


def _work(
    fw: Framework, fn: Callable, key: CaseKey, args: Sequence[Any], compiled: dict[str, Any], absent: dict[str, str]
) -> dict[str, Any]:
    """The FLOPs and bytes the framework or its compiler reports for a step (absent says which it does not)."""
    out: dict[str, Any] = {}
    flops = None
    try:
        flops = fw.flops(fn, args, key.backend)
    except Exception as e:  # noqa: BLE001
        absent["flops"] = one_line(e)
    if compiled.get("flops") is not None:  # the compiled module's own count: what executes
        if flops is not None and not _executed(flops):
            out.update(traced_flops=flops[0], traced_flops_source=flops[1])
        flops = (compiled["flops"], compiled.get("flops_source") or compiled.get("source", "the compiler"))
    elif flops is not None and not _executed(flops):
        out.update(traced_flops=flops[0], traced_flops_source=flops[1])
        absent["flops"] = (
            f"{fw.name}'s {key.backend} backend reports only the traced graph's FLOPs, before its optimiser "
            "(kept as traced_flops: reported when it changes, not counted as work)"
        )
        flops = None
    if flops is not None and math.isfinite(flops[0]):
        out.update(flops=flops[0], flops_source=flops[1])
    else:
        absent.setdefault(
            "flops",
            f"{fw.name} reports no FLOPs for its {key.backend} backend (the record's analytic flops stand beside)",
        )
    if compiled.get("bytes") is not None:
        out["bytes"] = compiled["bytes"]
    else:
        absent["bytes"] = f"{fw.name} reports no bytes accessed for its {key.backend} backend"
    return out


def _executed(flops: tuple) -> bool:
    """Whether a framework's FLOP count (value, source[, executed]) is of what executes; a count
    of a graph before its optimiser says False as its third element."""
    return len(flops) < 3 or bool(flops[2])


def total(ops: dict[str, int]) -> int:
    return sum(ops.values())


def changes(base: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """What differs between two cases' counters, exactly, most telling first: ops by type (and
    their total), kernels, fusions, retraces, FLOPs and bytes; [] when they agree or either lacks
    counters (an older record)."""
    if not base or not candidate:
        return []
    out = []
    for field, unit in (("ops", "ops"), ("kernels", "kernels")):
        a, b = base.get(field) or {}, candidate.get(field) or {}
        if not a or not b or a == b:
            continue
        if total(a) != total(b):
            out.append(f"{unit} {total(a)} -> {total(b)} a step")
        moved = sorted(
            (k for k in set(a) | set(b) if a.get(k, 0) != b.get(k, 0)),
            key=lambda k: (-abs(b.get(k, 0) - a.get(k, 0)), k),
        )
        out += [f"{k} {a.get(k, 0)} -> {b.get(k, 0)}" for k in moved[:8]]
        if len(moved) > 8:
            out.append(f"and {len(moved) - 8} more {unit} types")
    for field in ("fusions", "retraces"):
        if base.get(field) is not None and candidate.get(field) is not None and base[field] != candidate[field]:
            out.append(f"{field} {base[field]} -> {candidate[field]}")
    for field, name in (("flops", "FLOPs"), ("bytes", "bytes"), ("traced_flops", "traced FLOPs")):
        a, b = base.get(field), candidate.get(field)
        if a and b and a != b:
            out.append(f"{name} {b / a - 1:+.1%} ({a:.4g} -> {b:.4g})")
    return out


def more_work(base: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """What the candidate does more of than the base, by its counters: FLOPs and bytes of what
    executes, kernel launches a step (a GPU's), retraces; [] when nothing rose or either lacks
    counters. Ops and a compiled module's instructions are not work: a compiler that fuses
    differently changes them at the same arithmetic (they are reported by changes()), and a
    traced graph's FLOPs count what the optimiser may remove (traced_flops, reported, not work)."""
    if not base or not candidate:
        return []
    out = []
    a, b = base.get("kernels") or {}, candidate.get("kernels") or {}
    if a and b and total(b) > total(a):
        out.append(f"kernels {total(a)} -> {total(b)}")
    for field, name in (("flops", "FLOPs"), ("bytes", "bytes"), ("retraces", "retraces")):
        a, b = base.get(field), candidate.get(field)
        if a is not None and b is not None and b > a:
            out.append(f"{name} {b / a - 1:+.1%}" if a else f"{name} {a} -> {b}")
    return out


def summary(counters: dict[str, Any]) -> str:
    """One line: '23 ops a step (13 types), 6 MatMul; FLOPs 7.85e+09'."""
    ops = counters.get("ops") or {}
    parts = []
    if ops:
        top = sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        parts.append(
            f"{total(ops)} ops a step ({len(ops)} types: "
            + ", ".join(f"{n} {k}" for k, n in top)
            + (", ..." if len(ops) > 3 else "")
            + ")"
        )
    if counters.get("kernels"):
        parts.append(f"{total(counters['kernels'])} kernels a step")
    if counters.get("fusions"):
        parts.append(f"{counters['fusions']} fusions")
    if counters.get("flops"):
        parts.append(f"FLOPs {counters['flops']:.3g}")
    if counters.get("retraces"):
        parts.append(f"{counters['retraces']} retraces")
    return "; ".join(parts) or "no counters"
