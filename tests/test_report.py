"""The report from a checked-in fixture of records (tests/fixtures/records.jsonl, written by
make_records.py): files, decodable images, a self-contained HTML page, CSVs that round-trip, and
the helpers behind the numbers (rounding, crossovers, pay-back, speed-ups)."""

import base64
import fcntl
import math
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import records
from bench.records import Record
from bench.report import document as report
from bench.report import fmt
from bench.report import frames as tables

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "records.jsonl"
DRAWN = ("bars", "scaling_n", "roofline", "payback", "distribution")
# The report must run where only NumPy, pandas and matplotlib are installed.
BLOCKED = ("tensorflow", "psutil", "tabulate", "torch", "jax")


def bench_report(*args):
    """`python -m bench report ARGS` in a subprocess that cannot import BLOCKED."""
    code = (
        "import runpy, sys\n"
        f"for name in {BLOCKED!r}: sys.modules[name] = None\n"
        "sys.argv = ['bench', 'report', *sys.argv[1:]]\n"
        "runpy.run_module('bench', run_name='__main__', alter_sys=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The fixture's report, built once for the whole session: the first of pytest-xdist's workers
    to ask builds it under a lock in the folder they share, the others read it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    out = shared / "fixture-report"
    with open(shared / "fixture-report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "fixture-report.stdout").exists():
            result = bench_report(FIXTURE, "--out", out)
            assert result.returncode == 0, result.stderr
            (shared / "fixture-report.stdout").write_text(result.stdout)
    return out, subprocess.CompletedProcess([], 0, (shared / "fixture-report.stdout").read_text(), "")


@pytest.fixture(scope="module")
def df():
    return tables.frame(records.read(FIXTURE))


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------- the report from the fixture


def test_cli_writes_every_file(built):
    out, result = built
    printed = result.stdout.split()
    assert printed[:2] == [str(out / "report.md"), str(out / "report.html")]
    for name in DRAWN:
        for suffix in (".png", ".svg"):
            assert (out / "plots" / (name + suffix)).stat().st_size > 1000
    assert not (out / "plots" / "scaling_nh.png").exists()  # one nh only: skipped, with a note
    assert "Not drawn: no case was timed at two or more values of nh" in (out / "report.md").read_text()
    for name in ("cases", "payback", "crossovers", "runs"):
        assert (out / "tables" / f"{name}.csv").is_file()
    assert not list((out / "tables").glob("median_ms_*.csv"))  # one long table, not one per group
    long = pd.read_csv(out / "tables" / "median_ms.csv")
    assert len(long.groupby(["where", "n"])) == 6 and len(long) == len(
        FIXTURE.read_text().splitlines()
    )  # 2 devices x 3 sizes


def test_pngs_decode(built):
    out, _ = built
    image = pytest.importorskip("matplotlib.image")
    for name in DRAWN:
        path = out / "plots" / f"{name}.png"
        width, height = png_size(path)
        pixels = image.imread(path)
        assert pixels.shape[:2] == (height, width) and width > 400 and height > 300
        assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_html_is_self_contained_and_holds_tables_and_images(built, df):
    out, _ = built
    page = (out / "report.html").read_text()
    assert page.count("<table>") >= 2 * len(tables.groups(df)) + 1
    assert "<th>tensorflow/manual</th>" in page and "<strong>" in page
    images = re.findall(r'<img alt="(\w+)" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    assert [name for name, _ in images] == list(DRAWN)
    for _, data in images:
        assert b"<svg" in base64.b64decode(data)[:2000]
    without_images = re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", page)
    for pattern in (r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", r"<link\b", r"<script\b", r"@import", r"url\("):
        assert not re.search(pattern, without_images, re.I), pattern


def test_distrust_section_names_every_problem(built):
    out, _ = built
    for text in ((out / "report.md").read_text(), (out / "report.html").read_text()):
        start = text.rindex("What to distrust")  # its section, after the results (the header names it too)
        section = text[start : text.index("Precisions", start)]
        assert "tensorflow/tape/eager: IQR 36% of the median" in section  # noisy
        assert "tensorflow/manual/function: traced 3 times" in section  # retrace
        assert "wrong answer: d_x relative error 3.2e-03" in section.replace("\\_", "_")  # failed
        assert "needs about 2.4 GiB" in section  # skipped
        assert "broadcast ran at n=250 instead of 16000" in section  # reduced n
        assert "cpu_model: &#x27;Intel" in section or "cpu\\_model: 'Intel" in section  # fingerprints
        assert "git_dirty: False vs True" in section.replace("\\_", "_")
        assert "run 20260105-100000-aaaa: synthetic(seed=0)" in section


def test_header_summarises_each_run(built):
    out, _ = built
    runs = pd.read_csv(out / "tables" / "runs.csv", index_col="run")
    assert list(runs.columns) == ["20260105-100000-aaaa", "20260106-100000-bbbb"]
    assert runs.loc["GPU", "20260106-100000-bbbb"] == "NVIDIA H100 80GB HBM3 (driver 550.54)"
    assert runs.loc["git", "20260106-100000-bbbb"] == "bbbbbbbbbb (uncommitted changes)"
    assert runs.loc["oneDNN", "20260106-100000-bbbb"] == "0"
    assert runs.loc["TF32", "20260105-100000-aaaa"] == "off in every case"


def test_csvs_round_trip(built, df):
    out, _ = built
    cases = pd.read_csv(out / "tables" / "cases.csv")
    assert list(cases.columns) == [c for c in tables.COLUMNS if c not in tables.OBJECT_COLUMNS]
    numeric = df.drop(columns=list(tables.OBJECT_COLUMNS)).select_dtypes("number").columns
    assert {"median_ms", "ci_lo_ms", "speedup_lo", "gflops", "pct_of_peak", "first_call_ms"} <= set(numeric)
    for column in numeric:
        np.testing.assert_array_equal(cases[column].to_numpy(float), df[column].to_numpy(float), err_msg=column)
    pb = pd.read_csv(out / "tables" / "payback.csv")
    np.testing.assert_array_equal(pb.payback_calls.to_numpy(), tables.payback(df).payback_calls.to_numpy())
    # shown slower than eager: never pays back; neither shown: no count is claimed (the one comparison's interval)
    assert (pb.shown == "slower").sum() == 1 and pb.shown.isna().sum() == 4
    long = pd.read_csv(out / "tables" / "median_ms.csv")
    np.testing.assert_array_equal(long.median_ms.to_numpy(float), df.median_ms.to_numpy(float))
    assert list(long.columns[: len(tables.GROUP)]) == tables.GROUP


def test_crossovers_in_the_fixture(built, df):
    out, _ = built
    crossings = pd.read_csv(out / "tables" / "crossovers.csv")
    pairs = {(c.step, c.faster_beyond, c.slower_beyond) for c in crossings.itertuples()}
    cpu, gpu = "cpu (Intel Xeon @ 2.20GHz)", "gpu (NVIDIA H100 80GB HBM3)"
    assert ("manual", f"xla · {cpu}", f"function · {cpu}") in pairs  # XLA overtakes tf.function
    assert ("manual", f"eager · {gpu}", f"eager · {cpu}") in pairs  # the GPU overtakes the CPU
    assert len(crossings) == len(pairs) == 7 and list(crossings.number) == list(range(1, 8))
    xla_over_function = crossings[
        (crossings.faster_beyond == f"xla · {cpu}") & (crossings.slower_beyond == f"function · {cpu}")
    ]
    assert 250 < xla_over_function.crossing.item() < 2000 and (xla_over_function["var"] == "n").all()


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "value, half_width, text",
    [
        (1.2345, 0.037, "1.2"),  # a 3% half-width: 2 significant figures
        (10.39, 0.2, "10.4"),
        (27.7, 0.83, "28"),
        (123.4, 5.0, "120"),  # rounding to tens
        (8.88, 0.9, "8.9"),  # never fewer than 2 significant figures
        (1.2344, 0.001, "1.234"),
        (1.23456789, 1e-9, "1.235"),  # at most 4
        (0.01234, 0.0004, "0.012"),
        (1.2345, 0.0, "1.234"),
        (1.2345, None, "1.23"),  # spread unknown: 3 significant figures
        (1.2345, math.nan, "1.23"),
        (math.nan, 0.1, "–"),
        (None, 0.1, "–"),
        (0.0, 0.1, "0"),
        (-1.2345, 0.037, "-1.2"),
    ],
)
def test_round_to_spread(value, half_width, text):
    assert fmt.round_to_spread(value, half_width) == text


def test_sig():
    assert [fmt.sig(v) for v in (0.0581, 12345, 3.0)] == ["0.058", "12000", "3.0"]
    assert fmt.sig(115.34, 3) == "115"


@pytest.mark.parametrize(
    "x, ya, yb, expected",
    [
        ([1, 100], [1, 100], [10, 10], [(10.0, 10.0, "b")]),  # one crossing between points
        ([1, 2, 3], [1, 2, 3], [5, 6, 7], []),  # none
        ([1, 10, 100], [1, 100, 1], [10, 10, 10], [(10**0.5, 10.0, "b"), (10**1.5, 10.0, "a")]),  # two
        ([1, 10, 100], [1, 10, 100], [10, 10, 10], [(10.0, 10.0, "b")]),  # crossing at a measured point
        ([1, 10, 100], [1, 10, 1], [10, 10, 10], []),  # touching is not crossing
    ],
)
def test_crossovers(x, ya, yb, expected):
    found = tables.crossovers(x, ya, yb)
    assert len(found) == len(expected)
    for (fx, fy, ff), (ex, ey, ef) in zip(found, expected):
        assert fx == pytest.approx(ex) and fy == pytest.approx(ey) and ff == ef


@pytest.mark.parametrize(
    "overhead_s, saving_s, calls",
    [(0.5, 0.01, 50), (0.5, 0.03, 17), (0.5, 0.0, math.inf), (0.5, -0.1, math.inf), (-0.1, 0.01, 0)],
)
def test_payback_calls(overhead_s, saving_s, calls):
    assert tables.payback_calls(overhead_s, saving_s) == calls


def make(**kw):
    base = dict(
        framework="tensorflow",
        step="manual",
        backend="eager",
        device="cpu",
        n=100,
        m=4,
        nh=3,
        dtype="float32",
        status="ok",
        run_id="r1",
        samples_s=(0.010,) * 5,
        rounds=(0, 1, 2, 3, 4),
    )
    base.update(kw)
    return Record(**base)


def test_payback_against_eager():
    rs = [
        make(first_call_s=0.030),
        make(backend="xla", samples_s=(0.006,) * 5, trace_s=0.1, first_call_s=0.5),
        make(backend="function", samples_s=(0.012,) * 5, trace_s=0.1, first_call_s=0.2),
    ]
    pb = tables.payback(tables.frame(rs)).set_index("backend")
    assert pb.loc["xla", "overhead_ms"] == pytest.approx(100 + 500 - 6)
    assert pb.loc["xla", "saving_ms"] == pytest.approx(4)
    assert pb.loc["xla", "payback_calls"] == 149  # ceil(594 / 4)
    assert pb.loc["function", "payback_calls"] == math.inf  # slower than eager: never
    assert "eager" not in pb.index


def test_speedups_pair_by_round_within_a_run():
    rng = np.random.default_rng(1)
    drift = np.repeat([1.0, 1.3, 0.8, 1.1, 0.9, 1.2, 1.05, 0.95], 1)  # 8 rounds: an unpaired interval needs 8 samples
    ref = tuple(0.010 * drift * (1 + 0.01 * rng.standard_normal(8)))
    fast = tuple(0.005 * drift * (1 + 0.01 * rng.standard_normal(8)))
    rounds = tuple(range(8))
    df = tables.frame(
        [
            make(samples_s=ref, rounds=rounds),
            make(backend="xla", samples_s=fast, rounds=rounds),
            make(backend="function", samples_s=fast, rounds=rounds, run_id="r2"),
        ]
    )
    by = df.set_index("backend")
    assert by.loc["eager", "speedup"] == 1 and by.loc["eager", "reference"] == "tensorflow/manual/eager"
    from bench.compare import ROUNDS, How, compare_case

    one = compare_case(
        [make(samples_s=ref, rounds=rounds)], [make(backend="xla", samples_s=fast, rounds=rounds)], How(ROUNDS)
    )  # the one comparison: Hodges-Lehmann over the rounds' ratios, inverted
    assert (by.loc["xla", "speedup"], by.loc["xla", "speedup_lo"]) == pytest.approx((1 / one.ratio, 1 / one.hi))
    assert by.loc["xla", "speedup_paired"] and not by.loc["function", "speedup_paired"]
    paired = by.loc["xla", "speedup_hi"] - by.loc["xla", "speedup_lo"]
    independent = by.loc["function", "speedup_hi"] - by.loc["function", "speedup_lo"]
    assert paired < independent  # pairing cancels the drift shared by a round
    assert df.row.nunique() == 1  # no case appears twice, so one row, without run ids
    assert by.best.sum() == 0  # xla and function tie there: no fastest is shown


def test_rows_carry_the_run_id_only_when_a_case_appears_in_two_runs():
    df = tables.frame([make(), make(backend="xla"), make(run_id="r2"), make(step="tape", run_id="r2")])
    assert sorted(df.row.unique()) == ["tensorflow/manual [r1]", "tensorflow/manual [r2]", "tensorflow/tape"]


def test_best_and_reference_default_to_first_timed_case():
    eight = dict(rounds=tuple(range(8)))  # enough samples for a median's 95% CI
    df = tables.frame(
        [
            make(step="tape", samples_s=(0.02,) * 8, **eight),
            make(step="tape", backend="xla", samples_s=(0.01,) * 8, **eight),
            make(step="tape", backend="function", status="failed", samples_s=(), rounds=()),
        ]
    )
    assert list(df.reference.unique()) == ["tensorflow/tape/eager"]
    assert df.set_index("backend").best.to_dict() == {"eager": False, "xla": True, "function": False}
    # the fastest only where shown: overlapping CIs, or no CI (five samples), or nothing to beat
    noisy = (0.010, 0.013, 0.009, 0.012, 0.011, 0.010, 0.014, 0.009)
    for cases in (
        [make(samples_s=noisy, **eight), make(backend="xla", samples_s=tuple(v * 0.97 for v in noisy[::-1]), **eight)],
        [make(samples_s=(0.02,) * 5), make(backend="xla")],
        [make(backend="xla", samples_s=(0.01,) * 8, **eight)],
    ):
        assert not tables.frame(cases).best.any()


def test_a_case_is_set_against_the_ceiling_of_its_own_shapes_where_one_was_measured():
    """% of its shapes' peak: a case's GFLOP/s over the best any framework reached at that device and
    size's GEMM shapes; a record without that ceiling (written before it existed) has none."""
    shape = {"gemm_gflops": 100.0, "copy_gbps": 10.0}
    rs = [
        make(flops=10**9, ceilings={**shape, "shape_gflops": 50.0}),  # 100 GFLOP/s at 10 ms
        make(framework="numpy", flops=10**9, ceilings={**shape, "shape_gflops": 80.0}),
        make(n=200, flops=10**9, ceilings=shape),
    ]
    df = tables.frame(rs).set_index(["framework", "n"])
    at_100 = df.loc[[("tensorflow", 100), ("numpy", 100)]]
    assert list(at_100.shape_peak_gflops) == [80.0, 80.0] and list(at_100.pct_of_shape_peak) == [125.0, 125.0]
    assert math.isnan(df.loc[("tensorflow", 200), "pct_of_shape_peak"]) and list(df.pct_of_peak) == [100.0] * 3
    assert rs[0].summary.pct_of_shape_peak == 200.0  # its own framework's, before the device's best


def test_records_with_empty_fields_still_report(tmp_path):
    """Old or unfinished records: no rounds, env, ceilings, flops, first call or peak; None where a
    dict belongs; an ok record without samples."""
    rs = [
        make(rounds=()),
        make(backend="xla", fingerprint=None, ceilings=None, rounds=(1, 2)),
        make(backend="function", samples_s=()),
        make(device="gpu", status="skipped", error=None, samples_s=(), rounds=()),
    ]
    paths = report.write(rs, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Not drawn: no timed case carries measured ceilings" in text
    assert "Not drawn: no compiled case has a first-call time" in text
    assert "no reason recorded" in text
    assert all(p.exists() for p in paths)


def test_markdown_table_escapes_and_pads():
    table = pd.DataFrame({"a": ["x|y", "**1.2**"]}, index=pd.Index(["r1", "row two"], name="step"))
    assert report.markdown_table(table).splitlines() == [
        "| step    | a       |",
        "| ------- | ------- |",
        "| r1      | x\\|y    |",
        "| row two | **1.2** |",
    ]
    assert "<td><strong>1.2</strong></td>" in report.html_table(table)
    assert "<td>x|y</td>" in report.html_table(table)


def test_where_names_the_hardware():
    assert tables.where("cpu", {"cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz"}) == "cpu (Intel Xeon @ 2.20GHz)"
    assert tables.where("gpu", {"gpus": [{"name": "NVIDIA H100"}]}) == "gpu (NVIDIA H100)"
    assert tables.where("gpu", None) == "gpu"


def test_cli_report_goes_on_without_the_broken_records(tmp_path):
    """Merged with a good file (three of the fixture's records: enough to draw, quick to draw)."""
    good, bad = tmp_path / "good.jsonl", tmp_path / "records.jsonl"
    lines = FIXTURE.read_text().splitlines()
    good.write_text("\n".join(lines[1:4]) + "\n")
    bad.write_text(lines[0] + "\n{broken\n\n")
    result = bench_report(good, bad, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"warning: {bad}:2: not a valid JSON line (Expecting property name enclosed in double quotes)",
        "warning: dropped 1 bad record; kept 4",
    ]
    assert (tmp_path / "out" / "report.md").exists()


def test_cli_report_refuses_when_no_record_is_usable(tmp_path):
    bad = tmp_path / "records.jsonl"
    bad.write_text("{broken\n[1]\n")
    result = bench_report(bad, "--out", tmp_path / "out")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "no usable records (2 bad lines, the first" in line
    assert not (tmp_path / "out" / "report.md").exists()


def test_plots_summarise_a_fleet_instead_of_drawing_every_row():
    from bench.report import plots
    from tests.benchmarks import fleet

    df = tables.frame(fleet.records(250, samples=8))
    assert len(tables.groups(df)) > plots.MAX_PANELS
    for fig in (plots.bars(df), plots.distribution(df), plots.scaling(df, "n")):
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) <= plots.MAX_PANELS
        assert fig.bench_notes and "drawn" in fig.bench_notes[0]
        for ax in visible:
            assert len(ax.get_yticklabels()) <= plots.MAX_ROWS or len(ax.get_lines()) <= 3 * plots.MAX_LINES
    pb = tables.payback(df)
    fig = plots.payback(pb)
    assert all(len(ax.patches) <= plots.MAX_ROWS for ax in fig.axes if ax.get_visible())


def test_a_report_killed_while_it_draws_leaves_no_plot_worker(tmp_path):
    psutil = pytest.importorskip("psutil")
    import os
    import signal
    import time

    if (os.cpu_count() or 1) < 2:
        pytest.skip("plots are drawn in worker processes only with two or more CPUs")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "report", str(FIXTURE), "--out", str(tmp_path / "out")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parent, workers = psutil.Process(proc.pid), []
    deadline = time.monotonic() + 60
    while not workers and proc.poll() is None and time.monotonic() < deadline:
        workers = parent.children(recursive=True)
        time.sleep(0.01)
    if not workers:
        pytest.skip("the report finished before its plot workers could be seen")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"plot workers left running: {[p.pid for p in alive]}"


# ---------------------------------------------------------------- the page in a real browser

# Per text element of an SVG shown as a page: its box, and the SVG's own box; JavaScript.
SVG_TEXTS = """() => {
    const svg = document.querySelector('svg'), outer = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom,
                size: parseFloat(getComputedStyle(t).fontSize)};
    });
    return {width: outer.width, height: outer.height, units: svg.viewBox.baseVal.width || outer.width, texts};
}"""


def test_the_report_reads_in_a_real_browser(built, tmp_path):
    """Headless Chromium: the page loads without errors; in every figure, no text runs outside the
    figure (clipped) or over another text, and at the page's width (figures are scaled to fit it)
    every text is at least 11 px high."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("no Chromium here (apt-get install chromium; .ci/run does)")
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    out, _ = built
    problems = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"file://{out / 'report.html'}")
        shown = page.eval_on_selector_all(
            "figure img", "els => els.map(e => [e.alt, e.getBoundingClientRect().width, e.naturalWidth])"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        for name, width, _ in shown:
            svg = out / "plots" / f"{name}.svg"
            page.goto(f"file://{svg}")
            got = page.evaluate(SVG_TEXTS)
            scale = width / got["units"]  # a text's size is in the SVG's own units (its viewBox)
            for t in got["texts"]:
                if t["x0"] < -1 or t["y0"] < -1 or t["x1"] > got["width"] + 1 or t["y1"] > got["height"] + 1:
                    problems.append(f"{name}: {t['text']!r} runs outside the figure")
                if t["size"] * scale < 11:
                    problems.append(f"{name}: {t['text']!r} is {t['size'] * scale:.1f} px high on the page")
            texts = got["texts"]
            for i, a in enumerate(texts):
                for b in texts[i + 1 :]:
                    w = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
                    h = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
                    if w > 2 and h > 2:
                        problems.append(f"{name}: {a['text']!r} overlaps {b['text']!r}")
        browser.close()
    assert errors == [] and len(shown) >= len(DRAWN)
    assert problems == [], "\n".join(problems[:40])


def test_the_headline_claims_a_fastest_case_only_where_its_interval_does():
    rng = np.random.default_rng(0)

    def case(backend, level, spread):
        samples = tuple(level * (1 + spread * rng.standard_normal(30)))
        return Record(
            framework="torch",
            step="manual",
            backend=backend,
            device="cpu",
            n=1000,
            m=784,
            nh=50,
            dtype="float32",
            status="ok",
            run_id="r",
            samples_s=samples,
            rounds=tuple(range(30)),
        )

    clear = report._summary(tables.frame([case("eager", 0.020, 0.01), case("compile", 0.010, 0.01)]))
    assert "fastest **torch/manual/compile**, " in clear[0] and "not told apart" not in clear[0]
    close = report._summary(tables.frame([case("eager", 0.0102, 0.3), case("compile", 0.0100, 0.3)]))
    assert "and **torch/manual/" in close[0] and "not told apart (" in close[0]
    assert "against the reference torch/manual/eager: not told apart" in close[0] or "×" not in close[0].split("ms")[-1]


def test_a_crossing_is_supported_only_where_the_intervals_are_apart_on_both_sides():
    rng = np.random.default_rng(1)

    def case(backend, n, level, spread):
        return Record(
            framework="torch",
            step="manual",
            backend=backend,
            device="cpu",
            n=n,
            m=784,
            nh=50,
            dtype="float32",
            status="ok",
            run_id="r",
            samples_s=tuple(level * (1 + spread * rng.standard_normal(40))),
            rounds=tuple(range(40)),
        )

    sharp = [
        case("eager", 1000, 0.010, 0.01),
        case("eager", 2000, 0.030, 0.01),
        case("compile", 1000, 0.015, 0.01),
        case("compile", 2000, 0.020, 0.01),
    ]
    blurred = [
        case("eager", 1000, 0.010, 0.5),
        case("eager", 2000, 0.030, 0.01),
        case("compile", 1000, 0.013, 0.5),
        case("compile", 2000, 0.020, 0.01),
    ]
    (clear,) = tables.scaling_crossovers(tables.frame(sharp), "n").itertuples()
    (unclear,) = tables.scaling_crossovers(tables.frame(blurred), "n").itertuples()
    assert clear.supported and not unclear.supported
    assert (
        "not shown to cross"
        in report.crossover_table(tables.scaling_crossovers(tables.frame(blurred), "n")).iloc[0]["either side"]
    )
