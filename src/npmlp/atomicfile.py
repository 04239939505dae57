"""Atomic files and directory locks: the leaf that every writer of npmlp goes through.

Atomic writes
-------------
Every file npmlp writes goes through :func:`atomic_open` (or its one-call helpers): the bytes
go to a hidden temporary file ``.NAME.RANDOM.tmp`` in the target's directory, are flushed and
fsynced, then ``os.replace`` swaps the file in and the directory is fsynced. A reader sees the
old file or the new one, never half of one. On any error, a full disk included, the temporary
file is removed, the old file is untouched and an ``OSError`` naming the path propagates.

Directory locks
---------------
:func:`locked_directory` holds an exclusive ``fcntl.flock`` on ``DIR/.npmlp.lock`` (which
holds the holder's pid) for as long as a run, a sweep or the demo writes into ``DIR``. A
second writer is refused at once with :class:`~npmlp.errors.RunDirectoryError` naming that
pid. The kernel drops the lock when the process ends, however it ends, so a crashed run never
leaves a stale lock; the file itself stays (removing it would let two writers lock two files).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import RunDirectoryError

try:
    import fcntl
except ImportError:  # pragma: no cover - NOTE: Windows has no flock; there the lock is advisory only in name
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "locked_directory",
]

PathLike = str | os.PathLike[str]
LOCK_FILE = ".npmlp.lock"


# -- atomic writes -------------------------------------------------------------------
def _open_temp(path: Path, mode: str) -> tuple[Path, IO[Any]]:
    """Create ``.NAME.RANDOM.tmp`` beside ``path``, mode 0o666 less the umask like ``open``."""
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        return tmp, (os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8", newline=""))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise


def fsync_dir(directory: Path) -> None:
    """Make renames in ``directory`` durable; best effort, as some systems cannot open a directory."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(paths: Sequence[Path], replaced: Sequence[Path], exc: OSError) -> OSError:
    """The error to raise when writing ``paths`` failed: it names them and says what was kept."""
    kept = ("the previous contents are unchanged" if not replaced else
            f"{', '.join(map(str, replaced))} was replaced, the rest kept their previous contents")
    message = f"cannot write {', '.join(map(str, paths))}: {exc.strerror or exc}; {kept}."
    return OSError(exc.errno, message) if exc.errno is not None else OSError(message)


@contextmanager
def staged(targets: Sequence[tuple[Path, str]]) -> Iterator[list[IO[Any]]]:
    """Write several files at once, then rename them into place in the order given.

    Every file is complete and fsynced before the first rename, so the only window in
    which a crash leaves a mix of old and new files is between the renames.
    """
    temps: list[tuple[Path, Path, IO[Any]]] = []
    replaced: list[Path] = []
    try:
        for path, mode in targets:
            temps.append((path, *_open_temp(path, mode)))
        yield [f for _, _, f in temps]
        for _, _, f in temps:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for path, tmp, _ in temps:
            os.replace(tmp, path)
            replaced.append(path)
    except OSError as exc:
        raise _write_error([p for p, _ in targets], replaced, exc) from exc
    finally:
        for path, tmp, f in temps:
            with suppress(OSError):
                f.close()
            if path not in replaced:
                with suppress(OSError):
                    os.unlink(tmp)
    for directory in {p.parent for p, _ in targets}:
        fsync_dir(directory)


@contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it is replaced whole or not at all.

    Parameters
    ----------
    path : str or path-like
        The file to write; its directory must exist.
    mode : {"wb", "w"}
        Binary, or UTF-8 text without newline translation.

    Yields
    ------
    A file object on a temporary file beside ``path``. When the ``with`` block ends
    normally the file is flushed, fsynced and renamed to ``path``; when it raises, the
    temporary file is removed and ``path`` keeps its previous contents. An ``OSError``
    (a full disk, say) comes out as an ``OSError`` with the same errno naming ``path``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w'. Got {mode!r} instead.")
    with staged([(Path(path), mode)]) as (f,):
        yield f


def atomic_write_bytes(path: PathLike, data: bytes, *, parents: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); return the path.

    ``parents=True`` creates the file's directory first.
    """
    if parents:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically as UTF-8, newlines as given; return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` to ``path`` atomically as JSON (indent 2); return the path.

    NumPy scalars and arrays become numbers and lists. Raises ``ValueError`` for nan or
    inf (JSON has no such numbers; Python would write a non-standard ``NaN``) and
    ``TypeError`` for other objects, before anything is written.
    """
    return atomic_write_text(path, json_text(obj, path))


def json_default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_text(obj: Any, path: PathLike) -> str:
    """``obj`` as JSON text for ``path``, finite numbers only."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False, default=json_default) + "\n"
    except ValueError as exc:
        raise ValueError(f"cannot write {path} as JSON: {exc} (nan and inf have no JSON form).") from exc
    except TypeError as exc:
        raise TypeError(f"cannot write {path} as JSON: {exc}.") from exc




# -- directory locks -----------------------------------------------------------------
def _holder(fd: int) -> str:
    """The pid written in a lock file, as text ("unknown" while its holder is writing it)."""
    with suppress(OSError, UnicodeDecodeError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return text
    return "unknown"


@contextmanager
def locked_directory(directory: PathLike, *, what: str = "run", flag: str = "--out") -> Iterator[Path]:
    """Hold the exclusive lock on ``directory`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    directory : str or path-like
        The directory a run, sweep or demo writes into.
    what : str
        What holds it, for the message ("run", "sweep", "demo").
    flag : str
        The flag that chooses another directory, for the message.

    Raises
    ------
    RunDirectoryError
        At once, when another process holds the lock; the message names its pid.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirectoryError(
                    f"{directory} is in use by another npmlp {what} (pid {_holder(fd)}): wait for it to end "
                    f"or choose another {flag}.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield directory
    finally:
        os.close(fd)  # releases the lock
