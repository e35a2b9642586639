"""TensorFlow: the steps of kernels/tf_steps.py eagerly, under tf.function and under XLA, on CPU and GPU.

Loading the framework (TensorFlow()) imports TensorFlow, with its import-time log noise filtered
out; importing this module does not.
"""

import contextlib
import io
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.frameworks import hlo, xplane
from bench.frameworks.base import GPU_FLUSH_BYTES, Framework, OpTime, ProfilerUnavailable, quiet_stderr
from kernels import reference

# Lines TensorFlow's C++ side prints whatever TF_CPP_MIN_LOG_LEVEL says.
_IMPORT_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cudart_stub|Could not find cuda drivers"
    r"|Unable to register cu(DNN|FFT|BLAS)|computation placer|TF-TRT Warning"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags"
    r"|E0000 00:00|W0000 00:00|I0000 00:00"
)


def _quiet() -> contextlib.AbstractContextManager:
    """TensorFlow's C++ side logs at import and at its first device query (a failed cuInit on a
    machine without a GPU) whatever TF_CPP_MIN_LOG_LEVEL says: that noise dropped."""
    return quiet_stderr(_IMPORT_NOISE)


tf: Any = None  # TensorFlow, imported when the framework loads (_import)
_GPUS: tuple = ()
_DEVICE_NAMES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}
_MEMORY_NAMES = {"cpu": "CPU:0", "gpu": "GPU:0"}


