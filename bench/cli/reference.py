"""The command reference as a Markdown page (docs/reference/commands.md, written when the docs
build): each command's --help exactly as the parser prints it, so the page cannot disagree with it."""

import argparse
import os

# The exit-code contract every command keeps (bench/cli/__init__.py main).
EXIT_CODES = (
    (0, "fine"),
    (
        1,
        "what the command exists to find: a case that failed its check (`run`), a regression, a broken or lost "
        "case or a counter change set to fail (`compare`, `gate`), a slowdown (`history check`)",
    ),
    (2, "bad input, one line naming it (an unknown name, a bad size, an unreadable file, an unknown revision)"),
    (3, "an internal error, one line saying where the traceback was written"),
    (130, "stopped by SIGINT (Ctrl-C)"),
    (143, "stopped by SIGTERM"),
    (141, "the reader of its output went away (a pipe into `head` closed)"),
)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{name: parser} of a parser's subcommands, in the order they were added ({} for none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def markdown(width: int = 100) -> str:
    """The page: the exit codes, then every command and subcommand's help, as `--help` prints it
    at `width` columns."""
    from bench.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)  # argparse wraps at the terminal's width: the page's is fixed
    try:
        top = build_parser()
        lines = [
            "# Command reference",
            "",
            "Every command and its flags, as `python -m bench COMMAND --help` prints them (this page is "
            "generated from the parsers when the docs build).",
            "",
            "## Exit codes",
            "",
            "Every command keeps one contract; no traceback reaches the terminal.",
            "",
            "| code | meaning |",
            "| --- | --- |",
            *(f"| {code} | {text} |" for code, text in EXIT_CODES),
            "",
        ]
        for name, parser in subcommands(top).items():
            lines += _command(f"python -m bench {name}", parser, "##")
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(lines) + "\n"


def _command(title: str, parser: argparse.ArgumentParser, level: str) -> list[str]:
    lines = [f"{level} `{title}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in subcommands(parser).items():
        lines += _command(f"{title} {name}", sub, level + "#")
    return lines
