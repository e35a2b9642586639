"""A fleet-sized results file: `cases` records from several machines and runs, as merged results of
a fleet of benchmark machines look (used by the report-scaling benchmark and by tests).

    python tests/benchmarks/fleet.py OUT.jsonl [--cases 2000] [--samples 30]
"""

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.records import Record, append  # noqa: E402
from kernels import cost  # noqa: E402

STEPS = {
    "tensorflow": ("manual", "tape", "module", "keras"),
    "torch": ("manual", "autograd", "module"),
    "jax": ("manual", "grad"),
    "numpy": ("manual", "module"),
}
BACKENDS = {
    "tensorflow": ("eager", "function", "xla"),
    "torch": ("eager", "compile"),
    "jax": ("eager", "jit"),
    "numpy": ("eager",),
}


def machine(i):
    gpu = i % 2 == 1
    return {
        "hostname": f"bench-{i:02d}",
        "cpu_model": f"Fleet CPU model {i % 3}",
        "machine": "x86_64",
        "cpu_count_logical": 16,
        "gpus": [{"name": f"Fleet GPU {i % 2}", "driver_version": "580"}] if gpu else [],
        "frameworks": {fw: {"version": "1.0"} for fw in STEPS},
        "git_commit": f"{i:040x}",
        "git_dirty": False,
        "python": "3.11.7",
        "numpy": "2.0",
        "data_source": "synthetic(seed=0)",
        "time_utc": "2026-11-27T00:00:00+00:00",
    }


def records(cases=2000, samples=30, seed=0):
    rng = np.random.default_rng(seed)
    combos = [(fw, step, backend) for fw in STEPS for step in STEPS[fw] for backend in BACKENDS[fw]]
    sizes = [(n, 784, nh) for n in (1000, 5000, 50_000, 200_000) for nh in (50, 100)]
    out, run = [], 0
    while len(out) < cases:
        env = machine(run)
        devices = ["cpu", "gpu"] if env["gpus"] else ["cpu"]
        for device, (n, m, nh), (fw, step, backend) in itertools.product(devices, sizes, combos):
            median = 1e-9 * cost.flops(step, n, m, nh) / (20 if device == "cpu" else 2000) * rng.uniform(0.8, 1.6)
            times = tuple(float(t) for t in median * rng.lognormal(0, 0.08, samples))
            out.append(
                Record(
                    framework=fw,
                    step=step,
                    backend=backend,
                    device=device,
                    n=n,
                    m=m,
                    nh=nh,
                    dtype="float32",
                    status="ok",
                    run_id=f"20261127-0000{run:02d}-fl{run:02d}",
                    data="synthetic(seed=0)",
                    samples_s=times,
                    rounds=tuple(range(samples)),
                    stop_reason="ci",
                    warmup_s=times[:3],
                    first_call_s=median * 50,
                    trace_s=None if backend == "eager" else median * 5,
                    max_rel_err=1e-7,
                    tracing_count=None if backend == "eager" else 1,
                    flops=cost.flops(step, n, m, nh),
                    min_bytes=cost.min_bytes(step, n, m, nh, 4),
                    peak_bytes=10**8,
                    peak_method="fleet",
                    ceilings={
                        "gemm_gflops": 200.0 if device == "cpu" else 50000.0,
                        "copy_gbps": 20.0 if device == "cpu" else 3000.0,
                    },
                    fingerprint=env,
                )
            )
            if len(out) == cases:
                break
        run += 1
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--samples", type=int, default=30)
    a = p.parse_args()
    for r in records(a.cases, a.samples):
        append(a.out, r)


if __name__ == "__main__":
    main()
