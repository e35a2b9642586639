"""This process: the CPUs it runs on (binding them, finding the quietest) and how a worker
process ends (at once, and with its parent)."""

import os
import sys
from collections.abc import Iterable


def _cpu_idle() -> dict[int, int]:
    """{cpu: idle + iowait ticks so far} from /proc/stat ({} where it cannot be read)."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *ticks = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and len(ticks) >= 5:
                    out[int(name[3:])] = int(ticks[3]) + int(ticks[4])
    except (OSError, ValueError):
        return {}
    return out


def pin(cpus: Iterable[int]) -> None:
    """Bind every thread of this process to `cpus` (Linux binds a thread, not a process: the threads
    already running, NumPy's BLAS pool among them, each; those they start later inherit it)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile


def quietest_cpus(count: int = 1, window_s: float = 0.25) -> tuple[int, ...]:
    """The `count` CPUs this process may use that were idle longest over the next `window_s` (a
    core another process keeps busy last). CPUs idle within a tenth of each other count as equal, and the
    highest numbered wins among equals: the same CPU run after run on a quiet machine, and not CPU 0,
    which takes most of the machine's interrupts and housekeeping. Where /proc/stat cannot be read,
    the highest numbered allowed CPUs."""
    import time

    allowed = sorted(os.sched_getaffinity(0))
    before = _cpu_idle()
    time.sleep(window_s)
    after = _cpu_idle()
    idle = {cpu: after.get(cpu, 0) - before.get(cpu, 0) for cpu in allowed}
    most = max(idle.values(), default=0) or 1
    rank = sorted(allowed, key=lambda cpu: (-round(10 * idle[cpu] / most), -cpu))
    return tuple(sorted(rank[:count]))


def exit_now(status: int = 0) -> None:
    """End this worker process at once, its output flushed: for a process that has answered and
    written everything it owes. The frameworks' finalizers (TensorFlow's after a tf.function or an
    XLA call, PyTorch's after a compile) would take a second or more at the interpreter's exit,
    while the process that started it waits."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def die_with_parent() -> None:
    """Make this process end when its parent does (Linux's PR_SET_PDEATHSIG): a plot worker or a
    run's framework worker is never left behind by a process killed (SIGTERM, kill -9) meanwhile."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the executor's own shutdown is all there is
        pass
