"""Data sets: the generated circles, IDX files (MNIST, Fashion-MNIST), text files, downloads.

Every loader returns a :class:`Dataset`: three splits whose features ``X`` of shape
(n, d) are already in the requested dtype (float64 or float32, converted once, here)
and whose labels ``y`` of shape (n,) are ``np.intp`` integers in ``[0, n_classes)``.

``load_dataset(spec)`` takes ``circles``, ``mnist``, ``fashion-mnist`` or a path:

- ``circles``: :func:`make_circles`, split 60/20/20 with a seeded permutation.
- ``mnist``, ``fashion-mnist``: 50,000 train / 10,000 valid (the last 10,000 rows of
  the official training file) / 10,000 test (the official test file), pixels / 255.
  Looked up, first match wins, in

  1. ``data_dir/<name>/``, then ``data_dir`` itself (``--data-dir``);
  2. ``$NPMLP_DATA/<name>/``: ``NPMLP_DATA`` is a root with one folder per set. Files
     directly in it are *not* accepted: MNIST and Fashion-MNIST files have the same
     names and shapes, so a bare folder could silently serve the wrong set;
  3. the cache, ``$XDG_CACHE_HOME/npmlp/<name>/`` (when ``XDG_CACHE_HOME`` is an
     absolute path) or else ``~/.cache/npmlp/<name>/``;
  4. fashion-mnist only: Debian's ``/usr/share/datasets/fashion-mnist/``;
  5. a download into the cache from ``mirrors``, else ``$NPMLP_MIRROR_MNIST`` /
     ``$NPMLP_MIRROR_FASHION_MNIST`` (comma-separated base URLs), else the official
     mirrors. Each ``.gz`` is kept only if its size and SHA-256 match
     :data:`OFFICIAL_FILES`, and is written atomically; a bad one is dropped and the
     next mirror tried.

  A folder counts only when it holds all four files, each plain or ``.gz``. Local files
  are checked structurally (magic, dimensions, exact length, matching counts), not by
  checksum: Debian recompressed its ``.gz`` files; and checked to be the named set by
  their decoded labels (:data:`LABEL_SHA256`, :data:`LABEL_COUNTS`).
- a directory: the same four IDX files; the last 10,000 training rows are the
  validation set when the training file has more than 20,000 rows, else its last 20%.
- a text file: a table read by :mod:`npmlp.tables` (header, delimiter, quoted fields), the
  label in ``label_column`` (default the last), split 60/20/20, or 80/20 with a separate
  ``test_dataset``. Labels (names or integers) become classes in sorted order:
  ``Dataset.labels`` maps them back, so labels {1, 2} give 2 classes.
- anything large is checked against the memory budget (``max_memory``, else
  MemAvailable; :mod:`npmlp.budget`) before it is read.

Every problem with a file or a data set raises :class:`npmlp.errors.DataError`, naming
the file, the problem and the fix. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import math
import os
import signal
import stat
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, Union

import numpy as np
from numpy.typing import NDArray

from . import budget, tables
from .atomicfile import atomic_open
from .dtypes import DTYPES, Array, Labels, resolve_dtype
from .errors import DataError
from .npyheader import read_npy_header
from .preprocess import LabelMap, Standardizer

PathLike = Union[str, "os.PathLike[str]"]


class _Readable(Protocol):
    """A plain file or a gzip stream: anything with ``read(n) -> bytes``."""

    def read(self, size: int = -1, /) -> bytes: ...


IDX_SETS = ("mnist", "fashion-mnist")
NAMED = ("circles", *IDX_SETS)
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Official ``.gz`` files: name -> (bytes, sha256). Downloads must match exactly.
OFFICIAL_FILES: dict[str, dict[str, tuple[int, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    },
}
MIRRORS: dict[str, tuple[str, ...]] = {
    # The original yann.lecun.com host answers 403 since 2024.
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}
CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
#: What the named sets' labels are, to tell one set from another whatever their compression:
#: the SHA-256 (:func:`sha256_arrays`) of the decoded train and test label arrays, and the
#: count of each class in each. MNIST's digest is not recorded yet (it was not at hand
#: when this was written): its class counts stand for it.
LABEL_SHA256: dict[str, str | None] = {
    "mnist": None,
    "fashion-mnist": "04b97f3887294defb44a489d8f816be95fa7f154e8cb141182e8e99f30a7c7b4",
}
LABEL_COUNTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mnist": ((5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
              (980, 1135, 1032, 1010, 982, 892, 1028, 1010, 974, 1009)),
    "fashion-mnist": ((6000,) * 10, (1000,) * 10),
}
IMAGE_SHAPE = (28, 28)
N_VALID, BIG_TRAIN = 10_000, 20_000
CIRCLE_RADII = (1.0, 0.8)
DOWNLOAD_TIMEOUT = 30.0
#: No file may take longer than this to download (a mirror sending a byte a second).
DOWNLOAD_DEADLINE = 600.0
STREAM_LIMIT = 1 << 30
STREAM_TIMEOUT = 60.0
CHUNK = 1 << 20

# IDX type byte -> big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
NPY_MAGIC = b"\x93NUMPY"
# NOTE: deflate cannot expand more than 1032:1, so a gzip file of S bytes never holds
# more than 1032 * S bytes; a header claiming more is a lie we can reject unread.
MAX_DEFLATE_RATIO = 1032
IDX_FIX = "re-download the file, or check that the path names an IDX file"


@dataclass
class Dataset:
    """A data set split into train, valid and test, features already in their final dtype.

    Attributes
    ----------
    name : str
        ``circles``, ``mnist``, ``fashion-mnist``, or the file or folder name.
    X_train, X_valid, X_test : arrays of shape (n_train, d), (n_valid, d), (n_test, d)
        Features, all float64 or all float32.
    y_train, y_valid, y_test : arrays of shape (n_train,), (n_valid,), (n_test,)
        Labels of dtype ``np.intp`` in ``[0, n_classes)``.
    n_classes : int
    image_shape : (rows, cols) or None
        Shape of one image for IDX data (``d == rows * cols``), None otherwise.
    class_names : list of str or None
        One name per class for the named sets, None otherwise.
    source : str
        Where the data came from, for reports.
    identity : dict
        What the data and split are, to recognise them later (see :func:`identity`):
        ``sha256`` of the decoded arrays before the split, ``rows``, and ``split`` (its
        ``seed``, ``sizes`` and ``rows_sha256``, a hash of each split's row indices).
    labels : LabelMap or None
        Text files: the user's labels of classes ``0..m-1`` (stored with a model).
    feature_names : list of str or None
        Text files with a header: the name of each feature column.
    standardizer : Standardizer or None
        The scaling already applied to every ``X`` (``--standardize``), to store with a model.
    """

    name: str
    X_train: Array = field(repr=False)
    y_train: Labels = field(repr=False)
    X_valid: Array = field(repr=False)
    y_valid: Labels = field(repr=False)
    X_test: Array = field(repr=False)
    y_test: Labels = field(repr=False)
    n_classes: int
    image_shape: tuple[int, int] | None = None
    class_names: list[str] | None = None
    source: str = ""
    identity: dict[str, Any] = field(default_factory=dict, repr=False)
    labels: LabelMap | None = None
    feature_names: list[str] | None = None
    standardizer: Standardizer | None = None

    def __post_init__(self) -> None:
        where = self.source or self.name
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, (int, np.integer)) or self.n_classes < 1:
            raise DataError(f"{where}: n_classes must be an integer >= 1. Got {self.n_classes!r} instead.")
        self.n_classes = int(self.n_classes)
        for split, (X, y) in self.splits().items():
            setattr(self, f"y_{split}", _checked_split(where, split, X, y, self.n_classes))
        kinds = {(X.dtype.name, X.shape[1]) for X, _ in self.splits().values()}
        if len(kinds) != 1:
            raise DataError(f"{where}: the splits must share one dtype and feature count. Got {sorted(kinds)} instead.")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            got = len(self.class_names)
            raise DataError(f"{where}: class_names must have {self.n_classes} names. Got {got} instead.")
        if self.image_shape is not None and math.prod(self.image_shape) != self.n_features:
            raise DataError(f"{where}: image_shape must hold {self.n_features} pixels. Got {self.image_shape} instead.")

    @property
    def n_features(self) -> int:
        """Number of features ``d`` (columns of every ``X``)."""
        return int(self.X_train.shape[1])

    def splits(self) -> dict[str, tuple[Array, Labels]]:
        """``{"train": (X, y), "valid": (X, y), "test": (X, y)}``."""
        return {
            "train": (self.X_train, self.y_train),
            "valid": (self.X_valid, self.y_valid),
            "test": (self.X_test, self.y_test),
        }


def _checked_split(where: str, split: str, X: Any, y: Any, n_classes: int) -> Labels:
    """Check one split's ``X`` (n, d) and ``y`` (n,); return ``y`` as ``np.intp``."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.name not in DTYPES:
        got = f"{X.dtype} array of shape {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise DataError(f"{where}: X_{split} must be a float64 or float32 array of shape (n, d). Got {got} instead.")
    if 0 in X.shape:
        raise DataError(f"{where}: X_{split} must have at least one row and one feature. Got shape {X.shape} instead.")
    if not isinstance(y, np.ndarray) or y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        got = f"{y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{where}: y_{split} must be an integer array of shape ({X.shape[0]},). Got {got} instead.")
    if not np.isfinite(X).all():
        raise DataError(f"{where}: X_{split} must hold finite numbers. Got NaN or infinite values instead.")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"{where}: y_{split} must hold labels in [0, {n_classes}). Got [{y.min()}, {y.max()}] instead.")
    return y.astype(np.intp, copy=False)


