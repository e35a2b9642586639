"""The TensorFlow adapter: the kernels' steps under eager, tf.function and XLA, on CPU and GPU.

Importing this module imports TensorFlow, with its import-time log noise filtered out.
"""
import contextlib
import functools
import os
import re
import sys
import tempfile
from functools import partial

import numpy as np

# Lines TensorFlow's C++ side prints at import whatever TF_CPP_MIN_LOG_LEVEL says.
_IMPORT_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cudart_stub|Could not find cuda drivers"
    r"|Unable to register cu(DNN|FFT|BLAS)|computation placer|TF-TRT Warning"
    r"|This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler flags"
    r"|E0000 00:00|W0000 00:00|I0000 00:00")


def _import_tensorflow():
    """Import TensorFlow with stderr captured, then pass on every line that is not known noise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    for line in text.splitlines():
        if line.strip() and not _IMPORT_NOISE.search(line):
            print(line, file=sys.stderr)
    return tensorflow


tf = _import_tensorflow()

from kernels.steps import STEPS, hidden_pre as _hidden_pre  # noqa: E402,F401  (STEPS is the adapter API; tf first)

NAME = "tensorflow"
BACKENDS = {
    "eager": lambda step: step,
    "function": tf.function,
    "xla": partial(tf.function, jit_compile=True),
}
_DEVICE_NAMES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}
_MEMORY_NAMES = {"cpu": "CPU:0", "gpu": "GPU:0"}


def devices():
    present = ["cpu"]
    if tf.config.list_physical_devices("GPU"):
        present.append("gpu")
    return present


def configure_gpus():
    """Allocate GPU memory as needed rather than all at once, so peaks and nvidia-smi mean something.
    Must run before the first op; a no-op without a GPU."""
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)


def placement(device):
    return tf.device(_DEVICE_NAMES[device])


def to_device(arrays, dtype, device):
    """Copies of NumPy `arrays` as `dtype` tensors on `device` (the copy is made now, not at first use)."""
    with placement(device):
        return tuple(tf.identity(tf.constant(np.asarray(a, dtype))) for a in arrays)


def to_numpy(a):
    return a.numpy()


def sync():
    """Wait until every device has finished its queued work (eager only; see TF-NOTES §1)."""
    tf.test.experimental.sync_devices()


@functools.cache
def hidden_pre(backend):
    """One compiled probe per backend, reused across cases (a new one per case would retrace)."""
    return BACKENDS[backend](_hidden_pre)


def tracing_count(fn):
    """How many times a tf.function has traced; None for an eager (plain Python) step."""
    get = getattr(fn, "experimental_get_tracing_count", None)
    return get() if get else None


def trace(fn, args):
    """Trace (build the graph) without running it; a no-op for eager."""
    if hasattr(fn, "get_concrete_function"):
        fn.get_concrete_function(*args)


def reset_peak(device):
    if device == "gpu":
        tf.config.experimental.reset_memory_stats(_MEMORY_NAMES[device])


def peak_bytes(device):
    """Peak bytes TensorFlow's allocator handed out since reset_peak; None on CPU, where the API
    gives zeros or raises (TF-NOTES §3), so the caller measures the process instead."""
    if device != "gpu":
        return None
    try:
        return int(tf.config.experimental.get_memory_info(_MEMORY_NAMES[device])["peak"])
    except (ValueError, RuntimeError):
        return None


def set_tf32(enabled):
    tf.config.experimental.enable_tensor_float_32_execution(bool(enabled))


def tf32_enabled():
    return bool(tf.config.experimental.tensor_float_32_execution_enabled())


def info():
    build = dict(tf.sysconfig.get_build_info())
    return {
        "version": tf.__version__,
        "cuda_build": bool(build.get("is_cuda_build")),
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
        "gpus_visible": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tf32": tf32_enabled(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux builds)"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "jit_autoclustering": str(tf.config.optimizer.get_jit()),
    }


def gemm(a, b):
    return tf.linalg.matmul(a, b)


def copy(a):
    """Reads and writes every element once (tf.identity alone may alias its input)."""
    return a * tf.ones((), a.dtype)
