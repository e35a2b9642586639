"""The loop of a run: for each group of the plan, check and warm each case, time the group's cases
together, and append each record to out/records.jsonl as soon as it ends. No terminal code: an
Observer hears what happens (bench/cli/progress.py prints it)."""
from pathlib import Path

from bench.records import Record, append, read, repair
from bench.run.caches import Caches
from bench.run.measure import time_cases
from bench.run.plan import load_frameworks, plan
from bench.run.prepare import prepare_case


class Observer:
    """What the loop tells whoever watches it; every method is a no-op here. checkpoint() is called
    between cases and between timing rounds: raising there (KeyboardInterrupt) stops the run with
    every finished record on disk."""

    def started(self, total):
        pass

    def measuring_ceilings(self, fw, device):
        pass

    def resumed(self, case):
        pass

    def checking(self, case):
        pass

    def timing(self, group, lives):
        pass

    def round(self, r, stopped, lives):
        pass

    def finished(self, rec):
        pass

    def checkpoint(self):
        pass


def run(config, observer=None):
    """Run the grid of `config`; returns the records, each also appended to config.out/records.jsonl
    as it ends (with config.resume, cases already there are skipped)."""
    observer = observer or Observer()
    loaded = load_frameworks(config.frameworks)
    for fw in loaded.values():
        fw.configure()
    groups = plan(config, loaded)
    for fw in loaded.values():
        fw.set_tf32(False)   # float32 matmuls stay float32 on Ampere+ GPUs, for the check and the timing
    out_file = Path(config.out) / "records.jsonl"
    repair(out_file)
    done = {r.case for r in read(out_file)} if config.resume and out_file.exists() else set()
    caches = Caches(config)
    fingerprint = caches.fingerprint(loaded)
    records = []
    observer.started(sum(len(g.cases) for g in groups))

    def finish(rec):
        append(out_file, rec)
        records.append(rec)
        observer.finished(rec)

    for group in groups:
        lives = []
        for case in group.cases:
            observer.checkpoint()
            fw = case.fw
            if case.key in done:
                observer.resumed(case)
                continue
            if not caches.has_ceilings(fw, case.device):
                observer.measuring_ceilings(fw, case.device)
            ref = caches.reference(case.n, case.m, case.nh, case.dtype)
            note = (f"{case.step} ran at n={case.n} instead of {group.n} (default suite limit)"
                    if case.n != group.n else None)
            common = dict(run_id=config.run_id, data=caches.problem(case.n, case.m).source, note=note, tf32=False,
                          ceilings=caches.ceilings(fw, case.device), env=fingerprint)
            observer.checking(case)
            live = prepare_case(fw, case.device, case.step, case.backend, ref,
                                caches.placed(fw, case.device, ref), config, common)
            if isinstance(live, Record):
                finish(live)
            else:
                lives.append(live)
        if lives:
            observer.timing(group, lives)

            def on_round(r, stopped):
                observer.checkpoint()
                observer.round(r, stopped, lives)

            for rec in time_cases(lives, config, on_round):
                finish(rec)
    return records
