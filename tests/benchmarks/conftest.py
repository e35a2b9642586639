"""The benchmark suite runs only when asked for with --benchmark-only (pytest-benchmark's flag), so
`make test` and a bare `pytest` skip it, with that reason, instead of timing anything."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    try:
        only = config.getoption("benchmark_only")
    except ValueError:  # pytest-benchmark is not installed
        only = False
    if only:
        return
    skip = pytest.mark.skip(reason="benchmarks run with: pytest tests/benchmarks --benchmark-only")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)
