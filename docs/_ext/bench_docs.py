"""Pages written when the docs build, from what they describe: reference/commands.md from the
command line's parsers (bench/cli), validation.md from results/validation/*.json."""

from pathlib import Path

from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent.parent


def _write(path: Path, text: str) -> None:
    """Write only what changed, so Sphinx does not rebuild an unchanged page."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate(app: Sphinx) -> None:
    from bench import validation
    from bench.cli import reference

    _write(DOCS / "reference" / "commands.md", reference.markdown())
    _write(DOCS / "validation.md", validation.markdown())


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
