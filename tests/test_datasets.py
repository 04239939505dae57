"""Data sets: IDX round trips and malformed files, downloads from a local server, lookup
order, the circles generator, text and .npy files, and hostile bytes (only DataError)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npmlp import datasets
from npmlp.datasets import (
    Dataset,
    load_dataset,
    load_features,
    load_idx_dir,
    load_text,
    make_circles,
    read_idx,
    read_table,
)
from npmlp.errors import DataError

IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- helpers: IDX files written by the tests ---------------------------------------------
def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX encoding of ``arr``: ``00 00 TYPE NDIM``, big-endian sizes, big-endian data."""
    header = bytes([0, 0, IDX_CODES[arr.dtype.name], arr.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_set(directory: Path, n_train: int, n_test: int, *, shape=(28, 28), gz=True, seed=0,
                  learnable: bool = False) -> dict:
    """Four IDX files of random images and labels 0..9; returns the arrays by file name.

    ``learnable``: image row ``2 * label`` is bright, so a network learns the labels (random
    ones would end in "no progress", which ``npmlp train`` reports with exit 1).
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    if learnable:
        for part in ("train", "t10k"):
            images, labels = arrays[f"{part}-images-idx3-ubyte"], arrays[f"{part}-labels-idx1-ubyte"]
            images //= 4
            images[np.arange(len(labels)), 2 * labels] = 255
    for base, arr in arrays.items():
        write(directory / (base + ".gz" if gz else base), idx_bytes(arr), gz=gz)
    return arrays


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $NPMLP_DATA, no system folders, a cache under tmp_path; returns the cache root."""
    monkeypatch.delenv("NPMLP_DATA", raising=False)
    monkeypatch.delenv("NPMLP_MIRROR_MNIST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    # the small synthetic sets stand for the named ones here: no label fingerprint to match
    monkeypatch.setattr(datasets, "LABEL_SHA256", {})
    monkeypatch.setattr(datasets, "LABEL_COUNTS", {})
    return tmp_path / "xdg" / "npmlp"


# -- IDX: round trips ------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trips_every_type(tmp_path: Path, dtype: str, gz: bool) -> None:
    arr = (np.arange(-12, 12).reshape(2, 3, 4) * 7).astype(dtype)
    out = read_idx(write(tmp_path / "a.idx", idx_bytes(arr), gz=gz))
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == arr.dtype and out.dtype.isnative and out.shape == (2, 3, 4)


def test_read_idx_tells_gzip_by_magic_not_name(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", idx_bytes(arr))), arr)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "labels-ubyte", idx_bytes(arr), gz=True)), arr)


def test_read_idx_result_is_writable_and_1d(tmp_path: Path) -> None:
    out = read_idx(write(tmp_path / "l", idx_bytes(np.zeros(0, dtype=np.uint8))))
    assert out.shape == (0,)
    read_idx(write(tmp_path / "m", idx_bytes(np.ones(3, dtype=np.uint8))))[0] = 5


# -- IDX: malformed files --------------------------------------------------------------
GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))  # 00 00 08 02, 3, 4, 12 bytes
MALFORMED = {
    "empty": (b"", "must start with 4 magic bytes"),
    "short magic": (b"\0\0\x08", "must start with 4 magic bytes"),
    "wrong magic": (b"\x01\x00" + GOOD[2:], "must start with 00 00. Got 01 00"),
    "unknown type": (GOOD[:2] + b"\x0a" + GOOD[3:], "type byte must be one of .* Got 0a"),
    "no dimensions": (b"\0\0\x08\0", "at least 1 dimension"),
    "truncated header": (GOOD[:9], "header is truncated"),
    "truncated data": (GOOD[:-1], "truncated"),
    "trailing bytes": (GOOD + b"\0", "trailing bytes"),
}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_read_idx_rejects_malformed_files(tmp_path: Path, case: str, gz: bool) -> None:
    data, match = MALFORMED[case]
    path = write(tmp_path / "bad-idx1-ubyte", data, gz=gz)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "re-download" in str(info.value)


def test_read_idx_rejects_broken_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(GOOD)
    with pytest.raises(DataError, match="cannot read it"):
        read_idx(write(tmp_path / "cut.gz", packed[: len(packed) // 2]))
    with pytest.raises(DataError, match="cannot read it"):
        read_idx(write(tmp_path / "junk.gz", b"\x1f\x8b" + b"\xff" * 40))


@pytest.mark.parametrize("gz", [False, True])
def test_lying_header_fails_fast_without_allocating(tmp_path: Path, gz: bool) -> None:
    # 10^6 x 10^6 bytes claimed (1 TB), 100 bytes present.
    header = b"\0\0\x08\x02" + (10**6).to_bytes(4, "big") * 2
    path = write(tmp_path / "liar", header + bytes(100), gz=gz)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError, match="claims 1000000000000 bytes"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 10 * 2**20


def test_gzip_claim_within_deflate_ratio_is_read_then_found_short(tmp_path: Path) -> None:
    # 4 MB claimed in a file that deflate could fill, but only 100 bytes inside: read, capped, rejected.
    header = b"\0\0\x08\x01" + (4 * 2**20).to_bytes(4, "big")
    packed = gzip.compress(header + bytes(100))
    path = write(tmp_path / "short.gz", packed + bytes(4 * 2**20 // 1000))  # trailing zeros: ignored by gzip
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_read_idx_names_missing_and_irregular_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="not a regular file"):
        read_idx(tmp_path)


# -- IDX folders -----------------------------------------------------------------------
def test_idx_dir_small_train_keeps_last_20_percent_for_valid(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "set", 50, 7, shape=(4, 3), gz=False)
    ds = load_dataset(str(tmp_path / "set"), dtype="float32")
    assert [len(y) for _, y in ds.splits().values()] == [40, 10, 7]
    assert ds.image_shape == (4, 3) and ds.n_features == 12 and ds.class_names is None
    assert ds.X_train.dtype == ds.X_test.dtype == np.float32 and ds.y_train.dtype == np.intp
    images = arrays["train-images-idx3-ubyte"].reshape(50, 12)
    np.testing.assert_array_equal(ds.X_valid, (images[40:] / np.float32(255)).astype(np.float32))
    np.testing.assert_array_equal(ds.y_valid, arrays["train-labels-idx1-ubyte"][40:])
    assert ds.n_classes == max(arrays["train-labels-idx1-ubyte"].max(), arrays["t10k-labels-idx1-ubyte"].max()) + 1


def test_idx_dir_big_train_keeps_last_10000_for_valid(tmp_path: Path) -> None:
    write_idx_set(tmp_path, 20_001, 3, shape=(1, 1), gz=False)
    ds = load_idx_dir(tmp_path)
    assert [len(y) for _, y in ds.splits().values()] == [10_001, 10_000, 3]
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1 and ds.X_train.dtype == np.float64


def test_idx_dir_rejects_count_mismatch(tmp_path: Path) -> None:
    write_idx_set(tmp_path, 5, 3, shape=(2, 2), gz=False)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(DataError, match="holds 5 images but .*holds 4 labels"):
        load_idx_dir(tmp_path)


def test_idx_dir_rejects_labels_in_place_of_images(tmp_path: Path) -> None:
    write_idx_set(tmp_path, 5, 3, shape=(2, 2), gz=False)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(DataError, match="images file must be 3-D unsigned bytes .* Got 1-D uint8"):
        load_idx_dir(tmp_path)


def test_idx_dir_rejects_wrong_dtype_and_missing_files(tmp_path: Path) -> None:
    write_idx_set(tmp_path, 5, 3, shape=(2, 2), gz=False)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(3, dtype=np.int32)))
    with pytest.raises(DataError, match="labels file must be 1-D unsigned bytes .* Got 1-D int32"):
        load_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="Missing: t10k-labels-idx1-ubyte"):
        load_idx_dir(tmp_path)


# -- named sets: lookup order ----------------------------------------------------------
def test_lookup_order_data_dir_then_env_then_cache_then_system(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_idx_set(tmp_path / "flag", 10, 2)  # files directly in --data-dir
    write_idx_set(tmp_path / "env" / "mnist", 15, 2)
    write_idx_set(isolated / "mnist", 20, 2)
    monkeypatch.setenv("NPMLP_DATA", str(tmp_path / "env"))
    assert len(load_dataset("mnist", data_dir=tmp_path / "flag", download=False).y_train) == 8
    ds = load_dataset("mnist", download=False)
    assert len(ds.y_train) == 12 and ds.source == str(tmp_path / "env" / "mnist")
    monkeypatch.delenv("NPMLP_DATA")
    ds = load_dataset("mnist", download=False)
    assert len(ds.y_train) == 16 and ds.source == str(isolated / "mnist")
    assert ds.class_names == [str(d) for d in range(10)] and ds.image_shape == (28, 28) and ds.n_classes == 10
    write_idx_set(tmp_path / "debian", 25, 2)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "debian",)})
    ds = load_dataset("fashion-mnist", download=False)
    assert len(ds.y_train) == 20 and ds.class_names[9] == "Ankle boot"


def test_data_dir_with_a_subfolder_per_set(tmp_path: Path, isolated: Path) -> None:
    write_idx_set(tmp_path / "root" / "fashion-mnist", 10, 2)
    ds = load_dataset("fashion-mnist", data_dir=str(tmp_path / "root"), download=False)
    assert ds.name == "fashion-mnist" and len(ds.y_test) == 2


def test_env_root_must_hold_a_subfolder(tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "bare", 10, 2)  # files directly in $NPMLP_DATA: not accepted
    monkeypatch.setenv("NPMLP_DATA", str(tmp_path / "bare"))
    with pytest.raises(DataError, match="set NPMLP_DATA to a folder holding mnist/"):
        load_dataset("mnist", download=False)


def test_xdg_cache_home_relative_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert datasets.cache_dir("mnist") == tmp_path / ".cache" / "npmlp" / "mnist"


def test_named_set_must_have_28x28_images_and_10_classes(tmp_path: Path, isolated: Path) -> None:
    write_idx_set(tmp_path / "small", 10, 2, shape=(4, 4))
    with pytest.raises(DataError, match="images must be 28x28"):
        load_dataset("mnist", data_dir=tmp_path / "small", download=False)
    write_idx_set(tmp_path / "ok", 10, 2)
    write(tmp_path / "ok" / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.array([3, 10], dtype=np.uint8)), gz=True)
    with pytest.raises(DataError, match=r"y_test must hold labels in \[0, 10\)"):
        load_dataset("mnist", data_dir=tmp_path / "ok", download=False)


