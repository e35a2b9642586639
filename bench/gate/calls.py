"""The gate for a change confined to the steps' code (kernels/): the base revision's steps loaded
beside the working tree's in one process (the framework's worker, bench/run/runner.py `kernels`)
and timed take by take in interleaved rounds, as a run interleaves its cases, so whatever drifts
between processes or over time (the machine's load, clocks, a process's layout) hits both sides
alike and the comparison is paired by round. A change to anything else (the harness, pyproject,
a dependency) still needs each side's own process: bench/gate/paired.py."""
import concurrent.futures
import dataclasses
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import defaults, records
from bench.gate import rule
from bench.gate.errors import GateError
from bench.gate.paired import Outcome
from bench.gate.processes import Process, RunSpec
from bench.gate.worktree import git
from bench.records import Record
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
ROUNDS = 12   # at least this many rounds, each side's takes as short as that needs: it pairs by round
# What may differ for the steps to be the only code that changed: the steps, tests, text, and stored
# results (examples, baselines, the A/A figures: no run reads them; a gate reads REV's A/A figures).
UNTIMED_PREFIXES = ("kernels/", "tests/", "results/")
UNTIMED_SUFFIXES = (".md",)


def changed_files(tree: Path | str, sha: str) -> list[str]:
    """The files the working tree of `tree` changes against commit `sha` (tracked, staged or not,
    and untracked ones git does not ignore)."""
    tracked = git(tree, "diff", "--name-only", sha, "--").stdout.split("\n")
    untracked = git(tree, "ls-files", "--others", "--exclude-standard").stdout.split("\n")
    return sorted({f for f in tracked + untracked if f})


SIDE_FILE = "side.json"   # beside a one-process gate's records of each side: whose steps they timed


