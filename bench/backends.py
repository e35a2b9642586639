"""Frameworks and their backends: which exist, which can load here, and the adapter each provides.

An adapter is a module (bench/backend_<framework>.py) that imports its framework at the top and
provides, under the same names for every framework:
  STEPS     {step name: step(x, y, w1, b1, w2, b2) -> (loss, d_x, d_w1, d_b1, d_w2, d_b2)}
  BACKENDS  {backend name: compile(step) -> step}
  devices() -> device names present ("cpu", "gpu"); placement(device) -> context manager
  to_device(arrays, dtype, device) -> framework arrays; to_numpy(a) -> np.ndarray
  sync() -> waits for every queued kernel;  hidden_pre(backend) -> compiled (x, w1, b1) -> h_pre
  tracing_count(fn) -> int or None;  trace(fn, args) -> None (traces without running; no-op if eager)
  reset_peak(device), peak_bytes(device) -> int or None (None where the framework cannot tell)
  set_tf32(bool), info() -> dict for the fingerprint, gemm(a, b), copy(a)
  configure_gpus() -> None (called before the first op; GPU memory taken as needed)
Nothing in timing, records or reports knows which framework made a record.
"""
import importlib
import importlib.util

# framework -> (the package it needs, its adapter module); each is also a pip extra of the project.
FRAMEWORKS = {
    "tensorflow": ("tensorflow", "bench.backend_tf"),
    "torch": ("torch", "bench.backend_torch"),
    "jax": ("jax", "bench.backend_jax"),
}


class FrameworkUnavailable(RuntimeError):
    """A framework cannot be used here; str() says why in one line."""


def unavailable_reason(framework):
    """None if `framework` can be loaded here, else why not (without importing it)."""
    if framework not in FRAMEWORKS:
        return f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})"
    package, _ = FRAMEWORKS[framework]
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):   # ValueError: blocked with sys.modules[package] = None
        found = False
    if not found:
        return f"{package} is not installed: pip install -e '.[{framework}]'"
    return None


def load(framework):
    """The adapter module of `framework`; raises FrameworkUnavailable with the reason."""
    reason = unavailable_reason(framework)
    if reason:
        raise FrameworkUnavailable(reason)
    try:
        return importlib.import_module(FRAMEWORKS[framework][1])
    except ImportError as e:
        raise FrameworkUnavailable(f"{framework} failed to import: {e}") from e
