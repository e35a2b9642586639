"""The frameworks: which exist, which can load here, and the Framework instance each provides.

One registry line per framework: its name -> "module:Class" of its bench.frameworks.base.Framework
subclass. The classes are plain data (names of steps and backends, the package they need), so a
name is checked, and `list` answers, without importing any framework; load() imports one. Each
framework is also a pip extra of the project (NumPy and TensorFlow are core dependencies).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.frameworks.base import Framework

FRAMEWORKS = {
    "tensorflow": "bench.frameworks.tensorflow:TensorFlow",
    "torch": "bench.frameworks.torch:Torch",
    "jax": "bench.frameworks.jax:Jax",
    "numpy": "bench.frameworks.numpy:NumPy",
}


class FrameworkUnavailable(RuntimeError):
    """A framework cannot be used here; str() says why in one line."""


def spec(framework: str) -> type[Framework]:
    """The Framework class of `framework`: its names and package, its framework not imported.
    KeyError for a name not in FRAMEWORKS."""
    module, _, cls = FRAMEWORKS[framework].partition(":")
    return getattr(importlib.import_module(module), cls)


def names(axis: str, among: tuple[str, ...] | None = None) -> list[str]:
    """Every step or backend (axis "steps" / "backends") that any of `among` (default: every
    registered framework) has, sorted; nothing is imported but the classes."""
    return sorted({name for fw in among or tuple(FRAMEWORKS) for name in getattr(spec(fw), axis)})


def unavailable_reason(framework: str) -> str | None:
    """None if `framework` can be loaded here, else why not (without importing it)."""
    if framework not in FRAMEWORKS:
        return f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})"
    package = spec(framework).package
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: blocked with sys.modules[package] = None
        found = False
    if not found:
        note = spec(framework).install_note
        return f"{package} is not installed: pip install -e '.[{framework}]'" + (f"; {note}" if note else "")
    return None


def installed() -> tuple[str, ...]:
    """Every framework that can load here, found without importing any."""
    return tuple(name for name in FRAMEWORKS if unavailable_reason(name) is None)


def version(framework: str) -> str | None:
    """The installed version of `framework`'s package, read from its metadata (nothing imported)."""
    try:
        return importlib.metadata.version(spec(framework).package)
    except importlib.metadata.PackageNotFoundError:
        return None


def thread_env(threads: int, among: tuple[str, ...] | None = None) -> dict[str, str]:
    """The environment that gives each of `among` (default: every framework) `threads` CPU threads,
    for a process about to load them (each class's thread_env; JAX's is the harness's own, as JAX
    reads none: bench/frameworks/jax.py _start_cpu_client)."""
    return {var: str(threads) for fw in among or tuple(FRAMEWORKS) for var in spec(fw).thread_env}


@functools.cache
def _instance(framework: str) -> Framework:
    return spec(framework)()


def load(framework: str) -> Framework:
    """The Framework instance of `framework` (one per process); FrameworkUnavailable with the reason."""
    reason = unavailable_reason(framework)
    if reason:
        raise FrameworkUnavailable(reason)
    try:
        return _instance(framework)
    except ImportError as e:
        raise FrameworkUnavailable(f"{framework} failed to import: {e}") from e
