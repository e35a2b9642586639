"""The gate for a change confined to the steps' code (kernels/): the base revision's steps loaded
beside the working tree's in one process per framework (bench/run/runner.py `kernels`) and timed
take by take in interleaved rounds, as a run interleaves its cases, so whatever drifts between
processes or over time hits both sides alike and the comparison is paired by round. A change to
anything else needs each side's own process: bench/gate/process_pairs.py."""

import concurrent.futures
import dataclasses
import fnmatch
import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import defaults, git, records
from bench.compare import ROUNDS, How, Thresholds, compare
from bench.gate.errors import GateError
from bench.gate.outcome import Outcome
from bench.gate.processes import Process, RunSpec
from bench.records import CaseKey, Record
from bench.run.loop import (
    Prepared,
    Turns,
    check_case,
    close_runners,
    run_fingerprint,
    runner_key,
    start_runners,
    time_group,
)
from bench.run.plan import Config, ConfigError, plan
from bench.run.worker import WorkerDied, WorkerError

SIDES = ("base", "candidate")
MIN_ROUNDS = 12  # at least this many rounds, each side's takes as short as that needs: it pairs by round
SIDE_FILE = "side.json"  # beside a one-process gate's records of each side: whose steps they timed


def write_side(folder: Path, side: str, tree: Path | str) -> None:
    """{side, kernels: the commit whose steps were timed, dirty: with uncommitted changes} in folder/SIDE_FILE:
    the records' own fingerprint names the harness's commit, which ran both sides' steps."""
    (folder / SIDE_FILE).write_text(
        json.dumps({"side": side, "kernels": git.head(tree), "dirty": git.dirty(tree)}) + "\n"
    )


