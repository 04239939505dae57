"""Model files and checkpoints: round trips, tampering, crashes, full disks."""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npmlp import MLP, ModelFileError
from npmlp import persistence as P
from npmlp.training import rng_from_json, rng_state_to_json

Saved = tuple[Path, MLP]
Fuzz = tuple[Path, MLP, bytes, bytes]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_net(sizes: list[int], dtype: str = "float64", seed: int = 0, **kw: Any) -> MLP:
    net = MLP.initialize(sizes, rng=np.random.default_rng(seed), dtype=dtype, **kw)
    for b in net.biases:  # non-zero biases, so a swapped or zeroed bias shows
        b[:] = np.random.default_rng(seed + 1).normal(size=b.shape)
    return net


def assert_same_params(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name])


def read_arrays(npz: Path) -> dict[str, np.ndarray]:
    with np.load(npz, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def write_npz(npz: Path, arrays: dict[str, np.ndarray], *, compressed: bool = False) -> None:
    with open(npz, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.fixture
def saved(tmp_path: Path) -> Saved:
    net = make_net([2, 3, 2], l2=0.01)
    return P.save_model(tmp_path / "run", net, training={"lr": 0.1, "epochs": 5}), net


def as_format_1(directory: Path) -> None:
    """Turn a saved model into what npmlp wrote before format 2: no config inside model.npz."""
    arrays = read_arrays(directory / "model.npz")
    del arrays["config"]
    write_npz(directory / "model.npz", arrays)
    edit_json(directory / "config.json", lambda c: c.update(format_version=1))


@pytest.fixture
def saved_v1(saved: Saved) -> Saved:
    as_format_1(saved[0])
    return saved


def edit_config(directory: Path, edit: Callable[[dict[str, Any]], None], fmt: int = 2) -> None:
    """Edit the config a loader reads: inside model.npz (format 2) or config.json (format 1)."""
    if fmt == 1:
        return edit_json(directory / "config.json", edit)
    arrays = read_arrays(directory / "model.npz")
    doc = json.loads(arrays["config"].tobytes())
    edit(doc)
    arrays["config"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    write_npz(directory / "model.npz", arrays)


def in_format(message: str, fmt: int) -> str:
    """A format-1 message names config.json; format 2 names model.npz, where its config is."""
    return message if fmt == 1 else message.replace(r"config\.json", r"model\.npz")


def test_all_is_sorted_and_exists() -> None:
    assert P.__all__ == sorted(P.__all__)
    assert all(hasattr(P, name) for name in P.__all__)


# -- model round trips ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes", [[2, 3, 2], [4, 5, 3, 3], [3, 2, 4, 2, 5]])
def test_model_round_trips_bit_exactly(tmp_path: Path, dtype: str, sizes: list[int]) -> None:
    n_layers = len(sizes) - 1
    net = make_net(sizes, dtype, activation="relu", l1=[0.1 * i for i in range(n_layers)], l2=1e-3)
    P.save_model(tmp_path, net, training={"optimizer": "adam", "lr": 0.01})
    back, config = P.load_model(tmp_path)
    assert_same_params(net.params, back.params)
    assert back.dtype == np.dtype(dtype) and back.sizes == tuple(sizes)
    assert (back.activation, back.l1, back.l2) == ("rect", net.l1, net.l2)
    assert config["training"] == {"optimizer": "adam", "lr": 0.01}
    assert config["architecture"] == {"sizes": sizes, "activation": "rect", "dtype": dtype}
    assert config["format_version"] == 2 and config["sha256"] == P.arrays_sha256(net.params)
    arrays = read_arrays(tmp_path / "model.npz")  # plain np.load works
    assert list(arrays) == [*net.params, "config"]
    assert arrays["config"].tobytes() == (tmp_path / "config.json").read_bytes()  # one text, twice
    X = np.random.default_rng(1).normal(size=(7, sizes[0]))
    np.testing.assert_array_equal(net.predict_proba(X), back.predict_proba(X))


def test_load_model_takes_the_directory_or_either_file(saved: Saved) -> None:
    directory, net = saved
    for path in (directory, directory / "model.npz", directory / "config.json", str(directory)):
        assert_same_params(net.params, P.load_model(path)[0].params)


def test_save_model_replaces_an_existing_model_and_leaves_only_its_two_files(saved: Saved) -> None:
    directory, _ = saved
    other = make_net([2, 5, 5, 3], "float32", seed=9)
    P.save_model(directory, other)
    assert_same_params(other.params, P.load_model(directory)[0].params)
    assert files_in(directory) == {"model.npz", "config.json"}


def test_save_model_refuses_nonfinite_parameters(saved: Saved) -> None:
    directory, net = saved
    bad = make_net([2, 3, 2], seed=4)
    bad.params["b2"][1] = np.inf
    with pytest.raises(ModelFileError, match="refusing to save b2: it holds nan/inf"):
        P.save_model(directory, bad)
    assert_same_params(net.params, P.load_model(directory)[0].params)


def test_save_model_refuses_non_networks(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="net must be an npmlp MLP. Got dict instead."):
        P.save_model(tmp_path, {"W1": np.ones((1, 1))})  # type: ignore[arg-type]


def test_arrays_sha256_ignores_layout_but_not_names_shapes_or_values() -> None:
    A = np.arange(6.0).reshape(2, 3)
    base = P.arrays_sha256({"W1": A})
    assert P.arrays_sha256({"W1": np.asfortranarray(A)}) == base
    assert P.arrays_sha256({"W1": A.astype(">f8")}) == base
    assert P.arrays_sha256({"W2": A}) != base
    assert P.arrays_sha256({"W1": A.reshape(3, 2)}) != base
    assert P.arrays_sha256({"W1": A.astype(np.float32)}) != base
    assert P.arrays_sha256({"W1": A + np.eye(2, 3) * 1e-300}) != base


# -- hostile model files -------------------------------------------------------------
def tamper_arrays(directory: Path, edit: Callable[[dict[str, np.ndarray]], None], *,
                  fix_checksum: bool = False, compressed: bool = False, fmt: int = 2) -> None:
    arrays = read_arrays(directory / "model.npz")
    edit(arrays)
    write_npz(directory / "model.npz", arrays, compressed=compressed)
    if fix_checksum:
        order = [f"{p}{layer}" for layer in range(1, len(arrays) // 2 + 1) for p in "Wb"]
        edit_config(directory, lambda c: c.update(sha256=P.arrays_sha256({k: arrays[k] for k in order})), fmt)


def _bump(a: dict[str, np.ndarray]) -> None:
    a["W1"][0, 0] = np.nextafter(a["W1"][0, 0], np.inf)  # one ulp: the smallest change there is


def _pickled(a: dict[str, np.ndarray]) -> None:
    a["W1"] = np.array([{"evil": 1}, None], dtype=object)


def _nan(a: dict[str, np.ndarray]) -> None:
    a["W2"][1, 0] = np.nan


ARRAY_TAMPERING = {
    "one value changed": (
        _bump, {}, r"model\.npz does not match its checksum in config\.json: the file was modified or corrupted"),
    "renamed array": (
        lambda a: a.update(V1=a.pop("W1")), {},
        r"model\.npz does not hold the arrays config\.json lists: missing W1; unexpected V1"),
    "extra array": (lambda a: a.update(W9=np.ones(2)), {}, r"lists: unexpected W9"),
    "missing array": (lambda a: a.pop("b2"), {}, r"lists: missing b2\."),
    "pickled object array": (_pickled, {}, r"W1 is a pickled object array"),
    "other dtype": (
        lambda a: a.update(b1=a["b1"].astype(np.float32)), {},
        r"b1 has shape \(3,\) and dtype float32; config\.json says \(3,\) and float64"),
    "other shape": (
        lambda a: a.update(W1=a["W1"].T.copy()), {}, r"W1 has shape \(2, 3\) .*config\.json says \(3, 2\)"),
    "nan with a valid checksum": (
        _nan, {"fix_checksum": True}, r"model\.npz holds nan/inf in W2: refusing to load it"),
    "compressed archive": (lambda a: None, {"compressed": True}, r"(W1|config) is compressed"),
}


@pytest.mark.parametrize("fmt", [2, 1])
@pytest.mark.parametrize("case", list(ARRAY_TAMPERING))
def test_tampered_arrays_are_refused(saved: Saved, case: str, fmt: int) -> None:
    directory, _ = saved
    if fmt == 1:
        as_format_1(directory)
    edit, options, message = ARRAY_TAMPERING[case]
    tamper_arrays(directory, edit, **options, fmt=fmt)
    with pytest.raises(ModelFileError, match=in_format(message, fmt)):
        P.load_model(directory)


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value
    return edit


def _lie_about_sizes(config: dict[str, Any]) -> None:
    """Sizes [2, 4, 2] and the matching listing: consistent, but not what model.npz holds."""
    config["architecture"]["sizes"] = [2, 4, 2]
    shapes = {"W1": [4, 2], "b1": [4], "W2": [2, 4], "b2": [2]}
    config["arrays"] = {name: {"shape": shape, "dtype": "float64"} for name, shape in shapes.items()}


CONFIG_TAMPERING = {
    "shape lie": (
        _set("arrays", "W1", "shape", value=[2, 3]),
        r"'arrays\.W1' says shape \[2, 3\] and float64; sizes \[2, 3, 2\] need \[3, 2\]"),
    "consistent size lie": (
        _lie_about_sizes, r"model\.npz: W1 has shape \(3, 2\) and dtype float64; config\.json says \(4, 2\)"),
    "dtype lie": (
        _set("architecture", "dtype", value="float16"),
        r"'architecture\.dtype' must be one of float64, float32. Got 'float16' instead"),
    "newer format": (
        _set("format_version", value=3),
        r"format_version 3, newer than this npmlp .* reads \(up to 2\): upgrade npmlp"),
    "format zero": (_set("format_version", value=0), r"'format_version' must be 1 to 2. Got 0 instead"),
    "format as bool": (_set("format_version", value=True), r"'format_version' must be an integer. Got True instead"),
    "no checksum": (lambda c: c.pop("sha256"), r"config\.json lacks the key 'sha256'"),
    "bad checksum text": (_set("sha256", value="XYZ"), r"'sha256' must be 64 lowercase hex digits"),
    "sizes not a list": (_set("architecture", "sizes", value="2,3,2"), r"'architecture\.sizes' must be a list"),
    "negative size": (
        _set("architecture", "sizes", value=[2, -3, 2]), r"'architecture\.sizes' must hold integers >= 1"),
    "unknown activation": (
        _set("architecture", "activation", value="swish"),
        r"config\.json does not describe a usable model: activation must be one of"),
    "penalty per layer": (_set("penalty", "l1", value=[0.0]), r"'penalty\.l1' must hold 2 numbers >= 0"),
    "negative penalty": (_set("penalty", "l2", value=[0.0, -1.0]), r"'penalty\.l2' must hold 2 numbers >= 0"),
    "extra listed array": (
        _set("arrays", "W3", value={"shape": [1], "dtype": "float64"}),
        r"'arrays' does not list the parameters of sizes \[2, 3, 2\]: unexpected W3"),
    "listed array missing": (lambda c: c["arrays"].pop("b1"), r"'arrays' does not list .*: missing b1"),
    "listing entry not an object": (
        _set("arrays", "b1", value=[3]), r"'arrays\.b1' must be an object. Got \[3\] instead"),
    "training not an object": (_set("training", value=[]), r"'training' must be an object. Got \[\] instead"),
    "not an object": (lambda c: c.clear(), r"lacks the key 'format_version'"),
}


@pytest.mark.parametrize("fmt", [2, 1])
@pytest.mark.parametrize("case", list(CONFIG_TAMPERING))
def test_lying_configs_are_refused(saved: Saved, case: str, fmt: int) -> None:
    directory, _ = saved
    if fmt == 1:
        as_format_1(directory)
    edit, message = CONFIG_TAMPERING[case]
    edit_config(directory, edit, fmt)
    with pytest.raises(ModelFileError, match=in_format(message, fmt)):
        P.load_model(directory)


def test_format_2_reads_its_own_config_and_never_config_json(saved: Saved) -> None:
    directory, net = saved
    (directory / "config.json").write_text("{not json")  # the human-readable copy: never read
    assert_same_params(net.params, P.load_model(directory)[0].params)
    arrays = read_arrays(directory / "model.npz")
    write_npz(directory / "model.npz", {**arrays, "config": np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(ModelFileError, match=r"model\.npz: config is not valid JSON"):
        P.load_model(directory)
    write_npz(directory / "model.npz", {**arrays, "config": arrays["config"].astype(np.int16)})
    with pytest.raises(ModelFileError, match=r"model\.npz: config must be a 1-D uint8 array"):
        P.load_model(directory)


def test_format_1_config_json_claiming_format_2_is_a_mixed_pair(saved_v1: Saved) -> None:
    directory, _ = saved_v1
    edit_json(directory / "config.json", lambda c: c.update(format_version=2))
    with pytest.raises(ModelFileError, match=r"config\.json has format_version 2 but .*model\.npz holds no config "
                                             r"of its own: the two files do not belong together"):
        P.load_model(directory)


def test_extra_config_entries_round_trip_and_cannot_redefine_the_model(tmp_path: Path) -> None:
    net = make_net([2, 3, 2])
    P.save_model(tmp_path, net, extra={"data": {"sha256": "ab", "split_seed": 3}})
    assert P.load_model(tmp_path)[1]["data"] == {"sha256": "ab", "split_seed": 3}
    with pytest.raises(ValueError, match="extra must not redefine the config's own keys. Got arrays, sha256."):
        P.save_model(tmp_path / "x", net, extra={"sha256": "00", "arrays": {}})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("text, message", [
    ("{not json", r"config\.json is not valid JSON"),
    ("", r"config\.json is not valid JSON"),
    ("[1, 2]", r"config\.json must hold a JSON object. Got list instead"),
    ('{"format_version": NaN}', r"NaN is not a JSON number"),
    ('{"format_version": 1e999}', r"number 1e999 is out of range"),
    ("[" * 100_000 + "]" * 100_000, r"config\.json is not valid JSON"),
    ("\udcff", r"config\.json is not valid JSON"),
])
def test_non_json_configs_are_refused(saved_v1: Saved, text: str, message: str) -> None:
    directory, _ = saved_v1
    (directory / "config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ModelFileError, match=message):
        P.load_model(directory)


@pytest.mark.parametrize("data, message", [
    (b"", r"model\.npz is not an \.npz archive: it does not start with a zip header"),
    (b"\x93NUMPY\x01\x00garbage", r"does not start with a zip header"),
    (b"PK\x03\x04" + bytes(100), r"model\.npz is not a readable \.npz archive: BadZipFile"),
])
def test_non_archives_are_refused(saved: Saved, data: bytes, message: str) -> None:
    directory, _ = saved
    (directory / "model.npz").write_bytes(data)
    with pytest.raises(ModelFileError, match=message):
        P.load_model(directory)


def test_missing_files_are_named(tmp_path: Path, saved: Saved) -> None:
    directory, _ = saved
    with pytest.raises(ModelFileError, match=r"no model at .*nothing: expected a directory holding model\.npz"):
        P.load_model(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match=r"empty/config\.json is missing; a model directory holds"):
        P.load_model(tmp_path / "empty")
    (directory / "model.npz").unlink()
    with pytest.raises(ModelFileError, match=r"model\.npz is missing; .*config\.json needs it"):
        P.load_model(directory / "config.json")


def write_member(npz: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(npz, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def npy_bytes(header: dict[str, Any], payload: bytes) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)
    return f.getvalue() + payload


def test_lying_npy_headers_never_allocate_what_they_claim(saved_v1: Saved) -> None:
    directory, net = saved_v1
    members = {f"{k}.npy": npy_bytes({"descr": "<f8", "fortran_order": False, "shape": v.shape}, v.tobytes())
               for k, v in net.params.items()}
    # W1 claims 8e18 bytes; np.load would try to allocate them before reading.
    members["W1.npy"] = npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10**12, 10**6)}, bytes(48))
    write_member(directory / "model.npz", members)
    with pytest.raises(ModelFileError, match=r"W1 has shape \(1000000000000, 1000000\)"):
        P.load_model(directory)
    # Now the config tells the same lie: the member's real size still gives it away.
    def lie(config: dict[str, Any]) -> None:
        config["architecture"]["sizes"] = [10**6, 10**12, 2]
        shapes = {"W1": [10**12, 10**6], "b1": [10**12], "W2": [2, 10**12], "b2": [2]}
        config["arrays"] = {name: {"shape": shape, "dtype": "float64"} for name, shape in shapes.items()}
    edit_json(directory / "config.json", lie)
    with pytest.raises(ModelFileError, match=r"W1 holds 48 bytes of values where .* needs 8000000000000000000"):
        P.load_model(directory)


def test_duplicate_and_stray_members_are_refused(saved_v1: Saved) -> None:
    directory, net = saved_v1
    members = {f"{k}.npy": npy_bytes({"descr": "<f8", "fortran_order": False, "shape": v.shape}, v.tobytes())
               for k, v in net.params.items()}
    write_member(directory / "model.npz", {**members, "notes.txt": b"hi"})
    with pytest.raises(ModelFileError, match="lists: unexpected notes.txt"):
        P.load_model(directory)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(directory / "model.npz", "a") as zf:
        zf.writestr("b2.npy", members["b2.npy"])
    with pytest.raises(ModelFileError, match="holds several members of one name"):
        P.load_model(directory)


def test_big_endian_and_fortran_order_members_load_equal(saved: Saved) -> None:
    directory, net = saved
    tamper_arrays(directory, lambda a: a.update(W1=np.asfortranarray(a["W1"]).astype(">f8", order="F")))
    back = P.load_model(directory)[0]
    assert_same_params(net.params, back.params)
    assert back.params["W1"].dtype.isnative and back.params["W1"].flags.c_contiguous


# -- crashes and full disks ----------------------------------------------------------
def failing_replace(monkeypatch: pytest.MonkeyPatch, fail_on: int, exc: BaseException) -> None:
    real, calls = os.replace, []

    def replace(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == fail_on:
            raise exc
        real(src, dst)
    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("exc", [RuntimeError("simulated crash"), OSError(errno.EIO, "I/O error")])
def test_crash_before_the_renames_leaves_the_previous_model(saved: Saved, monkeypatch: pytest.MonkeyPatch,
                                                             exc: BaseException) -> None:
    directory, net = saved
    failing_replace(monkeypatch, 1, exc)
    with pytest.raises(type(exc)):
        P.save_model(directory, make_net([2, 3, 2], seed=7))
    monkeypatch.undo()
    assert files_in(directory) == {"model.npz", "config.json"}
    assert_same_params(net.params, P.load_model(directory)[0].params)


def test_crash_between_the_renames_leaves_the_new_model_whole(saved: Saved, monkeypatch: pytest.MonkeyPatch) -> None:
    directory, _ = saved
    new = make_net([2, 5, 2], seed=7)
    failing_replace(monkeypatch, 2, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError):
        P.save_model(directory, new, training={"lr": 0.5})
    monkeypatch.undo()
    assert files_in(directory) == {"model.npz", "config.json"}  # the new model.npz, the old config.json
    back, config = P.load_model(directory)  # model.npz carries its own config: never a mix
    assert_same_params(new.params, back.params)
    assert config["training"] == {"lr": 0.5} and config["architecture"]["sizes"] == [2, 5, 2]


def test_model_npz_is_the_commit_point_of_a_first_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = make_net([2, 3, 2])
    failing_replace(monkeypatch, 2, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError):
        P.save_model(tmp_path, net)
    monkeypatch.undo()
    assert files_in(tmp_path) == {"model.npz"}  # config.json, the readable copy, not yet there
    assert P.run_status(tmp_path) == "finished"
    assert_same_params(net.params, P.load_model(tmp_path)[0].params)


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: the write that passes it fails with ENOSPC."""

    room = 0

    def write(self, b: Any) -> int:
        data = bytes(b)
        if len(data) > FullDisk.room:
            super().write(data[: FullDisk.room])
            FullDisk.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        FullDisk.room -= len(data)
        return super().write(data)


def full_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    FullDisk.room = room

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        raw = FullDisk(fd, "w")
        return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8", newline="")
    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("room", [0, 300, 1500, 3500])  # in model.npz (3163 bytes), then in config.json
def test_full_disk_names_the_files_and_keeps_the_previous_model(saved: Saved, monkeypatch: pytest.MonkeyPatch,
                                                                room: int) -> None:
    directory, net = saved
    full_disk(monkeypatch, room)
    with pytest.raises(OSError, match=r"cannot write .*model\.npz, .*config\.json: No space left on device; "
                                      r"the previous contents are unchanged") as info:
        P.save_model(directory, make_net([2, 30, 2], seed=7))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert files_in(directory) == {"model.npz", "config.json"}
    assert_same_params(net.params, P.load_model(directory)[0].params)


def test_full_disk_on_a_first_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full_disk(monkeypatch, 100)
    with pytest.raises(OSError, match="No space left on device"):
        P.save_model(tmp_path / "run", make_net([2, 3, 2]))
    assert files_in(tmp_path / "run") == set()


# -- fuzzing: only ModelFileError ever escapes ---------------------------------------
@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    directory = tmp_path_factory.mktemp("fuzz")
    net = make_net([3, 4, 2], "float32", l1=0.5)
    P.save_model(directory, net, training={"lr": 0.5})
    return directory, net, (directory / "model.npz").read_bytes(), (directory / "config.json").read_bytes()


def load_or_refuse(directory: Path, net: MLP) -> None:
    """Loading damaged files either raises ModelFileError or gives the very same parameters."""
    try:
        back, _ = P.load_model(directory)
    except ModelFileError:
        return
    assert_same_params(net.params, back.params)


def flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, mask in flips:
        out[position % len(out)] ^= mask
    return bytes(out)


FLIPS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4)


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes_as_model_npz(fuzz_dir: Fuzz, data: bytes) -> None:
    directory, net, npz, _ = fuzz_dir
    (directory / "model.npz").write_bytes(data)
    with pytest.raises(ModelFileError):
        P.load_model(directory)
    (directory / "model.npz").write_bytes(npz)


@FUZZ
@given(cut=st.integers(0, 10**6), flips=st.one_of(st.just([]), FLIPS))
def test_fuzz_truncated_model_npz(fuzz_dir: Fuzz, cut: int, flips: list[tuple[int, int]]) -> None:
    directory, net, npz, _ = fuzz_dir
    damaged = npz[: cut % len(npz)]
    (directory / "model.npz").write_bytes(flip(damaged, flips) if damaged else damaged)
    with pytest.raises(ModelFileError):
        P.load_model(directory)
    (directory / "model.npz").write_bytes(npz)


@FUZZ
@given(flips=FLIPS)
def test_fuzz_flipped_bytes_in_model_npz(fuzz_dir: Fuzz, flips: list[tuple[int, int]]) -> None:
    directory, net, npz, _ = fuzz_dir
    (directory / "model.npz").write_bytes(flip(npz, flips))
    load_or_refuse(directory, net)
    (directory / "model.npz").write_bytes(npz)


@FUZZ
@given(cut=st.integers(0, 10**6), flips=st.one_of(st.just([]), FLIPS), replace=st.none() | st.binary(max_size=300))
def test_fuzz_damaged_config_json(fuzz_dir: Fuzz, cut: int,
                                  flips: list[tuple[int, int]], replace: bytes | None) -> None:
    directory, net, _, config = fuzz_dir
    damaged = flip(config, flips) if flips else config[: cut % len(config)]
    (directory / "config.json").write_bytes(damaged if replace is None else replace)
    load_or_refuse(directory, net)
    (directory / "config.json").write_bytes(config)


# -- checkpoints ---------------------------------------------------------------------
def checkpoint_args(seed: int = 0, epoch: int = 3) -> dict[str, Any]:
    net = make_net([2, 4, 3], "float32", seed=seed)
    rng = np.random.default_rng(seed)
    rng.random(5)
    state = {f"m/{k}": np.full_like(v, 0.25 + seed) for k, v in net.params.items()}
    state["t"] = np.array(epoch * 10, dtype=np.int64)
    meta = {"epoch": epoch, "rng": rng_state_to_json(rng), "config": {"hidden": [4], "lr": 0.1, "out": Path("runs/x")}}
    history = [{"epoch": e + 1, "train_loss": 1 / (e + 3), "valid_loss": None} for e in range(epoch)]
    return {"params": net.params, "state": state, "meta": meta, "history": history}


def test_checkpoint_round_trip_restores_arrays_meta_and_random_stream(tmp_path: Path) -> None:
    args = checkpoint_args()
    P.save_checkpoint(tmp_path, **args)
    back = P.load_checkpoint(tmp_path)
    assert_same_params(args["params"], back.params)
    assert_same_params(args["state"], back.state)
    assert back.state["t"].shape == () and back.state["t"].dtype == np.int64
    assert back.meta == json.loads(json.dumps({**args["meta"], "config": {"hidden": [4], "lr": 0.1, "out": "runs/x"}}))
    assert isinstance(back.meta["rng"]["state"]["state"], int) and back.meta["rng"]["state"]["state"] > 2**64
    rng = np.random.default_rng(0)
    rng.random(5)
    np.testing.assert_array_equal(rng_from_json(back.meta["rng"]).random(10), rng.random(10))


def test_a_new_checkpoint_replaces_the_old_and_leaves_one_arrays_file(tmp_path: Path) -> None:
    P.save_checkpoint(tmp_path, **checkpoint_args(0, epoch=1))
    second = checkpoint_args(1, epoch=2)
    directory = P.save_checkpoint(tmp_path, **second)
    assert directory == tmp_path / "checkpoint"
    back = P.load_checkpoint(tmp_path)
    assert back.meta["epoch"] == 2
    assert_same_params(second["params"], back.params)
    assert len(files_in(directory)) == 3 and "meta.json" in files_in(directory)  # arrays, history, meta


@pytest.mark.parametrize("fail_on", [1, 2])  # the arrays file's rename, meta.json's rename
def test_crash_during_a_checkpoint_leaves_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           fail_on: int) -> None:
    first = checkpoint_args(0, epoch=1)
    P.save_checkpoint(tmp_path, **first)
    failing_replace(monkeypatch, fail_on, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError):
        P.save_checkpoint(tmp_path, **checkpoint_args(1, epoch=2))
    monkeypatch.undo()
    back = P.load_checkpoint(tmp_path)
    assert back.meta["epoch"] == 1
    assert_same_params(first["params"], back.params)
    P.save_checkpoint(tmp_path, **checkpoint_args(2, epoch=3))  # and the next save tidies up
    assert len(files_in(tmp_path / "checkpoint")) == 3


def rewrite_checkpoint(out: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Change the arrays and make every checksum and name agree again."""
    directory = out / "checkpoint"
    doc = json.loads((directory / "meta.json").read_text())
    arrays = read_arrays(directory / doc["arrays_file"])
    edit(arrays)
    doc["sha256"] = P.arrays_sha256({name: arrays[name] for name in doc["arrays"]})
    doc["arrays_file"] = f"arrays-{doc['sha256'][:16]}.npz"
    write_npz(directory / doc["arrays_file"], arrays)
    (directory / "meta.json").write_text(json.dumps(doc))


def _arrays_file(out: Path) -> Path:
    return out / "checkpoint" / json.loads((out / "checkpoint" / "meta.json").read_text())["arrays_file"]


def _edit_meta(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda out: edit_json(out / "checkpoint" / "meta.json", edit)


def _change_a_value(out: Path) -> None:
    write_npz(_arrays_file(out), {**read_arrays(_arrays_file(out)), "state/t": np.array(7)})


def _store_param_as_int(out: Path) -> None:
    rewrite_checkpoint(out, lambda a: a.update({"param/b1": np.zeros(4, dtype=np.int64)}))
    _edit_meta(_set("arrays", "param/b1", "dtype", value="int64"))(out)


CHECKPOINT_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "changed value": (_change_a_value, r"arrays-.*\.npz does not match its checksum in meta\.json"),
    "edited meta": (_edit_meta(_set("meta", "epoch", value=99)), r"meta\.json does not match its own 'meta_sha256'"),
    "arrays file elsewhere": (
        _edit_meta(_set("arrays_file", value="../model.npz")),
        r"'arrays_file' must be arrays-[0-9a-f]{16}\.npz to match 'sha256'. Got '\.\./model\.npz' instead"),
    "arrays file deleted": (lambda out: _arrays_file(out).unlink(), r"arrays-.*\.npz is missing"),
    "nan param, checksums fixed": (
        lambda out: rewrite_checkpoint(out, lambda a: a["param/W2"].fill(np.nan)),
        r"holds nan/inf in param/W2: refusing to load it"),
    "param stored as int": (_store_param_as_int, r"'arrays' lists param/b1; expected param/NAME \(float\)"),
    "unknown format": (_edit_meta(_set("format_version", value=5)), r"format_version 5, newer than this npmlp"),
    "not json": (
        lambda out: (out / "checkpoint" / "meta.json").write_text('{"meta": '), r"meta\.json is not valid JSON"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_TAMPERING))
def test_tampered_checkpoints_are_refused_with_a_way_out(tmp_path: Path, case: str) -> None:
    P.save_checkpoint(tmp_path, **checkpoint_args())
    tamper, message = CHECKPOINT_TAMPERING[case]
    tamper(tmp_path)
    with pytest.raises(ModelFileError, match=message) as info:
        P.load_checkpoint(tmp_path)
    way_out = f"The checkpoint is unusable: remove {tmp_path / 'checkpoint'} or train without --resume."
    assert str(info.value).endswith(way_out)


@pytest.fixture(scope="module")
def fuzz_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("fuzz-checkpoint")
    args = checkpoint_args()
    P.save_checkpoint(out, **args)
    return out, args


@FUZZ
@given(flips=FLIPS, target=st.sampled_from(["arrays", "meta"]))
def test_fuzz_flipped_bytes_in_a_checkpoint(fuzz_checkpoint: tuple[Path, dict[str, Any]],
                                           flips: list[tuple[int, int]], target: str) -> None:
    out, args = fuzz_checkpoint
    path = _arrays_file(out) if target == "arrays" else out / "checkpoint" / "meta.json"
    good = path.read_bytes()
    path.write_bytes(flip(good, flips))
    try:
        back = P.load_checkpoint(out)
    except ModelFileError:
        return
    finally:
        path.write_bytes(good)
    assert_same_params(args["params"], back.params)
    assert back.meta["epoch"] == 3 and back.meta["rng"] == args["meta"]["rng"]


def test_save_checkpoint_checks_its_inputs(tmp_path: Path) -> None:
    args = checkpoint_args()
    with pytest.raises(ModelFileError, match="refusing to save param/W1: it holds nan/inf"):
        P.save_checkpoint(tmp_path, **{**args, "params": {**args["params"], "W1": np.full((4, 2), np.nan)}})
    with pytest.raises(ValueError, match=r"state names must be like W1 or m/W1 .* Got '\.\./x' instead"):
        P.save_checkpoint(tmp_path, **{**args, "state": {"../x": np.zeros(1)}})
    with pytest.raises(TypeError, match="state/o must have a dtype among .* Got object instead"):
        P.save_checkpoint(tmp_path, **{**args, "state": {"o": np.array([None])}})
    with pytest.raises(TypeError, match="param/W1 must have a dtype among float64, float32. Got int64 instead"):
        P.save_checkpoint(tmp_path, **{**args, "params": {"W1": np.zeros(2, dtype=np.int64)}})
    with pytest.raises(ValueError, match=r"cannot write .*meta\.json as JSON"):
        P.save_checkpoint(tmp_path, **{**args, "meta": {"best": float("nan")}})
    assert not (tmp_path / "checkpoint").exists()


def test_run_status_and_remove_checkpoint(tmp_path: Path) -> None:
    assert P.run_status(tmp_path) == "fresh"
    with pytest.raises(ModelFileError, match=r"no checkpoint in .*: train without --resume to start afresh"):
        P.load_checkpoint(tmp_path)
    P.save_checkpoint(tmp_path, **checkpoint_args())
    assert P.run_status(tmp_path) == "resumable"
    P.save_model(tmp_path, make_net([2, 4, 3]))
    assert P.run_status(tmp_path) == "resumable"  # a crash before remove_checkpoint: resume replays
    P.remove_checkpoint(tmp_path)
    assert P.run_status(tmp_path) == "finished"
    assert files_in(tmp_path) == {"model.npz", "config.json"}
    P.remove_checkpoint(tmp_path)  # nothing to remove: fine


def test_remove_checkpoint_keeps_files_it_did_not_write(tmp_path: Path) -> None:
    P.save_checkpoint(tmp_path, **checkpoint_args())
    (tmp_path / "checkpoint" / "notes.txt").write_text("mine")
    P.remove_checkpoint(tmp_path)
    assert files_in(tmp_path / "checkpoint") == {"notes.txt"}
    assert P.run_status(tmp_path) == "fresh"


@pytest.mark.parametrize("name", ["PCG64", "PCG64DXSM", "SFC64"])
def test_rng_state_round_trips_through_json(name: str) -> None:
    rng = np.random.Generator(getattr(np.random, name)(42))
    rng.normal(size=3)
    state = json.loads(json.dumps(rng_state_to_json(rng)))
    np.testing.assert_array_equal(rng_from_json(state).integers(0, 2**62, size=20), rng.integers(0, 2**62, size=20))


@pytest.mark.parametrize("state, message", [
    ({"bit_generator": "MT19937", "state": {}},
     "must name one of PCG64, PCG64DXSM, SFC64 in 'bit_generator'. Got 'MT19937'"),
    ([1, 2], "Got None instead"),
    ({"bit_generator": "PCG64"}, "not a valid PCG64 state: KeyError"),
    ({"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0, "uinteger": 0},
     "not a valid PCG64 state"),
])
def test_rng_from_json_refuses_bad_states(state: Any, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        rng_from_json(state)


def test_rng_state_to_json_refuses_generators_it_cannot_restore_safely() -> None:
    with pytest.raises(ValueError, match="rng must use one of PCG64, PCG64DXSM, SFC64. Got MT19937 instead."):
        rng_state_to_json(np.random.Generator(np.random.MT19937(0)))


# -- the checkpoint's history file (issue 12 case 11) ---------------------------------
def _history_file(out: Path) -> Path:
    return out / "checkpoint" / json.loads((out / "checkpoint" / "meta.json").read_text())["history"]["file"]


def test_meta_json_stays_small_and_the_history_is_appended(tmp_path: Path) -> None:
    args = checkpoint_args()
    rows = [{"epoch": e + 1, "train_loss": 0.5, "train_error": 0.25, "seconds": 0.01} for e in range(3000)]
    sizes, prefix = [], b""
    for n in (1, 10, 3000):
        P.save_checkpoint(tmp_path, **{**args, "history": rows[:n]})
        sizes.append((tmp_path / "checkpoint" / "meta.json").stat().st_size)
        data = _history_file(tmp_path).read_bytes()
        assert data.startswith(prefix) and data.count(b"\n") == n  # appended: earlier lines untouched
        prefix = data
    assert max(sizes) - min(sizes) < 40  # only the counts' digits grow
    assert P.load_checkpoint(tmp_path).history == rows


def test_lines_past_a_crash_are_ignored_then_cut_off(tmp_path: Path) -> None:
    args = checkpoint_args()
    P.save_checkpoint(tmp_path, **args)
    with open(_history_file(tmp_path), "ab") as f:  # a crash after appending, before meta.json's rename
        f.write(b'{"epoch":4,"train_loss":0.1}\n{"epoch":5,"tra')  # a whole line, then a torn one
    assert P.load_checkpoint(tmp_path).history == args["history"]
    more = [*args["history"], {"epoch": 4, "train_loss": 0.2, "valid_loss": None}]
    P.save_checkpoint(tmp_path, **{**args, "history": more})
    assert P.load_checkpoint(tmp_path).history == more
    lines = _history_file(tmp_path).read_bytes()
    assert lines.count(b"\n") == 4 and b'"epoch":5' not in lines


def _edit_history(out: Path) -> None:
    path = _history_file(out)
    path.write_bytes(path.read_bytes().replace(b'"train_loss":0.25', b'"train_loss":0.24'))


@pytest.mark.parametrize(("tamper", "message"), [
    (_edit_history, r"history-.*\.jsonl does not match its hash in meta\.json"),
    (lambda out: _history_file(out).write_bytes(_history_file(out).read_bytes()[:-5]), r"it was truncated"),
    (lambda out: _history_file(out).unlink(), r"history-.*\.jsonl is missing"),
    (_edit_meta(_set("history", "file", value="../model.npz")), r"'history\.file' must be like history-01234567"),
    (_edit_meta(_set("history", "lines", value="3")), r"'history\.lines' must be an integer"),
])
def test_a_tampered_history_is_refused(tmp_path: Path, tamper: Callable[[Path], None], message: str) -> None:
    P.save_checkpoint(tmp_path, **checkpoint_args())
    tamper(tmp_path)
    with pytest.raises(ModelFileError, match=message):
        P.load_checkpoint(tmp_path)
