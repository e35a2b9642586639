"""Git for the gate: the commit a revision names, and a temporary worktree of it."""
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.gate.errors import GateError, NothingToCompare
from bench.gate.processes import last_line
from bench.records import printable


def git(tree: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=120)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(args, 127, "", str(e))


# A revision that walks back from a starting point: HEAD~1, main^, v1.0~3^2 ...
_ANCESTRY = re.compile(r"^(?P<start>[^~^:{}]+)(?P<walk>(?:~\d*|\^\d?)+)$")


def text_at(tree: Path | str, sha: str, path: str) -> str | None:
    """The text of `path` (relative to `tree`) as commit `sha` holds it; None where it has no such file."""
    shown = git(tree, "show", f"{sha}:./{path}")
    return shown.stdout if shown.returncode == 0 else None


def _generations(walk):
    """(first-parent generations a walk such as '~2^' goes back, whether it names a merge's other parent)."""
    total, other = 0, False
    for step, count in re.findall(r"([~^])(\d*)", walk):
        if step == "~":
            total += int(count) if count else 1
        else:
            total += 1
            other = other or (count not in ("", "1", "0") and count != "")
    return total, other


def resolve(tree: Path | str, rev: str) -> str:
    """The commit `rev` names in `tree`'s repository. NothingToCompare only for a real absence: the
    base is an ancestor of a first commit, or lies beyond a shallow clone's history (or `tree` is
    not a checkout). GateError, naming it, for anything git cannot resolve to a commit otherwise:
    a typo, a tree or blob, an ancestor deeper than the history."""
    if not rev or rev.startswith(("-", "^")) or not rev.isprintable() or len(rev) > 256:
        raise GateError(f"bad revision {printable(rev)[:60]!r}: expected a commit such as HEAD~1, a branch or a tag")
    if git(tree, "rev-parse", "--show-toplevel").returncode != 0:
        raise NothingToCompare(f"{tree} is not a git checkout, so there is no base revision to run")
    done = git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", done.stdout.strip()):
        return done.stdout.strip()
    walk = _ANCESTRY.match(rev)
    start = walk and git(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{walk['start']}^{{commit}}")
    if walk and start and start.returncode == 0:
        generations, other = _generations(walk["walk"])
        depth = int(git(tree, "rev-list", "--first-parent", "--count", start.stdout.strip(), "--").stdout.strip() or 1)
        if git(tree, "rev-parse", "--is-shallow-repository").stdout.strip() == "true" and generations >= depth:
            raise NothingToCompare(f"{rev} lies beyond this shallow clone's {depth} commit(s) of history "
                                   "(fetch more, e.g. fetch-depth: 2)")
        if depth == 1 and generations == 1 and not other:
            raise NothingToCompare(f"{rev}: {walk['start']} is the first commit, so it has no parent to compare with")
        if generations >= depth:
            raise GateError(f"unknown revision {rev!r}: {walk['start']} has {depth - 1} ancestor(s) on its first-parent line")
    raise GateError(f"unknown revision {rev!r}: git cannot resolve it to a commit in {tree}")


@contextmanager
def worktree(tree: Path | str, sha: str) -> Iterator[Path]:
    """A temporary detached worktree of commit `sha`, removed (and pruned) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    path = parent / "base"
    done = git(tree, "worktree", "add", "--detach", "--quiet", "--", str(path), sha)
    if done.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise GateError(f"git worktree add failed: {last_line(done.stderr) or f'exit status {done.returncode}'}")
    try:
        yield path
    finally:
        git(tree, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        git(tree, "worktree", "prune")
