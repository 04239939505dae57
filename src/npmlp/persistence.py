"""Safe files: model files and training checkpoints.

Every file is written through :mod:`npmlp.atomicfile` (temporary file, fsync, rename).

Model files: ``DIR/model.npz`` and ``DIR/config.json``
------------------------------------------------------
``model.npz`` is an uncompressed ``np.savez`` archive of the parameters ``W1, b1, W2, b2, ...``,
float32 or float64, and (format 2) a uint8 array ``config`` holding the UTF-8 text of the
config document; all of it loadable with ``allow_pickle=False``. The config document::

    {"format_version": 2, "npmlp_version": "0.1.0",
     "architecture": {"sizes": [d, h1, ..., m], "activation": "rect", "dtype": "float64"},
     "penalty": {"l1": [...], "l2": [...]},          # one value per weight matrix
     "training": {...},                               # the caller's flags, to retrain
     "arrays": {"W1": {"shape": [h1, d], "dtype": "float64"}, ...},
     "sha256": "<arrays_sha256 of the parameters in the order W1, b1, W2, ...>",
     ...}                                             # the caller's extra entries (save_model(extra=))

``config.json`` holds the same text, for people and other tools. Both files are written to
temporary files and fsynced first; then ``model.npz`` is renamed into place, ``config.json``
right after. The rename of ``model.npz`` is the commit point: it carries its own config, so a
reader (:func:`load_model` opens it once and reads both from that one file) sees the old model
or the new one, never a mix, even while a run replaces it; ``config.json`` is never read when
``model.npz`` has a config of its own.

Format 1 (written by npmlp before format 2, still read): ``model.npz`` holds only the
parameters and ``config.json`` is the config; its checksum says which arrays belong to it, so a
mixed pair is reported as a checksum mismatch, never loaded as a silently wrong model.

Checkpoints: ``DIR/checkpoint/``
--------------------------------
``checkpoint/arrays-<first 16 hex digits of its sha256>.npz`` holds the parameters as
``param/NAME`` and the optimizer's arrays as ``state/NAME``; ``checkpoint/history-<8 hex
digits>.jsonl`` the history, one JSON object per line (an epoch); ``checkpoint/meta.json``::

    {"format_version": 2, "npmlp_version": "0.1.0",
     "arrays_file": "arrays-0123456789abcdef.npz",
     "arrays": {"param/W1": {"shape": [...], "dtype": "float64"}, ...},
     "sha256": "<arrays_sha256 of the arrays in the order listed>",
     "history": {"file": "history-01234567.jsonl", "lines": n, "bytes": b, "last_offset": o,
                 "sha256": "<h_n, where h_0 = 64 zeros, h_i = sha256(h_(i-1) as hex + line i)>"},
     "meta_sha256": "<sha256 of json.dumps(meta, sort_keys=True, separators=(",", ":"))>",
     "meta": {...}}                                   # the caller's: epoch, RNG state, settings

``meta.json`` stays small however long the run: the history file grows by appending. Only
its first ``bytes`` bytes (``lines`` lines, the last one starting at ``last_offset``) belong to
the checkpoint: lines a crash left past them, a torn last line included, are ignored and cut
off by the next checkpoint.

A new checkpoint writes its arrays under a new name, so the old arrays file stays untouched
(the same name means the same arrays), appends to the history file after the bytes the old
``meta.json`` counts (fsynced), and renames ``meta.json`` last: that rename is the commit
point. A crash at any moment leaves ``meta.json`` naming a complete arrays file and history
prefix, the old ones or the new ones; files no ``meta.json`` names any more are deleted
after the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.typing import NDArray

from ._version import __version__
from .atomicfile import fsync_dir, json_default, json_text, staged
from .dtypes import DTYPES
from .errors import ModelFileError
from .network import MLP
from .npyheader import MAX_HEADER, read_npy_header

__all__ = [
    "Checkpoint",
    "arrays_sha256",
    "load_checkpoint",
    "load_model",
    "remove_checkpoint",
    "run_status",
    "save_checkpoint",
    "save_model",
]

PathLike = str | os.PathLike[str]
Listing = dict[str, tuple[tuple[int, ...], np.dtype]]

FORMAT_VERSION = 2
CHECKPOINT_FORMAT_VERSION = 2  # 2: the history in an append-only file beside meta.json
MODEL_FILE = "model.npz"
EMBEDDED_CONFIG = "config"  # format 2: model.npz's uint8 member holding config.json's text
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"  # written beside the model by npmlp train (npmlp.runs)
CHECKPOINT_DIR = "checkpoint"
META_FILE = "meta.json"
MAX_JSON_BYTES = 64 * 2**20  # far above any real config or history; refuses a stray huge file
_ARRAY_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "bool")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*(/[A-Za-z_][A-Za-z0-9_.-]*)*")
_SHA = re.compile(r"[0-9a-f]{64}")
_ARRAYS_FILE = re.compile(r"arrays-[0-9a-f]{16}\.npz|history-[0-9a-f]{8}\.jsonl")
_HISTORY_FILE = re.compile(r"history-[0-9a-f]{8}\.jsonl")
_OUR_TEMP = re.compile(r"\.(arrays-[0-9a-f]{16}\.npz|meta\.json)\.[0-9a-f]{8}\.tmp")
# What a damaged archive can raise from zipfile, zlib or numpy's .npy reader.
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError,
                RuntimeError, NotImplementedError, struct.error, zlib.error, zipfile.BadZipFile,
                zipfile.LargeZipFile)


# -- checksums -----------------------------------------------------------------------
def arrays_sha256(arrays: Mapping[str, NDArray[Any]]) -> str:
    """SHA-256 hex digest of named arrays, whatever their byte order or memory layout.

    For each name in the mapping's order it hashes ``name``, the dtype name (``float64``)
    and the shape as comma-separated decimals, each followed by a NUL byte, then the
    array's values as C-order little-endian bytes.
    """
    h = hashlib.sha256()
    for name, value in arrays.items():
        a = np.asarray(value)
        h.update(f"{name}\0{a.dtype.name}\0{','.join(map(str, a.shape))}\0".encode())
        h.update(a.astype(a.dtype.newbyteorder("<"), order="C", copy=False).tobytes())
    return h.hexdigest()


def _json_sha256(obj: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys, no spaces): equal for equal parsed documents."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _describe(arrays: Mapping[str, NDArray[Any]]) -> dict[str, dict[str, Any]]:
    return {name: {"shape": list(a.shape), "dtype": a.dtype.name} for name, a in arrays.items()}


def _refuse_nonfinite(arrays: Mapping[str, NDArray[Any]]) -> None:
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFileError(f"refusing to save {name}: it holds nan/inf.")


# -- reading and checking --------------------------------------------------------------
def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_json(path: Path, hint: str = "") -> dict[str, Any]:
    """The JSON object in ``path``, or :class:`ModelFileError` saying what is wrong."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing{hint}.") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{path} is larger than {MAX_JSON_BYTES} bytes: it is not an npmlp file.")
    return _parse_json(raw, path)


