"""The contract every framework implements: one class per framework, subclassing Framework.

A framework brings its steps (how gradients are made), its backends (how a step runs: eager, a
graph, a compiler), the devices it sees, and the plumbing the harness needs around a call:
placement, transfer, sync, compile bookkeeping, peak memory, precision switches, the ceiling
kernels and the facts for the fingerprint. What frameworks share is written here once; a
subclass overrides only what its framework does differently. Nothing in timing, records or
reports knows which framework made a record.
"""

import contextlib
import copy
import functools
import importlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from bench import timing

GPU_FLUSH_BYTES = 256 << 20  # over any GPU's L2 today (H100 50 MB, H200 60 MB, B200 126 MB)


@dataclass(frozen=True)
class OpTime:
    """An op type's executions in a profiled stretch of steps, and the time they took."""

    count: int
    host_s: float  # summed over its executions: its span on the host (on a GPU, its launch)
    device_s: float = 0.0  # summed time of its kernels on the device (0 where it ran on the host)


class ProfilerUnavailable(RuntimeError):
    """A framework cannot profile this call here; str() says why in one line."""


@contextlib.contextmanager
def quiet_stderr(noise: re.Pattern) -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then pass on every line that `noise` does not
    match: what a framework's C++ side prints whatever its log level says."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not noise.search(line):
                    print(line, file=sys.stderr)


