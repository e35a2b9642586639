"""Instructions a step executes, counted by Valgrind's Callgrind: a CPU measurement that another
process on the machine does not move, where wall time on a shared machine moves by several percent.

Each case runs in a process of its own under `valgrind --tool=callgrind --instr-atstart=no`: the
framework's import, the trace, the check and the warm-up run uninstrumented (most of the time a
process spends under Valgrind, still at its slowed pace); instrumentation is switched on around
each counted call and its sync only (every thread's instructions: a graph executor's ops run on its
own threads), by Callgrind's client requests, which are inline assembly:
a ten-line C shared object (SOURCE) is compiled once with the system's C compiler and loaded with
ctypes. Hash seed and every framework's threads are fixed (one), so the counts repeat.

Eager steps only: a compiled step (tf.function, XLA, torch.compile, jax.jit) runs its work on
threads its framework keeps, and the counts of such a step fell far short of its arithmetic.

What instructions do not say: time spent waiting on memory (a cache miss is one instruction),
what other threads or a GPU do, and vector width beyond what Valgrind emulates (it runs AVX2 but
not AVX-512 code, so a library picks another kernel under it than on the bare machine).

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import defaults
from bench.records import CaseKey

SOURCE = """\
#include <valgrind/callgrind.h>
#include <valgrind/valgrind.h>
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_stop(const char *name) { CALLGRIND_DUMP_STATS_AT(name); CALLGRIND_STOP_INSTRUMENTATION; }
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
    if key.backend != "eager":
        return (
            "instructions are counted for eager steps only: a compiled step runs its work on threads its "
            "framework keeps, which the count missed (docs/judging-and-timing.md#instructions)"
        )
    try:
        valgrind_version()
        client_library()
    except Unavailable as e:
        return str(e)
    return None


_SUMMARY = re.compile(r"^(?:summary|totals):\s*(\d+)", re.M)


def measure(key: CaseKey, calls: int = defaults.INSTRUCTIONS_CALLS, seed: int = defaults.SEED) -> dict[str, Any]:
    """{"per_call": median instructions of `calls` calls, "calls": each one's, "spread": (max -
    min) / median, "tool": Valgrind's version, "wall_s": the process's wall time} of the case `key`;
    {"absent": why} where it cannot be counted (never an exception)."""
    reason = unavailable_reason(key)
    if reason:
        return {"absent": reason}
    from bench import frameworks

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out:
        env = {**os.environ, **FIXED_ENV, **frameworks.thread_env(1)}
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",  # a dump per thread, summed: zeroing and dumping are per thread
            f"--callgrind-out-file={out}/cg.out",
            sys.executable,
            "-m",
            "bench.instructions",
            json.dumps({**key.asdict(), "seed": seed}),
            out,
            str(calls),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=defaults.INSTRUCTIONS_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return {"absent": f"the counted process ran over {defaults.INSTRUCTIONS_TIMEOUT_S} s"}
        said = Path(out, "said.json")
        if done.returncode != 0 or not said.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("==")]
            return {"absent": f"the counted process failed: {(lines or ['exit ' + str(done.returncode)])[-1][:200]}"}
        problem = json.loads(said.read_text()).get("problem")
        if problem:
            return {"absent": problem}
        counts = []
        for i in range(1, calls + 1):
            dumps = sorted(Path(out).glob(f"cg.out.{i}-*")) or sorted(Path(out).glob(f"cg.out.{i}"))
            found = [_SUMMARY.search(dump.read_text(errors="replace")) for dump in dumps]
            if not found or not all(found):
                return {"absent": f"Callgrind wrote no count for call {i}"}
            counts.append(sum(int(f.group(1)) for f in found if f))
    median = statistics.median(counts)
    return {
        "per_call": median,
        "calls": counts,
        "spread": (max(counts) - min(counts)) / median if median else 0.0,
        "tool": valgrind_version(),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _counted_process(case: dict[str, Any], out: Path, calls: int) -> None:
    """Inside Valgrind: the case's inputs, its compiled step, a checked first call and warm-up
    uninstrumented, then `calls` calls each between the client requests (a dump each)."""
    from bench import frameworks
    from bench.run.caches import Caches
    from bench.run.plan import Config
    from kernels import models

    said: dict[str, Any] = {}
    try:
        lib = ctypes.CDLL(str(client_library()))
        lib.bench_stop.argtypes = [ctypes.c_char_p]
        seed = case.pop("seed")
        key = CaseKey(**case)
        fw = frameworks.load(key.framework)
        fw.configure()
        caches = Caches(replace(Config(out=None), seed=seed))
        inputs = (key.n, key.m, key.nh, key.dtype, key.tf32, key.model, key.loss_fn)
        ref = caches.reference(*inputs)
        args = caches.placed(fw, "cpu", *inputs)
        fn = fw.compile(key.step, key.backend, models.spec(key.model))

        def call() -> Any:
            with fw.placement("cpu"):
                outputs = fn(*args)
            fw.sync()
            return outputs

        check = ref.check(dict(zip(ref.names, (fw.to_numpy(t) for t in call()))))
        if not check.ok:
            said["problem"] = f"wrong answer: {check.problem}"
        else:
            for _ in range(defaults.WARMUP):
                call()
            for i in range(calls):
                lib.bench_start()
                call()
                lib.bench_stop(f"call {i + 1}".encode())
    except Exception as e:  # noqa: BLE001 - said in one line to the parent, never a crash there
        said["problem"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    Path(out, "said.json").write_text(json.dumps(said))


if __name__ == "__main__":
    _counted_process(json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
