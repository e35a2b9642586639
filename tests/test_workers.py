"""Each framework's cases in a worker process of its own (bench/run/worker.py): the run's process
loads no framework, a worker that dies fails its cases (saying how) and the next group gets a new
one, none is left behind, and a worker settles (its threads stop spinning) before another's turn."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import run
from bench.run import worker
from tests.helpers import CONFIG, worker_processes

REPO = Path(__file__).resolve().parent.parent


def numpy_config(out, **kw):
    return dataclasses.replace(
        CONFIG, **{**dict(out=out, frameworks=("numpy",), device="cpu", sizes=((200, 784, 8),), isolate=True), **kw}
    )


class Seen(run.Observer):
    def __init__(self, on_timing=None):
        self.runners, self.on_timing = [], on_timing

    def checking(self, case):
        self.runners.append(case.fw)

    def timing(self, group, lives):
        if self.on_timing:
            self.on_timing(group, lives)


def test_each_framework_runs_in_a_worker_process_and_none_is_left(tmp_path):
    seen = Seen()
    records = run.run(numpy_config(tmp_path), seen)
    assert records and all(r.status == "ok" and len(r.samples_s) == 3 for r in records)
    (runner,) = set(seen.runners)
    assert isinstance(runner, worker.Worker) and runner.process.pid != os.getpid()
    assert not runner.alive() and worker_processes() == []


def test_the_runs_process_loads_no_framework():
    """The framework's kernels are imported in its worker only (in this process with isolate=False)."""
    code = (
        "import sys, tempfile\n"
        "from bench import frameworks, run\n"
        "from tests.helpers import CONFIG, worker_processes\n"
        "import dataclasses\n"
        "config = dataclasses.replace(CONFIG, out=tempfile.mkdtemp(), frameworks=('numpy',), device='cpu',\n"
        "                             sizes=((200, 784, 8),), isolate=sys.argv[1] == 'isolate')\n"
        "assert all(r.status == 'ok' for r in run.run(config))\n"
        "print(frameworks.spec('numpy').kernels in sys.modules)\n"
    )
    for how, loaded in (("isolate", "False"), ("here", "True")):
        out = subprocess.run([sys.executable, "-c", code, how], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == loaded, how


@pytest.mark.frameworks  # every framework installed here
def test_a_frameworks_facts_travel_as_plain_data():
    """What a runner tells the run (its framework's facts, in every case's env) unpickles anywhere
    without importing that framework: PyTorch's version is a TorchVersion, and sending it to NumPy's
    worker loaded PyTorch and its threads there."""
    import pickle

    from bench import frameworks
    from bench.run.runner import Runner

    for name in [n for n in frameworks.FRAMEWORKS if not frameworks.unavailable_reason(n)]:
        blob = pickle.dumps(Runner(name, CONFIG).info())
        code = (
            "import pickle, sys\n"
            f"pickle.loads({blob!r})\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "[]", (name, out.stdout, out.stderr[-500:])


def test_a_worker_that_dies_fails_its_cases_and_the_next_group_gets_a_new_one(tmp_path):
    killed = []

    def kill_the_first(group, lives):
        if not killed:
            pid = lives[0].runner.process.pid
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    records = run.run(numpy_config(tmp_path, sizes=((200, 784, 8), (300, 784, 8))), Seen(kill_the_first))
    first = [r for r in records if r.n == 200]
    later = [r for r in records if r.n == 300]
    assert first and all(
        r.status == "failed" and r.error == "numpy's worker process was killed by SIGKILL" for r in first
    )
    assert later and all(r.status == "ok" for r in later)
    assert worker_processes() == []


def test_a_worker_settles_until_its_threads_stop_spinning():
    end = time.perf_counter() + 0.3
    spinner = threading.Thread(target=lambda: [None for _ in iter(lambda: time.perf_counter() < end, False)])
    spinner.start()
    waited = worker.settle(limit_s=5.0)
    assert not spinner.is_alive() and waited < 5.0  # it waited for the spin to end, and no longer than the limit
    spinner.join()


def test_a_worker_starts_with_openblas_spinning_briefly_and_memory_reused_unless_told_otherwise(monkeypatch):
    """NumPy's OpenBLAS threads would spin 0.1 s after each take, which the next turn's settle waits
    out: a worker's OpenBLAS gives up spinning after a few ms. Its malloc keeps freed memory rather
    than unmapping large blocks (each call's outputs faulted in afresh otherwise). Unless the caller
    set its own figures."""
    for name in ("OPENBLAS_THREAD_TIMEOUT", *worker.MEMORY_REUSE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the caller's own, which the worker's extends
    seen = []
    for env in ({}, {"OPENBLAS_THREAD_TIMEOUT": "28", "MALLOC_MMAP_MAX_": "65536"}):
        w = worker.Worker("numpy", CONFIG, variables=env)
        try:
            got = w.info()
            seen.append(
                (
                    got["threads_env"]["OPENBLAS_THREAD_TIMEOUT"],
                    got["malloc_env"]["MALLOC_MMAP_MAX_"],
                    got["malloc_env"]["MALLOC_TRIM_THRESHOLD_"],
                )
            )
        finally:
            w.close()
    reuse = worker.MEMORY_REUSE
    assert seen == [
        (worker.BLAS_SPIN["OPENBLAS_THREAD_TIMEOUT"], reuse["MALLOC_MMAP_MAX_"], reuse["MALLOC_TRIM_THRESHOLD_"]),
        ("28", "65536", reuse["MALLOC_TRIM_THRESHOLD_"]),
    ]


def test_a_worker_whose_interpreter_is_gone_fails_its_cases_in_one_line(tmp_path):
    """An --env environment pruned under a run: its worker cannot start; ready() says so, nothing hangs."""
    w = worker.Worker("numpy", numpy_config(tmp_path), python=str(tmp_path / "gone" / "bin" / "python"), deps="x")
    try:
        w.ready()
    except worker.WorkerDied as e:
        assert "could not start" in str(e) and "gone" in str(e)
    else:
        raise AssertionError("a worker without an interpreter said it was ready")
    assert not w.alive() and w.devices() == ["cpu"]
    w.close()


def test_a_pinned_worker_and_every_thread_it_starts_run_on_the_cpus_asked(tmp_path, monkeypatch):
    import glob

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # threads to pin (the suite's other tests run one: conftest.py)
    cpu = max(os.sched_getaffinity(0))
    w = worker.Worker("numpy", numpy_config(tmp_path, pin=(cpu,))).ready()
    try:
        w.data_source(200, 784)  # NumPy loaded, its BLAS threads started
        tasks = glob.glob(f"/proc/{w.process.pid}/task/*/status")
        allowed = {
            line.split(":", 1)[1].strip()
            for task in tasks
            for line in open(task)
            if line.startswith("Cpus_allowed_list")
        }
        assert len(tasks) > 1 and allowed == {str(cpu)}
    finally:
        w.close()


def test_a_pinned_run_records_its_cpus_and_gives_the_callers_binding_back(tmp_path):
    before = os.sched_getaffinity(0)
    cpu = max(before)
    seen = []
    records = run.run(
        numpy_config(tmp_path, pin=(cpu,)), Seen(lambda group, lives: seen.append(os.sched_getaffinity(0)))
    )
    assert records and all(r.status == "ok" and r.fingerprint["pinned_cpus"] == [cpu] for r in records)
    assert seen == [before - {cpu} or before]  # the loop ran off the workers' CPU, where another was left
    assert os.sched_getaffinity(0) == before