def _llc_bytes():
    """The CPU's last-level cache in bytes (from sysfs), or 64 MiB where it cannot be read."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip().upper()
            sizes.append(int(text[:-1]) << {"K": 10, "M": 20, "G": 30}[text[-1]] if text[-1] in "KMG" else int(text))
        except (OSError, ValueError, KeyError, IndexError):
            continue
    return max(sizes) if sizes else 64 << 20


@functools.cache
def cpu_cache_flush() -> Callable[[], None]:
    """A flush of the CPU's last-level cache: writing every line of a buffer twice its size."""
    buffer = np.zeros(2 * _llc_bytes() // 8)

    def flush():
        np.add(buffer, 1.0, out=buffer)

    return flush


class Framework:
    """One framework as the harness sees it (an instance per process: bench.frameworks.load).

    The class is plain data, importable without its framework, so names are checked and listed
    before anything heavy loads; making an instance imports the framework (load_framework) and
    its kernels module. Class attributes a subclass sets:
      name      how records, the command line and reports name it
      package   the package it imports (and the pip extra that installs it)
      kernels   the module of its math: OPS (the lesson's layers, which the ReLU-mask probe runs)
                and the step functions
      steps     {step: the name of its function in `kernels`, step(x, y, w1, b1, ..., wL, bL) ->
                (loss, d_x, d_w1, d_b1, ..., d_wL, d_bL)} (kernels/models.py)
      backends  {backend: compile(step) -> callable with the step's signature}; the compile
                functions may use the framework's module, which is there once an instance exists
    """

    name: ClassVar[str]
    package: ClassVar[str]
    kernels: ClassVar[str]
    steps: ClassVar[dict[str, str]]
    backends: ClassVar[dict[str, Callable[[Callable], Callable]]]
    # what to_device and the steps handle
    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float64", "bfloat16", "float16")
    # backends that only mean something on a GPU (skipped elsewhere, saying so)
    gpu_backends: ClassVar[tuple[str, ...]] = ()
    # environment variables that size its CPU thread pools when set before it loads (bench.frameworks.thread_env)
    thread_env: ClassVar[tuple[str, ...]] = ()
    # what to know before `pip install -e '.[NAME]'`, said where the framework is missing ("": nothing)
    install_note: ClassVar[str] = ""

    def __init__(self) -> None:
        self.load_framework()
        self.module: ModuleType = importlib.import_module(self.kernels)
        self._probes: dict[str, Callable] = {}

    def load_framework(self) -> None:
        """Import the framework and make the settings its import needs (once per process)."""

    @property
    def ops(self) -> Any:
        return self.module.OPS

    def with_kernels(self, root: Path | str) -> "Framework":
        """This framework with its steps from the kernels package under `root` (another
        revision's checkout) instead of this process's: the gate times a base revision's steps
        beside the working tree's in one process. This process's own kernels stay as they were."""
        other = copy.copy(self)
        other.module = import_from(root, self.kernels)
        other._probes = {}
        return other

    def step(self, step: str, spec: Any = None) -> Callable:
        """The function of the step named `step`; for a user's model, bound to its layers `spec`
        (kernels/models.py), which a compiler takes as a constant of the trace."""
        fn = getattr(self.module, self.steps[step])
        return functools.partial(fn, spec=spec) if spec is not None else fn

    # ------------------------------------------------------------ devices and data

    def devices(self) -> list[str]:
        """The harness's device names present here, "cpu" first ("gpu": the first GPU)."""
        return ["cpu"]

    def configure(self) -> None:
        """Settings that must precede the first op (GPU memory taken as needed, not all at once)."""

    def placement(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """A context under which calls run on `device` (a step's outputs follow its inputs' device
        in most frameworks, so the default places nothing)."""
        return contextlib.nullcontext()

    def to_device(self, arrays: Iterable[np.ndarray], dtype: str, device: str) -> tuple[Any, ...]:
        """Copies of NumPy `arrays` as `dtype` arrays on `device`, complete when returned."""
        raise NotImplementedError

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def sync(self) -> None:
        """Wait for every queued kernel. The default suits frameworks whose calls finish when they
        return (CPU-only ones)."""

    def timer(self, device: str) -> timing.Timer:
        """What times a call on `device`: an object with `name` and measure(call, sync, clock) ->
        (seconds to report, host seconds) (bench/timing.py). The host clock around the call and its
        sync unless the framework has device-side timers there (PyTorch's CUDA events)."""
        return timing.HOST

    def flusher(self, device: str) -> Callable[[], None] | None:
        """A callable that evicts `device`'s caches and returns when done (a cold-cache sample
        runs it before each call, untimed): the CPU's last-level cache by writing a buffer twice
        its size; None where the framework cannot flush that device."""
        return cpu_cache_flush() if device == "cpu" else None

    # ------------------------------------------------------------ compiled steps

    def compile(self, step: str, backend: str, spec: Any = None) -> Callable:
        """The step named `step` (of a user's model's layers `spec`) as `backend` runs it: a new
        compiled object per call, so each case has its own trace count and first compile."""
        return self.backends[backend](self.step(step, spec))

    def mask_probe(self, backend: str) -> Callable:
        """lesson.pre_activations(ops, x, w1, b1, ...) under `backend`: every ReLU's input, from
        which the correctness check reads a case's masks. One per backend for the life of the
        process (a new one per case would trace again). It compiles a partial, an object of its
        own: TensorFlow counts retraces per code object, and the probes of one function under two
        backends at two sizes (four traces in eight calls) looked to it like one function retraced
        in a loop, which it warned of."""
        if backend not in self._probes:
            from kernels import lesson

            self._probes[backend] = self.backends[backend](functools.partial(lesson.pre_activations, self.ops))
        return self._probes[backend]

    def tracing_count(self, fn: Callable) -> int | None:
        """How often a compiled `fn` has traced (graphs made); None for an eager step."""
        return None

    def trace(self, fn: Callable, args: Sequence[Any]) -> None:
        """Trace `fn` for `args` without running it, so trace time is measured apart; a no-op for
        eager steps and for compilers that trace only when called."""

    # ------------------------------------------------------------ what a step executes

    def fresh(self, fn: Callable, backend: str) -> Callable:
        """`fn` made anew, with none of the run-time state its calls so far built up, for the
        counters' profile: what a profiler sees must not depend on how many calls came before it.
        The default: `fn` itself (a framework whose runtime keeps no such state)."""
        return fn

    def profile(self, call: Callable[[], Any], steps: int, device: str, trace_dir: Path) -> dict[str, OpTime]:
        """{op type: OpTime} of what `steps` calls of `call` (then one sync) executed, as the
        framework's own profiler saw them, its trace written under `trace_dir` in the format its
        own tools open. The default counts and times the lesson's ops namespace (each call of
        ops.lin, ops.relu_grad, ...: what the manual and module steps are made of) and writes a
        Chrome trace (chrome://tracing, Perfetto); ProfilerUnavailable where a step does not go
        through it (an autodiff step)."""
        calls: list[tuple[str, float, float]] = []
        originals = dict(vars(self.ops))

        def timed(name: str, fn: Callable) -> Callable:
            def wrapper(*args: Any) -> Any:
                t0 = time.perf_counter()
                out = fn(*args)
                calls.append((name, t0, time.perf_counter() - t0))
                return out

            return wrapper

        for name, fn in originals.items():
            setattr(self.ops, name, timed(name, fn))
        try:
            self.run_steps(call, steps, device)
        finally:
            for name, fn in originals.items():
                setattr(self.ops, name, fn)
        if steps and not calls:
            raise ProfilerUnavailable(
                f"{self.name} has no profiler, and this step does not go through the lesson's "
                "ops namespace the harness can count"
            )
        trace_dir.mkdir(parents=True, exist_ok=True)
        (trace_dir / "trace.json").write_text(
            json.dumps(
                {
                    "traceEvents": [
                        {"name": name, "ph": "X", "ts": t0 * 1e6, "dur": dt * 1e6, "pid": 0, "tid": 0}
                        for name, t0, dt in calls
                    ]
                }
            )
        )
        out: dict[str, OpTime] = {}
        for name, _, dt in calls:
            seen = out.get(name, OpTime(0, 0.0))
            out[name] = OpTime(seen.count + 1, seen.host_s + dt)
        return out

    def run_steps(self, call: Callable[[], Any], steps: int, device: str) -> None:
        """`steps` calls of `call` on `device`, then one sync: what a profile records."""
        with self.placement(device):
            for _ in range(steps):
                call()
        self.sync()

    def compiled(self, fn: Callable, args: Sequence[Any], backend: str) -> dict[str, Any]:
        """What the compiler made of the compiled step `fn` for `args`, as it reports it:
        {"ops": {opcode: count}, "fusions": n, "flops": f, "bytes": b, "source": "..."} (what it
        does not report left out); {} for an eager step or a compiler that reports nothing."""
        return {}

    def flops(
        self, fn: Callable, args: Sequence[Any], backend: str
    ) -> tuple[float, str] | tuple[float, str, bool] | None:
        """(FLOPs of one call of `fn`, what counted them[, whether of what executes: False for a graph
        before its optimiser]) where the framework counts them for this backend; None where it does
        not."""
        return None

    # ------------------------------------------------------------ memory, precision, facts

    def reset_peak(self, device: str) -> None:
        """Start a new peak-memory interval on `device`, where the framework keeps one."""

    def peak_bytes(self, device: str) -> int | None:
        """Peak bytes the framework's allocator handed out since reset_peak; None where it cannot
        tell (then the harness measures the process's resident memory instead)."""
        return None

    def set_tf32(self, enabled: bool) -> None:
        """Whether float32 matrix products may use TF32 on GPUs that have it (a no-op elsewhere)."""

    def tf32_enabled(self) -> bool:
        return False

    def info(self) -> dict[str, Any]:
        """Facts for the run's fingerprint: at least the version."""
        raise NotImplementedError

    # ------------------------------------------------------------ the ceiling kernels

    def gemm(self, a: Any, b: Any) -> Any:
        """a @ b: the compute ceiling is timed on this."""
        return a @ b

    def copy(self, a: Any) -> Any:
        """A result that reads and writes every element of `a` once: the bandwidth ceiling."""
        return a * 2


def import_from(root: Path | str, name: str) -> ModuleType:
    """Module `name` (e.g. "kernels.tf_steps") as the checkout at `root` has it, imported with
    that checkout's own package (its modules import one another by their usual names), without
    replacing this process's modules of that package: those are set aside while it imports and
    put back after. The returned module keeps its own package's modules as its globals."""
    package = name.split(".")[0]
    ours = {k: v for k, v in sys.modules.items() if k == package or k.startswith(package + ".")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
        if not str(getattr(module, "__file__", "")).startswith(str(Path(root).resolve())):
            raise ImportError(f"{name} did not come from {root}")
        return module
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[k]
        sys.modules.update(ours)
