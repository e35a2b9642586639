"""The README and the docs site stay true: the site builds strictly, every command line they show
parses with the real command-line parser (a curated few run end to end), the layout names every
module, the defaults they quote are bench/defaults.py's, every file and module they name exists, and
no code comment quotes a machine, a neighbour or a date (measured figures live in results files)."""

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench import defaults

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GENERATED = {DOCS / "reference" / "commands.md", DOCS / "validation.md"}
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and p not in GENERATED)
README = (REPO / "README.md").read_text(encoding="utf-8")


def texts() -> dict[str, str]:
    """{where: text} of the README and every written docs page."""
    return {"README.md": README, **{str(p.relative_to(REPO)): p.read_text(encoding="utf-8") for p in PAGES}}


def test_the_docs_build_strictly(tmp_path):
    """A broken internal link, anchor, cross-reference or missing page fails the build."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("myst_parser", reason="the docs extra is not installed (pip install -e '.[docs]')")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "html" / "reference" / "commands.html").is_file()
    assert (tmp_path / "html" / "validation.html").is_file()


# ---------------------------------------------------------------- command lines

FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL = ("sh", "bash", "console", "shell")
BENCH = re.compile(r"^(?:\$ )?(?:\S*/)?python3? -m (bench(?:\.validation)?)\s+(.*)$")
MAKE = re.compile(r"^(?:\$ )?make\s+(.*)$")


def command_lines() -> list[tuple[str, str]]:
    """[(where, line)] of every `python -m bench ...` and `make ...` in a shell block of the README
    and the docs, continuation lines joined, comments and leading environment assignments left out."""
    out = []
    for where, text in texts().items():
        for lang, body in FENCE.findall(text):
            if lang not in SHELL:
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = re.sub(r"^(\$ )?([A-Z_][A-Z0-9_]*=\S* )+", r"\1", line.strip())
                if BENCH.match(line) or MAKE.match(line):
                    out.append((where, line))
    return out


def _bench_parser(module: str):
    if module == "bench":
        from bench.cli import build_parser

        return build_parser()
    from bench import validation

    return validation.parser()


def _parse_bench(module: str, args: str) -> None:
    argv = shlex.split(args, comments=True)
    argv = [a for a in argv if a not in ("|", "&&")][
        : next((i for i, a in enumerate(argv) if a in ("|", "&&", ";")), len(argv))
    ]
    _bench_parser(module).parse_args(argv)


MAKE_ARGS = {"bench": "run", "gate": "gate"}  # targets whose ARGS= are that command's flags
FREE_ARGS = ("test", "fuzz")  # targets whose ARGS= go to pytest


def _parse_make(args: str) -> None:
    words = shlex.split(args, comments=True)
    targets = [w for w in words if "=" not in w]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target!r}"
    for word in words:
        if word.startswith("ARGS=") and not set(targets) & set(FREE_ARGS):
            command = next((MAKE_ARGS[t] for t in targets if t in MAKE_ARGS), None)
            assert command, f"ARGS= given to {targets}, which pass no flags to a command"
            _parse_bench("bench", f"{command} {word[len('ARGS=') :]}")


def test_every_command_line_the_docs_show_parses():
    """Every `python -m bench ...` and `make ...` line in a shell block of the README and the docs
    is parsed by the real parser (a stale flag or a renamed command fails here), a make target must
    exist and its ARGS parse as its command's flags. Lines that need a GPU or the network are parsed
    the same (they are never run here)."""
    lines = command_lines()
    assert len(lines) >= 20, f"only {len(lines)} command lines found: the docs' shell blocks moved?"
    bad = []
    for where, line in lines:
        try:
            bench = BENCH.match(line)
            if bench:
                _parse_bench(bench.group(1), bench.group(2))
            else:
                _parse_make(MAKE.match(line).group(1))
        except SystemExit as e:
            bad.append(f"{where}: {line} (exit {e.code})")
        except (AssertionError, ValueError) as e:
            bad.append(f"{where}: {line} ({e})")
    assert not bad, "command lines that do not parse:\n" + "\n".join(bad)


# A few lines run for real, at small sizes: (a line the docs show, what the test adds to it).
RUN_END_TO_END = (
    ("python -m bench run --quick --framework numpy --size 2000,784,50", "--out {tmp}/quick"),
    ("python -m bench report", "{tmp}/quick --out {tmp}/report"),
    ("python -m bench gate --plan", ""),
    ("python -m bench explain numpy/manual/eager n=2000", "--budget 0.2 --out {tmp}/explain"),
)


@pytest.mark.frameworks  # every framework installed here
def test_the_quick_start_report_gate_plan_and_explain_run(tmp_path):
    """The lines a newcomer copies first run end to end at small sizes, exactly as the docs show them
    (the test only adds an output folder or a budget)."""
    shown = [line for _, line in command_lines()]
    for prefix, extra in RUN_END_TO_END:
        line = next((line for line in shown if line.startswith(prefix)), None)
        assert line is not None, f"the docs no longer show {prefix!r}"
        if prefix.endswith("report"):
            line = prefix  # run here on the quick run's folder
        argv = shlex.split(line, comments=True)[3:] + shlex.split(extra.format(tmp=tmp_path))
        done = subprocess.run(
            [sys.executable, "-m", "bench", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{line}: exit {done.returncode}\n{done.stderr[-3000:]}"
    assert (tmp_path / "report" / "report.html").is_file()


# ---------------------------------------------------------------- the layout, defaults, names

LAYOUT = DOCS / "contributing.md"


def test_the_layout_names_every_module():
    text = LAYOUT.read_text(encoding="utf-8")
    layout = text[text.index("## Layout") :]
    missing = []
    for path in sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "kernels").rglob("*.py")):
        if path.name == "__init__.py" and path.parent.name in ("bench", "kernels"):
            continue
        name = path.name if path.name != "__init__.py" else f"{path.parent.name}/"
        if not re.search(rf"(?<![\w/]){re.escape(name)}", layout):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"the layout in docs/contributing.md does not name: {missing}"


def test_the_docs_quote_the_defaults():
    n, m, nh = defaults.SIZE
    from bench.stats import NOISY_IQR_FRACTION

    quoted = [
        f"within +-{defaults.TARGET_CI:.0%}",
        f"{defaults.BUDGET_S:g} s of timed calls",
        f"`broadcast` step at n={defaults.STEP_N['broadcast']}",
        f"n={defaults.QUICK_SIZE[0]}, few samples",
        f"{n:,} rows",
        f"{m} -> {nh} -> 1",
        f"The threshold is {defaults.GATE_THRESHOLD}",
        f"IQR exceeds {NOISY_IQR_FRACTION:.0%} of its median",
        f"over {defaults.MEMORY_FRACTION:.0%} of the",
        f"sd {defaults.RUN_SD:.0%} of a median",
    ]
    everything = "\n".join(texts().values())
    missing = [text for text in quoted if text not in everything]
    assert not missing, f"the docs should say {missing} (bench/defaults.py)"


def test_every_record_field_is_documented():
    from dataclasses import fields

    from bench.records import Record

    text = (DOCS / "reference" / "records.md").read_text(encoding="utf-8")
    missing = [f.name for f in fields(Record) if f"`{f.name}`" not in text]
    assert not missing, f"docs/reference/records.md does not describe: {missing}"


# A path the project's text names: under one of its folders, or a dotted module of bench/kernels.
PATH = re.compile(r"(?<![\w./-])((?:bench|kernels|tests|data|results|docs|\.ci|\.github)/[\w./-]*[\w/])")
MODULE = re.compile(r"(?<![\w./])((?:bench|kernels)(?:\.[a-z_][a-z0-9_]*)+)")
WRITTEN = ("results/", "data/mnist", "docs/_build")  # what a run or a build writes, the user's data: named, not shipped


def _texts_and_docstrings():
    """(where, text) of the README, the docs, pyproject.toml, the Makefile, .ci/run and every module's docstring."""
    yield from texts().items()
    for name in ("pyproject.toml", "Makefile", ".ci/run"):
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


