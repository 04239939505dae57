"""Hostile and oversized inputs (issue 13): each refused early with exit 2 and one line, or handled.

One test per case of the issue. Cases that could exhaust memory run ``npmlp`` in a child
process that reports its peak RSS (``VmHWM``), and pass ``--max-memory`` so that the
outcome does not depend on this machine's free memory. No test asserts a wall time.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from npmlp import datasets
from npmlp.cli import main
from npmlp.datasets import load_dataset
from npmlp.errors import DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SRC = Path(__file__).resolve().parents[1] / "src"
PEAK_MB = 600
# Runs main(argv) in a fresh interpreter, then prints its peak RSS in MB on stderr's last line.
# NOTE: VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child
# started from this (large) test process would report the parent's peak.
CHILD = ("import re, sys\nfrom npmlp.cli import main\ncode = main(sys.argv[1:])\n"
         "status = open('/proc/self/status').read()\n"
         "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024, file=sys.stderr)\nsys.exit(code)\n")


def npmlp(*argv: str, cwd: Path) -> tuple[int, list[str], int]:
    """Exit code, stderr lines (the peak-RSS line removed) and peak RSS in MB of ``npmlp argv``."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "NPMLP_DEBUG": ""}
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[:-1], int(lines[-1])


def one_line(lines: list[str], *words: str) -> str:
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1 and not any("Traceback" in line for line in lines), lines
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


def test_a_4m_image_idx_set_is_refused_before_a_byte_is_inflated(tmp_path: Path) -> None:
    # An honest header: 4,000,000 images of 28x28, the file as long as it says (sparse: no disk used).
    folder = tmp_path / "big"
    folder.mkdir()
    for kind, n in (("train", 4_000_000), ("t10k", 10)):
        with open(folder / f"{kind}-images-idx3-ubyte", "wb") as f:
            f.write(idx_header(0x08, (n, 28, 28)))
            f.truncate(16 + n * 784)
        with open(folder / f"{kind}-labels-idx1-ubyte", "wb") as f:
            f.write(idx_header(0x08, (n,)))
            f.truncate(8 + n)
    code, err, peak = npmlp("train", "--dataset", str(folder), "--max-memory", "600M", "--out", "r", cwd=tmp_path)
    assert code == 2 and peak < PEAK_MB
    one_line(err, "train-images-idx3-ubyte", "4000000, 28, 28", "--max-memory", "--dtype float32")


def test_batch_size_beyond_the_data_trains_with_k_equal_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "circles", "--batch-size", "1000000000", "--epochs", "2", "--out",
                 str(tmp_path / "r"), "--quiet", "--no-pictures"]) == 0
    assert "training with K = 660" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["training"]["batch_size"] == 660


def test_a_network_too_large_for_memory_is_refused_naming_the_flags(tmp_path: Path) -> None:
    code, err, peak = npmlp("train", "--dataset", "circles", "--hidden", "100000000", "--max-memory", "600M",
                            "--out", "r", cwd=tmp_path)
    assert code == 2 and peak < PEAK_MB
    one_line(err, "training (", "600.0 MiB allowed by --max-memory", "--hidden", "--dtype float32")


def test_gradcheck_of_a_huge_batch_is_refused_naming_the_flag(tmp_path: Path) -> None:
    code, err, peak = npmlp("gradcheck", "--batch-size", "1000000000", "--max-memory", "600M", cwd=tmp_path)
    assert code == 2 and peak < PEAK_MB
    one_line(err, "gradcheck", "--batch-size")


def test_gradcheck_of_a_large_network_checks_a_sample_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradcheck", "--hidden", "300", "--inputs", "300"]) in (0, 1)
    out = capsys.readouterr().out
    assert "(300 of 90000 entries, chosen at random)" in out  # W1: 300 x 300
    assert "b2: max relative error" in out and "over 2 entries" in out  # small parameters: every entry


@pytest.mark.parametrize("flags,flag", [
    (["--lr-schedule", "invscaling", "--lr-decay", "-1"], "--lr-decay"), (["--tol", "nan"], "--tol"),
    (["--lr-decay", "inf"], "--lr-decay"), (["--seed", "-1"], "--seed"), (["--max-memory", "lots"], "--max-memory"),
    (["--label-column", ""], "--label-column")])
def test_invalid_flags_are_refused_before_work_naming_the_flag(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], flag: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--dataset", "circles", "--out", str(tmp_path / "r"), *flags])
    assert exit_.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_estimator_names_a_bad_parameter() -> None:
    pytest.importorskip("sklearn")
    from npmlp.estimator import MLPClassifier

    with pytest.raises(ValueError, match="hidden must be an integer >= 1 or a non-empty list of them. Got 'abc'"):
        MLPClassifier(hidden="abc").fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])


@pytest.mark.parametrize("label", [4, 9999])
def test_a_csv_of_one_class_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], label: int) -> None:
    path = tmp_path / "one.csv"
    np.savetxt(path, np.column_stack([np.arange(20.0), np.full(20, label)]), delimiter=",", fmt="%g")
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert f"holds one class ({label})" in capsys.readouterr().err


