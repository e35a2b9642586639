"""Lint and types as tests, so the suite's workers run them beside the rest: ruff over the code and
the tests, mypy over bench/ and kernels/ (settings in pyproject.toml); a misspelt name fails here in
seconds, not in a user's run."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tool(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", module]


def test_ruff_finds_nothing():
    done = subprocess.run(
        [*tool("ruff"), "check", "--no-cache", "bench", "kernels", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_the_code_is_formatted():
    """ruff format was applied once and is kept: `make format` rewrites what this finds."""
    done = subprocess.run(
        [*tool("ruff"), "format", "--check", "--no-cache", "bench", "kernels", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_mypy_finds_nothing():
    done = subprocess.run(
        [*tool("mypy"), "--cache-dir", str(REPO / ".mypy_cache")], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_no_import_cycles():
    """No two modules of bench/ and kernels/ import each other, directly or round a loop: imports
    at the top, inside functions and under TYPE_CHECKING alike (a cycle that only typing sees is
    still two modules that cannot be read apart)."""
    import ast
    import graphlib

    modules = {}
    for path in sorted(REPO.glob("bench/**/*.py")) + sorted(REPO.glob("kernels/**/*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        # a package's own __init__ re-exporting its modules is no cycle of theirs
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"an import cycle: {' -> '.join(e.args[1])}")
