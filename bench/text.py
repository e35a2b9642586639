"""Text as the harness shows it to a terminal or a file: inert (no control characters), one line;
and inert in Markdown, for the summaries CI pages render."""

# What could start Markdown or HTML markup inside a line (emphasis, code, links, tags, entities,
# table cells, headings): each is escaped, so a case label or a note from a records file is shown
# as the text it is. CommonMark lets any ASCII punctuation be escaped with a backslash.
MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~&#!")


def printable(text: object) -> str:
    """`text` without control characters (terminal escapes, newlines): what a terminal may be shown."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def markdown(text: object) -> str:
    """`text` as one line of Markdown that renders as exactly that text (printable, markup escaped)."""
    return "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in printable(text))


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: tuple[int, ...] = ()) -> list[str]:
    """A Markdown (GitHub) table of `header` and `rows`, each cell escaped; columns in `right` aligned
    right (numbers), the others left."""
    cells = lambda row: "| " + " | ".join(markdown(v) for v in row) + " |"
    rule = "| " + " | ".join("---:" if i in right else ":---" for i in range(len(header))) + " |"
    return [cells(header), rule, *(cells(row) for row in rows)]


def one_line(e: BaseException) -> str:
    """An exception as a record's error and a command's message show it: its type and first line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def last_line(text: str | None) -> str:
    """The last non-empty line of `text` (a process's stderr), cut to 300 characters."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
