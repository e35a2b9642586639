"""What the command groups share: the parser that prints one-line errors, the parsing of names,
sizes and size grids, whether a size's own arrays fit in memory, and where a verdict's summary and
JSON are written (--summary, --json, $GITHUB_STEP_SUMMARY)."""

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bench import defaults

EXIT_BAD_INPUT = 2
# GitHub Actions names a file here that each step appends Markdown to, shown on the job's page.
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


class UsageError(ValueError):
    """A flag's value makes no sense; str() is one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, not argparse's usage block: the message is what the user needs."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def names(values: Iterable[str] | None) -> tuple[str, ...] | None:
    """`--step a b` and `--step a,b` alike; None when not given."""
    out = tuple(v for value in values or () for v in value.split(",") if v)
    return out or None


def size_text(size: Iterable[int]) -> str:
    return ",".join(map(str, size))


def parse_size(text: str) -> tuple[int, ...]:
    """'N,M,NH' -> (n, m, nh); UsageError naming the problem."""
    parts = text.split(",")
    if len(parts) != 3:
        raise UsageError(f"bad size {text!r}: expected N,M,NH (e.g. 50000,784,50)")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad size {text!r}: N, M and NH must be whole numbers") from None
    if min(size) < 1:
        raise UsageError(f"bad size {text!r}: N, M and NH must be at least 1")
    return size


def check_problem_memory(
    networks: Iterable[tuple[tuple[int, ...], tuple[int, ...] | None]], dtypes: tuple[str, ...]
) -> None:
    """UsageError where a size's own arrays (its data and float64 reference, kernels/cost.py
    problem_bytes) need more than a case may (MEMORY_FRACTION of the free memory): such a run would
    die allocating them. networks: (size, widths) pairs (widths None: the lesson's). Checked
    before any folder is made or framework loaded; nothing where the free memory cannot be told."""
    from bench import fingerprint
    from kernels import cost

    free = fingerprint.memory_bytes()[1]
    if free is None:
        return
    budget = defaults.MEMORY_FRACTION * free
    itemsize = max(8 if dtype == "float64" else 4 if dtype in ("float32", "tf32") else 2 for dtype in dtypes)
    for (n, m, nh), widths in networks:
        need = cost.problem_bytes(n, m, nh, itemsize, widths)
        if need > budget:
            model = f" with widths {','.join(map(str, widths))}" if widths and len(widths) != 3 else ""
            raise UsageError(
                f"size {n},{m},{nh}{model}: its data and float64 reference alone need about {need / 2**30:,.1f} GiB, "
                f"over the budget of {budget / 2**30:,.1f} GiB ({defaults.MEMORY_FRACTION:.0%} of the "
                f"{free / 2**30:,.1f} GiB of memory free now); choose a smaller n"
            )


def parse_grid(items: Iterable[str], base: Sequence[int]) -> tuple[tuple[int, int, int], ...]:
    """['n=1000,5000', 'nh=50,100'] -> every (n, m, nh) of the grid; the axes not given keep `base`'s."""
    axes = {"n": [base[0]], "m": [base[1]], "nh": [base[2]]}
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or axis not in axes:
            raise UsageError(f"bad --sizes item {item!r}: expected n=..., m=... or nh=... (e.g. n=1000,5000)")
        try:
            axes[axis] = [int(v) for v in values.split(",") if v]
        except ValueError:
            raise UsageError(f"bad --sizes item {item!r}: values must be whole numbers") from None
        if not axes[axis] or min(axes[axis]) < 1:
            raise UsageError(f"bad --sizes item {item!r}: values must be at least 1")
    return tuple((n, m, nh) for n in axes["n"] for m in axes["m"] for nh in axes["nh"])


# ---------------------------------------------------------------- summaries and JSON for CI


def output_flags(p: argparse.ArgumentParser) -> None:
    """--summary and --json, for a command that ends in a verdict."""
    p.add_argument(
        "--summary",
        metavar="FILE",
        help=f"write a Markdown summary of the verdict to FILE (where ${STEP_SUMMARY} is set, "
        "the summary is also appended to it, as GitHub Actions expects)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE, for tools that read them")


@dataclass(frozen=True)
class Outputs:
    """Where a command writes its verdict besides standard output: files it replaces (--json,
    --summary) and the CI page's summary file it appends to ($GITHUB_STEP_SUMMARY)."""

    json: Path | None = None
    summary: Path | None = None
    step_summary: Path | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Outputs":
        """The outputs `args` and the environment ask for, each checked before anything runs (a
        gate's minutes are not spent to fail on a typo): UsageError naming a folder, a missing
        folder or a file that cannot be written."""
        outs = cls(
            _writable("--json", getattr(args, "json", None)),
            _writable("--summary", getattr(args, "summary", None)),
            _writable(f"${STEP_SUMMARY}", os.environ.get(STEP_SUMMARY)),
        )
        if outs.json and outs.json == outs.summary:
            raise UsageError(f"--json and --summary both name {outs.json}: give each its own file")
        return outs

    def write(self, command: str, markdown: Callable[[], str], data: Callable[[], dict[str, Any]], code: int) -> int:
        """Write each output, the verdict already printed; the exit status: `code` (the verdict's),
        or EXIT_BAD_INPUT where an output could not be written and the verdict passed. A failure
        is one line on stderr, and the outputs written before it are kept."""
        failed = None
        for flag, path, text, mode in (
            ("--json", self.json, lambda: json.dumps(data(), indent=2, allow_nan=False) + "\n", "w"),
            ("--summary", self.summary, markdown, "w"),
            (f"${STEP_SUMMARY}", self.step_summary, lambda: "\n" + markdown(), "a"),
        ):
            if path is None:
                continue
            body = text()  # made before the file is opened: a file is replaced only by a whole text
            try:
                with open(path, mode, encoding="utf-8") as f:
                    f.write(body)
            except OSError as e:
                failed = failed or f"{flag} {path}: not written: {e.strerror or e}"
        if failed is None:
            return code
        print(f"python -m bench {command}: error: {failed}", file=sys.stderr)
        return code or EXIT_BAD_INPUT


def _writable(flag: str, path: str | None) -> Path | None:
    """`path` as a file this process can write (made or replaced), or UsageError saying why not."""
    if not path:
        return None
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; give a file")
    if not p.parent.is_dir():
        why = "is not a folder" if p.parent.exists() else "does not exist"
        raise UsageError(f"{flag} {path}: {p.parent} {why}")
    if not os.access(p if p.exists() else p.parent, os.W_OK):
        raise UsageError(f"{flag} {path}: not writable")
    return p
