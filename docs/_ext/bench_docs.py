"""Pages written when the docs build, from what they describe: reference/commands.md from the
command line's parsers (bench/cli), validation.md from results/validation/*.json. Run as a script
(`make readme`), it rewrites the README's sample table from the committed example run."""

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
EXAMPLE = "results/examples/cpu"
SAMPLE = re.compile(r"(<!-- sample-table[^\n]*-->\n```text\n)(.*?)(```\n<!-- /sample-table -->)", re.S)


def _write(path: Path, text: str) -> None:
    """Write only what changed, so Sphinx does not rebuild an unchanged page."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate(app: "Sphinx") -> None:
    from bench import validation
    from bench.cli import reference

    _write(DOCS / "reference" / "commands.md", reference.markdown())
    _write(DOCS / "validation.md", validation.markdown())


def sample_table(run: str = EXAMPLE) -> str:
    """The tables `python -m bench report RUN --table` prints: what a run printed at its end."""
    from bench import noise, records, report

    loaded = records.read_usable([str(REPO / run)], lambda line: None)
    return "\n".join(report.text_tables(report.frame(loaded, noise.repository()))) + "\n"


def with_sample(readme: str, table: str) -> str:
    """`readme` with the text between its sample-table markers replaced by `table`."""
    if not SAMPLE.search(readme):
        raise ValueError("README.md has no <!-- sample-table --> block")
    return SAMPLE.sub(lambda m: m.group(1) + table + m.group(3), readme, count=1)


def setup(app: "Sphinx") -> dict:
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    path = REPO / "README.md"
    _write(path, with_sample(path.read_text(encoding="utf-8"), sample_table()))
    print(f"{path.relative_to(REPO)}: the sample table of {EXAMPLE}")
