"""The instructions of an XLA module as its text shows them (HloModule.to_string, JAX's
Compiled.as_text, TensorFlow's experimental_get_compiler_ir): what a compiled step executes."""

from __future__ import annotations

import re
from collections import Counter

# `  ROOT %name.3 = f32[50]{0} opcode(...)` or without the %: the name, then its shape, then the opcode
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")


def _opcode(rest: str) -> str | None:
    """The opcode after an instruction's shape (a tuple shape holds spaces and brackets)."""
    depth, i = 0, 0
    while i < len(rest):
        c = rest[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == " " and depth == 0:
            break
        i += 1
    m = re.match(r"\s*([a-z][\w\-]*)\(", rest[i:])
    return m.group(1) if m else None


def entry_ops(text: str) -> dict[str, int]:
    """{opcode: count} of the instructions of the module's ENTRY computation (parameters left
    out: they are its inputs), each fusion named with its kind ("fusion:kLoop")."""
    counts: Counter[str] = Counter()
    inside = False
    for line in text.splitlines():
        if line.startswith("ENTRY"):
            inside = True
            continue
        if inside and line.startswith("}"):
            break
        m = _INSTRUCTION.match(line) if inside else None
        op = _opcode(m.group(2)) if m else None
        if op is None or op == "parameter":
            continue
        if op == "fusion":
            kind = re.search(r"kind=(k\w+)", line)
            op = f"fusion:{kind.group(1)}" if kind else op
        counts[op] += 1
    return dict(sorted(counts.items()))


def fusions(ops: dict[str, int]) -> int:
    return sum(n for op, n in ops.items() if op.startswith("fusion"))
