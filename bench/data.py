"""The problem: MNIST from data/ when present, loaded safely, else seeded synthetic data of the same shape."""

from __future__ import annotations

import codecs
import gzip
import importlib
import operator
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILES = (REPO / "data" / "mnist.pkl.gz", REPO / "data" / "mnist.npz")

SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10

PICKLE_SUFFIXES = (".pkl.gz", ".pkl", ".gz")
NPZ_SUFFIX = ".npz"


class DataError(ValueError):
    """A data file is missing, unreadable, unsafe or of the wrong shape; str() is a one-line message naming the file and the problem."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))


@dataclass(frozen=True)
class Problem:
    """x: (n, m) float32 pixels in [0, 1]; y: (n,) float32 digit labels 0..9; source: where they came from."""

    x: np.ndarray
    y: np.ndarray
    source: str

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def m(self) -> int:
        return self.x.shape[1]


def _shown(path: str | Path) -> str:
    """The path as records and messages show it: relative to the repository when inside it."""
    p = Path(os.path.abspath(path))
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _numpy_attr(names: tuple[str, ...], attr: str):
    """attr from the first importable module in names (numpy 2 moved numpy.core to numpy._core)."""
    for name in names:
        try:
            return getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {names} has {attr}")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """Everything a pickle of plain NumPy arrays names, under the module names numpy 1.x and 2.x write."""
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _numpy_attr(multiarray, "_reconstruct")
    frombuffer = _numpy_attr(numeric, "_frombuffer")
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for module in multiarray:
        allowed[(module, "_reconstruct")] = reconstruct
    for module in numeric:
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals in _allowed_globals(); never imports what the pickle names."""

    def __init__(self, file, shown: str):
        super().__init__(file, encoding="latin1")
        self._shown = shown
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._shown}: refused to unpickle {module}.{name} "
                "(only NumPy arrays and plain containers are allowed)"
            ) from None


def _read_pickle(path: Path, shown: str):
    """(images, labels) of the training split of the lesson's ((train), (valid), (test)) pickle."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        obj = _ArrayUnpickler(f, shown).load()
    train = obj[0] if isinstance(obj, (tuple, list)) and obj else None
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise DataError(
            f"{shown}: expected ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)), "
            f"got {type(obj).__name__}"
        )
    return train[0], train[1]


def _read_npz(path: Path, shown: str):
    """(x_train, y_train) of Keras' mnist.npz, read without unpickling anything."""
    archive = np.load(path, allow_pickle=False)
    if isinstance(archive, np.ndarray):
        raise DataError(f"{shown}: is a single .npy array, expected an .npz archive with x_train and y_train")
    with archive:
        missing = [k for k in ("x_train", "y_train") if k not in archive.files]
        if missing:
            has = ", ".join(archive.files) or "nothing"
            raise DataError(f"{shown}: no {', '.join(missing)} in the archive (has {has})")
        return archive["x_train"], archive["y_train"]


def _is_real_number_array(a) -> bool:
    return isinstance(a, np.ndarray) and (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating))


