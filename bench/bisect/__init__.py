"""Bisection: the first commit between GOOD and BAD that changed a case. plan.py resolves the range
and what a step times; search.py measures each commit tried beside both ends (counters first) and
keeps every step; history.py adds them to the history store; text.py prints the answer."""

from bench.bisect.history import History
from bench.bisect.plan import COUNTERS_BUDGET_S, BisectError, Plan, Request, make
from bench.bisect.search import RETRY_PAIRS, STATE_FILE, Answer, Bisector, Hooks, Measured, Step, run
from bench.bisect.text import lines, sureness, to_json

__all__ = [
    "COUNTERS_BUDGET_S",
    "RETRY_PAIRS",
    "STATE_FILE",
    "Answer",
    "BisectError",
    "Bisector",
    "History",
    "Hooks",
    "Measured",
    "Plan",
    "Request",
    "Step",
    "lines",
    "make",
    "run",
    "sureness",
    "to_json",
]
