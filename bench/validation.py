"""The figures the docs quote, as data: one results file per experiment under results/validation/
(what it shows, the command that measures it, the machine, the date, the commit, the figures).
`python -m bench.validation run NAME` re-measures an experiment that runs unattended and rewrites
its file; `list` shows them; docs/validation.md is generated from the files (markdown()), so the
page follows a re-measured figure. Code comments name an experiment instead of quoting its figure."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import REPO

FOLDER = REPO / "results" / "validation"
KEYS = ("name", "title", "what", "command", "machine", "date", "commit", "figures", "summary")


class ValidationError(ValueError):
    """An experiment that does not exist or cannot run here; one line."""


def _timed(argv: list[str], cwd: Path = REPO) -> tuple[float, float]:
    """(wall seconds, peak resident MiB of the command's processes) of one command, which must succeed."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise ValidationError(f"{' '.join(argv)}: exit {done.returncode}: {(done.stderr or done.stdout)[-300:]}")
    return wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def _report_fleet() -> dict[str, Any]:
    """A report of a fleet-sized records file (2,000 cases of many machines), three times."""
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "fleet.jsonl"
        subprocess.run(
            [sys.executable, str(REPO / "tests" / "benchmarks" / "fleet.py"), str(records), "--cases", "2000"],
            check=True,
            capture_output=True,
        )
        runs = [
            _timed([sys.executable, "-m", "bench", "report", str(records), "--out", f"{tmp}/report-{i}"])
            for i in range(3)
        ]
    return {"wall_s": _spread([w for w, _ in runs]), "peak_mib": _spread([m for _, m in runs])}


def _make_target(target: str) -> Callable[[], dict[str, Any]]:
    def measure() -> dict[str, Any]:
        return {"wall_s": _spread([_timed(["make", target])[0]])}

    return measure


def _docs_build() -> dict[str, Any]:
    """make docs's strict build into an empty folder (nothing reused from an earlier build), three times."""
    walls = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            sphinx = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", "docs", tmp]
            walls.append(_timed(sphinx)[0])
    return {"wall_s": _spread(walls)}


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    command: str
    measure: Callable[[], dict[str, Any]] | None = None  # None: recorded by hand, `run` says how to redo it
    what: str = ""  # what it measures and why, for a file written the first time (else the file's own)


EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment(
            "report-fleet",
            "A fleet's report: time and memory",
            "python tests/benchmarks/fleet.py fleet.jsonl --cases 2000 && python -m bench report fleet.jsonl "
            "(three times)",
            _report_fleet,
        ),
        Experiment("make-test", "make test's time", "make test", _make_target("test")),
        Experiment(
            "docs-build",
            "The docs site's strict build",
            "make docs, into an empty folder (python -m sphinx -W --keep-going -n -b html docs OUT), three times",
            _docs_build,
            "make test builds the docs site strictly (a broken link, anchor or page fails), from nothing: the "
            "command reference and this page generated on the way (docs/_ext/bench_docs.py).",
        ),
        Experiment(
            "gate-aa",
            "The gate's false positives and detection",
            "python -m bench gate --aa 20; "
            "python -m bench gate --aa 20 --pairing calls; python -m bench gate --rates 12",
        ),
        Experiment(
            "gate-plant",
            "A +10% slowdown of one case, and unchanged code",
            "python -m bench gate --base HEAD --tree CLONE, alternating: twenty against the eager plant, twenty "
            "against an unchanged clone",
        ),
        Experiment(
            "switch-cost",
            "The call after a switch of process",
            "one-process gates with the first call of "
            "each take kept (python -m bench gate --pairing calls --out DIR; then each take's calls)",
        ),
        Experiment(
            "memory-reuse",
            "Reusing freed memory in a worker",
            "NumPy and PyTorch at n=50,000, manual/eager, "
            "alternating, with and without MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2^40",
        ),
        Experiment(
            "blas-spin",
            "OpenBLAS's idle spin before a worker settles",
            "NumPy's manual step at n=5000 and 50,000 with OPENBLAS_THREAD_TIMEOUT unset and 24",
        ),
        Experiment(
            "one-thread",
            "One thread a gate process",
            "A/A process pairs at 1 and 2 threads (python -m bench gate --aa 10 --threads 1; --threads 2)",
        ),
        Experiment(
            "run-to-run",
            "The noise between separate runs",
            "python -m bench scale --replicas 1 three "
            "times; back-to-back default runs (make bench) compared case by case",
        ),
        Experiment(
            "isolation",
            "Frameworks in worker processes of their own",
            "python -m bench run with every framework against each framework alone, alternating",
        ),
        Experiment(
            "history-simulate",
            "The history's change-point detector on simulated series",
            "python -m bench history simulate --series 10 RUN [RUN ...] (the records of repeated runs of unchanged "
            "code: the noise)",
        ),
        Experiment(
            "pin",
            "Binding gate processes to CPUs",
            "six one-thread TensorFlow processes a mode, alternating, bound (--pin auto) and unbound, quiet and "
            "beside a CPU-bound process",
        ),
        Experiment(
            "instructions-spread",
            "Instructions of unchanged code between processes",
            "python results/examples/instructions-spread-cpu/measure.py 10 numpy/manual/eager torch/manual/eager "
            "jax/manual/eager; ... 4 tensorflow/manual/eager tensorflow/tape/eager",
        ),
        Experiment(
            "instructions-plant",
            "A +2% host-side change, by instructions",
            "python -m bench gate --base HEAD --tree CLONE --framework numpy, alternating: ten against a clone "
            "whose NumPy ReLU runs a 2,150-iteration Python loop, ten against an unchanged clone",
        ),
        Experiment(
            "bisect",
            "Bisecting a 30-commit history",
            "python results/examples/bisect-cpu/measure.py --repeats 2 (python -m bench bisect GOOD BAD --repo CLONE "
            "--case 'numpy/manual/eager/*' --json ..., one bisection at a time)",
        ),
        Experiment(
            "history-slow-run",
            "A history with one slow run",
            "12 commits of unchanged TensorFlow steps, "
            "python -m bench run --budget 1 per commit, two CPU hogs during one commit's run; history check",
        ),
    )
}


