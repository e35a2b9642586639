"""JAX: the steps of kernels/jax_steps.py op by op (eager) and as one XLA program (jax.jit), on CPU and GPU.

Loading the framework (Jax()) imports JAX with float64 enabled and GPU memory taken as needed
(_import); importing this module does not.
"""

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import process
from bench.frameworks import hlo, xplane
from bench.frameworks.base import GPU_FLUSH_BYTES, Framework, OpTime
from kernels import reference

jax: Any = None  # JAX, imported when the framework loads (_import)


def _import():
    """Import JAX as the harness needs it; each setting must be made before the first array exists.
    float64: off by default in JAX; float32 cases stay float32 (Python scalars are weakly typed).
    GPU memory: by default JAX takes 75% of it up front, which would hide every case's needs from the
    memory budget (nvidia-smi's free memory); an explicit XLA_PYTHON_CLIENT_PREALLOCATE is kept.
    CPU threads: as many as THREADS_VAR says, where it is set (_start_cpu_client)."""
    global jax
    if jax is not None:
        return
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax as imported

    imported.config.update("jax_enable_x64", True)
    _start_cpu_client(imported, _threads_asked())
    jax = imported


THREADS_VAR = "BENCH_JAX_THREADS"  # the harness's own: JAX reads no variable for its CPU threads
_cpu_pool: int | None = None  # the threads of XLA's CPU pool, as _start_cpu_client sized it


