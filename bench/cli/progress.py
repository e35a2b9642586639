"""The terminal side of a run: one line per event with the case count, elapsed time and an ETA
(Progress, a run Observer), and Ctrl-C handled at case and round boundaries (DeferredInterrupt)."""
import math
import os
import signal
import sys
import threading
import time

from bench.run import Observer


def result_line(rec):
    if rec.status == "ok":
        s = rec.summary
        ci = (f" [95% CI {s.ci_lo_s * 1e3:.3g}, {s.ci_hi_s * 1e3:.3g}]" if math.isfinite(s.ci_lo_s) else "")
        return (f"{rec.label}: median {s.median_s * 1e3:.3g} ms{ci} over {s.samples} samples ({rec.stop_reason}), "
                f"max rel err {rec.max_rel_err:.1e}")
    return f"{rec.label}: {rec.status.upper()}: {rec.error}"


class Progress(Observer):
    """Writes one line per event (to stderr by default); `interrupt` (a DeferredInterrupt) is
    consulted at every checkpoint."""

    def __init__(self, write=None, interrupt=None, budget_s=None, every_s=5.0):
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.interrupt, self.budget_s, self.every_s = interrupt, budget_s, every_s
        self.total, self.done = 0, 0
        self.start = self._last_round = time.monotonic()

    def _prefix(self):
        elapsed = time.monotonic() - self.start
        eta = ""
        if 0 < self.done < self.total:
            eta = f", ETA {elapsed / self.done * (self.total - self.done):.0f} s"
        return f"[{self.done}/{self.total} +{elapsed:.0f}s{eta}]"

    def started(self, total):
        self.total = total

    def measuring_ceilings(self, fw, device):
        self.write(f"{self._prefix()} ceilings: measuring {device} GEMM and copy with {fw.name}")

    def resumed(self, case):
        self.done += 1
        self.write(f"{self._prefix()} resume: {case.key.label} already recorded")

    def checking(self, case):
        self.write(f"{self._prefix()} check: {case.key.label}")

    def timing(self, group, lives):
        self.write(f"{self._prefix()} timing: {len(lives)} cases on {group.device} at n={group.n} nh={group.nh} "
                   f"{group.dtype} in interleaved rounds")

    def round(self, r, stopped, lives):
        if time.monotonic() - self._last_round < self.every_s:
            return
        self._last_round = time.monotonic()
        open_cases = len(lives) - len(stopped)
        bound = f", at most ~{open_cases * self.budget_s:.0f} s to go" if self.budget_s else ""
        self.write(f"{self._prefix()} timing: round {r}, {len(stopped)} of {len(lives)} cases settled{bound}")

    def finished(self, rec):
        self.done += 1
        self.write(f"{self._prefix()} done: {result_line(rec)}")

    def checkpoint(self):
        if self.interrupt:
            self.interrupt.check()


class DeferredInterrupt:
    """Ctrl-C during a run stops it at the next case or round boundary rather than inside a
    framework call; a second Ctrl-C stops at once. check() then raises KeyboardInterrupt or, with
    `exit_message`, prints it and ends the process at once: unwinding the stack through live
    TensorFlow objects after an interrupt aborted the process now and then ("free(): invalid
    pointer", SIGABRT), and every finished record is already on disk. Main thread only."""

    def __init__(self, write, exit_message=None):
        self.write, self.exit_message, self.asked = write, exit_message, False

    def _handler(self, signum, frame):
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True
        self.write("interrupt: stopping at the next case or round (Ctrl-C again to stop now)")

    def check(self):
        if not self.asked:
            return
        if self.exit_message:
            self.write(self.exit_message)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise KeyboardInterrupt

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
