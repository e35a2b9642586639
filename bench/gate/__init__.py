"""The regression gate. plan.py: what a gate invocation will do, resolved before it runs, and
running it; one_process.py: both sides' steps in one process (a change to kernels/ alone);
process_pairs.py: each side's own harness in processes of its own; processes.py: those processes;
baselines.py: against a stored baseline; experiments.py: the gate's own false-positive and
detection rates; settings.py: its settings in pyproject.toml; text.py: the comparisons as lines to
print, Markdown and JSON. The comparison itself is bench/compare.py."""

from bench.gate.errors import GateError, NothingToCompare
from bench.gate.outcome import Outcome
from bench.gate.plan import Plan, Request, execute, make, summary_json, summary_markdown
from bench.gate.processes import Process, RunSpec

__all__ = [
    "GateError",
    "NothingToCompare",
    "Outcome",
    "Plan",
    "Process",
    "Request",
    "RunSpec",
    "execute",
    "make",
    "summary_json",
    "summary_markdown",
]
