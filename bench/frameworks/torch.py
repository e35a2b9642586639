"""PyTorch, the lesson's original: the steps of kernels/torch_steps.py eagerly and under
torch.compile (Inductor), on CPU and CUDA.

Loading the framework (Torch()) imports PyTorch; importing this module does not.
"""

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import timing
from bench.frameworks.base import GPU_FLUSH_BYTES, Framework, OpTime, quiet_stderr
from kernels import reference

torch: Any = None  # PyTorch, imported when the framework loads (_import)
_DTYPES: dict = {}


def _import():
    global torch, _DTYPES
    if torch is not None:
        return
    import torch as imported

    # Inductor advises TF32 on every compile on an Ampere+ GPU; the harness keeps it off on purpose
    # (the check and the timing are of float32), and each record says so in `tf32`.
    warnings.filterwarnings("ignore", message="TensorFloat32 tensor cores for float32 matrix multiplication")
    torch = imported
    _DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _exact(a):
    """A NumPy array torch.tensor takes without changing a value: bfloat16 (which NumPy only has
    through ml_dtypes) widened to float32, exactly."""
    return a.astype(np.float32) if a.dtype.name == "bfloat16" else a


_DEVICE_NAMES = {"cpu": "cpu", "gpu": "cuda"}
# What Kineto prints to stderr around every profile, whatever KINETO_LOG_LEVEL says.
_PROFILER_NOISE = re.compile(r"^(USDT|STAGE):\S+ \S+ \d+:\d+ \w+\.cpp:\d+\]")


class CudaEventTimer:
    """CUDA events recorded around the call on its stream: the GPU's own time for the kernels,
    without the host's launch and sync overhead, which the host clock around it still gives."""

    name = "CUDA events"

    def measure(
        self, call: Callable[[], object], sync: Callable[[], object], clock: Callable[[], float]
    ) -> tuple[float, float]:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = clock()
        start.record()
        call()
        end.record()
        sync()
        host = clock() - t0
        return start.elapsed_time(end) / 1e3, host


# Dynamo's settings for the compile backend, made when a step is first compiled.
# Recompile limits: Dynamo keeps compiled code per code object, so every case of a step (its own
# shapes, dtype, device, and torch.compile object) adds an entry there, and past the limit (8) a
# step silently runs eagerly; a sweep needs more. trace_autograd_ops (PyTorch 2.11+): trace
# Tensor.backward() into the graph; where it is missing, the autograd step breaks the graph and
# runs eagerly, which tracing_count shows as 0 graphs.
_DYNAMO_CONFIG = {"recompile_limit": 1024, "cache_size_limit": 1024, "trace_autograd_ops": True}


def _compile(fn, mode=None):
    """torch.compile(fn) that counts the graphs Inductor compiled for it (`fn.graphs()`): one per
    graph, so a graph break or a recompile adds one. dynamic=False: every case's shapes are compiled
    as constants, as XLA does, never as symbolic sizes. mode="reduce-overhead" (the `graphs`
    backend) replays the compiled kernels as a CUDA graph: one launch a step instead of one a kernel,
    what launch-bound small steps need (a GPU-only backend: skipped on a CPU)."""
    config = torch._dynamo.config
    for name, value in _DYNAMO_CONFIG.items():
        if hasattr(config, name):
            setattr(config, name, value)
    graphs = 0
    inductor = torch._dynamo.lookup_backend("inductor")
    patches = torch._inductor.list_mode_options(mode) if mode else None  # reduce-overhead: triton.cudagraphs

    def backend(gm, example_inputs):
        nonlocal graphs
        graphs += 1
        if patches:
            from torch._inductor.compile_fx import compile_fx

            return compile_fx(gm, example_inputs, config_patches=patches)
        return inductor(gm, example_inputs)

    compiled = torch.compile(fn, backend=backend, dynamic=False)
    compiled.graphs = lambda: graphs
    return compiled