def test_corrupt_local_file_is_an_error_not_skipped(tmp_path: Path, isolated: Path) -> None:
    write_idx_set(tmp_path / "flag", 10, 2)
    write_idx_set(isolated / "mnist", 20, 2)
    (tmp_path / "flag" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bjunk")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: cannot read it"):
        load_dataset("mnist", data_dir=tmp_path / "flag", download=False)


def test_not_found_offline_says_where_to_put_which_files(isolated: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist", download=False)
    message = str(info.value)
    assert message.startswith("mnist not found: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,")
    assert f"in {isolated / 'mnist'}/" in message and "--data-dir" in message and "NPMLP_DATA" in message
    assert "downloading is off" in message and "\n" not in message


# -- downloads from a local server -----------------------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        QuietHandler.requested.append(self.path)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server over tmp_path/www: good/ holds tiny MNIST files, bad/ corrupted copies."""
    www = tmp_path / "www"
    arrays = write_idx_set(www / "good", 12, 3)
    (www / "bad").mkdir()
    table = {}
    for base in arrays:
        data = (www / "good" / f"{base}.gz").read_bytes()
        (www / "bad" / f"{base}.gz").write_bytes(data[:-5] + b"XXXXX")
        table[f"{base}.gz"] = (len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(datasets.OFFICIAL_FILES, "mnist", table)
    QuietHandler.requested = []
    handler = lambda *a, **k: QuietHandler(*a, directory=str(www), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_verifies_and_caches(server: str, isolated: Path) -> None:
    ds = load_dataset("mnist", mirrors=[f"{server}/good/"])
    assert [len(y) for _, y in ds.splits().values()] == [10, 2, 3] and "downloaded" in ds.source
    assert sorted(p.name for p in (isolated / "mnist").iterdir()) == sorted(datasets.OFFICIAL_FILES["mnist"])
    # Now cached: a dead mirror does not matter.
    again = load_dataset("mnist", mirrors=[f"http://127.0.0.1:{dead_port()}/"])
    np.testing.assert_array_equal(again.X_train, ds.X_train)


def test_corrupted_download_is_rejected_and_next_mirror_tried(server: str, isolated: Path) -> None:
    ds = load_dataset("mnist", mirrors=[f"{server}/bad/", f"{server}/good"])
    assert len(ds.y_test) == 3
    assert QuietHandler.requested[:2] == ["/bad/train-images-idx3-ubyte.gz", "/good/train-images-idx3-ubyte.gz"]
    assert not [p for p in (isolated / "mnist").iterdir() if p.name.startswith(".")]


def test_corrupted_download_only_is_an_error_and_not_kept(server: str, isolated: Path) -> None:
    match = "download failed: .*/bad/train-images-idx3-ubyte.gz: corrupted download rejected"
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", mirrors=[f"{server}/bad/"])
    assert list((isolated / "mnist").iterdir()) == []


def test_missing_file_on_mirror_is_reported(server: str, isolated: Path) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        load_dataset("mnist", mirrors=[f"{server}/nothing-here/"])


def test_server_down_says_where_to_put_files(isolated: Path) -> None:
    url = f"http://127.0.0.1:{dead_port()}/"
    match = r"^mnist not found: put train-images-idx3-ubyte\.gz.* in .*npmlp/mnist/"
    with pytest.raises(DataError, match=match) as info:
        load_dataset("mnist", mirrors=[url])
    assert f"download failed: {url}train-images-idx3-ubyte.gz: " in str(info.value)


def test_mirror_from_environment(server: str, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPMLP_MIRROR_MNIST", f"http://127.0.0.1:{dead_port()}/, {server}/good/")
    assert len(load_dataset("mnist").y_train) == 10


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(server: str, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    load_dataset("mnist", mirrors=[f"{server}/good/"], progress=True)
    assert "train-images-idx3-ubyte.gz" in tty.getvalue()


# -- circles ---------------------------------------------------------------------------
def test_make_circles_radii_balance_and_seed() -> None:
    X, y = make_circles(1101, rng=np.random.default_rng(0))
    assert X.shape == (1101, 2) and y.dtype == np.intp and np.bincount(y).tolist() == [551, 550]
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(radius[y == 1], 0.8, rtol=1e-12)
    assert 0.3 < y[:550].mean() < 0.7  # classes interleaved, not sorted
    X2, y2 = make_circles(1101, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(X, X2)
    assert not np.array_equal(X, make_circles(1101, rng=np.random.default_rng(1))[0])


def test_make_circles_angles_are_uniform_and_noise_is_radial() -> None:
    X, y = make_circles(20_000, noise=0.05, rng=np.random.default_rng(0))
    angle = np.arctan2(X[:, 1], X[:, 0])
    counts = np.histogram(angle, bins=8, range=(-np.pi, np.pi))[0]
    assert counts.min() > 0.9 * 20_000 / 8
    deviation = np.hypot(X[:, 0], X[:, 1]) - np.where(y == 0, 1.0, 0.8)
    assert abs(deviation.mean()) < 0.003 and deviation.std() == pytest.approx(0.05, rel=0.05)


def test_make_circles_is_like_the_course_file(circles_file: Path) -> None:
    data = np.loadtxt(circles_file)
    X, y = make_circles(len(data), rng=np.random.default_rng(0))
    for label in (0, 1):
        course = np.hypot(*data[data[:, 2] == label, :2].T)
        ours = np.hypot(*X[y == label].T)
        assert course.mean() == pytest.approx(ours.mean(), abs=1e-6)
        assert (data[:, 2] == label).sum() == (y == label).sum()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_samples": 1}, "n_samples must be an integer >= 2. Got 1 instead"),
    ({"n_samples": 10.5}, "n_samples must be an integer"),
    ({"noise": -0.1}, "noise must be a finite number >= 0. Got -0.1"),
    ({"noise": float("nan")}, "noise must be a finite number"),
])
def test_make_circles_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        make_circles(**{"n_samples": 10, **kwargs}, rng=np.random.default_rng(0))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_load_circles_splits_60_20_20_seeded(dtype: str) -> None:
    ds = load_dataset("circles", seed=3, n_samples=1100, noise=0.1, dtype=dtype)
    assert [X.shape for X, _ in ds.splits().values()] == [(660, 2), (220, 2), (220, 2)]
    assert all(X.dtype == np.dtype(dtype) for X, _ in ds.splits().values())
    assert ds.n_classes == 2 and ds.image_shape is None and ds.class_names is None and "seed=3" in ds.source
    np.testing.assert_array_equal(load_dataset("circles", seed=3, noise=0.1, dtype=dtype).X_valid, ds.X_valid)
    assert not np.array_equal(load_dataset("circles", seed=4, noise=0.1, dtype=dtype).X_valid, ds.X_valid)


def test_load_circles_too_few_samples() -> None:
    with pytest.raises(DataError, match="needs at least 5 rows. Got 4 instead"):
        load_dataset("circles", n_samples=4)


# -- text files ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_course_circles_file_loads_and_splits(circles_file: Path, dtype: str) -> None:
    ds = load_dataset(str(circles_file), dtype=dtype, seed=1)
    assert [X.shape for X, _ in ds.splits().values()] == [(660, 2), (220, 2), (220, 2)]
    assert ds.X_train.dtype == np.dtype(dtype) and ds.n_classes == 2 and ds.name == "circles.txt"
    data = np.loadtxt(circles_file).astype(dtype)
    rows = np.concatenate([np.column_stack([X, y]) for X, y in ds.splits().values()]).astype(dtype)
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(data, axis=0))  # a permutation


def test_csv_with_comments_and_labels_mapped_to_classes_in_sorted_order(tmp_path: Path) -> None:
    text = "# x1, x2, label\n" + "".join(f"{i}, {-i}.5 ,{1 + i % 2}\n" for i in range(10)) + "\n"
    ds = load_text(write(tmp_path / "d.csv", text.encode()))
    assert ds.n_classes == 2 and ds.n_features == 2 and ds.class_names == ["1", "2"]  # labels {1, 2}: 2 classes
    assert ds.labels is not None and ds.labels.classes == (1, 2)
    assert sorted(np.concatenate([y for _, y in ds.splits().values()]).tolist()) == [0] * 5 + [1] * 5


TEXT_ERRORS = {
    "empty": (b"", "no data rows"),
    "only comments": (b"# nothing\n\n", "no data rows"),
    "ragged": (b"1 2 0\n3 4\n", "line 2: every row must have 3 columns like line 1. Got 2 instead"),
    "ragged csv": (b"1,2,0\n3 4 1\n", "line 2: every row must have 3 columns"),
    "not a number": (b"1 2 0\n1 a 0\n", "line 2, column 2: every feature cell must be a finite number. Got 'a'"),
    "empty cell": (b"1,2,0\n1,,0\n", "line 2, column 2: a missing value \\(''\\). npmlp does not impute"),
    "only a header": (b"x,y,label\n", "Got only a header row"),
    "nan": (b"1 nan 0\n", "line 1, column 2: a missing value \\('nan'\\)"),
    "inf": (b"1 2 0\n\n-inf 2 0\n", "line 3, column 1: .*'-inf'"),
    "fractional label": (b"1 2 0\n1 2 1.5\n", r"label column \(3 of the file\) must hold class labels .*: line 2 has "
                         "1.5; pass --label-column"),
    "one class": (b"1 2 -1\n", r"holds one class \(-1\)"),
    "missing label": (b"1,2,a\n1,2,\n", "line 2: a missing label"),
    "unprintable label": (b"1,2,a\n1,2,a\x00\n", "line 2: a label must be printable text"),  # found by atheris
    "one column": (b"1\n2\n", "at least 2 columns .* Got 1"),
    "binary": (b"\x00\xff\xfe1 2\n", "must be UTF-8 text .* Got byte 0xff"),
    "too few rows": (b"1 2 0\n1 2 1\n3 4 1\n", "needs at least 5 rows. Got 3"),
}


@pytest.mark.parametrize("case", list(TEXT_ERRORS))
def test_text_file_errors(tmp_path: Path, case: str) -> None:
    data, match = TEXT_ERRORS[case]
    path = write(tmp_path / "data.txt", data)
    with pytest.raises(DataError, match=match) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value)


def test_float32_overflow_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path / "big.txt", b"".join(b"1e300 %d\n" % (i % 2) for i in range(6)))
    assert load_text(path).X_train.max() == 1e300
    with pytest.raises(DataError, match="values too large for float32"):
        load_text(path, dtype="float32")


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(DataError, match="dataset must be one of circles, mnist, fashion-mnist.* Got 'nope'"):
        load_dataset("nope")
    with pytest.raises(DataError, match="Got '~nosuchuser/x' instead"):  # expanduser would raise RuntimeError
        load_dataset("~nosuchuser/x")
    with pytest.raises(ValueError, match="dtype must be one of float64, float32. Got 'int8'"):
        load_dataset("circles", dtype="int8")


# -- features for predict --------------------------------------------------------------
def test_load_features_text_and_npy(tmp_path: Path) -> None:
    X = load_features(write(tmp_path / "x.csv", b"1,2\n3,4\n"), dtype="float32")
    assert X.dtype == np.float32 and X.tolist() == [[1, 2], [3, 4]]
    A = np.arange(6, dtype=np.int16).reshape(2, 3)
    np.save(tmp_path / "a.npy", A)
    np.testing.assert_array_equal(load_features(tmp_path / "a.npy"), A)
    np.save(tmp_path / "f.npy", np.asfortranarray(A.astype(">f8")))
    (tmp_path / "f.data").write_bytes((tmp_path / "f.npy").read_bytes())  # told by magic
    np.testing.assert_array_equal(load_features(tmp_path / "f.data"), A)


@pytest.mark.parametrize(("array", "match"), [
    (np.array([{"a": 1}, None], dtype=object), "must be integers or floats. Got dtype object"),
    (np.zeros(3), r"must be a 2-D array of shape \(n, d\). Got shape \(3,\)"),
    (np.ones((2, 2), dtype=complex), "Got dtype complex128"),
    (np.array([[1.0, np.nan]]), "finite numbers. Got NaN or infinite"),
    (np.zeros((0, 3)), r"at least one row and one column. Got shape \(0, 3\)"),
])
def test_load_features_rejects_bad_npy(tmp_path: Path, array: np.ndarray, match: str) -> None:
    np.save(tmp_path / "x.npy", array, allow_pickle=True)
    with pytest.raises(DataError, match=match):
        load_features(tmp_path / "x.npy")


def test_load_features_npy_truncated_or_lying(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((4, 4)))
    data = (tmp_path / "x.npy").read_bytes()
    with pytest.raises(DataError, match=r"claims 128 bytes of data, the file holds 127"):
        load_features(write(tmp_path / "t.npy", data[:-1]))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**11, 4)})
    with pytest.raises(DataError, match="claims 3200000000000 bytes of data, the file holds 128"):
        load_features(write(tmp_path / "l.npy", header.getvalue() + bytes(128)))
    with pytest.raises(DataError, match="not a readable .npy file"):
        load_features(write(tmp_path / "g.npy", b"\x93NUMPY\x01\x00junk"))


