"""`bench run --history URL`: each record added to the history store as the run records it, after
passing on every event to the run's own observer (the progress lines)."""

from pathlib import Path
from typing import Any

from bench import REPO, fingerprint
from bench.history.commits import commit_of
from bench.history.store import HistoryError, Store
from bench.records import Record
from bench.run import Observer


class Recorder(Observer):
    """An Observer that adds finished records to a Store; the store and this checkout's commit are
    checked when it is made, so a run that could not be kept fails before it starts. Compose it
    with the run's own observer (bench.run.Observers)."""

    def __init__(self, url: str | None, source: Path | str | None = None) -> None:
        self.source = source
        self.store = Store(url)
        if not fingerprint.git_info()["git_commit"]:
            raise HistoryError(
                f"--history {self.store.shown}: this tree is not a git checkout; the history is kept per commit"
            )
        self.commit: dict[str, Any] | None = None

    def finished(self, rec: Record) -> None:
        if self.commit is None:
            self.commit = commit_of([rec], REPO)
        self.store.add([rec], self.commit, source=self.source)
