"""The loop of a run: for each group of the plan, check and warm each case in its framework's
runner (a worker process of its own by default), time the group's cases together, taking turns
between the runners, and append each record to out/records.jsonl as soon as it ends (and the
group's samples so far every few seconds while it is timed). No terminal code: an Observer hears
what happens (bench/cli/progress.py prints it), and a stop() callable ends the run at the next take."""

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import canary, fingerprint, frameworks
from bench.data import check_fits
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
from bench.run.measure import Timed, Watch, sampled_record, time_cases
from bench.run.plan import Case, Config, ConfigError, Group, plan
from bench.run.runner import Runner
from bench.run.worker import Worker, WorkerDied, WorkerError
from bench.telemetry import Sampler
from bench.timing import Sampled, Taken


class Observer:
    """What the loop tells whoever watches it; every method is a no-op here."""

    def starting(self, frameworks: Sequence[str]) -> None:
        """Before each framework's runner loads (a worker process each by default), which can take a while."""

    def started(self, total: int) -> None:
        pass

    def left_out(self, framework: str, reason: str) -> None:
        """A framework of the default set that failed to load, left out of the run."""

    def measuring_ceilings(self, fw: Any, device: str) -> None:
        """fw: the framework's runner (its .name)."""

    def resumed(self, case: Case) -> None:
        pass

    def checking(self, case: Case) -> None:
        pass

    def timing(self, group: Group, lives: Sequence[Timed]) -> None:
        pass

    def round(
        self, r: int, stopped: dict[int, str], lives: Sequence[Timed], spent: dict[int, float] | None = None
    ) -> None:
        """After each round: the cases stopped so far, and the host seconds of timed calls each has spent."""

    def sampled(self, records: Sequence[Record]) -> None:
        """While a group is timed, each case's record with its samples so far, every config.checkpoint_s."""

    def result(self, rec: Record) -> None:
        """A timed case's final record, its batch and counters taken after the group's last round: its
        group's records are written together (finished) once every case of the group has one."""

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


class Prepared:
    """A checked, warm case living in a runner (bench/run/runner.py, or a worker's): what
    measure.time_cases times. `turns` gives the CPU to its runner before each take; `side`: which
    of the runner's steps ("candidate", or the gate's "base": bench/run/runner.py); `observer` hears
    its result as soon as it is finished."""

    def __init__(
        self,
        runner: Runner | Worker,
        rec: Record,
        per_call_s: float,
        turns: "Turns",
        side: str = "candidate",
        observer: Observer | None = None,
    ) -> None:
        self.runner, self.rec, self.per_call_s, self.turns, self.side = runner, rec, per_call_s, turns, side
        self.observer = observer

    def take(self, count: int) -> Taken:
        try:
            self.turns.to(self.runner)
            return self.runner.take(self.rec.case, count, self.side)
        except WorkerDied:
            return Taken((), (), ())  # measured nothing: time_cases records it as failed, saying why

    def finish(self, rec: Record, counters: bool) -> Record:
        try:
            final = self.runner.finish(rec.case, rec, counters, self.side)
        except (WorkerDied, WorkerError) as e:
            final = replace(self.rec, status="failed", error=str(e))
        if self.observer is not None:
            self.observer.result(final)
        return final

    def failed(self) -> str:
        return self.runner.dead or "its take measured nothing"


class Turns:
    """Whose turn it is to use the CPU: before another runner's take or check, the one before it
    settles (bench/run/worker.py: its threads stop spinning), so that no idle framework's threads
    run while another is timed."""

    def __init__(self) -> None:
        self.last: Runner | Worker | None = None

    def to(self, runner: Runner | Worker) -> None:
        if self.last is not None and self.last is not runner:
            try:
                self.last.settle()
            except (WorkerDied, WorkerError):
                pass  # a dead worker spins nothing
        self.last = runner


def runner_key(key: CaseKey) -> tuple[str, str]:
    """Which runner a case runs in: its framework's, in its environment (start_runners' keys)."""
    return key.framework, key.deps


def start_runners(
    config: Config,
    observer: Observer | None = None,
    kernels: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
) -> dict[tuple[str, str], Runner | Worker]:
    """{(framework, deps): its Runner}: each in a worker process of its own when config.isolate
    (started together, so their imports overlap; the environment `variables` set in them), else in
    this process; one per framework and --env environment (config.venvs; deps its set's name, "" the
    harness's own);
    `kernels`: each side's checkout (bench/run/runner.py). A framework that cannot load is a
    ConfigError naming it, or, with config.leave_out_broken, left out (observer.left_out) unless none
    is left. In an --env environment a framework that cannot load fails its cases there, saying why,
    and the other environments run."""
    runners: dict[tuple[str, str], Runner | Worker] = {}
    reasons: list[tuple[str, str]] = []
    try:
        for name in config.frameworks:
            for deps in config.venvs or (None,):
                if deps is not None:
                    runners[name, deps.name] = Worker(
                        name, config, kernels, variables, python=deps.python, deps=deps.name
                    )
                elif config.isolate:
                    runners[name, ""] = Worker(name, config, kernels, variables)
                else:
                    try:
                        runners[name, ""] = Runner(name, config, kernels)
                    except frameworks.FrameworkUnavailable as e:
                        reasons.append((name, str(e)))
        reasons += _await_workers(runners)
        if not any(not r.dead for r in runners.values()) and config.venvs:
            raise ConfigError("; ".join(str(r.dead) for r in runners.values()))
        if reasons and not (config.leave_out_broken and runners):
            raise ConfigError("; ".join(f"framework {name}: {why}" for name, why in reasons))
        for name, why in reasons:
            (observer or Observer()).left_out(name, why)
    except BaseException:
        close_runners(runners)
        raise
    return runners