@pytest.mark.parametrize(("shape", "match"), [
    ((10**4000,), r"Got shape \(about 10\^4000,\)"),
    ((10**4000, 10**4000), r"claims about 10\^8000 bytes"),
])
def test_load_features_npy_absurd_shapes(tmp_path: Path, shape: tuple, match: str) -> None:
    # 4,000-digit sizes: str() of an int past 4,300 digits would raise ValueError.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with pytest.raises(DataError, match=match):
        load_features(write(tmp_path / "x.npy", header.getvalue()))


# -- the Dataset container -------------------------------------------------------------
def test_dataset_validates_its_splits() -> None:
    X, y = np.zeros((4, 2)), np.zeros(4, dtype=np.intp)
    ds = Dataset("t", X, y, X, y, X, y, n_classes=1)
    assert list(ds.splits()) == ["train", "valid", "test"] and ds.n_features == 2 and "array" not in repr(ds)
    match = r"y_valid must be an integer array of shape \(4,\). Got int64 array of shape \(3,\)"
    with pytest.raises(DataError, match=match):
        Dataset("t", X, y, X, y[:3].astype(np.int64), X, y, n_classes=1)
    with pytest.raises(DataError, match="share one dtype"):
        Dataset("t", X, y, X.astype(np.float32), y, X, y, n_classes=1)
    with pytest.raises(DataError, match=r"y_test must hold labels in \[0, 1\). Got \[0, 1\]"):
        Dataset("t", X, y, X, y, X, np.array([0, 0, 0, 1]), n_classes=1)
    with pytest.raises(DataError, match="X_train must have at least one row"):
        Dataset("t", X[:0], y[:0], X, y, X, y, n_classes=1)


