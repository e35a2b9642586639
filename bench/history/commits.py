"""A run's commit as the history keys it: its sha (from the run's fingerprint), parent and committer
time (from git, in the repository given), branch and whether the tree was dirty."""

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.history.store import HistoryError
from bench.records import Record


def _git(repo, *args):
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit_of(records: Sequence[Record], repo: Path | str, source: str = "the run") -> dict[str, Any]:
    """{sha, parent, time, branch, dirty} of the run `records` (one run id) came from; HistoryError
    when they name no commit (a run outside a git checkout) or a commit `repo` does not have."""
    fp = records[0].fingerprint or {}
    sha = fp.get("git_commit")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40,64}", sha):
        raise HistoryError(
            f"{source}: its records name no git commit (run outside a git checkout?); the history is kept per commit"
        )
    shown = _git(repo, "show", "-s", "--format=%P%x00%ct", "--end-of-options", sha)
    if shown is None:
        raise HistoryError(f"{source}: commit {sha[:10]} is not in {repo} (fetch it, or pass --repo)")
    parents, _, time = shown.partition("\0")
    return {
        "sha": sha,
        "parent": (parents.split() or [None])[0],
        "time": float(time) if time else None,
        "branch": fp.get("git_branch") if isinstance(fp.get("git_branch"), str) else None,
        "dirty": bool(fp.get("git_dirty")),
    }
