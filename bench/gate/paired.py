"""The paired gate: a base revision's harness (a temporary git worktree) and the working tree's, run
alternately in separate processes (A B B A ...) and compared pair by pair. Where the two sides'
requirements resolve to different packages (a pull request that bumps a framework), each side runs
in an environment built from its own (bench/envs.py)."""
import dataclasses
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
# The files a side's environment is built from, the first a tree has (a lock before the project's ranges).
REQUIREMENT_FILES = ("pylock.toml", "pyproject.toml")


@dataclass(frozen=True)
class Outcome:
    result: rule.Result
    processes: dict = field(default_factory=dict)   # {side: [Process]}
    wall_s: float = 0.0
    notes: tuple = ()
    pairing: str = "processes"   # or "calls": both sides' steps in one process (bench/gate/calls.py)

    @property
    def flagged(self) -> bool:
        """Whether this gate run failed (exit 1): a regression, or a counter change set to fail."""
        return self.result.failed

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
    pairing "calls" (and "auto" when the change is to the steps' code, kernels/, with at most tests
    and text besides): both sides' steps in one process, interleaved take by take
    (bench/gate/calls.py); with "processes" (and "auto" when anything else changed): each side's
    own harness in its own processes, alternately. "auto" with tests and text alone changed has no
    timed code to compare: NothingToCompare. calls_spec: what the one process times (default: `spec`)."""
    from bench.gate import calls
    progress = progress or stderr_line
    sha = resolve(tree, rev)
    if git(tree, "cat-file", "-e", f"{sha}:{HARNESS}").returncode != 0:
        raise NothingToCompare(f"{rev} ({sha[:10]}) has no harness ({HARNESS})")
    t0 = time.perf_counter()
    changed = calls.changed_files(tree, sha)
    outside = calls.outside_kernels(changed)
    only_steps = bool(changed) and not outside   # the steps (with tests, text, stored results at most): one harness times both
    if pairing == "auto" and only_steps and not any(f.startswith("kernels/") for f in changed):
        raise NothingToCompare(f"only tests, text and stored results changed against {rev} ({', '.join(changed[:3])}"
                               f"{', ...' if len(changed) > 3 else ''}): no timed code to compare "
                               "(--pairing calls times both sides anyway)")
    with worktree(tree, sha) as base_tree:
        if pairing == "calls" or (pairing == "auto" and only_steps):
            why = "asked for" if pairing == "calls" else "only the steps' code (kernels/) changed"
            if any(Path(f).name in REQUIREMENT_FILES for f in changed):
                why += "; the requirements changed too, and both sides ran in this environment"
            calls_spec = calls_spec or spec
            progress(f"gate: {rev} ({sha[:10]}) against the working tree {tree}: {why}, so both sides' steps run in "
                     f"one process, interleaved take by take; {calls_spec.describe()}")
            return calls.one_process(base_tree, tree, calls_spec, pairs, thresholds, workdir, allow_mismatch, progress,
                                     notes=(f"base is {rev} = {sha[:10]}; paired in one process ({why})",))
        pythons, notes = None, [f"base is {rev} = {sha[:10]}"]
        if any(Path(f).name in REQUIREMENT_FILES for f in changed):
            spec, pythons, said = dependency_envs({"base": Path(base_tree), "candidate": Path(tree)}, spec, progress,
                                                  {"base": f"{rev} = {sha[:10]}", "candidate": "the working tree"})
            notes += said
            allow_mismatch = allow_mismatch or pythons is not None   # the frameworks' versions differ on purpose
        if pairing == "auto" and outside:
            progress(f"gate: {len(outside)} file(s) outside kernels/ changed ({', '.join(outside[:3])}"
                     f"{', ...' if len(outside) > 3 else ''}): each side in its own processes")
        progress(f"gate: {rev} ({sha[:10]}) against the working tree {tree}: {pairs} pairs, {spec.describe()}")
        trees = {"base": base_tree, "candidate": Path(tree)}
        processes = interleave(trees, pairs, run_args(spec, trees.values(), probe), workdir, runner, progress,
                               spec.env(), pythons)
    for p in processes["base"]:
        commits = cast("set[str]", {(r.env or {}).get("git_commit") for r in p.records or ()} - {None})
        if commits and commits != {sha}:
            notes.append(f"warning: a base process reported commit {sorted(commits)[0][:10]}, not {sha[:10]}")
            break
    return paired_outcome(processes, thresholds, allow_mismatch, time.perf_counter() - t0, notes)


def dependency_envs(trees: dict[str, Path], spec: RunSpec, progress: Callable[[str], None],
                    names: dict[str, str] | None = None) -> tuple[RunSpec, dict[str, str] | None, list[str]]:
    """(spec, {side: python}, notes) for a change that touches a requirements file (names: each
    side's revision, as the environments are shown): each side's
    requirements (its REQUIREMENT_FILES) resolved; where they resolve alike, both sides share this
    environment (pythons None), else each gets an environment built from its own, and the spec keeps
    the frameworks both pin. GateError in one line where a side's requirements cannot be resolved
    or built, or no framework of the spec is in both."""
    from bench import envs, frameworks
    files = {side: next((root / f for f in REQUIREMENT_FILES if (root / f).is_file()), None)
             for side, root in trees.items()}
    paths = {side: path for side, path in files.items() if path is not None}
    if len(paths) < len(files):
        return spec, None, ["a side has no requirements file: both ran in this environment"]
    try:
        resolved = {side: envs.resolve(str(path)) for side, path in paths.items()}
        if resolved["base"][2] == resolved["candidate"][2]:
            progress("gate: the requirements changed but resolve to the same packages: both sides in this environment")
            return spec, None, ["the requirements changed, to the same packages: both sides ran in this environment"]
        built = {}
        for side, path in paths.items():
            built[side], seconds = envs.build(str(path), progress, f"{path.name} of {(names or {}).get(side, side)}")
            progress(f"gate: the {side}'s environment {built[side].key} ready in {seconds:.1f} s")
    except envs.EnvError as e:
        raise GateError(f"the sides' requirements: {e}") from None
    keep = tuple(f for f in spec.frameworks
                 if all(e.versions([frameworks.spec(f).package])[frameworks.spec(f).package] for e in built.values()))
    if not keep:
        raise GateError(f"none of {', '.join(spec.frameworks)} is a requirement of both sides")
    timed = {envs.normalise(frameworks.spec(f).package) for f in frameworks.FRAMEWORKS}
    differ = sorted((d for d in set(built["base"].versions()) | set(built["candidate"].versions())
                     if built["base"].versions().get(d) != built["candidate"].versions().get(d)),
                    key=lambda d: (d not in timed, d))   # the frameworks' own versions first
    line = "; ".join(f"{d} {built['base'].versions().get(d) or '-'} -> {built['candidate'].versions().get(d) or '-'}"
                     for d in differ[:6]) + (f"; and {len(differ) - 6} more" if len(differ) > 6 else "")
    progress(f"gate: the sides' requirements resolve differently ({line}): each side in an environment of its own")
    left = [f for f in spec.frameworks if f not in keep]
    notes = [f"dependencies changed ({line}): each side ran in an environment built from its own "
             f"{', '.join(sorted({p.name for p in paths.values()}))}"]
    if left:
        notes.append(f"left out: {', '.join(left)} (not a requirement of both sides)")
    return dataclasses.replace(spec, frameworks=keep), {s: e.python for s, e in built.items()}, notes
