"""Instructions a step executes, counted by Valgrind's Callgrind: a CPU measurement that another
process on the machine does not move, where wall time on a shared machine moves by several percent.

Each case runs in a process of its own under `valgrind --tool=callgrind --instr-atstart=no`: the
framework's import, the trace, the check and the warm-up run uninstrumented (most of the time a
process spends under Valgrind, still at its slowed pace). Instrumentation is switched on once before
the counted calls, and each call is dumped after it, every thread's instructions in one count (a
graph executor and XLA's runtime run ops on threads of their own), by Callgrind's client requests,
which are inline assembly: a ten-line C shared object (SOURCE) is compiled once with the system's C
compiler and loaded with ctypes. Hash seed and every framework's threads are fixed (one), so the
counts repeat; a compiled step's counts move more than an eager one's (its runtime's threads wait
by spinning, which Valgrind runs as instructions).

What instructions do not say: time spent waiting on memory (a cache miss is one instruction),
a GPU's work, and vector width beyond what Valgrind emulates (it runs AVX2 but not AVX-512 code,
so a library picks another kernel under it than on the bare machine).

`python -m bench.instructions CASE_JSON OUT_DIR CALLS` is the process Valgrind runs.
"""

import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import defaults
from bench.records import CaseKey

SOURCE = """\
#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>
void bench_on(void) { CALLGRIND_START_INSTRUMENTATION; }
void bench_start(void) { CALLGRIND_ZERO_STATS; }
void bench_stop(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
int bench_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
"""
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "backprop-bench"
# Environment of the counted process: a fixed hash seed, one thread in every framework and BLAS.
FIXED_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


class Unavailable(RuntimeError):
    """Instructions cannot be counted here; str() says why in one line."""


def valgrind_version() -> str:
    """Valgrind's version line; Unavailable where it is not installed or does not run."""
    if not shutil.which("valgrind"):
        raise Unavailable("valgrind is not installed (apt-get install valgrind)")
    done = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise Unavailable(f"valgrind --version exits {done.returncode}")
    return done.stdout.strip()


@functools.cache
def client_library() -> Path:
    """The compiled client-request library (cached by its source's hash); Unavailable where no C
    compiler or no Valgrind header is there to build it."""
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    path = CACHE / f"callgrind-requests-{digest}.so"
    if path.is_file():
        return path
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise Unavailable("no C compiler to build Callgrind's client requests (apt-get install gcc)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "requests.c"
        source.write_text(SOURCE)
        built = Path(tmp) / path.name
        done = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(built), str(source)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["failed"])[0]
            raise Unavailable(f"cannot build Callgrind's client requests: {first[:200]}")
        os.replace(built, path)
    return path


def unavailable_reason(key: CaseKey) -> str | None:
    """Why the case `key` cannot be counted, or None."""
    if key.device != "cpu":
        return "instructions are counted on the CPU only (Valgrind does not see a GPU's work)"
    if key.engine:
        return "a data-parallel case runs several processes"
    try:
        valgrind_version()
        client_library()
    except Unavailable as e:
        return str(e)
    return None


_SUMMARY = re.compile(r"^(?:summary|totals):\s*(\d+(?: \d+)*)", re.M)
_EVENTS = re.compile(r"^events:\s*(.+)$", re.M)
# Valgrind's cache simulation (--cache-sim=yes): L1 misses (instruction, data read, data write) and
# last-level misses, and the cycle estimate Cachegrind's and KCachegrind's documentation give:
# Ir + 10 x L1 misses + 100 x LL misses (CodSpeed's CPU simulation estimates cycles the same way).
L1_EVENTS, LL_EVENTS = ("I1mr", "D1mr", "D1mw"), ("ILmr", "DLmr", "DLmw")
L1_CYCLES, LL_CYCLES = 10, 100
_TRIGGER = re.compile(r"^desc: Trigger: Client Request: (.+)$", re.M)
CANDIDATE = "candidate"
# One set of counts for every thread: a client request's dump then holds the work of the threads a
# graph executor or XLA's runtime runs ops on; with a set per thread (yes) it holds the calling
# thread's alone, and a compiled step's ops went uncounted.
THREADS = ("--separate-threads=no",)
# How counts are made, in each count: counts made otherwise (a set per thread, before) are not compared with these.
COUNTING = "every thread"


def measure(
    key: CaseKey,
    calls: int = defaults.INSTRUCTIONS_CALLS,
    seed: int = defaults.SEED,
    kernels: dict[str, str] | None = None,
    keep: Path | None = None,
    cache: bool = False,
) -> dict[str, Any]:
    """{"per_call": median instructions of `calls` calls, "calls": each one's, "spread": (max -
    min) / median, "tool": Valgrind's version, "wall_s": the process's wall time} of the case `key`;
    {"absent": why} where it cannot be counted (never an exception). With `kernels` ({side: a
    checkout's folder}, as the one-process gate gives them), each side's step is counted in the same
    process, their calls taking turns: {side: that dict}. `keep`: a folder to copy Callgrind's dumps
    to (`explain --instructions` reads them: functions()). `cache`: with Valgrind's simulated caches,
    adding "cache": {"l1_misses", "ll_misses", "cycles_estimate"} a call (medians; slower again)."""
    sides = kernels or {CANDIDATE: ""}
    counted = _count(key, sides, calls, seed, keep, cache)
    return counted if kernels else counted[CANDIDATE]