def _await_workers(runners: dict[tuple[str, str], Runner | Worker]) -> list[tuple[str, str]]:
    """Wait for each worker to have loaded its framework; [(framework, why)] of those in the harness's
    own environment that could not (closed and taken out). One in an --env environment stays, dead:
    its cases fail there, saying why, on the devices its framework has elsewhere here."""
    reasons = []
    for (name, deps), runner in list(runners.items()):
        if not isinstance(runner, Worker):
            continue
        try:
            runner.ready()
        except (WorkerError, WorkerDied) as e:
            if deps:
                runner.dead = f"{name} in --env {deps!r}: {e}"
                continue
            runner.close()
            del runners[name, deps]
            reasons.append((name, str(e)))
    for (name, _), runner in runners.items():
        if isinstance(runner, Worker) and runner.dead:
            runner.devices_if_dead = next(
                (r.devices() for (n, _), r in runners.items() if n == name and not r.dead), ["cpu"]
            )
    return reasons


def run_fingerprint(config: Config, runners: dict[tuple[str, str], Runner | Worker]) -> dict[str, dict[str, Any]]:
    """The environment of each of the run's environments ({deps: fingerprint}, "" the harness's
    own): each of its runners' framework facts and the first size's data source; an --env
    environment's packages are its resolved versions, and its `deps` says which set it is."""
    n, m, _ = config.sizes[0]
    alive = [r for r in runners.values() if not r.dead]
    base = fingerprint.collect(
        {},
        data_source=alive[0].data_source(n, m) if alive else None,
        seeds={"data": config.seed, "params": config.seed},
    )
    base["pinned_cpus"] = list(config.pin) or None  # the framework workers' CPUs, where bound
    out = {}
    for deps in [e.name for e in config.venvs] or [""]:
        facts = {name: r.info() for (name, d), r in runners.items() if d == deps and not r.dead}
        out[deps] = dict(base, frameworks=facts)
    for venv in config.venvs:
        packages = venv.versions(fingerprint.PACKAGES)
        out[venv.name].update(
            packages=packages,
            numpy=packages.get("numpy"),
            deps=dict(name=venv.name, key=venv.key, requirements=list(venv.requirements), pins=list(venv.pins)),
        )
    return out


def restart_dead(runners: dict[tuple[str, str], Runner | Worker], config: Config) -> None:
    """A new worker for each that died (its cases so far are recorded as failed, saying how); one
    that cannot start again stays dead, and its later cases fail the same way. A worker of an --env
    environment that never loaded there stays as it is."""
    pythons = {e.name: e.python for e in config.venvs}
    for (name, deps), runner in runners.items():
        if isinstance(runner, Worker) and runner.dead and runner.loaded:
            runner.close()
            fresh = Worker(name, config, python=pythons.get(deps), deps=deps)
            try:
                runners[name, deps] = fresh.ready()
            except (WorkerDied, WorkerError):
                fresh.close()


def close_runners(runners: dict[tuple[str, str], Runner | Worker]) -> None:
    for runner in runners.values():
        runner.close()


def run(config: Config, observer: Observer | None = None, stop: Callable[[], bool] | None = None) -> list[Record]:
    """Run the grid of `config`; returns the records, each also appended to config.out/records.jsonl
    as it ends. Each framework's cases run in its own runner (a worker process when config.isolate),
    the groups' cases interleaved across them. With config.resume, cases already complete there are
    skipped and the run keeps the file's run id, and a re-timed case replaces its interrupted
    record: the file holds one final record per case. While a group is timed, its samples so far go
    to the journal beside the file every config.checkpoint_s (bench/records.py JOURNAL), which its
    final records replace. stop() is asked between cases and after every take of a case's calls:
    once it is true, the group being timed is written with the samples taken so far (stop_reason
    "interrupted") and the run returns."""
    observer = observer or Observer()
    stop = stop or (lambda: False)
    allowed = os.sched_getaffinity(0)
    if config.pin and config.isolate and allowed - set(config.pin):
        # this thread and those it starts (the load sampler's) off the workers' CPUs, till the run ends
        os.sched_setaffinity(0, allowed - set(config.pin))
    try:
        observer.starting(config.frameworks)
        runners = start_runners(config, observer)
        try:
            return _run(config, runners, observer, stop)
        finally:
            for runner in runners.values():
                try:
                    runner.set_tf32(False)  # float32 matrix products in float32 again
                except (WorkerDied, WorkerError):
                    pass
            close_runners(runners)
    finally:
        os.sched_setaffinity(0, allowed)


