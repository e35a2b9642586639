"""One framework's side of a run: it loads the framework, makes the inputs and their float64
reference, measures the device's ceilings, checks and warms each case, times takes of its calls and
finishes it (batch, trace count, counters). The loop talks to a Runner in this process or, through
bench/run/worker.py, to one in a worker process of the framework's own: the same methods, whose
arguments and results are plain data (CaseKey, Record, Taken)."""

import json
import os
from typing import Any

from bench import frameworks, timing
from bench.records import CaseKey, Record
from bench.run.caches import Caches
from bench.run.plan import Config
from bench.run.prepare import Live, prepare_case, skip_reason
from kernels import models

# glibc's malloc serves a block over its mmap threshold from a fresh mapping and unmaps it on free, so a
# step with an output that large has every page of it faulted in again on every call: time that depends
# on what other processes did to memory, not on the step. A runner's process keeps and reuses the memory
# it freed instead, as a training loop's caching allocator would (experiment: memory-reuse). Unless set
# already; bench/run/worker.py starts each worker with it.
MEMORY_REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


class Runner:
    """The cases of one framework, in this process. Its name, steps, backends and gpu_backends are
    the framework class's (what the plan reads); devices() asks the loaded framework. Each case
    runs on a side: "candidate", this process's steps, unless `kernels` ({side: a checkout's
    folder}) gives each side the steps of that checkout's kernels (Framework.with_kernels): the
    gate times a base revision's steps beside the working tree's in one process (bench/gate/one_process.py)."""

    def __init__(self, name: str, config: Config, kernels: dict[str, str] | None = None) -> None:
        self.fw = frameworks.load(name)
        self.fw.configure()
        self.sides = (
            {side: self.fw.with_kernels(root) for side, root in kernels.items()} if kernels else {"candidate": self.fw}
        )
        self.name, self.steps, self.backends, self.gpu_backends = (
            self.fw.name,
            self.fw.steps,
            self.fw.backends,
            self.fw.gpu_backends,
        )
        self.config = config
        self.caches = Caches(config)
        self.lives: dict[tuple[str, CaseKey], Live] = {}
        self.dead: str | None = None  # as a Worker's: a runner in this process dies with it
        self.deps = ""  # the harness's own environment (a Worker may run in another: --env)

    def devices(self) -> list[str]:
        return self.fw.devices()

    def info(self) -> dict[str, Any]:
        """The framework's facts for the run's environment fingerprint, as plain JSON data: they
        travel to the run's process and from it to every worker (each case's `env`), and a
        framework's own type among them (torch.__version__ is a TorchVersion) would import that
        framework wherever it is unpickled: PyTorch's threads in NumPy's worker. With them, what this
        process's malloc was told (bench/run/worker.py MEMORY_REUSE), whatever the framework."""
        facts = {**self.fw.info(), "malloc_env": {k: os.environ.get(k) for k in MEMORY_REUSE}}
        return json.loads(json.dumps(facts, default=str))

    def data_source(self, n: int, m: int) -> str:
        return self.caches.problem(n, m).source

    def set_tf32(self, on: bool) -> None:
        self.fw.set_tf32(on)

    def has_ceilings(self, device: str) -> bool:
        return self.caches.has_ceilings(self.fw, device)

    def skip_reason(self, key: CaseKey) -> str | None:
        """Why the case `key` cannot run here (bench/run/prepare.py skip_reason), or None."""
        flush = self.caches.flusher(self.fw, key.device) if key.cache == "cold" else None
        return skip_reason(self.fw, key, flush)

    def prepare(
        self, key: CaseKey, group_n: int, tf32: bool, common: dict[str, Any], side: str = "candidate"
    ) -> tuple[Record, float | None]:
        """(Record, seconds a call takes) of the case `key`: a skipped or failed Record is final
        (None); an ok one is checked and warm, kept here for take() and finish(). `common`: the
        Record fields every case of the run shares; group_n: the group's n (a smaller key.n is said)."""
        fw = self.sides[side]
        flush = self.caches.flusher(fw, key.device) if key.cache == "cold" else None
        skipped = skip_reason(fw, key, flush)
        if skipped:
            return Record(
                **key.asdict(),
                status="skipped",
                error=skipped,
                run_id=common["run_id"],
                fingerprint=common["fingerprint"],
            ), None
        widths = models.widths(key.model, key.m, key.nh, key.loss_fn)
        size = (key.n, key.m, key.nh, widths)
        if not self.caches.has_ceilings(fw, key.device, size):
            fw.set_tf32(False)  # the ceilings are float32's
            self.caches.ceilings(fw, key.device)
            self.caches.shape_ceiling(fw, key.device, *size)
            fw.set_tf32(tf32)
        measured = {**self.caches.ceilings(fw, key.device), **self.caches.shape_ceiling(fw, key.device, *size)}
        inputs = (key.n, key.m, key.nh, key.dtype, key.tf32, key.model, key.loss_fn)
        ref = self.caches.reference(*inputs)
        note = f"{key.step} ran at n={key.n} instead of {group_n} (default suite limit)" if key.n != group_n else None
        case_common = dict(common, data=self.caches.problem(key.n, key.m).source, note=note, ceilings=measured)
        live = prepare_case(
            fw, key, ref, self.caches.placed(fw, key.device, *inputs), self.config, case_common, flush=flush
        )
        if isinstance(live, Record):
            return live, None
        self.lives[side, key] = live
        return live.rec, live.per_call_s

    def take(self, key: CaseKey, count: int, side: str = "candidate") -> timing.Taken:
        return self.lives[side, key].take(count)

    def finish(self, key: CaseKey, rec: Record, counters: bool, side: str = "candidate") -> Record:
        """The final Record of a timed case from `rec` (its samples and telemetry): its batch, its
        trace count once more (a retrace), and, when `counters`, its counters; then it is let go."""
        return self.lives.pop((side, key)).finish(rec, counters)

    def settle(self) -> float:
        """Nothing to wait for in this process: its threads are the run's own. 0 seconds."""
        return 0.0

    def close(self) -> None:
        self.lives.clear()