def _without_removed(where: str, text: str) -> str:
    """The text whose paths must exist: docs/migration.md's tables name in their first column ("was")
    the modules that were renamed or removed, so that column is left out."""
    if where != "docs/migration.md":
        return text
    return re.sub(r"^\|[^|\n]*\|", "|", text, flags=re.M)


def test_every_file_and_module_the_text_names_exists():
    missing = []
    for where, text in _texts_and_docstrings():
        text = _without_removed(where, text)
        for path in PATH.findall(text):
            shipped = "examples" in path or "baselines" in path or "validation" in path
            if path.startswith(WRITTEN) and not (REPO / path).exists() and not shipped:
                continue
            if path.rstrip("/.") in {str(p.relative_to(REPO)) for p in GENERATED}:
                continue
            if not (REPO / path.rstrip("/.")).exists():
                missing.append(f"{where}: {path}")
        missing += [f"{where}: {m}" for m in MODULE.findall(text) if not _module_exists(m)]
    assert not missing, "named but not in the tree: " + "; ".join(sorted(set(missing)))


# ---------------------------------------------------------------- figures are data

# A machine, a neighbour, a date or a measured session in a comment: a notebook, not a why.
NOTEBOOK = re.compile(
    r"EPYC|Xeon|\bVM\b|2-core|neighbour|\b20\d\d-\d\d-\d\d\b|on this machine we|in \w+ runs here", re.I
)
ALLOWED = re.compile(r"H100|hostname|\bVM\b\w")