def _count(
    key: CaseKey, sides: dict[str, str], calls: int, seed: int, keep: Path | None, cache: bool = False
) -> dict[str, dict[str, Any]]:
    reason = unavailable_reason(key)
    if reason:
        return {side: {"absent": reason} for side in sides}
    from bench import frameworks

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out:
        env = {**os.environ, **FIXED_ENV, **frameworks.thread_env(1)}
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            *THREADS,
            *(["--cache-sim=yes"] if cache else []),
            f"--callgrind-out-file={out}/cg.out",
            sys.executable,
            "-m",
            "bench.instructions",
            json.dumps({"case": key.asdict(), "seed": seed, "sides": sides}),
            out,
            str(calls),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=defaults.INSTRUCTIONS_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return _absent(sides, f"the counted process ran over {defaults.INSTRUCTIONS_TIMEOUT_S} s")
        said = Path(out, "said.json")
        if done.returncode != 0 or not said.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("==")]
            last = (lines or [f"exit {done.returncode}"])[-1][:200]
            return _absent(sides, f"the counted process failed: {last}")
        said_json = json.loads(said.read_text())
        problems, phases = said_json.get("problems", {}), said_json.get("phases_s", {})
        by_call = _dumps(Path(out))
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for dump in Path(out).glob("cg.out.*"):
                shutil.copy(dump, keep / dump.name)
        tool = valgrind_version()
        wall_s = round(time.perf_counter() - started, 1)
        result = {}
        for side in sides:
            if problems.get(side):
                result[side] = {"absent": problems[side]}
                continue
            events = [_summed(by_call.get(f"{side} {i}", {})) for i in range(1, calls + 1)]
            counts = [e.get("Ir", 0) for e in events]
            if not all(counts):
                result[side] = {"absent": "Callgrind wrote no count for a call"}
                continue
            median = statistics.median(counts)
            result[side] = {
                "per_call": median,
                "calls": counts,
                "spread": (max(counts) - min(counts)) / median if median else 0.0,
                "tool": tool,
                "counting": COUNTING,
                "wall_s": wall_s,
                "phases_s": {name: round(v, 1) for name, v in phases.items()},
            }
            if cache:
                result[side]["cache"] = _cache(events)
        return result


def _summed(dumps: dict[str, dict[str, int]]) -> dict[str, int]:
    """One call's events over its threads' dumps."""
    total: dict[str, int] = {}
    for events in dumps.values():
        for name, value in events.items():
            total[name] = total.get(name, 0) + value
    return total


def _cache(events: list[dict[str, int]]) -> dict[str, Any]:
    """The simulated caches' misses and the cycle estimate a call (medians over the calls)."""
    l1 = [sum(e.get(n, 0) for n in L1_EVENTS) for e in events]
    ll = [sum(e.get(n, 0) for n in LL_EVENTS) for e in events]
    cycles = [e.get("Ir", 0) + L1_CYCLES * a + LL_CYCLES * b for e, a, b in zip(events, l1, ll)]
    return {
        "l1_misses": statistics.median(l1),
        "ll_misses": statistics.median(ll),
        "cycles_estimate": statistics.median(cycles),
        "model": f"Valgrind's simulated caches; cycles = Ir + {L1_CYCLES} x L1 misses + {LL_CYCLES} x LL misses",
    }


def _absent(sides: dict[str, str], why: str) -> dict[str, dict[str, Any]]:
    return {side: {"absent": why} for side in sides}


def _dumps(folder: Path) -> dict[str, dict[str, dict[str, int]]]:
    """{trigger name ("candidate 1"): {dump file: {event ("Ir", ...): its count}}}: Callgrind writes a
    dump per thread for each client request, named by the request."""
    found: dict[str, dict[str, dict[str, int]]] = {}
    for dump in folder.glob("cg.out.*"):
        text = dump.read_text(errors="replace")
        trigger, total, events = _TRIGGER.search(text), _SUMMARY.search(text), _EVENTS.search(text)
        if trigger and total:
            names = events.group(1).split() if events else ["Ir"]
            counts = dict(zip(names, map(int, total.group(1).split())))
            found.setdefault(trigger.group(1).strip(), {})[dump.name] = counts
    return found


_NAMED = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")


@dataclass(frozen=True)
class Function:
    """One function's instructions over the dumps read: its own (self) and with what it called
    (inclusive; a direct recursion counted once)."""

    name: str
    self: int
    inclusive: int


