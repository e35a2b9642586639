"""The loop of a run: for each group of the plan, check and warm each case, time the group's cases
together, and append each record to out/records.jsonl as soon as it ends (and the group's samples
so far every few seconds while it is timed). No terminal code: an Observer hears what happens
(bench/cli/progress.py prints it), and a stop() callable ends the run at the next call."""
from dataclasses import replace
from pathlib import Path

from bench.data import check_fits
from bench.records import Record, append, load, repair
from bench.run.caches import Caches
from bench.run.measure import sampled_record, time_cases
from bench.run.plan import load_frameworks, plan
from bench.run.prepare import prepare_case, skip_reason
from bench.telemetry import Sampler
from bench.timing import Sampled


class Observer:
    """What the loop tells whoever watches it; every method is a no-op here."""

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


def resumable(out_file):
    """(cases recorded complete, the latest run id) of an existing records file; an interrupted
    case (stop_reason "interrupted") is not complete, so a resume times it again."""
    if not out_file.exists():
        return set(), None
    records, _ = load(out_file)
    done = {r.case for r in records if r.stop_reason != "interrupted"}
    return done, records[-1].run_id if records else None


def run(config, observer=None, stop=None):
    """Run the grid of `config`; returns the records, each also appended to config.out/records.jsonl
    as it ends. With config.resume, cases already complete there are skipped and the run keeps the
    file's run id, so a re-timed case replaces its interrupted record. stop() is asked between
    cases and after every timed call: once it is true, the group being timed is written with the
    samples taken so far (stop_reason "interrupted") and the run returns."""
    observer = observer or Observer()
    stop = stop or (lambda: False)
    loaded = load_frameworks(config.frameworks)
    for fw in loaded.values():
        fw.configure()
    groups = plan(config, loaded)
    if config.data:
        check_fits(config.data, {(case.n, case.m) for group in groups for case in group.cases})
    out_file = Path(config.out) / "records.jsonl"
    repair(out_file)
    done = set()
    if config.resume:
        done, run_id = resumable(out_file)
        config = replace(config, run_id=run_id or config.run_id)
    caches = Caches(config)
    fingerprint = caches.fingerprint(loaded)
    records = []
    observer.started(sum(len(g.cases) for g in groups))

    def finish(rec):
        append(out_file, rec)
        records.append(rec)
        observer.finished(rec)

    def checkpoint(recs):
        for rec in recs:
            append(out_file, rec)

    try:
        for group in groups:
            if not run_group(group, loaded, config, caches, done, fingerprint, observer, stop, finish, checkpoint):
                break
    finally:
        for fw in loaded.values():
            fw.set_tf32(False)   # float32 matrix products in float32 again
    return records


def run_group(group, loaded, config, caches, done, fingerprint, observer, stop, finish, checkpoint):
    """Check and warm each case of `group`, then time them together; False when stop() ended it."""
    lives = []
    for fw in loaded.values():
        fw.set_tf32(group.tf32)   # a framework-wide switch: the group's cases share it
    for case in group.cases:
        if stop():
            for live in lives:   # checked and warm, never timed
                finish(sampled_record(live, Sampled((), (), "interrupted")))
            return False
        fw = case.fw
        if case.key in done:
            observer.resumed(case)
            continue
        skipped = skip_reason(fw, case.device, case.dtype, case.tf32, case.cache, case.backend)
        if skipped:
            finish(Record(**case.key._asdict(), status="skipped", error=skipped, run_id=config.run_id, env=fingerprint))
            continue
        if not caches.has_ceilings(fw, case.device):
            observer.measuring_ceilings(fw, case.device)
            fw.set_tf32(False)   # the ceilings are float32's
            caches.ceilings(fw, case.device)
            fw.set_tf32(group.tf32)
        ref = caches.reference(case.n, case.m, case.nh, case.dtype, case.tf32)
        note = f"{case.step} ran at n={case.n} instead of {group.n} (default suite limit)" if case.n != group.n else None
        common = dict(run_id=config.run_id, data=caches.problem(case.n, case.m).source, note=note, tf32=case.tf32,
                      ceilings=caches.ceilings(fw, case.device), env=fingerprint)
        observer.checking(case)
        live = prepare_case(fw, case.device, case.step, case.backend, ref, caches.placed(fw, case.device, ref),
                            config, common, cache=case.cache)
        if isinstance(live, Record):
            finish(live)
        else:
            lives.append(live)
    if lives:
        observer.timing(group, lives)
        with Sampler(group.device) as telemetry:
            timed = time_cases(lives, config, lambda r, stopped: observer.round(r, stopped, lives), stop,
                               checkpoint, telemetry)
        for rec in timed:
            finish(rec)
    return not stop()
