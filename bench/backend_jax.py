"""The JAX adapter: the kernels' steps op by op (eager) and as one XLA program (jax.jit), on CPU and GPU.

Importing this module imports JAX with float64 enabled and GPU memory taken as needed (see _import_jax).
"""
import functools
import os

import numpy as np


def _import_jax():
    """Import JAX as the harness needs it; both settings must be made before the first array exists.
    float64: off by default in JAX; float32 cases stay float32 (Python scalars are weakly typed).
    GPU memory: by default JAX takes 75% of it up front, which would hide every case's needs from the
    memory budget (nvidia-smi's free memory); an explicit XLA_PYTHON_CLIENT_PREALLOCATE is kept."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax


jax = _import_jax()

from kernels.jax_steps import STEPS, hidden_pre as _hidden_pre  # noqa: E402,F401  (STEPS is the adapter API)

NAME = "jax"
_PLATFORMS = {"cpu": "cpu", "gpu": "gpu"}

# The outputs of the latest call made through this adapter; sync() waits for them.
_latest = []


def _kept(out):
    _latest[:] = [out]
    return out


def _synced(compile):
    """compile(step) -> step whose outputs sync() waits for (JAX returns before the work is done)."""
    def make(step):
        fn = compile(step)

        @functools.wraps(step)
        def call(*args):
            return _kept(fn(*args))

        call.compiled = fn
        return call
    return make


def _jit(step):
    """jax.jit of a new function object: jit keeps its trace cache per function, shared by every
    jit of the same step, so each case gets its own trace count and first compile this way."""
    @functools.wraps(step)
    def fresh(*args):
        return step(*args)
    return jax.jit(fresh)


BACKENDS = {"eager": _synced(lambda step: step), "jit": _synced(_jit)}


@functools.cache
def _device(name):
    """The first JAX device of the harness's device `name`, or None where there is none (looked up
    once: placement runs inside every timed call)."""
    try:
        return jax.devices(_PLATFORMS[name])[0]
    except RuntimeError:   # no backend of that platform here
        return None


def devices():
    return ["cpu", "gpu"] if _device("gpu") else ["cpu"]


def configure_gpus():
    """Nothing left to do: _import_jax already made GPU memory be taken as needed."""


def placement(device):
    return jax.default_device(_device(device))


def to_device(arrays, dtype, device):
    """Copies of NumPy `arrays` as `dtype` arrays committed to `device`, complete when returned."""
    out = tuple(jax.device_put(np.asarray(a, dtype), _device(device)) for a in arrays)
    return jax.block_until_ready(out)


def to_numpy(a):
    return np.asarray(a)


def sync():
    """Wait for the latest call's outputs. Every call the harness times is followed by sync() or is
    one of a batch ended by it, and a device runs calls in the order they were made, so this waits
    for every queued kernel."""
    if _latest:
        jax.block_until_ready(_latest.pop())


@functools.cache
def hidden_pre(backend):
    """One compiled probe per backend, reused across cases."""
    return BACKENDS[backend](_hidden_pre)


def tracing_count(fn):
    """Programs jax.jit has traced and compiled for `fn`; None for an eager step."""
    size = getattr(getattr(fn, "compiled", None), "_cache_size", None)
    return size() if size else None


def trace(fn, args):
    """Trace to a jaxpr without compiling or running (a no-op for eager)."""
    compiled = getattr(fn, "compiled", None)
    if hasattr(compiled, "trace"):
        compiled.trace(*args)
    elif hasattr(compiled, "lower"):
        compiled.lower(*args)


def _peak(device):
    stats = _device(device).memory_stats() if device == "gpu" else None
    return (stats or {}).get("peak_bytes_in_use")


_peak_at_reset = {}


def reset_peak(device):
    """JAX keeps one peak per device for the process and cannot reset it: remember where it stands."""
    _peak_at_reset[device] = _peak(device)


def peak_bytes(device):
    """The GPU allocator's peak if it rose since reset_peak (then this stretch of work reached it);
    None if it did not (the work's own peak is then unknown, below an earlier one), or on CPU."""
    peak = _peak(device)
    if peak is None or peak <= (_peak_at_reset.get(device) or 0):
        return None
    return int(peak)


def set_tf32(enabled):
    """TF32 off: float32 matmuls at full precision ("float32", alias "highest") on every backend."""
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if enabled else "float32")


def tf32_enabled():
    """Whether float32 matmuls may use TF32: on a GPU, unless the precision says float32."""
    return _device("gpu") is not None and jax.config.jax_default_matmul_precision not in ("float32", "highest")


def info():
    present = jax.devices()
    client = getattr(present[0], "client", None)
    return {
        "version": jax.__version__,
        "default_backend": jax.default_backend(),
        "platform_version": getattr(client, "platform_version", None),
        "devices": [f"{d.platform}:{d.device_kind}" for d in present],
        "x64": bool(jax.config.jax_enable_x64),
        "matmul_precision": jax.config.jax_default_matmul_precision,
        "tf32": tf32_enabled(),
        "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
    }


def gemm(a, b):
    return _kept(a @ b)


def copy(a):
    """Reads and writes every element once (a multiply XLA cannot fold into an alias of `a`)."""
    return _kept(a * 2)
