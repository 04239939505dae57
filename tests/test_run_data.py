"""A run records its data and split; evaluate reuses them (issue: trustworthy runs, cases 1, 2 and 7's data half)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from npmlp.cli import main

from .test_datasets import write_idx_set


def moons_csv(path: Path, n: int = 200, *, label_first: bool = False) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, 2)) + 1.5 * y[:, None]
    table = np.column_stack([y, X]) if label_first else np.column_stack([X, y])
    np.savetxt(path, table, delimiter=",", fmt="%.5f")
    return path


def printed_errors(text: str) -> dict[str, str]:
    """``{"test": "10.00"}`` from train's summary line or evaluate's table, as printed."""
    return dict(re.findall(r"(train|valid|test)(?: error|\s+loss [\d.]+\s+error) ([\d.]+)%", text))


def train_then_evaluate(argv: list[str], capsys, *, evaluate: list[str]) -> tuple[dict[str, str], dict[str, str], str]:
    assert main(["train", *argv, "--quiet", "--no-pictures"]) == 0
    trained = printed_errors(capsys.readouterr().out)
    assert main(["evaluate", *evaluate]) == 0
    captured = capsys.readouterr()
    return trained, printed_errors(captured.out), captured.err


@pytest.mark.parametrize("with_dataset", [False, True])
def test_evaluate_prints_what_train_printed_for_a_csv(tmp_path: Path, capsys, monkeypatch, with_dataset: bool) -> None:
    # Case 1: evaluate used to redraw the 60/20/20 split with seed 0 (training rows in its "test").
    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    extra = ["--dataset", "moons.csv"] if with_dataset else []
    trained, evaluated, err = train_then_evaluate(
        ["--dataset", "moons.csv", "--seed", "3", "--epochs", "5", "--out", "r1"], capsys,
        evaluate=["--model", "r1", *extra])
    assert trained and evaluated == trained and err == ""


def test_evaluate_from_another_directory_finds_the_run_data(tmp_path: Path, capsys, monkeypatch) -> None:
    # The relative path is resolved when the run records it, not again from the new working directory.
    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    assert main(["train", "--dataset", "moons.csv", "--seed", "3", "--epochs", "3", "--out", "r1", "--quiet",
                 "--no-pictures", "--json"]) == 0
    final = json.loads(capsys.readouterr().out)["final"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["evaluate", "--model", "../r1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["same_data"] is True and doc["splits"]["test"]["error"] == final["test_error"]


@pytest.mark.parametrize("with_dataset", [False, True])
def test_evaluate_prints_what_train_printed_for_idx_files(tmp_path: Path, capsys, with_dataset: bool) -> None:
    data = tmp_path / "digits"
    write_idx_set(data, n_train=300, n_test=100, learnable=True)  # random labels: "no progress", exit 1
    extra = ["--dataset", str(data)] if with_dataset else []
    trained, evaluated, err = train_then_evaluate(
        ["--dataset", str(data), "--hidden", "8", "--epochs", "2", "--batch-size", "50", "--dtype", "float32",
         "--seed", "5", "--out", str(tmp_path / "r")], capsys, evaluate=["--model", str(tmp_path / "r"), *extra])
    assert trained and evaluated == trained and err == ""


def test_evaluate_on_other_data_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    moons_csv(tmp_path / "other.csv", n=150)
    assert main(["train", "--dataset", "moons.csv", "--epochs", "2", "--out", "r1", "--quiet", "--no-pictures"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", "r1", "--dataset", "other.csv", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["same_data"] is False and "not the data this model was trained on" in doc["note"]
    assert "note: other.csv is not the data this model was trained on" in captured.err


def test_evaluate_refuses_run_data_that_changed(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = moons_csv(tmp_path / "moons.csv")
    assert main(["train", "--dataset", "moons.csv", "--epochs", "2", "--out", "r1", "--quiet", "--no-pictures"]) == 0
    capsys.readouterr()
    path.write_text(path.read_text().replace("0.", "0.1", 1))
    assert main(["evaluate", "--model", "r1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has changed since the run" in err[0] and "--dataset" in err[0]


def test_the_run_records_the_data_identity(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    assert main(["train", "--dataset", "moons.csv", "--seed", "7", "--epochs", "1", "--out", "r1", "--quiet",
                 "--no-pictures"]) == 0
    data = json.loads((tmp_path / "r1" / "config.json").read_text())["data"]
    assert data["dataset"] == "moons.csv" and data["resolved"] == str(tmp_path / "moons.csv")
    assert data["label_column"] == 2 and data["rows"] == 200 and len(data["sha256"]) == 64
    assert data["split"]["seed"] == 7 and data["split"]["sizes"] == [120, 40, 40]
    assert len(data["split"]["rows_sha256"]) == 64


def test_a_label_in_the_first_column_is_refused_then_trained_with_label_column(tmp_path: Path, capsys) -> None:
    # Case 2: the continuous last column used to be taken as the label (a 2-10-N network trained to chance).
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    # features of unit size: unscaled ones (300..1700) would end in "no progress", exit 1
    table = np.column_stack([y, rng.standard_normal(120) + y, 0.3 + 1.4 * rng.random(120)])
    path = tmp_path / "wine.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.6g")
    out = tmp_path / "r"
    assert main(["train", "--dataset", str(path), "--out", str(out), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "looks continuous" not in err[0] and "--label-column" in err[0]
    assert not (out / "model.npz").exists()
    assert main(["train", "--dataset", str(path), "--label-column", "0", "--out", str(out), "--epochs", "20",
                 "--quiet", "--no-pictures", "--json"]) == 0
    assert json.loads((out / "config.json").read_text())["architecture"]["sizes"] == [2, 10, 3]
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--json"]) == 0  # the recorded label column is reused
    assert json.loads(capsys.readouterr().out)["same_data"] is True


def test_labels_of_one_class_are_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "one.csv"
    np.savetxt(path, np.column_stack([np.arange(20.0), np.full(20, 4)]), delimiter=",", fmt="%g")
    assert main(["train", "--dataset", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "holds one class" in capsys.readouterr().err


# -- case 7, the data half: --resume checks the data is the run's own ---------------------
def interrupted_run(tmp_path: Path, capsys, monkeypatch) -> Path:
    """An interrupted CSV run in tmp_path/r1 (stopped after its first minibatch, as by Ctrl-C)."""
    from contextlib import contextmanager

    from npmlp import runs

    @contextmanager
    def stop(trainer):
        trainer.stop_requested = True
        yield

    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    monkeypatch.setattr(runs, "stop_on_signals", stop)
    assert main(["train", "--dataset", "moons.csv", "--epochs", "3", "--out", "r1", "--quiet", "--no-pictures"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    return tmp_path / "r1"


def test_resume_refuses_a_changed_data_file(tmp_path: Path, capsys, monkeypatch) -> None:
    out = interrupted_run(tmp_path, capsys, monkeypatch)
    path = tmp_path / "moons.csv"
    path.write_text(path.read_text().replace("0.", "0.1", 1))
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "has changed since the run" in err[-1] and "fingerprint" in err[-1]
    assert (out / "checkpoint").is_dir()  # nothing lost


def test_resume_from_another_directory_reads_the_run_data(tmp_path: Path, capsys, monkeypatch) -> None:
    # The relative path of the run's data used to be resolved again from the new working directory.
    out = interrupted_run(tmp_path, capsys, monkeypatch)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "moons.csv").write_text("1,2,0\n3,4,1\n")  # a different file of the same name
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--no-pictures"]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["resolved"] == str(tmp_path / "moons.csv")


def test_resume_on_another_stack_says_what_differs(tmp_path: Path, capsys, monkeypatch) -> None:
    from npmlp import runs

    out = interrupted_run(tmp_path, capsys, monkeypatch)
    real = runs.software_stack()
    monkeypatch.setattr(runs, "software_stack", lambda: {**real, "numpy": "0.0-other"})
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--no-pictures"]) == 0
    err = capsys.readouterr().err
    assert f"numpy {real['numpy']} -> 0.0-other" in err and "bit for bit" in err


def test_a_run_records_its_software_stack(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    moons_csv(tmp_path / "moons.csv")
    assert main(["train", "--dataset", "moons.csv", "--epochs", "3", "--out", "r1", "--quiet", "--no-pictures"]) == 0
    stack = json.loads((tmp_path / "r1" / "config.json").read_text())["stack"]
    assert stack["numpy"] == np.__version__ and set(stack["blas"]) == {"internal_api", "version", "architecture",
                                                                         "num_threads"}
