"""A bisection's steps in the history store (--db): each side's records added under its own commit,
their run ids named after the step, so the same step asked again is read back instead of timed; and
the counters the store holds of a commit, which are exact whichever run measured them."""

import hashlib
import json
from dataclasses import replace
from typing import Any

from bench import REPO, git
from bench.bisect.plan import Plan, short
from bench.bisect.search import Measured
from bench.gate.plan import outside_kernels
from bench.records import Record


class History:
    def __init__(self, store: Any, plan: Plan) -> None:
        self.store, self.plan = store, plan
        self._counters: dict[tuple[str, str], dict[str, Any]] | None = None
        # In one process, this checkout's harness timed each commit's steps: those are the commit's
        # own records only where this harness is the range's (only the steps' code changed in it).
        self.restamp = plan.pairing == "calls"
        self.usable = not self.restamp or harness_is(plan.bad)

    def said(self) -> list[str]:
        """What it could not do, to print after the answer."""
        if self.usable:
            return []
        return [
            "not added to the history: this checkout's harness, which timed the steps, is not "
            f"{short(self.plan.bad)}'s (--pairing processes runs each commit's own)"
        ]

    def prefix(self, sides: dict[str, str], timing: str) -> str:
        """The run ids of a step's sides begin with this: the same commits, timed the same way."""
        key = json.dumps({"pairing": self.plan.pairing, "timing": timing, "sides": sides}, sort_keys=True)
        return f"bisect-{hashlib.sha256(key.encode()).hexdigest()[:16]}-"

    def find(self, sides: dict[str, str], timing: str) -> Measured | None:
        """The step as the store holds it, where every side of it is there (a process that wrote
        nothing is a gap in its round, as it was)."""
        if not self.usable:
            return None
        prefix = self.prefix(sides, timing)
        runs = self.store.run_records(prefix)
        got: dict[str, Any] = {}
        for side in sides:
            rounds = {}
            for run_id, recs in runs.items():
                name, _, k = run_id[len(prefix) :].rpartition("-")
                if name == side and k.isdigit():
                    rounds[int(k)] = recs
            if not rounds:
                return None
            if self.plan.pairing == "processes":
                got[side] = [rounds.get(k) for k in range(max(rounds) + 1)]
            else:  # the sides were one run, paired by round: their run id the same again
                got[side] = [replace(r, run_id=prefix) for r in rounds[min(rounds)]]
        return Measured(self.plan.pairing or "processes", got)

    def add(self, sides: dict[str, str], timing: str, measured: Measured, said: list[str]) -> None:
        """Each side's records under its commit (its parent and time from git); a store that fails
        is said once and left alone, the bisection goes on."""
        from bench.history.commits import commit_of
        from bench.history.store import HistoryError

        if not self.usable:
            return
        prefix = self.prefix(sides, timing)
        try:
            for side, sha in sides.items():
                got = measured.sides.get(side) or []
                for k, recs in enumerate(got if measured.pairing == "processes" else [got]):
                    if recs:
                        recs = [_stamped(r, f"{prefix}{side}-{k}", sha, self.restamp) for r in recs]
                        self.store.add(recs, commit_of(recs, self.plan.repo), source=f"bisect {short(sha)}")
        except HistoryError as e:
            self.usable = False
            said.append(f"the history store failed, and the rest was not added: {e}")

    def counters(self, sha: str) -> dict[str, Any]:
        """{label: counters} the store holds of commit `sha` on this machine, of the bisected cases."""
        if self._counters is None:
            from bench import fingerprint
            from bench.machine import Machine

            here = Machine.of(fingerprint.collect()).series_key
            self._counters = {
                (row["commit_sha"], row["case"]): row["counters"]
                for row in self.store.points()
                if row["machine"] == here and row.get("counters") and row["case"] in self.plan.cases
            }
        return {label: c for (commit, label), c in self._counters.items() if commit == sha}


def harness_is(sha: str) -> bool:
    """Whether this checkout's harness (everything but the steps' code, tests, text and results) is
    that of commit `sha`, uncommitted changes included."""
    if git.git(REPO, "cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
        return False
    return not outside_kernels(git.changed_files(REPO, sha))


def _stamped(rec: Record, run_id: str, sha: str, restamp: bool) -> Record:
    """A step's record as the history keeps it: its run id the step's; in one process, its commit
    the one whose steps it timed (the harness's own kept beside it)."""
    fp = dict(rec.fingerprint or {})
    if restamp:
        fp.update(harness_commit=fp.get("git_commit"), git_commit=sha, git_dirty=False)
    return replace(rec, run_id=run_id, fingerprint=fp)
