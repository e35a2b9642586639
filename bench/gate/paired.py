"""The paired gate: a base revision's harness (a temporary git worktree) and the working tree's, run
alternately in separate processes (A B B A ...) and compared pair by pair."""
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bench.gate import rule
from bench.gate.errors import GateError, NothingToCompare
from bench.gate.processes import Process, Runner, RunSpec, accepts, interleave, run_args, run_harness, stderr_line
from bench.gate.worktree import git, resolve, worktree

HARNESS = "bench/__main__.py"            # a revision without it has nothing to compare


@dataclass(frozen=True)
class Outcome:
    result: rule.Result
    processes: dict = field(default_factory=dict)   # {side: [Process]}
    wall_s: float = 0.0
    notes: tuple = ()
    pairing: str = "processes"   # or "calls": both sides' steps in one process (bench/gate/calls.py)

    @property
    def flagged(self) -> bool:
        return bool(self.result.regressed)

    @property
    def env(self) -> dict[str, Any]:
        """The fingerprint of the first record any process wrote ({} if none)."""
        for procs in self.processes.values():
            for p in procs:
                for r in p.records or ():
                    return r.env
        return {}


def _check_processes(processes):
    """GateError when the candidate could not run at all; NothingToCompare when the base's harness
    rejects the gate's options (an older CLI) or never produced records."""
    cand = processes["candidate"]
    if not any(p.records for p in cand):
        raise GateError(f"the candidate's harness wrote no records (exit {cand[0].rc}: {cand[0].last_line})")
    base = processes["base"]
    if not any(p.records for p in base):
        raise NothingToCompare(f"the base's harness produced no records (exit {base[0].rc}: {base[0].last_line})")


def paired_outcome(processes: dict[str, list[Process]], thresholds: rule.Thresholds, allow_mismatch: bool = False,
                   wall_s: float = 0.0, notes: Iterable[str] = ()) -> Outcome:
    """Compare interleaved processes pair by pair (round i of base with round i of candidate)."""
    _check_processes(processes)
    result = rule.compare([p.records for p in processes["base"]], [p.records for p in processes["candidate"]],
                          thresholds, allow_mismatch=allow_mismatch, paired=True)
    return Outcome(result, processes, wall_s, tuple(notes))


PAIRINGS = ("auto", "calls", "processes")


def paired(tree: Path | str, rev: str, spec: RunSpec, pairs: int, thresholds: rule.Thresholds, workdir: Path | str,
           allow_mismatch: bool = False, runner: Runner = run_harness, probe: Callable[[str, str], bool] = accepts,
           progress: Callable[[str], None] | None = None, pairing: str = "auto",
           calls_spec: RunSpec | None = None) -> Outcome:
    """The paired gate: `rev`'s code (in a temporary worktree) against `tree`'s working tree. With
    pairing "calls" (and "auto" when the change is to the steps' code, kernels/, alone): both sides' steps in
    one process, interleaved take by take (bench/gate/calls.py); with "processes" (and "auto"
    otherwise): each side's own harness in its own processes, alternately. calls_spec: what the
    one process times (default: `spec`)."""
    from bench.gate import calls
    progress = progress or stderr_line
    sha = resolve(tree, rev)
    if git(tree, "cat-file", "-e", f"{sha}:{HARNESS}").returncode != 0:
        raise NothingToCompare(f"{rev} ({sha[:10]}) has no harness ({HARNESS})")
    t0 = time.perf_counter()
    changed = calls.changed_files(tree, sha)
    outside = calls.outside_kernels(changed)
    only_steps = bool(changed) and not outside and any(f.startswith("kernels/") for f in changed)
    with worktree(tree, sha) as base_tree:
        if pairing == "calls" or (pairing == "auto" and only_steps):
            why = "asked for" if pairing == "calls" else "only the steps' code (kernels/) changed"
            calls_spec = calls_spec or spec
            progress(f"gate: {rev} ({sha[:10]}) against the working tree {tree}: {why}, so both sides' steps run in "
                     f"one process, interleaved take by take; {calls_spec.describe()}")
            return calls.one_process(base_tree, tree, calls_spec, pairs, thresholds, workdir, allow_mismatch, progress,
                                     notes=(f"base is {rev} = {sha[:10]}; paired in one process ({why})",))
        if pairing == "auto" and outside:
            progress(f"gate: {len(outside)} file(s) outside kernels/ changed ({', '.join(outside[:3])}"
                     f"{', ...' if len(outside) > 3 else ''}): each side in its own processes")
        progress(f"gate: {rev} ({sha[:10]}) against the working tree {tree}: {pairs} pairs, {spec.describe()}")
        trees = {"base": base_tree, "candidate": Path(tree)}
        processes = interleave(trees, pairs, run_args(spec, trees.values(), probe), workdir, runner, progress,
                               spec.env())
    notes = [f"base is {rev} = {sha[:10]}"]
    for p in processes["base"]:
        commits = cast("set[str]", {(r.env or {}).get("git_commit") for r in p.records or ()} - {None})
        if commits and commits != {sha}:
            notes.append(f"warning: a base process reported commit {sorted(commits)[0][:10]}, not {sha[:10]}")
            break
    return paired_outcome(processes, thresholds, allow_mismatch, time.perf_counter() - t0, notes)