# -- real data -------------------------------------------------------------------------
@pytest.mark.realdata
def test_fashion_mnist_from_debian(isolated: Path) -> None:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_DIR}")
    ds = load_dataset("fashion-mnist", data_dir=FASHION_DIR, dtype="float32", download=False)
    assert [X.shape for X, _ in ds.splits().values()] == [(50_000, 784), (10_000, 784), (10_000, 784)]
    assert all(X.dtype == np.float32 and X.min() == 0 and X.max() == 1 for X, _ in ds.splits().values())
    assert ds.n_classes == 10 and set(np.unique(ds.y_test)) == set(range(10)) and ds.image_shape == (28, 28)


# -- hostile input: only DataError may escape ------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def only_data_error(fn, path: Path) -> None:
    with contextlib.suppress(DataError):
        fn(path)


@FUZZ
@given(data=st.binary(max_size=200), gz=st.booleans())
def test_read_idx_random_bytes(scratch: Path, data: bytes, gz: bool) -> None:
    only_data_error(read_idx, write(scratch / "r.idx", data, gz=gz))


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, len(GOOD) + 3), gz=st.booleans(),
)
def test_read_idx_mutated_valid_file(scratch: Path, edits: list, cut: int, gz: bool) -> None:
    data = bytearray(GOOD + b"\0\1\2")
    for pos, value in edits:
        data[pos] = value
    only_data_error(read_idx, write(scratch / "m.idx", bytes(data[:cut]), gz=gz))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("0123456789.,-+eE \t\n#naifx")), max_size=120))