def read_side(folder: Path | str) -> dict[str, Any]:
    """What write_side wrote in `folder`; GateError when it is not a one-process gate's side folder."""
    path = Path(folder) / SIDE_FILE
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(
            f"{folder}: not a side of a one-process gate (no {SIDE_FILE}; `gate --out DIR` writes "
            "DIR/base and DIR/candidate)"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise GateError(f"{path}: unreadable ({type(e).__name__})") from None
    if not (
        isinstance(side, dict)
        and side.get("side") in SIDES
        and isinstance(side.get("kernels"), str)
        and re.fullmatch(r"[0-9a-f]{40,64}", side["kernels"])
    ):
        raise GateError(f"{path}: not a gate's side file (side and a commit expected)")
    return side


def run(
    trees: dict[str, Path],
    spec: RunSpec,
    pairs: int,
    how: How,
    workdir: Path | str,
    progress: Callable[[str], None] | None = None,
    notes: tuple[str, ...] = (),
) -> Outcome:
    """Both sides' steps (trees: {"base": a checkout, "candidate": another}) measured together
    (measure()) and compared as `how` says (paired by round)."""
    kept, processes, wall_s, said = measure(trees, spec, pairs, how.thresholds, workdir, progress)
    result = compare(kept["base"], kept["candidate"], replace(how, pairing=ROUNDS))
    return Outcome(result, processes, wall_s, (*notes, *said), pairing="calls")


def measure(
    trees: dict[str, Path],
    spec: RunSpec,
    pairs: int,
    thresholds: Thresholds,
    workdir: Path | str,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[Record]], dict[str, list[Process]], float, tuple[str, ...]]:
    """({side: records}, {side: [its Process]}, wall seconds, notes) of the steps of every side of
    `trees` ({name: a checkout}: the gate's base and candidate, a bisection's three commits) in one
    worker process per framework, loaded alike (Framework.with_kernels): every case of `spec`
    checked on each side, then each group's cases timed together, the frameworks taking turns, for
    `pairs` x the spec's budget a side (the time `pairs` process pairs would give it), the sides
    interleaved take by take so their records pair by round. Each side's records are written under
    workdir/<side>/."""
    t0 = time.perf_counter()
    workdir = Path(workdir)
    sides = tuple(trees)
    say = progress or (lambda line: None)
    config = _config(spec, pairs, workdir)
    kept: dict[str, list[Record]] = {side: [] for side in sides}
    workers: dict[tuple[str, str], Any] = {}
    counting = concurrent.futures.ThreadPoolExecutor(1)
    found: concurrent.futures.Future | None = None
    try:
        workers = start_runners(config, kernels={side: str(trees[side]) for side in sides}, variables=spec.variables())
        say(f"gate: {len(workers)} framework worker(s) started in {time.perf_counter() - t0:.0f} s")
        common: dict[str, Any] = dict(run_id=config.run_id, fingerprint=run_fingerprint(config, workers)[""])
        groups = plan(config, workers)
        # the cases counted under Callgrind are timed at INSTRUCTIONS_SIZE too, unless a size timed them there
        small = tuple(dict.fromkeys((defaults.INSTRUCTIONS_SIZE[0], m, nh) for _, m, nh in config.sizes))
        small = tuple(size for size in small if size not in config.sizes)
        for group in plan(replace(config, sizes=small), workers) if small and thresholds.instruction_cases else ():
            group = group._replace(cases=[c for c in group.cases if thresholds.counts(c.key)])
            groups += [group] if group.cases else []
        chosen = list(dict.fromkeys(c.key for g in groups for c in g.cases if thresholds.counts(c.key)))
        if chosen:  # meanwhile, on a core the timing leaves free (its frameworks take turns, one thread each)
            seed = (common["fingerprint"].get("seeds") or {}).get("data", defaults.SEED)
            found = counting.submit(_count, chosen, trees, seed, say)
        for group in groups:
            for side, rec in _group(group, sides, workers, common, config, say):
                kept[side].append(rec)
    except (WorkerDied, WorkerError, ConfigError) as e:
        raise GateError(f"the one-process gate could not run: {e}") from None
    finally:
        close_runners(workers)
        counting.shutdown(wait=True, cancel_futures=True)
    kept, notes = counted_sides(kept, found.result() if found else {}, thresholds)
    wall_s = time.perf_counter() - t0
    processes = {side: [_write_side(workdir / side, side, trees[side], kept[side], wall_s)] for side in sides}
    return kept, processes, wall_s, notes


def _count(
    keys: list[CaseKey], trees: dict[str, Path], seed: int, say: Callable[[str], None]
) -> dict[CaseKey, dict[str, Any]]:
    """{case: {side: its instructions}} of `keys`, one at a time, every side's steps in one Valgrind
    process each (bench/instructions.py)."""
    from bench import instructions

    t0 = time.perf_counter()
    say(f"gate: counting {len(keys)} case(s)' instructions under Callgrind meanwhile, every side in one process")
    roots = {side: str(tree) for side, tree in trees.items()}
    found = {key: instructions.measure(key, seed=seed, kernels=roots) for key in keys}
    say(f"gate: instructions counted in {time.perf_counter() - t0:.0f} s")
    return found


def counted_sides(
    kept: dict[str, list[Record]], found: dict[CaseKey, dict[str, Any]], thresholds: Thresholds
) -> tuple[dict[str, list[Record]], tuple[str, ...]]:
    """(kept, notes): each side's records, those of the counted cases (`found`, by _count) with their
    instructions a call; a case that could not be counted keeps its times alone and is said, as is a
    pattern that names no case timed."""
    timed = [r.case.name for recs in kept.values() for r in recs]
    notes = [
        f"instructions-cases {pattern}: names no case this gate timed, so counts nothing"
        for pattern in thresholds.instruction_cases
        if not any(fnmatch.fnmatchcase(name, pattern) for name in timed)
    ]
    for key, by_side in found.items():
        absent = {side: got["absent"] for side, got in by_side.items() if "absent" in got}
        if absent:
            side, why = next(iter(absent.items()))
            notes.append(f"instructions of {key.label}: not counted on the {side} side ({why}); judged by time")
    counted = {
        side: [
            replace(r, instructions=found[r.case][side]) if r.case in found and r.status == "ok" else r for r in recs
        ]
        for side, recs in kept.items()
    }
    return counted, tuple(notes)


