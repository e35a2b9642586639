"""What several test modules share: a tiny float64 problem and a run config that times a case in three calls."""

import numpy as np

from bench import run
from kernels import reference

# Ceilings from a small GEMM and copy: a test asks that they are measured and recorded, not what they are.
SMALL_CEILINGS = dict(ceiling_gemm=128, ceiling_copy_bytes=1 << 20)
# One warm-up call and exactly three timed calls, no batch, no counters (tests/test_counters.py
# counts every framework's steps), in this process (tests/test_run.py tests the worker processes):
# fast, and still a full case.
CONFIG = run.Config(
    out=None,
    warmup=1,
    min_samples=3,
    max_samples=3,
    budget_s=0.0,
    batch_s=0.0,
    round_s=0.0,
    counters=False,
    isolate=False,
    **SMALL_CEILINGS,
)
COMMON = dict(run_id="test", data="synthetic", ceilings={}, fingerprint={})


def tiny_inputs(n=64, m=12, nh=7, seed=1, dtype=np.float64):
    """(x, y, w1, b1, w2, b2) of a small problem, seeded."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, m))
    y = rng.integers(0, 10, n).astype(float)
    w1, b1, w2, b2 = reference.init_params(m, nh, seed, np.float64)
    b1 = rng.normal(0, 0.1, nh)  # non-zero biases so their gradients are exercised through the mask
    return tuple(np.asarray(a, dtype) for a in (x, y, w1, b1, w2, b2))


def load_or_skip(name):
    """The Framework instance of `name`, or the calling test module skipped with the reason it cannot load."""
    import pytest

    from bench import frameworks

    reason = frameworks.unavailable_reason(name)
    if reason:
        pytest.skip(reason, allow_module_level=True)
    return frameworks.load(name)


def worker_processes():
    """The framework worker processes (bench/run/worker.py) this process has that are still running."""
    import psutil

    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE and "bench.run.worker" in " ".join(p.cmdline())
    ]
