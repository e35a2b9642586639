"""What one gate run found: the comparison, the processes that made it, and notes to print."""

from dataclasses import dataclass, field
from typing import Any

from bench.compare import Result


@dataclass(frozen=True)
class Outcome:
    result: Result
    processes: dict = field(default_factory=dict)  # {side: [Process]} (bench/gate/processes.py)
    wall_s: float = 0.0
    notes: tuple = ()
    pairing: str = "processes"  # or "calls": both sides' steps in one process (bench/gate/one_process.py)

    @property
    def flagged(self) -> bool:
        """Whether this gate run failed (exit 1): a regression, a broken or lost case, or a counter
        change set to fail."""
        return self.result.failed

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The fingerprint of the first record any process wrote ({} if none)."""
        return next((r.fingerprint for procs in self.processes.values() for p in procs for r in p.records or ()), {})
