"""The problem: MNIST from data/ when present, loaded safely, else seeded synthetic data of the same shape."""

from __future__ import annotations

import codecs
import gzip
import importlib
import operator
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILES = (REPO / "data" / "mnist.pkl.gz", REPO / "data" / "mnist.npz")

SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10

PICKLE_SUFFIXES = (".pkl.gz", ".pkl", ".gz")
MAX_UNPACKED_BYTES = 1 << 30  # a data file may unpack to 1 GiB at most (MNIST's training set: 188 MB)
NPZ_SUFFIX = ".npz"


class DataError(ValueError):
    """A data file is missing, unreadable, unsafe or of the wrong shape; str() is a one-line message
    naming the file and the problem."""

    def __init__(self, message: str) -> None:
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
    numpy_reconstruct = _numpy_attr(multiarray, "_reconstruct")
    frombuffer = _numpy_attr(numeric, "_frombuffer")

    def reconstruct(subtype, shape, typecode):
        """NumPy's pickles make an empty array here and fill it in __setstate__ from the pickle's own
        bytes; a non-empty shape here would allocate it out of nothing (a tiny file, gigabytes)."""
        if subtype is not np.ndarray or not isinstance(shape, tuple) or np.prod(shape, dtype=np.float64) > 1:
            raise DataError(f"refused an array reconstruction of shape {str(shape)[:40]} (not one NumPy writes)")
        return numpy_reconstruct(subtype, shape, typecode)

    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}
    for module in multiarray:
        allowed[(module, "_reconstruct")] = reconstruct
    for module in numeric:
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class _ArrayUnpickler(pickle._Unpickler):
    """Resolves only the globals in _allowed_globals(); never imports what the pickle names.

    The pure-Python unpickler, not the C one: the C unpickler allocates the size a bytes or string
    opcode declares before reading it, so a few hundred bytes can claim gigabytes; this one reads
    first (in chunks, see _Capped), so memory follows the data that is really there."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    read: Callable[[int], bytes]  # both set by pickle._Unpickler.load()
    append: Callable[[object], None]

    def __init__(self, file, shown: str):
        super().__init__(file, encoding="latin1")
        self._shown = shown
        self._allowed = _allowed_globals()

    def _load_bytearray8(self):
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) < size:
            raise EOFError("pickle data was truncated")
        self.append(bytearray(data))

    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._shown}: refused to unpickle {module}.{name} "
                "(only NumPy arrays and plain containers are allowed)"
            ) from None


class _Capped:
    """A binary stream that refuses to give more than `cap` bytes (a small gzip file can unpack to
    gigabytes, and a pickle holds its arrays' bytes)."""

    CHUNK = 1 << 24

    def __init__(self, f, cap: int, shown: str):
        self.f, self.left, self.shown = f, cap, shown

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise DataError(f"{self.shown}: unpacks to over {MAX_UNPACKED_BYTES >> 20} MiB; not the lesson's MNIST")
        return data

    def read(self, n: int = -1) -> bytes:
        """At most n bytes, read CHUNK at a time: a declared size is not an allocation."""
        want = self.left + 1 if n is None or n < 0 else min(n, self.left + 1)
        parts = []
        while want > 0:
            part = self.f.read(min(want, self.CHUNK))
            if not part:
                break
            parts.append(self._take(part))
            want -= len(part)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        return self._take(self.f.readline(self.left + 1 if limit is None or limit < 0 else min(limit, self.left + 1)))


def _read_pickle(path: Path, shown: str, rows: int | None):
    """(images, labels) of the training split of the lesson's ((train), (valid), (test)) pickle."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        obj = _ArrayUnpickler(_Capped(f, MAX_UNPACKED_BYTES, shown), shown).load()
    train = obj[0] if isinstance(obj, (tuple, list)) and obj else None
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise DataError(
            f"{shown}: expected ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)), got {type(obj).__name__}"
        )
    x, y = train
    if not (_is_real_number_array(x) and x.ndim >= 1 and _is_real_number_array(y)):
        return x, y, None  # _checked names what is wrong
    return x[:rows] if rows is not None else x, y[:rows] if rows is not None else y, x.shape[0]


def _npy_rows(f, shown: str, key: str, rows: int | None):
    """The first `rows` rows (all with None) of the .npy array in stream `f`, read after its header
    is checked: a plain numeric dtype, C order; nothing else is read or allocated."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if read_header is None:
            raise DataError(f"{shown}: {key} is a .npy of version {version}, expected 1.0 or 2.0")
        shape, fortran, dtype = read_header(f)
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{shown}: {key} has no valid .npy header ({str(e).splitlines()[0][:200]})") from None
    if dtype.kind not in "iuf" or dtype.hasobject or dtype.itemsize == 0:
        raise DataError(f"{shown}: {key} has dtype {dtype}, expected integer or float numbers")
    if not shape or fortran and len(shape) > 1:
        raise DataError(
            f"{shown}: {key} has shape {shape}{' in Fortran order' if fortran else ''}, expected rows in C order"
        )
    take = shape[0] if rows is None else min(rows, shape[0])
    per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    if take * per_row > MAX_UNPACKED_BYTES:
        raise DataError(
            f"{shown}: {key} would need {take * per_row >> 20} MiB for {take} rows; the cap is "
            f"{MAX_UNPACKED_BYTES >> 20} MiB"
        )
    data = f.read(take * per_row)
    if len(data) != take * per_row:
        raise DataError(f"{shown}: {key} is truncated ({len(data)} of {take * per_row} bytes)")
    return np.frombuffer(data, dtype).reshape((take, *shape[1:])), shape[0]


def _read_npz(path: Path, shown: str, rows: int | None):
    """(x_train, y_train) of Keras' mnist.npz, read without unpickling anything: each array's header
    first, then only the rows asked for."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{shown}: not a zip archive (an .npz holds x_train.npy and y_train.npy)") from None
    with archive:
        members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
        missing = [k for k in ("x_train", "y_train") if k not in members]
        if missing:
            has = ", ".join(sorted(members)) or "nothing"
            raise DataError(f"{shown}: no {', '.join(missing)} in the archive (has {has[:200]})")
        out = []
        for key in ("x_train", "y_train"):
            with archive.open(members[key]) as f:
                out.append(_npy_rows(f, shown, key, rows))
    (x, n_x), (y, n_y) = out
    if n_x != n_y:
        raise DataError(f"{shown}: {n_x} images but {n_y} labels")
    return x, y, n_x


def _is_real_number_array(a) -> bool:
    """Integers or floats, nothing else (timedelta64 counts as an integer to np.issubdtype)."""
    return isinstance(a, np.ndarray) and a.dtype.kind in "iuf" and a.dtype.itemsize > 0


def _checked(shown: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies: x (N, 784) float32 in [0, 1], y (N,) float32 integral in 0..9 (N: the rows
    read). Integer images are bytes 0..255 and are scaled by 1/255; float images must already be in [0, 1]."""
    if not _is_real_number_array(x):
        raise DataError(f"{shown}: images are {_describe(x)}, expected integer or float numbers")
    if not _is_real_number_array(y):
        raise DataError(f"{shown}: labels are {_describe(y)}, expected integer or float numbers")
    if not (x.ndim == 2 and x.shape[1] == PIXELS or x.ndim == 3 and x.shape[1:] == (SIDE, SIDE)):
        raise DataError(f"{shown}: images have shape {x.shape}, expected (N, {PIXELS}) or (N, {SIDE}, {SIDE})")
    N = x.shape[0]
    if N == 0:
        raise DataError(f"{shown}: no training rows")
    if y.shape != (N,):
        raise DataError(f"{shown}: labels have shape {y.shape}, expected ({N},) to match the images")
    return np.ascontiguousarray(_pixels(shown, x)), np.ascontiguousarray(_labels(shown, y), dtype=np.float32)


def _pixels(shown: str, x: np.ndarray) -> np.ndarray:
    """Images as (N, 784) float32 in [0, 1]: bytes scaled by 1/255, floats as they are, checked."""
    N = x.shape[0]
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
    return x


def _labels(shown: str, y: np.ndarray) -> np.ndarray:
    """Labels checked to be whole numbers in 0..9."""
    lo, hi = y.min(), y.max()
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite([lo, hi]).all():
            raise DataError(f"{shown}: labels contain NaN or infinite values")
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{shown}: labels are not whole numbers")
    if lo < 0 or hi > CLASSES - 1:
        raise DataError(f"{shown}: labels span {lo:g}..{hi:g}, expected 0..{CLASSES - 1}")
    return y


def _describe(a) -> str:
    if isinstance(a, np.ndarray):
        return f"an array of dtype {a.dtype}"
    return f"a {type(a).__name__}"


def load_mnist(path: str | Path, rows: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Training images (r, 784) float32 in [0,1], labels (r,) float32, and the rows the file holds,
    from the lesson's pickle or Keras' npz; r = min(rows, the file's rows) (all with None): only
    those rows are read and converted, within MAX_UNPACKED_BYTES."""
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
        x, y, held = read(path, shown, rows)
        if held is None:
            _checked(shown, x, y)  # raises: the arrays are not what MNIST is
        x, y = _checked(shown, x, y)
    except DataError:
        raise
    except (EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{shown}: truncated or not a valid gzip/pickle stream ({type(e).__name__}: {e})") from e
    except Exception as e:
        raise DataError(
            f"{shown}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
        ) from e
    return x, y, held


def check_fits(path: str | Path, sizes: Iterable[tuple[int, int]]) -> None:
    """DataError unless the explicit data file `path` can serve every (n, m) of `sizes`: checked
    before a run starts, so it never stops halfway for a size the file cannot give."""
    sizes = list(sizes)
    for _, m in sizes:
        if m != PIXELS:
            raise DataError(f"{_shown(path)}: MNIST has {PIXELS} columns, m={m} asked")
    _, _, held = load_mnist(path, rows=1)
    too_big = sorted({n for n, _ in sizes if n > held})
    if too_big:
        raise DataError(f"{_shown(path)}: has {held} rows, n={too_big[0]:,} asked (drop --data to use synthetic data)")


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
    x, y, N = load_mnist(path, rows=n)
    if n > N:
        if data is not None:
            raise DataError(f"{_shown(path)}: has {N} rows, n={n} asked")
        return _synthetic(n, m, seed, f"{source} has {N} rows, n={n} asked")
    return Problem(x, y, source)
