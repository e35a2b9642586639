"""TensorFlow: the steps of kernels/tf_steps.py eagerly, under tf.function and under XLA, on CPU and GPU.

Loading the framework (TensorFlow()) imports TensorFlow, with its import-time log noise filtered
out; importing this module does not.
"""
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from bench.frameworks.base import GPU_FLUSH_BYTES, Framework
from kernels import reference

# Lines TensorFlow's C++ side prints whatever TF_CPP_MIN_LOG_LEVEL says.
_IMPORT_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cudart_stub|Could not find cuda drivers"
    r"|Unable to register cu(DNN|FFT|BLAS)|computation placer|TF-TRT Warning"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags"
    r"|E0000 00:00|W0000 00:00|I0000 00:00")


@contextlib.contextmanager
def _quiet():
    """Run the block with file descriptor 2 captured, then pass on every line that is not known
    noise: TensorFlow's C++ side logs at import and at its first device query (a failed cuInit on a
    machine without a GPU) whatever TF_CPP_MIN_LOG_LEVEL says."""
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
            text = captured.read().decode(errors="replace")
            for line in text.splitlines():
                if line.strip() and not _IMPORT_NOISE.search(line):
                    print(line, file=sys.stderr)


tf: Any = None   # TensorFlow, imported when the framework loads (_import)
_GPUS: tuple = ()
_DEVICE_NAMES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}
_MEMORY_NAMES = {"cpu": "CPU:0", "gpu": "GPU:0"}


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
        import tensorflow
        gpus = tuple(tensorflow.config.list_physical_devices("GPU"))
        for gpu in gpus:
            with contextlib.suppress(RuntimeError, ValueError):
                tensorflow.config.experimental.set_memory_growth(gpu, True)
        tensorflow.constant(0.0)
    tf, _GPUS = tensorflow, gpus


def _gpus():
    """The GPUs TensorFlow sees (asked once, at import)."""
    return _GPUS


class TensorFlow(Framework):
    name = "tensorflow"
    package = "tensorflow"
    kernels = "kernels.tf_steps"
    thread_env = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    steps = {"manual": "manual_step", "tape": "tape_step", "module": "module_step", "broadcast": "broadcast_step",
             "keras": "keras_step"}
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
                buffer.assign_add(tf.ones_like(buffer))   # reads and writes every line
            self.sync()
        return flush

    def gemm(self, a: Any, b: Any) -> Any:
        return tf.linalg.matmul(a, b)
