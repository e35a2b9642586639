"""Running the grid: plan.py (the configuration and its cases), caches.py (what a run computes
once), prepare.py (check and warm up one case), measure.py (time a group's cases together),
loop.py (the run, one record appended per case)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.run.loop import Observer, Observers, run
from bench.run.plan import Case, Config, ConfigError, Group, load_frameworks, networks, new_run_id, plan
from bench.run.prepare import Live, prepare_case

if TYPE_CHECKING:
    import numpy as np

    from bench.frameworks.base import Framework
    from bench.records import Record

__all__ = [
    "Case",
    "Config",
    "ConfigError",
    "networks",
    "Group",
    "Live",
    "Observer",
    "Observers",
    "load_frameworks",
    "new_run_id",
    "plan",
    "prepare_case",
    "run",
    "run_case",
]


def run_case(
    fw: Framework,
    device: str,
    step: str,
    backend: str,
    inputs: tuple[np.ndarray, ...],
    args: tuple[Any, ...],
    config: Config,
    common: dict[str, Any],
) -> Record:
    """One case end to end, timed on its own, from its inputs (x, y, w1, b1, w2, b2) as NumPy arrays
    and as `args` on `device`: a Record."""
    from bench.records import CaseKey
    from bench.run.measure import time_cases
    from kernels.reference import Reference

    (n, m), nh, dtype = inputs[0].shape, inputs[2].shape[1], str(inputs[0].dtype)
    key = CaseKey(fw.name, step, backend, device, n, m, nh, dtype)
    live = prepare_case(fw, key, Reference(inputs, dtype), args, config, common)
    return live if not isinstance(live, Live) else time_cases([live], config)[0]
