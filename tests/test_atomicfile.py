"""Atomic writes and directory locks: round trips, errors, full disks, a second writer."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from npmlp import atomicfile as A
from npmlp.errors import RunDirectoryError


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_all_is_sorted_and_exists() -> None:
    assert A.__all__ == sorted(A.__all__)
    assert all(hasattr(A, name) for name in A.__all__)


# -- atomic writes -------------------------------------------------------------------
def test_atomic_writers_round_trip(tmp_path: Path) -> None:
    assert A.atomic_write_bytes(tmp_path / "a.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert A.atomic_write_text(tmp_path / "a.txt", "é\nx\n").read_bytes() == "é\nx\n".encode()
    obj = {"a": [1, 2.5], "n": np.float32(0.5), "i": np.int64(3), "arr": np.arange(2), "p": tmp_path}
    A.atomic_write_json(tmp_path / "a.json", obj)
    text = (tmp_path / "a.json").read_text()
    assert text.startswith('{\n  "a": [') and text.endswith("}\n")
    assert json.loads(text) == {"a": [1, 2.5], "n": 0.5, "i": 3, "arr": [0, 1], "p": str(tmp_path)}
    assert files_in(tmp_path) == {"a.bin", "a.txt", "a.json"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_atomic_write_json_refuses_nonfinite_and_keeps_the_old_file(tmp_path: Path, bad: float) -> None:
    path = A.atomic_write_json(tmp_path / "h.json", {"loss": 1.0})
    with pytest.raises(ValueError, match=r"cannot write .*h\.json as JSON.*nan and inf"):
        A.atomic_write_json(path, {"loss": [0.5, bad]})
    assert json.loads(path.read_text()) == {"loss": 1.0}
    assert files_in(tmp_path) == {"h.json"}


def test_atomic_write_json_refuses_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        A.atomic_write_json(tmp_path / "x.json", {"f": object()})
    assert files_in(tmp_path) == set()


def test_atomic_open_error_in_block_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = A.atomic_write_bytes(tmp_path / "f.bin", b"old")
    with pytest.raises(RuntimeError, match="boom"), A.atomic_open(path) as f:
        f.write(b"new, half written")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert files_in(tmp_path) == {"f.bin"}


def test_atomic_open_text_mode_and_bad_mode(tmp_path: Path) -> None:
    with A.atomic_open(tmp_path / "t.csv", "w") as f:
        f.write("a,b\r\n1,2\n")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n1,2\n"
    with (
        pytest.raises(ValueError, match="mode must be 'wb' or 'w'. Got 'ab' instead."),
        A.atomic_open(tmp_path / "t.csv", "ab"),
    ):
        pass


def test_atomic_open_file_mode_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = A.atomic_write_bytes(tmp_path / "m.bin", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0o600


def test_atomic_open_missing_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cannot write .*nowhere.*f\.bin"):
        A.atomic_write_bytes(tmp_path / "nowhere" / "f.bin", b"x")


def test_full_disk_at_fsync_is_reported_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = A.atomic_write_text(tmp_path / "history.json", "[]\n")

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match=r"cannot write .*history\.json: No space left on device") as info:
        A.atomic_write_json(path, [1, 2])
    assert info.value.errno == errno.ENOSPC
    assert path.read_text() == "[]\n" and files_in(tmp_path) == {"history.json"}


# -- directory locks -----------------------------------------------------------------
def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    with A.locked_directory(tmp_path / "run") as directory:
        assert (directory / A.LOCK_FILE).read_text() == f"{os.getpid()}\n"
        # flock locks belong to an open file: a second open in this very process is a second writer
        message = (rf"run is in use by another npmlp sweep \(pid {os.getpid()}\): "
                   r"wait for it to end or choose another --out")
        with pytest.raises(RunDirectoryError, match=message), A.locked_directory(directory, what="sweep"):
            pass
    with A.locked_directory(tmp_path / "run"):  # released when the first one ended
        pass
