"""The documentation site: Sphinx with MyST (pages in Markdown), built strictly by `make docs` and by
the tests (a broken link, anchor or page fails). Two pages are generated at build time, so they
cannot disagree with what they describe: the command reference from the command line's own
parsers, and the validation page from the results files under results/validation/."""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # this checkout's bench, whatever is installed
sys.path.insert(0, str(DOCS / "_ext"))

project = "backprop-bench"
author = "the backprop-bench developers"
copyright = author  # the footer; furo prints "Copyright ©" with nothing after it otherwise
extensions = ["myst_parser", "bench_docs"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links are checked
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "backprop-bench"
html_static_path: list[str] = []
nitpicky = True
suppress_warnings: list[str] = []
