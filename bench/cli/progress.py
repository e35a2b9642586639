"""The terminal side of a run: one line per event with the case count, elapsed time and an ETA
(Progress, a run Observer), and SIGINT / SIGTERM turned into a stop at the next call (Signals)."""

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from bench.records import Record
from bench.run import Case, Group, Observer
from bench.run.measure import Timed


def result_line(rec: Record) -> str:
    if rec.status == "ok":
        s = rec.summary
        ci = f" [95% CI {s.ci_lo_s * 1e3:.3g}, {s.ci_hi_s * 1e3:.3g}]" if math.isfinite(s.ci_lo_s) else ""
        return (
            f"{rec.label}: median {s.median_s * 1e3:.3g} ms{ci} over {s.samples} samples ({rec.stop_reason}), "
            f"max rel err {rec.max_rel_err:.1e}"
        )
    return f"{rec.label}: {rec.status.upper()}: {rec.error}"


class Progress(Observer):
    """Writes one line per event (to stderr by default), each with an ETA from a model of what is
    left, not from the rate of finished cases (a group's cases all finish together, at its end):
    each case not yet checked costs the mean check so far plus its budget of timed calls, and the
    group being timed its open cases' budgets left, at the wall seconds per timed second its rounds
    have taken so far (settling, bookkeeping; before its first round: the budgets, less the time it
    has been timed). Between events the ETA only falls."""

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        budget_s: float | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.budget_s, self.every_s, self.clock = budget_s, every_s, clock
        self.total, self.done = 0, 0
        self.seen: set = set()  # the cases checked, skipped or resumed so far
        self.start = self._last_round = clock()
        self._check_started: float | None = None
        self._checks_s = 0.0
        self._timing: tuple[float, int] | None = None  # (when the group's timing began, its cases)
        self._spent: tuple[float, float] | None = None  # (timed seconds so far, budget seconds left) of the group
        self._waiting = 0  # cases checked and warm, their group's timing not begun
        self._last_round_at = 0.0

    def eta_s(self) -> float | None:
        """Seconds left by the model above; None before anything can be said."""
        if not self.budget_s or self.done >= self.total:
            return None if self.done < self.total else 0.0
        now = self.clock()
        check_s = self._checks_s / len(self.seen) if self.seen else 1.0
        left = max(0, self.total - len(self.seen)) * (check_s + self.budget_s) + self._waiting * self.budget_s
        if self._timing:
            began, cases = self._timing
            if self._spent:  # calibrated: wall seconds per timed second so far, times the budgets left
                timed_s, open_left = self._spent
                left += open_left * (self._last_round_at - began) / timed_s if timed_s > 0 else 0.0
                left = max(0.0, left - (now - self._last_round_at))
            else:
                left += max(0.0, cases * self.budget_s - (now - began))
        return left

    def _prefix(self):
        elapsed = self.clock() - self.start
        eta = self.eta_s()
        return f"[{self.done}/{self.total} +{elapsed:.0f}s{f', ETA {eta:.0f} s' if eta else ''}]"

    def started(self, total: int) -> None:
        self.total = total

    def left_out(self, framework: str, reason: str) -> None:
        self.write(f"python -m bench run: leaving out {framework} ({reason})")

    def measuring_ceilings(self, fw: Any, device: str) -> None:
        self.write(f"{self._prefix()} ceilings: measuring {device} GEMM and copy with {fw.name}")

    def resumed(self, case: Case) -> None:
        self.done += 1
        self.seen.add(case.key)
        self.write(f"{self._prefix()} resume: {case.key.label} already recorded")

    def checking(self, case: Case) -> None:
        now = self.clock()
        if self._check_started is not None:
            self._checks_s += now - self._check_started
        self._check_started = now
        self.seen.add(case.key)
        self._waiting += 1
        self.write(f"{self._prefix()} check: {case.key.label}")

    def timing(self, group: Group, lives: Sequence[Timed]) -> None:
        now = self.clock()
        if self._check_started is not None:
            self._checks_s += now - self._check_started
            self._check_started = None
        self._timing, self._spent, self._waiting = (now, len(lives)), None, 0
        other = [lv.rec.n for lv in lives if lv.rec.n != group.n]
        smaller = f" ({len(other)} at n={min(other)}: their default-suite limit)" if other else ""
        self.write(
            f"{self._prefix()} timing: {len(lives)} case{'s' if len(lives) != 1 else ''} on {group.device} "
            f"at n={group.n}{smaller} nh={group.nh} {group.dtype}{'+tf32' if group.tf32 else ''}"
            f"{', cold cache' if group.cache == 'cold' else ''} in interleaved rounds"
        )

    def round(
        self, r: int, stopped: Mapping[int, str], lives: Sequence[Timed], spent: Mapping[int, float] | None = None
    ) -> None:
        if spent and self.budget_s:
            open_left = sum(max(0.0, self.budget_s - s) for k, s in spent.items() if k not in stopped)
            self._spent = (sum(spent.values()), open_left)
            self._last_round_at = self.clock()
        if self.clock() - self._last_round < self.every_s:
            return
        self._last_round = self.clock()
        self.write(f"{self._prefix()} timing: round {r}, {len(stopped)} of {len(lives)} cases settled")

    def finished(self, rec: Record) -> None:
        self.done += 1
        if not self._timing and rec.case in self.seen and self._waiting:
            self._waiting -= 1  # checked, then failed or skipped: it will not be timed
        self.seen.add(rec.case)  # a skipped case finishes without a check
        if self._check_started is not None:  # a case finished without timing (skipped, failed)
            self._checks_s += self.clock() - self._check_started
            self._check_started = None
        if self._timing and self.done >= len(self.seen):
            self._timing = None  # the group is written
        self.write(f"{self._prefix()} done: {result_line(rec)}")


class Signals:
    """SIGINT and SIGTERM as a request to stop: the first sets `received` (the run engine asks
    stop() after every take of a case's calls and between cases, writes what it has, and the command exits
    128 + the signal: 130, 143); a second ends the process at once, leaving every record already
    written (each is flushed and synced as it is appended).

    The handler only sets a flag and writes with os.write: raising from it (KeyboardInterrupt)
    unwound the stack from wherever the signal landed, at times inside TensorFlow's Python layer
    around a native call, and a double Ctrl-C then aborted the process now and then ("corrupted
    size vs. prev_size", SIGABRT). Main thread only."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is not None:
            os.write(2, f"{name} again: stopping now; every record written so far is kept\n".encode())
            os._exit(128 + signum)
        self.received = signum
        os.write(
            2,
            f"{name}: stopping after the current round of calls, keeping what was measured "
            f"({name} again to stop at once)\n".encode(),
        )

    def stop(self) -> bool:
        return self.received is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.received if self.received is not None else 0

    def __enter__(self) -> "Signals":
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
