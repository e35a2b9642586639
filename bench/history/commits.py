"""A run's commit as the history keys it: its sha (from the run's fingerprint), parent and committer
time (from git, in the repository given), branch and whether the tree was dirty."""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import git
from bench.history.store import HistoryError
from bench.records import Record


def commit_of(records: Sequence[Record], repo: Path | str, source: str = "the run") -> dict[str, Any]:
    """{sha, parent, time, branch, dirty} of the run `records` (one run id) came from; HistoryError
    when they name no commit (a run outside a git checkout) or a commit `repo` does not have."""
    fp = records[0].fingerprint or {}
    sha = fp.get("git_commit")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40,64}", sha):
        raise HistoryError(
            f"{source}: its records name no git commit (run outside a git checkout?); the history is kept per commit"
        )
    shown = git.out(repo, "show", "-s", "--format=%P%x00%ct", "--end-of-options", sha)
    if shown is None:
        raise HistoryError(f"{source}: commit {sha[:10]} is not in {repo} (fetch it, or pass --repo)")
    parents, _, time = shown.partition("\0")
    return {
        "sha": sha,
        "parent": next(iter(parents.split()), None),
        "time": float(time) if time else None,
        "branch": fp.get("git_branch") if isinstance(fp.get("git_branch"), str) else None,
        "dirty": bool(fp.get("git_dirty")),
    }
