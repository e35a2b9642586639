"""The PyTorch adapter: the lesson's steps eager and under torch.compile (Inductor), on CPU and CUDA.

Importing this module imports PyTorch; nothing else happens until a function is called.
"""
import contextlib
import functools
import warnings

import numpy as np
import torch

from kernels.torch_steps import STEPS, hidden_pre as _hidden_pre  # noqa: F401  (STEPS is the adapter API)

NAME = "torch"

# Inductor advises TF32 on every compile on an Ampere+ GPU; the harness keeps it off on purpose
# (the check and the timing are of float32), and each record says so in `tf32`.
warnings.filterwarnings("ignore", message="TensorFloat32 tensor cores for float32 matrix multiplication")
_DEVICE_NAMES = {"cpu": "cpu", "gpu": "cuda"}


def _compiled(fn):
    """torch.compile(fn) that counts the graphs Inductor compiled for it (`fn.graphs()`): one per
    graph, so a graph break or a recompile adds one. dynamic=False: every case's shapes are compiled
    as constants, as XLA does, never as symbolic sizes."""
    graphs = 0
    inductor = torch._dynamo.lookup_backend("inductor")

    def backend(gm, example_inputs):
        nonlocal graphs
        graphs += 1
        return inductor(gm, example_inputs)

    compiled = torch.compile(fn, backend=backend, dynamic=False)
    compiled.graphs = lambda: graphs
    return compiled


# Dynamo's settings for the compile backend, made when a step is first compiled.
# Recompile limits: Dynamo keeps compiled code per code object, so every case of a step (its own
# shapes, dtype, device, and torch.compile object) adds an entry there, and past the limit (8) a
# step silently runs eagerly; a sweep needs more. trace_autograd_ops (PyTorch 2.11+): trace
# Tensor.backward() into the graph; where it is missing, the autograd step breaks the graph and
# runs eagerly, which tracing_count shows as 0 graphs.
_DYNAMO_CONFIG = {"recompile_limit": 1024, "cache_size_limit": 1024, "trace_autograd_ops": True}


def _compile(step):
    config = torch._dynamo.config
    for name, value in _DYNAMO_CONFIG.items():
        if hasattr(config, name):
            setattr(config, name, value)
    return _compiled(step)


BACKENDS = {"eager": lambda step: step, "compile": _compile}


def devices():
    return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]


def configure_gpus():
    """Nothing to do: PyTorch's caching allocator takes GPU memory as it is needed."""


def placement(device):
    """Every tensor a step makes follows its inputs' device, and to_device places the inputs, so no
    default-device mode is needed (one would intercept every op, a cost inside the timed calls)."""
    return contextlib.nullcontext()


def to_device(arrays, dtype, device):
    """Copies of NumPy `arrays` as `dtype` tensors on `device` (torch.tensor always copies)."""
    out = tuple(torch.tensor(np.asarray(a, dtype), device=_DEVICE_NAMES[device]) for a in arrays)
    sync()
    return out


def to_numpy(a):
    return a.detach().cpu().numpy()


def sync():
    """Wait for every queued CUDA kernel; CPU ops have finished when they return."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


@functools.cache
def hidden_pre(backend):
    """One compiled probe per backend, reused across cases."""
    return BACKENDS[backend](_hidden_pre)


def tracing_count(fn):
    """Graphs torch.compile has compiled for `fn`; None for an eager (plain Python) step."""
    graphs = getattr(fn, "graphs", None)
    return graphs() if graphs else None


def trace(fn, args):
    """A no-op: torch.compile traces and compiles in the first call, which is timed as such."""


def reset_peak(device):
    if device == "gpu":
        torch.cuda.reset_peak_memory_stats()


def peak_bytes(device):
    """Peak bytes the CUDA caching allocator handed out since reset_peak; None on CPU, where PyTorch
    keeps no count (the caller measures the process instead)."""
    return int(torch.cuda.max_memory_allocated()) if device == "gpu" else None


def set_tf32(enabled):
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


def tf32_enabled():
    return bool(torch.backends.cuda.matmul.allow_tf32)


def info():
    cuda = torch.cuda.is_available()
    return {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda is not None,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpus_visible": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "tf32": tf32_enabled(),
        "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
    }


def gemm(a, b):
    return a @ b


def copy(a):
    """Reads and writes every element once."""
    return a.clone()