def _threads_asked() -> int | None:
    """The CPU threads THREADS_VAR asks JAX for; None when unset, empty or not a positive number."""
    text = os.environ.get(THREADS_VAR, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _start_cpu_client(imported, threads: int | None) -> None:
    """Start JAX's backends, its CPU client's thread pool sized to `threads` where that is fewer than
    the CPUs this process may use. XLA sizes that pool once, as the client starts, by the CPUs the
    starting thread may run on, and JAX has no setting for it (jax-ml/jax#1539; XLA_FLAGS'
    --xla_cpu_multi_thread_eigen=false leaves the pool's other threads). So the starting thread is
    bound to `threads` CPUs for that moment, and every thread gets the process's CPUs back after:
    the pool keeps its size and its threads run anywhere, as `--threads` means for the others."""
    global _cpu_pool
    allowed = os.sched_getaffinity(0)
    _cpu_pool = min(threads or len(allowed), len(allowed))
    if _cpu_pool == len(allowed):
        return
    os.sched_setaffinity(0, sorted(allowed)[:_cpu_pool])
    try:
        imported.devices()
    finally:
        process.pin(allowed)


_PLATFORMS = {"cpu": "cpu", "gpu": "gpu"}


# The outputs of the latest call made through this framework; Jax.sync() waits for them. JAX
# returns before the work is done, and a device runs calls in the order they were made, so waiting
# for the latest call's outputs waits for every queued kernel.
_latest: list[Any] = []


def _kept(out):
    _latest[:] = [out]
    return out


def _synced(compile):
    """compile(step) -> a step whose outputs Jax.sync() waits for."""

    def make(step):
        fn = compile(step)

        @functools.wraps(step)
        def call(*args):
            return _kept(fn(*args))

        call.compiled = fn  # type: ignore[attr-defined]  # a function attribute: tracing_count and trace read it
        return call

    return make


def _jit(step):
    """jax.jit of a new function object: jit keeps its trace cache per function, shared by every
    jit of the same step, so each case gets its own trace count and first compile this way."""

    @functools.wraps(step)
    def fresh(*args):
        return step(*args)

    return jax.jit(fresh)


@functools.cache
def _device(name):
    """The first JAX device of the harness's device `name`, or None where there is none (looked up
    once: placement runs inside every timed call)."""
    try:
        return jax.devices(_PLATFORMS[name])[0]
    except RuntimeError:  # no backend of that platform here
        return None


def _jax_op(e: xplane.Event) -> str | None:
    """The op type an event of JAX's trace is an execution of, or None."""
    name = e.name
    if e.plane.startswith("/device:"):
        return f"kernel:{name}" if name else None
    if name.startswith("PjitFunction("):
        return name[len("PjitFunction(") : -1]
    if (
        "XLA" in e.line
        and not name.startswith(("ThreadpoolListener", "end: ", "ThunkExecutor", "Slinky"))
        and "::" not in name
        and not name.startswith("$")
    ):
        return "xla:" + re.sub(r"\.\d+$", "", name)  # a thunk, by its instruction's name
    return None


def _cost(analysis: Any) -> dict[str, float]:
    """FLOPs and bytes accessed from XLA's cost analysis (a dict, or a list of one in older JAX)."""
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    out = {}
    if analysis.get("flops") is not None:
        out["flops"] = float(analysis["flops"])
    if analysis.get("bytes accessed") is not None:
        out["bytes"] = float(analysis["bytes accessed"])
    return out


def _peak(device):
    stats = _device(device).memory_stats() if device == "gpu" else None
    return (stats or {}).get("peak_bytes_in_use")


class Jax(Framework):
    name = "jax"
    package = "jax"
    kernels = "kernels.jax_steps"
    steps = {"manual": "manual_step", "grad": "grad_step"}
    backends = {"eager": _synced(lambda step: step), "jit": _synced(_jit)}
    thread_env = (THREADS_VAR,)  # read as it loads (_start_cpu_client)

    def __init__(self) -> None:
        self._peak_at_reset: dict[str, int | None] = {}
        super().__init__()

    def load_framework(self) -> None:
        _import()

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if _device("gpu") else ["cpu"]

    def placement(self, device: str) -> contextlib.AbstractContextManager[Any]:
        return jax.default_device(_device(device))

    def to_device(self, arrays: Iterable[np.ndarray], dtype: str, device: str) -> tuple[Any, ...]:
        out = tuple(jax.device_put(np.asarray(a, reference.numpy_dtype(dtype)), _device(device)) for a in arrays)
        return jax.block_until_ready(out)

    def sync(self) -> None:
        """Every call the harness times is followed by sync() or is one of a batch ended by it."""
        if _latest:
            jax.block_until_ready(_latest.pop())

    def tracing_count(self, fn: Callable) -> int | None:
        """Programs jax.jit has traced and compiled for `fn`; None for an eager step."""
        size = getattr(getattr(fn, "compiled", None), "_cache_size", None)
        return size() if size else None

    def trace(self, fn: Callable, args: Sequence[Any]) -> None:
        """Trace to a jaxpr without compiling or running (a no-op for eager)."""
        compiled: Any = getattr(fn, "compiled", None)
        if hasattr(compiled, "trace"):
            compiled.trace(*args)
        elif hasattr(compiled, "lower"):
            compiled.lower(*args)

    def profile(self, call: Callable[[], Any], steps: int, device: str, trace_dir: Path) -> dict[str, OpTime]:
        """jax.profiler: each op eager execution dispatched ("PjitFunction(matmul)": one a
        jax.numpy call), the XLA thunks of a compiled program by instruction (sampled across
        threads: timed here, counted from the compiled module), a GPU's kernels; the trace is
        TensorBoard's and XProf's (plugins/profile/)."""
        trace_dir.mkdir(parents=True, exist_ok=True)
        with jax.profiler.trace(str(trace_dir)):
            self.run_steps(call, steps, device)
        events = xplane.events_from_jax(xplane.trace_file(trace_dir), jax.profiler.ProfileData)
        return {op: OpTime(*c) for op, c in xplane.tally(events, _jax_op).items()}

    def compiled(self, fn: Callable, args: Sequence[Any], backend: str) -> dict[str, Any]:
        """Under jit: the instructions of the optimized module and XLA's cost analysis of it."""
        if backend != "jit":
            return {}
        jitted: Any = fn  # the harness's jit wrapper: .compiled is jax.jit's function
        program = jitted.compiled.lower(*args).compile()
        ops = hlo.entry_ops(program.as_text())
        return {
            "ops": ops,
            "fusions": hlo.fusions(ops),
            **_cost(program.cost_analysis()),
            "source": "XLA's optimized HLO module, ENTRY computation; its cost analysis",
            "flops_source": "XLA cost analysis of the optimized program",
        }

    def flops(self, fn: Callable, args: Sequence[Any], backend: str) -> tuple[float, str] | None:
        """XLA's cost analysis: of the optimized program under jit, of the unoptimized one (each
        op as eager dispatches it) for an eager step."""
        wrapped: Any = fn  # the harness's wrapper: .compiled is what it calls (jax.jit's, or the step)
        if backend == "jit":
            cost = _cost(wrapped.compiled.lower(*args).compile().cost_analysis())
            source = "XLA cost analysis of the optimized program"
        else:
            cost = _cost(jax.jit(wrapped.compiled).lower(*args).cost_analysis())
            source = "XLA cost analysis of the unoptimized program (the ops eager dispatches)"
        return (cost["flops"], source) if "flops" in cost else None

    def reset_peak(self, device: str) -> None:
        """JAX keeps one peak per device for the process and cannot reset it: remember where it stands."""
        self._peak_at_reset[device] = _peak(device)

    def peak_bytes(self, device: str) -> int | None:
        """The GPU allocator's peak if it rose since reset_peak (then this stretch of work reached it);
        None if it did not (the work's own peak is then unknown, below an earlier one), or on CPU."""
        peak = _peak(device)
        if peak is None or peak <= (self._peak_at_reset.get(device) or 0):
            return None
        return int(peak)

    def set_tf32(self, enabled: bool) -> None:
        """TF32 off: float32 matmuls at full precision ("float32", alias "highest") on every backend."""
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled else "float32")

    def tf32_enabled(self) -> bool:
        """Whether float32 matmuls may use TF32: on a GPU, unless the precision says float32."""
        return _device("gpu") is not None and jax.config.jax_default_matmul_precision not in ("float32", "highest")

    def info(self) -> dict[str, Any]:
        present = jax.devices()
        client = getattr(present[0], "client", None)
        return {
            "version": jax.__version__,
            "default_backend": jax.default_backend(),
            "platform_version": getattr(client, "platform_version", None),
            "devices": [f"{d.platform}:{d.device_kind}" for d in present],
            "x64": bool(jax.config.jax_enable_x64),
            "matmul_precision": jax.config.jax_default_matmul_precision,
            "tf32": self.tf32_enabled(),
            "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
            "cpu_threads": _cpu_pool,
        }

    def flusher(self, device: str) -> Callable[[], None] | None:
        if device != "gpu":
            return super().flusher(device)
        buffer = [jax.device_put(np.zeros(GPU_FLUSH_BYTES // 4, np.float32), _device("gpu"))]

        def flush():
            buffer[0] = jax.block_until_ready(buffer[0] + 1.0)  # reads and writes every line

        return flush

    def gemm(self, a: Any, b: Any) -> Any:
        return _kept(a @ b)

    def copy(self, a: Any) -> Any:
        return _kept(a * 2)