@contextlib.contextmanager
def without_jax() -> Iterator[None]:
    """TensorFlow's import without JAX's: TFLite imports jax where it is installed (for converting
    JAX functions, which this harness never does; it takes the ImportError as 'no JAX'), a second
    or more of every TensorFlow process's start. Blocked only while
    TensorFlow imports, so JAX still imports normally afterwards in the same process."""
    blocked = "jax" not in sys.modules
    if blocked:
        sys.modules["jax"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if blocked and sys.modules.get("jax", False) is None:
            del sys.modules["jax"]


def _import():
    """Import TensorFlow quietly, once. GPU memory is taken as needed rather than all at once, so
    peaks and nvidia-smi mean something: this must precede the first op, which initialises the
    devices, and that first op logs (a failed cuInit on a machine without a GPU) whatever the log
    level: both happen here, quietly."""
    global tf, _GPUS
    if tf is not None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet():
        with without_jax():
            import tensorflow
        gpus = tuple(tensorflow.config.list_physical_devices("GPU"))
        for gpu in gpus:
            with contextlib.suppress(RuntimeError, ValueError):
                tensorflow.config.experimental.set_memory_growth(gpu, True)
        tensorflow.constant(0.0)
    tf, _GPUS = tensorflow, gpus


PROFILE_SETTLE_S = 0.05  # after the profiled steps, before the profiler stops (profile())
_GRAPH_OP = re.compile(r"^[^:\s]+:([A-Za-z_][A-Za-z0-9_]*)$")  # "node_name:OpType"


def _tf_op(e: xplane.Event) -> str | None:
    """The op type an event of TensorFlow's trace is an execution of, or None."""
    name = e.name
    if e.plane.startswith("/device:"):
        return f"kernel:{name}" if name else None
    if name.startswith("EagerLocalExecute: "):
        op = name[len("EagerLocalExecute: ") :]
        if op == "SyncDevice":
            return None  # the harness's sync, not the step's
        return "function call" if op.startswith("__inference_") else op
    graph_op = _GRAPH_OP.match(name)
    if graph_op and not graph_op.group(1).startswith("__inference_"):
        # a node a tf.function's executor ran: on its inter-op threads (tf_Compute), or inline on the
        # calling thread when the executor chose to (it does under load): counted wherever it ran
        return graph_op.group(1)
    if "Eigen" in e.line and not name.startswith(("ThreadpoolListener", "end: ", "ThunkExecutor")) and "::" not in name:
        return "xla:" + re.sub(r"\.\d+$", "", name)  # an XLA thunk, by its instruction's name
    return None


def _gpus():
    """The GPUs TensorFlow sees (asked once, at import)."""
    return _GPUS


class TensorFlow(Framework):
    name = "tensorflow"
    package = "tensorflow"
    kernels = "kernels.tf_steps"
    thread_env = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    steps = {
        "manual": "manual_step",
        "tape": "tape_step",
        "module": "module_step",
        "broadcast": "broadcast_step",
        "keras": "keras_step",
    }
    backends = {
        "eager": lambda step: step,
        "function": lambda step: tf.function(step),
        "xla": lambda step: tf.function(step, jit_compile=True),
    }

    def load_framework(self) -> None:
        _import()

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if _gpus() else ["cpu"]

    def placement(self, device: str) -> contextlib.AbstractContextManager[Any]:
        return tf.device(_DEVICE_NAMES[device])

    def to_device(self, arrays: Iterable[np.ndarray], dtype: str, device: str) -> tuple[Any, ...]:
        """tf.identity makes the copy now, on `device`, not at first use."""
        with self.placement(device):
            return tuple(tf.identity(tf.constant(np.asarray(a, reference.numpy_dtype(dtype)))) for a in arrays)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.numpy()

    def sync(self) -> None:
        """Wait until every device has finished its queued work (tf.test.experimental.sync_devices, an
        eager-mode call: the harness calls it between timed calls, never inside a graph)."""
        tf.test.experimental.sync_devices()

    def tracing_count(self, fn: Callable) -> int | None:
        get = getattr(fn, "experimental_get_tracing_count", None)
        return get() if get else None

    def trace(self, fn: Callable, args: Sequence[Any]) -> None:
        if hasattr(fn, "get_concrete_function"):
            fn.get_concrete_function(*args)

    def fresh(self, fn: Callable, backend: str) -> Callable:
        """A new tf.function of the same Python step, under the "function" backend (XLA's ops are
        counted from its compiled module; eager ops have no executor). A graph executor keeps a
        running cost estimate per node, 1e8 cycles at first and decaying by a tenth a call towards
        the measured cost; a node under 8,000 cycles is "inexpensive" from then on, traced only at
        the profiler's verbose level 3 (and some, run inline, not even there: seen here after 200
        calls). After the ~90 calls of a timing, cheap
        nodes (a StridedSlice, a Mean) dropped out of the count, or not, by how many calls the
        timing made (ops 17 -> 16 a step between two sides of a gate on unchanged code). A fresh
        executor's first calls trace every node."""
        python_function = getattr(fn, "python_function", None)
        if backend == "function" and python_function is not None:
            return tf.function(python_function)
        return fn

    def profile(self, call: Callable[[], Any], steps: int, device: str, trace_dir: Path) -> dict[str, OpTime]:
        """TensorFlow's profiler (tf.profiler.experimental): the ops eager execution ran
        ("EagerLocalExecute: MatMul"), the graph ops a tf.function's executor ran after Grappler
        ("node:_MklMatMul"), XLA's thunks ("dot.3", "fusion.2", by instruction), a GPU's kernels;
        the trace is TensorBoard's (plugins/profile/)."""
        from tensorflow.tsl.profiler.protobuf import xplane_pb2

        trace_dir.mkdir(parents=True, exist_ok=True)
        try:
            tf.profiler.experimental.start(str(trace_dir))
        except Exception as e:  # noqa: BLE001 - another profile in progress, no profiler in this build
            raise ProfilerUnavailable(f"TensorFlow's profiler did not start: {e}") from None
        try:
            self.run_steps(call, steps, device)
            # A tf.function returns when its outputs are ready, which can be before the executor's
            # thread has closed the trace event of its last op; stopping at once lost that event
            # now and then (one Mul in two steps: a count that is no longer whole), so wait a moment.
            time.sleep(PROFILE_SETTLE_S)
        finally:
            tf.profiler.experimental.stop()
        counts = xplane.tally(xplane.events_from_protobuf(xplane.trace_file(trace_dir), xplane_pb2), _tf_op)
        return {op: OpTime(*c) for op, c in counts.items()}

    def compiled(self, fn: Callable, args: Sequence[Any], backend: str) -> dict[str, Any]:
        """Under XLA, the instructions of the optimized module (experimental_get_compiler_ir);
        TensorFlow reports no XLA cost analysis and compiles nothing else."""
        if backend != "xla":
            return {}
        function: Any = fn  # a tf.function
        text = function.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
        ops = hlo.entry_ops(text)
        return {
            "ops": ops,
            "fusions": hlo.fusions(ops),
            "source": "XLA's optimized HLO module, ENTRY computation",
            "flops": float(hlo.dot_flops(text)),
            "flops_source": "XLA's optimized HLO module: its dot products (2 x output x contracting size)",
        }

    def flops(self, fn: Callable, args: Sequence[Any], backend: str) -> tuple[float, str, bool] | None:
        """TensorFlow's graph profiler: the FLOP statistics its ops register (MatMul's 2mnk, ...),
        summed over the step's traced graph. Eager runs that graph's ops one by one, as traced (what
        executes); a tf.function's graph is before Grappler, which may merge or drop ops (not what
        executes: the third element says so); XLA's count comes from its module (compiled())."""
        function: Any = fn if backend != "eager" else tf.function(fn)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        from tensorflow.python.util import deprecation  # its v1-API notice, said once per process otherwise

        with deprecation.silence(), contextlib.redirect_stdout(io.StringIO()):
            graph = function.get_concrete_function(*args).graph
            total = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
        return (
            float(total),
            "TensorFlow's graph profiler (registered FLOP statistics of the traced graph)",
            backend == "eager",
        )

    def reset_peak(self, device: str) -> None:
        if device == "gpu":
            tf.config.experimental.reset_memory_stats(_MEMORY_NAMES[device])

    def peak_bytes(self, device: str) -> int | None:
        """None on CPU, where get_memory_info gives zeros or raises: the harness measures the process."""
        if device != "gpu":
            return None
        try:
            return int(tf.config.experimental.get_memory_info(_MEMORY_NAMES[device])["peak"])
        except (ValueError, RuntimeError):
            return None

    def set_tf32(self, enabled: bool) -> None:
        tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))

    def tf32_enabled(self) -> bool:
        return bool(tf.config.experimental.tensor_float_32_execution_enabled())

    def info(self) -> dict[str, Any]:
        build = dict(tf.sysconfig.get_build_info())
        return {
            "version": tf.__version__,
            "cuda_build": bool(build.get("is_cuda_build")),
            "cuda_version": build.get("cuda_version"),
            "cudnn_version": build.get("cudnn_version"),
            "gpus_visible": [d.name for d in _gpus()],
            "tf32": self.tf32_enabled(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)"),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "jit_autoclustering": str(tf.config.optimizer.get_jit()),
        }

    def flusher(self, device: str) -> Callable[[], None] | None:
        if device != "gpu":
            return super().flusher(device)
        with self.placement("gpu"):
            buffer = tf.Variable(tf.zeros(GPU_FLUSH_BYTES // 4))

        def flush():
            with self.placement("gpu"):
                buffer.assign_add(tf.ones_like(buffer))  # reads and writes every line
            self.sync()

        return flush

    def gemm(self, a: Any, b: Any) -> Any:
        return tf.linalg.matmul(a, b)
