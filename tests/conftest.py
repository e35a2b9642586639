"""What every process of the suite shares (pytest-xdist's controller and workers, and every
process a test starts, which inherit this environment), and which tests run in what order.

- One BLAS/OpenMP thread: the tests time nothing, and with a pool as wide as the machine in each of
  two workers, the pools' spin-waits took a large share of the suite's CPU. A test of the threads
  themselves sets its own (monkeypatch.setenv).
- No CI job page: under GitHub Actions each step has GITHUB_STEP_SUMMARY set, and every compare,
  gate and history check a test runs would append its summary to the job's page. A test of that
  sets its own (monkeypatch.setenv).
- A worker ends without the frameworks' finalizers (pytest_unconfigure).
- The longest tests first (pytest_collection_modifyitems).
- `--optional-frameworks`: only the tests that installing PyTorch and JAX changes (.ci/run's second
  pass, after a whole run with the core alone)."""

import math
import os

import pytest

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
for _name, _value in ONE_THREAD.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("GITHUB_STEP_SUMMARY", None)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """A pytest-xdist worker ends here, its results already sent to the controller: without the
    frameworks' finalizers, which take seconds at the exit of a worker that ran TensorFlow, PyTorch
    and JAX, while the whole suite waits for it."""
    if hasattr(config, "workerinput"):
        from bench import process

        process.exit_now()


DURATIONS = "backprop-bench/durations"  # pytest's cache (.pytest_cache): each test's seconds in the last run
PASSED = "backprop-bench/passed"  # the tests the last run without --optional-frameworks passed


def pytest_addoption(parser):
    parser.addoption(
        "--optional-frameworks",
        action="store_true",
        help="only the tests that installing PyTorch and JAX changes: those the last run (without this "
        "flag) did not pass, as it skipped them or did not have them, and those marked 'frameworks'",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "frameworks: what the test checks depends on which frameworks are installed")


def pytest_collection_modifyitems(config, items):
    """The longest tests first, by their time in the last run; one not timed yet counts as long.
    pytest-xdist hands each worker a contiguous share of this order and a worker that runs dry takes
    the end of another's share: with the long tests first the suite ends on short ones, instead of
    one worker timing a long test that came last while the other waits. Every worker sorts (and
    selects from) the same cache the same way, as pytest-xdist requires.

    Under --optional-frameworks, a test the last whole run passed is left out unless it is marked
    'frameworks' (it loops over, or defaults to, the frameworks installed): a test that skipped for
    a missing framework, or that only exists where one is installed (a parameter per framework), runs."""
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    last = cache.get(DURATIONS, {}) if cache is not None else {}
    items.sort(key=lambda item: -last.get(item.nodeid, math.inf))
    if not config.getoption("optional_frameworks"):
        return
    passed = set(cache.get(PASSED, [])) if cache is not None else set()
    if not passed:
        raise pytest.UsageError("--optional-frameworks: pytest's cache holds no earlier run; run the suite first")
    left_out = [item for item in items if item.nodeid in passed and not item.get_closest_marker("frameworks")]
    config.hook.pytest_deselected(items=left_out)
    dropped = set(left_out)
    items[:] = [item for item in items if item not in dropped]


def pytest_terminal_summary(terminalreporter, config):
    """This run's durations into the cache for the next run's order (the controller's, which sees
    every worker's reports); a skipped test keeps the time it took when it last ran. A run without
    --optional-frameworks also records the tests it passed, which that flag leaves out next time."""
    if getattr(config, "cache", None) is None or hasattr(config, "workerinput"):
        return
    seconds: dict[str, float] = {}
    skipped = set()
    failed = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration
                if report.skipped:
                    skipped.add(report.nodeid)
                if report.failed:
                    failed.add(report.nodeid)
    last = config.cache.get(DURATIONS, {})
    config.cache.set(DURATIONS, {**last, **{k: round(v, 3) for k, v in seconds.items() if k not in skipped}})
    if not config.getoption("optional_frameworks"):
        config.cache.set(PASSED, sorted(set(seconds) - skipped - failed))
