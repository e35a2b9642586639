"""The gate's plumbing on throwaway git repositories whose harness is a tiny fake (no TensorFlow):
worktrees made and removed, A B B A order, pairing, the nothing-to-compare cases, exit codes,
A/A storage and stored baselines normalised by the GEMM ceiling. No timing is asserted."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench import compare, defaults, gate, noise, records
from bench import git as bench_git
from bench.gate import baselines, experiments, one_process, plan, settings
from bench.gate.processes import interleave, order, run_args
from bench.machine import Machine
from bench.records import CaseKey, Record
from tests.comparing import case, sides

REPO = Path(__file__).resolve().parent.parent

# A stand-in for `python -m bench run`: records whose times are 10 ms x speed.txt (with a little
# noise seeded by the output folder), a GEMM ceiling from gflops.txt, and what it was run with.
FAKE_HARNESS = textwrap.dedent("""
    import importlib.metadata, json, os, pathlib, random, sys
    tree = pathlib.Path(__file__).resolve().parent.parent
    flag = lambda name: (tree / name).exists()
    args = sys.argv[1:]
    if "--help" in args:
        print("usage: run [--quick]" + ("" if flag("nobudget.txt") else " [--budget SECONDS]"))
        sys.exit(0)
    if flag("crash.txt"):
        raise RuntimeError("the harness is broken")
    if flag("reject.txt"):
        print("python -m bench: error: unrecognized arguments: --budget", file=sys.stderr)
        sys.exit(2)
    out = pathlib.Path(args[args.index("--out") + 1])
    out.mkdir(parents=True)
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        version = None
    (out / "ran.json").write_text(json.dumps({"tree": str(tree), "args": args, "python": sys.executable,
                                              "tensorflow": version,
                                              "threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}))
    speed = float((tree / "speed.txt").read_text())
    gflops = float((tree / "gflops.txt").read_text()) if flag("gflops.txt") else 100.0
    rng = random.Random(out.name)
    env = {"cpu_model": "Fake CPU", "machine": "x86_64", "gpus": [], "frameworks": {"tensorflow": {"version": "0"}},
           "host_id": "fakehost"}
    with open(out / "records.jsonl", "w") as f:
        for step in ("manual", "tape"):
            level = 0.010 * speed * (1 + rng.uniform(-0.01, 0.01))
            f.write(json.dumps({"framework": "tensorflow", "step": step, "backend": "function", "device": "cpu",
                                "n": 5000, "m": 784, "nh": 50, "dtype": "float32", "status": "ok",
                                "run_id": out.name, "samples_s": [level * (1 + k / 100) for k in range(5)],
                                "ceilings": {"gemm_gflops": gflops}, "env": env}) + "\\n")
""")


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def commit(repo, files, message):
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message)


def harness(speed, **flags):
    return {
        "bench/__init__.py": "",
        "bench/__main__.py": FAKE_HARNESS,
        "speed.txt": str(speed),
        **{f"{name}.txt": "" for name in flags},
    }


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


def bench_gate(repo, *args, aa_file=None, env=None):
    aa_file = aa_file or repo.parent / "aa.json"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "gate",
            "--tree",
            str(repo),
            "--pairs",
            "3",
            "--aa-file",
            str(aa_file),
            *map(str, args),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def worktrees(repo):
    return [line for line in git(repo, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


# ---------------------------------------------------------------- pieces


def test_order_rotates():
    assert [order("ab", i) for i in range(4)] == [list("ab"), list("ba"), list("ab"), list("ba")]
    assert [order("abc", i) for i in range(3)] == [list("abc"), list("bca"), list("cab")]


def test_interleave_runs_every_tree_once_a_round(tmp_path):
    calls = []

    def runner(tree, out, args, extra_env):
        calls.append((tree, out.name, tuple(args), extra_env))
        return gate.Process(str(tree), 0, (), 0.0)

    got = interleave(
        {"base": "A", "candidate": "B"}, 3, ["run"], tmp_path, runner, progress=lambda line: None, extra_env={"X": "1"}
    )
    assert [c[:2] for c in calls] == [
        ("A", "base-0"),
        ("B", "candidate-0"),
        ("B", "candidate-1"),
        ("A", "base-1"),
        ("A", "base-2"),
        ("B", "candidate-2"),
    ]
    assert [len(v) for v in got.values()] == [3, 3] and all(c[3] == {"X": "1"} for c in calls)


def test_run_args_use_budget_only_where_every_tree_accepts_it():
    spec = gate.RunSpec(steps=("manual",), backends=("xla",), device="cpu", budget_s=0.25)
    assert run_args(spec, ["a", "b"], probe=lambda tree, flag: True)[:3] == ["run", "--budget", "0.25"]
    assert run_args(spec, ["a", "b"], probe=lambda tree, flag: tree == "a")[:2] == ["run", "--quick"]
    assert "--no-report" in run_args(spec, ["a", "b"], probe=lambda tree, flag: True)  # records are all it reads
    assert "--no-report" not in run_args(
        spec, ["a", "b"], probe=lambda tree, flag: flag != "--no-report" or tree == "a"
    )
    assert spec.args()[3:] == [
        "--framework",
        "tensorflow",
        "--size",
        "5000,784,50",
        "--step",
        "manual",
        "--backend",
        "xla",
        "--device",
        "cpu",
    ]
    assert spec.variables()["TF_NUM_INTRAOP_THREADS"] == "1" and gate.RunSpec(threads=0).variables() == {}
    bound = gate.RunSpec(pin=(1,))  # bound on both sides, or on neither
    assert run_args(bound, ["a", "b"], probe=lambda tree, flag: True)[3:5] == ["--no-report", "--pin"]
    assert "--pin" not in run_args(bound, ["a", "b"], probe=lambda tree, flag: flag != "--pin" or tree == "a")


def test_rate_ci():
    lo, hi = experiments.rate_ci(1, 20)
    assert 0 < lo < 0.05 < hi < 0.3
    assert experiments.rate_ci(0, 20)[0] == pytest.approx(0.0, abs=1e-12) and experiments.rate_ci(0, 0) == (0.0, 1.0)


def test_identity_key_is_a_readable_file_name():
    fp = {
        "machine": "x86_64",
        "cpu_model": "Intel(R) Xeon(R) Platinum 8488C",
        "gpus": [{"name": "NVIDIA H100 80GB HBM3"}],
        "frameworks": {"tensorflow": {"version": "2.21.0"}},
    }
    assert Machine.of(fp).baseline_key == "x86_64-intel-xeon-platinum-8488c-nvidia-h100-80gb-hbm3-tensorflow-2.21.0"


def test_gemm_scale_expresses_times_at_the_baselines_speed():
    def r(gflops, device="cpu"):
        return Record(
            framework="tensorflow",
            step="manual",
            backend="xla",
            device=device,
            n=1,
            m=1,
            nh=1,
            dtype="float32",
            status="ok",
            ceilings={"gemm_gflops": gflops},
        )

    scale = compare.ceiling_scale([r(90.0), r(100.0), r(110.0), r(1000.0, "gpu")])
    assert scale(r(200.0)) == pytest.approx(2.0) and scale(r(500.0, "gpu")) == pytest.approx(0.5)
    assert compare.ceiling_scale([r(None)]) is None


def test_find_baseline_picks_this_machine(tmp_path, monkeypatch):
    from bench import records

    mine = {"cpu_model": "Mine", "machine": "x86_64", "gpus": []}
    for name, fp in (("other.jsonl", {**mine, "cpu_model": "Other"}), ("mine.jsonl", mine)):
        records.append(
            tmp_path / name,
            Record(
                framework="tensorflow",
                step="manual",
                backend="xla",
                device="cpu",
                n=1,
                m=1,
                nh=1,
                dtype="float32",
                status="ok",
                fingerprint=fp,
                samples_s=(0.01,),
            ),
        )
    monkeypatch.setattr(baselines.fingerprint, "collect", lambda: mine)
    assert baselines.find_baseline(tmp_path) == tmp_path / "mine.jsonl"
    monkeypatch.setattr(baselines.fingerprint, "collect", lambda: {**mine, "cpu_model": "Third"})
    with pytest.raises(gate.NothingToCompare, match="no baseline for this machine"):
        baselines.find_baseline(tmp_path)


def test_experiments_are_stored_by_machine(tmp_path):
    spec, t = gate.RunSpec(), compare.Thresholds()
    path = tmp_path / "aa.json"
    fp = {"cpu_model": "Fake CPU", "machine": "x86_64", "frameworks": {"tensorflow": {"version": "0"}}, "host_id": "h"}
    assert "not measured" in experiments.rate_line(noise.load(path), fp, spec, 4, t)
    entry = {
        **experiments.settings(spec, 4, t),
        "runs": 20,
        "flagged": 1,
        "rate": 0.05,
        "rate_ci95": [0.01, 0.24],
        "measured_utc": "2026-01-01T00:00:00+00:00",
    }
    noise.store(path, fp, "aa", entry)
    detection = {
        **experiments.settings(spec, 4, t),
        "runs": 20,
        "flagged": 20,
        "slowdown": 0.25,
        "measured_utc": "2026-01-02T00:00:00+00:00",
    }
    noise.store(path, fp, "detection", detection)
    line = experiments.rate_line(noise.load(path), fp, spec, 4, t)
    assert "1/20 runs flagged (5%, 95% CI 1%-24%)" in line and "+25% slowdown was flagged in 20/20" in line
    assert "measured 2026-01-01" in line and "measured 2026-01-02" in line and "other settings" not in line
    assert "other settings: pairs differ" in experiments.rate_line(noise.load(path), fp, spec, 6, t)
    # a detection rate measured at another threshold says so, though the A/A beside it is current
    noise.store(path, fp, "detection", {**detection, "threshold": 0.1})
    aa_part, det_part = experiments.rate_line(noise.load(path), fp, spec, 4, t).split("; a +25%")
    assert "other settings" not in aa_part and det_part.endswith("(with other settings: threshold differ)")


def test_only_process_pairs_store_a_spread_between_processes():
    """The spread of a case's median between processes (what `compare` widens unpaired runs by) comes
    from process pairs; a one-process gate's two sides share one process, so its A/A stores none."""
    from bench.compare import Result
    from bench.gate.outcome import Outcome
    from bench.gate.processes import Process

    def rec(t):
        return Record(
            framework="numpy",
            step="manual",
            backend="eager",
            device="cpu",
            n=300,
            m=784,
            nh=8,
            dtype="float32",
            status="ok",
            run_id="r",
            samples_s=(t,) * 5,
        )

    def outcome(pairing, ratios):  # one outcome a ratio: the candidate's median that much of the base's
        return [
            Outcome(
                Result((), (), ()),
                {"base": [Process("b", 0, (rec(0.01),), 1.0)], "candidate": [Process("c", 0, (rec(0.01 * r),), 1.0)]},
                pairing=pairing,
            )
            for r in ratios
        ]

    ratios = [1.05, 0.97, 1.02, 0.95]
    spec, t = gate.RunSpec(), compare.Thresholds()
    assert experiments.experiment_entry(outcome("processes", ratios), spec, 4, t, "")["run_sd_log"] > 0
    assert "run_sd_log" not in experiments.experiment_entry(outcome("calls", ratios), spec, 4, t, "")


def test_separate_runs_noise_is_the_stored_spread_only_where_it_exceeds_the_default(tmp_path):
    """The stored A/A spread is of back-to-back one-thread processes: a floor for runs made apart,
    so `compare` and a stored baseline widen by it only where it is above the default, and say so."""
    path = tmp_path / "aa.json"
    fp = {"cpu_model": "Fake CPU", "machine": "x86_64", "frameworks": {"tensorflow": {"version": "0"}}, "host_id": "h"}
    assert noise.run_noise(noise.load(path), fp) == (
        defaults.RUN_SD,
        pytest.approx("the default: not measured on this machine (python -m bench gate --aa 20 measures it)"),
    )
    noise.store(path, fp, "aa", {"run_sd_log": 0.04, "measured_utc": "2026-01-01T00:00:00+00:00"})
    sd, where = noise.run_noise(noise.load(path), fp)
    assert sd == defaults.RUN_SD and "measured sd 4% between back-to-back one-thread processes" in where
    noise.store(path, fp, "aa", {"run_sd_log": 0.2, "measured_utc": "2026-01-01T00:00:00+00:00"})
    assert noise.run_noise(noise.load(path), fp) == (0.2, "this machine's A/A experiment of 2026-01-01")


def test_an_aa_run_whose_counters_fail_by_policy_is_counted_flagged():
    """The stored false-positive rate counts what fails the gate (exit 1), a counter change under
    counters = "fail" among it, not regressed verdicts alone."""
    from bench.gate.outcome import Outcome

    r = Record(
        framework="tensorflow",
        step="manual",
        backend="function",
        device="cpu",
        n=300,
        m=784,
        nh=8,
        dtype="float32",
        status="ok",
        run_id="a",
        samples_s=(0.01,) * 20,
        counters={"ops": {"MatMul": 6}},
    )
    other = Record(**{**r.__dict__, "run_id": "b", "counters": {"ops": {"MatMul": 7}}})
    fail = compare.Thresholds(counters="fail")
    assert Outcome(sides([r], [other], fail)).flagged
    assert not Outcome(sides([r], [other], compare.Thresholds())).flagged


# ---------------------------------------------------------------- the paired gate, end to end


def test_a_slower_working_tree_is_flagged(repo):
    commit(repo, harness(1.0), "base")
    commit(repo, {"speed.txt": "1.5"}, "slower")
    result = bench_gate(repo, "--base", "HEAD~1")
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("tensorflow/")]
    assert verdicts == ["regressed", "regressed"] and "verdict: REGRESSED" in result.stdout
    assert "A/A false-positive rate: not measured on this machine" in result.stdout
    assert "t over 3 process pairs' log-ratios" in result.stdout and "gate wall time" in result.stdout
    assert worktrees(repo) == [f"worktree {repo}"]


def test_unchanged_code_passes_and_each_side_runs_its_own_tree(repo, tmp_path):
    commit(repo, harness(1.0), "base")
    commit(repo, {"notes.txt": "docs only"}, "docs")
    out = tmp_path / "runs"
    result = bench_gate(repo, "--base", "HEAD~1", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: no regression (2 same)" in result.stdout
    ran = {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/ran.json")}
    assert sorted(ran) == ["base-0", "base-1", "base-2", "candidate-0", "candidate-1", "candidate-2"]
    assert all(Path(v["tree"]) == repo for k, v in ran.items() if k.startswith("candidate"))
    assert all(Path(v["tree"]) != repo and "bench-gate-" in v["tree"] for k, v in ran.items() if k.startswith("base"))
    assert ran["base-0"]["args"][:3] == ["run", "--budget", "0.5"]
    assert {v["threads"] for v in ran.values()} == {"1"}
    assert not Path(ran["base-0"]["tree"]).exists()  # the worktree is gone


def test_a_relative_out_folder_keeps_both_sides_records(repo, tmp_path):
    """Each side's harness runs in its own tree: --out is the caller's folder for both, not a folder
    of each tree (the base's would go with its temporary worktree, and the gate compare nothing)."""
    commit(repo, harness(1.0), "base")
    commit(repo, {"speed.txt": "1.5"}, "slower")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "gate", "--tree", repo, "--pairs", "2", "--base", "HEAD~1", "--out", "runs"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "verdict: REGRESSED" in result.stdout, result.stdout + result.stderr
    assert sorted(p.parent.name for p in (tmp_path / "runs").glob("*/ran.json")) == [
        "base-0",
        "base-1",
        "candidate-0",
        "candidate-1",
    ]


def test_uncommitted_changes_are_the_candidate(repo):
    commit(repo, harness(1.0), "base")
    (repo / "speed.txt").write_text("0.5")
    result = bench_gate(repo, "--base", "HEAD")
    assert result.returncode == 0 and "verdict: no regression (2 improved)" in result.stdout, result.stdout


def test_an_old_harness_without_budget_runs_both_sides_quick(repo, tmp_path):
    commit(repo, harness(1.0, nobudget=1), "base")
    commit(repo, {"nobudget.txt": None}, "budget flag")
    out = tmp_path / "runs"
    assert bench_gate(repo, "--base", "HEAD~1", "--out", out).returncode == 0
    assert {json.loads(p.read_text())["args"][1] for p in out.glob("*/ran.json")} == {"--quick"}


@pytest.mark.parametrize(
    "setup, words",
    [
        (
            "first commit",
            ["nothing to compare: HEAD~1: HEAD is the first commit, so it has no parent to compare with; passing"],
        ),
        ("no harness", ["nothing to compare: HEAD~1", "has no harness (bench/__main__.py); passing"]),
        ("rejects options", ["nothing to compare: the base's harness produced no records (exit 2:", "unrecognized"]),
    ],
)
def test_nothing_to_compare_passes(repo, setup, words):
    if setup == "no harness":
        commit(repo, {"README": "before the harness"}, "start")
    if setup == "rejects options":
        commit(repo, harness(1.0, reject=1), "old CLI")
        commit(repo, {"reject.txt": None}, "new CLI")
    else:
        commit(repo, harness(1.0), "harness")
    result = bench_gate(repo, "--base", "HEAD~1")
    assert result.returncode == 0, result.stderr
    assert all(w in result.stdout for w in words), result.stdout
    assert worktrees(repo) == [f"worktree {repo}"]


def test_a_shallow_clone_passes_and_says_so(repo, tmp_path):
    commit(repo, harness(1.0), "first")
    commit(repo, {"notes.txt": "second"}, "second")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    result = bench_gate(shallow, "--base", "HEAD~1")
    assert result.returncode == 0, result.stderr
    assert "beyond this shallow clone's 1 commit(s) of history" in result.stdout


def test_not_a_git_checkout_passes(tmp_path):
    tree = tmp_path / "copy"
    tree.mkdir()
    result = bench_gate(tree)
    assert result.returncode == 0 and "is not a git checkout" in result.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--base", "no-such-branch"], ["unknown revision 'no-such-branch'"]),
        (["--base", "HEAD~1x"], ["unknown revision 'HEAD~1x'"]),
        (["--base", "HEAD^{tree}"], ["unknown revision 'HEAD^{tree}'"]),
        (["--base", "^HEAD"], ["bad revision '^HEAD'"]),
        (["--base", "HEAD:README"], ["unknown revision 'HEAD:README'"]),
        (["--base", "HEAD~100"], ["unknown revision 'HEAD~100': HEAD has 0 ancestor(s)"]),
        (["--base=--all"], ["bad revision '--all'"]),
        (["--pairs", "1"], ["at least 2 pairs"]),
        (["--size", "5000,784"], ["bad size"]),
        (["--threshold", "ten"], ["bad threshold"]),
        (["--aa", "0"], ["--aa 0"]),
        (["--baseline", "/no/such/baseline"], ["no such file or folder"]),
        (["--summary", "/"], ["--summary /: is a folder"]),
        (["--json", "/no/such/folder/gate.json"], ["--json /no/such/folder/gate.json: /no/such/folder does not exist"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(repo, args, words):
    commit(repo, harness(1.0), "base")
    result = bench_gate(repo, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and all(w in lines[-1] for w in words), result.stderr


def test_the_gate_writes_its_summary_and_json_for_ci(repo, tmp_path):
    """--summary: the verdict as its heading, the base and pairing the plan resolved, the table with
    what each row could see, the notes, the verdict line; appended to $GITHUB_STEP_SUMMARY too.
    --json: the plan's base, commit and pairing, each comparison and the overall verdict."""
    commit(repo, harness(1.0), "base")
    commit(repo, {"speed.txt": "1.5"}, "slower")
    md, js, page = tmp_path / "gate.md", tmp_path / "gate.json", tmp_path / "page.md"
    result = bench_gate(repo, "--base", "HEAD~1", "--summary", md, "--json", js, env={"GITHUB_STEP_SUMMARY": str(page)})
    assert result.returncode == 1, result.stdout + result.stderr
    sha = git(repo, "rev-parse", "HEAD~1").strip()
    summary = md.read_text()
    assert summary.startswith("## Regression gate: REGRESSED\n") and page.read_text() == "\n" + summary
    assert f"base: HEAD\\~1 = {sha[:10]} against the working tree" in summary
    assert "pairing: process pairs: 3 pairs of each side's own harness, alternately (1 file(s) outside" in summary
    assert "| case | HEAD\\~1 ms | working tree ms | ratio \\[95% CI\\] | threshold | could see | verdict |" in summary
    assert summary.count("| regressed |") == 2 and "t over 3 process pairs' log-ratios" in summary
    assert "- A/A false-positive rate: not measured on this machine" in summary
    assert "**verdict: REGRESSED (2 regressed): tensorflow/manual/function/cpu" in summary
    data = json.loads(js.read_text())
    assert data["plan"] == {
        "mode": "paired",
        "base": "HEAD~1",
        "sha": sha,
        "baseline": None,
        "pairing": "processes",
        "why": "1 file(s) outside kernels/ changed (speed.txt)",
        "changed": ["speed.txt"],
    }
    assert data["verdict"] == "regressed" and data["failed"] and data["exit"] == 1 and data["pairing"] == "processes"
    assert [c["verdict"] for c in data["comparisons"]] == ["regressed", "regressed"]
    assert all(c["lo"] > 1 and c["method"] == "t over 3 process pairs' log-ratios" for c in data["comparisons"])
    assert data["sides"] == ["HEAD~1", "working tree"] and data["summary"] in result.stdout


def test_a_gate_with_nothing_to_compare_says_why_in_its_summary(repo, tmp_path):
    commit(repo, harness(1.0), "harness")
    md, js = tmp_path / "gate.md", tmp_path / "gate.json"
    result = bench_gate(repo, "--base", "HEAD~1", "--summary", md, "--json", js)
    assert result.returncode == 0, result.stderr
    summary = md.read_text()
    assert summary.startswith("## Regression gate: nothing to compare, passing\n")
    assert "HEAD is the first commit, so it has no parent to compare with; passing" in summary
    data = json.loads(js.read_text())
    assert data["verdict"] == "nothing" and not data["failed"] and data["exit"] == 0 and data["comparisons"] == []
    assert "HEAD is the first commit" in data["nothing"] and data["plan"]["sha"] is None


def test_a_candidate_that_cannot_run_is_an_error(repo):
    commit(repo, harness(1.0), "base")
    (repo / "crash.txt").write_text("")
    result = bench_gate(repo, "--base", "HEAD")
    assert result.returncode == 2
    assert "the candidate's harness wrote no records" in result.stderr and "the harness is broken" in result.stderr
    assert worktrees(repo) == [f"worktree {repo}"]


def test_aa_runs_are_stored_and_then_quoted(repo, tmp_path):
    commit(repo, harness(1.0), "base")
    aa_file = tmp_path / "aa.json"
    result = bench_gate(repo, "--aa", "2", aa_file=aa_file)
    assert result.returncode == 0, result.stderr
    assert "A/A: 0 of 2 runs flagged a regression" in result.stdout
    (entry,) = json.loads(aa_file.read_text()).values()
    assert entry["aa"]["runs"] == 2 and entry["aa"]["pairs"] == 3 and entry["identity"]["cpu_model"] == "Fake CPU"
    gated = bench_gate(repo, "--base", "HEAD", aa_file=aa_file)
    assert "A/A false-positive rate stored for" in gated.stdout and ": 0/2 runs flagged" in gated.stdout


# ---------------------------------------------------------------- stored baselines


def test_stored_baseline_is_normalised_by_the_gemm_ceiling(repo, tmp_path):
    commit(repo, harness(1.0), "base")
    baseline = tmp_path / "baselines" / "here.jsonl"
    saved = bench_gate(repo, "--save-baseline", baseline)
    assert saved.returncode == 0 and baseline.exists(), saved.stderr
    # A machine half as fast: every time doubles, and so does the GEMM's (its GFLOP/s halve).
    (repo / "speed.txt").write_text("2.0")
    (repo / "gflops.txt").write_text("50")
    same = bench_gate(repo, "--baseline", baseline)
    assert same.returncode == 0 and "verdict: no regression (2 same)" in same.stdout, same.stdout + same.stderr
    assert "normalised by each run's measured GEMM" in same.stdout
    # The same slowdown on the same machine is a regression.
    (repo / "gflops.txt").write_text("100")
    slow = bench_gate(repo, "--baseline", baseline)
    assert slow.returncode == 1 and "REGRESSED" in slow.stdout


# ---------------------------------------------------------------- a change to the steps alone: one process


def real_project(repo):
    """`repo` holding this project's harness and steps (the working copy's), committed."""
    import shutil

    for part in ("bench", "kernels"):
        shutil.copytree(REPO / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    commit(repo, {}, "base")


WRONG_LOSS = """

def _wrong(*args):
    loss, *grads = lesson.manual_step(OPS, *args)
    return (loss * 2, *grads)


manual_step = _wrong
"""


def test_a_change_to_the_steps_alone_runs_both_sides_in_one_process(repo, tmp_path):
    """Only kernels/ changed: one process holds the base's steps and the working tree's, told apart
    (the candidate's wrong loss fails its check, the base's passes), in one run, paired by round."""
    real_project(repo)
    steps = repo / "kernels" / "numpy_steps.py"
    steps.write_text(steps.read_text() + WRONG_LOSS)
    out = tmp_path / "out"
    result = bench_gate(
        repo,
        "--base",
        "HEAD",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "module",
        "--backend",
        "eager",
        "--size",
        "300,784,8",
        "--budget",
        "0.05",
        "--instructions",
        "none",
        "--out",
        out,
    )
    assert "only the steps' code (kernels/) changed, so both sides' steps run in one process" in result.stderr, (
        result.stderr
    )
    (base,) = [records.read(out / "base")]
    cand = records.read(out / "candidate")
    assert {(r.step, r.status) for r in base} == {("manual", "ok"), ("module", "ok")}
    assert {(r.step, r.status) for r in cand} == {("manual", "failed"), ("module", "ok")}
    assert "wrong answer: loss" in next(r.error for r in cand if r.step == "manual")
    assert len({r.run_id for r in base + cand}) == 1  # one process, one run
    timed = [r for r in base + cand if r.status == "ok"]
    assert all(r.counters.get("ops") and r.batch_calls is None for r in timed)  # counted; no dispatch time to read
    assert all(len(r.warmup_s) == defaults.GATE_CALLS_WARMUP for r in timed)
    assert "paired by round" in result.stdout and "paired in one process" in result.stdout
    assert "A/A of this one-process gate: not measured on this machine" in result.stdout  # the stored one is of pairs
    assert "its intervals are within-run only" in result.stdout
    assert worktrees(repo) == [f"worktree {repo}"]
    head = git(repo, "rev-parse", "HEAD").strip()  # whose steps each side timed, for `history add --paired-base`
    assert one_process.read_side(out / "base") == {"side": "base", "kernels": head, "dirty": False}
    assert one_process.read_side(out / "candidate") == {"side": "candidate", "kernels": head, "dirty": True}
    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n")  # now the harness changed too
    (repo / "notes.md").write_text("text")
    changed = bench_git.changed_files(repo, git(repo, "rev-parse", "HEAD").strip())
    assert changed == ["kernels/numpy_steps.py", "notes.md", "pyproject.toml"]
    assert plan.outside_kernels(changed) == ["pyproject.toml"]  # so the gate runs each side in its own processes


HOST_LOOP = """

def _slower(*args):
    for _ in range(500):  # about 2% of the step's instructions at n=500, nh=8: under what time resolves
        pass
    return lesson.manual_step(OPS, *args)


manual_step = _slower
"""


def test_a_host_side_change_no_counter_sees_is_flagged_by_instructions(repo, tmp_path):
    """A Python loop planted in NumPy's manual step (no op, no FLOP, no byte more): the one-process
    gate counts both sides' steps under Callgrind at n=500 and flags it by instructions; the
    unchanged module step, not named by --instructions, is neither counted nor timed at n=500, and
    the n=300 cases are judged by time. (Unchanged code judged same by instructions: test_compare, and the
    instructions-plant experiment.)"""
    from bench import instructions

    reason = instructions.unavailable_reason(CaseKey("numpy", "manual", "eager", "cpu", 500, 784, 8, "float32"))
    if reason:
        pytest.skip(reason)
    real_project(repo)
    steps = repo / "kernels" / "numpy_steps.py"
    steps.write_text(steps.read_text() + HOST_LOOP)
    out = tmp_path / "out"
    result = bench_gate(
        repo, "--base", "HEAD", "--framework", "numpy", "--step", "manual", "module", "--backend", "eager",
        "--size", "300,784,8", "--budget", "0.05", "--instructions", "numpy/manual/eager",
        "--json", tmp_path / "gate.json", "--out", out,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr + result.stdout
    doc = json.loads((tmp_path / "gate.json").read_text())
    made = {(c["case"]["step"], c["case"]["n"]): c for c in doc["comparisons"]}
    assert set(made) == {("manual", 300), ("module", 300), ("manual", 500)}  # the counted case at n=500 too
    planted = made["manual", 500]
    counted = planted["instructions"]
    assert compare.verdict(counted["ratio"], counted["lo"], counted["hi"], 0.01) == "regressed", planted
    assert planted["verdict"] == "regressed" and planted["counters"] == []  # no counter sees it
    # by instructions, unless a noisy run's times flagged it too (then a time regression stands)
    assert planted["rests_on"] == "instructions" or planted["time_verdict"] is None
    assert all(made[step, 300]["rests_on"] == "time" for step in ("manual", "module"))
    assert "regressed by instructions" in result.stdout and "instructions [range]" in result.stdout
    assert [r.step for r in records.read(out / "candidate") if r.instructions.get("per_call")] == ["manual"]


def test_a_change_to_tests_and_text_alone_has_nothing_to_time(repo):
    """No timed code changed (tests, text, stored results): the gate says so and passes at once (an
    A/A of identical steps would
    only spend CI's minutes); asked for the one process, it times both sides anyway."""
    real_project(repo)
    (repo / "notes.md").write_text("text")
    (repo / "tests").mkdir(exist_ok=True)
    (repo / "tests" / "test_more.py").write_text("def test_x():\n    pass\n")
    (repo / "results" / "baselines").mkdir(parents=True, exist_ok=True)
    (repo / "results" / "baselines" / "aa.json").write_text("{}\n")  # stored results: no run reads them
    result = bench_gate(
        repo,
        "--base",
        "HEAD",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "--backend",
        "eager",
        "--size",
        "300,784,8",
        "--budget",
        "0.05",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "nothing to compare: only tests, text and stored results changed against HEAD "
        "(notes.md, results/baselines/aa.json, tests/test_more.py)" in result.stdout
    )
    forced = bench_gate(
        repo,
        "--base",
        "HEAD",
        "--pairing",
        "calls",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "--backend",
        "eager",
        "--size",
        "300,784,8",
        "--budget",
        "0.05",
        "--instructions",
        "none",
    )
    # timed, and judged (whatever the verdict: identical steps still differ by noise, which no test asserts)
    assert forced.returncode in (0, 1) and "both sides' steps run in one process" in forced.stderr, forced.stderr
    assert "numpy/manual/eager/cpu n=300" in forced.stdout and "verdict: " in forced.stdout, forced.stdout


def test_one_process_intervals_are_widened_by_what_its_own_aa_runs_showed_they_miss(tmp_path):
    """One-process A/A runs whose log-ratios spread wider than their intervals say: extra_sd_of
    measures the excess, calls_noise reads it back for the same machine only, and a comparison
    paired by round judged with it has the wider interval and says why."""
    import math

    from bench.compare import Comparison, How, Result, Thresholds
    from bench.gate.outcome import Outcome
    from bench.gate.processes import Process

    def outcome(ratios):
        cs = tuple(
            Comparison(
                case=None, label=f"c{i}", key="k", threshold=0.1, verdict="same", ratio=r, lo=r / 1.02, hi=r * 1.02
            )
            for i, r in enumerate(ratios)
        )
        return Outcome(Result(cs, (), ()), {}, pairing="calls")

    spread = [outcome([1.08, 0.93, 1.0]), outcome([0.95, 1.06, 1.01]), outcome([1.0, 0.92, 1.07])]
    extra = experiments.extra_sd_of(spread)
    within = math.log(1.02**2) / (2 * 1.959964)
    logs = [math.log(c.ratio) for o in spread for c in o.result.comparisons]
    assert extra == pytest.approx(math.sqrt(sum(v * v for v in logs) / len(logs) - within**2))
    assert experiments.extra_sd_of([outcome([1.0, 1.001, 0.999, 1.0])]) == 0.0  # intervals that explain it all
    base, cand = four_percent_slower()
    plain = case([base], [cand], 0.1)
    wide = case([base], [cand], 0.1, same_run_sd=extra)
    assert plain.method == compare.PAIRED_BY_ROUND and wide.method.startswith(
        f"{compare.PAIRED_BY_ROUND}, widened by the one-process A/A"
    )
    assert wide.ratio == pytest.approx(plain.ratio) and wide.lo < plain.lo and wide.hi > plain.hi
    how = How("rounds", Thresholds(0.1), noise.Noise(same_run_sd=extra))
    judged = one_process.rejudged(
        Outcome(
            sides([base], [cand], Thresholds(0.1)),
            {"base": [Process("b", 0, (base,), 1.0)], "candidate": [Process("c", 0, (cand,), 1.0)]},
            pairing="calls",
        ),
        how,
        "intervals widened by sd, from a test",
    )
    (c,) = judged.result.comparisons
    assert (c.lo, c.hi) == (wide.lo, wide.hi) and "widened by sd" in judged.notes[-1]
    aa_file = tmp_path / "aa.json"
    assert noise.calls_noise(noise.load(aa_file), base.fingerprint)[0] is None
    noise.store(aa_file, base.fingerprint, noise.CALLS_AA, {"extra_sd_log": extra, "runs": 3, "flagged": 0})
    assert noise.calls_noise(noise.load(aa_file), base.fingerprint)[0] == extra
    assert noise.calls_noise(noise.load(aa_file), {"cpu_model": "Y", "host_id": "h"})[0] is None  # another machine
    assert (
        noise.calls_noise(noise.load(aa_file), {**base.fingerprint, "host_id": "elsewhere"})[0] is None
    )  # another host
    spec = gate.RunSpec(
        frameworks=("numpy",),
        sizes=((300, 784, 8),),
        steps=("manual",),
        backends=("eager",),
        device="cpu",
        budget_s=0.1,
    )
    noise.store(aa_file, base.fingerprint, noise.CALLS_AA, {"extra_sd_log": extra, "run": spec.describe()})
    assert noise.calls_noise(noise.load(aa_file), base.fingerprint, spec.describe())[0] == extra
    other, said = noise.calls_noise(
        noise.load(aa_file), base.fingerprint, gate.RunSpec(**{**spec.__dict__, "budget_s": 0.2}).describe()
    )
    assert other is None and "timing other cases" in said and "not applied" in said


def test_a_one_process_aa_summary_says_whether_its_intervals_held():
    """Nothing missed reads as intervals that held, not as widening by 0.000."""
    from bench.gate.plan import missed

    assert "held" in missed(0.0) and "0.000" not in missed(0.0)
    assert "sd of 0.012" in missed(0.012) and "widen" in missed(0.012)
    assert "too few" in missed(None)


def test_a_change_is_judged_by_its_base_revisions_gate_settings(repo):
    """The working tree's pyproject loosening the gate (a slip: 50% for 5%) does not judge its own
    change: REV's settings do, and the gate says so; unchanged settings say nothing; --config still
    names the file; REV without a pyproject gives the defaults; REV's unusable ones fall back, said."""
    from bench.gate import Request

    table = '[tool.backprop-bench.gate]\nthreshold = "{}"\n[tool.backprop-bench.gate.thresholds]\n"numpy/*" = "8%"\n'
    commit(repo, {**harness(1.0), "pyproject.toml": table.format("5%")}, "base")

    def judged(**asked):  # (the thresholds REV is judged by, what the plan says of them)
        made = gate.make(Request(tree=str(repo), rev="HEAD", **asked))
        return made.how.thresholds, " ".join(made.said)

    same = settings.load_thresholds(repo / "pyproject.toml")
    assert judged() == (same, "")
    (repo / "pyproject.toml").write_text(table.format("50%"))
    loose = settings.load_thresholds(repo / "pyproject.toml")
    assert loose.default == 0.5
    got, said = judged()
    assert got == same and got.default == 0.05 and got.for_key("numpy/manual/eager/cpu") == 0.08
    assert "the working tree changes the gate's settings in pyproject.toml; judged by HEAD's" in said
    assert judged(config=str(repo / "pyproject.toml")) == (loose, "")
    commit(repo, {"pyproject.toml": None, "notes.md": "x"}, "no pyproject")
    (repo / "pyproject.toml").write_text(table.format("5%"))
    assert judged()[0] == compare.Thresholds()
    (repo / "pyproject.toml").unlink()
    commit(repo, {"pyproject.toml": table.format("five")}, "broken")
    (repo / "pyproject.toml").write_text(table.format("5%"))
    got, said = judged()
    assert got == same and "HEAD's gate settings are unusable (HEAD:pyproject.toml" in said and "'five'" in said


def test_a_change_is_judged_by_its_base_revisions_stored_aa_figures(repo, monkeypatch, capsys):
    """The one-process A/A figure that widens a gate's intervals (results/baselines/aa.json) is read
    as REV committed it: a working tree that widens it (edited, or measured on a bad day) does not
    loosen its own gate, and the A/A line says whose figure it used and that the tree's differs;
    --aa-file still names the file used. Through cmd_gate, the one process's timing replaced."""
    from bench.cli import build_parser
    from bench.cli.gate import cmd_gate, request
    from bench.gate.outcome import Outcome
    from bench.gate.processes import Process

    base, cand = four_percent_slower()

    def timed(trees, spec, pairs, how, *args, **kwargs):  # the one process's timing, replaced
        return Outcome(
            sides([base], [cand], how.thresholds),
            {"base": [Process("b", 0, (base,), 1.0)], "candidate": [Process("c", 0, (cand,), 1.0)]},
            pairing="calls",
        )

    monkeypatch.setattr(one_process, "run", timed)
    flags = [
        "gate",
        "--tree",
        str(repo),
        "--base",
        "HEAD",
        "--pairing",
        "calls",
        "--framework",
        "numpy",
        "--step",
        "manual",
        "--backend",
        "eager",
        "--size",
        "300,784,8",
    ]
    run = plan.specs(request(build_parser().parse_args(flags)))[1].describe()
    stored = repo / noise.AA_FILE

    def store(extra):
        noise.store(stored, base.fingerprint, noise.CALLS_AA, {"extra_sd_log": extra, "run": run})

    def gated(*more):
        assert cmd_gate(build_parser().parse_args([*flags, *more])) in (0, 1)
        return capsys.readouterr().out

    commit(repo, {**harness(1.0), "notes.md": "x"}, "base without A/A figures")
    store(0.5)  # the working tree's own, measured on a bad day
    out = gated()
    assert "A/A of this one-process gate (as HEAD stored it): not measured on this machine" in out
    assert "its intervals are within-run only" in out and "widened by sd" not in out
    assert "the working tree's stored figure (sd 0.500) is not its base's" in out
    store(0.01)
    commit(repo, {}, "base with A/A figures")
    store(0.5)
    out = gated()
    assert (
        "intervals widened by sd 0.010" in out
        and "the working tree's stored figure (sd 0.500) is not its base's" in out
    )
    store(0.01)
    out = gated()
    assert "intervals widened by sd 0.010" in out and "is not its base's" not in out
    store(0.5)
    out = gated("--aa-file", str(stored))
    assert "intervals widened by sd 0.500" in out and "as HEAD stored it" not in out and "is not its base's" not in out


def test_process_pairs_of_another_framework_time_its_own_steps_and_backends():
    """The process pairs' default steps and backends (manual, tape x eager, function, xla) are
    TensorFlow's; `--framework numpy` (or torch, jax) gets that framework's manual and autodiff
    steps under every backend, as the one-process gate does, not a `bench run` that refuses 'tape'."""
    from bench.cli import build_parser
    from bench.cli.gate import request

    parse = lambda *flags: plan.specs(request(build_parser().parse_args(["gate", "--pairing", "processes", *flags])))  # noqa: E731
    spec, _, _ = parse()
    assert (spec.frameworks, spec.steps, spec.backends) == (
        ("tensorflow",),
        ("manual", "tape"),
        ("eager", "function", "xla"),
    )
    spec, calls, _ = parse("--framework", "numpy")
    assert (spec.frameworks, spec.steps, spec.backends) == (("numpy",), ("manual",), None) and calls.steps == (
        "manual",
    )
    spec, _, _ = parse("--framework", "torch", "jax")
    assert spec.steps == ("manual", "autograd", "grad") and spec.backends is None
    spec, _, _ = parse("--framework", "numpy", "--step", "module", "--backend", "eager")
    assert (spec.steps, spec.backends) == (("module",), ("eager",))
    assert "--backend" not in gate.RunSpec(frameworks=("numpy",), steps=("manual",), backends=None).args()


def test_the_plan_says_what_the_gate_would_run_and_runs_nothing(repo, tmp_path):
    """`gate --plan` resolves REV, the settings and the pairing and prints them with the cases, an
    estimate of the time and what judges it, without starting a process or a worktree."""
    commit(repo, harness(1.0), "base")
    commit(repo, {"speed.txt": "1.5"}, "slower")
    out = tmp_path / "runs"
    planned = bench_gate(repo, "--base", "HEAD~1", "--plan", "--out", out)
    assert planned.returncode == 0, planned.stderr
    text = planned.stdout
    assert "gate plan (paired)" in text and "base: HEAD~1 = " in text and "1 file(s) changed (speed.txt)" in text
    assert "pairing: process pairs: 3 pairs" in text and "1 file(s) outside kernels/ changed" in text
    assert "cases: 6 a side" in text and "s of timed calls" in text  # tensorflow manual, tape x 3 backends
    assert "threshold 5%" in text and "could see:" in text and "stored for this machine:" in text
    assert not out.exists() and worktrees(repo) == [f"worktree {repo}"]
    commit(repo, {"speed.txt": "1.0"}, "back")
    (repo / "notes.md").write_text("text only")
    nothing = bench_gate(repo, "--base", "HEAD", "--plan")  # only text changed since HEAD
    assert nothing.returncode == 0 and "nothing to compare: only tests, text and stored results" in nothing.stdout
    first = bench_gate(repo, "--base", "HEAD~5", "--plan")
    assert first.returncode == 2 and "unknown revision 'HEAD~5'" in first.stderr


def test_one_machine_identity_keys_baselines_series_and_noise():
    """One identity, three keys: a baseline is the hardware and the frameworks' versions; a history
    series the hardware and the thread settings; a stored noise figure the baseline key on one host
    only (the same CPU model on another host is another machine for that, and a fingerprint without a
    host id has no stored figure)."""
    fp = {
        "machine": "x86_64",
        "cpu_model": "AMD EPYC",
        "gpus": [],
        "host_id": "abc",
        "frameworks": {"tensorflow": {"version": "2.21.0"}},
        "env": {"TF_NUM_INTRAOP_THREADS": "1"},
    }
    here = Machine.of(fp)
    assert here.baseline_key == "x86_64-amd-epyc-nogpu-tensorflow-2.21.0"
    assert here.series_key == "x86_64 | AMD EPYC | no GPU | 1 thread(s)"
    assert here.noise_key == "x86_64-amd-epyc-nogpu-tensorflow-2.21.0@abc"
    elsewhere = Machine.of({**fp, "host_id": "def"})
    assert elsewhere.baseline_key == here.baseline_key and elsewhere.noise_key != here.noise_key
    assert Machine.of({**fp, "host_id": None}).noise_key is None
    assert here.differences(elsewhere) == []  # the same machine for a comparison of times
    assert Machine.of({**fp, "cpu_model": "Intel"}).differences(here) == ["cpu_model: 'Intel' vs 'AMD EPYC'"]


def four_percent_slower():
    """(base, candidate): one case's 40 paired rounds, the candidate's every sample 4% longer."""
    times = tuple(float(t) for t in 0.01 * __import__("numpy").random.default_rng(0).lognormal(0, 0.01, 40))
    base = Record(
        framework="numpy",
        step="manual",
        backend="eager",
        device="cpu",
        n=300,
        m=784,
        nh=8,
        dtype="float32",
        status="ok",
        run_id="one",
        samples_s=times,
        rounds=tuple(range(40)),
        fingerprint={"cpu_model": "X", "host_id": "h"},
    )
    return base, Record(**{**base.__dict__, "samples_s": tuple(t * 1.04 for t in times)})