# -- the public entry point ------------------------------------------------------------
def load_dataset(
    spec: PathLike,
    *,
    data_dir: PathLike | None = None,
    seed: int = 0,
    n_samples: int = 1100,
    noise: float = 0.0,
    dtype: str | type = "float64",
    label_column: int | str = "last",
    header: str = "auto",
    delimiter: str = "auto",
    test_dataset: PathLike | None = None,
    max_memory: int | None = None,
    download: bool = True,
    progress: bool = False,
    mirrors: Sequence[str] | None = None,
) -> Dataset:
    """Load ``circles``, ``mnist``, ``fashion-mnist``, an IDX folder or a text file.

    ``spec`` is a name of :data:`NAMED` (a name wins over a file of the same name), else the
    path of a folder of IDX files or of a CSV/whitespace text file. ``data_dir``: the first
    place to look for a named IDX set. ``seed`` draws the circles and the 60/20/20 split of
    circles and text files; ``n_samples`` and ``noise`` shape the circles. ``label_column``
    (an index, negative from the end, ``first``, ``last`` or a header name), ``header``
    (``auto``/``yes``/``no``), ``delimiter`` (``auto``/``comma``/``semicolon``/``tab``/
    ``whitespace``) and ``test_dataset`` (a test file: the first then splits 80/20) read text
    files, as :class:`npmlp.runs.DataSpec` documents them. ``max_memory``: the budget in bytes
    (default MemAvailable). ``dtype``: of every ``X``. ``download``, ``progress``, ``mirrors``:
    whether a named set missing locally may be downloaded, with a bar, from these base URLs.

    Raises :class:`DataError` for anything wrong with the data, its files or their
    whereabouts, and ``ValueError`` for a ``dtype`` other than float64 or float32.
    """
    dt = resolve_dtype(dtype)
    if spec == "circles":
        return load_circles(n_samples=n_samples, noise=noise, seed=seed, dtype=dtype)
    if isinstance(spec, str) and spec in IDX_SETS:
        return _load_named(spec, data_dir=data_dir, dt=dt, download=download, progress=progress, mirrors=mirrors,
                           max_memory=max_memory)
    path = _expand(spec)
    if path.is_dir():
        return load_idx_dir(path, dtype=dtype, max_memory=max_memory)
    if os.path.lexists(path):
        return load_text(path, seed=seed, dtype=dtype, label_column=label_column, header=header,
                         delimiter=delimiter, test_dataset=test_dataset, max_memory=max_memory)
    raise DataError(
        f"dataset must be one of {', '.join(NAMED)}, or an existing folder of IDX files or text file. "
        f"Got {str(spec)!r} instead (no such file or folder)."
    )