def read_run_history(path: PathLike) -> list[dict[str, Any]] | None:
    """The rows of ``history.json`` beside the model in ``path`` (a run directory of ``npmlp train``, or one of
    its model files); None when there is none.

    Each row must be an object whose ``epoch`` counts from 1 and whose ``train_loss`` is a finite
    number: anything else is a :class:`ModelFileError` naming the row.
    """
    where = Path(path)
    file = (where if where.is_dir() else where.parent) / HISTORY_FILE
    if not file.is_file():
        return None
    with open(file, "rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ModelFileError(f"{file} is larger than {MAX_JSON_BYTES} bytes: it is not an npmlp file.")
    rows = _json_value(raw, file)
    if not isinstance(rows, list):
        raise ModelFileError(f"{file} must hold a JSON list of epochs. Got {type(rows).__name__} instead.")
    for i, row in enumerate(rows):
        loss = row.get("train_loss") if isinstance(row, dict) else None
        if not isinstance(row, dict) or row.get("epoch") != i + 1 or isinstance(loss, bool) \
                or not isinstance(loss, (int, float)):
            raise ModelFileError(f"{file}: row {i + 1} must be an object with epoch {i + 1} and a finite "
                                 f"train_loss. Got {_short(row)} instead.")
    return rows


def _json_value(raw: bytes, path: Path | str) -> Any:
    """The JSON document in the bytes ``raw`` read from ``path``, finite numbers only."""
    try:
        return json.loads(raw.decode("utf-8"), parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path} is not valid JSON: {exc}.") from exc


def _parse_json(raw: bytes, path: Path | str) -> dict[str, Any]:
    """The JSON object in the bytes ``raw`` read from ``path``, finite numbers only."""
    doc = _json_value(raw, path)
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path} must hold a JSON object. Got {type(doc).__name__} instead.")
    return doc


_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _get(doc: Mapping[str, Any], key: str, kind: type, path: Path, where: str = "") -> Any:
    """``doc[key]`` if present and of type ``kind`` (bools are not integers)."""
    if key not in doc:
        raise ModelFileError(f"{path} lacks the key {where + key!r}.")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelFileError(f"{path}: {where + key!r} must be {_KINDS[kind]}. Got {_short(value)} instead.")
    return value


def _ints(value: list[Any], name: str, path: Path, *, minimum: int) -> list[int]:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value):
        raise ModelFileError(f"{path}: {name!r} must hold integers >= {minimum}. Got {_short(value)} instead.")
    return value


