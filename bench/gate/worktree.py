"""Git for the gate: the commit a revision names, and a temporary worktree of it."""
import re
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.gate.errors import GateError, NothingToCompare


def git(tree, *args):
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(args, 127, "", str(e))


def resolve(tree, rev):
    """The commit `rev` names in `tree`'s repository. NothingToCompare where there is none to have
    (not a checkout; an ancestor such as HEAD~1 of a first commit or of a shallow clone); GateError
    for a name that means nothing."""
    if git(tree, "rev-parse", "--show-toplevel").returncode != 0:
        raise NothingToCompare(f"{tree} is not a git checkout, so there is no base revision to run")
    done = git(tree, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if done.returncode == 0:
        return done.stdout.strip()
    if re.search(r"[~^]", rev) and git(tree, "rev-parse", "--verify", "--quiet", re.split(r"[~^]", rev)[0] or "HEAD").returncode == 0:
        shallow = git(tree, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = " (a shallow clone: fetch more history, e.g. fetch-depth: 2)" if shallow else " (no parent commit)"
        raise NothingToCompare(f"{rev} does not exist{hint}")
    raise GateError(f"unknown revision {rev!r} in {tree}")


@contextmanager
def worktree(tree, sha):
    """A temporary detached worktree of commit `sha`, removed (and pruned) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    path = parent / "base"
    done = git(tree, "worktree", "add", "--detach", "--quiet", str(path), sha)
    if done.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise GateError(f"git worktree add failed: {_last_line(done.stderr)}")
    try:
        yield path
    finally:
        git(tree, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        git(tree, "worktree", "prune")
