"""Environments per requirement set (bench/venvs.py, run --env, the gate across a dependency change),
offline: uv resolves from a folder of tiny wheels (tests/wheels.py) and, for the runs that time
NumPy, from what installing this project left in uv's cache. No timing is asserted."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import venvs
from tests.wheels import local_index, wheel

REPO = Path(__file__).resolve().parent.parent
NEEDS = {name: ("0.0.1",) for name in venvs.WORKER_NEEDS}  # stand-ins: nothing here imports them


def bench(*args, cwd=REPO, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


@pytest.fixture(autouse=True)
def uv_here():
    try:
        venvs.uv()
    except venvs.VenvError as e:
        pytest.skip(str(e))


def test_a_typo_or_a_missing_file_is_refused_before_the_resolver():
    for spec, said in (
        ("tensorflow=2.20", "is not a pip requirement"),
        ("reqs/missing.txt", "no such file"),
        ("  ", "an empty requirement set"),
    ):
        with pytest.raises(venvs.VenvError, match=said):
            venvs.parse(spec)
    assert venvs.parse("tensorflow==2.20.0 'numpy<2'".replace("'", "")) == (
        "tensorflow==2.20.0 numpy<2",
        ["tensorflow==2.20.0", "numpy<2"],
    )


def test_a_set_is_built_once_and_then_taken_from_the_cache(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0", "2.0"), **NEEDS})
    heard = []
    env, _ = venvs.build("bbfake==1.0", heard.append)
    assert env.versions(["bbfake", "numpy", "absent"]) == {"bbfake": "1.0", "numpy": "0.0.1", "absent": None}
    assert env.path.parent == tmp_path / "envs" and len(heard) == 1
    out = subprocess.run(
        [env.python, "-c", "import bbfake, sys; print(bbfake.__version__, sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["1.0", str(env.path)]  # its own interpreter, its own packages
    again, _ = venvs.build("bbfake==1.0", heard.append)
    assert again == env and len(heard) == 1  # no second build
    other, _ = venvs.build("bbfake==2.0")
    assert other.key != env.key and [e.key for e in venvs.entries()] == [other.key, env.key]  # most recent first


def test_an_interrupted_build_is_never_used_but_rebuilt(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0",), **NEEDS})
    _, _, pins = venvs.resolve("bbfake==1.0")
    key = venvs.key_of(pins)
    half = tmp_path / "envs" / key  # as a build killed between the rename and ... nothing: no META
    (half / "bin").mkdir(parents=True)
    stale = tmp_path / "envs" / f"{key}{venvs.BUILDING}999999999"  # a build whose process is gone
    stale.mkdir()
    heard = []
    env, _ = venvs.build("bbfake==1.0", heard.append)
    assert heard and (env.path / venvs.META).exists() and not stale.exists()
    assert subprocess.run([env.python, "-c", "import bbfake"]).returncode == 0


def test_no_network_or_an_unknown_version_is_one_line_and_nothing_runs(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0",), **NEEDS})
    with pytest.raises(venvs.VenvError) as e:
        venvs.resolve("bbfake==9.9")
    assert "\n" not in str(e.value) and "bbfake==9.9" in str(e.value)
    out = tmp_path / "run"
    done = bench("run", "--env", "bbfake==1.0", "--env", "bbfake==9.9", "--framework", "numpy", "--quick", "--out", out)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "--env 'bbfake==9.9'" in line and "Traceback" not in done.stderr
    assert not out.exists() and not (tmp_path / "envs").exists()  # no folder made, nothing built
    for bad, said in (("bbfake=1.0", "not a pip requirement"), ("bbfake==1.0 bbfake==1.0", "same packages")):
        done = bench("run", "--env", "bbfake==1.0", "--env", bad, "--framework", "numpy", "--quick", "--out", out)
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_prune_keeps_the_most_recently_used_under_the_limit(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0", "2.0", "3.0"), **NEEDS})
    built = [venvs.build(f"bbfake=={v}")[0] for v in ("1.0", "2.0", "3.0")]
    (built[0].path / venvs.META).touch()  # used last
    sizes = {e.key: e.bytes for e in venvs.entries()}
    removed = venvs.prune(sizes[built[0].key] + sizes[built[2].key] + 1)
    assert [e.key for e in removed] == [built[1].key]
    listed = bench("env", "list")
    assert listed.returncode == 0 and "bbfake==1.0" in listed.stdout and "bbfake==2.0" not in listed.stdout
    assert "2 environment(s)" in listed.stdout
    pruned = bench("env", "prune", "--all")
    assert pruned.returncode == 0 and venvs.entries() == [] and "0 left" in pruned.stdout
    assert bench("env", "prune", "--max-gb", "-1").returncode == 2


def _installed(*dists):
    return " ".join(f"{d}=={importlib.metadata.version(d)}" for d in dists)


def test_a_run_times_each_case_in_each_environment_and_a_broken_one_fails_alone(monkeypatch, tmp_path):
    """NumPy's cases in two environments and a third where NumPy cannot import (a .pth file blocks
    it): the first two timed and named, the third's cases failed saying why, the report's section."""
    index = local_index(monkeypatch, tmp_path, {"bbfake": ("1.0",)}, own_cache=False)
    wheel(index, "bbbreak", "1.0", {"bbbreak.pth": "import sys; sys.modules['numpy'] = None\n"})
    core = _installed("numpy", "psutil", "ml-dtypes")
    try:
        venvs.resolve(core)
    except venvs.VenvError as e:
        pytest.skip(f"uv's cache does not hold this project's NumPy, psutil and ml-dtypes offline: {e}")
    out = tmp_path / "run"
    done = bench(
        "run",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "--size",
        "200,784,8",
        "--quick",
        "--out",
        out,
        "--env",
        core,
        "--env",
        f"{core} bbfake==1.0",
        "--env",
        f"{core} bbbreak==1.0",
    )
    assert done.returncode == 1, done.stderr[-2000:]  # a failed case
    recs = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    by_deps = {}
    for r in recs:
        by_deps.setdefault(r["deps"], []).append(r)
    assert set(by_deps) == {core, f"{core} bbfake==1.0", f"{core} bbbreak==1.0"}
    for deps in (core, f"{core} bbfake==1.0"):
        assert all(r["status"] == "ok" and r["samples_s"] for r in by_deps[deps])
        assert all(
            r["fingerprint"]["deps"]["name"] == deps
            and r["fingerprint"]["packages"]["numpy"] == importlib.metadata.version("numpy")
            for r in by_deps[deps]
        )
    broken = by_deps[f"{core} bbbreak==1.0"]
    assert broken and all(r["status"] == "failed" and "--env" in r["error"] and "bbbreak" in r["error"] for r in broken)
    report = (out / "report.md").read_text()
    assert "## Environments" in report and f"against {core} [95% CI]" in report
    assert (out / "plots" / "versions.png").exists()


def test_the_gate_builds_each_side_from_its_own_requirements(monkeypatch, tmp_path):
    """A commit that only bumps a pin: each side's processes run in an environment of its own
    requirements (the fake harness says which interpreter and which version it saw); a change that
    resolves to the same packages shares this environment."""
    from tests.test_gate import bench_gate, commit, git, harness

    local_index(monkeypatch, tmp_path, {"tensorflow": ("1.0", "2.0"), **NEEDS})
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    project = '[project]\nname = "x"\nversion = "0"\ndependencies = ["tensorflow=={}"]\n'
    commit(repo, {**harness(1.0), "pyproject.toml": project.format("1.0")}, "base")
    commit(repo, {"pyproject.toml": project.format("2.0")}, "bump tensorflow")
    done = bench_gate(repo, "--base", "HEAD~1", "--out", tmp_path / "runs", "--pairing", "processes")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dependencies changed (tensorflow 1.0 -> 2.0)" in done.stdout + done.stderr
    ran = {
        side: [json.loads((p / "ran.json").read_text()) for p in sorted((tmp_path / "runs").glob(f"{side}-*"))]
        for side in ("base", "candidate")
    }
    assert all(ran.values())
    for side, version in (("base", "1.0"), ("candidate", "2.0")):
        for r in ran[side]:
            exe = Path(r["python"])
            assert exe.is_relative_to(tmp_path / "envs") and r["tensorflow"] == version, r
    assert {Path(r["python"]) for r in ran["base"]}.isdisjoint(Path(r["python"]) for r in ran["candidate"])


def test_environments_are_cases_of_their_own_in_compare_export_and_history(tmp_path):
    """The same case in two environments: two cases wherever a case is keyed (compare matches
    each with its own, export names them apart, the history keeps a series each)."""
    from bench import export
    from bench.compare import Thresholds
    from bench.history.store import Store
    from bench.records import Record
    from tests.comparing import sides

    def rec(deps, ms, run_id="r1"):
        return Record(
            framework="tensorflow",
            step="manual",
            backend="xla",
            device="cpu",
            n=5000,
            m=784,
            nh=50,
            dtype="float32",
            deps=deps,
            status="ok",
            run_id=run_id,
            samples_s=(ms / 1e3,) * 10,
            fingerprint={
                "cpu_model": "Synthetic CPU",
                "machine": "x86_64",
                "frameworks": {"tensorflow": {"version": deps.split("==")[1]}},
            },
        )

    old, new = "tensorflow==2.20.0", "tensorflow==2.21.0"
    base, cand = [rec(old, 10.0), rec(new, 11.0)], [rec(old, 10.0, "r2"), rec(new, 11.0, "r2")]
    result = sides(base, cand, Thresholds(0.1))
    assert len(result.comparisons) == 2 and not result.only_base and not result.only_candidate
    assert all(c.ratio == pytest.approx(1.0) for c in result.comparisons)  # each against its own environment
    names = {export.benchmark_name(r.case) for r in base}
    assert len(names) == 2 and all("-deps=tensorflow==2.2" in n for n in names)
    store = Store(f"sqlite:///{tmp_path / 'history.sqlite'}", create=True)
    commit = {"sha": "a" * 40, "parent": "b" * 40, "time": 1.0, "branch": "main", "dirty": False}
    assert store.add(base, commit) == 2
    assert sorted(p["case"] for p in store.points()) == sorted(r.label for r in base)
    assert all(f"[{r.deps}]" in r.label for r in base)


def test_a_set_may_be_a_requirements_or_pyproject_file(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0", "2.0"), **NEEDS})
    reqs = tmp_path / "requirements-next.txt"
    reqs.write_text("# the next pins\nbbfake==2.0\n")
    env, _ = venvs.build(str(reqs))
    assert env.name == "requirements-next.txt" and env.versions(["bbfake"]) == {"bbfake": "2.0"}
    project = tmp_path / "proj" / "pyproject.toml"
    project.parent.mkdir()
    project.write_text('[project]\nname = "x"\nversion = "0"\ndependencies = ["bbfake<2"]\n')
    env, _ = venvs.build(str(project))
    assert env.name == "pyproject.toml" and env.versions(["bbfake"]) == {"bbfake": "1.0"}


def test_a_cache_that_is_a_file_is_one_line(monkeypatch, tmp_path):
    local_index(monkeypatch, tmp_path, {"bbfake": ("1.0",), **NEEDS})
    blocked = tmp_path / "cache-file"
    blocked.write_text("")
    monkeypatch.setenv("BENCH_ENV_CACHE", str(blocked))
    with pytest.raises(venvs.VenvError, match="environment cache .* File exists"):
        venvs.build("bbfake==1.0")
    listed = bench("env", "list")
    assert listed.returncode == 2 and "is a file, not a folder" in listed.stderr
