"""Where a step's time goes: a case checked and warmed up as a run does it, timed, then run under its
framework's own profiler (bench/frameworks/: profile), op type by op type, with its counters
(bench/counters.py); several cases side by side, what differs most in time first. The profiler's
own trace is kept, for the tool its users already open (TensorBoard/XProf, Perfetto).
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import counters, defaults, frameworks, stats, timing
from bench.frameworks.base import OpTime
from bench.records import CaseKey, Record
from bench.text import one_line

DEVICES = ("cpu", "gpu")
SIZE_KEYS = ("n", "m", "nh")


class ExplainError(ValueError):
    """A case that cannot be explained as asked (unknown, ambiguous, not runnable); one line."""


def case_names() -> list[str]:
    """Every framework/step/backend/device the registry knows."""
    return [
        f"{fw}/{step}/{backend}/{device}"
        for fw in frameworks.FRAMEWORKS
        for step in frameworks.spec(fw).steps
        for backend in frameworks.spec(fw).backends
        for device in DEVICES
    ]


def resolve(name: str) -> tuple[str, str, str, str]:
    """framework/step/backend/device of a case as the user wrote it: all four, three (on the cpu), or
    fewer parts that name one case; ExplainError listing the close matches or the candidates."""
    known = case_names()
    parts = [p for p in name.strip("/").split("/") if p]
    if len(parts) == 3:
        parts.append("cpu")
    full = "/".join(parts)
    if full in known:
        return tuple(parts)  # type: ignore[return-value]
    if len(parts) < 3:  # a shorthand: the cases that hold these parts, in this order
        fits = [k for k in known if _in_order(parts, k.split("/")) and (len(parts) != 2 or k.endswith("/cpu"))]
        if len(fits) == 1:
            return tuple(fits[0].split("/"))  # type: ignore[return-value]
        if fits:
            shown = ", ".join(fits[:6]) + (f", ... ({len(fits)} in all)" if len(fits) > 6 else "")
            raise ExplainError(f"ambiguous case {name!r}: it could be {shown}")
    close = difflib.get_close_matches(full, known, n=4, cutoff=0.6)
    raise ExplainError(
        f"unknown case {name!r}"
        + (
            f" (close: {', '.join(close)})"
            if close
            else " (expected framework/step/backend[/device]; `list` names them)"
        )
    )


def _in_order(wanted: list[str], parts: list[str]) -> bool:
    it = iter(parts)
    return all(any(w == p for p in it) for w in wanted)


def parse(tokens: Sequence[str], size: tuple[int, int, int], dtype: str) -> list[CaseKey]:
    """Cases from command-line tokens: each a case name, optionally followed by n=, m=, nh= or
    dtype= for that case alone (`tensorflow/manual/eager/cpu n=50000`)."""
    cases: list[dict[str, Any]] = []
    for token in tokens:
        for word in token.split():
            key, sep, value = word.partition("=")
            if not sep:
                fw, step, backend, device = resolve(word)
                cases.append(
                    dict(
                        framework=fw,
                        step=step,
                        backend=backend,
                        device=device,
                        n=size[0],
                        m=size[1],
                        nh=size[2],
                        dtype=dtype,
                    )
                )
                continue
            if not cases:
                raise ExplainError(f"{word!r} comes before any case; write it after the case it is for")
            if key in SIZE_KEYS:
                try:
                    cases[-1][key] = int(value)
                except ValueError:
                    raise ExplainError(f"{word!r}: {key} must be a whole number") from None
                if cases[-1][key] < 1:
                    raise ExplainError(f"{word!r}: {key} must be at least 1")
            elif key == "dtype":
                if value not in defaults.DTYPES:
                    raise ExplainError(f"{word!r}: unknown dtype (available: {', '.join(defaults.DTYPES)})")
                cases[-1]["dtype"] = value
            else:
                raise ExplainError(f"{word!r}: expected n=, m=, nh= or dtype= after a case")
    if not cases:
        raise ExplainError("no case named")
    return [CaseKey(**c) for c in cases]


@dataclass
class Explained:
    key: CaseKey
    timer: str
    step_s: float  # median a step by the framework's timer
    step_ci_s: tuple[float, float]
    host_step_s: float  # median a step by the host clock (where the timer is a device's)
    steps: int  # steps profiled
    ops: dict[str, OpTime]  # over `steps`
    counters: dict[str, Any]
    trace: Path
    note: str = ""
    beside: str = ""

    def per_step_ms(self, op: str) -> float:
        t = self.ops.get(op)
        return (t.host_s + t.device_s) / self.steps * 1e3 if t else 0.0

    def count(self, op: str) -> float:
        t = self.ops.get(op)
        return t.count / self.steps if t else 0.0


def _slug(key: CaseKey) -> str:
    return f"{key.framework}-{key.step}-{key.backend}-{key.device}-n{key.n}-{key.dtype}"


def prepare(key: CaseKey, seed: int = defaults.SEED) -> tuple[Any, Any]:
    """(Framework, a checked and warm prepare.Live) of the case `key`; ExplainError when it cannot run."""
    from bench.run import Config, prepare_case
    from bench.run.caches import Caches
    from bench.run.prepare import skip_reason

    try:
        fw = frameworks.load(key.framework)
    except frameworks.FrameworkUnavailable as e:
        raise ExplainError(f"{key.label}: {e}") from None
    if key.device not in fw.devices():
        raise ExplainError(f"{key.label}: no {key.device} visible to {key.framework} here")
    reason = skip_reason(fw, key)
    if reason:
        raise ExplainError(f"{key.label}: {reason}")
    config = Config(out=None, warmup=defaults.WARMUP, seed=seed)
    caches = Caches(config)
    ref = caches.reference(key.n, key.m, key.nh, key.dtype, key.tf32, key.model, key.loss_fn)
    args = caches.placed(fw, key.device, key.n, key.m, key.nh, key.dtype, key.tf32, key.model, key.loss_fn)
    live = prepare_case(fw, key, ref, args, config, {"run_id": "explain"})
    if isinstance(live, Record):
        raise ExplainError(f"{key.label}: {live.status}: {live.error}")
    return fw, live


def explain(
    key: CaseKey, out: Path, beside: CaseKey | None = None, budget_s: float = 1.0, seed: int = defaults.SEED
) -> Explained:
    """The case `key` checked, warmed up, timed (about `budget_s` of steps), profiled over about
    as many steps (at least 3), and counted; the profiler's trace written under `out`. With
    `beside`, that case's step runs (untimed, unprofiled) before each of this one's: what sharing
    a process with it costs."""
    fw, live = prepare(key, seed)
    other: Callable[[], Any] | None = None
    if beside is not None:
        _, other_live = prepare(beside, seed)

        def other() -> None:
            other_live.call()
            other_live.sync()

    timed = timing.steady(
        live.call,
        live.sync,
        warmup=0,
        min_samples=5,
        max_samples=200,
        budget_s=budget_s,
        timer=live.timer,
        before=other,
    )
    step_s = stats.median(timed.samples_s)
    steps = max(3, min(50, math.ceil(budget_s / max(step_s, 1e-6))))
    trace = out / _slug(key)
    note = ""
    try:
        if other is None:
            ops = fw.profile(live.call, steps, key.device, trace)
        else:  # the profiled steps with the other case's between them: only this framework's ops are seen
            ops = fw.profile(_alternating(live.call, other), steps, key.device, trace)
    except Exception as e:  # noqa: BLE001 - no profiler: the counters and times still stand
        ops, note = {}, f"no profile: {one_line(e)}"
    if any(op.startswith("xla:") for op in ops):
        note = (
            "XLA's thunks are timed as the profiler sampled them (not every execution is traced): shares "
            "under-count; the counters count the compiled module exactly"
        )
    counted = live.count() if live.count else {}
    missed = untraced(ops, steps, counted)
    if missed:
        note = "; ".join(
            filter(
                None,
                (
                    note,
                    (
                        f"the profile of the timed steps saw fewer of {', '.join(missed[:8])}"
                        f"{' ...' if len(missed) > 8 else ''} than the counters count (a profiler that stops "
                        "tracing cheap ops of a warm step, as TensorFlow's "
                        "graph executor does after ~90 calls): their time is missing from the table"
                    ),
                ),
            )
        )
    return Explained(
        key,
        (live.timer or timing.HOST).name,
        step_s,
        stats.median_ci(timed.samples_s),
        stats.median(timed.host_s) if timed.host_s else step_s,
        steps,
        ops,
        counted,
        trace,
        note,
        beside.label if beside else "",
    )


def untraced(ops: dict[str, OpTime], steps: int, counted: dict[str, Any]) -> list[str]:
    """The op types the counters (a fresh copy's profile, bench/counters.py) count more of a step
    than this profile of `steps` warm steps saw; [] where the counters come from a compiled module
    (other names) or hold no ops."""
    if not str(counted.get("ops_source", "")).endswith(counters.PROFILED):
        return []
    return [op for op, n in sorted(counted.get("ops", {}).items()) if (ops[op].count if op in ops else 0) < n * steps]


def _alternating(call: Callable[[], Any], other: Callable[[], Any]) -> Callable[[], Any]:
    def both() -> Any:
        other()
        return call()

    return both


# ---------------------------------------------------------------- text


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g}"


def lines(e: Explained, top: int = 25) -> list[str]:
    """One case: its step time, its ops by time, its counters, where its trace is."""
    lo, hi = e.step_ci_s
    ci = f" [95% CI {_ms(lo)}, {_ms(hi)}]" if np.isfinite(lo) else ""
    out = [
        e.key.label + (f" (beside {e.beside})" if e.beside else ""),
        f"  a step: {_ms(e.step_s)} ms{ci} ({e.timer})"
        + (f"; host clock {_ms(e.host_step_s)} ms" if e.host_step_s != e.step_s else ""),
    ]
    if e.ops:
        in_ops = sum(e.per_step_ms(op) for op in e.ops) / 1e3
        out.append(
            f"  profiled {e.steps} steps: {_ms(in_ops)} ms a step in ops, {in_ops / e.step_s:.0%} of the "
            "timed step (the rest: dispatch, Python, waiting; over 100%: the profiler's own cost)"
        )
        rows = sorted(e.ops, key=lambda op: -e.per_step_ms(op))
        width = max(12, *(len(op) for op in rows[:top]))
        out.append(f"  {'op type':<{width}}  {'a step':>7}  {'ms a step':>10}  {'share':>6}")
        for op in rows[:top]:
            out.append(
                f"  {op:<{width}}  {e.count(op):>7.4g}  {e.per_step_ms(op):>10.4g}  "
                f"{e.per_step_ms(op) / 1e3 / e.step_s:>6.1%}"
            )
        if len(rows) > top:
            out.append(f"  ... and {len(rows) - top} more op types")
    if e.note:
        out.append(f"  note: {e.note}")
    out.append(f"  counters: {counters.summary(e.counters)}")
    for what, why in (e.counters.get("absent") or {}).items():
        out.append(f"    {what}: {why}")
    out.append(f"  trace: {e.trace}")
    return out


def diff(cases: Sequence[Explained], top: int = 25) -> list[str]:
    """Several cases side by side: op types, a step's count and ms in each, the op types whose time
    differs most between the cases first."""
    ops = sorted(
        {op for e in cases for op in e.ops},
        key=lambda op: -(max(e.per_step_ms(op) for e in cases) - min(e.per_step_ms(op) for e in cases)),
    )
    names = [f"[{i + 1}]" for i in range(len(cases))]
    out = [
        f"{n} {e.key.label}: {_ms(e.step_s)} ms a step" + (f" (beside {e.beside})" if e.beside else "")
        for n, e in zip(names, cases)
    ]
    width = max(12, *(len(op) for op in ops[:top])) if ops else 12
    out.append(
        f"{'op type':<{width}}  " + "  ".join(f"{n + ' n':>8}  {n + ' ms':>9}" for n in names) + f"  {'spread ms':>9}"
    )
    for op in ops[:top]:
        ms = [e.per_step_ms(op) for e in cases]
        out.append(
            f"{op:<{width}}  "
            + "  ".join(f"{e.count(op):>8.4g}  {m:>9.4g}" for e, m in zip(cases, ms))
            + f"  {max(ms) - min(ms):>9.4g}"
        )
    if len(ops) > top:
        out.append(f"... and {len(ops) - top} more op types")
    steps = [e.step_s * 1e3 for e in cases]
    out.append(
        f"{'a step':<{width}}  "
        + "  ".join(f"{'':>8}  {m:>9.4g}" for m in steps)
        + f"  {max(steps) - min(steps):>9.4g}"
    )
    for (a, ea), (b, eb) in zip(enumerate(cases), list(enumerate(cases))[1:]):
        changed = counters.changes(ea.counters, eb.counters)
        if changed and ea.key.framework == eb.key.framework:
            out.append(f"counters [{a + 1}] -> [{b + 1}]: {'; '.join(changed)}")
    return out


def default_out() -> Path:
    return Path("results") / time.strftime("explain-%Y%m%d-%H%M%S")


# ---------------------------------------------------------------- instructions (explain --instructions)


@dataclass
class Profile:
    """A case's instructions a call under Callgrind, function by function (bench/instructions.py)."""

    name: str  # what was counted: the case, or the case at a revision
    per_call: float
    functions: dict  # name -> instructions.Function, per call


def count(key: CaseKey, out: Path, base: tuple[str, Path] | None = None) -> list[Profile]:
    """[Profile] of the case `key`: the working tree's step, and with `base` ((rev, a checkout of it))
    that revision's step first, both in one Valgrind process. Callgrind's dumps are kept under
    `out` (callgrind_annotate and KCachegrind read them). ExplainError where it cannot be counted."""
    import shutil

    from bench import REPO, instructions

    folder = out / f"{_slug(key)}-callgrind"
    shutil.rmtree(folder, ignore_errors=True)  # a reused --out: no earlier run's dumps read as this one's
    sides = {"base": str(base[1]), "candidate": str(REPO)} if base else None
    got = instructions.measure(key, kernels=sides, keep=folder)
    by_side = got if sides else {"candidate": got}
    done = []
    for side, counted in by_side.items():
        if "absent" in counted:
            raise ExplainError(f"{key.label}: instructions not counted: {counted['absent']}")
        calls = len(counted["calls"])
        found = instructions.functions(instructions.dumps_of(folder, side))
        per_call = {
            name: instructions.Function(name, f.self // calls, f.inclusive // calls) for name, f in found.items()
        }
        label = key.label if not base else f"{key.label} at {base[0] if side == 'base' else 'the working tree'}"
        done.append(Profile(label, counted["per_call"], per_call))
    return done


def counted_lines(c: Profile, top: int = 25) -> list[str]:
    """The functions that execute most of a call's instructions, by self instructions."""
    rows = sorted(c.functions.values(), key=lambda f: -f.self)[:top]
    width = max([len(f.name) for f in rows] + [8])
    lines = [
        f"{c.name}: {c.per_call:,.0f} instructions a call under Callgrind; the {len(rows)} functions with the "
        "most of their own (Python's functions are the interpreter's: Valgrind sees no Python frame)",
        f"  {'function'.ljust(width)}  {'self':>12}  {'%':>6}  {'inclusive':>12}",
    ]
    for f in rows:
        lines.append(f"  {f.name.ljust(width)}  {f.self:>12,}  {f.self / c.per_call:>6.1%}  {f.inclusive:>12,}")
    return lines


def counted_diff(a: Profile, b: Profile, top: int = 25) -> list[str]:
    """The functions whose own instructions a call differ most between `a` and `b`, biggest change first."""
    names = set(a.functions) | set(b.functions)
    own = lambda c, n: c.functions[n].self if n in c.functions else 0  # noqa: E731
    delta = {n: own(b, n) - own(a, n) for n in names}
    rows = sorted((n for n in names if delta[n]), key=lambda n: -abs(delta[n]))[:top]
    total = b.per_call - a.per_call
    width = max([len(n) for n in rows] + [8])
    lines = [
        f"{b.name} against {a.name}: {total:+,.0f} instructions a call ({b.per_call / a.per_call - 1:+.2%}); "
        "the functions whose own instructions changed most:",
        f"  {'function'.ljust(width)}  {'before':>12}  {'after':>12}  {'change':>12}  {'of the change':>13}",
    ]
    for n in rows:
        before, after = own(a, n), own(b, n)
        part = delta[n] / total if total else math.nan
        share = "-" if not total else f"{part:.0%}" if abs(part) >= 0.005 else f"{part:.2%}"
        lines.append(f"  {n.ljust(width)}  {before:>12,}  {after:>12,}  {delta[n]:>+12,}  {share:>13}")
    return lines