def _comments(path: Path):
    """(line number, text) of each comment and docstring line of a module."""
    import io
    import tokenize

    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                for k, line in enumerate(doc.splitlines()):
                    yield node.body[0].lineno + k, line


def _bench_docs():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import bench_docs
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return bench_docs


def test_the_readme_sample_is_the_example_runs_table():
    """The README's sample output is what `python -m bench report results/examples/cpu --table`
    prints, and its picture that run's plot: `make readme` rewrites them, never a hand."""
    bench_docs = _bench_docs()
    assert bench_docs.with_sample(README, bench_docs.sample_table()) == README, "run make readme"
    assert "](results/examples/cpu/plots/bars.png)" in README
    assert (REPO / bench_docs.EXAMPLE / "plots" / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_no_comment_in_the_code_quotes_a_machine_a_neighbour_or_a_date():
    """Code says why; a measured figure lives in a results file (results/validation/) and the docs
    generated from it, and a comment names the experiment."""
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")) + sorted((REPO / "kernels").rglob("*.py")):
        for line, text in _comments(path):
            if NOTEBOOK.search(text) and not ALLOWED.search(text):
                found.append(f"{path.relative_to(REPO)}:{line}: {text.strip()[:100]}")
    assert not found, f"{len(found)} comment lines read like a lab notebook:\n" + "\n".join(found)


def test_public_functions_are_annotated():
    """Every public function and method of bench/ and kernels/ says its types (mypy checks them):
    what another module may call is written down where it is defined."""
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


def test_every_validation_file_holds_what_its_page_needs_and_a_missing_one_says_how_to_measure_it(
    tmp_path, monkeypatch
):
    """docs/validation.md is generated from results/validation/: each experiment's file carries its
    command, machine, date and commit; a missing or broken one is said on the page, in one line."""
    from bench import validation

    for name in validation.EXPERIMENTS:
        entry = validation.load(name)
        assert entry["name"] == name and all(entry[k] for k in ("command", "machine", "date", "commit", "figures"))
    monkeypatch.setattr(validation, "FOLDER", tmp_path)
    missing = r"does not exist yet \(python -m bench.validation run pin measures it\)"
    with pytest.raises(validation.ValidationError, match=missing):
        validation.load("pin")
    (tmp_path / "pin.json").write_text("{", encoding="utf-8")
    with pytest.raises(validation.ValidationError, match="unreadable"):
        validation.load("pin")
    page = validation.markdown()
    assert page.count("Not measured: ") == len(validation.EXPERIMENTS) and "\n\n" in page
    done = subprocess.run(
        [sys.executable, "-m", "bench.validation", "run", "no-such"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "no-such" in done.stderr
