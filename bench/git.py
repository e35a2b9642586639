"""Git, the one way the harness asks it anything: a command's result, the commit a revision names,
a file as a commit holds it, the files a working tree changes, and a temporary worktree."""

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.text import last_line, printable

TIMEOUT_S = 120


class RevisionError(ValueError):
    """A revision git cannot resolve to a commit (a typo, a tree, an ancestor deeper than the
    history), or git failing at what was asked; one line."""


class NoRevision(LookupError):
    """A real absence: the revision is the parent of a first commit, lies beyond a shallow clone's
    history, or the folder is not a checkout."""


def git(tree: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """`git -C tree args...`: its CompletedProcess (returncode 127 where git could not run)."""
    try:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(args, 127, "", str(e))


def out(tree: Path | str, *args: str) -> str | None:
    """The stripped stdout of a git command that succeeded, else None."""
    done = git(tree, *args)
    return done.stdout.strip() if done.returncode == 0 else None


def text_at(tree: Path | str, sha: str, path: str) -> str | None:
    """The text of `path` (relative to `tree`) as commit `sha` holds it; None where it has no such file."""
    shown = git(tree, "show", f"{sha}:./{path}")
    return shown.stdout if shown.returncode == 0 else None


def has_file(tree: Path | str, sha: str, path: str) -> bool:
    return git(tree, "cat-file", "-e", f"{sha}:{path}").returncode == 0


def commit_time(tree: Path | str, sha: str) -> float | None:
    """The committer time of `sha`, seconds since the epoch; None where git does not know it."""
    shown = out(tree, "show", "-s", "--format=%ct", "--end-of-options", sha)
    return float(shown) if shown else None


def head(tree: Path | str) -> str | None:
    return out(tree, "rev-parse", "--verify", "-q", "HEAD") or None


def dirty(tree: Path | str) -> bool:
    """Whether tracked files have uncommitted changes."""
    return bool(out(tree, "status", "--porcelain", "--untracked-files=no"))


def changed_files(tree: Path | str, sha: str) -> list[str]:
    """The files the working tree of `tree` changes against commit `sha` (tracked, staged or not,
    and untracked ones git does not ignore)."""
    tracked = git(tree, "diff", "--name-only", sha, "--").stdout.split("\n")
    untracked = git(tree, "ls-files", "--others", "--exclude-standard").stdout.split("\n")
    return sorted({f for f in tracked + untracked if f})


def touched(tree: Path | str, good: str, bad: str) -> list[str]:
    """Every file a commit on `bad`'s first-parent line after `good` changed (a change undone later
    still changed what ran between the two)."""
    listed = out(
        tree, "log", "--first-parent", "--diff-merges=first-parent", "--name-only", "--format=", f"{good}..{bad}", "--"
    )
    return sorted({f for f in (listed or "").splitlines() if f})


def first_parent(tree: Path | str, sha: str) -> str | None:
    """The first parent of commit `sha` (None for a first commit)."""
    return out(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^1") or None


def is_ancestor(tree: Path | str, a: str, b: str) -> bool:
    """Whether commit `a` is an ancestor of commit `b` (or the same)."""
    return git(tree, "merge-base", "--is-ancestor", a, b).returncode == 0


def first_parents(tree: Path | str, good: str, bad: str) -> list[tuple[str, str]]:
    """[(sha, subject)] of the commits on `bad`'s first-parent line after `good`, oldest first,
    `bad` last: what a bisection between them searches."""
    listed = out(tree, "log", "--first-parent", "--reverse", "--format=%H%x00%s", f"{good}..{bad}", "--")
    return [tuple(line.split("\0", 1)) for line in (listed or "").splitlines() if "\0" in line]  # type: ignore[misc]


def subject(tree: Path | str, sha: str) -> str:
    """The first line of commit `sha`'s message ("" where git does not know it)."""
    return out(tree, "show", "-s", "--format=%s", "--end-of-options", sha) or ""


def working_files(tree: Path | str) -> list[str]:
    """The working tree's files: tracked and untracked, not ignored."""
    listed = git(tree, "ls-files", "-co", "--exclude-standard", "-z")
    if listed.returncode != 0:
        raise RevisionError(f"{tree}: git cannot list its files ({last_line(listed.stderr)})")
    return [name for name in listed.stdout.split("\0") if name]


# A revision that walks back from a starting point: HEAD~1, main^, v1.0~3^2 ...
_ANCESTRY = re.compile(r"^(?P<start>[^~^:{}]+)(?P<walk>(?:~\d*|\^\d?)+)$")


def _generations(walk: str) -> tuple[int, bool]:
    """(first-parent generations a walk such as '~2^' goes back, whether it names a merge's other parent)."""
    total, other = 0, False
    for step, count in re.findall(r"([~^])(\d*)", walk):
        if step == "~":
            total += int(count) if count else 1
        else:
            total += 1
            other = other or count not in ("", "1", "0")
    return total, other


def resolve(tree: Path | str, rev: str) -> str:
    """The commit `rev` names in `tree`'s repository. NoRevision only for a real absence (the parent
    of a first commit, beyond a shallow clone, not a checkout); RevisionError, naming it, for
    anything git cannot resolve to a commit otherwise."""
    if not rev or rev.startswith(("-", "^")) or not rev.isprintable() or len(rev) > 256:
        raise RevisionError(
            f"bad revision {printable(rev)[:60]!r}: expected a commit such as HEAD~1, a branch or a tag"
        )
    if git(tree, "rev-parse", "--show-toplevel").returncode != 0:
        raise NoRevision(f"{tree} is not a git checkout, so there is no base revision to run")
    sha = out(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if sha and re.fullmatch(r"[0-9a-f]{40,64}", sha):
        return sha
    walk = _ANCESTRY.match(rev)
    start = walk and out(tree, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{walk['start']}^{{commit}}")
    if walk and start:
        generations, other = _generations(walk["walk"])
        depth = int(out(tree, "rev-list", "--first-parent", "--count", start, "--") or 1)
        if out(tree, "rev-parse", "--is-shallow-repository") == "true" and generations >= depth:
            raise NoRevision(
                f"{rev} lies beyond this shallow clone's {depth} commit(s) of history (fetch more, e.g. fetch-depth: 2)"
            )
        if depth == 1 and generations == 1 and not other:
            raise NoRevision(f"{rev}: {walk['start']} is the first commit, so it has no parent to compare with")
        if generations >= depth:
            raise RevisionError(
                f"unknown revision {rev!r}: {walk['start']} has {depth - 1} ancestor(s) on its first-parent line"
            )
    raise RevisionError(f"unknown revision {rev!r}: git cannot resolve it to a commit in {tree}")


@contextmanager
def worktree(tree: Path | str, sha: str) -> Iterator[Path]:
    """A temporary detached worktree of commit `sha`, removed (and pruned) on exit."""
    parent = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    path = parent / "base"
    done = git(tree, "worktree", "add", "--detach", "--quiet", "--", str(path), sha)
    if done.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise RevisionError(f"git worktree add failed: {last_line(done.stderr) or f'exit status {done.returncode}'}")
    try:
        yield path
    finally:
        git(tree, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        git(tree, "worktree", "prune")
