"""bisect: the search (counters first, then times against both ends), skips, the cap, resuming,
`git bisect run`'s exit codes and the history, with a stand-in for measuring over a throwaway
repository; bad input at the command line; and one real bisection of a planted extra ReLU."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import bisect
from bench.cli import main
from bench.records import Record
from tests.history_helpers import ENV, git_repo

CASE = "numpy/manual/eager/cpu"
LABEL = "numpy/manual/eager/cpu n=5000 m=784 nh=50 float32"
ROUNDS = 16


class Fake:
    """Measures a commit as `speed(index)` says (its median, relative) with `counters(index)`,
    1% noise a sample, every side of a step in the same rounds of one run; `fails` lists commits
    whose step is broken."""

    def __init__(self, shas, speed, counters=lambda i: 2, fails=(), pairing="calls", noise=0.01):
        self.shas, self.speed, self.counters, self.fails, self.pairing = shas, speed, counters, set(fails), pairing
        self.noise = noise
        self.calls = []  # (sides' commit indices, budget)
        self.rng = np.random.default_rng(7)

    def worktree(self, repo, sha):
        from contextlib import nullcontext

        return nullcontext(Path("/fake") / sha)

    @staticmethod
    def commit_of(tree):
        """A stand-in worktree is named after its commit; a real checkout (run mode's) is at its HEAD."""
        if Path(tree).parent == Path("/fake"):
            return Path(tree).name
        return subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()

    def record(self, i, run_id):
        status = "failed" if i in self.fails else "ok"
        times = tuple(0.01 * self.speed(i) * self.rng.lognormal(0, self.noise, ROUNDS)) if status == "ok" else ()
        return Record(
            framework="numpy",
            step="manual",
            backend="eager",
            device="cpu",
            n=5000,
            m=784,
            nh=50,
            dtype="float32",
            status=status,
            run_id=run_id,
            samples_s=times,
            rounds=tuple(range(ROUNDS)) if times else (),
            stop_reason="budget",
            error="wrong answer" if status == "failed" else None,
            counters={"ops": {"lin": self.counters(i), "relu": 1}} if status == "ok" else None,
            fingerprint={**ENV, "git_commit": self.shas[i]},
        )

    def __call__(self, trees, spec, pairs, folder, progress):
        index = {side: self.shas.index(self.commit_of(tree)) for side, tree in trees.items()}
        self.calls.append((tuple(index.values()), spec.budget_s))
        if self.pairing == "calls":
            run = f"run-{len(self.calls)}"
            return bisect.Measured("calls", {side: [self.record(i, run)] for side, i in index.items()})
        sides = {
            side: [[self.record(i, f"run-{len(self.calls)}-{side}-{k}")] for k in range(pairs)]
            for side, i in index.items()
        }
        return bisect.Measured("processes", sides)


@pytest.fixture
def repo(tmp_path):
    shas = git_repo(tmp_path / "repo", 13)  # GOOD and 12 commits after it
    return tmp_path / "repo", shas


def plan_of(repo, shas, tmp_path, **kw):
    req = bisect.Request(shas[0], shas[-1], cases=(CASE,), repo=str(repo), out=str(tmp_path / "out"), **kw)
    return bisect.make(req)


def bisected(plan, fake, history=None):
    hooks = bisect.Hooks(measure=fake, worktree=fake.worktree, progress=lambda line: None)
    return bisect.run(plan, hooks, history)


@pytest.mark.parametrize("at", [1, 5, 12])
def test_a_slowdown_is_found_by_times_against_both_ends(repo, tmp_path, at):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.10 if i >= at else 1.0)
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert answer.kind == "found" and answer.first_bad == at and answer.by == "times"
    tried = [s for s in answer.steps if s.kind == "times"]
    assert len(tried) <= 4  # log2(12), rounded up
    for step in tried:  # every commit tried was measured beside both ends
        assert fake.calls[answer.steps.index(step)][0] == (0, step.index, 12)
    confirm = answer.steps[-1]
    assert confirm.kind == "confirm" and confirm.index == at
    assert 1.05 < confirm.cases[0]["ratio"] < 1.15 and confirm.cases[0]["verdict"] == "regressed"
    text = "\n".join(bisect.lines(answer))
    assert f"the first bad commit is {shas[at][:10]}" in text and "how sure:" in text
    assert not answer.failed


def test_a_counter_change_is_found_exactly_and_cheaply(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.3 if i >= 9 else 1.0, counters=lambda i: 3 if i >= 9 else 2)
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert answer.kind == "found" and answer.first_bad == 9 and answer.by == "counters"
    counted = [(s, call) for s, call in zip(answer.steps, fake.calls) if s.kind == "counters"]
    assert counted and all(call == ((s.index,), bisect.COUNTERS_BUDGET_S) for s, call in counted)  # alone, briefly
    assert "lin 2 -> 3" in "\n".join(bisect.lines(answer)) and "exact" in bisect.sureness(answer)


def test_no_change_between_the_ends_says_so_and_stops(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.0)
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert answer.kind == "no change" and answer.first_bad is None and len(fake.calls) == 1
    assert "cannot be told apart" in bisect.lines(answer)[0]


