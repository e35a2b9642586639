"""The spread of a case's instructions a call between separate Valgrind processes, each counting
three calls (bench/instructions.py), with a CPU-bound neighbour busy on another core meanwhile.

    python results/examples/instructions-spread-cpu/measure.py RUNS CASE [CASE ...]

CASE: framework/step/backend (cpu, n=500, m=784, nh=50, float32). Appends one JSON line a process
to spread.jsonl beside this file (case, calls, per_call, wall_s, commit, machine, time), so an
interrupted measurement keeps what it counted.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench import fingerprint, git, instructions  # noqa: E402
from bench.records import CaseKey  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs, cases = int(sys.argv[1]), sys.argv[2:]
    neighbour = subprocess.Popen(["sh", "-c", "while :; do :; done"])  # one core kept busy
    machine = fingerprint.collect()
    try:
        for name in cases:
            framework, step, backend = name.split("/")
            key = CaseKey(framework, step, backend, "cpu", 500, 784, 50, "float32")
            for run in range(runs):
                got = instructions.measure(key)
                line = {
                    "case": name,
                    "run": run,
                    **got,
                    "commit": git.head(HERE),
                    "machine": {k: machine.get(k) for k in ("cpu_model", "cpu_count_logical", "memory_total_bytes")},
                    "dirty": git.dirty(HERE),
                    "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "neighbour": "one CPU-bound shell loop",
                }
                with open(HERE / "spread.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(name, run, got.get("per_call"), got.get("spread"), got.get("wall_s"), flush=True)
    finally:
        neighbour.kill()


if __name__ == "__main__":
    main()
