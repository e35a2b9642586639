"""Property-based fuzzing of every entry point that reads a file or a name a user hands it: records
files -> report / compare / export, data files -> the loader, revisions -> the gate.

Whatever the input: exit codes 0, 1 or 2 only (never 3, an internal error), errors in one line, no
traceback, nothing executed, memory under a cap. `make test` runs a bounded number of examples
(hypothesis profile "ci"); `make fuzz` runs many more (profile "fuzz", BENCH_FUZZ_EXAMPLES each).
"""

import contextlib
import gzip
import io
import json
import os
import pickle
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.data import DataError, load_mnist  # noqa: E402
from bench.git import NoRevision, RevisionError, resolve  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "records.jsonl"
BASE = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
FUZZ_EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "3000"))
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MEMORY_CAP_MIB = 300

# ---------------------------------------------------------------- hostile values

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["\n# heading", "[x](javascript:alert(1))", "\x1b[31mred", "<script>", "$x^2$", "a|b", "1e400"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
FIELDS = sorted({k for r in BASE for k in r})


@st.composite
def mutated_record(draw):
    """A fixture record with some fields replaced, removed or added."""
    rec = dict(draw(st.sampled_from(BASE)))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(FIELDS + ["samples_s", "rounds", "ceilings", "env", "extra"]))
        action = draw(st.sampled_from(["set", "del", "samples", "env"]))
        if action == "del":
            rec.pop(field, None)
        elif action == "samples":
            rec["samples_s"] = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12))
        elif action == "env":
            env = rec.get("env") if isinstance(rec.get("env"), dict) else {}
            rec["env"] = {
                **env,
                draw(st.sampled_from(["gpus", "frameworks", "cpu_model", "hostname", "git_commit", "env"])): draw(
                    json_value
                ),
            }
        else:
            rec[field] = draw(json_value)
    return rec


@st.composite
def records_file(draw):
    """Lines of a records file: mutated records, raw junk, cut lines, deep nesting."""
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["record", "record", "record", "junk", "cut", "deep", "bigint"]))
        if kind == "record":
            lines.append(json.dumps(draw(mutated_record())).encode())
        elif kind == "junk":
            lines.append(draw(st.binary(max_size=60)).replace(b"\n", b" "))
        elif kind == "cut":
            lines.append(json.dumps(draw(mutated_record())).encode()[: draw(st.integers(0, 300))])
        elif kind == "deep":
            depth = draw(st.integers(1, 5000))
            lines.append(b"[" * depth + b"]" * depth)
        else:
            lines.append(b'{"n": ' + b"9" * draw(st.integers(4000, 5000)) + b"}")
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))


def run_cli(args):
    """(exit code, stderr) of `python -m bench ARGS` in this process, stdout discarded."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
    return code, err.getvalue()


def assert_clean(code, err):
    assert code in (0, 1, 2), f"exit {code}: {err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("python -m bench"), err[-500:]


@contextlib.contextmanager
def memory_cap():
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_CAP_MIB * 2**20, f"{peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------- records -> compare, export, report


@given(records_file(), records_file())
def test_compare_and_export_take_any_records_file(tmp_path_factory, a, b):
    folder = tmp_path_factory.mktemp("records")
    (folder / "a.jsonl").write_bytes(a)
    (folder / "b.jsonl").write_bytes(b)
    with memory_cap():
        assert_clean(*run_cli(["compare", folder / "a.jsonl", folder / "b.jsonl"]))
        assert_clean(
            *run_cli(["export", folder / "a.jsonl", "--format", "pytest-benchmark", "--out", folder / "out.json"])
        )


@given(records_file())
def test_the_report_document_takes_any_records_file(tmp_path_factory, content):
    """The report without its figures (frames, tables, markdown, HTML, CSV): many examples."""
    from bench import records
    from bench.report import document, frames

    folder = tmp_path_factory.mktemp("doc")
    (folder / "r.jsonl").write_bytes(content)
    with memory_cap():  # reading the file and its frame: where a hostile file could make memory grow
        good, _ = records.load(folder / "r.jsonl")
        if not good:
            return
        df = frames.frame(good)
    pb = frames.payback(df)
    crossings = frames.scaling_crossovers(df, "n")
    blocks = document.document(good, df, pb, crossings, {})
    md = document.to_markdown(blocks)
    document.to_html(blocks, {})
    document.write_csvs(df, pb, crossings, good, folder / "tables")
    for line in md.splitlines():  # record text never starts a heading, a link or raw HTML
        assert not line.startswith("#") or line.split(" ", 1)[0] in ("#", "##", "###")
    import re

    assert not re.search(r"(?<!\\)\]\(javascript|(?<!\\)<script", md)  # only their escaped forms


@settings(max_examples=int(os.environ.get("BENCH_FUZZ_REPORTS", "4")))
@given(records_file())
def test_the_whole_report_takes_any_records_file(tmp_path_factory, content):
    """The command with its figures (slow: a few examples; make fuzz runs more). Its memory is
    capped in the test above, where the file is read, over more examples: tracemalloc here would
    slow the drawing threefold and cannot see the renderer's own buffers."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "r.jsonl").write_bytes(content)
    assert_clean(*run_cli(["report", folder / "r.jsonl", "--out", folder / "out"]))