def _as_dtype(X: NDArray[Any], dt: type, where: str) -> Array:
    """Convert features to ``dt`` once, checking that every value is (still) finite."""
    # NOTE: float64 values beyond 3.4e38 become inf in float32 (with a RuntimeWarning),
    # so finiteness is checked after the cast, not before.
    with np.errstate(over="ignore", invalid="ignore"):
        out: Array = X.astype(dt, copy=False)
    if not np.isfinite(out).all():
        why = f"values too large for {np.dtype(dt).name}" if np.isfinite(X).all() else "NaN or infinite values"
        raise DataError(f"{where}: features must be finite numbers. Got {why} instead.")
    return out


def sha256_arrays(*arrays: NDArray[Any]) -> str:
    """SHA-256 of arrays' dtypes, shapes and little-endian C-order values, in order."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.name}\0{','.join(map(str, a.shape))}\0".encode())
        h.update(np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False)).data)
    return h.hexdigest()


def identity(decoded: Sequence[NDArray[Any]], rows: Sequence[NDArray[Any]], *, seed: int | None) -> dict[str, Any]:
    """A data set's identity: its ``decoded`` arrays before any dtype cast or split, and the split.

    ``rows`` holds each split's row indices (train, valid, test). The values are hashed after
    decoding, so a recompressed copy of the same files has the same identity; the split is
    hashed by its row indices, since NumPy does not promise one random stream across versions.
    """
    return {"sha256": sha256_arrays(*decoded), "rows": int(sum(len(r) for r in rows)),
            "split": {"seed": seed, "sizes": [int(len(r)) for r in rows],
                      "rows_sha256": sha256_arrays(*(np.asarray(r, dtype=np.int64) for r in rows))}}


def _random_split(n: int, *, rng: np.random.Generator, where: str, test: bool = True) -> list[NDArray[np.intp]]:
    """Row indices of a seeded 60/20/20 split, [train, valid, test]; without ``test``, 80/20 [train, valid]."""
    if n < 5:
        what = "a 60/20/20 train/valid/test" if test else "an 80/20 train/valid"
        raise DataError(f"{where}: {what} split needs at least 5 rows. Got {n} instead.")
    order = rng.permutation(n)
    k = n // 5
    return [order[2 * k :], order[:k], order[k : 2 * k]] if test else [order[k:], order[:k]]


# -- circles ---------------------------------------------------------------------------
def make_circles(n_samples: int = 1100, *, noise: float = 0.0, rng: np.random.Generator) -> tuple[Array, Labels]:
    """Two concentric circles centred at 0, like the course's ``circles.txt``.

    Class 0 (``n_samples - n_samples // 2`` points) lies on the circle of radius 1.0,
    class 1 (``n_samples // 2``) on radius 0.8; angles are uniform on [0, 2 pi) and
    each radius gets Gaussian noise of standard deviation ``noise``.

    Returns
    -------
    X : array of shape (n_samples, 2), float64
    y : array of shape (n_samples,), intp; rows in random order
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise DataError(f"n_samples must be an integer >= 2. Got {n_samples!r} instead.")
    if not isinstance(noise, (int, float, np.floating, np.integer)) or not np.isfinite(noise) or noise < 0:
        raise DataError(f"noise must be a finite number >= 0. Got {noise!r} instead.")
    y = rng.permutation(np.repeat(np.arange(2, dtype=np.intp), [n_samples - n_samples // 2, n_samples // 2]))
    radius = np.asarray(CIRCLE_RADII)[y] + noise * rng.standard_normal(n_samples)
    angle = rng.uniform(0.0, 2 * np.pi, n_samples)
    return radius[:, None] * np.column_stack([np.cos(angle), np.sin(angle)]), y


def load_circles(
    *, n_samples: int = 1100, noise: float = 0.0, seed: int = 0, dtype: str | type = "float64"
) -> Dataset:
    """:func:`make_circles` split 60/20/20; one seeded generator draws points and split."""
    dt = resolve_dtype(dtype)
    rng = np.random.default_rng(seed)
    X, y = make_circles(n_samples, noise=noise, rng=rng)
    source = f"make_circles(n_samples={n_samples}, noise={noise}, seed={seed})"
    rows = _random_split(len(y), rng=rng, where=source)
    Xd = _as_dtype(X, dt, source)
    splits = [(Xd[r], y[r]) for r in rows]
    return Dataset("circles", *splits[0], *splits[1], *splits[2], n_classes=2, source=source,
                   identity=identity([X, y], rows, seed=seed))


# -- IDX files -------------------------------------------------------------------------
def read_idx(path: PathLike, *, on_header: Callable[[np.dtype, tuple[int, ...]], None] | None = None) -> NDArray[Any]:
    """Read an IDX file, plain or gzip (told by its magic bytes, not its name).

    Checks the two zero bytes, the type byte, ``NDIM >= 1`` and the exact data length;
    never allocates more than the file can really hold. A gzip file is inflated in chunks,
    at most the header's declared size plus one byte (to detect trailing data).
    ``on_header(dtype, shape)``, when given, is called before any data is read (a memory
    budget's check may refuse the declared size there).

    Returns
    -------
    array of the shape in the header, native byte order (uint8 for MNIST)

    Raises
    ------
    DataError
        Naming the file and what is wrong with it.
    """
    path = _regular_file(path, "IDX file")
    try:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            is_gzip = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            opened = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else contextlib.nullcontext(raw)
            with opened as stream:
                dtype, shape = _read_idx_header(stream, path)
                need = math.prod(shape) * dtype.itemsize
                _check_claim(path, need, size=size, header=4 + 4 * len(shape), is_gzip=is_gzip)
                if on_header is not None:
                    on_header(dtype, shape)
                data = _read_capped(stream, need + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read it ({_describe(exc)}); {IDX_FIX}.") from exc
    if len(data) != need:
        problem = "truncated" if len(data) < need else "followed by trailing bytes"
        raise DataError(f"{path}: the data is {problem}: shape {shape} of {dtype.name} needs {need} bytes; {IDX_FIX}.")
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _read_idx_header(stream: _Readable, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    """Parse ``00 00 TYPE NDIM`` and the NDIM big-endian uint32 sizes."""
    magic = bytes(_read_capped(stream, 4))
    if len(magic) < 4:
        raise DataError(f"{path}: an IDX file must start with 4 magic bytes. Got {len(magic)} bytes in all; {IDX_FIX}.")
    if magic[:2] != b"\0\0":
        raise DataError(f"{path}: an IDX magic must start with 00 00. Got {magic[:2].hex(' ')} instead; {IDX_FIX}.")
    if magic[2] not in IDX_TYPES:
        known = ", ".join(f"{t:02x}" for t in IDX_TYPES)
        raise DataError(f"{path}: the IDX type byte must be one of {known}. Got {magic[2]:02x} instead; {IDX_FIX}.")
    ndim = magic[3]
    if ndim < 1:
        raise DataError(f"{path}: an IDX file must have at least 1 dimension. Got 0 instead; {IDX_FIX}.")
    sizes = bytes(_read_capped(stream, 4 * ndim))
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path}: the IDX header is truncated: {ndim} dimensions need {4 * ndim} bytes; {IDX_FIX}.")
    return IDX_TYPES[magic[2]], struct.unpack(f">{ndim}I", sizes)


def _check_claim(path: Path, need: int, *, size: int, header: int, is_gzip: bool) -> None:
    """Reject, before reading, a header claiming more data than the file can hold."""
    if is_gzip and need > MAX_DEFLATE_RATIO * size:
        raise DataError(
            f"{path}: the IDX header claims {_size_text(need)} bytes of data, "
            f"more than a {size}-byte gzip file can hold; {IDX_FIX}."
        )
    if not is_gzip and need != size - header:
        problem = "truncated" if need > size - header else "followed by trailing bytes"
        raise DataError(
            f"{path}: the data is {problem}: the header claims {_size_text(need)} bytes, "
            f"the file holds {size - header}; {IDX_FIX}."
        )


def _size_text(n: int) -> str:
    """``n`` in digits, or as a power of ten when a hostile header makes it absurdly long."""
    # NOTE: str() of an int over 4,300 digits raises ValueError, and a header of 255
    # dimensions of 2**32 - 1 claims a 2,457-digit size.
    return str(n) if abs(n) < 10**15 else f"about {'-' if n < 0 else ''}10^{abs(n).bit_length() * 30103 // 100000}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(_size_text, shape)) + ("," if len(shape) == 1 else "") + ")"


def _read_capped(stream: _Readable, limit: int) -> bytearray:
    """Read at most ``limit`` bytes in chunks, so a lying size never allocates more than the data."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _expand(path: PathLike) -> Path:
    """``path`` with a leading ``~`` expanded (left as is when no home folder is known)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # "~nosuchuser/...", or no $HOME and no passwd entry
        return Path(path)


def file_kind(path: Path) -> str:
    """What ``path`` is, in words: ``"a regular file"``, ``"a FIFO (named pipe)"``, ``"a symlink to ..."``..."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        kind = "missing"
    else:
        kind = ("a regular file" if stat.S_ISREG(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a symlink to {target}, " + ("which does not exist" if kind == "missing" else f"which is {kind}")
    return kind


def _regular_file(path: PathLike, what: str) -> Path:
    """The path of an existing regular file (never a FIFO or device that could block), else named for what it is."""
    path = _expand(path)
    kind = file_kind(path)
    if kind != "a regular file" and not kind.endswith("which is a regular file"):
        problem = "does not exist" if kind == "missing" else f"is {kind}, not a regular file"
        raise DataError(f"{path}: this {what} {problem}; check the path.")
    return path


def _read_pair(images_path: Path, labels_path: Path, *, dt: type,
               max_memory: int | None) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Images (n, rows, cols) and labels (n,), both uint8, from two IDX files of one set.

    The images' declared size is checked against the memory budget before a byte is
    inflated: the bytes themselves, and the rows of ``dt`` they become.
    """

    def fits(dtype: np.dtype, shape: tuple[int, ...]) -> None:
        n = math.prod(shape)
        need = n * dtype.itemsize + n * np.dtype(dt).itemsize
        budget.check(need, f"{images_path} (declared shape {_shape_text(shape)}, as {np.dtype(dt).name})",
                     max_memory=max_memory, hint="pass --dtype float32, or use a smaller data set, or raise "
                     "--max-memory SIZE")

    images, labels = read_idx(images_path, on_header=fits), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path}: an images file must be 3-D unsigned bytes (magic 2051). "
            f"Got {images.ndim}-D {images.dtype} instead; check that it is an images file."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: a labels file must be 1-D unsigned bytes (magic 2049). "
            f"Got {labels.ndim}-D {labels.dtype} instead; check that it is a labels file."
        )
    if len(images) == 0:
        raise DataError(f"{images_path}: the file holds 0 images; a data set needs at least one; {IDX_FIX}.")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "the two files must come from the same set."
        )
    return images, labels


def _pixels(images: NDArray[np.uint8], dt: type) -> Array:
    """Images (n, rows, cols) of bytes to rows (n, rows * cols) in [0, 1] of dtype ``dt``."""
    X: Array = images.reshape(images.shape[0], -1).astype(dt)
    X /= dt(255)
    return X


def _load_idx(files: list[Path], *, name: str, dt: type, source: str, named: bool,
              max_memory: int | None = None) -> Dataset:
    """Read the four IDX files and split train into train and valid."""
    images, labels = _read_pair(files[0], files[1], dt=dt, max_memory=max_memory)
    test_images, test_labels = _read_pair(files[2], files[3], dt=dt, max_memory=max_memory)
    shape = images.shape[1:]
    if test_images.shape[1:] != shape or (named and shape != IMAGE_SHAPE):
        want = IMAGE_SHAPE if named else shape
        raise DataError(
            f"{files[2]}: images must be {want[0]}x{want[1]} like those of {files[0]}. "
            f"Got {shape} and {test_images.shape[1:]} instead; check that both files come from {name}."
        )
    if named:
        _check_named(name, source, labels, test_labels)
    n = len(labels)
    cut = n - (N_VALID if n > BIG_TRAIN else n // 5)
    X, y = _pixels(images, dt), labels.astype(np.intp)
    y_test = test_labels.astype(np.intp)
    n_classes = len(CLASS_NAMES[name]) if named else int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    # NOTE: train and test rows are numbered as one table, test after train.
    rows = [np.arange(cut), np.arange(cut, n), np.arange(n, n + len(y_test))]
    return Dataset(
        name, X[:cut], y[:cut], X[cut:], y[cut:], _pixels(test_images, dt), y_test, n_classes=n_classes,
        image_shape=(int(shape[0]), int(shape[1])), class_names=CLASS_NAMES[name] if named else None, source=source,
        identity=identity([images, labels, test_images, test_labels], rows, seed=None),
    )


def _which_set(labels: NDArray[np.uint8], test_labels: NDArray[np.uint8]) -> str | None:
    """The named set these labels are, by digest or class counts; None when none."""
    digest = sha256_arrays(labels, test_labels)
    counts = (tuple(np.bincount(labels, minlength=10).tolist()), tuple(np.bincount(test_labels, minlength=10).tolist()))
    for name in IDX_SETS:
        if LABEL_SHA256.get(name) == digest or (LABEL_SHA256.get(name) is None and LABEL_COUNTS.get(name) == counts):
            return name
    return None


def _check_named(name: str, source: str, labels: NDArray[np.uint8], test_labels: NDArray[np.uint8]) -> None:
    """Local files of a named set must be that set (well-formed IDX files of another set are refused)."""
    if name not in LABEL_SHA256 and name not in LABEL_COUNTS:
        return
    found = _which_set(labels, test_labels)
    if found != name:
        what = f"{found}'s files" if found else "not the official files of any set npmlp knows (their labels differ)"
        raise DataError(f"{source}: these are {what}, not {name}'s; put {name}'s files there, or pass the folder "
                        "as --dataset PATH to train on it as it is.")


def _find_file(directory: Path, base: str) -> Path | None:
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_idx_files(directory: Path) -> list[Path] | None:
    """The four IDX files in ``directory`` (plain preferred to ``.gz``), or None if any is missing."""
    found = [_find_file(directory, base) for base in IDX_FILES]
    return [f for f in found if f is not None] if all(f is not None for f in found) else None


def load_idx_dir(directory: PathLike, *, dtype: str | type = "float64", max_memory: int | None = None) -> Dataset:
    """Load a folder holding ``train-images-idx3-ubyte[.gz]`` and its three siblings.

    Validation is the last 10,000 training rows when there are more than 20,000, else
    the last 20%; ``n_classes`` is the largest label + 1.
    """
    dt = resolve_dtype(dtype)
    directory = _expand(directory)
    files = _find_idx_files(directory)
    if files is None:
        missing = [base for base in IDX_FILES if _find_file(directory, base) is None]
        raise DataError(
            f"{directory}: a folder of IDX data must hold {', '.join(IDX_FILES)} (each may end in .gz). "
            f"Missing: {', '.join(missing)}."
        )
    return _load_idx(files, name=directory.name, dt=dt, source=str(directory), named=False, max_memory=max_memory)


# -- named sets: lookup and download ---------------------------------------------------
def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/npmlp/<name>`` if that variable is an absolute path, else ``~/.cache/npmlp/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "npmlp" / name


def search_dirs(name: str, data_dir: PathLike | None = None) -> list[Path]:
    """Folders searched for the named set ``name``, in order (see the module docstring)."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs += [_expand(data_dir) / name, _expand(data_dir)]
    if os.environ.get("NPMLP_DATA"):
        dirs.append(_expand(os.environ["NPMLP_DATA"]) / name)
    dirs += [cache_dir(name), *SYSTEM_DIRS.get(name, ())]
    return list(dict.fromkeys(dirs))


def _load_named(
    name: str, *, data_dir: PathLike | None, dt: type, download: bool, progress: bool, mirrors: Sequence[str] | None,
    max_memory: int | None = None,
) -> Dataset:
    """The first complete folder of :func:`search_dirs`, else a download into the cache."""
    searched = search_dirs(name, data_dir)
    for directory in searched:
        files = _find_idx_files(directory)
        if files is not None:
            return _load_idx(files, name=name, dt=dt, source=str(directory), named=True, max_memory=max_memory)
    cache = cache_dir(name)
    failure = _download_set(name, cache, mirrors=_mirrors(name, mirrors), progress=progress) if download else None
    files = _find_idx_files(cache) if download and failure is None else None
    if files is not None:
        return _load_idx(files, name=name, dt=dt, source=f"{cache} (downloaded)", named=True, max_memory=max_memory)
    raise DataError(
        f"{name} not found: put {', '.join(OFFICIAL_FILES[name])} (gzipped or not) in {cache}/ "
        f"(or pass --data-dir DIR, or set NPMLP_DATA to a folder holding {name}/); "
        f"looked in {', '.join(map(str, searched))}; {failure or 'downloading is off'}."
    )


def _mirrors(name: str, mirrors: Sequence[str] | None) -> tuple[str, ...]:
    """``mirrors``, else ``$NPMLP_MIRROR_<NAME>`` (comma-separated), else the official ones."""
    if mirrors is not None:
        return (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)
    env = os.environ.get(f"NPMLP_MIRROR_{name.upper().replace('-', '_')}", "")
    return tuple(m.strip() for m in env.split(",") if m.strip()) or MIRRORS[name]


def _download_set(name: str, directory: Path, *, mirrors: Sequence[str], progress: bool) -> str | None:
    """Download the files of ``name`` missing from ``directory``; why it failed, or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {directory} ({exc})"
    for filename, (size, sha256) in OFFICIAL_FILES[name].items():
        if _find_file(directory, filename.removesuffix(".gz")) is not None:
            continue
        reasons = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + filename
            try:
                _fetch(url, directory / filename, size=size, sha256=sha256, progress=progress)
                break
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reasons.append(f"{url}: {_describe(exc)}")
        else:
            return "download failed: " + ("; ".join(reasons) or "no mirror to download from")
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


class _Terminated(Exception):
    """SIGTERM during a download: unwinds so that the temporary file is removed."""


@contextlib.contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM raises (then exits 143 as before) instead of killing at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)  # the temporary file is gone; die of the signal as asked
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fetch(url: str, target: Path, *, size: int, sha256: str, progress: bool) -> None:
    """Download ``url`` to ``target`` atomically, kept only if its size and SHA-256 are official.

    Each read waits at most :data:`DOWNLOAD_TIMEOUT` seconds and the whole file
    :data:`DOWNLOAD_DEADLINE`; the temporary file is removed on every exit (SIGINT and
    SIGTERM included).
    """
    with _terminate_unwinds(), atomic_open(target, "wb") as out:  # an exception inside drops the temporary file
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                bar = _progress_bar(progress, size, target.name)
                n, digest = _copy(response, out, limit=size + 1, bar=bar, deadline=time.monotonic() + DOWNLOAD_DEADLINE)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # it holds the open response
            # NOTE: a network failure, reported as one (atomic_open would word an OSError as a write error)
            raise DataError(_describe(exc)) from exc
        if n != size or digest != sha256:
            raise DataError(
                f"corrupted download rejected: {n} bytes with SHA-256 {digest[:16]}..., "
                f"expected {size} bytes with SHA-256 {sha256[:16]}..."
            )


def _copy(src: IO[bytes], dst: IO[bytes], *, limit: int, bar: Any, deadline: float | None = None) -> tuple[int, str]:
    """Copy at most ``limit`` bytes before ``deadline`` (``time.monotonic``); return how many and their SHA-256."""
    digest, n = hashlib.sha256(), 0
    try:
        while n < limit:
            if deadline is not None and time.monotonic() > deadline:
                raise DataError(f"too slow: {n} of {limit - 1} bytes after {DOWNLOAD_DEADLINE:g} s (the deadline)")
            # NOTE: read1 returns what one receive brought: read(n) would wait for all n bytes,
            # and a mirror trickling a byte a second would never let the deadline be checked.
            read = getattr(src, "read1", src.read) if deadline is not None else src.read
            chunk = read(min(CHUNK, limit - n))
            if not chunk:
                break
            digest.update(chunk)
            dst.write(chunk)
            n += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return n, digest.hexdigest()


class _ProgressLines:
    """Download progress as a line on stderr every few seconds (no terminal, or no tqdm)."""

    def __init__(self, total: int, desc: str, every: float = 5.0) -> None:
        self.total, self.desc, self.every, self.n = total, desc, every, 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(f"npmlp: downloading {self.desc}: {self.n / 1e6:.1f} of {self.total / 1e6:.1f} MB "
                  f"({now - self.start:.0f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar on a terminal's stderr when tqdm is installed, else progress lines; None when not asked for."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm  # optional: pip install npmlp[progress]
    except ImportError:
        return _ProgressLines(total, desc)
    if not sys.stderr.isatty():
        return _ProgressLines(total, desc)
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr, leave=False)


# -- text and .npy files ---------------------------------------------------------------
def _read_bytes(path: Path, limit: int = -1) -> bytes:
    """The first ``limit`` bytes of a file (all when -1), I/O errors as DataError."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc}); check the path and its permissions.") from exc


#: A label column with more distinct values than this share of the rows (and than
#: MIN_CONTINUOUS) looks continuous: a feature, not a class.
MAX_DISTINCT_SHARE = 0.5
MIN_CONTINUOUS = 20
LABEL_HINT = ("pass --label-column for the column that holds the class (a header name, a 0-based index, negative "
              "from the end, or first/last)")


def _text_source(path: PathLike, what: str) -> tables.TextSource:
    path = _regular_file(path, what)
    return tables.TextSource(str(path), path=path)


def read_table(path: PathLike) -> NDArray[np.float64]:
    """The numbers of a CSV or whitespace-separated text file, shape (n_rows, n_columns), header skipped.

    Raises :class:`DataError` for an empty file, ragged rows, or a cell that is not a
    finite number, naming the line and column.
    """
    return tables.read_table(_text_source(path, "text file"), label=None).X


def _as_int(cell: str) -> int | None:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        x = float(cell)
    except ValueError:
        return None
    return int(x) if math.isfinite(x) and x.is_integer() else None


def _class_labels(where: str, table: tables.Table) -> tuple[LabelMap, Labels]:
    """The label column's classes (integers when every label is one, else strings), sorted, and each row's class."""
    assert table.codes is not None
    codes, lines, distinct = table.codes, table.lines, table.labels
    named = f", {table.label_name!r}" if table.label_name else ""
    column = f"the label column ({(table.label_column or 0) + 1} of the file{named})"

    def line_of(k: int) -> int:
        return int(lines[int(np.argmax(codes == k))])

    if "" in distinct:
        raise DataError(f"{where}, line {line_of(distinct.index(''))}: a missing label in {column}; drop the row "
                        f"or {LABEL_HINT}.")
    unprintable = [k for k, c in enumerate(distinct) if not c.isprintable()]
    if unprintable:  # NOTE: NumPy's str arrays would drop a trailing NUL, merging two labels
        k = unprintable[0]
        raise DataError(f"{where}, line {line_of(k)}: a label must be printable text. Got {distinct[k][:40]!r} "
                        f"in {column} instead.")
    ints = [_as_int(c) for c in distinct]
    values: list[Any] = list(distinct)
    if all(v is not None for v in ints):
        values = ints
    elif all(tables.is_number(c) for c in distinct):
        k = next(i for i, v in enumerate(ints) if v is None)
        raise DataError(f"{where}: {column} must hold class labels (names or integers): line {line_of(k)} has "
                        f"{distinct[k]}; {LABEL_HINT}.")
    labels = LabelMap(tuple(sorted(set(values))))
    if len(labels.classes) < 2:
        raise DataError(f"{where}: {column} holds one class ({labels.classes[0]}): a classifier needs at least 2.")
    if len(labels.classes) > max(MAX_DISTINCT_SHARE * len(codes), MIN_CONTINUOUS):
        raise DataError(f"{where}: {column} looks continuous: {len(labels.classes)} distinct values in {len(codes)} "
                        f"rows; {LABEL_HINT}.")
    rank = {c: k for k, c in enumerate(labels.classes)}
    table_codes = np.array([rank[v] for v in values], dtype=np.intp)
    return labels, table_codes[codes]


def _test_labels(where: str, table: tables.Table, labels: LabelMap) -> Labels:
    """The test file's labels as the training file's classes; an unknown label is an error naming it."""
    assert table.codes is not None
    values: list[Any] = [_as_int(c) for c in table.labels] if isinstance(labels.classes[0], int) else table.labels
    known = set(labels.classes)
    unknown = [k for k, v in enumerate(values) if v not in known]
    if unknown:
        k = unknown[0]
        line = int(table.lines[int(np.argmax(table.codes == k))])
        raise DataError(f"{where}, line {line}: the label {table.labels[k]!r} is not a class of the training file "
                        f"({', '.join(map(str, labels.classes[:10]))}).")
    rank = {c: k for k, c in enumerate(labels.classes)}
    return np.array([rank[v] for v in values], dtype=np.intp)[table.codes]


def _memory_check(max_memory: int | None) -> Callable[[int, str], None]:
    def check(need: int, what: str) -> None:
        budget.check(need, what, max_memory=max_memory, hint="use a smaller file, or raise --max-memory SIZE")
    return check


def load_text(path: PathLike, *, seed: int = 0, dtype: str | type = "float64", label_column: int | str = "last",
              header: str = "auto", delimiter: str = "auto", test_dataset: PathLike | None = None,
              max_memory: int | None = None) -> Dataset:
    """A text table, one column the class label (the last by default), split 60/20/20 (seeded).

    Labels of any kind (names, or integers with gaps) become classes ``0..m-1`` in sorted
    order (``Dataset.labels``). With ``test_dataset`` (a second file, same layout), that file
    is the test split and ``path`` splits 80/20 into train and valid.
    """
    dt = resolve_dtype(dtype)
    memory = _memory_check(max_memory)
    source = _text_source(path, "data file")
    table = tables.read_table(source, label=label_column, header=header, delimiter=delimiter, memory=memory)
    labels, y = _class_labels(source.name, table)
    decoded = [table.X, y.astype(np.int64), np.array([str(c) for c in labels.classes])]
    rng = np.random.default_rng(seed)
    if test_dataset is None:
        rows = _random_split(len(y), rng=rng, where=source.name)
        X, y_all = table.X, y
    else:
        test_source = _text_source(test_dataset, "test data file")
        test = tables.read_table(test_source, label=table.label_name or table.label_column, header=header,
                                 delimiter=delimiter, memory=memory)
        if test.X.shape[1] != table.X.shape[1] or (table.names and test.names and test.names != table.names):
            raise DataError(f"{test_source.name}: a test file must have the training file's columns "
                            f"({table.names or table.X.shape[1]}). Got {test.names or test.X.shape[1]} instead.")
        y_test = _test_labels(test_source.name, test, labels)
        decoded += [test.X, y_test.astype(np.int64)]
        rows = _random_split(len(y), rng=rng, where=source.name, test=False)
        rows.append(np.arange(len(y), len(y) + len(y_test)))
        X, y_all = np.concatenate([table.X, test.X]), np.concatenate([y, y_test])
    Xd = _as_dtype(X, dt, source.name)
    splits = [(Xd[r], y_all[r]) for r in rows]
    found = {**identity(decoded, rows, seed=seed), "label_column": table.label_column}
    return Dataset(Path(source.name).name, *splits[0], *splits[1], *splits[2], n_classes=len(labels.classes),
                   class_names=[str(c) for c in labels.classes], source=source.name, identity=found, labels=labels,
                   feature_names=table.names)


def _read_npy(path: Path) -> NDArray[Any]:
    """A 2-D numeric ``.npy`` array, read without pickle and without trusting the header's size."""
    # NOTE: the whole file is read first, so no length in a hostile header can make a
    # read allocate more than the file itself.
    return _parse_npy(bytearray(_read_bytes(path)), path)


def _parse_npy(data: bytearray, path: PathLike) -> NDArray[Any]:
    """The 2-D numeric array of a ``.npy`` file's bytes ``data``."""
    f = io.BytesIO(data)
    shape, fortran, dtype = read_npy_header(f, str(path), error=DataError)
    _check_npy_header(path, shape, dtype)
    need, have = math.prod(shape) * dtype.itemsize, len(data) - f.tell()
    if need != have:
        raise DataError(f"{path}: the .npy header claims {_size_text(need)} bytes of data, the file holds {have}.")
    X = np.frombuffer(data, dtype, offset=f.tell(), count=math.prod(shape))
    return X.reshape(shape, order="F" if fortran else "C")


def _check_npy_header(path: PathLike, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in "iuf" or dtype.itemsize == 0:
        raise DataError(f"{path}: features must be integers or floats. Got dtype {dtype} instead.")
    if len(shape) != 2 or min(shape) < 0:
        got = _shape_text(shape)
        raise DataError(f"{path}: features must be a 2-D array of shape (n, d). Got shape {got} instead.")


def load_features(path: PathLike, *, dtype: str | type = "float64") -> Array:
    """Features to predict on, shape (n, d): a ``.npy`` file or a text table (see :func:`read_features`)."""
    return read_features(path, dtype=dtype)[0]


def read_features(path: PathLike, *, dtype: str | type = "float64", header: str = "auto", delimiter: str = "auto",
                  max_memory: int | None = None, timeout: float = STREAM_TIMEOUT,
                  select: Sequence[str] | None = None) -> tuple[Array, list[str] | None]:
    """Features to predict on, shape (n, d), and the header's column names (None without a header).

    ``path`` is a ``.npy`` file (told by name or magic, read with no pickle), a text table
    as in :func:`read_table`, or a stream: ``-`` for standard input, a pipe or process
    substitution. A stream is read whole, at most :data:`STREAM_LIMIT` bytes (and a quarter
    of the memory budget) within ``timeout`` seconds. Every value must be finite and there
    must be at least one row. ``select`` picks columns by header name (see
    :func:`npmlp.tables.read_table`).
    """
    dt = resolve_dtype(dtype)
    names = None
    if str(path) == "-" or file_kind(_expand(path)).endswith("FIFO (named pipe)"):
        name = "standard input" if str(path) == "-" else str(path)
        have, _ = budget.limit(max_memory)
        limit = min(STREAM_LIMIT, have // 4) if have is not None else STREAM_LIMIT
        try:
            with contextlib.ExitStack() as stack:
                # NOTE: a plain open() of a FIFO waits for a writer, for ever if none comes;
                # opened non-blocking, the wait is read_bounded's, with its deadline.
                stream = sys.stdin.buffer if str(path) == "-" else stack.enter_context(
                    os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb"))
                data = budget.read_bounded(stream, name, limit=limit, timeout=timeout)
        except OSError as exc:
            raise DataError(f"{name}: cannot read it ({exc}).") from exc
        if data.startswith(NPY_MAGIC):
            X = _parse_npy(bytearray(data), name)
        else:
            table = tables.read_table(tables.decode(data, name), label=None, header=header, delimiter=delimiter,
                                      select=select)
            X, names = table.X, table.names
    else:
        file = _regular_file(path, "features file")
        name = str(file)
        if file.suffix.lower() == ".npy" or _read_bytes(file, limit=len(NPY_MAGIC)) == NPY_MAGIC:
            X = _read_npy(file)
        else:
            table = tables.read_table(tables.TextSource(name, path=file), label=None, header=header,
                                      delimiter=delimiter, memory=_memory_check(max_memory), select=select)
            X, names = table.X, table.names
    if 0 in X.shape:
        raise DataError(f"{name}: features must have at least one row and one column. Got shape {X.shape} instead.")
    return _as_dtype(X, dt, name), names