def test_ends_that_cannot_be_told_apart_nor_shown_the_same_are_inconclusive(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.08 if i == 12 else 1.0, noise=0.3)  # intervals across the threshold
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert answer.kind == "inconclusive" and answer.failed
    assert [s.pairs for s in answer.steps] == [4, 8, 16]  # measured again while undecided
    assert "--pairs 32" in bisect.lines(answer)[0]


def test_a_commit_that_does_not_pass_its_check_is_skipped(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.10 if i >= 6 else 1.0, fails={6})
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert [s.verdict for s in answer.steps if s.index == 6] == ["skip"]
    assert answer.kind == "found" and answer.candidates == (6, 7)  # as git bisect: one of them
    assert "one of 2" in bisect.lines(answer)[0]


def test_a_step_that_cannot_tell_is_retried_then_inconclusive(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.0 if i < 4 else 1.05 if i < 8 else 1.10)  # two changes: the middle is halfway
    answer = bisected(plan_of(path, shas, tmp_path), fake)
    assert answer.kind == "inconclusive" and answer.failed
    tried = [s for s in answer.steps if s.index == 6]
    assert [s.pairs for s in tried] == [4, *(4 * k for k in bisect.RETRY_PAIRS)]
    assert "it would take" in "\n".join(bisect.lines(answer))


def test_more_pairs_resume_an_inconclusive_bisection_keeping_what_it_decided(repo, tmp_path):
    path, shas = repo
    two = lambda i: 1.0 if i < 9 else 1.05 if i < 11 else 1.10  # noqa: E731  (commit 9 lies halfway)
    first = bisected(plan_of(path, shas, tmp_path), Fake(shas, two))
    assert first.kind == "inconclusive" and [(s.index, s.verdict) for s in first.steps[1:2]] == [(6, "good")]
    again = bisected(plan_of(path, shas, tmp_path, pairs=8), Fake(shas, two))
    measured = [(s.kind, s.index, s.pairs) for s in again.steps if not s.reused]
    # commit 6 was decided; commit 9 at 8 and 16 pairs was kept; what is left is timed anew
    assert measured == [("ends", 12, 8), ("times", 9, 32)]


def test_the_cap_stops_it_and_the_same_command_resumes(repo, tmp_path):
    path, shas = repo
    slow = lambda i: 1.10 if i >= 3 else 1.0  # noqa: E731
    capped = bisected(plan_of(path, shas, tmp_path, max_steps=2), Fake(shas, slow))
    assert capped.kind == "capped" and capped.failed and len(capped.steps) == 2
    fake = Fake(shas, slow)
    again = bisected(plan_of(path, shas, tmp_path, max_steps=2), fake)  # the same command: two more steps
    assert again.kind == "capped" and len(again.steps) == 4 and len(fake.calls) == 2
    fake = Fake(shas, slow)
    again = bisected(plan_of(path, shas, tmp_path, max_steps=2), fake)
    assert again.kind == "found" and again.first_bad == 3
    assert [bool(s.reused) for s in again.steps[:4]] == [True] * 4 and len(fake.calls) == len(again.steps) - 4


def test_an_interrupted_bisection_keeps_its_finished_steps(repo, tmp_path):
    path, shas = repo
    fake = Fake(shas, lambda i: 1.10 if i >= 8 else 1.0)

    def killed(*args):
        if len(fake.calls) == 3:
            raise KeyboardInterrupt
        return fake(*args)

    with pytest.raises(KeyboardInterrupt):
        bisected(
            plan_of(path, shas, tmp_path),
            type("K", (), {"__call__": staticmethod(killed), "worktree": fake.worktree})(),
        )
    kept = json.loads((tmp_path / "out" / bisect.STATE_FILE).read_text())
    assert len(kept["steps"]) == 3
    answer = bisected(plan_of(path, shas, tmp_path), Fake(shas, lambda i: 1.10 if i >= 8 else 1.0))
    assert answer.first_bad == 8 and sum(bool(s.reused) for s in answer.steps) == 3


def test_a_state_of_another_bisection_is_refused(repo, tmp_path):
    path, shas = repo
    bisected(plan_of(path, shas, tmp_path), Fake(shas, lambda i: 1.0))
    with pytest.raises(bisect.BisectError, match="holds another bisection"):
        bisected(plan_of(path, shas, tmp_path, by="times"), Fake(shas, lambda i: 1.0))
    (tmp_path / "out" / bisect.STATE_FILE).write_text("{not json")
    with pytest.raises(bisect.BisectError, match="unreadable"):
        bisected(plan_of(path, shas, tmp_path), Fake(shas, lambda i: 1.0))


def test_git_bisect_run_mode_exits_good_bad_or_skip(repo, tmp_path):
    path, shas = repo
    for i, fails, expected in ((3, (), 0), (9, (), 1), (5, (5,), 125)):
        subprocess.run(["git", "-C", str(path), "checkout", "-q", shas[i]], check=True)
        fake = Fake(shas, lambda k: 1.10 if k >= 7 else 1.0, fails=fails)
        plan = plan_of(path, shas, tmp_path / str(i), run_mode=True)
        hooks = bisect.Hooks(measure=fake, worktree=fake.worktree, progress=lambda line: None)
        code, line = bisect.Bisector(plan, hooks).judge_once()
        assert code == expected, line
        assert fake.calls[0][0] == (0, i, 12)