def _checked(shown: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies: x (N, 784) float32 in [0, 1], y (N,) float32 integral in 0..9.
    Integer images are bytes 0..255 and are scaled by 1/255; float images must already be in [0, 1]."""
    if not _is_real_number_array(x):
        raise DataError(f"{shown}: images are {_describe(x)}, expected a numeric array")
    if not _is_real_number_array(y):
        raise DataError(f"{shown}: labels are {_describe(y)}, expected a numeric array")
    if not (x.ndim == 2 and x.shape[1] == PIXELS or x.ndim == 3 and x.shape[1:] == (SIDE, SIDE)):
        raise DataError(f"{shown}: images have shape {x.shape}, expected (N, {PIXELS}) or (N, {SIDE}, {SIDE})")
    N = x.shape[0]
    if N == 0:
        raise DataError(f"{shown}: no training rows")
    if y.shape != (N,):
        raise DataError(f"{shown}: labels have shape {y.shape}, expected ({N},) to match the images")

    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{shown}: integer pixels span {lo}..{hi}, expected 0..255")
        x = x.reshape(N, PIXELS).astype(np.float32) / np.float32(255)
    else:
        x = x.reshape(N, PIXELS).astype(np.float32)
    lo, hi = x.min(), x.max()
    if not np.isfinite([lo, hi]).all():
        raise DataError(f"{shown}: images contain NaN or infinite values")
    if lo < 0 or hi > 1:
        raise DataError(f"{shown}: pixels span [{lo:g}, {hi:g}], expected [0, 1]")

    lo, hi = y.min(), y.max()
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite([lo, hi]).all():
            raise DataError(f"{shown}: labels contain NaN or infinite values")
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{shown}: labels are not whole numbers")
    if lo < 0 or hi > CLASSES - 1:
        raise DataError(f"{shown}: labels span {lo:g}..{hi:g}, expected 0..{CLASSES - 1}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.float32)


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"an array of dtype {a.dtype}"
    return f"a {type(a).__name__}"


def load_mnist(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Training images (N, 784) float32 in [0,1] and labels (N,) float32 from the lesson's pickle or Keras' npz."""
    path = Path(path)
    shown = _shown(path)
    name = path.name.lower()
    if name.endswith(NPZ_SUFFIX):
        read = _read_npz
    elif name.endswith(PICKLE_SUFFIXES):
        read = _read_pickle
    else:
        raise DataError(f"{shown}: unknown suffix, expected one of {', '.join(PICKLE_SUFFIXES + (NPZ_SUFFIX,))}")
    if not path.exists():
        raise DataError(f"{shown}: no such file")
    if not path.is_file():
        raise DataError(f"{shown}: not a regular file")
    # A corrupt or hostile file can make gzip, zipfile, pickle or numpy raise nearly anything;
    # every failure while reading becomes a DataError naming the file.
    try:
        x, y = read(path, shown)
    except DataError:
        raise
    except (EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{shown}: truncated or not a valid gzip/pickle stream ({type(e).__name__}: {e})") from e
    except Exception as e:
        raise DataError(f"{shown}: unreadable ({type(e).__name__}: {e})") from e
    return _checked(shown, x, y)


def _synthetic(n: int, m: int, seed: int, why: str = "") -> Problem:
    rng = np.random.default_rng(seed)
    x = rng.random((n, m), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=n).astype(np.float32)
    return Problem(x, y, f"synthetic(seed={seed}{'; ' + why if why else ''})")


def _size(name: str, value) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise DataError(f"{name} must be an integer, got {value!r}") from None
    if v < 1:
        raise DataError(f"{name} must be >= 1, got {v}")
    return v


def make_problem(n: int, m: int, *, data: str | Path | None = None, seed: int = 0) -> Problem:
    """n rows of m features: the first n MNIST training rows when a file is found and fits (m == 784,
    n <= its rows), else seeded synthetic data whose source says why real data was not used.
    DataError when n or m < 1, when an explicit data file fails to load or does not fit,
    and when a default file that would be used fails to load."""
    n, m = _size("n", n), _size("m", m)
    path = Path(data) if data is not None else next((p for p in DEFAULT_FILES if Path(p).exists()), None)
    if path is None:
        return _synthetic(n, m, seed)
    source = f"mnist:{_shown(path)}"
    if m != PIXELS:
        if data is not None:
            raise DataError(f"{_shown(path)}: MNIST has {PIXELS} columns, m={m} asked")
        return _synthetic(n, m, seed, f"{source} has {PIXELS} columns, m={m} asked")
    x, y = load_mnist(path)
    N = x.shape[0]
    if n > N:
        if data is not None:
            raise DataError(f"{_shown(path)}: has {N} rows, n={n} asked")
        return _synthetic(n, m, seed, f"{source} has {N} rows, n={n} asked")
    if n < N:
        x, y = x[:n].copy(), y[:n].copy()
    return Problem(x, y, source)