def _sha_field(doc: Mapping[str, Any], key: str, path: Path) -> str:
    value: str = _get(doc, key, str, path)
    if not _SHA.fullmatch(value):
        raise ModelFileError(f"{path}: {key!r} must be 64 lowercase hex digits. Got {_short(value)} instead.")
    return value


def _check_format_version(doc: Mapping[str, Any], path: Path, known: int) -> None:

    version = _get(doc, "format_version", int, path)
    if version > known:
        raise ModelFileError(
            f"{path} has format_version {version}, newer than this npmlp {__version__} reads "
            f"(up to {known}): upgrade npmlp to load it."
        )
    if version < 1:
        raise ModelFileError(f"{path}: 'format_version' must be 1 to {known}. Got {version} instead.")
    _get(doc, "npmlp_version", str, path)


def _parse_listing(doc: Mapping[str, Any], path: Path) -> Listing:
    """The ``arrays`` entry of a JSON file: name -> (shape, dtype)."""
    listing: Listing = {}
    for name, entry in _get(doc, "arrays", dict, path).items():
        where = f"arrays.{name}."
        if not isinstance(entry, dict):
            raise ModelFileError(f"{path}: {where[:-1]!r} must be an object. Got {_short(entry)} instead.")
        shape = _ints(_get(entry, "shape", list, path, where), where + "shape", path, minimum=0)
        dtype = _get(entry, "dtype", str, path, where)
        if dtype not in _ARRAY_DTYPES:
            raise ModelFileError(f"{path}: {where + 'dtype'!r} must be one of {', '.join(_ARRAY_DTYPES)}. "
                                 f"Got {_short(dtype)} instead.")
        listing[name] = (tuple(shape), np.dtype(dtype))
    return listing


def _names_diff(want: Sequence[str], got: Sequence[str]) -> str:
    missing = [n for n in want if n not in got]
    extra = [n for n in got if n not in want]
    return "; ".join(part for part in (missing and "missing " + ", ".join(missing),
                                       extra and "unexpected " + ", ".join(extra)) if part)


def _check_member(zf: zipfile.ZipFile, name: str, want: tuple[tuple[int, ...], np.dtype],
                  path: Path, source: Path, file_size: int) -> None:
    """Check one array's zip entry and ``.npy`` header against ``source`` before reading it."""
    info, (shape, dtype), where = zf.getinfo(name + ".npy"), want, f"{path}: {name}"
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{where} is encrypted.")
    # NOTE: stored members only: then the sizes the zip claims are bounded by the file's
    # own size, so a lying header can never make us allocate more than the file holds.
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise ModelFileError(f"{where} is compressed; npmlp reads uncompressed np.savez archives only.")
    if info.header_offset + info.compress_size > file_size:
        raise ModelFileError(f"{where} claims more bytes than the file holds: the file is truncated.")
    with zf.open(info) as f:
        got_shape, _, got_dtype = read_npy_header(f, where, error=ModelFileError)
        header_size = f.tell()
    if got_dtype.hasobject:
        raise ModelFileError(f"{where} is a pickled object array; npmlp never loads those.")
    if got_shape != shape or got_dtype.kind != dtype.kind or got_dtype.name != dtype.name:
        raise ModelFileError(f"{where} has shape {got_shape} and dtype {got_dtype}; "
                             f"{source.name} says {shape} and {dtype.name}.")
    if info.file_size - header_size != math.prod(shape) * dtype.itemsize:
        raise ModelFileError(f"{where} holds {info.file_size - header_size} bytes of values where {shape} "
                             f"{dtype.name} needs {math.prod(shape) * dtype.itemsize}: the file is corrupted.")


def _check_members(zf: zipfile.ZipFile, want: Listing, path: Path, source: Path, file_size: int) -> None:
    names = [info.filename for info in zf.infolist()]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path} holds several members of one name: {sorted(names)}.")
    got = [n[:-4] if n.endswith(".npy") else n for n in names]
    diff = _names_diff(list(want), got)
    if diff or len(set(got)) != len(got):
        raise ModelFileError(f"{path} does not hold the arrays {source.name} lists: {diff or 'duplicates'}.")
    for name, shape_dtype in want.items():
        _check_member(zf, name, shape_dtype, path, source, file_size)