def _config(spec: RunSpec, pairs: int, workdir: Path) -> Config:
    """The run the one process makes: `pairs` x the spec's budget a side, no early stop (both sides
    sample the same rounds), at least MIN_ROUNDS rounds, no batch (the gate reads no dispatch time)."""
    budget_s = spec.budget_s * pairs
    return Config(
        out=workdir,
        frameworks=spec.frameworks,
        steps=spec.steps,
        backends=spec.backends,
        device=spec.device,
        sizes=tuple(map(tuple, spec.sizes)),
        step_n={},
        budget_s=budget_s,
        target_ci=1e-9,
        round_s=min(defaults.ROUND_S, budget_s / MIN_ROUNDS),
        budget_rounds=MIN_ROUNDS,
        pin=spec.pin,
        batch_s=None,
        warmup=defaults.GATE_CALLS_WARMUP,
    )


def _group(
    group: Any,
    sides: tuple[str, ...],
    workers: dict[tuple[str, str], Any],
    common: dict[str, Any],
    config: Config,
    say: Callable[[str], None],
) -> list[tuple[str, Record]]:
    """[(side, Record)] of one group's cases: checked on every side, the frameworks at once, each in
    its own process (the gate reads no first-call time, which another worker's compile would disturb);
    then timed, the frameworks taking turns."""
    turns = Turns()
    for worker in workers.values():
        worker.set_tf32(group.tf32)
    took: dict[str, float] = {}

    def check(which: tuple[str, str]) -> list[tuple[str, Record | Prepared]]:
        t = time.perf_counter()
        done = [
            (side, check_case(case, workers[which], group, common, turns, side, settle=False))
            for case in group.cases
            if runner_key(case.key) == which
            for side in sides
        ]
        took[which[0]] = time.perf_counter() - t
        return done

    t_check = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        checked = [item for results in pool.map(check, workers) for item in results]
    prepared = [p for _, p in checked if isinstance(p, Prepared)]
    done = [(side, rec) for side, rec in checked if isinstance(rec, Record)]
    if prepared:
        say(
            f"gate: checked and warmed {len(checked)} case-sides at n={group.n} in "
            f"{time.perf_counter() - t_check:.0f} s ("
            + ", ".join(f"{name} {s:.0f} s" for name, s in sorted(took.items(), key=lambda kv: -kv[1]))
            + f"); timing {len(prepared) // len(sides)} cases, {' and '.join(sides)} interleaved in one process per "
            "framework, then counting them"
        )
        t_time = time.perf_counter()
        done += [(p.side, rec) for p, rec in zip(prepared, time_group(group, prepared, config))]
        say(f"gate: timed and counted in {time.perf_counter() - t_time:.0f} s")
    return done


def _write_side(folder: Path, side: str, tree: Path, recs: list[Record], wall_s: float) -> Process:
    """A side's records in folder/records.jsonl with its side file; the side as a Process."""
    folder.mkdir(parents=True, exist_ok=True)
    for rec in recs:
        records.append(folder / "records.jsonl", rec)
    write_side(folder, side, tree)
    return Process(str(tree), 0, tuple(recs), wall_s)


def rejudged(outcome: Outcome, how: How, note: str) -> Outcome:
    """A one-process gate's Outcome compared again as `how` says (e.g. with the noise the machine's
    one-process A/A runs showed its intervals miss), `note` added."""
    base, cand = (list(outcome.processes[side][0].records or ()) for side in SIDES)
    return dataclasses.replace(
        outcome, result=compare(base, cand, replace(how, pairing=ROUNDS)), notes=(*outcome.notes, note)
    )
