"""The gate in process pairs: each side's own harness (the base revision's, in a temporary git
worktree, and the working tree's) run alternately in processes of its own (A B B A ...) and
compared pair by pair. Where the two sides' requirements resolve to different packages (a pull
request that bumps a framework), each side runs in an environment built from its own
(bench/venvs.py)."""

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.compare import PROCESSES, How, compare
from bench.gate.errors import GateError, NothingToCompare
from bench.gate.outcome import Outcome
from bench.gate.processes import Launch, Process, RunSpec, accepts, interleave, run_args, run_harness, stderr_line

# The files a side's environment is built from, the first a tree has (a lock before the project's ranges).
REQUIREMENT_FILES = ("pylock.toml", "pyproject.toml")


@dataclass(frozen=True)
class Sides:
    """The two trees of a process-pairs gate and what is known of them: how each is named in what
    it prints, the base's commit, and whether the change touches the requirements."""

    base: Path
    candidate: Path
    base_name: str = "base"
    sha: str | None = None
    requirements_changed: bool = False

    def trees(self) -> dict[str, Path]:
        return {"base": self.base, "candidate": self.candidate}


def _check_processes(processes: dict[str, list[Process]]) -> None:
    """GateError when the candidate could not run at all; NothingToCompare when the base's harness
    rejects the gate's options (an older CLI) or never produced records."""
    cand = processes["candidate"]
    if not any(p.records for p in cand):
        raise GateError(f"the candidate's harness wrote no records (exit {cand[0].rc}: {cand[0].last_line})")
    base = processes["base"]
    if not any(p.records for p in base):
        raise NothingToCompare(f"the base's harness produced no records (exit {base[0].rc}: {base[0].last_line})")


def outcome(processes: dict[str, list[Process]], how: How, wall_s: float = 0.0, notes: Iterable[str] = ()) -> Outcome:
    """Interleaved processes compared pair by pair (round i of the base with round i of the candidate)."""
    _check_processes(processes)
    result = compare(
        [p.records for p in processes["base"]],
        [p.records for p in processes["candidate"]],
        replace(how, pairing=PROCESSES),
    )
    return Outcome(result, processes, wall_s, tuple(notes))


def run(
    sides: Sides,
    spec: RunSpec,
    pairs: int,
    how: How,
    workdir: Path | str,
    launch: Launch = run_harness,
    probe: Callable[[Path | str, str], bool] = accepts,
    progress: Callable[[str], None] = stderr_line,
) -> Outcome:
    """`pairs` process pairs of the two sides, compared as `how` says."""
    t0 = time.perf_counter()
    notes = [f"base is {sides.base_name}"]
    pythons = None
    if sides.requirements_changed:
        spec, pythons, said = dependency_envs(
            sides.trees(), spec, progress, {"base": sides.base_name, "candidate": "the working tree"}
        )
        notes += said
        how = replace(how, allow_mismatch=how.allow_mismatch or pythons is not None)  # the versions differ on purpose
    progress(f"gate: {sides.base_name} against the working tree {sides.candidate}: {pairs} pairs, {spec.describe()}")
    processes = interleave(
        sides.trees(),
        pairs,
        run_args(spec, sides.trees().values(), probe),
        workdir,
        launch,
        progress,
        spec.variables(),
        pythons,
    )
    notes += _commits_reported(processes["base"], sides.sha)
    return outcome(processes, how, time.perf_counter() - t0, notes)


def _commits_reported(base: list[Process], sha: str | None) -> list[str]:
    """A warning where a base process says it ran another commit than the base's."""
    for p in base:
        commits = {c for r in p.records or () if isinstance(c := (r.fingerprint or {}).get("git_commit"), str)}
        if sha and commits and commits != {sha}:
            return [f"warning: a base process reported commit {sorted(commits)[0][:10]}, not {sha[:10]}"]
    return []


def dependency_envs(
    trees: dict[str, Path], spec: RunSpec, progress: Callable[[str], None], names: dict[str, str] | None = None
) -> tuple[RunSpec, dict[str, str] | None, list[str]]:
    """(spec, {side: python}, notes) for a change that touches a requirements file (names: each
    side's revision, as the environments are shown): each side's
    requirements (its REQUIREMENT_FILES) resolved; where they resolve alike, both sides share this
    environment (pythons None), else each gets an environment built from its own, and the spec keeps
    the frameworks both pin. GateError in one line where a side's requirements cannot be resolved
    or built, or no framework of the spec is in both."""
    from bench import frameworks, venvs

    files = {
        side: next((root / f for f in REQUIREMENT_FILES if (root / f).is_file()), None) for side, root in trees.items()
    }
    paths = {side: path for side, path in files.items() if path is not None}
    if len(paths) < len(files):
        return spec, None, ["a side has no requirements file: both ran in this environment"]
    try:
        resolved = {side: venvs.resolve(str(path)) for side, path in paths.items()}
        if resolved["base"][2] == resolved["candidate"][2]:
            progress("gate: the requirements changed but resolve to the same packages: both sides in this environment")
            return spec, None, ["the requirements changed, to the same packages: both sides ran in this environment"]
        built = {}
        for side, path in paths.items():
            built[side], seconds = venvs.build(str(path), progress, f"{path.name} of {(names or {}).get(side, side)}")
            progress(f"gate: the {side}'s environment {built[side].key} ready in {seconds:.1f} s")
    except venvs.VenvError as e:
        raise GateError(f"the sides' requirements: {e}") from None
    keep = tuple(
        f
        for f in spec.frameworks
        if all(e.versions([frameworks.spec(f).package])[frameworks.spec(f).package] for e in built.values())
    )
    if not keep:
        raise GateError(f"none of {', '.join(spec.frameworks)} is a requirement of both sides")
    timed = {venvs.normalise(frameworks.spec(f).package) for f in frameworks.FRAMEWORKS}
    differ = sorted(
        (
            d
            for d in set(built["base"].versions()) | set(built["candidate"].versions())
            if built["base"].versions().get(d) != built["candidate"].versions().get(d)
        ),
        key=lambda d: (d not in timed, d),
    )  # the frameworks' own versions first
    line = "; ".join(
        f"{d} {built['base'].versions().get(d) or '-'} -> {built['candidate'].versions().get(d) or '-'}"
        for d in differ[:6]
    ) + (f"; and {len(differ) - 6} more" if len(differ) > 6 else "")
    progress(f"gate: the sides' requirements resolve differently ({line}): each side in an environment of its own")
    left = [f for f in spec.frameworks if f not in keep]
    notes = [
        f"dependencies changed ({line}): each side ran in an environment built from its own "
        f"{', '.join(sorted({p.name for p in paths.values()}))}"
    ]
    if left:
        notes.append(f"left out: {', '.join(left)} (not a requirement of both sides)")
    return dataclasses.replace(spec, frameworks=keep), {s: e.python for s, e in built.items()}, notes
