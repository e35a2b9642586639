"""The loop of a run: for each group of the plan, check and warm each case, time the group's cases
together, and append each record to out/records.jsonl as soon as it ends (and the group's samples
so far every few seconds while it is timed). No terminal code: an Observer hears what happens
(bench/cli/progress.py prints it), and a stop() callable ends the run at the next call."""
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.data import check_fits
from bench.frameworks.base import Framework
from bench.records import (
    CaseKey,
    Record,
    append,
    clear_journal,
    fold_journal,
    load,
    repair,
    replace_case,
    write_journal,
)
from bench.run.caches import Caches
from bench.run.measure import sampled_record, time_cases
from bench.run.plan import Case, Config, Group, load_frameworks, plan
from bench.run.prepare import Live, prepare_case, skip_reason
from bench.telemetry import Sampler
from bench.timing import Sampled


class Observer:
    """What the loop tells whoever watches it; every method is a no-op here."""

    def started(self, total: int) -> None:
        pass

    def measuring_ceilings(self, fw: Framework, device: str) -> None:
        pass

    def resumed(self, case: Case) -> None:
        pass

    def checking(self, case: Case) -> None:
        pass

    def timing(self, group: Group, lives: list[Live]) -> None:
        pass

    def round(self, r: int, stopped: dict[int, str], lives: list[Live]) -> None:
        pass

    def finished(self, rec: Record) -> None:
        pass


class Observers(Observer):
    """Several observers as one: each event of Observer's goes to every one of them, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers


def _to_each(event):
    def forward(self, *args):
        for observer in self.observers:
            getattr(observer, event)(*args)
    return forward


for _event in [name for name in vars(Observer) if not name.startswith("_")]:
    setattr(Observers, _event, _to_each(_event))


def resumable(out_file: Path) -> tuple[set[CaseKey], set[CaseKey], str | None]:
    """(cases recorded complete, cases recorded interrupted, the latest run id) of an existing
    records file, after folding in the journal a killed run left; an interrupted case (stop_reason
    "interrupted") is not complete, so a resume times it again."""
    fold_journal(out_file)
    if not out_file.exists():
        return set(), set(), None
    records, _ = load(out_file)
    done = {r.case for r in records if r.stop_reason != "interrupted"}
    return done, {r.case for r in records} - done, records[-1].run_id if records else None


def run(config: Config, observer: Observer | None = None, stop: Callable[[], bool] | None = None) -> list[Record]:
    """Run the grid of `config`; returns the records, each also appended to config.out/records.jsonl
    as it ends. With config.resume, cases already complete there are skipped and the run keeps the
    file's run id, and a re-timed case replaces its interrupted record: the file holds one final
    record per case. While a group is timed, its samples so far go to the journal beside the file
    every config.checkpoint_s (bench/records.py JOURNAL), which its final records replace. stop()
    is asked between cases and after every timed call: once it is true, the group being timed is
    written with the samples taken so far (stop_reason "interrupted") and the run returns."""
    observer = observer or Observer()
    stop = stop or (lambda: False)
    loaded = load_frameworks(config.frameworks)
    for fw in loaded.values():
        fw.configure()
    groups = plan(config, loaded)
    if config.data:
        check_fits(config.data, {(case.key.n, case.key.m) for group in groups for case in group.cases})
    out_file = Path(config.out) / "records.jsonl"   # type: ignore[arg-type]  # None only in the probe's Config
    repair(out_file)
    done: set[CaseKey] = set()
    superseded: set[CaseKey] = set()
    if config.resume:
        done, superseded, run_id = resumable(out_file)
        config = replace(config, run_id=run_id or config.run_id)
    caches = Caches(config)
    fingerprint = caches.fingerprint(loaded)
    records: list[Record] = []
    observer.started(sum(len(g.cases) for g in groups))

    def finish(rec):
        if rec.case in superseded:
            replace_case(out_file, rec)
        else:
            append(out_file, rec)
        records.append(rec)
        observer.finished(rec)

    try:
        for group in groups:
            going = run_group(group, loaded, config, caches, done, fingerprint, observer, stop, finish,
                              lambda recs: write_journal(out_file, recs))
            clear_journal(out_file)   # the group's records are final now
            if not going:
                break
    finally:
        for fw in loaded.values():
            fw.set_tf32(False)   # float32 matrix products in float32 again
    return records


def run_group(group: Group, loaded: dict[str, Framework], config: Config, caches: Caches, done: set[CaseKey],
              fingerprint: dict[str, Any], observer: Observer, stop: Callable[[], bool],
              finish: Callable[[Record], None], checkpoint: Callable[[list[Record]], None]) -> bool:
    """Check and warm each case of `group`, then time them together; False when stop() ended it."""
    lives: list[Live] = []
    for fw in loaded.values():
        fw.set_tf32(group.tf32)   # a framework-wide switch: the group's cases share it
    for case in group.cases:
        if stop():
            for lv in lives:   # checked and warm, never timed
                finish(sampled_record(lv, Sampled((), (), "interrupted")))
            return False
        fw, key = case
        if key in done:
            observer.resumed(case)
            continue
        flush = caches.flusher(fw, key.device) if key.cache == "cold" else None
        skipped = skip_reason(fw, key, flush)
        if skipped:
            finish(Record(**key.asdict(), status="skipped", error=skipped, run_id=config.run_id, env=fingerprint))
            continue
        if not caches.has_ceilings(fw, key.device):
            observer.measuring_ceilings(fw, key.device)
            fw.set_tf32(False)   # the ceilings are float32's
            caches.ceilings(fw, key.device)
            fw.set_tf32(group.tf32)
        inputs = (key.n, key.m, key.nh, key.dtype, key.tf32)
        ref = caches.reference(*inputs)
        note = f"{key.step} ran at n={key.n} instead of {group.n} (default suite limit)" if key.n != group.n else None
        common = dict(run_id=config.run_id, data=caches.problem(key.n, key.m).source, note=note,
                      ceilings=caches.ceilings(fw, key.device), env=fingerprint)
        observer.checking(case)
        live = prepare_case(fw, key, ref, caches.placed(fw, key.device, *inputs), config, common, flush=flush)
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
