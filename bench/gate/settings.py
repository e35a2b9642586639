"""The gate's settings as a pyproject.toml holds them ([tool.backprop-bench.gate]): the default
threshold, per-case thresholds and counter policies. The comparison they set is bench/compare.py."""

from pathlib import Path
from typing import Any

import tomllib

from bench import defaults
from bench.compare import COUNTER_POLICIES, COUNTER_POLICY, CompareError, Thresholds, parse_threshold

CONFIG_TABLE = ("tool", "backprop-bench", "gate")


def load_thresholds(path: Path | str, default: str | float | None = None, explicit: bool = False) -> Thresholds:
    """Thresholds from `path` (a pyproject.toml), table [tool.backprop-bench.gate]:

        threshold = "10%"                    # the default
        counters = "more-work"               # a counter change: "report" it; fail when it adds work
                                             # and the times do not clear it ("more-work"); or "fail"
        [tool.backprop-bench.gate.thresholds]
        "tensorflow/*/eager/*" = "15%"      # per-case overrides, first match wins
        instructions = "1%"                  # the threshold where both sides counted instructions
        instructions-cases = ["numpy/*/eager/cpu"]   # what a one-process gate counts ([]: nothing)
        [tool.backprop-bench.gate.counters-by-case]
        "*/*/xla/*" = "fail"                 # per-case counter policies, first match wins

    A missing file or table gives the defaults, unless `explicit` (the user named the file: it
    must exist and be one). `default` (e.g. from --threshold) replaces the file's default; the
    overrides still apply. CompareError, naming the flag or the file, for anything unusable."""
    if default is not None:
        try:
            parse_threshold(default)
        except CompareError as e:
            raise CompareError(f"--threshold: {e}") from None
    path = Path(path)
    if explicit and not path.is_file():
        raise CompareError(
            f"--config {path}: {'is a folder' if path.is_dir() else 'no such file'}, expected a pyproject.toml"
        )
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError) as e:
        raise CompareError(f"{path}: cannot read ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return thresholds_from(text, str(path), default)


def thresholds_from(text: str | None, name: str, default: str | float | None = None) -> Thresholds:
    """Thresholds from the text of a pyproject.toml called `name` in messages (None: there is no
    file, so the defaults), as load_thresholds reads them from a file."""
    table = {}
    where = f"{name} [{'.'.join(CONFIG_TABLE)}]"
    if text is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise CompareError(
                f"{name}: cannot read ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
            ) from None
        for depth, key in enumerate(CONFIG_TABLE):
            data = data.get(key, {})
            if not isinstance(data, dict):
                raise CompareError(
                    f"{name}: [{'.'.join(CONFIG_TABLE[: depth + 1])}] must be a table, got {type(data).__name__}"
                )
        table = data
        known = {"threshold", "thresholds", "counters", "counters-by-case", "instructions", "instructions-cases"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise CompareError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        fraction = parse_threshold(default if default is not None else table.get("threshold", Thresholds().default))
        overrides = table.get("thresholds", {})
        if not isinstance(overrides, dict):
            raise CompareError('thresholds must be a table of pattern = "N%"')
        pairs = tuple((str(pattern), parse_threshold(value)) for pattern, value in overrides.items())
        policy = _counter_policy(table.get("counters", COUNTER_POLICY), "counters")
        by_case = table.get("counters-by-case", {})
        if not isinstance(by_case, dict):
            raise CompareError(
                "counters-by-case must be a table of pattern = " + " or ".join(f'"{p}"' for p in COUNTER_POLICIES)
            )
        policies = tuple((str(pattern), _counter_policy(value, pattern)) for pattern, value in by_case.items())
        instructions = parse_threshold(table.get("instructions", defaults.INSTRUCTIONS_THRESHOLD))
        cases = table.get("instructions-cases", list(defaults.GATE_INSTRUCTIONS))
        if not (isinstance(cases, list) and all(isinstance(c, str) and c for c in cases)):
            raise CompareError('instructions-cases must be a list of case patterns such as "numpy/*/eager/cpu"')
    except CompareError as e:
        raise CompareError(f"{where}: {e}") from None
    return Thresholds(fraction, pairs, policy, policies, instructions, case_patterns(cases))


def case_patterns(patterns: "list[str] | tuple[str, ...]") -> tuple[str, ...]:
    """Case patterns as fnmatch reads them, framework/step/backend/device: one of three parts is on
    the CPU (as explain reads a case), so "numpy/*/eager" names the case it looks like it names."""
    return tuple(p if p.count("/") >= 3 else f"{p}/cpu" for p in patterns)


def _counter_policy(value: Any, name: str) -> str:
    if value not in COUNTER_POLICIES:
        raise CompareError(f"{name}: {value!r} is not one of {', '.join(COUNTER_POLICIES)}")
    return value