def path(name: str) -> Path:
    return FOLDER / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """An experiment's results file; ValidationError where it is missing or not one."""
    where = path(name).relative_to(REPO) if path(name).is_relative_to(REPO) else path(name)
    if not path(name).exists():
        raise ValidationError(f"{where} does not exist yet (python -m bench.validation run {name} measures it)")
    try:
        data = json.loads(path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValidationError(f"{where}: unreadable ({type(e).__name__})") from None
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise ValidationError(f"{where}: lacks {', '.join(missing)}")
    return data


def run(name: str) -> Path:
    """Re-measure `name` on this machine and rewrite its results file; its path."""
    from bench import fingerprint, git
    from bench.machine import Machine

    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        raise ValidationError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
    if experiment.measure is None:
        raise ValidationError(f"{name} is recorded by hand; re-measure it with: {experiment.command}")
    old = load(name) if path(name).exists() else {}
    figures = experiment.measure()
    fp = fingerprint.collect()
    machine = Machine.of(fp)
    entry = {
        **old,
        "name": name,
        "title": experiment.title,
        "command": experiment.command,
        "machine": f"{machine.cpu_model}, {fp.get('cpu_count_logical')} logical cores",
        "date": time.strftime("%Y-%m-%d"),
        "commit": (git.head(REPO) or "unknown") + (" with uncommitted changes" if git.dirty(REPO) else ""),
        "figures": figures,
        "summary": _summary(figures),
        "what": old.get("what", experiment.what or experiment.title),
    }
    FOLDER.mkdir(parents=True, exist_ok=True)
    path(name).write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return path(name)


# What a figure's key measures, and its unit, as the page says it.
FIGURES = {"wall_s": ("wall time", "s"), "peak_mib": ("peak memory", "MiB")}


def _summary(figures: dict[str, Any]) -> str:
    """One sentence of an unattended experiment's figures: each one's median and range."""
    parts = []
    for key, value in figures.items():
        if not (isinstance(value, dict) and "median" in value):
            continue
        what, unit = FIGURES.get(key, (key, ""))
        if value["runs"] == 1:
            parts.append(f"{what} {value['median']:.1f} {unit} (one run)")
        else:
            parts.append(
                f"{what} median {value['median']:.1f} {unit} ({value['min']:.1f}-{value['max']:.1f}, "
                f"{value['runs']} runs)"
            )
    return "; ".join(parts)


def markdown() -> str:
    """docs/validation.md: every experiment's results file, newest first within none (the registry's order)."""
    lines = [
        "# Validation",
        "",
        "What the harness was measured to do, experiment by experiment: each figure the docs quote lives "
        "in a results file under `results/validation/` with the command that measures it, the machine, the "
        "date and the commit (this page is generated from those files when the docs build). "
        "`python -m bench.validation run NAME` re-measures an experiment that runs unattended and rewrites "
        "its file; the others say how they were made. Figures from a shared machine move with whatever else "
        "runs there: compare them side by side within one experiment, not across experiments.",
        "",
    ]
    for name in EXPERIMENTS:
        try:
            entry = load(name)
        except ValidationError as e:
            lines += [f"## {EXPERIMENTS[name].title}", "", f"Not measured: {e}.", ""]
            continue
        sha, _, how = entry["commit"].partition(" ")  # "<sha> with uncommitted changes" where it was so
        lines += [
            f"## {entry['title']}",
            "",
            entry["what"],
            "",
            f"**Result.** {entry['summary']}",
            "",
            f"- Command: `{entry['command']}`",
            f"- Machine: {entry['machine']}",
            f"- Date: {entry['date']}",
            f"- Commit: `{sha[:10]}`{' ' + how if how else ''}",
            f"- File: `results/validation/{name}.json`",
            "",
        ]
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    from bench.cli.args import Parser

    p = Parser(prog="python -m bench.validation", description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every experiment and whether its results file is here")
    r = sub.add_parser("run", help="re-measure an experiment on this machine and rewrite its file")
    r.add_argument("name", choices=list(EXPERIMENTS))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "list":
            for name, e in EXPERIMENTS.items():
                state = "measured " + load(name)["date"] if path(name).exists() else "not measured"
                print(f"{name:18s} {state:20s} {'re-measurable' if e.measure else 'by hand'}  {e.title}")
            return 0
        print(run(args.name))
        return 0
    except ValidationError as e:
        print(f"python -m bench.validation: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
