"""backprop-bench: the harness. `python -m bench` is its command line (bench/cli/)."""

from pathlib import Path

# The repository that contains bench/ (git facts, the stored figures and default paths are read from here).
REPO = Path(__file__).resolve().parent.parent