# ---------------------------------------------------------------- data files -> the loader


def _npz_bytes(x, y):
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x, y_train=y)
    return buffer.getvalue()


def _pickle_bytes(x, y, protocol=2):
    return gzip.compress(pickle.dumps(((x, y), (x[:1], y[:1]), (x[:1], y[:1])), protocol=protocol))


arrays = st.tuples(
    st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.bool_, "timedelta64[s]", "V1", np.complex64]),
    st.sampled_from([(5, 784), (5, 28, 28), (0, 784), (5, 783), (5,), (3, 28, 27)]),
    st.sampled_from([np.uint8, np.float32, np.int8, "M8[D]", "U3"]),
    st.sampled_from([(5,), (4,), (5, 1), ()]),
    st.one_of(st.floats(-2, 300), st.just(float("nan"))),
)


@st.composite
def data_file(draw):
    """(suffix, bytes): a valid-looking npz or pickle, with generated arrays, then maybe mutated."""
    xd, xs, yd, ys, fill = draw(arrays)
    x = (
        np.full(xs, fill if np.dtype(xd).kind in "fc" else 1).astype(xd)
        if np.dtype(xd).kind != "V"
        else np.zeros(xs, xd)
    )
    y = np.zeros(ys, yd)
    suffix = draw(st.sampled_from([".npz", ".pkl.gz"]))
    try:
        data = _npz_bytes(x, y) if suffix == ".npz" else _pickle_bytes(x, y, draw(st.sampled_from([2, 4, 5])))
    except Exception:  # a combination NumPy itself will not write
        data = b""
    for _ in range(draw(st.integers(0, 3))):  # byte-level damage
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 8)) :]
    return suffix, data


@given(data_file(), st.integers(1, 10))
def test_the_loader_takes_any_data_file(tmp_path_factory, file, rows):
    suffix, data = file
    path = tmp_path_factory.mktemp("data") / f"mnist{suffix}"
    path.write_bytes(data)
    with memory_cap():
        try:
            x, y, held = load_mnist(path, rows=rows)
        except DataError as e:
            assert "\n" not in str(e) and "allow_pickle" not in str(e)
            return
    assert x.dtype == np.float32 and x.shape[1] == 784 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (x.shape[0],) and held >= x.shape[0] >= 1


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((Evil(), None), None, None))))
    with pytest.raises(DataError, match="refused"):
        load_mnist(path)
    assert not marker.exists()


# ---------------------------------------------------------------- revisions -> the gate


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", repo], check=True)
    for i in range(3):
        (repo / "f").write_text(str(i))
        subprocess.run(["git", "-C", repo, "add", "f"], check=True)
        subprocess.run(
            ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}"], check=True
        )
    return repo


revision = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["HEAD", "master", "main", "HEAD~", "HEAD^", "-", "^", "@", ":/c"]),
        st.text(alphabet="~^0123456789{}:/@-.x ", max_size=8),
    ),
)


@given(revision)
def test_any_revision_is_a_commit_a_clear_error_or_nothing_to_compare(small_repo, rev):
    try:
        sha = resolve(small_repo, rev)
    except (RevisionError, NoRevision) as e:
        assert "\n" not in str(e)
        return
    assert len(sha) == 40 and int(sha, 16) >= 0
