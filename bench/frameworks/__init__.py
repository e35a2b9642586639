"""The frameworks: which exist, which can load here, and the Framework instance each provides.

One registry line per framework: its name -> (the package it needs, "module:Class" of its
bench.frameworks.base.Framework subclass). Each is also a pip extra of the project (NumPy is a core
dependency). The core imports no framework until load() is asked for it.
"""
import functools
import importlib
import importlib.util

FRAMEWORKS = {
    "tensorflow": ("tensorflow", "bench.frameworks.tensorflow:TensorFlow"),
    "torch": ("torch", "bench.frameworks.torch:Torch"),
    "jax": ("jax", "bench.frameworks.jax:Jax"),
    "numpy": ("numpy", "bench.frameworks.numpy:NumPy"),
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


@functools.cache
def _instance(path):
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module), cls)()


def load(framework):
    """The Framework instance of `framework` (one per process); FrameworkUnavailable with the reason."""
    reason = unavailable_reason(framework)
    if reason:
        raise FrameworkUnavailable(reason)
    try:
        return _instance(FRAMEWORKS[framework][1])
    except ImportError as e:
        raise FrameworkUnavailable(f"{framework} failed to import: {e}") from e