def _read_npz(path: Path, want: Listing, source: Path, opened: IO[bytes] | None = None) -> dict[str, NDArray[Any]]:
    """Read exactly the arrays ``source`` lists from the archive ``path``, checked before read.

    ``opened``: the archive already open (the same file a caller read something else from).
    """
    try:
        with open(path, "rb") if opened is None else nullcontext(opened) as fh:
            fh.seek(0)
            if fh.read(4) != b"PK\x03\x04":
                raise ModelFileError(f"{path} is not an .npz archive: it does not start with a zip header.")
            with zipfile.ZipFile(fh) as zf:
                _check_members(zf, want, path, source, os.fstat(fh.fileno()).st_size)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in want}
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing; {source} needs it.") from None
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path} is not a readable .npz archive: {type(exc).__name__}: {exc}") from exc
    return {k: a.astype(a.dtype.newbyteorder("="), order="C", copy=False) for k, a in arrays.items()}


def _check_loaded(arrays: Mapping[str, NDArray[Any]], digest: str, path: Path, source: Path) -> None:
    """Checksum, then finiteness: what a tampered or corrupted archive fails."""
    if arrays_sha256(arrays) != digest:
        raise ModelFileError(f"{path} does not match its checksum in {source.name}: "
                             "the file was modified or corrupted.")
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFileError(f"{path} holds nan/inf in {name}: refusing to load it.")


