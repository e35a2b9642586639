"""Gate processes: what each measures (RunSpec), running one tree's own harness in a process of its
own (run_harness), and rounds of such processes in rotating order (interleave)."""

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import defaults, frameworks, records
from bench.text import last_line


@dataclass(frozen=True)
class RunSpec:
    """What every process measures, as `python -m bench run` flags (besides --out). The base
    revision's CLI runs them too, so only long-standing flags are used, and --budget only where
    both harnesses accept it (--quick otherwise). backends None: every backend."""

    sizes: tuple = (defaults.GATE_SIZE,)  # (n, m, nh) each
    steps: tuple = defaults.GATE_STEPS
    backends: tuple | None = defaults.GATE_BACKENDS
    device: str = "all"
    frameworks: tuple = (defaults.GATE_FRAMEWORK,)
    budget_s: float = defaults.GATE_BUDGET_S
    threads: int = defaults.GATE_THREADS  # CPU threads a process; 0: the frameworks' own default
    pin: tuple = ()  # the CPUs every process's framework workers are bound to (run --pin)

    def variables(self) -> dict[str, str]:
        """Environment variables every process runs with (both sides alike; records keep them)."""
        return frameworks.thread_env(self.threads, self.frameworks) if self.threads else {}

    def args(self, budget: bool = True, report: bool = True, pin: bool = True) -> list[str]:
        """budget: both harnesses take --budget (else --quick); report: False adds --no-report
        (a gate reads records only: a report is two seconds of plots a process); pin: both take
        --pin (else neither side is bound: the two sides alike)."""
        timing = ["--budget", f"{self.budget_s:g}"] if budget else ["--quick"]
        bound = ["--pin", ",".join(map(str, self.pin))] if pin and self.pin else []
        return [
            "run",
            *timing,
            *([] if report else ["--no-report"]),
            *bound,
            "--framework",
            *self.frameworks,
            "--size",
            *(",".join(map(str, s)) for s in self.sizes),
            "--step",
            *self.steps,
            *(["--backend", *self.backends] if self.backends else []),
            "--device",
            self.device,
        ]

    def describe(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}" if self.threads else "default threads"
        return (
            f"{','.join(self.frameworks)} steps {','.join(self.steps)} x backends "
            f"{','.join(self.backends) if self.backends else 'all'} at "
            f"{' and '.join(','.join(map(str, s)) for s in self.sizes)} on {self.device}, {self.budget_s:g} s a case, "
            f"{threads}" + (f", bound to CPU {','.join(map(str, self.pin))}" if self.pin else "")
        )


@dataclass(frozen=True)
class Process:
    """One `python -m bench run` in one tree: its exit code, its records (None when it wrote none)
    and the last line of its stderr."""

    tree: str
    rc: int
    records: tuple | None
    wall_s: float
    last_line: str = ""


# launch(tree, out, args, extra_env[, python=]): run_harness, or a stand-in for it in tests
Launch = Callable[..., Process]


def _child_env(tree, extra=None):
    """This environment (plus `extra`) with `tree`'s packages first on the path, so its own bench
    and kernels load."""
    path = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return dict(os.environ, **(extra or {}), PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path)


@functools.lru_cache(maxsize=32)
def _run_help(tree: str) -> str:
    """`tree`'s `python -m bench run --help` ("" when it fails): one process a tree."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "run", "--help"],
            cwd=tree,
            env=_child_env(tree),
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def accepts(tree: Path | str, flag: str) -> bool:
    """Whether `tree`'s `python -m bench run` has `flag` (read from its --help)."""
    return flag in _run_help(str(tree))


def run_harness(
    tree: Path | str,
    out: Path | str,
    args: Sequence[str],
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = defaults.GATE_PROCESS_TIMEOUT_S,
    python: str | None = None,
) -> Process:
    """Run `tree`'s own harness with this interpreter, or `python` (an environment built from the
    tree's own requirements: bench/venvs.py): `python -m bench <args> --out <out>`, with `extra_env`
    set; a Process."""
    tree, out = Path(tree), Path(out)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [python or sys.executable, "-m", "bench", *args, "--out", str(out)],
            cwd=tree,
            env=_child_env(tree, extra_env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        rc, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        rc, stderr = 124, f"timed out after {timeout_s} s"
    wall_s = time.perf_counter() - t0
    try:
        recs = tuple(records.read(out))
    except records.RecordsError:
        recs = None
    return Process(str(tree), rc, recs, wall_s, last_line(stderr))


def run_args(spec: RunSpec, trees: Iterable[Path | str], probe: Callable[[str, str], bool] = accepts) -> list[str]:
    """The run arguments for processes in every one of `trees`: the flags every tree's harness takes."""
    names = list(dict.fromkeys(map(str, trees)))
    return spec.args(
        budget=all(probe(tree, "--budget") for tree in names),
        report=not all(probe(tree, "--no-report") for tree in names),
        pin=all(probe(tree, "--pin") for tree in names),
    )


def order(names: Iterable[str], i: int) -> list[str]:
    """The order of round i: names rotated by i (A B, B A, A B ... for two). A fixed order would
    turn any effect of going first or second (caches warmed by the previous process, a slow start)
    into a bias of one side; rotating cancels it over the rounds."""
    names = list(names)
    k = i % len(names)
    return names[k:] + names[:k]


def interleave(
    trees: Mapping[str, Path | str],
    rounds: int,
    args: Sequence[str],
    workdir: Path | str,
    launch: Launch = run_harness,
    progress: Callable[[str], None] | None = None,
    extra_env: Mapping[str, str] | None = None,
    pythons: Mapping[str, str] | None = None,
) -> dict[str, list[Process]]:
    """{name: [Process of round 0, 1, ...]}: each round runs every tree once, in order(names, i),
    each in its own process (`launch(tree, out, args, extra_env)`, and python=pythons[name] where
    given) writing to workdir/<name>-<round>."""
    progress = progress or stderr_line
    out: dict[str, list[Process]] = {name: [] for name in trees}
    for i in range(rounds):
        for name in order(trees, i):
            p = launch(
                trees[name],
                Path(workdir) / f"{name}-{i}",
                args,
                extra_env,
                **({"python": pythons[name]} if pythons else {}),
            )
            out[name].append(p)
            status = "ok" if p.rc in (0, 1) and p.records else f"exit {p.rc}: {p.last_line}"
            progress(f"[round {i + 1}/{rounds}] {name}: {status} ({p.wall_s:.1f} s)")
    return out


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
