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