# -- model files ---------------------------------------------------------------------
def save_model(directory: PathLike, net: MLP, *, training: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``directory/model.npz`` and ``directory/config.json`` (see the module docstring).

    Parameters
    ----------
    directory : str or path-like
        Created if missing; an existing model there is replaced.
    net : MLP
        The network; its parameters must be finite.
    training : dict, optional
        JSON-able flags needed to retrain the model, stored as ``config["training"]``.
    extra : dict, optional
        More JSON-able top-level entries of the config (the run's data identity, say);
        :func:`load_model` returns them. They may not redefine the keys above.

    Returns
    -------
    The directory, as a ``Path``.
    """

    if not isinstance(net, MLP):
        raise TypeError(f"net must be an npmlp MLP. Got {type(net).__name__} instead.")
    directory = Path(directory)
    _refuse_nonfinite(net.params)
    clash = sorted(set(extra or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"extra must not redefine the config's own keys. Got {', '.join(clash)}.")
    config = {
        "format_version": FORMAT_VERSION,
        "npmlp_version": __version__,
        "architecture": {"sizes": list(net.sizes), "activation": net.activation, "dtype": net.dtype.name},
        "penalty": {"l1": list(net.l1), "l2": list(net.l2)},
        "training": dict(training or {}),
        **(extra or {}),
        "arrays": _describe(net.params),
        "sha256": arrays_sha256(net.params),
    }
    text = json_text(config, directory / CONFIG_FILE)
    embedded = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    directory.mkdir(parents=True, exist_ok=True)
    # NOTE: model.npz is renamed first and is the commit point: it carries its own config.
    with staged([(directory / MODEL_FILE, "wb"), (directory / CONFIG_FILE, "w")]) as (f_npz, f_config):
        members: dict[str, Any] = {**net.params, EMBEDDED_CONFIG: embedded}  # numpy's stubs want Any here
        np.savez(f_npz, **members)
        f_config.write(text)
    return directory


_RESERVED = ("format_version", "npmlp_version", "architecture", "penalty", "training", "arrays", "sha256")


def _model_paths(path: Path) -> tuple[Path, Path]:
    """``(model.npz, config.json)`` from a model directory or either of its files."""
    if path.is_dir():
        return path / MODEL_FILE, path / CONFIG_FILE
    if not path.exists():
        raise ModelFileError(f"no model at {path}: expected a directory holding {MODEL_FILE} "
                             f"and {CONFIG_FILE}, or one of those files.")
    if path.suffix == ".json":
        return path.with_name(MODEL_FILE), path
    return path, path.with_name(CONFIG_FILE)


def _check_architecture(config: Mapping[str, Any], path: Path) -> tuple[list[int], str, str]:
    arch = _get(config, "architecture", dict, path)
    sizes = _ints(_get(arch, "sizes", list, path, "architecture."), "architecture.sizes", path, minimum=1)
    if len(sizes) < 2:
        raise ModelFileError(f"{path}: 'architecture.sizes' must list at least inputs and classes. Got {sizes}.")
    activation = _get(arch, "activation", str, path, "architecture.")
    dtype = _get(arch, "dtype", str, path, "architecture.")
    if dtype not in DTYPES:
        raise ModelFileError(f"{path}: 'architecture.dtype' must be one of {', '.join(DTYPES)}. "
                             f"Got {_short(dtype)} instead.")
    return sizes, activation, dtype


def _check_penalty(config: Mapping[str, Any], path: Path, n_layers: int) -> tuple[list[float], list[float]]:
    penalty = _get(config, "penalty", dict, path)
    out = []
    for key in ("l1", "l2"):
        values = _get(penalty, key, list, path, "penalty.")
        if len(values) != n_layers or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and v >= 0 for v in values):
            raise ModelFileError(f"{path}: 'penalty.{key}' must hold {n_layers} numbers >= 0, one per "
                                 f"weight matrix. Got {_short(values)} instead.")
        out.append([float(v) for v in values])
    return out[0], out[1]


def _check_config(config: Mapping[str, Any], path: Path) -> Listing:
    """Validate a model's config.json; return the arrays it needs: name -> (shape, dtype)."""
    _check_format_version(config, path, FORMAT_VERSION)
    _get(config, "training", dict, path)
    sizes, _, dtype = _check_architecture(config, path)
    _check_penalty(config, path, len(sizes) - 1)
    needed: Listing = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        needed[f"W{layer}"] = ((fan_out, fan_in), np.dtype(dtype))
        needed[f"b{layer}"] = ((fan_out,), np.dtype(dtype))
    listing = _parse_listing(config, path)
    diff = _names_diff(list(needed), list(listing))
    if diff:
        raise ModelFileError(f"{path}: 'arrays' does not list the parameters of sizes {sizes}: {diff}.")
    for name, (shape, dt) in needed.items():
        if listing[name] != (shape, dt):
            raise ModelFileError(f"{path}: 'arrays.{name}' says shape {list(listing[name][0])} and "
                                 f"{listing[name][1]}; sizes {sizes} need {list(shape)} and {dt}.")
    _sha_field(config, "sha256", path)
    return needed


def load_model(path: PathLike) -> tuple[MLP, dict[str, Any]]:
    """Load a model written by :func:`save_model`, checking everything first.

    Parameters
    ----------
    path : str or path-like
        A directory holding ``model.npz`` and ``config.json``, or either of those files
        (the other one beside it).

    Returns
    -------
    net : MLP
        Parameters bit-identical to those saved.
    config : dict
        The parsed ``config.json``, ``training`` included.

    Raises
    ------
    ModelFileError
        Naming the file and the problem: missing, not JSON or not an archive, a newer
        format, arrays missing, extra, renamed or of the wrong shape or dtype, object
        arrays, a checksum mismatch, nan or inf.
    """
    npz_path, config_path = _model_paths(Path(path))
    try:
        with open(npz_path, "rb") as fh:  # NOTE: opened once: the config and the arrays come from one file
            config, source, arrays = _read_model(fh, npz_path, config_path)
    except FileNotFoundError:
        _read_json(config_path, f"; a model directory holds {MODEL_FILE} and {CONFIG_FILE}")
        raise ModelFileError(f"{npz_path} is missing; {config_path} needs it.") from None
    except IsADirectoryError as exc:
        raise ModelFileError(f"cannot read {npz_path}: {exc.strerror or exc}.") from exc
    _check_loaded(arrays, config["sha256"], npz_path, source)
    arch, penalty = config["architecture"], config["penalty"]
    try:
        net = MLP(arrays, activation=arch["activation"], l1=penalty["l1"], l2=penalty["l2"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source} does not describe a usable model: {exc}") from exc
    return net, config


def _read_model(fh: IO[bytes], npz_path: Path,
                config_path: Path) -> tuple[dict[str, Any], Path, dict[str, NDArray[Any]]]:
    """The config, the file it came from, and the parameters, all checked (the checksum excepted).

    Format 2 takes the config embedded in ``model.npz`` and never reads ``config.json``;
    format 1 (no embedded config) reads ``config.json`` beside it.
    """
    embedded = _embedded_config(fh, npz_path)
    if embedded is None:
        config = _read_json(config_path, f"; a model directory holds {MODEL_FILE} and {CONFIG_FILE}")
        needed = _check_config(config, config_path)
        if config["format_version"] >= 2:
            raise ModelFileError(f"{config_path} has format_version {config['format_version']} but {npz_path} "
                                 "holds no config of its own: the two files do not belong together.")
        return config, config_path, _read_npz(npz_path, needed, config_path, fh)
    config, size = embedded
    needed = _check_config(config, npz_path)
    arrays = _read_npz(npz_path, {**needed, EMBEDDED_CONFIG: ((size,), np.dtype(np.uint8))}, npz_path, fh)
    del arrays[EMBEDDED_CONFIG]
    return config, npz_path, arrays


def _embedded_config(fh: IO[bytes], path: Path) -> tuple[dict[str, Any], int] | None:
    """The config document inside a format-2 ``model.npz`` and its size in bytes; None in format 1."""
    where = f"{path}: {EMBEDDED_CONFIG}"
    try:
        if fh.read(4) != b"PK\x03\x04":
            raise ModelFileError(f"{path} is not an .npz archive: it does not start with a zip header.")
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            if EMBEDDED_CONFIG + ".npy" not in zf.namelist():
                return None
            info = zf.getinfo(EMBEDDED_CONFIG + ".npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > MAX_JSON_BYTES + MAX_HEADER:
                raise ModelFileError(f"{where} is compressed or too large; npmlp writes it stored, "
                                     f"at most {MAX_JSON_BYTES} bytes.")
            with zf.open(info) as f:
                shape, _, dtype = read_npy_header(f, where, error=ModelFileError)
                if dtype != np.uint8 or len(shape) != 1:
                    raise ModelFileError(f"{where} must be a 1-D uint8 array. Got shape {shape} and {dtype}.")
                raw = f.read(MAX_JSON_BYTES + 1)
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path} is not a readable .npz archive: {type(exc).__name__}: {exc}") from exc
    if len(raw) != shape[0]:
        raise ModelFileError(f"{where} holds {len(raw)} bytes where its header says {shape[0]}: the file is corrupted.")
    return _parse_json(raw, where), shape[0]


# -- checkpoints ---------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A training run's state, as :func:`save_checkpoint` wrote it.

    Attributes
    ----------
    params : dict of str to array
        The network's parameters by name (``W1, b1, ...``), float32 or float64.
    state : dict of str to array
        The optimizer's arrays by name.
    meta : dict
        The JSON-able rest: epoch, history, RNG state, run configuration.
    """

    params: dict[str, NDArray[Any]]
    state: dict[str, NDArray[Any]]
    meta: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


_NO_LINES = "0" * 64  # h_0 of the history's hash chain


def _chain(digest: str, line: bytes) -> str:
    return hashlib.sha256(digest.encode() + line).hexdigest()


def _history_line(row: Mapping[str, Any], path: Path) -> bytes:
    """One history row as one line of compact JSON; finite numbers only."""
    try:
        return (json.dumps(row, separators=(",", ":"), allow_nan=False, default=json_default) + "\n").encode()
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"cannot write {path} as JSON lines: {exc}.") from exc


def _previous_history(checkpoint: Path) -> dict[str, Any] | None:
    """The history entry of the committed ``meta.json``, when there is a well-formed one."""
    try:
        entry = json.loads((checkpoint / META_FILE).read_text(encoding="utf-8"))["history"]
        ints = [entry[k] for k in ("lines", "bytes", "last_offset")]
        ok = (_HISTORY_FILE.fullmatch(entry["file"]) and _SHA.fullmatch(entry["sha256"])
              and all(type(v) is int and v >= 0 for v in ints))
        return dict(entry) if ok else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _append_history(checkpoint: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Make the history file hold ``rows`` as its first lines; return the entry ``meta.json`` records.

    Appends after the lines the committed ``meta.json`` counts when they are a prefix of
    ``rows`` (checked on the last one), cutting off whatever a crash left past them; else
    writes a new file. Fsynced before returning: ``meta.json``'s rename is the commit.
    """
    lines = [_history_line(row, checkpoint / "history.jsonl") for row in rows]
    prev = _previous_history(checkpoint)
    if prev is not None and 0 < prev["lines"] <= len(lines):
        try:
            with open(checkpoint / prev["file"], "r+b") as f:
                f.seek(prev["last_offset"])
                last = lines[prev["lines"] - 1]
                if prev["last_offset"] + len(last) == prev["bytes"] and f.read(len(last)) == last:
                    return _write_lines(f, prev, lines)
        except OSError:
            pass  # unreadable: start a new file
    name = f"history-{os.urandom(4).hex()}.jsonl"
    fd = os.open(checkpoint / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as f:
        return _write_lines(f, {"file": name, "lines": 0, "bytes": 0, "last_offset": 0, "sha256": _NO_LINES}, lines)


def _write_lines(f: IO[bytes], entry: dict[str, Any], lines: Sequence[bytes]) -> dict[str, Any]:
    """Write ``lines[entry["lines"]:]`` at byte ``entry["bytes"]`` of ``f``, truncate, fsync; the new entry."""
    entry = dict(entry)
    f.seek(entry["bytes"])
    f.truncate()
    for line in lines[entry["lines"]:]:
        f.write(line)
        entry["sha256"] = _chain(entry["sha256"], line)
        entry["last_offset"], entry["bytes"] = entry["bytes"], entry["bytes"] + len(line)
    entry["lines"] = len(lines)
    f.flush()
    os.fsync(f.fileno())
    return entry


def _read_history(checkpoint: Path, doc: Mapping[str, Any], meta_path: Path) -> list[dict[str, Any]]:
    """The history lines ``meta.json`` counts, checked against its hash chain; lines past them are ignored."""
    entry = _get(doc, "history", dict, meta_path)
    name = _get(entry, "file", str, meta_path, "history.")
    if not _HISTORY_FILE.fullmatch(name):
        raise ModelFileError(f"{meta_path}: 'history.file' must be like history-01234567.jsonl. "
                             f"Got {_short(name)} instead.")
    n, size, last = (_ints([_get(entry, k, int, meta_path, "history.")], f"history.{k}", meta_path, minimum=0)[0]
                     for k in ("lines", "bytes", "last_offset"))
    digest = _sha_field(entry, "sha256", meta_path)
    path = checkpoint / name
    try:
        with open(path, "rb") as f:
            raw = f.read(size)
    except FileNotFoundError:
        raise ModelFileError(f"{path} is missing; {meta_path.name} needs it.") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    if len(raw) < size:
        raise ModelFileError(f"{path} holds {len(raw)} bytes; {meta_path.name} counts {size}: it was truncated.")
    lines = [line + b"\n" for line in raw.split(b"\n")[:-1]]  # a torn last line has no newline: not counted
    chain = _NO_LINES
    for line in lines:
        chain = _chain(chain, line)
    if len(lines) != n or chain != digest or sum(map(len, lines)) != size or (n and size - len(lines[-1]) != last):
        raise ModelFileError(f"{path} does not match its hash in {meta_path.name}: the file was modified or corrupted.")
    return [_history_row(line, i, path) for i, line in enumerate(lines)]


def _history_row(line: bytes, i: int, path: Path) -> dict[str, Any]:
    """Line ``i`` of the history: an object of finite numbers or nulls."""
    try:
        row = json.loads(line.decode("utf-8"), parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: line {i + 1} is not valid JSON: {exc}.") from exc
    if not isinstance(row, dict) or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                            for v in row.values()):
        raise ModelFileError(f"{path}: line {i + 1} must be an object of numbers or nulls. Got {_short(row)} instead.")
    return row


def _checkpoint_arrays(params: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, NDArray[Any]]:
    """``param/NAME`` then ``state/NAME`` arrays, in the order given, checked."""
    arrays: dict[str, NDArray[Any]] = {}
    for prefix, group, dtypes in (("param/", params, tuple(DTYPES)), ("state/", state, _ARRAY_DTYPES)):
        for key, value in group.items():
            if not isinstance(key, str) or not _NAME.fullmatch(key):
                raise ValueError(f"{prefix[:-1]} names must be like W1 or m/W1 (letters, digits, _ . - /). "
                                 f"Got {key!r} instead.")
            a = np.asarray(value)
            if a.dtype.name not in dtypes:
                raise TypeError(f"{prefix}{key} must have a dtype among {', '.join(dtypes)}. Got {a.dtype} instead.")
            arrays[prefix + key] = a
    _refuse_nonfinite(arrays)
    return arrays


def save_checkpoint(out_dir: PathLike, *, params: Mapping[str, NDArray[Any]],
                    state: Mapping[str, NDArray[Any]], meta: Mapping[str, Any],
                    history: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write ``out_dir/checkpoint/`` so that a crash leaves the old checkpoint or the new one.

    Parameters
    ----------
    out_dir : str or path-like
        The run's output directory; created if missing.
    params : dict of str to array
        Finite float32/float64 parameters.
    state : dict of str to array
        The optimizer's arrays (float, integer or bool), names like ``m/W1``.
    meta : dict
        JSON-able and small: epoch, ``rng_state_to_json(rng)``, the run's configuration.
    history : sequence of dict
        One row of numbers (or None) per epoch, the earlier ones as the previous checkpoint
        had them: only the new rows are written (appended to the history file).

    Returns
    -------
    The checkpoint directory, as a ``Path``.
    """

    arrays = _checkpoint_arrays(params, state)
    checkpoint = Path(out_dir) / CHECKPOINT_DIR
    meta = json.loads(json_text(meta, checkpoint / META_FILE))  # as load_checkpoint will see it
    digest = arrays_sha256(arrays)
    arrays_file = f"arrays-{digest[:16]}.npz"
    doc: dict[str, Any] = {"format_version": CHECKPOINT_FORMAT_VERSION, "npmlp_version": __version__,
                           "arrays_file": arrays_file, "arrays": _describe(arrays), "sha256": digest,
                           "meta_sha256": _json_sha256(meta), "meta": meta}
    json_text(doc, checkpoint / META_FILE)  # refuse what JSON cannot hold before writing anything
    checkpoint.mkdir(parents=True, exist_ok=True)
    doc["history"] = _append_history(checkpoint, history)
    keep = {arrays_file, doc["history"]["file"]}
    text = json_text(doc, checkpoint / META_FILE)
    with staged([(checkpoint / arrays_file, "wb"), (checkpoint / META_FILE, "w")]) as (f_arrays, f_meta):
        members: dict[str, Any] = dict(arrays)  # numpy's stubs want Any here
        np.savez(f_arrays, **members)
        f_meta.write(text)
    _remove_stale(checkpoint, keep=keep)
    return checkpoint


def _remove_stale(checkpoint: Path, *, keep: set[str]) -> None:
    """Delete arrays and history files other than ``keep`` and the temporary files of crashed writes."""
    for p in checkpoint.iterdir():
        if p.name not in keep and (_ARRAYS_FILE.fullmatch(p.name) or _OUR_TEMP.fullmatch(p.name)):
            with suppress(OSError):
                p.unlink()


def _read_checkpoint(checkpoint: Path) -> Checkpoint:
    meta_path = checkpoint / META_FILE
    doc = _read_json(meta_path)
    _check_format_version(doc, meta_path, CHECKPOINT_FORMAT_VERSION)
    listing = _parse_listing(doc, meta_path)
    odd = [n for n, (_, dt) in listing.items()
           if not n.startswith(("param/", "state/")) or (n.startswith("param/") and dt.name not in DTYPES)]
    if odd:
        raise ModelFileError(f"{meta_path}: 'arrays' lists {', '.join(odd)}; expected param/NAME (float) "
                             "and state/NAME entries only.")
    digest = _sha_field(doc, "sha256", meta_path)
    arrays_file = _get(doc, "arrays_file", str, meta_path)
    if arrays_file != f"arrays-{digest[:16]}.npz":
        raise ModelFileError(f"{meta_path}: 'arrays_file' must be arrays-{digest[:16]}.npz to match "
                             f"'sha256'. Got {_short(arrays_file)} instead.")
    meta = _get(doc, "meta", dict, meta_path)
    if _json_sha256(meta) != _sha_field(doc, "meta_sha256", meta_path):
        raise ModelFileError(f"{meta_path} does not match its own 'meta_sha256': the file was modified or corrupted.")
    if doc["format_version"] == 1:  # the history inside meta, as npmlp wrote it before
        rows = meta.pop("history", [])
        history = [_history_row(json.dumps(row).encode(), i, meta_path) for i, row in enumerate(rows)] if isinstance(
            rows, list) else [_history_row(b"[]", 0, meta_path)]
    else:
        history = _read_history(checkpoint, doc, meta_path)
    arrays = _read_npz(checkpoint / arrays_file, listing, meta_path)
    _check_loaded(arrays, digest, checkpoint / arrays_file, meta_path)
    split = {p: {k.removeprefix(p): a for k, a in arrays.items() if k.startswith(p)} for p in ("param/", "state/")}
    return Checkpoint(params=split["param/"], state=split["state/"], meta=meta, history=history)


def load_checkpoint(out_dir: PathLike) -> Checkpoint:
    """Load ``out_dir/checkpoint/``, checked like :func:`load_model`.

    Raises
    ------
    ModelFileError
        When there is no checkpoint, or it is unusable: the message names the file and
        the problem and says how to start afresh.
    """
    checkpoint = Path(out_dir) / CHECKPOINT_DIR
    if not (checkpoint / META_FILE).exists():
        raise ModelFileError(f"no checkpoint in {out_dir} ({checkpoint / META_FILE} is missing): "
                             "train without --resume to start afresh.")
    try:
        return _read_checkpoint(checkpoint)
    except ModelFileError as exc:
        raise ModelFileError(f"{exc} The checkpoint is unusable: remove {checkpoint} "
                             "or train without --resume.") from exc


def remove_checkpoint(out_dir: PathLike) -> None:
    """Delete ``out_dir/checkpoint/`` once a run is complete.

    Call it after :func:`save_model`: a crash between the two leaves both, and a resumed
    run replays from the last checkpoint. ``meta.json`` goes first, so a crash half-way
    never leaves something that looks like a checkpoint; files npmlp did not write are
    kept, and then so is the directory.
    """
    checkpoint = Path(out_dir) / CHECKPOINT_DIR
    if not checkpoint.is_dir():
        return
    with suppress(FileNotFoundError):
        (checkpoint / META_FILE).unlink()
    fsync_dir(checkpoint)
    _remove_stale(checkpoint, keep=set())
    with suppress(OSError):
        checkpoint.rmdir()


def run_status(out_dir: PathLike) -> Literal["fresh", "resumable", "finished"]:
    """What ``train --resume`` finds in ``out_dir``.

    ``"resumable"``: a checkpoint (a run is going on, or stopped before its end; not
    yet validated, :func:`load_checkpoint` does that); ``"finished"``: a model and no
    checkpoint (the run completed and called :func:`remove_checkpoint`; ``model.npz`` is the
    commit point of a model); ``"fresh"``:
    neither.
    """
    out = Path(out_dir)
    if (out / CHECKPOINT_DIR / META_FILE).is_file():
        return "resumable"
    return "finished" if (out / MODEL_FILE).is_file() else "fresh"
