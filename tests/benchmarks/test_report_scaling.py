"""The report of a fleet-sized results file (tests/benchmarks/fleet.py: 2,000 cases from 14 runs
of several machines), timed with pytest-benchmark; the figures are quoted in the README.

    pytest tests/benchmarks/test_report_scaling.py --benchmark-only
"""

import pytest

from bench import report
from tests.benchmarks import fleet

CASES = (500, 2000)


@pytest.mark.parametrize("cases", CASES)
def test_report_of_a_fleet(benchmark, tmp_path, cases):
    records = fleet.records(cases)
    paths = benchmark.pedantic(report.write, args=(records, tmp_path / "report"), rounds=1, iterations=1)
    benchmark.extra_info.update(cases=cases)
    assert paths[0].name == "report.md" and paths[0].stat().st_size > 0
