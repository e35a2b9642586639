"""What every process of the suite shares (pytest-xdist's controller and workers, and every
process a test starts, which inherit this environment), and the order the tests run in.

- One BLAS/OpenMP thread: the tests time nothing, so NumPy's OpenBLAS and PyTorch's OpenMP run one
  thread each, unless set already. With a pool as wide as the machine in each of two workers on two
  cores, those threads' spin-waits took a sixth of the suite's CPU (2-core VM, every framework
  installed: 235 s of user CPU and 145 s wall, against 189 s and 119 s with one thread). A test of
  the threads themselves sets its own (monkeypatch.setenv).
- No CI job page: under GitHub Actions each step has GITHUB_STEP_SUMMARY set, and every compare,
  gate and history check a test runs would append its summary to the job's page. A test of that
  sets its own (monkeypatch.setenv).
- A worker ends without the frameworks' finalizers (pytest_unconfigure).
- The longest tests first (pytest_collection_modifyitems)."""

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
    frameworks' finalizers, which took 2-5 s at the interpreter's exit of a worker that had run
    TensorFlow, PyTorch and JAX, while the whole suite waited for it."""
    if hasattr(config, "workerinput"):
        from bench import process

        process.exit_now()


DURATIONS = "backprop-bench/durations"  # pytest's cache (.pytest_cache): each test's seconds in the last run


def pytest_collection_modifyitems(config, items):
    """The longest tests first, by their time in the last run; one not timed yet counts as long.
    pytest-xdist hands each worker a contiguous share of this order and a worker that runs dry takes
    the end of another's share: with the long tests first the suite ends on short ones, instead of
    one worker timing a 12 s test that came last while the other waits (7-10 s of a 125 s suite on
    the 2-core VM). Every worker sorts the same cache the same way, as pytest-xdist requires."""
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    last = cache.get(DURATIONS, {}) if cache is not None else {}
    items.sort(key=lambda item: -last.get(item.nodeid, math.inf))


def pytest_terminal_summary(terminalreporter, config):
    """This run's durations into the cache for the next run's order (the controller's, which sees
    every worker's reports); a skipped test keeps the time it took when it last ran."""
    if getattr(config, "cache", None) is None or hasattr(config, "workerinput"):
        return
    seconds: dict[str, float] = {}
    skipped = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                seconds[report.nodeid] = seconds.get(report.nodeid, 0.0) + report.duration
                if report.skipped:
                    skipped.add(report.nodeid)
    last = config.cache.get(DURATIONS, {})
    config.cache.set(DURATIONS, {**last, **{k: round(v, 3) for k, v in seconds.items() if k not in skipped}})
