"""The README stays true: its layout names every module, and the defaults it quotes are the ones
bench/defaults.py holds."""

import re
from pathlib import Path

from bench import defaults

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_layout_names_every_module():
    layout = README[README.index("## Layout") :]
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


# A path the project's text names: under one of its folders, or a dotted module of bench/kernels.
PATH = re.compile(r"(?<![\w./-])((?:bench|kernels|tests|data|results|\.ci|\.github)/[\w./-]*[\w/])")
MODULE = re.compile(r"(?<![\w./])((?:bench|kernels)(?:\.[a-z_][a-z0-9_]*)+)")
GENERATED = ("results/", "data/mnist")  # what a run writes, and the user's data file: named, not shipped


def _texts():
    """(where, text) of the README, pyproject.toml, the Makefile, .ci/run and every module's docstring."""
    import ast

    for name in ("README.md", "pyproject.toml", "Makefile", ".ci/run"):
        yield name, (REPO / name).read_text(encoding="utf-8")
    for path in sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "kernels").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        yield str(path.relative_to(REPO)), doc


def _module_exists(dotted):
    """Whether the leading names of `dotted` (at least two) are a module or package of this tree
    (what follows may be an attribute: bench.frameworks.load)."""
    parts = dotted.split(".")
    for k in range(len(parts), 1, -1):
        base = REPO.joinpath(*parts[:k])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return True
    return False


def test_every_file_and_module_the_text_names_exists():
    missing = []
    for where, text in _texts():
        for path in PATH.findall(text):
            if (
                path.startswith(GENERATED)
                and not (REPO / path).exists()
                and "examples" not in path
                and "baselines" not in path
            ):
                continue
            if not (REPO / path.rstrip("/.")).exists():
                missing.append(f"{where}: {path}")
        missing += [f"{where}: {m}" for m in MODULE.findall(text) if not _module_exists(m)]
    assert not missing, "named but not in the tree: " + "; ".join(sorted(set(missing)))


def test_public_functions_are_annotated():
    """Every public function and method of bench/ and kernels/ says its types (mypy checks them):
    what another module may call is written down where it is defined."""
    import ast

    missing = []
    for path in sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "kernels").rglob("*.py")):

        def visit(body, owner="", path=path):
            for node in body:
                if isinstance(node, ast.ClassDef) and not owner and not node.name.startswith("_"):
                    visit(node.body, node.name + ".", path)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                    a = node.args
                    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
                    if owner and params and params[0].arg in ("self", "cls"):
                        params = params[1:]
                    if node.returns is None or any(p.annotation is None for p in params):
                        missing.append(f"{path.relative_to(REPO)}:{node.lineno} {owner}{node.name}")

        visit(ast.parse(path.read_text(encoding="utf-8")).body)
    assert not missing, "public functions without annotations: " + ", ".join(missing)
