"""Tests for bench/data.py: safe MNIST loading and the seeded synthetic fallback."""

import gzip
import os
import pickle
import shlex
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import data
from bench.data import DataError, Problem, load_mnist, make_problem

ROOT = Path(__file__).resolve().parent.parent

N = 100


def lesson_arrays(n=N, seed=1):
    """Images and labels as the lesson's pickle holds them: float32 (n, 784) in [0, 1], int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    x[0, 0], x[0, 1] = 0.0, 1.0
    y = rng.integers(0, 10, size=n).astype(np.int64)
    return x, y


def write_pickle(path, obj, protocol=2, pickler=pickle.Pickler):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        pickler(f, protocol=protocol).dump(obj)
    return path


def write_lesson(path, x, y, protocol=2):
    split = (x[:10], y[:10])
    return write_pickle(path, ((x, y), split, split), protocol)


def write_keras(path, x, y, **extra):
    np.savez(path, x_train=x, y_train=y, x_test=x[:5], y_test=y[:5], **extra)
    return path


def keras_arrays(n=N, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    return x, rng.integers(0, 10, size=n, dtype=np.uint8)


def data_error(path_or_call):
    """The DataError raised by loading path (or calling path_or_call); its message must be one line."""
    with pytest.raises(DataError) as info:
        if callable(path_or_call):
            path_or_call()
        else:
            load_mnist(path_or_call)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message
    return message


@pytest.fixture
def no_default_files(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DEFAULT_FILES", (tmp_path / "absent.pkl.gz", tmp_path / "absent.npz"))


# Synthetic data


def test_synthetic_shapes_dtypes_and_ranges(no_default_files):
    p = make_problem(200, 30, seed=0)
    assert isinstance(p, Problem)
    assert (p.n, p.m) == (200, 30)
    assert p.x.shape == (200, 30) and p.y.shape == (200,)
    assert p.x.dtype == np.float32 and p.y.dtype == np.float32
    assert p.x.flags.c_contiguous and p.y.flags.c_contiguous
    assert p.x.min() >= 0 and p.x.max() < 1
    assert set(np.unique(p.y)) <= set(range(10))
    assert p.source == "synthetic(seed=0)"


def test_synthetic_is_deterministic_per_seed(no_default_files):
    a, b, c = make_problem(64, 784, seed=3), make_problem(64, 784, seed=3), make_problem(64, 784, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert not np.array_equal(a.y, c.y)
    assert c.source == "synthetic(seed=4)"


def test_synthetic_full_size_is_drawn_in_float32_with_no_copy(no_default_files):
    """The full size is drawn straight into float32: no float64 array drawn and cast (twice the
    memory and the time). Asserted on the memory allocated at its peak, not on a clock."""
    import tracemalloc

    tracemalloc.start()
    try:
        p = make_problem(50000, 784, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.x.shape == (50000, 784) and p.x.dtype == np.float32
    assert peak < 1.1 * (p.x.nbytes + p.y.nbytes), peak


@pytest.mark.parametrize("n, m", [(0, 784), (10, -1), (-5, 10), (10, 0)])
def test_sizes_below_one_are_refused(no_default_files, n, m):
    message = data_error(lambda: make_problem(n, m))
    assert "must be >= 1" in message


def test_non_integer_size_is_refused(no_default_files):
    assert "integer" in data_error(lambda: make_problem(10.5, 784))


# The lesson's pickle


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", ["mnist.pkl.gz", "mnist.pkl"])
def test_lesson_pickle_loads(tmp_path, protocol, name):
    x, y = lesson_arrays()
    path = write_lesson(tmp_path / name, x, y, protocol)
    lx, ly, _ = load_mnist(path)
    assert lx.shape == (N, 784) and ly.shape == (N,)
    assert lx.dtype == np.float32 and ly.dtype == np.float32
    assert lx.flags.c_contiguous and ly.flags.c_contiguous
    np.testing.assert_array_equal(lx, x)
    np.testing.assert_array_equal(ly, y.astype(np.float32))


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes, as the original deeplearning.net pickle does."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def test_python2_style_pickle_with_numpy_core_names_loads(tmp_path):
    x, y = lesson_arrays()
    split = (x[:10], y[:10])
    raw = tmp_path / "raw.pkl"
    write_pickle(raw, ((x, y), split, split), 2, Python2Pickler)
    body = raw.read_bytes()
    assert b"numpy._core.multiarray\n" in body or b"numpy.core.multiarray\n" in body
    body = body.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(body))
    lx, ly, _ = load_mnist(path)
    np.testing.assert_array_equal(lx, x)
    np.testing.assert_array_equal(ly, y)


class OpenForWriting:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


class RunShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("evil", ["open", "system"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, protocol, evil):
    target = tmp_path / "pwned"
    payload = OpenForWriting(target) if evil == "open" else RunShell(f"touch {shlex.quote(str(target))}")
    x, y = lesson_arrays(5)
    path = write_pickle(tmp_path / "x.pkl.gz", ((x, y), (payload, y), (x, y)), protocol)
    message = data_error(path)
    assert "refused" in message and evil in message and "x.pkl.gz" in message
    assert not target.exists()


def test_refused_module_is_never_imported(tmp_path):
    module = "colorsys"
    was_imported = module in sys.modules
    path = tmp_path / "mnist.pkl"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\nrgb_to_hsv\n.")
    assert f"refused to unpickle {module}.rgb_to_hsv" in data_error(path)
    assert (module in sys.modules) == was_imported


def test_truncated_gzip_is_refused(tmp_path):
    x, y = lesson_arrays()
    path = write_lesson(tmp_path / "mnist.pkl.gz", x, y)
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2])
    assert "mnist.pkl.gz" in data_error(path)


def test_non_gzip_named_pkl_gz_is_refused(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_text("<html>404 Not Found</html>\n")
    assert "mnist.pkl.gz" in data_error(path)


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage", b"not a pickle\n"])
def test_corrupt_plain_pickle_is_refused(tmp_path, content):
    path = tmp_path / "mnist.pkl"
    path.write_bytes(content)
    data_error(path)


@pytest.mark.parametrize("obj", [{"x": 1}, (), ((1, 2, 3),), "text", [None]])
def test_pickle_of_wrong_structure_is_refused(tmp_path, obj):
    assert "expected" in data_error(write_pickle(tmp_path / "mnist.pkl.gz", obj))


# Keras' npz


def test_keras_npz_loads_and_is_scaled(tmp_path):
    x, y = keras_arrays()
    lx, ly, _ = load_mnist(write_keras(tmp_path / "mnist.npz", x, y))
    assert lx.shape == (N, 784) and ly.shape == (N,)
    assert lx.dtype == np.float32 and ly.dtype == np.float32
    assert lx.flags.c_contiguous and ly.flags.c_contiguous
    assert lx.min() == 0.0 and lx.max() == 1.0
    np.testing.assert_allclose(lx, x.reshape(N, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ly, y)


def test_npz_with_object_arrays_is_refused(tmp_path):
    x = np.empty(N, dtype=object)
    x[:] = [np.zeros((28, 28), np.uint8)] * N
    _, y = keras_arrays()
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x, y_train=y)
    assert "mnist.npz" in data_error(path)


def test_npz_missing_key_is_refused(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=keras_arrays()[0])
    assert "y_train" in data_error(path)


def test_npy_named_npz_is_refused(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as f:
        np.save(f, keras_arrays()[0])
    assert "npz" in data_error(path)


def test_corrupt_zip_is_refused(tmp_path):
    x, y = keras_arrays()
    path = write_keras(tmp_path / "mnist.npz", x, y)
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2])
    data_error(path)


# Shapes, dtypes and values


def bad_arrays():
    x, y = lesson_arrays(10)
    cases = {
        "images 1-D": (x.ravel(), y),
        "images 783 wide": (x[:, :783], y),
        "images 27x27": (x.reshape(10, 28, 28)[:, :27, :27], y),
        "images 4-D": (x.reshape(10, 28, 28, 1), y),
        "no rows": (x[:0], y[:0]),
        "labels too long": (x, np.append(y, 1)),
        "labels 2-D": (x, y.reshape(10, 1)),
        "label 10": (x, np.where(np.arange(10) == 3, 10, y)),
        "label -1": (x, np.where(np.arange(10) == 3, -1, y)),
        "label 2.5": (x, np.where(np.arange(10) == 3, 2.5, y)),
        "label nan": (x, np.where(np.arange(10) == 3, np.nan, y)),
        "pixel 1.5": (np.where(x > 0.5, 1.5, x).astype(np.float32), y),
        "pixel -0.1": (x - np.float32(0.1), y),
        "pixel nan": (np.where(x > 0.5, np.nan, x).astype(np.float32), y),
        "pixel inf": (np.where(x > 0.5, np.inf, x).astype(np.float32), y),
        "integer pixel 300": ((x * 300).astype(np.int32), y),
        "string labels": (x, y.astype(str)),
        "complex images": (x.astype(np.complex64), y),
        "images not an array": (x.tolist(), y),
    }
    return list(cases.items())


@pytest.mark.parametrize("case", bad_arrays(), ids=lambda c: c[0])
def test_bad_arrays_in_pickle_are_refused(tmp_path, case):
    _, (x, y) = case
    path = write_pickle(tmp_path / "mnist.pkl.gz", ((x, y), (x, y), (x, y)), pickle.HIGHEST_PROTOCOL)
    message = data_error(path)
    assert message.startswith(f"{path}: ") and "refused" not in message


@pytest.mark.parametrize(
    "x_shape, y_shape", [((N, 28, 27), (N,)), ((N, 784, 1), (N,)), ((N, 28, 28), (N - 1,)), ((N, 28, 28), (N, 2))]
)
def test_bad_shapes_in_npz_are_refused(tmp_path, x_shape, y_shape):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros(x_shape, np.uint8), y_train=np.zeros(y_shape, np.uint8))
    assert "shape" in data_error(path)


def test_npz_labels_out_of_range_are_refused(tmp_path):
    x, y = keras_arrays()
    y[7] = 12
    assert "labels" in data_error(write_keras(tmp_path / "mnist.npz", x, y))


def test_flat_npz_images_are_accepted(tmp_path):
    x, y = keras_arrays()
    lx, _, _ = load_mnist(write_keras(tmp_path / "mnist.npz", x.reshape(N, 784), y))
    assert lx.shape == (N, 784)


# Missing and misnamed files


def test_missing_file_is_refused(tmp_path):
    assert "no such file" in data_error(tmp_path / "mnist.pkl.gz")


@pytest.mark.parametrize("name", ["mnist.csv", "mnist", "mnist.npy", "mnist.pkl.bz2"])
def test_unknown_suffix_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    assert "suffix" in data_error(path)


def test_directory_is_refused(tmp_path):
    (tmp_path / "mnist.npz").mkdir()
    assert "not a regular file" in data_error(tmp_path / "mnist.npz")


def test_data_error_is_one_line_even_for_multiline_input():
    assert str(DataError("a\nb\r\nc")) == "a b c"
    assert isinstance(DataError("x"), ValueError)


# make_problem with real files


def test_make_problem_uses_first_rows_of_default_file(monkeypatch, tmp_path):
    x, y = lesson_arrays()
    path = write_lesson(tmp_path / "mnist.pkl.gz", x, y)
    monkeypatch.setattr(data, "DEFAULT_FILES", (path, tmp_path / "mnist.npz"))
    p = make_problem(40, 784)
    assert p.source == f"mnist:{path}"
    assert (p.n, p.m) == (40, 784)
    assert p.x.flags.c_contiguous and p.x.dtype == np.float32 and p.y.dtype == np.float32
    np.testing.assert_array_equal(p.x, x[:40])
    np.testing.assert_array_equal(p.y, y[:40])


def test_make_problem_falls_to_second_default_file(monkeypatch, tmp_path):
    x, y = keras_arrays()
    path = write_keras(tmp_path / "mnist.npz", x, y)
    monkeypatch.setattr(data, "DEFAULT_FILES", (tmp_path / "mnist.pkl.gz", path))
    p = make_problem(N, 784)
    assert p.source == f"mnist:{path}" and p.n == N


def test_make_problem_falls_back_when_n_exceeds_rows(monkeypatch, tmp_path):
    x, y = keras_arrays()
    path = write_keras(tmp_path / "mnist.npz", x, y)
    monkeypatch.setattr(data, "DEFAULT_FILES", (tmp_path / "mnist.pkl.gz", path))
    p = make_problem(N + 1, 784, seed=5)
    assert p.source == f"synthetic(seed=5; mnist:{path} has {N} rows, n={N + 1} asked)"
    assert (p.n, p.m) == (N + 1, 784)
    np.testing.assert_array_equal(p.x, make_problem(N + 1, 784, seed=5, data=None).x)


def test_make_problem_falls_back_when_m_is_not_784(monkeypatch, tmp_path):
    x, y = lesson_arrays()
    path = write_lesson(tmp_path / "mnist.pkl.gz", x, y)
    monkeypatch.setattr(data, "DEFAULT_FILES", (path,))
    p = make_problem(10, 50)
    assert p.source.startswith("synthetic(seed=0; ") and "m=50" in p.source
    assert (p.n, p.m) == (10, 50)


def test_make_problem_raises_when_explicit_file_does_not_fit(tmp_path):
    x, y = lesson_arrays()
    path = write_lesson(tmp_path / "mnist.pkl.gz", x, y)
    assert f"n={N + 1}" in data_error(lambda: make_problem(N + 1, 784, data=path))
    assert "m=50" in data_error(lambda: make_problem(10, 50, data=path))
    assert make_problem(N, 784, data=str(path)).source == f"mnist:{path}"


def test_make_problem_propagates_explicit_load_errors(tmp_path):
    assert "no such file" in data_error(lambda: make_problem(10, 784, data=tmp_path / "mnist.npz"))
    bad = tmp_path / "evil.pkl"
    write_pickle(bad, OpenForWriting(tmp_path / "pwned"))
    assert "refused" in data_error(lambda: make_problem(10, 784, data=bad))
    assert not (tmp_path / "pwned").exists()


def test_repo_paths_are_shown_relative(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "REPO", tmp_path)
    (tmp_path / "data").mkdir()
    x, y = keras_arrays()
    path = write_keras(tmp_path / "data" / "mnist.npz", x, y)
    assert make_problem(5, 784, data=path).source == "mnist:data/mnist.npz"
    assert data_error(tmp_path / "data" / "x.pkl.gz").startswith("data/x.pkl.gz: ")


# ---------------------------------------------------------------- bounded memory (hostile files)


def _peak_mib(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_a_tiny_pickle_declaring_a_huge_array_is_refused_without_allocating_it(tmp_path):
    x = np.zeros((1_000_000, 784), dtype="V0")  # no bytes at all, a 3 GB array once converted
    path = write_lesson(tmp_path / "mnist.pkl", x, np.zeros(1_000_000, "V0"), pickle.HIGHEST_PROTOCOL)
    assert path.stat().st_size < 20_000
    errors = []

    def load():
        try:
            load_mnist(path, rows=500)
        except DataError as e:
            errors.append(str(e))

    assert _peak_mib(load) < 50
    assert errors and "images are an array of dtype |V0" in errors[0]


def test_a_compressed_npz_of_a_million_rows_converts_only_the_rows_needed(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=np.zeros((1_000_000, 28, 28), np.uint8), y_train=np.zeros(1_000_000, np.uint8))
    assert path.stat().st_size < 2_000_000
    got = {}
    peak = _peak_mib(lambda: got.update(zip("xyn", load_mnist(path, rows=500))))
    assert got["x"].shape == (500, 784) and got["n"] == 1_000_000
    assert peak < 20, f"{peak:.0f} MiB for 500 rows"


def test_a_pickle_that_unpacks_past_the_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_UNPACKED_BYTES", 1 << 20)
    x, y = np.zeros((2000, 784), np.float32), np.zeros(2000, np.float32)  # 6 MB of pixels
    path = write_lesson(tmp_path / "mnist.pkl.gz", x, y, 2)
    with pytest.raises(DataError, match="unpacks to over 1 MiB"):
        load_mnist(path)


def test_timedelta_labels_are_refused_in_one_line(tmp_path):
    path = write_keras(tmp_path / "mnist.npz", np.zeros((10, 28, 28), np.uint8), np.zeros(10, "timedelta64[s]"))
    with pytest.raises(DataError, match="y_train has dtype timedelta64"):
        load_mnist(path)
    x = np.zeros((10, 784), np.float32)
    with pytest.raises(DataError, match="labels are an array of dtype timedelta64"):
        load_mnist(write_lesson(tmp_path / "mnist.pkl", x, np.zeros(10, "timedelta64[s]"), 2))


def test_a_non_zip_npz_gets_no_advice_about_pickles(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"\x93NUMPY" + b"x" * 100)
    with pytest.raises(DataError) as e:
        load_mnist(path)
    assert "not a zip archive" in str(e.value) and "pickle" not in str(e.value)
