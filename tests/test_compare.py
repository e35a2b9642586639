"""compare: thresholds from pyproject, the verdict rule and its error rates on synthetic samples,
pairing, identity refusal, and the CLI's exit codes. No timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import compare, records
from bench.compare import CompareError, Thresholds, parse_threshold, verdict
from bench.gate import settings, text
from bench.instructions import COUNTING
from bench.records import Record
from bench.text import markdown
from tests.comparing import case as compare_case
from tests.comparing import sides

REPO = Path(__file__).resolve().parent.parent
ENV = {"cpu_model": "Test CPU", "machine": "x86_64", "gpus": [], "frameworks": {"tensorflow": {"version": "2.21.0"}}}


def rec(samples, step="manual", backend="function", run_id="r1", rounds=(), fingerprint=None, **kw):
    return Record(
        framework="tensorflow",
        step=step,
        backend=backend,
        device="cpu",
        n=kw.pop("n", 100),
        m=784,
        nh=50,
        dtype="float32",
        status=kw.pop("status", "ok"),
        samples_s=tuple(samples),
        rounds=tuple(rounds),
        run_id=run_id,
        fingerprint=ENV if fingerprint is None else fingerprint,
        **kw,
    )


def noisy(median, n=30, spread=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return median * np.exp(rng.normal(0, spread, n))


# ---------------------------------------------------------------- thresholds


@pytest.mark.parametrize("text, fraction", [("10%", 0.10), ("2.5%", 0.025), ("0.1", 0.1), (0.15, 0.15), ("150%", 1.5)])
def test_parse_threshold(text, fraction):
    assert parse_threshold(text) == pytest.approx(fraction)


@pytest.mark.parametrize(
    "text, words", [("10", "did you mean 10%"), ("ten", "percentage"), ("0%", "above 0%"), ("-5%", "above 0%")]
)
def test_bad_thresholds(text, words):
    with pytest.raises(CompareError, match=words):
        parse_threshold(text)


def test_thresholds_from_pyproject(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.backprop-bench.gate]\nthreshold = "8%"\n'
        '[tool.backprop-bench.gate.thresholds]\n"tensorflow/*/eager/*" = "20%"\n"tensorflow/manual/*" = 0.05\n'
    )
    t = settings.load_thresholds(path)
    assert t.default == pytest.approx(0.08)
    assert t.for_key("tensorflow/manual/eager/cpu") == pytest.approx(0.20)  # first match wins
    assert t.for_key("tensorflow/manual/xla/cpu") == pytest.approx(0.05)
    assert t.for_key("tensorflow/tape/xla/gpu") == pytest.approx(0.08)
    assert settings.load_thresholds(path, default="15%").for_key("tensorflow/tape/xla/gpu") == pytest.approx(0.15)
    assert settings.load_thresholds(tmp_path / "missing.toml") == Thresholds()


@pytest.mark.parametrize(
    "content, words",
    [
        ("[tool.backprop-bench.gate\n", "cannot read"),
        ('[tool.backprop-bench.gate]\nthreshold = "lots"\n', "bad threshold 'lots'"),
        ('[tool.backprop-bench.gate]\nthresholds = "10%"\n', "must be a table"),
    ],
)
def test_bad_config_is_one_line(tmp_path, content, words):
    path = tmp_path / "pyproject.toml"
    path.write_text(content)
    with pytest.raises(CompareError, match=words) as e:
        settings.load_thresholds(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_the_repository_config_loads():
    t = settings.load_thresholds(REPO / "pyproject.toml")
    assert 0 < t.default < 1


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "ratio, lo, hi, expected",
    [
        (1.25, 1.15, 1.35, "regressed"),
        (1.12, 1.06, 1.20, "regressed"),
        (1.12, 1.04, 1.20, "inconclusive"),  # CI reaches below 1 + t/2: not clear enough, and past 1 + t
        (1.08, 1.06, 1.10, "same"),  # clear, but under the threshold: the CI rules out +10%
        (1.50, 0.90, 2.00, "inconclusive"),  # big, but the CI includes no change
        (0.80, 0.74, 0.86, "improved"),
        (0.90, 0.85, 0.94, "improved"),  # 1/0.90 = 1.11 > 1.10 and 1/0.94 = 1.064 > 1.05
        (0.90, 0.85, 0.96, "inconclusive"),  # 1/0.96 = 1.04: not clearly faster, nor clearly within 10%
        (1.00, 0.99, 1.01, "same"),
        (1.00, 0.95, 1.09, "same"),
        (1.00, 0.80, 1.25, "inconclusive"),  # no change measured, but +25% not ruled out: not "same"
        (1.2, float("nan"), float("nan"), "inconclusive"),
    ],
)
def test_verdict(ratio, lo, hi, expected):
    assert verdict(ratio, lo, hi, 0.10) == expected


@pytest.mark.parametrize(
    "ratio, lo, hi, seen",
    [
        (1.00, 0.99, 1.01, 0.10),  # a tight interval: the threshold itself
        (1.00, 0.80, 1.25, 1.05 * 1.25 - 1),  # half-width log(1.25): the low end must clear 1.05 from R / 1.25
        (1.0, float("nan"), float("nan"), float("nan")),
    ],
)
def test_the_smallest_slowdown_a_run_could_see(ratio, lo, hi, seen):
    from bench.compare import detectable

    got = detectable(ratio, lo, hi, 0.10)
    assert got == pytest.approx(seen, nan_ok=True)
    if got == got:  # a true slowdown that size, with this interval around it, is flagged
        r = 1 + got + 1e-9
        assert verdict(r, r * lo / ratio, r * hi / ratio, 0.10) == "regressed"


def paired_gate_run(rng, slowdown, pairs=4, process_sd=0.05, drift_sd=0.20, samples=8):
    """One synthetic paired gate run: each process has its own offset (process_sd) on top of a
    machine state shared by the pair (drift_sd), and noisy samples."""
    base, cand = [], []
    for i in range(pairs):
        machine = np.exp(rng.normal(0, drift_sd))
        for side, factor in ((base, 1.0), (cand, 1.0 + slowdown)):
            level = 0.01 * factor * machine * np.exp(rng.normal(0, process_sd))
            side.append(rec(level * np.exp(np.abs(rng.normal(0, 0.05, samples))), run_id=f"p{i}{len(side)}"))
    return compare_case(base, cand, 0.10, paired=True)


def test_rule_error_rates_on_synthetic_paired_runs():
    """Unchanged code is flagged rarely and a 25% slowdown almost always, with noise larger than
    the threshold between pairs (20%, which pairing cancels) and 5% between processes."""
    rng = np.random.default_rng(1)
    runs = 60
    false_alarms = sum(paired_gate_run(rng, 0.0).verdict == "regressed" for _ in range(runs))
    detected = sum(paired_gate_run(rng, 0.25).verdict == "regressed" for _ in range(runs))
    assert false_alarms <= 0.05 * runs
    assert detected >= 0.90 * runs


# ---------------------------------------------------------------- comparing cases


def test_separate_runs_are_bootstrapped_over_samples():
    c = compare_case([rec(noisy(0.010))], [rec(noisy(0.013, seed=1), run_id="r2")], 0.10)
    assert c.method == "bootstrap over samples"
    assert c.ratio == pytest.approx(c.candidate_s / c.base_s)
    assert c.lo < c.ratio < c.hi and c.verdict == "regressed"


def test_one_run_is_paired_by_round():
    """Both cases measured in one run, round by round: a drift shared by each round cancels."""
    drift = np.repeat(np.exp(np.linspace(0, 1, 10)), 3)  # the machine slows 2.7x over the run
    rounds = [int(r) for r in np.repeat(np.arange(10), 3)]
    base = rec(0.010 * drift, rounds=rounds)
    cand = rec(0.0105 * drift, rounds=rounds, backend="function")
    paired = compare_case([base], [cand], 0.10)
    assert paired.method == compare.PAIRED_BY_ROUND
    # one run's records that cannot pair by round (no rounds recorded) are not widened as runs apart
    unpaired = compare_case([rec(noisy(0.010))], [rec(noisy(0.0105, seed=1), backend="xla")], 0.10, run_sd=0.05)
    assert unpaired.method == "bootstrap over samples"
    assert paired.ratio == pytest.approx(1.05) and paired.hi - paired.lo < 0.01
    unpaired = compare_case([base], [rec(0.0105 * drift, run_id="other", rounds=rounds)], 0.10)
    assert unpaired.hi - unpaired.lo > 0.3


def test_paired_processes_use_per_process_medians():
    base = [rec([0.010, 0.011, 0.0105]), rec([0.020, 0.021, 0.0205]), rec([0.015] * 3)]
    cand = [rec([0.012] * 3), rec([0.024] * 4), rec([0.018] * 5)]  # +14-20% in every pair despite 2x drift
    c = compare_case(base, cand, 0.10, paired=True)
    assert c.method == "t over 3 process pairs' log-ratios"
    assert c.base_s == pytest.approx(0.015) and c.candidate_s == pytest.approx(0.018)
    ratios = np.array([0.012 / 0.0105, 0.024 / 0.0205, 0.018 / 0.015])  # 1.143, 1.171, 1.2
    assert c.ratio == pytest.approx(np.exp(np.log(ratios).mean()))  # their geometric mean
    half = 4.302653 * np.log(ratios).std(ddof=1) / np.sqrt(3)  # t(0.975, 2 df)
    assert (c.lo, c.hi) == pytest.approx((c.ratio * np.exp(-half), c.ratio * np.exp(half)))
    assert c.verdict == "regressed"


def test_a_failed_process_drops_its_pair():
    base = [rec([0.010]), None, rec([0.010]), rec([0.010])]
    cand = [rec([0.010]), rec([0.010]), None, rec([0.010])]
    assert compare_case(base, cand, 0.10, paired=True).method == "t over 2 process pairs' log-ratios"
    c = compare_case([rec([0.01]), None], [rec([0.01]), rec([0.01])], 0.10, paired=True)
    assert c.verdict == "n/a" and "at least 2" in c.note


def test_a_case_the_candidate_broke_fails_and_one_not_timed_is_not_compared():
    """A case the base timed and the candidate failed (a wrong answer) is a verdict of its own that
    fails the gate: no time to compare is no pass. One the base could not time is not compared."""
    failed = rec((), status="failed", error="wrong answer: d_w1")
    c = compare_case([rec(noisy(0.01))], [failed], 0.10)
    assert c.verdict == "failed" and c.note == "candidate failed: wrong answer: d_w1"
    result = sides([rec(noisy(0.01))], [failed], Thresholds())
    assert result.failed and not result.regressed
    assert text.summary(result).startswith("verdict: FAILED, the candidate broke a case the base ran (1 failed)")
    fixed = compare_case([failed], [rec(noisy(0.01), run_id="r2")], 0.10)
    assert fixed.verdict == "n/a" and fixed.note == "base failed: wrong answer: d_w1"
    assert not sides([failed], [rec(noisy(0.01), run_id="r2")], Thresholds()).failed
    skipped = rec((), status="skipped", error="no GPU")
    assert compare_case([rec(noisy(0.01))], [skipped], 0.10).verdict == "n/a"
    # process pairs: one pair whose candidate failed fails the case
    pairs = compare_case([rec(noisy(0.01))] * 3, [rec(noisy(0.01)), failed, rec(noisy(0.01))], 0.10, paired=True)
    assert pairs.verdict == "failed"


def test_many_runs_a_side_get_a_welch_interval_over_run_medians():
    base = [rec(noisy(0.010, seed=i), run_id=f"b{i}") for i in range(3)]
    cand = [rec(noisy(0.010, seed=9 + i), run_id=f"c{i}") for i in range(4)]
    c = compare_case(base, cand, 0.10)
    assert c.method == "Welch t over 3 and 4 run medians' logarithms" and c.verdict == "same"
    assert c.lo < 1 < c.hi


def test_scale_multiplies_samples():
    c = compare_case(
        [rec([0.01] * 5)], [rec([0.02] * 5, run_id="r2")], 0.10, scale=lambda r: 0.5 if r.run_id == "r2" else 1.0
    )
    assert c.ratio == pytest.approx(1.0) and c.candidate_s == pytest.approx(0.01)


def test_cases_on_one_side_are_listed():
    result = sides(
        [rec(noisy(0.01)), rec(noisy(0.01), step="tape")],
        [rec(noisy(0.01), run_id="r2"), rec(noisy(0.01), step="module", run_id="r2")],
        Thresholds(),
    )
    assert [c.key for c in result.comparisons] == ["tensorflow/manual/function/cpu"]
    assert result.only_base == (rec([1], step="tape").label,) and result.only_candidate == (
        rec([1], step="module").label,
    )
    lines = text.table(result)
    assert any(line.startswith("only in base: tensorflow/tape") for line in lines)
    assert text.summary(result).startswith("verdict: no regression")


def test_per_case_thresholds_apply():
    t = Thresholds(0.10, (("tensorflow/manual/*", 0.50),))
    base = [rec(noisy(0.010)), rec(noisy(0.010), step="tape")]
    cand = [rec(noisy(0.013, seed=1), run_id="r2"), rec(noisy(0.013, seed=1), step="tape", run_id="r2")]
    result = sides(base, cand, t)
    assert [(c.key, c.threshold, c.verdict) for c in result.comparisons] == [
        ("tensorflow/manual/function/cpu", 0.50, "same"),
        ("tensorflow/tape/function/cpu", 0.10, "regressed"),
    ]
    assert "REGRESSED" in text.summary(result) and "tensorflow/tape" in text.summary(result)


def test_different_machines_are_refused_unless_allowed():
    other = {**ENV, "cpu_model": "Other CPU", "frameworks": {"tensorflow": {"version": "2.20.0"}}}
    base, cand = [rec(noisy(0.01))], [rec(noisy(0.01), run_id="r2", fingerprint=other)]
    with pytest.raises(CompareError) as e:
        sides(base, cand, Thresholds())
    message = str(e.value)
    assert "\n" not in message and "--allow-mismatch" in message
    assert "cpu_model: 'Test CPU' vs 'Other CPU'" in message and "2.21.0" in message
    result = sides(base, cand, Thresholds(), allow_mismatch=True)
    assert any("warning: compared despite" in line for line in text.table(result))


def test_another_framework_loaded_is_not_a_mismatch():
    more = {**ENV, "frameworks": {**ENV["frameworks"], "torch": {"version": "2.5"}}}
    result = sides([rec(noisy(0.01))], [rec(noisy(0.01), run_id="r2", fingerprint=more)], Thresholds())
    assert result.mismatch == ()


# ---------------------------------------------------------------- the command line


def bench(*args):
    return subprocess.run(
        [sys.executable, "-m", "bench", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def write(path, recs):
    for r in recs:
        records.append(path, r)
    return path


@pytest.fixture
def runs(tmp_path):
    base = write(tmp_path / "base.jsonl", [rec(noisy(0.010)), rec(noisy(0.010), step="tape")])
    same = write(
        tmp_path / "same.jsonl",
        [rec(noisy(0.010, seed=2), run_id="r2"), rec(noisy(0.010, seed=3), step="tape", run_id="r2")],
    )
    slow = write(
        tmp_path / "slow.jsonl",
        [rec(noisy(0.010, seed=2), run_id="r3"), rec(noisy(0.015, seed=3), step="tape", run_id="r3")],
    )
    other = {**ENV, "gpus": [{"name": "NVIDIA H100"}]}
    elsewhere = write(tmp_path / "elsewhere.jsonl", [rec(noisy(0.010, seed=4), run_id="r4", fingerprint=other)])
    return base, same, slow, elsewhere


def test_cli_exit_codes(runs, tmp_path):
    base, same, slow, elsewhere = runs
    ok = bench("compare", base, same)
    assert ok.returncode == 0, ok.stderr
    # separate runs, the machine's run-to-run noise unmeasured: the default 10% widens each interval,
    # so two unchanged runs cannot rule out a 10% change ("inconclusive", exit 0), a +50% one still fails
    assert "ratio [95% CI]" in ok.stdout and "verdict: no regression (2 inconclusive)" in ok.stdout
    assert (
        "widened by the run-to-run noise between runs, sd 10% (the default: not measured on this machine" in ok.stdout
    )
    bad = bench("compare", base, slow)
    assert bad.returncode == 1, bad.stderr
    assert "regressed" in bad.stdout and "REGRESSED" in bad.stdout
    loose = bench("compare", base, slow, "--threshold", "60%")
    assert loose.returncode == 0, loose.stdout


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--threshold", "10"], ["did you mean 10%"]),
        (["--config", "{tmp}/broken.toml"], ["broken.toml", "cannot read"]),
    ],
)
def test_cli_bad_options(runs, tmp_path, extra, words):
    (tmp_path / "broken.toml").write_text("[tool.backprop-bench.gate\n")
    result = bench("compare", runs[0], runs[1], *[e.format(tmp=tmp_path) for e in extra])
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and all(w in result.stderr for w in words)


def test_cli_refuses_another_machine(runs):
    base, _, _, elsewhere = runs
    result = bench("compare", base, elsewhere)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "gpu_names" in result.stderr and "--allow-mismatch" in result.stderr
    lost = bench("compare", base, elsewhere, "--allow-mismatch")  # the candidate lacks the base's tape case
    assert lost.returncode == 1 and "FAILED, the candidate lacks 1 case(s) the base has" in lost.stdout
    allowed = bench("compare", base, elsewhere, "--allow-mismatch", "--allow-missing")
    assert allowed.returncode == 0 and "warning: compared despite an identity difference: gpu_names" in allowed.stdout
    assert "only in base: tensorflow/tape" in allowed.stdout


def test_cli_missing_or_empty_runs(runs, tmp_path):
    missing = bench("compare", runs[0], tmp_path / "nope")
    assert missing.returncode == 2 and "no such results file" in missing.stderr
    (tmp_path / "empty.jsonl").write_text("")
    empty = bench("compare", tmp_path / "empty.jsonl", runs[0])
    assert empty.returncode == 2 and "no usable records" in empty.stderr


def test_a_failed_first_process_drops_its_pair_instead_of_failing_the_gate():
    r = rec(noisy(0.1, n=10))
    result = sides([[r], [r], [r]], [None, [r], [r]], Thresholds(), paired=True)
    (c,) = result.comparisons
    assert c.verdict == "same" and c.ratio == pytest.approx(1.0) and "2 process pairs" in c.method


def test_separate_runs_are_widened_by_the_machines_run_to_run_noise_and_name_a_different_load():
    base = rec(noisy(0.010), telemetry={"other_cores": [0.1, 0.3]})
    cand = rec(noisy(0.0105, seed=1), run_id="r2", telemetry={"other_cores": [1.2, 1.5]})
    tight = compare_case([base], [cand], 0.10)
    wide = compare_case([base], [cand], 0.10, run_sd=0.05)
    assert wide.ratio == pytest.approx(tight.ratio) and wide.lo < tight.lo and wide.hi > tight.hi
    assert "widened by the run-to-run noise" in wide.method and wide.detectable > tight.detectable
    assert wide.note == "different load: other processes kept 0.1 cores busy in the base's run, 1.2 in the candidate's"
    # what it could see: nothing the load alone could make, x2.1 here (1.1 more busy cores), less
    half = np.log(wide.hi / wide.lo) / 2
    assert wide.detectable == pytest.approx((1 + 1.1) * np.exp(half) - 1)
    # within one run the cases are paired by round: the machine's run-to-run noise does not enter
    rounds = list(range(30))
    paired = compare_case(
        [rec(noisy(0.010), rounds=rounds)],
        [rec(noisy(0.0105, seed=1), rounds=rounds, backend="xla")],
        0.10,
        run_sd=0.05,
    )
    assert paired.method == compare.PAIRED_BY_ROUND


def test_a_difference_the_load_alone_could_make_is_not_a_verdict():
    """Separate runs: the candidate's ran beside a neighbour that kept one more core busy. Up to x2
    is what that load can cost, so a x1.7 slowdown is inconclusive (exit 0), while x3 is still a
    regression; a faster candidate that had the busier machine is judged as ever."""
    quiet, busy = {"other_cores": [0.0, 0.1]}, {"other_cores": [1.0, 1.1]}
    base = rec(noisy(0.010), telemetry=quiet)
    slower = compare_case([base], [rec(noisy(0.017, seed=1), run_id="r2", telemetry=busy)], 0.10, run_sd=0.05)
    assert slower.verdict == "inconclusive" and "up to x2.0 from the load alone, so not judged regressed" in slower.note
    much = compare_case([base], [rec(noisy(0.030, seed=1), run_id="r2", telemetry=busy)], 0.10, run_sd=0.05)
    assert much.verdict == "regressed"
    faster = compare_case([base], [rec(noisy(0.006, seed=1), run_id="r2", telemetry=busy)], 0.10, run_sd=0.05)
    assert faster.verdict == "improved"  # faster despite the load: the load explains nothing
    back = compare_case(
        [rec(noisy(0.017), telemetry=busy)],
        [rec(noisy(0.010, seed=1), run_id="r2", telemetry=quiet)],
        0.10,
        run_sd=0.05,
    )
    assert back.verdict == "inconclusive" and "not judged improved" in back.note
    result = sides([base], [rec(noisy(0.017, seed=1), run_id="r2", telemetry=busy)], Thresholds())
    assert not result.failed


def test_a_lost_case_or_an_unreadable_line_fails_unless_allowed(runs, tmp_path):
    """The candidate's file lost its first line (a truncated write): that is no pass. An unreadable
    line is bad input (exit 2) and a case the base has and the candidate lacks fails (exit 1), each
    naming what is missing; --allow-missing compares what is left, saying what was dropped."""
    base, same = runs[:2]
    lines = same.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(lines[0][:40] + "\n" + "".join(lines[1:]))
    broken = bench("compare", base, cut)
    assert broken.returncode == 2 and len(broken.stderr.strip().splitlines()) == 1, broken.stderr
    assert "1 unreadable record line(s)" in broken.stderr and "--allow-missing" in broken.stderr
    allowed = bench("compare", base, cut, "--allow-missing")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "dropped 1 bad record(s); kept 1" in allowed.stderr and "only in base: tensorflow/manual" in allowed.stdout
    lost = tmp_path / "lost.jsonl"
    lost.write_text("".join(lines[1:]))
    failed = bench("compare", base, lost)
    assert failed.returncode == 1 and "FAILED, the candidate lacks 1 case(s) the base has" in failed.stdout
    assert "tensorflow/manual/function/cpu" in failed.stdout.splitlines()[-2]  # the summary names it
    result = sides(
        [rec(noisy(0.01)), rec(noisy(0.01), step="tape")], [rec(noisy(0.01), run_id="r2")], allow_missing=False
    )
    assert result.failed and result.lost == (rec([1], step="tape").label,) and not result.regressed


def test_the_report_and_compare_give_the_same_ratio_and_interval(tmp_path):
    """For the same two records the report's speed-up and `compare`'s ratio are one computation:
    two runs of the same cases (one case a group, so each run's case is the other's reference) give
    the same ratio and interval in `report`'s tables and `compare`'s lines, and two cases of one run
    give the same in the report's frame and compare_case."""
    import csv
    import re

    from bench.compare import ROUNDS, How
    from bench.report import frames

    sizes = (100, 200, 400)
    rounds = [i // 3 for i in range(36)]
    a = write(
        tmp_path / "a.jsonl",
        [
            rec(noisy(0.01 * k, n=36, seed=k), step="manual", backend="eager", run_id="ra", rounds=rounds, n=n)
            for k, n in enumerate(sizes, 1)
        ],
    )
    b = write(
        tmp_path / "b.jsonl",
        [
            rec(noisy(0.011 * k, n=36, seed=9 + k), step="manual", backend="eager", run_id="rb", rounds=rounds, n=n)
            for k, n in enumerate(sizes, 1)
        ],
    )
    compared = bench("compare", a, b)
    assert compared.returncode in (0, 1), compared.stderr
    ratios = {}
    for line in compared.stdout.splitlines():
        if line.startswith("tensorflow/manual/eager/cpu"):
            n = int(line.split(" n=")[1].split()[0])
            found = re.search(r"(\d+\.\d{3}) \[(\d+\.\d{3}), (\d+\.\d{3})\]", line)
            ratios[n] = tuple(float(v) for v in found.groups())
    assert sorted(ratios) == list(sizes)
    out = tmp_path / "report"
    assert bench("report", a, b, "--out", out).returncode == 0
    with open(out / "tables" / "cases.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["run_id"] == "rb"]
    assert len(rows) == len(sizes)
    for r in rows:  # the report's speed-up is base/candidate: the inverse of compare's ratio and interval
        ratio, lo, hi = ratios[int(r["n"])]
        speedup, s_lo, s_hi = (float(r[k]) for k in ("speedup", "speedup_lo", "speedup_hi"))
        assert (1 / speedup, 1 / s_hi, 1 / s_lo) == pytest.approx((ratio, lo, hi), abs=6e-4)
    # two cases of one run: the frame's estimate is compare_case's, paired by round
    one = [
        rec(noisy(0.010, n=36, seed=1), step="manual", backend="eager", rounds=rounds),
        rec(noisy(0.012, n=36, seed=2), step="manual", backend="xla", rounds=rounds),
    ]
    df = frames.frame(one)
    e = frames.estimate(df.iloc[0], df.iloc[1])
    c = compare.compare_case([one[0]], [one[1]], How(ROUNDS))
    assert (
        (e.ratio, e.lo, e.hi, e.method)
        == (c.ratio, c.lo, c.hi, c.method)
        == (c.ratio, c.lo, c.hi, compare.PAIRED_BY_ROUND)
    )
    xla = df[df.backend == "xla"].iloc[0]
    assert (xla.speedup, xla.speedup_lo, xla.speedup_hi) == pytest.approx((1 / c.ratio, 1 / c.hi, 1 / c.lo))


# ---------------------------------------------------------------- summaries and JSON for CI


def in_process(*args):
    """(exit status, stdout, stderr) of `python -m bench ARGS` run in this process."""
    import contextlib
    import io

    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def verdict_line(out):
    return next(line for line in out.splitlines() if line.startswith("verdict: "))


def one_run(tmp_path, name, cases):
    """A records file of one run ("r1", 30 rounds: the two sides pair by round) holding `cases`:
    {step: median seconds}."""
    rounds = range(30)
    recs = [rec(noisy(median, seed=k), step=step, rounds=rounds) for k, (step, median) in enumerate(cases.items())]
    return write(tmp_path / f"{name}.jsonl", recs)


@pytest.mark.parametrize(
    "cand, verdict, headline, words",
    [
        ({"manual": 0.010, "tape": 0.015}, "regressed", "REGRESSED", ["verdict: REGRESSED (1 regressed, 1 same)"]),
        ({"manual": 0.010, "tape": 0.010}, "passed", "no regression", ["verdict: no regression (2 same)"]),
        (
            {"manual": 0.010},
            "lost",
            "FAILED: the candidate lacks cases the base has",
            ["only in base: tensorflow/tape"],
        ),
    ],
)
def test_compare_writes_a_markdown_summary_and_json(tmp_path, cand, verdict, headline, words):
    """The summary: the verdict as its heading, the table with what each row could see, how the
    intervals were made, the cases on one side only, and the verdict line that says why. The JSON:
    every comparison's ratio, interval, method, verdict, what it could see, its counters and
    threshold, the pairing and the overall verdict; valid JSON (no NaN), read back as written."""
    base = one_run(tmp_path, "base", {"manual": 0.010, "tape": 0.010})
    candidate = one_run(tmp_path, "cand", cand)
    md, js = tmp_path / "summary.md", tmp_path / "result.json"
    code, out, err = in_process("compare", base, candidate, "--summary", md, "--json", js)
    assert code == (0 if verdict == "passed" else 1), out + err
    summary = md.read_text()
    assert summary.startswith(f"## Comparison: {headline}\n"), summary
    assert "| case | base ms | candidate ms | ratio \\[95% CI\\] | threshold | could see | verdict |" in summary
    assert "paired by round" in summary and "This run could see a slowdown of" in summary
    assert all(w in summary for w in words) and f"**{markdown(verdict_line(out))}**" in summary
    data = json.loads(js.read_text())
    assert data["verdict"] == verdict and data["failed"] == (verdict != "passed") and data["pairing"] == "rounds"
    assert data["summary"] == verdict_line(out) and data["base"] == str(base)
    manual = next(c for c in data["comparisons"] if c["case"]["step"] == "manual")
    assert manual["verdict"] == "same" and manual["threshold"] == 0.05 and manual["counters"] == []
    assert manual["lo"] <= manual["ratio"] <= manual["hi"] and manual["detectable"] >= 0.05
    assert manual["method"] == compare.PAIRED_BY_ROUND and manual["label"].startswith("tensorflow/manual")
    assert data["lost"] == (["tensorflow/tape/function/cpu n=100 m=784 nh=50 float32"] if verdict == "lost" else [])
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_a_comparison_without_an_interval_is_valid_json():
    """Too few samples for an interval: its bounds and what it could see are null, not NaN (which
    no JSON reader takes)."""
    result = sides([rec([0.01, 0.011])], [rec([0.01, 0.012], run_id="r2")])
    (c,) = text.result_json(result)["comparisons"]
    assert c["lo"] is None and c["hi"] is None and c["detectable"] is None and c["verdict"] == "inconclusive"
    json.dumps(text.result_json(result), allow_nan=False)


def test_the_summary_is_appended_to_github_step_summary(tmp_path, monkeypatch):
    """Where GITHUB_STEP_SUMMARY is set (GitHub Actions) each command appends its section to what
    earlier steps wrote, as GitHub expects."""
    page = tmp_path / "step_summary.md"
    page.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(page))
    base = one_run(tmp_path, "base", {"manual": 0.010})
    for _ in range(2):
        code, out, err = in_process("compare", base, base)
        assert code == 0, err
    written = page.read_text()
    assert written.startswith("## an earlier step\n") and written.count("## Comparison: no regression") == 2


def test_a_label_cannot_inject_markup_into_the_summary():
    """Labels and notes come from records files: in the summary they are text, not markup."""
    import re

    result = sides([rec([0.01] * 30, backend="<img src=x>|*x*")], [rec([0.01] * 30, backend="<img src=x>|*x*")])
    summary = text.markdown_section("Comparison", [], result, [])
    unescaped = [m for m in ("<img", "x>", "|*", "*x", "x*") if re.search(r"(?<!\\)" + re.escape(m), summary)]
    assert not unescaped and "\\<img src=x\\>\\|\\*x\\*" in summary, unescaped


@pytest.mark.parametrize("where", ["folder", "under a file", "same file"])
def test_an_unwritable_summary_or_json_is_one_line_and_exit_2_before_anything_runs(tmp_path, where):
    base = one_run(tmp_path, "base", {"manual": 0.010})
    (tmp_path / "a.md").write_text("")
    args = {
        "folder": ["--summary", tmp_path],
        "under a file": ["--json", tmp_path / "a.md" / "x.json"],
        "same file": ["--json", tmp_path / "x", "--summary", tmp_path / "x"],
    }[where]
    code, out, err = in_process("compare", base, base, *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (out, err)
    assert {"folder": "is a folder", "under a file": "is not a folder", "same file": "give each its own"}[where] in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (a file every write to fails) here")
def test_a_summary_that_cannot_be_written_keeps_the_verdict_and_what_was_written(tmp_path):
    """The verdict is printed and the JSON written before the summary fails: one line says so; the
    exit status stays the verdict's (1), or is 2 where the verdict passed (what CI asked for is missing)."""
    base = one_run(tmp_path, "base", {"manual": 0.010, "tape": 0.010})
    slow = one_run(tmp_path, "slow", {"manual": 0.010, "tape": 0.015})
    js = tmp_path / "result.json"
    code, out, err = in_process("compare", base, slow, "--json", js, "--summary", "/dev/full")
    assert code == 1 and "verdict: REGRESSED" in out and json.loads(js.read_text())["verdict"] == "regressed"
    assert len(err.strip().splitlines()) == 1 and "--summary /dev/full: not written" in err
    code, out, err = in_process("compare", base, base, "--summary", "/dev/full")
    assert code == 2 and "verdict: no regression" in out and "not written" in err


# ---------------------------------------------------------------- instructions beside time


def counted(per_call, spread=2e-4):
    """A record's `instructions` as bench/instructions.py writes them: three calls within `spread`."""
    calls = [per_call * (1 - spread / 2), per_call, per_call * (1 + spread / 2)]
    return {"per_call": per_call, "calls": calls, "spread": spread, "tool": "valgrind-3.19.0", "counting": COUNTING}


def judged(base_time, cand_time, base_instr, cand_instr, spread=0.02):
    rounds = list(range(30))
    base = rec(noisy(base_time, spread=spread), rounds=rounds, instructions=counted(base_instr) if base_instr else {})
    cand = rec(
        noisy(cand_time, spread=spread, seed=1), rounds=rounds, instructions=counted(cand_instr) if cand_instr else {}
    )
    return compare_case([base], [cand], 0.05)


@pytest.mark.parametrize(
    "times, instrs, verdict_, rests_on",
    [
        ((0.010, 0.0102), (20e6, 20.4e6), "regressed", "instructions"),  # +2%: time cannot tell, instructions can
        ((0.010, 0.0100), (20e6, 20e6), "same", "instructions"),  # time may say less; instructions settle it
        ((0.010, 0.0130), (20e6, 20e6), "regressed", "time"),  # memory, threads: what instructions cannot see
        ((0.010, 0.0070), (20e6, 20.4e6), "inconclusive", "instructions"),  # the two disagree: not judged
        ((0.010, 0.0070), (20e6, 20e6), "improved", "time"),  # faster at the same instructions
        ((0.010, 0.0100), (20e6, 19.5e6), "improved", "instructions"),
        ((0.010, 0.0102), (20e6, None), "same", "time"),  # one side not counted: time alone
    ],
)
def test_instructions_judge_beside_time(times, instrs, verdict_, rests_on):
    """The rule of compare.INSTRUCTIONS_RULE: a time regression stands; else instructions decide,
    unless time shows the opposite; the row keeps the time's own verdict beside."""
    c = judged(*times, *instrs, spread=0.005)
    assert (c.verdict, c.rests_on) == (verdict_, rests_on), c
    if rests_on == "instructions":
        assert c.threshold == pytest.approx(0.01) and c.time_verdict in (
            "same",
            "improved",
            "regressed",
            "inconclusive",
        )
        assert c.instructions.ratio == pytest.approx(instrs[1] / instrs[0])
        assert c.instructions.lo <= c.instructions.ratio <= c.instructions.hi
    if instrs[1] is None:
        assert c.instructions is None


def test_the_gate_table_and_json_show_instructions_beside_time():
    rounds = list(range(30))
    base = rec(noisy(0.010), rounds=rounds, instructions=counted(20e6))
    cand = rec(noisy(0.0102, seed=1), rounds=rounds, instructions=counted(20.4e6))
    other = rec(noisy(0.010), rounds=rounds, backend="xla"), rec(noisy(0.010, seed=2), rounds=rounds, backend="xla")
    result = sides([base, other[0]], [cand, other[1]], Thresholds(0.05))
    lines = text.table(result)
    assert "instructions [range]" in lines[0]
    row = next(line for line in lines if "/function/" in line)
    assert "1.0200 [" in row and "regressed by instructions, time " in row and "1.0%" in row
    assert "-" in next(line for line in lines if "/xla/" in line)  # a case not counted: time alone
    assert any(line.startswith("instructions: ") and compare.INSTRUCTIONS_RULE in line for line in lines)
    doc = text.result_json(result)
    made = next(c for c in doc["comparisons"] if c["key"].endswith("/function/cpu"))
    assert made["rests_on"] == "instructions" and made["instructions"]["ratio"] == pytest.approx(1.02)
    assert made["verdict"] == "regressed" and doc["verdict"] == "regressed"
    assert r"instructions \[range\]" in text.markdown_section("gate", [], result, [])


def test_instructions_settings_are_read_and_checked():
    t = settings.thresholds_from(
        '[tool.backprop-bench.gate]\ninstructions = "2%"\ninstructions-cases = ["torch/*/eager/cpu"]\n', "p"
    )
    assert t.instructions == pytest.approx(0.02) and t.instruction_cases == ("torch/*/eager/cpu",)
    assert settings.thresholds_from(None, "p").instruction_cases == ("numpy/*/eager/cpu",)
    three = settings.thresholds_from('[tool.backprop-bench.gate]\ninstructions-cases = ["numpy/*/eager"]\n', "p")
    assert three.instruction_cases == ("numpy/*/eager/cpu",)  # on the CPU, as explain reads a case
    for bad, words in (('instructions = "x"', "bad threshold"), ("instructions-cases = 3", "list of case patterns")):
        with pytest.raises(CompareError, match=words):
            settings.thresholds_from(f"[tool.backprop-bench.gate]\n{bad}\n", "p")


def test_counts_made_another_way_are_not_compared():
    """Counts of one thread's work (before every thread was counted) beside counts of every thread's."""
    rounds = list(range(30))
    old = {**counted(20e6), "counting": ""}
    base = rec(noisy(0.010), rounds=rounds, instructions=old)
    cand = rec(noisy(0.010, seed=1), rounds=rounds, instructions=counted(22e6))
    assert compare_case([base], [cand], 0.05).instructions is None


def test_two_different_cases_are_compared_by_time_alone():
    """A report compares one case with another: their instructions are no measure of their times."""
    rounds = list(range(30))
    numpy_like = rec(noisy(0.002), rounds=rounds, backend="eager", instructions=counted(20e6))
    slower = rec(noisy(0.007, seed=1), rounds=rounds, backend="xla", instructions=counted(23e6))
    c = compare_case([numpy_like], [slower], 0.05)
    assert (c.verdict, c.rests_on, c.instructions) == ("regressed", "time", None)