class Torch(Framework):
    name = "torch"
    package = "torch"
    install_note = (
        "without an NVIDIA GPU, first pip install torch --index-url https://download.pytorch.org/whl/cpu "
        "(a plain install fetches the multi-GB CUDA build)"
    )
    kernels = "kernels.torch_steps"
    thread_env = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    steps = {"manual": "manual_step", "autograd": "autograd_step", "module": "module_step"}
    backends = {
        "eager": lambda step: step,
        "compile": lambda step: _compile(step),
        "graphs": lambda step: _compile(step, mode="reduce-overhead"),
    }
    gpu_backends = ("graphs",)

    def load_framework(self) -> None:
        _import()

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def to_device(self, arrays: Iterable[np.ndarray], dtype: str, device: str) -> tuple[Any, ...]:
        """torch.tensor always copies. Every tensor a step makes follows its inputs' device, so
        placement() needs to do nothing (a default-device mode would intercept every op, a cost
        inside the timed calls)."""
        out = tuple(
            torch.tensor(
                _exact(np.asarray(a, reference.numpy_dtype(dtype))), dtype=_DTYPES[dtype], device=_DEVICE_NAMES[device]
            )
            for a in arrays
        )
        self.sync()
        return out

    def to_numpy(self, a: Any) -> np.ndarray:
        a = a.detach().cpu()
        return (a.float() if a.dtype == torch.bfloat16 else a).numpy()  # float32 holds bfloat16 exactly

    def timer(self, device: str) -> timing.Timer:
        return CudaEventTimer() if device == "gpu" else super().timer(device)

    def flusher(self, device: str) -> Callable[[], None] | None:
        if device != "gpu":
            return super().flusher(device)
        buffer = torch.empty(GPU_FLUSH_BYTES, dtype=torch.uint8, device="cuda")

        def flush():
            buffer.zero_()
            torch.cuda.synchronize()

        return flush

    def sync(self) -> None:
        """CUDA kernels are queued; CPU ops have finished when they return."""
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def tracing_count(self, fn: Callable) -> int | None:
        graphs = getattr(fn, "graphs", None)
        return graphs() if graphs else None

    def profile(self, call: Callable[[], Any], steps: int, device: str, trace_dir: Path) -> dict[str, OpTime]:
        """torch.profiler: the ATen ops that ran (under torch.compile, those Inductor left as calls:
        a matmul it hands to a library, say) and, on a GPU, every CUDA kernel; the trace is a
        Chrome trace (trace.json: Perfetto, chrome://tracing)."""
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "gpu" else [])
        trace_dir.mkdir(parents=True, exist_ok=True)
        with quiet_stderr(_PROFILER_NOISE), torch_profile(activities=activities) as prof:
            self.run_steps(call, steps, device)
        prof.export_chrome_trace(str(trace_dir / "trace.json"))
        out = {}
        for e in prof.key_averages():
            device_s = (getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0) or 0) / 1e6
            if str(getattr(e, "device_type", "")).endswith("CUDA"):
                out[f"kernel:{e.key}"] = OpTime(e.count, 0.0, device_s)
            elif e.key.startswith("aten::"):
                out[e.key] = OpTime(e.count, e.self_cpu_time_total / 1e6, device_s)
        return out

    def flops(self, fn: Callable, args: Sequence[Any], backend: str) -> tuple[float, str] | None:
        """torch.utils.flop_counter's count of an eager call (its FLOP formulas per ATen op, the
        backward pass's included); a compiled call runs below the dispatcher it counts at."""
        if backend != "eager":
            return None
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn(*args)
        return float(counter.get_total_flops()), "torch.utils.flop_counter"

    def reset_peak(self, device: str) -> None:
        if device == "gpu":
            torch.cuda.reset_peak_memory_stats()

    def peak_bytes(self, device: str) -> int | None:
        """The CUDA caching allocator's peak; PyTorch keeps no count on CPU."""
        return int(torch.cuda.max_memory_allocated()) if device == "gpu" else None

    def set_tf32(self, enabled: bool) -> None:
        torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)

    def tf32_enabled(self) -> bool:
        return bool(torch.backends.cuda.matmul.allow_tf32)

    def info(self) -> dict[str, Any]:
        cuda = torch.cuda.is_available()
        return {
            "version": torch.__version__,
            "cuda_build": torch.version.cuda is not None,
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "gpus_visible": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "tf32": self.tf32_enabled(),
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
        }
