"""The README stays true: its layout names every module, and the defaults it quotes are the ones
bench/defaults.py holds."""
import re
from pathlib import Path

from bench import defaults

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_layout_names_every_module():
    layout = README[README.index("## Layout"):]
    missing = []
    for path in sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "kernels").rglob("*.py")):
        if path.name == "__init__.py" and path.parent.name in ("bench", "kernels"):
            continue
        name = path.name if path.name != "__init__.py" else f"{path.parent.name}/"
        if not re.search(rf"(?<![\w/]){re.escape(name)}", layout):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"README's layout does not name: {missing}"


def test_the_readme_quotes_the_defaults():
    n, m, nh = defaults.SIZE
    quoted = [
        f"within +-{defaults.TARGET_CI:.0%}",
        f"`--budget`, {defaults.BUDGET_S:g} s of timed calls",
        f"`broadcast` step at n={defaults.STEP_N['broadcast']}",
        f"(n={defaults.QUICK_SIZE[0]}, few samples)",
        f"{n:,} rows",
        f"{m} -> {nh} -> 1",
        f"The threshold is {defaults.GATE_THRESHOLD}",
        f"[--pairs {defaults.GATE_PAIRS}] [--size {','.join(map(str, defaults.GATE_SIZE))}]",
        f"IQR exceeds {defaults_noisy()} of its median",
        f"over {defaults.MEMORY_FRACTION:.0%} of the",
    ]
    for text in quoted:
        assert text in README, f"README should say {text!r} (bench/defaults.py)"


def defaults_noisy():
    from bench.stats import NOISY_IQR_FRACTION
    return f"{NOISY_IQR_FRACTION:.0%}"