def functions(dumps: list[Path]) -> dict[str, Function]:
    """{name: Function} summed over Callgrind's `dumps` (callgrind format, names compressed as
    "fn=(id) name" on first use). Python's own functions are the interpreter's C functions
    (_PyEval_EvalFrameDefault): Valgrind sees no Python frame (Python 3.12's perf trampoline would
    be needed for that)."""
    names: dict[str, str] = {}
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for dump in sorted(dumps, key=_dump_order):
        fn = callee = ""
        in_call = False
        positions = 1
        for line in dump.read_text(errors="replace").splitlines():
            if not line:
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                parts = line.split()
                cost = int(parts[positions]) if len(parts) > positions and parts[positions].isdigit() else 0
                if in_call:
                    if callee != fn:
                        inclusive[fn] = inclusive.get(fn, 0) + cost
                    in_call = False
                else:
                    own[fn] = own.get(fn, 0) + cost
                    inclusive[fn] = inclusive.get(fn, 0) + cost
            elif line.startswith(("fn=", "cfn=")):
                match = _NAMED.match(line)
                kind, name = (
                    (match.group(1), names.setdefault(match.group(2), match.group(3) or "?"))
                    if match
                    else (line.split("=", 1)[0], line.split("=", 1)[1])
                )
                if kind == "fn":
                    fn = name
                else:
                    callee = name
            elif line.startswith("calls="):
                in_call = True
            elif line.startswith("positions:"):
                positions = len(line.split()) - 1
    return {name: Function(name, own.get(name, 0), inclusive.get(name, 0)) for name in inclusive}


def _dump_order(path: Path) -> tuple[int, str]:
    number = path.name.split(".")[-1].split("-")[0]
    return (int(number) if number.isdigit() else 0, path.name)


def dumps_of(folder: Path, side: str) -> list[Path]:
    """The dumps in `folder` (measure(keep=folder)) of `side`'s counted calls."""
    return [
        dump
        for dump in folder.glob("cg.out.*")
        if (found := _TRIGGER.search(dump.read_text(errors="replace")))
        and found.group(1).strip().rsplit(" ", 1)[0] == side
    ]


def _counted_process(job: dict[str, Any], out: Path, calls: int) -> None:
    """Inside Valgrind: the case's inputs, each side's compiled step, a checked first call and warm-up
    uninstrumented, then `calls` rounds in which each side's step is called once between the client
    requests (a dump each, named "<side> <round>")."""
    from bench import frameworks
    from bench.run.caches import Caches
    from bench.run.plan import Config
    from kernels import models

    problems: dict[str, str] = {}
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        lib = ctypes.CDLL(str(client_library()))
        lib.bench_stop.argtypes = [ctypes.c_char_p]
        key = CaseKey(**job["case"])
        base_fw = frameworks.load(key.framework)
        base_fw.configure()
        caches = Caches(replace(Config(out=None), seed=job["seed"]))
        inputs = (key.n, key.m, key.nh, key.dtype, key.tf32, key.model, key.loss_fn)
        ref = caches.reference(*inputs)
        args = caches.placed(base_fw, "cpu", *inputs)
        phases["import and inputs"] = time.perf_counter() - t0
        steps = {}
        for side, root in job["sides"].items():
            try:
                fw = base_fw.with_kernels(root) if root else base_fw
                fn = fw.compile(key.step, key.backend, models.spec(key.model))

                def call(fw: Any = fw, fn: Any = fn) -> Any:
                    with fw.placement("cpu"):
                        outputs = fn(*args)
                    fw.sync()
                    return outputs

                check = ref.check(dict(zip(ref.names, (fw.to_numpy(t) for t in call()))))
                if not check.ok:
                    problems[side] = f"wrong answer: {check.problem}"
                    continue
                for _ in range(defaults.INSTRUCTIONS_WARMUP):
                    call()
                steps[side] = call
            except Exception as e:  # noqa: BLE001 - this side absent, saying why; the other still counted
                problems[side] = _one_line(e)
        phases["compile, check and warm-up"] = time.perf_counter() - t0 - sum(phases.values())
        # Instrumentation on once, not around each call: switching it flushes Valgrind's translations,
        # which each call would then make again. One instrumented call a side first, dumped and not
        # read: a client request zeroes only its own thread's counts, and a dump empties every thread's,
        # so each counted call's dump holds that call's work on every thread and nothing before it.
        lib.bench_on()
        for side, call in steps.items():
            call()
            lib.bench_stop(f"warm-up {side}".encode())
        for i in range(calls):
            for side, call in steps.items():
                lib.bench_start()
                call()
                lib.bench_stop(f"{side} {i + 1}".encode())
    except Exception as e:  # noqa: BLE001 - said in one line to the parent, never a crash there
        problems = {side: _one_line(e) for side in job["sides"]}
    phases["counted calls"] = time.perf_counter() - t0 - sum(phases.values())
    Path(out, "said.json").write_text(json.dumps({"problems": problems, "phases_s": phases}))


def _one_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


if __name__ == "__main__":
    _counted_process(json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