def _run(config, runners, observer, stop):
    groups = plan(config, runners)
    if config.data:
        check_fits(config.data, {(case.key.n, case.key.m) for group in groups for case in group.cases})
    out_file = Path(config.out) / "records.jsonl"
    repair(out_file)
    done: set[CaseKey] = set()
    superseded: set[CaseKey] = set()
    if config.resume:
        done, superseded, run_id = resumable(out_file)
        config = replace(config, run_id=run_id or config.run_id)
    fingerprint = run_fingerprint(config, runners)
    records: list[Record] = []
    observer.started(sum(len(g.cases) for g in groups))

    def finish(rec):
        if rec.case in superseded:
            replace_case(out_file, rec)
        else:
            append(out_file, rec)
        records.append(rec)
        observer.finished(rec)

    for group in groups:
        restart_dead(runners, config)
        going = run_group(
            group,
            runners,
            config,
            done,
            fingerprint,
            observer,
            stop,
            finish,
            lambda recs: write_journal(out_file, recs),
        )
        clear_journal(out_file)  # the group's records are final now
        if not going:
            break
    return records


def check_case(
    case: Case,
    runner: Runner | Worker,
    group: Group,
    common: dict[str, Any],
    turns: Turns,
    side: str = "candidate",
    settle: bool = True,
    observer: Observer | None = None,
) -> Record | Prepared:
    """One case of `group` checked against the float64 reference and warmed in its runner (`side`:
    which of the runner's steps, bench/run/runner.py): a Prepared to time, or the case's final record
    (skipped, failed its check, or its runner failed). settle=False: this check shares the machine
    with others on purpose (the gate checks its frameworks at once), so no turn is taken."""
    key = case.key
    try:
        if settle:
            turns.to(runner)
        skipped = runner.skip_reason(key)
        if skipped:
            return Record(**key.asdict(), status="skipped", error=skipped, **common)
        if observer is not None:
            if not runner.has_ceilings(key.device):
                observer.measuring_ceilings(runner, key.device)
            observer.checking(case)
        rec, per_call_s = runner.prepare(key, group.n, group.tf32, common, side)
    except (WorkerDied, WorkerError) as e:
        return Record(**key.asdict(), status="failed", error=str(e), **common)
    return rec if per_call_s is None else Prepared(runner, rec, per_call_s, turns, side, observer)


def time_group(group: Group, prepared: list[Prepared], config: Config, watch: Watch | None = None) -> list[Record]:
    """The checked cases of `group` timed together in interleaved rounds (measure.time_cases), the
    machine's load sampled meanwhile and its canary timed once a round (bench/canary.py); their
    final records, in order."""
    with Sampler(group.device) as telemetry:
        return time_cases(
            prepared,
            config,
            watch,
            telemetry=telemetry,
            failed=lambda p: p.failed(),
            blocks=[runner_key(p.rec.case) for p in prepared],
            canary=canary.take(),
        )


def run_group(
    group: Group,
    runners: dict[tuple[str, str], Runner | Worker],
    config: Config,
    done: set[CaseKey],
    fingerprint: dict[str, Any],
    observer: Observer,
    stop: Callable[[], bool],
    finish: Callable[[Record], None],
    checkpoint: Callable[[list[Record]], None],
) -> bool:
    """Check and warm each case of `group`, then time them together; False when stop() ended it."""
    prepared: list[Prepared] = []
    turns = Turns()
    for runner in runners.values():
        try:
            runner.set_tf32(group.tf32)  # a framework-wide switch: the group's cases share it
        except (WorkerDied, WorkerError):
            pass  # its cases fail below, saying why
    for case in group.cases:
        if stop():
            for p in prepared:  # checked and warm, never timed
                finish(sampled_record(p.rec, Sampled((), (), "interrupted")))
            return False
        runner = runners[runner_key(case.key)]
        if case.key in done:
            observer.resumed(case)
            continue
        common = dict(run_id=config.run_id, fingerprint=fingerprint[case.key.deps])
        checked = check_case(case, runner, group, common, turns, observer=observer)
        if isinstance(checked, Prepared):
            prepared.append(checked)
        else:
            finish(checked)
    if prepared:
        observer.timing(group, prepared)

        def keep(recs: list[Record]) -> None:
            checkpoint(recs)
            observer.sampled(recs)

        watch = Watch(lambda r, stopped, spent: observer.round(r, stopped, prepared, spent), stop, keep)
        for rec in time_group(group, prepared, config, watch):
            finish(rec)
    return not stop()
