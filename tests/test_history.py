"""The history store on SQLite and on a real PostgreSQL server (started here when installed, else
skipped), idempotent and safe under concurrent writers; change points; the history commands; and the
dashboard in a real browser (skipped where Chromium or Playwright is missing)."""

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install -e '.')")
from bench import records  # noqa: E402
from bench.cli import main  # noqa: E402
from bench.history import changes  # noqa: E402
from bench.history.store import SCHEMA_VERSION, HistoryError, Store  # noqa: E402
from tests.history_helpers import git_repo, make_v1_store, run_records, series  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PGBIN = next(
    (
        Path(p)
        for p in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
        if (Path(p) / "initdb").exists()
    ),
    None,
)


# ---------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on a Unix socket (no TCP), for the session."""
    if PGBIN is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*as_postgres, str(PGBIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "bench"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            str(PGBIN / "pg_ctl"),
            "-D",
            str(folder / "data"),
            "-o",
            f"-p 54329 -k {folder} -c listen_addresses=''",
            "-l",
            str(folder / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://bench@/postgres?host={folder}&port=54329"
    finally:
        subprocess.run(
            [*as_postgres, str(PGBIN / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # a clean database for each test
        for table in ("results", "runs", "schema"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    engine.dispose()
    return url


COMMIT = {"sha": "a" * 40, "parent": "b" * 40, "time": 1_700_000_000.0, "branch": "main", "dirty": False}


def test_adding_a_run_twice_adds_nothing(db_url):
    store = Store(db_url, create=True)
    recs = run_records("a" * 40, 0, [0.01, 0.02, 0.03])
    assert store.add(recs, COMMIT) == 3
    assert store.add(recs, COMMIT) == 0
    assert Store(db_url).counts() == (1, 3)
    pts = store.points()
    assert len(pts) == 3 and pts[0]["commit_sha"] == "a" * 40 and pts[0]["samples_s"] == recs[0].samples_s
    assert pts[0]["machine"] == "x86_64 | Synthetic CPU | no GPU"


def test_a_complete_record_replaces_an_interrupted_one(db_url):
    store = Store(db_url, create=True)
    rec = run_records("a" * 40, 0, [0.01])[0]
    cut = replace(rec, samples_s=rec.samples_s[:3], rounds=rec.rounds[:3], stop_reason="interrupted")
    assert store.add([cut], COMMIT) == 1
    assert store.add([rec], COMMIT) == 1
    assert store.add([cut], COMMIT) == 0  # never the other way round
    (point,) = store.points()
    assert len(point["samples_s"]) == len(rec.samples_s)


def test_a_newer_schema_is_refused(db_url):
    store = Store(db_url, create=True)
    with store.engine.begin() as conn:
        conn.execute(store.schema.update().values(version=SCHEMA_VERSION + 1))
    with pytest.raises(HistoryError, match=f"newer backprop-bench \\(schema {SCHEMA_VERSION + 1}"):
        Store(db_url)


def test_a_schema_1_database_is_migrated_keeping_every_result(db_url):
    old = run_records("a" * 40, 0, [0.01, 0.02])
    make_v1_store(db_url, old, COMMIT)
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.execute(store.schema.select()).scalar_one() == SCHEMA_VERSION
    assert store.counts() == (1, 2)
    points = store.points()
    assert [p["samples_s"] for p in points] == [r.samples_s for r in old]
    assert all(p["tf32"] is False and p["cache"] == "warm" for p in points)
    assert all(p["model"] == "lesson" and p["loss_fn"] == "mse" for p in points)
    assert store.add(old, COMMIT) == 0  # still the same results: adding again adds nothing
    # the same case with TF32 on, a cold cache, another model or loss is a result of its own now
    variants = [
        replace(old[0], tf32=True),
        replace(old[0], cache="cold"),
        replace(old[0], model="mlp:784,50,50,1"),
        replace(old[0], loss_fn="xent"),
    ]
    assert store.add(variants, COMMIT) == 4 and Store(db_url).counts() == (1, 6)
    labels = {p["case"] for p in store.points()}
    assert {old[0].case.label, *(v.case.label for v in variants)} <= labels and len(labels) == 6


def test_bad_databases_are_one_line_errors(tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not an SQLite database file" * 100)
    for url, words in (
        (f"sqlite:///{corrupt}", "not an SQLite database"),
        (f"sqlite:///{tmp_path}", "is a folder"),
        ("postgresql://bench@127.0.0.1:1/nothing", "OperationalError"),
        ("mysql://x@y/z", "only SQLite and PostgreSQL"),
        ("not a url", "not a database URL"),
    ):
        with pytest.raises(HistoryError) as e:
            Store(url)
        assert words in str(e.value) and "\n" not in str(e.value), str(e.value)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("create table things (x int)").connection.commit()
    with pytest.raises(HistoryError, match="other tables"):
        Store(f"sqlite:///{other}")


def test_a_store_that_is_not_there_or_holds_nothing_fails_closed(tmp_path, monkeypatch):
    """A typo in the URL must never read as an empty history that passes: every command but init
    says so in one line, exit 2, and makes nothing."""
    missing = f"sqlite:///{tmp_path / 'typo.sqlite'}"
    for command in ("check", "show", "add"):
        code, out, err = cli("history", command, *(["x.jsonl"] if command == "add" else []), "--db", missing)
        assert code == 2 and "no history database at" in err and "history init" in err, (command, err)
    assert not (tmp_path / "typo.sqlite").exists()
    code, out, _ = cli("history", "init", "--db", missing)
    assert code == 0 and "ready (empty)" in out
    code, _, err = cli("history", "check", "--db", missing)
    assert code == 2 and "no history" in err
    # three slashes where four were meant: a relative path, inside the repository
    monkeypatch.chdir(REPO)
    code, _, err = cli("history", "init", "--db", "sqlite:///tmp/bench-history.sqlite")
    assert code == 2 and "a relative path" in err and "sqlite:////tmp/bench-history.sqlite" in err
    assert not (REPO / "tmp").exists()


def test_four_processes_adding_at_once_lose_nothing(db_url, tmp_path):
    """Four `history add` processes at once, each adding two runs and one run they all add."""
    repo = tmp_path / "repo"
    shas = git_repo(repo, 9)
    shared = tmp_path / "shared.jsonl"
    for r in run_records(shas[8], 8, [0.01, 0.02]):
        records.append(shared, r)
    paths = []
    for p in range(4):
        for k in range(2):
            path = tmp_path / f"run-{p}-{k}.jsonl"
            for r in run_records(shas[2 * p + k], 2 * p + k, [0.01, 0.02]):
                records.append(path, r)
            paths.append(path)
    bench = f"{sys.executable} -m bench history"  # each process makes the store if none is there yet, then adds
    procs = [
        subprocess.Popen(
            [
                "bash",
                "-c",
                f"{bench} init --db '{db_url}' && {bench} add {paths[2 * p]} {shared} "
                f"{paths[2 * p + 1]} --db '{db_url}' --repo {repo}",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert Store(db_url).counts() == (9, 18)


# ---------------------------------------------------------------- change points


@pytest.mark.parametrize("kind", ["step", "creep"])
def test_a_step_and_a_creep_are_found_at_their_first_commit(kind):
    values = series(
        200, 1, sigma=0.02, step_at=120 if kind == "step" else None, creep_at=60 if kind == "creep" else None, seed=3
    )[:, 0]
    (found,) = changes.find(values)
    if kind == "step":
        assert (found.start, found.end, found.kind) == (120, 120, "step")
        assert found.ratio == pytest.approx(1.10, abs=0.02)
    else:
        assert abs(found.start - 60) <= 1 and 68 <= found.end <= 70 and found.kind.startswith("creep")
        assert found.ratio == pytest.approx(1.02**10, abs=0.03)


def test_no_change_is_found_in_noise():
    for seed in range(5):
        assert changes.find(series(200, 1, sigma=0.03, seed=seed)[:, 0]) == []


def test_noise_ignores_the_change_itself():
    logs = np.log(series(200, 1, sigma=0.02, step_at=100, seed=1)[:, 0])
    assert changes.noise(logs) == pytest.approx(0.02, rel=0.3)


# ---------------------------------------------------------------- the commands


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def synthetic_history(tmp_path):
    """A repository of 60 commits, 3 cases, a +10% step at commit 40 of every case, in a SQLite store."""
    repo = tmp_path / "repo"
    shas = git_repo(repo, 60)
    medians = series(60, 3, sigma=0.01, step_at=40, seed=5)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    store = Store(url, create=True)
    for i, sha in enumerate(shas):
        store.add(
            run_records(sha, i, medians[i]),
            {
                "sha": sha,
                "parent": shas[i - 1] if i else None,
                "time": 1_700_000_000 + 3600 * i,
                "branch": "main",
                "dirty": False,
            },
        )
    return url, repo, shas


def test_show_check_export_and_dashboard(synthetic_history, tmp_path):
    url, repo, shas = synthetic_history
    code, out, err = cli("history", "show", "--db", url, "--repo", repo)
    assert code == 0, err
    assert out.count("change: +") == 3 and f"step) at {shas[40][:10]}" in out
    code, out, _ = cli("history", "check", "--db", url, "--last", "25", "--threshold", "5%")
    assert code == 1 and out.count("SLOWER:") == 3
    # each names the bisection from the last commit measured before it to the first after
    assert out.count(f"bisect: python -m bench bisect {shas[39][:12]} {shas[40][:12]} --framework numpy ") == 3
    code, out, _ = cli("history", "check", "--db", url, "--last", "10", "--threshold", "5%")
    assert code == 0 and "passing" in out
    code, out, _ = cli("history", "check", "--db", url, "--last", "25", "--threshold", "15%")
    assert code == 0
    code, out, _ = cli("history", "export", "--format", "github-action-benchmark", "--db", url, "--repo", repo)
    data = json.loads(out[out.index("{") :])
    (suite,) = data["entries"].values()
    assert [e["commit"]["id"] for e in suite] == shas and len(suite[0]["benches"]) == 3
    assert suite[0]["tool"] == "customSmallerIsBetter" and suite[0]["commit"]["message"] == "commit 0"
    code, out, err = cli("history", "dashboard", "--db", url, "--out", tmp_path / "dash")
    assert code == 0, err
    page = (tmp_path / "dash" / "index.html").read_text()
    assert page.count("<svg") == 3 and page.count('<section id="series-') == 3 and "+10." in page
    import re

    assert "<script" not in page and not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)|url\(\s*['\"]?https?:", page)


def test_check_writes_its_summary_and_json_for_ci(synthetic_history, tmp_path, monkeypatch):
    """--summary: the verdict as its heading, then the slowdowns that fail it; appended to
    $GITHUB_STEP_SUMMARY too. --json: each slowdown's series, ratio, kind and commits."""
    url, repo, shas = synthetic_history
    page, md, js = tmp_path / "page.md", tmp_path / "history.md", tmp_path / "history.json"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(page))
    code, out, err = cli(
        "history", "check", "--db", url, "--last", "25", "--threshold", "5%", "--summary", md, "--json", js
    )
    assert code == 1 and out.count("SLOWER:") == 3, err
    summary = md.read_text()
    assert summary.startswith("## History check: 3 slowdown(s)\n") and page.read_text() == "\n" + summary
    assert "**Slowdowns (failing)**" in summary and summary.count(f"(slower, step) at {shas[40][:10]}") == 3
    assert "**history check: 3 slowdown(s) over 5% among the last 25 commits**" in summary
    data = json.loads(js.read_text())
    assert data["verdict"] == "failed" and data["failed"] and data["threshold"] == 0.05 and data["last"] == 25
    assert [(d["first"], d["last"], d["kind"]) for d in data["slowdowns"]] == [(shas[40], shas[40], "step")] * 3
    assert all(1.05 < d["ratio"] < 1.15 for d in data["slowdowns"]) and data["work_changes"] == []
    assert data["summary"] == out.strip().splitlines()[-1] and json.loads(json.dumps(data, allow_nan=False)) == data
    code, out, _ = cli("history", "check", "--db", url, "--last", "10", "--threshold", "5%", "--summary", md)
    assert code == 0 and md.read_text().startswith("## History check: passing\n")
    assert page.read_text().count("## History check:") == 2


def test_a_run_outside_a_git_checkout_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "run.jsonl"
    for r in run_records("a" * 40, 0, [0.01]):
        records.append(path, replace(r, fingerprint={**r.fingerprint, "git_commit": None}))
    good = tmp_path / "good.jsonl"
    repo = tmp_path / "repo"
    shas = git_repo(repo, 1)
    for r in run_records(shas[0], 0, [0.01]):
        records.append(good, r)
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    Store(url, create=True)
    code, _, err = cli("history", "add", good, path, "--db", url, "--repo", repo)
    assert code == 2 and "name no git commit" in err and len(err.strip().splitlines()) == 1
    assert Store(url).counts() == (0, 0)  # the good run was not added either: nothing half written


def test_run_with_history_adds_each_case_as_it_is_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    Store(url, create=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--quick",
            "--framework",
            "numpy",
            "--size",
            "300,784,8",
            "--out",
            str(tmp_path / "run"),
            "--history",
            url,
            "--no-report",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert Store(url).counts() == (1, 2)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--quick",
            "--framework",
            "numpy",
            "--out",
            str(tmp_path / "run2"),
            "--history",
            "postgresql://x@127.0.0.1:1/y",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "OperationalError" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run2" / "records.jsonl").exists()


def test_the_dashboard_renders_in_a_real_browser(synthetic_history, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium here (apt-get install chromium; .ci/run does)")
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    url, _, _ = synthetic_history
    assert cli("history", "dashboard", "--db", url, "--out", tmp_path / "dash")[0] == 0
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.goto(f"file://{tmp_path / 'dash' / 'index.html'}")
        sizes = page.eval_on_selector_all(
            "figure svg",
            "els => els.map(e => [e.getBoundingClientRect().width, "
            "e.getBoundingClientRect().height, e.querySelectorAll('path').length])",
        )
        rows = page.eval_on_selector_all("table tbody tr", "els => els.length")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        browser.close()
    assert errors == []
    assert rows == 3 and len(sizes) == 3 and all(w > 300 and h > 100 and paths > 10 for w, h, paths in sizes)


def history_rows(medians, gflops):
    """A store's rows for one case on one machine, a commit each, with each run's median and ceiling."""
    return [
        {
            "case": "c",
            "machine": "m",
            "commit_sha": f"{i:040x}",
            "commit_time": i,
            "branch": "main",
            "median_s": float(median),
            "samples_s": (float(median),) * 5,
            "run_id": f"r{i}",
            "source": None,
            "counters": {},
            "gemm_gflops": float(g),
        }
        for i, (median, g) in enumerate(zip(medians, gflops))
    ]


def test_change_points_run_on_the_ceiling_scaled_medians_where_those_are_quieter():
    """A machine whose speed wanders run to run slows a run's GEMM ceiling as much as its cases: the
    medians scaled by each run's ceiling cancel that, show the +10% step the raw medians hide, and
    are chosen; where the ceiling itself is the noisy one, the medians are kept."""
    from bench.history import series as history_series

    rng = np.random.default_rng(4)
    n, step_at = 40, 25
    speed = np.exp(rng.normal(0, 0.15, n))  # the machine, run to run
    work = np.where(np.arange(n) >= step_at, 1.10, 1.0)

    rows = history_rows
    (s,) = history_series.build(rows(0.01 * work * speed, 100.0 / speed))
    assert s.basis == "ceiling"
    (found,) = s.changes
    assert found.start == step_at and found.ratio == pytest.approx(1.10, abs=0.03)
    assert changes.find(0.01 * work * speed) == []  # the raw medians alone miss it
    (quiet,) = history_series.build(rows(0.01 * work, 100.0 * speed))
    assert quiet.basis == "median" and [c.start for c in quiet.changes] == [step_at]


def test_change_points_run_on_the_ratios_to_the_parent_where_each_commit_was_paired_with_it():
    """A machine whose speed wanders run to run while its GEMM ceiling does not follow: neither the
    medians nor the ceiling-scaled medians show the +10% step, but each commit's ratio to its
    parent's steps timed in the same process does, at its commit, and nothing else; a few commits
    without a pairing (a harness change, gated in separate processes) fall back on their medians."""
    from bench.history import series as history_series

    rng = np.random.default_rng(7)
    n, step_at = 30, 15
    speed = np.exp(rng.normal(0, 0.15, n))
    work = np.where(np.arange(n) >= step_at, 1.10, 1.0)
    medians = 0.01 * work * speed
    gflops = 100.0 * np.exp(rng.normal(0, 0.15, n))
    unpaired = {4, 21}

    def rows():
        for i, row in enumerate(history_rows(medians, gflops)):
            ratio = float(work[i] / work[i - 1] * np.exp(rng.normal(0, 0.015))) if i else None
            yield {
                **row,
                **(
                    {
                        "parent_sha": f"{i - 1:040x}",
                        "parent_ratio": ratio,
                        "parent_lo": ratio / 1.03,
                        "parent_hi": ratio * 1.03,
                    }
                    if i and i not in unpaired
                    else {}
                ),
            }

    (s,) = history_series.build(list(rows()))
    assert s.basis == "parent"
    (found,) = s.changes
    assert (found.start, found.end) == (step_at, step_at) and found.ratio == pytest.approx(1.10, abs=0.04)
    assert s.points[step_at].parent[0] == s.points[step_at - 1].commit
    assert changes.find(medians) == [] and changes.find(medians * gflops / 100) == []
    # a ratio against a commit that is not the point before it is not a link in the chain
    broken = [{**r, "parent_sha": "f" * 40} if "parent_sha" in r else r for r in rows()]
    assert history_series.build(broken)[0].basis != "parent"


def test_changes_in_paired_increments_a_step_a_creep_and_none():
    rng = np.random.default_rng(2)
    levels = np.full(120, 0.01)
    quiet = rng.normal(0, 0.02, 119)
    assert changes.find_increments(levels, quiet, np.full(119, 0.02)) == []
    step = quiet.copy()
    step[70] += np.log(1.10)
    (found,) = changes.find_increments(levels, step, np.full(119, 0.02))
    assert (found.start, found.end, found.kind) == (71, 71, "step") and found.ratio == pytest.approx(1.10, abs=0.05)
    creep = rng.normal(0, 0.005, 119)
    creep[40:50] += np.log(1.02)
    (found,) = changes.find_increments(levels, creep, np.full(119, 0.005))
    assert abs(found.start - 41) <= 1 and abs(found.end - 50) <= 1 and found.ratio == pytest.approx(1.02**10, abs=0.03)
    # intervals that claim more than the series shows are widened by its spread: no false alarms
    assert changes.find_increments(levels, quiet, np.full(119, 0.002)) == []
    # a pairing biased by -1.5% in every commit (one copy placed better) adds up to no creep
    biased = quiet - 0.015
    assert changes.find_increments(levels, biased, np.full(119, 0.02)) == []
    biased[70] += np.log(1.10)  # and a step on top of it is still the step, at its size
    (found,) = changes.find_increments(levels, biased, np.full(119, 0.02))
    assert (found.start, found.end) == (71, 71) and found.ratio == pytest.approx(np.exp(biased[70]))


def test_history_add_paired_base_stores_each_case_against_the_parent(tmp_path):
    """`history add RUN --paired-base DIR`: the ratio of each case to the base side of the same run
    (paired by round) is stored with it when the base's steps are the run's parent commit's; another
    commit, another run, or a folder that is no gate side is refused in one line, nothing written."""
    repo = tmp_path / "repo"
    shas = git_repo(repo, 2)
    cand, base = tmp_path / "gate" / "candidate", tmp_path / "gate" / "base"
    for r in run_records(shas[1], 1, [0.011, 0.02]):
        records.append(cand / "records.jsonl", r)
    for r in run_records(shas[1], 1, [0.010, 0.02]):  # the same run: the same run id and rounds
        records.append(base / "records.jsonl", r)

    def side(kernels):
        (base / "side.json").write_text(json.dumps({"side": "base", "kernels": kernels, "dirty": False}))

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    Store(url, create=True)
    side(shas[1])
    code, _, err = cli("history", "add", cand, "--paired-base", base, "--db", url, "--repo", repo)
    assert code == 2 and "not the parent of" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("history", "add", cand, "--paired-base", tmp_path, "--db", url, "--repo", repo)
    assert code == 2 and "not a side of a one-process gate" in err
    assert Store(url).counts() == (0, 0)
    side(shas[0])
    code, out, err = cli("history", "add", cand, "--paired-base", base, "--db", url, "--repo", repo)
    assert code == 0, err
    got = {p["n"]: p for p in Store(url).points()}
    assert got[1000]["parent_sha"] == shas[0] and got[1000]["parent_ratio"] == pytest.approx(1.1, rel=0.01)
    assert got[1000]["parent_lo"] <= got[1000]["parent_ratio"] <= got[1000]["parent_hi"]
    assert got[2000]["parent_ratio"] == pytest.approx(1.0, rel=0.01)
    other = tmp_path / "other"
    for r in run_records(shas[1], 2, [0.011]):  # another run id
        records.append(other / "records.jsonl", r)
    code, _, err = cli("history", "add", other, "--paired-base", base, "--db", url, "--repo", repo)
    assert code == 2 and "not the same run" in err


def test_thread_settings_are_part_of_a_series_machine():
    from bench.machine import Machine

    fp = {"machine": "x86_64", "cpu_model": "Fake CPU", "gpus": [], "env": {"TF_NUM_INTRAOP_THREADS": None}}
    one = {**fp, "env": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}}
    assert Machine.of(fp).series_key == "x86_64 | Fake CPU | no GPU"  # a default run, as before
    assert Machine.of(one).series_key == "x86_64 | Fake CPU | no GPU | 1 thread(s)"  # the gate's: another series


# ---------------------------------------------------------------- slow runs: outliers, unconfirmed, the canary


def test_a_lone_slow_run_is_an_outlier_not_a_change():
    """One commit's run 50% slower, the next back: no change (neither a step nor a creep back), one
    outlier at its commit; the same at the newest commit is unconfirmed, not a change."""
    values = series(60, 1, sigma=0.02, seed=11)[:, 0]
    slow = values.copy()
    slow[30] *= 1.5
    found = changes.detect(slow)
    assert found.changes == ()
    (e,) = found.excursions
    assert (e.start, e.end, e.kind) == (30, 30, "outlier") and e.ratio == pytest.approx(1.5, abs=0.1)
    assert found.levels[30] == pytest.approx(np.sqrt(values[29] * values[31]))  # its neighbours' level
    newest = values.copy()
    newest[-1] *= 1.5
    found = changes.detect(newest)
    assert found.changes == ()
    (e,) = found.excursions
    assert (e.start, e.end, e.kind) == (59, 59, "unconfirmed") and e.ratio == pytest.approx(1.5, abs=0.1)
    assert changes.detect(values) == changes.Found((), (), tuple(values))  # nothing set apart in plain noise


@pytest.mark.parametrize("held", [1, 2, 3, 4, 10])
def test_a_step_is_unconfirmed_until_its_level_holds_then_a_step_at_its_commit(held):
    """A real +20% step `held` commits before the end: the change points need its level to hold for
    MIN_SEGMENT commits (the step's and two more); until then the commits are unconfirmed, from its
    commit; after that it is a step at its commit, nothing set apart."""
    values = series(60, 1, sigma=0.02, seed=12)[:, 0]
    values[60 - held :] *= 1.2
    found = changes.detect(values)
    if held < changes.MIN_SEGMENT:
        assert found.changes == ()
        (e,) = found.excursions
        assert (e.start, e.end, e.kind) == (60 - held, 59, "unconfirmed")
    else:
        (ch,) = found.changes
        assert (ch.start, ch.end, ch.kind) == (60 - held, 60 - held, "step")
        assert ch.ratio == pytest.approx(1.2, abs=0.05)
        assert found.excursions == ()


@pytest.mark.parametrize("kind", ["step", "creep"])
def test_setting_excursions_apart_finds_what_find_finds(kind):
    """The history's detector (detect) finds the step and the creep of the tests above as find does."""
    values = series(
        200, 1, sigma=0.02, step_at=120 if kind == "step" else None, creep_at=60 if kind == "creep" else None, seed=3
    )[:, 0]
    assert changes.detect(values).changes == tuple(changes.find(values))
    for seed in range(5):
        assert changes.detect(series(200, 1, sigma=0.03, seed=seed)[:, 0]).changes == ()


def canary_rows(medians, canaries, gflops):
    return [{**row, "canary_s": float(c)} for row, c in zip(history_rows(medians, gflops), canaries)]


def test_change_points_run_on_the_canary_scaled_medians_where_those_are_quieter():
    """A machine whose speed wanders run to run, its GEMM ceiling timed apart not following it, and
    one run slow in every case (a neighbour for a minute): the canary, timed in the cases' rounds,
    followed both, so the medians over each run's canary are chosen, the slow run is no change and
    no outlier, and a +10% step is found at its commit; runs without a canary leave the basis out."""
    from bench.history import series as history_series

    rng = np.random.default_rng(5)
    n, slow_at, step_at = 40, 17, 28
    speed = np.exp(rng.normal(0, 0.15, n))
    speed[slow_at] *= 1.6  # the slow minute: cases and canary alike
    canary = 0.004 * speed * np.exp(rng.normal(0, 0.01, n))
    gflops = 100.0 * np.exp(rng.normal(0, 0.15, n))
    (flat,) = history_series.build(canary_rows(0.01 * speed, canary, gflops))
    assert flat.basis == "canary" and flat.changes == () and flat.excursions == ()
    work = np.where(np.arange(n) >= step_at, 1.10, 1.0)
    (s,) = history_series.build(canary_rows(0.01 * work * speed, canary, gflops))
    assert s.basis == "canary" and s.excursions == ()
    (found,) = s.changes
    assert (found.start, found.end) == (step_at, step_at) and found.ratio == pytest.approx(1.10, abs=0.03)
    old = canary_rows(0.01 * work * speed, canary, gflops)
    old[3]["canary_s"] = None  # a run recorded before the canary
    (without,) = history_series.build(old)
    assert without.basis != "canary"


def test_show_check_and_dashboard_say_outliers_and_unconfirmed_commits(tmp_path):
    """A lone slow run is an outlier and the newest commit's slow run is unconfirmed, in `show`,
    `check` (which passes on both) and the dashboard (marked on the plot, explained in the caption)."""
    repo = tmp_path / "repo"
    shas = git_repo(repo, 30)
    medians = series(30, 2, sigma=0.01, seed=6)
    medians[12] *= 1.5
    medians[29] *= 1.5
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    store = Store(url, create=True)
    for i, sha in enumerate(shas):
        store.add(
            run_records(sha, i, medians[i]),
            {
                "sha": sha,
                "parent": shas[i - 1] if i else None,
                "time": 1_700_000_000 + 3600 * i,
                "branch": "main",
                "dirty": False,
            },
        )
    code, out, err = cli("history", "show", "--db", url, "--repo", repo)
    assert code == 0, err
    assert "change:" not in out and out.count("  outlier: +4") == 2 and f"at {shas[12][:10]} (one commit" in out
    assert out.count("  unconfirmed: +") == 2 and f"at {shas[29][:10]} (the newest commit" in out
    code, out, _ = cli("history", "check", "--db", url, "--last", "20", "--threshold", "5%")
    assert code == 0 and "SLOWER" not in out
    assert "2 outlier(s), 2 unconfirmed (not failing until confirmed); passing" in out
    code, _, _ = cli(
        "history", "check", "--db", url, "--last", "20", "--threshold", "5%", "--json", tmp_path / "c.json"
    )
    apart = json.loads((tmp_path / "c.json").read_text())["set_apart"]
    assert code == 0 and sorted(a["kind"] for a in apart) == ["outlier", "outlier", "unconfirmed", "unconfirmed"]
    assert {a["first"] for a in apart if a["kind"] == "outlier"} == {shas[12]}
    code, _, err = cli("history", "dashboard", "--db", url, "--out", tmp_path / "dash")
    assert code == 0, err
    page = (tmp_path / "dash" / "index.html").read_text()
    import re

    marked = [len(re.findall(f"class=[\"']{kind}", page)) for kind in ("outlier", "unconfirmed")]
    assert marked == [4, 4]  # two series, each in the table and in its section
    assert "orange circle, an outlier" in page and page.count("outlier: one commit undone by the next") == 2


def test_a_schema_5_database_gains_the_canary_column_and_keeps_its_results(db_url):
    """Schema 6 adds each result's canary median: rows added before keep none, new ones carry it."""
    import sqlalchemy as sa

    store = Store(db_url, create=True)
    old = run_records("a" * 40, 0, [0.01, 0.02])
    store.add(old, COMMIT)
    with store.engine.begin() as conn:  # as schema 5 left it
        conn.execute(sa.text("ALTER TABLE results DROP COLUMN canary_s"))
        conn.execute(store.schema.update().values(version=5))
    store.engine.dispose()
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.execute(store.schema.select()).scalar_one() == SCHEMA_VERSION
    assert [p["canary_s"] for p in store.points()] == [None, None]
    new = run_records("c" * 40, 1, [0.01], canary=0.004)
    assert store.add(new, {**COMMIT, "sha": "c" * 40, "time": COMMIT["time"] + 1}) == 1
    assert [p["canary_s"] for p in store.points()] == [None, None, pytest.approx(0.004)]


def test_simulate_runs_the_history_detector_and_counts_a_slow_run_as_an_outlier():
    from bench.history import simulate

    noise = {"c": np.random.default_rng(8).normal(0, 0.02, 50)}
    outcomes = {o.scenario: o for o in simulate.run(noise, commits=80, cases=1, series=4)}
    assert list(outcomes) == list(simulate.SCENARIOS)
    slow = outcomes["outlier"]
    assert slow.detected == slow.series == 4 and slow.false_alarms == 0 and slow.offsets == (0,) * 4
    assert outcomes["step"].detected == 4 and outcomes["none"].false_alarms == 0


def test_an_outlier_in_a_short_series_leaves_the_noise_the_search_measures_in():
    """Seven commits, the second a run twice as fast (its GEMM ceiling was off): an outlier, and no
    change; its replacement (its neighbours' level) must not shrink the noise the search measures in."""
    values = [25.38, 11.41, 22.7, 21.5, 22.22, 21.22, 24.57]
    found = changes.detect(values)
    assert found.changes == () and [(e.start, e.kind) for e in found.excursions] == [(1, "outlier")]