def write_side(folder: Path, side: str, tree: Path | str) -> None:
    """{side, kernels: the commit whose steps were timed, dirty: with uncommitted changes} in folder/SIDE_FILE:
    the records' own fingerprint names the harness's commit, which ran both sides' steps."""
    head = git(tree, "rev-parse", "HEAD").stdout.strip()
    dirty = bool(git(tree, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    (folder / SIDE_FILE).write_text(json.dumps({"side": side, "kernels": head or None, "dirty": dirty}) + "\n")


def read_side(folder: Path | str) -> dict[str, Any]:
    """What write_side wrote in `folder`; GateError when it is not a one-process gate's side folder."""
    path = Path(folder) / SIDE_FILE
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"{folder}: not a side of a one-process gate (no {SIDE_FILE}; `gate --out DIR` writes "
                        "DIR/base and DIR/candidate)") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise GateError(f"{path}: unreadable ({type(e).__name__})") from None
    if not (isinstance(side, dict) and side.get("side") in SIDES and isinstance(side.get("kernels"), str)
            and re.fullmatch(r"[0-9a-f]{40,64}", side["kernels"])):
        raise GateError(f"{path}: not a gate's side file (side and a commit expected)")
    return side


def outside_kernels(files: list[str]) -> list[str]:
    """The files of `files` that could change what the harness does, not only the steps it times."""
    return [f for f in files if not f.startswith(UNTIMED_PREFIXES) and not f.endswith(UNTIMED_SUFFIXES)]


def one_process(base_tree: Path, tree: Path | str, spec: RunSpec, pairs: int, thresholds: rule.Thresholds,
                workdir: Path | str, allow_mismatch: bool = False, progress: Callable[[str], None] | None = None,
                notes: tuple[str, ...] = ()) -> Outcome:
    """Both sides' steps in one worker process per framework (the base's from `base_tree`, the
    candidate's from `tree`, both loaded alike: Framework.with_kernels), every case of `spec`
    checked on each side, then each group's cases timed together, the frameworks taking turns, for
    `pairs` x the spec's budget a side (the time `pairs` process pairs would give it); an Outcome
    whose processes are these processes' records of each side, written under workdir/<side>/."""
    t0 = time.perf_counter()
    workdir = Path(workdir)
    say = progress or (lambda line: None)
    config = Config(out=workdir, frameworks=spec.frameworks, steps=spec.steps, backends=spec.backends,
                    device=spec.device, sizes=tuple(map(tuple, spec.sizes)), step_n={},
                    budget_s=spec.budget_s * pairs, target_ci=1e-9,   # no early stop: both sides sample the same rounds
                    round_s=min(defaults.ROUND_S, spec.budget_s * pairs / ROUNDS), budget_rounds=ROUNDS, pin=spec.pin,
                    batch_s=None,   # no dispatch time (the gate reads none): the frameworks count their cases at once
                    warmup=defaults.GATE_CALLS_WARMUP)
    kept: dict[str, list[Record]] = {side: [] for side in SIDES}
    workers: dict[tuple[str, str], Any] = {}
    try:
        workers = start_runners(config, kernels={"base": str(base_tree), "candidate": str(tree)}, env=spec.env())
        say(f"gate: {len(workers)} framework worker(s) started in {time.perf_counter() - t0:.0f} s")
        groups = plan(config, workers)
        common: dict[str, Any] = dict(run_id=config.run_id, env=run_fingerprint(config, workers)[""])
        for group in groups:
            turns = Turns()
            for worker in workers.values():
                worker.set_tf32(group.tf32)

            took: dict[str, float] = {}

            def check(which: tuple[str, str], group=group, turns=turns, took=took) -> list[tuple[str, Record | Prepared]]:
                """Each case of this runner checked and warmed on both sides: [(side, checked)]."""
                t = time.perf_counter()
                done = [(side, check_case(case, workers[which], group, common, turns, side, settle=False))
                        for case in group.cases if runner_key(case.key) == which for side in SIDES]
                took[which[0]] = time.perf_counter() - t
                return done
            # The frameworks check their cases at once, each in its own process (the gate reads no
            # first-call time, which a neighbour's compile would disturb); the timing takes turns.
            t_check = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
                checked = [item for results in pool.map(check, workers) for item in results]
            prepared = [p for _, p in checked if isinstance(p, Prepared)]
            for side, rec in checked:
                if isinstance(rec, Record):
                    kept[side].append(rec)
            if prepared:
                say(f"gate: checked and warmed {len(checked)} case-sides at n={group.n} in "
                    f"{time.perf_counter() - t_check:.0f} s ("
                    + ", ".join(f"{name} {s:.0f} s" for name, s in sorted(took.items(), key=lambda kv: -kv[1]))
                    + f"); timing {len(prepared) // 2} cases, base and candidate "
                    "interleaved in one process per framework, then counting them")
                t_time = time.perf_counter()
                for p, rec in zip(prepared, time_group(group, prepared, config)):
                    kept[p.side].append(rec)
                say(f"gate: timed and counted in {time.perf_counter() - t_time:.0f} s")
    except (WorkerDied, WorkerError, ConfigError) as e:
        raise GateError(f"the one-process gate could not run: {e}") from None
    finally:
        close_runners(workers)
    wall_s = time.perf_counter() - t0
    processes = {}
    for side in SIDES:
        (workdir / side).mkdir(parents=True, exist_ok=True)
        for rec in kept[side]:
            records.append(workdir / side / "records.jsonl", rec)
        write_side(workdir / side, side, base_tree if side == "base" else tree)
        processes[side] = [Process(str(base_tree if side == "base" else tree), 0, tuple(kept[side]), wall_s)]
    result = rule.compare(kept["base"], kept["candidate"], thresholds, allow_mismatch=allow_mismatch)
    return Outcome(result, processes, wall_s, notes, pairing="calls")


def with_aa(outcome: Outcome, aa_file: Path | str, spec: RunSpec, thresholds: rule.Thresholds,
            allow_mismatch: bool = False, whose: str = "") -> tuple[Outcome, str]:
    """(a one-process gate's Outcome judged with what this machine's one-process A/A runs of the
    same cases showed its intervals miss, where they did; the line that says so). whose: where the
    figures come from, said after "A/A of this one-process gate"."""
    from bench.gate import experiments
    extra, source = experiments.calls_noise(aa_file, outcome.env, spec)
    line = f"A/A of this one-process gate{whose}: {source}" + (
        "; its intervals are within-run only" if extra is None else
        "; its intervals held there (they missed nothing measurable)" if extra == 0 else
        f"; its intervals missed an sd of {extra:.3f} in the log-ratio there, and are widened by it")
    return (widened(outcome, extra, thresholds, source, allow_mismatch) if extra else outcome), line


def widened(outcome: Outcome, same_run_sd: float, thresholds: rule.Thresholds, source: str,
            allow_mismatch: bool = False) -> Outcome:
    """A one-process gate's Outcome judged again with each interval widened by what the machine's
    one-process A/A runs showed its intervals miss (experiments.calls_noise)."""
    base, cand = (list(outcome.processes[side][0].records or ()) for side in SIDES)
    result = rule.compare(base, cand, thresholds, allow_mismatch=allow_mismatch, same_run_sd=same_run_sd)
    return dataclasses.replace(outcome, result=result, notes=(*outcome.notes, f"intervals widened by sd "
                               f"{same_run_sd:.3f} of the log-ratio, from {source}"))
