"""What the command groups share: the parser that prints one-line errors, and the parsing of names,
sizes and size grids."""

import argparse
from collections.abc import Iterable, Sequence
from typing import NoReturn

EXIT_BAD_INPUT = 2


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