@pytest.mark.parametrize("pairing", ["processes", "calls"])
def test_the_history_keeps_each_step_and_a_later_bisection_reuses_it(repo, tmp_path, monkeypatch, pairing):
    from bench.history.store import Store

    monkeypatch.setattr("bench.bisect.history.harness_is", lambda sha: True)  # this checkout's harness is the range's
    path, shas = repo
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite'}", create=True)
    slow = lambda i: 1.10 if i >= 5 else 1.0  # noqa: E731
    first = plan_of(path, shas, tmp_path, pairing=pairing)
    answer = bisected(first, Fake(shas, slow, pairing=pairing), bisect.History(store, first))
    assert answer.first_bad == 5 and store.counts()[0] > 0
    again = bisect.make(replace_out(first.request, tmp_path / "elsewhere"))
    fake = Fake(shas, slow, pairing=pairing)
    repeated = bisected(again, fake, bisect.History(store, again))
    assert repeated.kind == "found" and repeated.first_bad == 5 and fake.calls == []
    assert all(s.reused == "the history" for s in repeated.steps)
    assert [(s.verdict, s.index) for s in repeated.steps] == [(s.verdict, s.index) for s in answer.steps]
    commits = {p["commit_sha"] for p in store.points()}
    assert {shas[0], shas[5], shas[12]} <= commits  # each side under its own commit


def replace_out(request, out):
    from dataclasses import replace

    return replace(request, out=str(out))


# ---------------------------------------------------------------- the command line


def _error(capsys, *argv):
    code = main(["bisect", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_is_one_line_and_exit_2(repo, tmp_path, capsys):
    path, shas = repo
    at = ["--repo", str(path), "--out", str(tmp_path / "o")]
    for argv, says in (
        (["nosuchrev", shas[-1]], "GOOD: unknown revision 'nosuchrev'"),
        ([shas[0], "HEAD~99"], "BAD: unknown revision 'HEAD~99'"),
        ([shas[5], shas[2]], "is not an ancestor of BAD"),
        ([shas[3], shas[3]], "are the same commit"),
        ([shas[0], shas[-1], "--case", "nosuch/*"], "--case nosuch/*: matches none"),
        ([shas[0], shas[-1], "--max-steps", "0"], "--max-steps 0"),
    ):
        code, err = _error(capsys, *argv, *at)
        assert code == 2 and len(err.splitlines()) == 1 and says in err, err


def test_run_mode_refuses_a_dirty_tree_and_stops_git_bisect(repo, tmp_path, capsys):
    path, shas = repo
    (path / "f.txt").write_text("tracked\n")
    subprocess.run(["git", "-C", str(path), "add", "f.txt"], check=True)
    code, err = _error(capsys, shas[0], shas[-1], "--repo", str(path), "--run", "--case", CASE)
    assert code == 128 and "uncommitted changes" in err and "git bisect run stops" in err


def test_plan_prints_the_steps_and_an_estimate(repo, tmp_path, capsys):
    path, shas = repo
    assert main(["bisect", shas[0], shas[-1], "--repo", str(path), "--case", CASE, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "12 commit(s)" in out and "about 6 steps" in out and LABEL in out
    assert not (path / "results").exists()  # nothing ran, nothing written


# ---------------------------------------------------------------- one real bisection


def test_a_planted_extra_relu_is_found_in_a_real_history(tmp_path):
    """A clone of this repository, three commits on top, the second adding a ReLU to the
    hand-written step: its NumPy case bisected for real, in one process."""
    from bench import REPO

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "HEAD"], check=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    good = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    lesson = clone / "kernels" / "lesson.py"
    anchor = "            inputs.append(ops.relu(out))\n"  # not the experiment's plant: that one is held out
    for i in range(3):
        text = lesson.read_text() + f"# filler {i}\n"
        if i == 1:
            assert anchor in text
            text = text.replace(anchor, "            ops.relu(out)\n" + anchor, 1)  # an extra ReLU, dropped
        lesson.write_text(text)
        subprocess.run([*git, "commit", "-q", "-am", f"commit {i}"], check=True)
    shas = subprocess.run(
        [*git, "rev-list", "--reverse", f"{good}..HEAD"], capture_output=True, text=True
    ).stdout.split()
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "bisect", good, shas[-1], "--repo", str(clone), "--case", CASE,
         "--budget", "0.05", "--pairs", "2", "--out", str(out), "--json", str(tmp_path / "b.json")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads((tmp_path / "b.json").read_text())
    assert found["answer"] == "found" and found["by"] == "counters" and found["first_bad"]["sha"] == shas[1]
    assert found["pairing"] == "calls" and (out / bisect.STATE_FILE).exists()
    assert "relu 1 -> 2" in done.stdout