def test_text_loader_random_text(scratch: Path, text: str) -> None:
    path = write(scratch / "t.txt", text.encode())
    only_data_error(load_text, path)
    only_data_error(load_features, path)


@FUZZ
@given(data=st.binary(max_size=120), cut=st.integers(0, 200))
def test_npy_and_text_random_bytes(scratch: Path, data: bytes, cut: int) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6.0).reshape(2, 3))
    only_data_error(load_features, write(scratch / "n.npy", buffer.getvalue()[:cut] + data))
    only_data_error(read_table, write(scratch / "b.txt", data))


# -- labels and identity (issue: trustworthy runs) ----------------------------------------
def _wine_like(tmp_path: Path, *, label_first: bool) -> Path:
    """Three classes in the first column and a continuous last column (like proline in the wine data)."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    X = np.column_stack([rng.standard_normal(90), 300 + 1400 * rng.random(90)])
    table = np.column_stack([y, X]) if label_first else np.column_stack([X, y])
    path = tmp_path / "wine.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.6g")
    return path


def test_a_continuous_label_column_is_refused_with_the_flag_that_helps(tmp_path: Path) -> None:
    path = _wine_like(tmp_path, label_first=True)
    with pytest.raises(DataError, match=r"label column \(3 of the file\) must hold class labels.*--label-column"):
        load_dataset(str(path))
    data = load_dataset(str(path), label_column=0)
    assert data.n_classes == 3 and data.n_features == 2 and data.identity["label_column"] == 0


def test_many_distinct_integer_labels_look_continuous(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    table = np.column_stack([rng.standard_normal(100), rng.integers(0, 1681, 100)])
    path = tmp_path / "t.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.6g")
    with pytest.raises(DataError, match=r"looks continuous: \d+ distinct values in 100 rows; pass --label-column"):
        load_dataset(str(path))


def test_labels_that_make_no_classifier_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    np.savetxt(path, np.column_stack([np.arange(10), [9999] * 10]), delimiter=",", fmt="%d")
    with pytest.raises(DataError, match=r"holds one class \(9999\)"):
        load_dataset(str(path))


def test_sparse_integer_labels_make_as_many_outputs_as_classes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    np.savetxt(path, np.column_stack([np.arange(10), [0, 9999] * 5]), delimiter=",", fmt="%d")
    data = load_dataset(str(path))
    assert data.n_classes == 2 and data.labels is not None and data.labels.classes == (0, 9999)


def test_identity_names_the_data_and_split_whatever_the_dtype(tmp_path: Path) -> None:
    path = _wine_like(tmp_path, label_first=False)
    a, b = load_dataset(str(path), seed=3), load_dataset(str(path), seed=3, dtype="float32")
    assert a.identity == b.identity and a.identity["rows"] == 90
    assert a.identity["split"]["sizes"] == [54, 18, 18] and a.identity["split"]["seed"] == 3
    c = load_dataset(str(path), seed=4)
    assert c.identity["sha256"] == a.identity["sha256"]
    assert c.identity["split"]["rows_sha256"] != a.identity["split"]["rows_sha256"]
    path.write_text(path.read_text().replace("\n", "\n", 1)[:-2] + "9\n")  # one value changed
    assert load_dataset(str(path), seed=3).identity["sha256"] != a.identity["sha256"]
