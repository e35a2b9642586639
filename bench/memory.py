"""Peak memory of a stretch of work on the host: the process's resident set, sampled from a thread.

TensorFlow's own CPU allocator statistics give zeros or raise, and tracemalloc
cannot see C++ allocations, so the harness watches RSS instead; GPU peaks come from the adapter."""

import os
import threading
import time
from typing import Literal

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident set size of this process now, or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return psutil.Process().memory_info().rss
        except Exception:
            return None


class RssPeak:
    """`with RssPeak() as m: work()` then m.peak_bytes: the highest RSS seen above the level at
    entry (sampled every `interval_s`; a spike shorter than that can be missed), None if unreadable."""

    method = "process RSS above the level before the case, sampled every 1 ms"

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.peak_bytes: int | None = None

    def __enter__(self) -> "RssPeak":
        self._base = rss_bytes()
        self._peak = self._base or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        if self._base is not None:
            self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            now = rss_bytes()
            if now is not None and now > self._peak:
                self._peak = now
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> Literal[False]:
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            final = rss_bytes()
            self.peak_bytes = max(self._peak, final or 0) - self._base
        return False