@pytest.mark.skipif(not FASHION_DIR.exists(), reason="Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed")
def test_a_named_set_must_be_that_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NPMLP_DATA", raising=False)
    assert main(["train", "--dataset", "mnist", "--data-dir", str(FASHION_DIR), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "these are fashion-mnist's files, not mnist's" in err[0]


def test_a_large_csv_is_parsed_within_a_few_times_its_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    X = rng.standard_normal((n, 7))
    table = np.column_stack([X, X[:, 0] > 0])  # learnable, so that the run makes progress
    path = tmp_path / "big.csv"
    np.savetxt(path, table, delimiter=",", fmt=["%.6f"] * 7 + ["%d"])
    size_mb = path.stat().st_size / 2**20
    code, err, peak = npmlp("train", "--dataset", str(path), "--epochs", "1", "--batch-size", "1000", "--out", "r",
                            "--quiet", "--no-pictures", cwd=tmp_path)
    assert code == 0, err
    assert peak < 120 + 4 * size_mb, (peak, size_mb)


def test_a_sweep_of_10_to_the_8_points_with_max_trials_2_runs_two_trials(tmp_path: Path) -> None:
    from npmlp.sweep import run_sweep

    spec = {"dataset": "circles", "n_samples": 100, "epochs": 1, "max_trials": 2,
            "grid": {"lr": [0.001 * (i + 1) for i in range(100)], "batch_size": list(range(1, 101)),
                     "epochs": list(range(1, 101)), "seed": list(range(100))}}
    result = run_sweep(spec, out=tmp_path / "s")
    assert result.n_planned == 2 and result.n_run == 2
    with pytest.raises(ValueError, match="plans 100,000,000 trials .* set max_trials"):
        run_sweep({**spec, "max_trials": None}, out=tmp_path / "t")


class Trickle(http.server.BaseHTTPRequestHandler):
    """A mirror that sends one byte a second, for ever."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000000")
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def trickle() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NPMLP_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    return tmp_path / "xdg" / "npmlp" / "mnist"


def test_a_stalling_mirror_meets_the_download_deadline(trickle: str, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DOWNLOAD_DEADLINE", 1.0)
    with pytest.raises(DataError, match="too slow: .* after 1 s"):
        load_dataset("mnist", mirrors=[trickle])
    assert list(cache.iterdir()) == []


def test_sigterm_during_a_download_leaves_no_temporary_file(trickle: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(tmp_path / "xdg"), "NPMLP_MIRROR_MNIST": trickle}
    env.pop("NPMLP_DATA", None)
    argv = [sys.executable, "-m", "npmlp", "train", "--dataset", "mnist", "--out", str(tmp_path / "r")]
    child = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, cwd=tmp_path)
    cache = tmp_path / "xdg" / "npmlp" / "mnist"
    for _ in range(200):  # until the temporary file exists
        if cache.exists() and any(cache.iterdir()):
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == -signal.SIGTERM
    assert child.stderr is not None and b"Traceback" not in child.stderr.read()
    child.stderr.close()
    assert list(cache.iterdir()) == []


def test_an_idx_file_of_0_images_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    for kind in ("train", "t10k"):
        (folder / f"{kind}-images-idx3-ubyte").write_bytes(idx_header(0x08, (0, 28, 28)))
        (folder / f"{kind}-labels-idx1-ubyte").write_bytes(idx_header(0x08, (0,)))
    assert main(["train", "--dataset", str(folder), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "train-images-idx3-ubyte: the file holds 0 images" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "device", "symlink"])
def test_fifos_devices_and_symlinks_to_them_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      kind: str) -> None:
    path = tmp_path / "data.csv"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero" if kind == "symlink" else "/dev/null")
        if kind == "device":
            path = Path("/dev/null")
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    want = {"fifo": "is a FIFO (named pipe), not a regular file", "device": "is a character device",
            "symlink": "is a symlink to /dev/zero, which is a character device"}[kind]
    assert want in capsys.readouterr().err


def test_a_pipe_that_never_ends_meets_predict_s_deadline(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["train", "--dataset", "circles", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet",
                 "--no-pictures"]) == 0
    read, write = os.pipe()
    os.write(write, b"0.1,0.2\n")  # and the writer never closes it
    try:
        with os.fdopen(read) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            assert main(["predict", "--model", str(tmp_path / "r"), "-", "--timeout", "0.5"]) == 2
    finally:
        os.close(write)
    assert "standard input: no end of input after 0.5 s" in capsys.readouterr().err


def test_a_fifo_without_a_writer_meets_predict_s_deadline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "circles", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet",
                 "--no-pictures"]) == 0
    os.mkfifo(tmp_path / "rows")
    assert main(["predict", "--model", str(tmp_path / "r"), str(tmp_path / "rows"), "--timeout", "0.5"]) == 2
    assert "rows: no end of input after 0.5 s" in capsys.readouterr().err


def test_a_stream_over_the_size_bound_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["train", "--dataset", "circles", "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet",
                 "--no-pictures"]) == 0
    monkeypatch.setattr(datasets, "STREAM_LIMIT", 1000)
    a, b = socket.socketpair()
    with a, b, b.makefile("rb") as stream:
        a.sendall(b"0.1,0.2\n" * 200)
        a.shutdown(socket.SHUT_WR)
        monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": stream})())
        assert main(["predict", "--model", str(tmp_path / "r"), "-"]) == 2
    assert "more than 1000 B of input" in capsys.readouterr().err
