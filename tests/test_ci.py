"""The CI's gates run one script, .ci/gate, wherever CI runs: .ci/run and the GitHub workflow both
call it and neither runs the gate or the history itself, so the two cannot drift. The script on
throwaway repositories holding this project: a first commit and an empty store (no check, said), a
store that holds history (checked), uncommitted changes (nothing added), and a change to kernels/
alone, whose one-process gate is added to the history paired with its base side. No timing is
asserted: the gate's threshold is set where no noise reaches it."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_gate import commit, git

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install -e '.')")

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "bench.yml"
SCRIPT = ".ci/gate"


def workflow_steps(text):
    """[(the step's lines, its run commands)] of a GitHub workflow, read as text (no YAML parser
    in the test environment): a step starts at `- `; `run: CMD` is one command, `run: |` the
    lines indented under it."""
    steps, block = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block is not None and (not line.strip() or indent > block):
            if line.strip():
                steps[-1][1].append(line.strip())
            continue
        block = None
        if re.match(r"\s*- ", line):
            steps.append(([], []))
        if not steps:
            continue
        steps[-1][0].append(line.strip())
        found = re.match(r"\s*(?:- )?run:\s*(.*?)\s*(?:#.*)?$", line)
        if found and found.group(1) in ("|", ">", "|-", ">-"):
            block = indent
        elif found and found.group(1):
            steps[-1][1].append(found.group(1))
    return steps


def shell_commands(text):
    """The lines of a shell script that run something: not blank, not comments."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


# The gate and the history's commands: only .ci/gate may run them in CI.
GATES = re.compile(r"bench (gate|history (init|add|check))\b|make gate\b")


def test_the_workflow_and_ci_run_call_the_same_gate_and_history_script():
    steps = workflow_steps(WORKFLOW.read_text(encoding="utf-8"))
    runs = [command for _, commands in steps for command in commands]
    assert runs.count(SCRIPT) == 1, runs
    ci_run = shell_commands((REPO / ".ci" / "run").read_text(encoding="utf-8"))
    assert ci_run.count(SCRIPT) == 1, ci_run
    assert not [c for c in runs + ci_run if GATES.search(c)], "the gate or the history run outside .ci/gate"
    script = (REPO / SCRIPT).read_text(encoding="utf-8")
    for what in (
        "bench gate --base HEAD~1",
        'history add "$runs/candidate" --paired-base "$runs/base"',
        'history add "$runs"/candidate-*',
        "ready (empty)",
        "history check --last 20",
    ):
        assert what in script, what
    assert os.access(REPO / SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(REPO / SCRIPT)], check=True)
    # The workflow's own parts: the history restored before the script runs; what the script
    # keeps (a folder git ignores, so no run counts it as a change) is what it uploads.
    names = [next((line for line in lines if "name:" in line), "") for lines, _ in steps]
    gate = next(i for i, (_, commands) in enumerate(steps) if SCRIPT in commands)
    assert any("Restore the history" in n for n in names[:gate])
    kept = next(line.split(":", 1)[1].split("#")[0].strip() for line in steps[gate][0] if "BENCH_CI_OUT:" in line)
    assert kept.startswith("results/") and any(
        f"path: {kept}/" in line for lines, _ in steps[gate + 1 :] for line in lines
    )
    if importlib.util.find_spec("yaml"):  # where a YAML parser is installed, it reads the same commands
        import yaml

        parsed = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
        commands = [s["run"].strip() for job in parsed["jobs"].values() for s in job["steps"] if "run" in s]
        assert [c.splitlines() for c in commands] == [c for _, c in steps if c]


# ---------------------------------------------------------------- the script, on throwaway repositories


