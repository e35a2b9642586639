"""A framework's Runner in a worker process of its own, so that no framework's threads, allocator
or BLAS share a process with another's and a case's time does not depend on which others run
beside it. Worker has Runner's methods; each call goes over a socket to the process, which runs it
and sends back the result (plain data). The process is a fresh interpreter, this one or another
environment's (`python`: the --env environments, bench/venvs.py), importing this checkout's bench and
nothing but its framework; it ignores SIGINT and SIGTERM (the run stops it), and dies with the run
(PR_SET_PDEATHSIG).

Before another process's turn, a worker settles: it waits until its own threads have stopped
using the CPU (PyTorch's OpenMP threads spin a few ms after a product, NumPy's OpenBLAS threads
about 0.1 s by default: a worker starts with OPENBLAS_THREAD_TIMEOUT set, see BLAS_SPIN), so an
idle worker holds no spinning thread while another is timed. A worker's malloc keeps and reuses the
memory it freed (MEMORY_REUSE), so a call's large outputs are not faulted in from the kernel afresh
each time, at a cost that depends on what the other processes did to memory."""

import glob
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from bench import REPO, frameworks, process
from bench.records import CaseKey, Record
from bench.run.plan import Config
from bench.run.runner import MEMORY_REUSE, Runner
from bench.text import one_line
from bench.timing import Taken

# OpenBLAS's idle threads spin 2^k cycles before they sleep; its default k = 28 spins for about a
# tenth of a second, which every settle after a NumPy take would wait out, and k = 24 a few ms, still
# longer than the gaps between one step's products (experiment: blas-spin). Unless set already.
BLAS_SPIN = {"OPENBLAS_THREAD_TIMEOUT": "24"}
SETTLE_WINDOW_S = 0.01  # the kernel charges a spinning thread at its ticks (a few ms apart): a window spans two
SETTLE_QUIET = 0.1  # quiet: the other threads used under this fraction of one window's CPU
SETTLE_LIMIT_S = 1.0  # give up waiting after this long (said in the settle time returned)


class WorkerDied(RuntimeError):
    """A worker process ended while the run needed it; str() says which and how."""


class WorkerError(RuntimeError):
    """A Runner method raised in the worker process; str() is its one line."""


