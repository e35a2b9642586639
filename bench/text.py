"""Text as the harness shows it to a terminal or a file: inert (no control characters), one line."""


def printable(text: object) -> str:
    """`text` without control characters (terminal escapes, newlines): what a terminal may be shown."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def one_line(e: BaseException) -> str:
    """An exception as a record's error and a command's message show it: its type and first line."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def last_line(text: str | None) -> str:
    """The last non-empty line of `text` (a process's stderr), cut to 300 characters."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