def project(path):
    """A git repository at `path` holding this project's harness, steps, settings and .ci/gate."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for part in ("bench", "kernels", ".ci"):
        shutil.copytree(REPO / part, path / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy(REPO / name, path / name)
    commit(path, {}, "base")
    return path


def ci_gate(repo, tmp_path, *flags):
    """.ci/gate of `repo` with this Python, a store in `tmp_path`, the job page's summary file and a
    folder for what it keeps; the CompletedProcess."""
    env = {
        **os.environ,
        "PY": sys.executable,
        "BENCH_HISTORY_URL": f"sqlite:///{tmp_path / 'history.sqlite'}",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "page.md"),
        "BENCH_CI_OUT": str(tmp_path / "ci"),
    }
    return subprocess.run(
        [str(repo / SCRIPT), *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_first_commit_and_an_empty_store_have_nothing_to_check(tmp_path):
    """The first push: the gate has no parent to compare with, so no runs, and the store holds
    nothing: the check is not run (it would fail on an empty store), and that is said, on the log
    and on the job's page. Uncommitted changes add nothing either, and say so."""
    repo = project(tmp_path / "repo")
    done = ci_gate(repo, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to compare: HEAD~1: HEAD is the first commit" in done.stdout
    assert "holds nothing yet and this commit added no runs to it: no check" in done.stdout
    assert "history check:" not in done.stdout and "password" not in done.stdout
    page = (tmp_path / "page.md").read_text()
    assert "## Regression gate: nothing to compare, passing" in page and "## History check: not run" in page
    assert (tmp_path / "ci" / "history.md").read_text().startswith("## History check: not run\n")
    assert not (tmp_path / "ci" / "history.json").exists()  # not run: no results
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n")
    dirty = ci_gate(repo, tmp_path)
    assert dirty.returncode == 0, dirty.stdout + dirty.stderr
    assert "uncommitted changes, so it is no commit of the history: nothing added" in dirty.stdout
    assert "no check" in dirty.stdout


def test_a_store_that_holds_history_is_checked_though_this_commit_added_nothing(tmp_path):
    from bench.history.store import Store
    from tests.history_helpers import run_records

    repo = project(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()
    store = Store(f"sqlite:///{tmp_path / 'history.sqlite'}", create=True)
    commit_info = {"sha": head, "parent": None, "time": 1_700_000_000.0, "branch": "main", "dirty": False}
    store.add(run_records(head, 0, [0.01]), commit_info)
    done = ci_gate(repo, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a history of 1 run(s)" in done.stdout and "no check" not in done.stdout
    assert "history check: 0 slowdown(s) over" in done.stdout and "among the last 20 commits; passing" in done.stdout
    page = (tmp_path / "page.md").read_text()
    assert "## History check: passing" in page and (tmp_path / "ci" / "history.json").exists()
    assert (tmp_path / "ci" / "dashboard" / "index.html").exists()


def test_an_output_folder_in_the_tree_that_git_does_not_ignore_is_refused(tmp_path):
    """Kept in the tree unignored, the gate's records would make every run of this commit dirty."""
    repo = project(tmp_path / "repo")
    env = {**os.environ, "PY": sys.executable, "BENCH_CI_OUT": "ci-out"}
    done = subprocess.run([str(repo / SCRIPT)], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "and git does not ignore it; use one under results/" in done.stderr


def test_a_change_to_the_steps_alone_is_added_paired_with_its_base_side(tmp_path):
    """kernels/ alone changed: the gate runs both sides' steps in one process, and the script adds
    its candidate/ with each case's ratio to base/, the parent's steps, then checks the history.
    (Instructions counted too: test_gate's host-side plant; none here, for CI's time.)"""
    repo = project(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    steps = repo / "kernels" / "numpy_steps.py"
    commit(repo, {"kernels/numpy_steps.py": steps.read_text() + "\n# a comment: the same steps\n"}, "steps")
    flags = ("--framework", "numpy", "--step", "manual", "--backend", "eager", "--size", "300,784,8")
    done = ci_gate(repo, tmp_path, *flags, "--budget", "0.05", "--threshold", "1000%", "--instructions", "none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "both sides' steps run in one process" in done.stderr and "1 result(s) added" in done.stdout
    assert "history check: 0 slowdown(s)" in done.stdout
    from bench.history.store import Store

    (point,) = Store(f"sqlite:///{tmp_path / 'history.sqlite'}").points()
    assert point["commit_sha"] == git(repo, "rev-parse", "HEAD").strip() and point["parent_sha"] == base
    assert point["parent_lo"] <= point["parent_ratio"] <= point["parent_hi"]
    page = (tmp_path / "page.md").read_text()
    assert "## Regression gate: " in page and "paired by round" in page and "## History check: passing" in page
    kept = tmp_path / "ci"
    assert {p.name for p in (kept / "gate-runs").iterdir()} >= {"base", "candidate"}
    assert (kept / "gate.md").read_text() in page and (kept / "history.md").read_text() in page


def test_the_second_pass_runs_only_what_the_frameworks_change(tmp_path):
    """.ci/run's second pass (pytest --optional-frameworks, tests/conftest.py): after a whole run it
    runs the tests that run skipped or did not have and those marked 'frameworks', not those it passed."""
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    suite = tmp_path / "test_suite.py"

    def write(has_torch):
        suite.write_text(
            "import pytest\n"
            "def test_plain(): pass\n"
            f"@pytest.mark.skipif({not has_torch}, reason='no torch')\n"
            "def test_needs_torch(): pass\n"
            "@pytest.mark.frameworks\n"
            "def test_every_installed(): pass\n"
            f"@pytest.mark.parametrize('fw', {['numpy', 'torch'] if has_torch else ['numpy']})\n"
            "def test_each(fw): pass\n"
        )

    def pytest_(*args):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:randomly", "-rA", *args, str(suite)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        passed = set(re.findall(r"^PASSED \S+::(\S+)", done.stdout, re.M))
        return done, passed

    write(has_torch=False)
    done, _ = pytest_("--optional-frameworks")
    assert done.returncode != 0 and "pytest's cache holds no earlier run" in done.stderr
    done, passed = pytest_()
    assert done.returncode == 0 and passed == {"test_plain", "test_every_installed", "test_each[numpy]"}
    write(has_torch=True)
    done, passed = pytest_("--optional-frameworks")
    assert done.returncode == 0, done.stdout
    assert passed == {"test_needs_torch", "test_every_installed", "test_each[torch]"}
    assert "2 deselected" in done.stdout
