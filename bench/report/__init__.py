"""Records -> report.md, a self-contained report.html, tables/*.csv and plots/*.png|svg, rebuilt from
records alone (NumPy, pandas and matplotlib; never a framework). frames.py: records as pandas rows,
speed-ups, pay-back, crossovers; fmt.py: numbers to the digits their spread supports; plots.py: the
figures; document.py: the document's blocks, as markdown and HTML, and the files."""

from bench.report.document import comparison_tables, markdown_table, text_tables, write
from bench.report.frames import frame, title

__all__ = ["comparison_tables", "frame", "markdown_table", "text_tables", "title", "write"]
