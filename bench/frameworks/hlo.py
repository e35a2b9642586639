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


_SHAPE = re.compile(r"^\s*([a-z]\w*)\[([\d,]*)\]")  # "f32[5000,784]{1,0} ..." -> "5000,784"
_LHS = re.compile(r"\bdot\(\s*(?:([a-z]\w*\[[\d,]*\])(?:\{[^}]*\})?\s+)?%?([\w.\-]+)")  # its shape, or its name
_PARAMETER = re.compile(r"([\w.\-]+):\s*([a-z]\w*\[[\d,]*\])")  # a computation's "p0: f32[5000,784]"


def _dims(text: str) -> list[int] | None:
    m = _SHAPE.match(text)
    return [int(d) for d in m.group(2).split(",") if d] if m else None


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def dot_flops(text: str) -> int:
    """FLOPs of every dot instruction of the module, in every computation (a fused one's too): 2 x
    the output's elements x the lhs's contracting size. The matrix products a compiled step
    executes, after the compiler removed what it could (elementwise work is not counted). A
    computation called more than once (a loop body) would count once: the steps here have none."""
    total = 0
    shapes: dict[str, list[int]] = {}
    for line in text.splitlines():
        m = _INSTRUCTION.match(line)
        if not m:
            if line.rstrip().endswith("{"):  # a computation's header: its names are its own
                shapes = {name: _dims(shape) or [] for name, shape in _PARAMETER.findall(line)}
            continue
        name, rest = m.groups()
        out = _dims(rest)
        if out is not None:
            shapes[name] = out
        if out is None or _opcode(rest) != "dot":
            continue
        operand = _LHS.search(rest)
        lhs = (_dims(operand.group(1)) if operand.group(1) else shapes.get(operand.group(2))) if operand else None
        contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
        if lhs and contracting:
            total += 2 * _product(out) * _product(lhs[int(d)] for d in contracting.group(1).split(",") if d)
    return total