def other_threads_cpu_s() -> float:
    """CPU seconds used so far by every thread of this process but the calling one (Linux's
    /proc/self/task/*/schedstat; 0 where it cannot be read)."""
    me = str(threading.get_native_id())
    total = 0
    for task in glob.glob("/proc/self/task/*"):
        if task.rsplit("/", 1)[-1] == me:
            continue
        try:
            with open(task + "/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def settle(window_s: float = SETTLE_WINDOW_S, limit_s: float = SETTLE_LIMIT_S) -> float:
    """Wait until this process's other threads are quiet (under SETTLE_QUIET of one window's CPU
    over a window), at most `limit_s`; the seconds waited."""
    start = time.perf_counter()
    before = other_threads_cpu_s()
    while time.perf_counter() - start < limit_s:
        time.sleep(window_s)
        now = other_threads_cpu_s()
        if now - before < SETTLE_QUIET * window_s:
            break
        before = now
    return time.perf_counter() - start


def main() -> None:
    """The worker process's entry (`python -c ... FD`): FD is its end of the socket, whose first
    message is (name, config, kernels); bound to config.pin's CPUs where it names any."""
    process.die_with_parent()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # the run decides when its workers stop
    conn = Connection(int(sys.argv[1]))
    name, config, kernels = conn.recv()
    if config.pin:
        process.pin(config.pin)
    serve(conn, name, config, kernels)
    process.exit_now()  # everything answered: not after the frameworks' finalizers, which the run would wait for


def serve(conn: Connection, name: str, config: Config, kernels: dict[str, str] | None = None) -> None:
    """A Runner for `name`, answering (method, args) on `conn` until "close" or EOF."""

    try:
        runner = Runner(name, config, kernels)
    except Exception as e:
        conn.send(("error", one_line(e)))
        return
    conn.send(("ok", None))
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            return
        if method == "close":
            runner.close()
            conn.send(("ok", None))
            return
        try:
            result = settle() if method == "settle" else getattr(runner, method)(*args)
        except Exception as e:
            conn.send(("error", one_line(e)))
        else:
            conn.send(("ok", result))


class Worker:
    """A Runner of `name` in a worker process, started at once; ready() waits until the framework
    has loaded (several start at once). `env`: environment variables the process starts with
    (thread settings, read as the framework loads); `python`: its interpreter (default this one's),
    that of the --env set named `deps` (bench/venvs.py)."""

    def __init__(
        self,
        name: str,
        config: Config,
        kernels: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        python: str | None = None,
        deps: str = "",
    ) -> None:
        cls = frameworks.spec(name)  # the class's plain data: nothing imported here
        self.name, self.steps, self.backends, self.gpu_backends = cls.name, cls.steps, cls.backends, cls.gpu_backends
        self.deps = deps
        self.devices_if_dead = ["cpu"]  # what devices() says once dead: the run plans its cases, which then fail
        self._ready = False
        self.dead: str | None = None
        ours, theirs = socket.socketpair()
        self.conn = Connection(ours.detach())
        paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's bench first
        started = {**BLAS_SPIN, **MEMORY_REUSE, **os.environ, **(variables or {}), "PYTHONPATH": os.pathsep.join(paths)}
        self.process: subprocess.Popen | None = None
        try:
            self.process = subprocess.Popen(
                [python or sys.executable, "-c", "from bench.run.worker import main; main()", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=started,
            )
        except OSError as e:  # no such interpreter (a pruned environment): ready() says so
            self.dead = f"{name}'s worker process could not start ({python or sys.executable}: {e.strerror or e})"
        finally:
            theirs.close()
        if self.process is not None:
            try:
                self.conn.send((name, config, kernels))
            except OSError:
                pass  # it died at once: ready() says how

    @property
    def loaded(self) -> bool:
        """Whether its framework loaded (ready() returned)."""
        return self._ready

    def ready(self) -> "Worker":
        """Wait for the framework to load; WorkerError (or WorkerDied) with the reason where it cannot."""
        if self.dead and not self._ready:
            raise WorkerDied(self.dead)
        if not self._ready:
            self._receive()
            self._ready = True
        return self

    def _receive(self) -> Any:
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            code = self._wait(5)
            how = (
                f"was killed by {signal.Signals(-code).name}"
                if code is not None and code < 0
                else f"exited with code {code}"
                if code is not None
                else "stopped answering"
            )
            self.dead = f"{self.name}'s worker process {how}"
            raise WorkerDied(self.dead) from None
        if kind == "error":
            raise WorkerError(value)
        return value

    def _call(self, method: str, *args: Any) -> Any:
        if self.dead:
            raise WorkerDied(self.dead)
        self.ready()
        try:
            self.conn.send((method, args))
        except OSError:
            return self._receive()  # it died: say how
        return self._receive()

    def devices(self) -> list[str]:
        return self.devices_if_dead if self.dead else self._call("devices")

    def info(self) -> dict[str, Any]:
        return self._call("info")

    def data_source(self, n: int, m: int) -> str:
        return self._call("data_source", n, m)

    def set_tf32(self, on: bool) -> None:
        self._call("set_tf32", on)

    def has_ceilings(self, device: str) -> bool:
        return self._call("has_ceilings", device)

    def skip_reason(self, key: CaseKey) -> str | None:
        return self._call("skip_reason", key)

    def prepare(
        self, key: CaseKey, group_n: int, tf32: bool, common: dict[str, Any], side: str = "candidate"
    ) -> tuple[Record, float | None]:
        return self._call("prepare", key, group_n, tf32, common, side)

    def take(self, key: CaseKey, count: int, side: str = "candidate") -> Taken:
        return self._call("take", key, count, side)

    def finish(self, key: CaseKey, rec: Record, counters: bool, side: str = "candidate") -> Record:
        return self._call("finish", key, rec, counters, side)

    def settle(self) -> float:
        """Wait until the worker's threads are quiet (settle()); the seconds it waited."""
        return self._call("settle")

    def _wait(self, timeout_s: float) -> int | None:
        """The process's exit code once it ends within `timeout_s`, else None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Stop the process (asked, then killed if it does not end within a few seconds)."""
        if self.alive() and not self.dead:
            try:
                self.conn.send(("close", ()))
                self.conn.poll(10) and self.conn.recv()
            except (OSError, EOFError):
                pass
        if self.process is not None and self._wait(5) is None:
            self.process.kill()
            self.process.wait()
        self.conn.close()
