"""One worker process of a data-parallel case: `python -m bench.distributed.worker SPEC.json`.

The spec (written by launch.py) names the engine, backend, device, replicas, warm-up and sample
counts, the inputs file (x, y, w1, b1, w2, b2 of the global batch) and the folder for results. The
process's rank comes from the launcher (BENCH_RANK) or torchrun (RANK); on a CPU it is pinned to
its cores (spec["cores"]) before any framework loads. It writes rank<k>.npz (its
rows of d_x; on rank 0 also the all-reduced loss and gradients) and rank<k>.json (its timing and the
engine's settings); on failure rank<k>.error, one line, and exit status 1.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

FAULT = "BENCH_WORKER_FAULT"  # "die:RANK" or "hang:RANK": for the fault tests only


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    rank = int(os.environ.get("BENCH_RANK", os.environ.get("RANK", "0")))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if spec.get("cores"):  # before any framework starts its threads: they size their pools by it
        os.sched_setaffinity(0, {spec["cores"][local]} if spec.get("per_process") else set(spec["cores"]))
    out = Path(spec["out"])
    fault = os.environ.get(FAULT, "")  # tests: make one rank die or hang, as a crashed or stuck worker would
    if fault and fault.split(":")[1:] == [str(rank)]:
        if fault.startswith("die"):
            os._exit(9)
        while fault.startswith("hang"):
            time.sleep(60)
    try:
        import numpy as np

        from bench.distributed import engines

        with np.load(spec["inputs"]) as f:
            inputs = tuple(f[k] for k in ("x", "y", "w1", "b1", "w2", "b2"))
        result = engines.run({**spec, "rank": rank}, inputs)
        arrays = {"d_x": result.pop("d_x"), **result.pop("outputs")}
        np.savez(out / f"rank{rank}.npz", **arrays)
        (out / f"rank{rank}.json").write_text(json.dumps(result, default=str))
        return 0
    except BaseException as e:  # noqa: BLE001 - the launcher reads the line; the traceback goes beside it
        line = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        (out / f"rank{rank}.error").write_text(line + "\n")
        (out / f"rank{rank}.traceback").write_text(traceback.format_exc())
        return 1


if __name__ == "__main__":
    status = main(sys.argv[1:])
    from bench import process

    process.exit_now(status)  # its files written, no peer to talk to: not after the frameworks' finalizers
