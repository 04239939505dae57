"""`npmlp train/evaluate/predict` end to end: outputs, exit codes, kill-and-resume, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from npmlp.cli import main
from npmlp.persistence import load_model

SEED_FLAGS = ["--hidden", "10", "--l1", "1e-3", "--l2", "1e-3", "--epochs", "200", "--batch-size", "10", "--lr", "0.03"]
OUTPUTS = [
    "model.npz", "config.json", "history.json", "history.csv", "curves.png", "decision_regions.png", "report.html"
]


def train_json(argv: list[str], capsys) -> tuple[int, dict]:
    code = main(["train", "--json", *argv])
    captured = capsys.readouterr()
    train_json.stderr = captured.err  # type: ignore[attr-defined]
    return code, json.loads(captured.out)


@pytest.mark.parametrize("dataset", ["circles", "course-file"])
def test_seed_settings_reach_one_percent(dataset: str, tmp_path: Path, capsys, request) -> None:
    spec = str(request.getfixturevalue("circles_file")) if dataset == "course-file" else "circles"
    code, doc = train_json(["--dataset", spec, *SEED_FLAGS, "--out", str(tmp_path)], capsys)
    assert code == 0
    assert doc["final"]["test_error"] <= 0.01 and doc["epochs_run"] == 200 and doc["stopped_because"] == "max_epochs"
    assert set(doc) >= {"dataset", "epochs_run", "stopped_because", "history", "final", "out"}
    assert set(doc["history"][0]) >= {"epoch", "train_loss", "train_error", "valid_loss", "valid_error",
                                      "test_loss", "test_error", "seconds"}
    for name in OUTPUTS:
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "checkpoint").exists()
    assert json.loads((tmp_path / "history.json").read_text()) == doc["history"]
    assert (tmp_path / "history.csv").read_text().count("\n") == 201
    net, config = load_model(tmp_path)
    assert config["training"]["hidden"] == [10] and net.sizes == (2, 10, 2)


def test_evaluate_and_predict_use_the_saved_model(tmp_path: Path, capsys) -> None:
    argv = ["--dataset", "circles", "--epochs", "30", "--lr", "0.1", "--out", str(tmp_path), "--no-pictures"]
    code, doc = train_json(argv, capsys)
    assert code == 0
    assert main(["evaluate", "--json", "--model", str(tmp_path), "--dataset", "circles"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["splits"]["test"]["error"] == pytest.approx(doc["final"]["test_error"])
    points = tmp_path / "points.csv"
    points.write_text("0.0,1.0\n0.0,0.8\n")
    assert main(["predict", "--json", "--model", str(tmp_path / "model.npz"), str(points)]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == [0, 1]
    assert main(["predict", "--json", "--proba", "--model", str(tmp_path), str(points)]) == 0
    P = np.array(json.loads(capsys.readouterr().out)["probabilities"])
    np.testing.assert_allclose(P.sum(axis=1), 1)


def test_divergence_exits_1_and_writes_no_model(tmp_path: Path, capsys) -> None:
    code, doc = train_json(["--dataset", "circles", "--lr", "1e6", "--epochs", "5", "--out", str(tmp_path)], capsys)
    assert code == 1 and doc["stopped_because"] == "diverged"
    assert "diverged" in train_json.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "model.npz").exists()  # untrained (or diverging) weights are never a model
    assert json.loads((tmp_path / "history.json").read_text()) == doc["history"]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["train", "--dataset", "no/such/file.csv"], "no such file or folder"),
        (["train", "--dataset", "circles", "--lr", "-1"], "must be a finite number > 0"),
        (["train", "--dataset", "circles", "--early-stopping", "0"], "must be an integer >= 1"),
        (["evaluate", "--model", "no/such/dir", "--dataset", "circles"], "no/such/dir"),
        (["train", "--resume"], "--resume needs --out DIR"),
        (["train"], "--dataset is required"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], match: str, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert match in err[-1]


def test_wrong_dimensionality_for_a_model(tmp_path: Path, capsys) -> None:
    argv = ["train", "--dataset", "circles", "--epochs", "2", "--out", str(tmp_path), "--no-pictures", "--quiet"]
    assert main(argv) == 0
    bad = tmp_path / "three.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path), str(bad)]) == 2
    assert "has 3 columns; the model" in capsys.readouterr().err
    data = tmp_path / "data3.csv"
    data.write_text("".join(f"{i},{i % 3},{i % 2},{i % 2}\n" for i in range(50)))
    assert main(["evaluate", "--model", str(tmp_path), "--dataset", str(data)]) == 2
    assert "takes 2 features" in capsys.readouterr().err


# -- real processes: SIGKILL and SIGINT, then --resume ----------------------------------
SLOW = ["--dataset", "circles", "--n-samples", "4000", "--batch-size", "2", "--epochs", "12", "--lr", "0.01",
        "--optimizer", "adam", "--hidden", "16", "--seed", "4", "--no-pictures", "--quiet",
        "--dropout", "0.1", "--input-dropout", "0.1"]  # the masks must resume bit for bit too


def npmlp(*argv: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "npmlp", "train", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Wait for the process; return its exit code and stderr (closing the pipe)."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for_checkpoint(out: Path, proc: subprocess.Popen, epoch: int) -> None:
    meta = out / "checkpoint" / "meta.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {finish(proc)[1]}")
        try:
            if json.loads(meta.read_text())["meta"]["epoch"] >= epoch:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared")


def same_run(a: Path, b: Path) -> None:
    na, _ = load_model(a)
    nb, _ = load_model(b)
    for k in na.params:
        np.testing.assert_array_equal(na.params[k], nb.params[k])
    def strip(run: Path) -> list[dict]:
        """The history without its timings, which differ from run to run."""
        return [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((run / "history.json").read_text())]

    assert strip(a) == strip(b)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full")
    code, err = finish(npmlp(*SLOW, "--out", str(out)))
    assert code == 0, err
    return out


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path, uninterrupted: Path) -> None:
    proc = npmlp(*SLOW, "--out", str(tmp_path))
    wait_for_checkpoint(tmp_path, proc, epoch=2)
    proc.kill()
    finish(proc)
    assert not (tmp_path / "config.json").exists()
    code, err = finish(npmlp("--resume", "--out", str(tmp_path), "--quiet"))
    assert code == 0, err
    same_run(tmp_path, uninterrupted)
    assert not (tmp_path / "checkpoint").exists()


def test_sigint_checkpoints_mid_epoch_and_resumes_exactly(tmp_path: Path, uninterrupted: Path) -> None:
    proc = npmlp(*SLOW, "--out", str(tmp_path))
    wait_for_checkpoint(tmp_path, proc, epoch=1)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc, timeout=60)
    assert code == 130, err
    assert f"npmlp train --resume --out {tmp_path}" in err
    meta = json.loads((tmp_path / "checkpoint" / "meta.json").read_text())["meta"]
    assert meta["batch"] > 0  # stopped inside an epoch, after a whole minibatch
    code, err = finish(npmlp("--resume", "--out", str(tmp_path), "--quiet"))
    assert code == 0, err
    same_run(tmp_path, uninterrupted)


def test_resume_of_a_finished_run_says_so(uninterrupted: Path, capsys) -> None:
    assert main(["train", "--resume", "--out", str(uninterrupted)]) == 2
    assert "has finished: nothing to resume" in capsys.readouterr().err


def test_a_directory_of_mnist_idx_files_trains_like_a_named_set(tmp_path: Path, capsys) -> None:
    from .test_datasets import write_idx_set

    data = tmp_path / "my-mnist"
    write_idx_set(data, n_train=300, n_test=100, learnable=True)  # random labels would be "no progress", exit 1
    out = tmp_path / "run"
    code, doc = train_json(["--dataset", str(data), "--hidden", "16", "--epochs", "2", "--batch-size", "50",
                            "--dtype", "float32", "--out", str(out)], capsys)
    assert code == 0 and doc["dataset"] == "my-mnist" and doc["epochs_run"] == 2
    for name in ["model.npz", "curves.png", "misclassified.png", "first_layer_weights.png", "report.html"]:
        assert (out / name).stat().st_size > 0, name
    assert "recall (%)" in (out / "report.html").read_text()  # the confusion matrix is a table of the report
    net, _ = load_model(out)
    assert net.sizes == (784, 16, 10) and net.dtype == np.float32


@pytest.mark.realdata
@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").exists(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_trains_from_debians_package(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NPMLP_DATA", str(tmp_path / "empty"))  # found in Debian's folder, not downloaded
    code, doc = train_json(["--dataset", "fashion-mnist", "--hidden", "128", "--optimizer", "adam", "--lr", "1e-3",
                            "--batch-size", "128", "--epochs", "2", "--dtype", "float32", "--out", str(tmp_path / "r"),
                            "--no-pictures"], capsys)
    assert code == 0
    assert doc["final"]["test_error"] < 0.17  # two epochs of a small net: ~14-15%
    assert len(doc["history"]) == 2 and doc["history"][1]["valid_error"] < doc["history"][0]["valid_error"] + 0.02


def test_early_stopping_then_divergence_saves_the_best_epoch_everywhere(tmp_path: Path, capsys) -> None:
    # issue 12 case 3: the summary described the best epoch, model.npz held the last one.
    out = tmp_path / "r"
    code, doc = train_json(["--dataset", "circles", "--lr", "0.5", "--lr-schedule", "step", "--lr-step", "1",
                            "--lr-gamma", "3", "--early-stopping", "50", "--out", str(out), "--no-pictures"], capsys)
    assert code == 1 and doc["stopped_because"] == "diverged" and doc["best_epoch"] < doc["epochs_run"]
    assert f"kept the parameters of epoch {doc['best_epoch']}." in train_json.stderr  # type: ignore[attr-defined]
    best = doc["history"][doc["best_epoch"] - 1]
    assert doc["final"] == {f"{s}_error": best[f"{s}_error"] for s in ("train", "valid", "test")}
    assert main(["evaluate", "--json", "--model", str(out), "--dataset", "circles"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert {f"{s}_error": splits[s]["error"] for s in splits} == doc["final"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_what_train_says_it_wrote_is_what_it_wrote(tmp_path: Path, capsys, overwrite: bool) -> None:
    # The summary's model_written comes from the step that wrote (or kept) the model, not a second guess:
    # a diverged early-stopping run into a new directory writes its best epoch, --overwrite or not.
    out = tmp_path / "r"
    extra = ["--overwrite"] if overwrite else []
    code, doc = train_json(["--dataset", "circles", "--lr", "0.5", "--lr-schedule", "step", "--lr-step", "1",
                            "--lr-gamma", "3", "--early-stopping", "50", "--out", str(out), "--no-pictures",
                            *extra], capsys)
    assert code == 1 and doc["stopped_because"] == "diverged"
    assert doc["model_written"] is True and (out / "model.npz").is_file()
    code, doc = train_json(["--dataset", "circles", "--lr", "100", "--epochs", "3", "--out", str(tmp_path / "n"),
                            "--no-pictures"], capsys)
    assert code == 1 and doc["model_written"] is False and not (tmp_path / "n" / "model.npz").exists()


def test_no_progress_exits_1_with_a_hint(tmp_path: Path, capsys) -> None:
    # issue 12 case 9: --lr 100 ended at chance with exit 0 and no word.
    code, doc = train_json(["--dataset", "circles", "--lr", "100", "--epochs", "20", "--out", str(tmp_path / "r"),
                            "--no-pictures"], capsys)
    assert code == 1 and doc["stopped_because"] == "max_epochs"
    err = train_json.stderr  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "no progress" in err and "learning rate (now 100)" in err
    assert "scaling the features" in err and "Traceback" not in err
    code, doc = train_json(["--dataset", "circles", "--lr", "0.1", "--epochs", "20", "--out", str(tmp_path / "ok"),
                            "--no-pictures"], capsys)
    assert code == 0 and "no progress" not in train_json.stderr  # type: ignore[attr-defined]


def test_predict_refuses_rows_that_overflow(tmp_path: Path, capsys) -> None:
    # issue 12 case 8: a row of 1.7e308 printed NaN probabilities (not JSON) and label 0, exit 0.
    out = tmp_path / "r1"
    assert main(["train", "--dataset", "circles", "--epochs", "3", "--lr", "0.1", "--out", str(out), "--no-pictures",
                 "--quiet"]) == 0
    huge = tmp_path / "huge.npy"
    np.save(huge, np.array([[0.0, 1.0], [1.7e308, 1.7e308], [0.5, 0.5], [1.7e308, 1.7e308]]))
    capsys.readouterr()
    for extra in (["--proba"], []):
        assert main(["predict", "--model", str(out), str(huge), "--json", *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "rows 2, 4, counting from 1" in captured.err and str(huge) in captured.err


@pytest.fixture
def checkpointed(tmp_path: Path) -> Path:
    """An interrupted circles run in tmp_path/r: 2 of 4 epochs done, with early stopping."""
    from dataclasses import replace

    from npmlp.runs import DataSpec, write_checkpoint
    from npmlp.training import TrainConfig, Trainer, train

    config = TrainConfig(hidden=(4,), epochs=2, lr=0.1, early_stopping=5)
    data = DataSpec("circles")
    dataset = data.load(seed=config.seed, dtype=config.dtype)
    trainer = Trainer.new(config, dataset.n_features, dataset.n_classes)
    train(dataset.splits(), config, trainer=trainer)
    write_checkpoint(tmp_path / "r", trainer, replace(config, epochs=4), data)
    return tmp_path / "r"


def edit_checkpoint_meta(out: Path, edit) -> None:
    """Edit meta.json's caller fields and make its own hash agree again: only the schema can catch it."""
    import hashlib

    path = out / "checkpoint" / "meta.json"
    doc = json.loads(path.read_text())
    edit(doc["meta"])
    canonical = json.dumps(doc["meta"], sort_keys=True, separators=(",", ":"))
    doc["meta_sha256"] = hashlib.sha256(canonical.encode()).hexdigest()
    path.write_text(json.dumps(doc))


META_EDITS = {
    "epoch not a number": (lambda m: m.update(epoch="2"), r"'epoch' must be an integer from 0"),
    "epoch past the history": (lambda m: m.update(epoch=9), r"the history must hold epochs 1 to 9, one row each"),
    "negative batch": (lambda m: m.update(batch=-1), r"'batch' must be an integer from 0"),
    "best epoch in the future": (lambda m: m.update(best_epoch=3), r"'best_epoch' must be an integer from 1 to 2"),
    "no best epoch": (lambda m: m.update(best_epoch=None), r"'best_epoch' \(None\) and the best/ arrays \(some\)"),
    "rng not a state": (lambda m: m.update(rng=[1, 2]), r"'rng': rng state must name one of PCG64"),
    "rng_epoch_start of another generator": (lambda m: m.update(rng_epoch_start={"bit_generator": "MT19937"}),
                                             r"'rng_epoch_start': rng state must name one of"),
    "mid-epoch without rng_epoch_start": (lambda m: m.update(batch=3, rng_epoch_start=None),
                                          r"'rng_epoch_start': rng state must name one of"),
    "rng_epoch_start garbage": (lambda m: m["rng_epoch_start"]["state"].update(state="x"),
                                r"'rng_epoch_start': rng state is not a valid PCG64 state"),
    "config missing": (lambda m: m.pop("config"), r"'meta\.config' must be an object"),
    "hidden not sizes": (lambda m: m["config"].update(hidden="abc"), r"unusable settings: hidden must be"),
    "other hidden sizes": (lambda m: m["config"].update(hidden=[5]),
                           r"sizes \[2, 4, 2\]; the settings say hidden \[5\]"),
    "unknown data field": (lambda m: m["data"].update(colour="red"), r"unusable settings: .*colour"),
    "dataset not a string": (lambda m: m["data"].update(dataset=5), r"'meta\.data\.dataset' must be a string"),
}


@pytest.mark.parametrize("case", list(META_EDITS))
def test_edited_checkpoint_fields_exit_2_with_one_line(checkpointed: Path, case: str, capsys) -> None:
    # issue 12 case 11: once meta.json's hash matched, edited fields gave KeyError/TypeError tracebacks.
    import re

    edit, message = META_EDITS[case]
    edit_checkpoint_meta(checkpointed, edit)
    assert main(["train", "--resume", "--out", str(checkpointed), "--quiet", "--no-pictures"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, err), err
    assert err.startswith("npmlp train: error: ") and "Traceback" not in err


def test_a_checkpoint_resumes_from_its_history_file(checkpointed: Path, capsys) -> None:
    meta = json.loads((checkpointed / "checkpoint" / "meta.json").read_text())
    assert "history" not in meta["meta"] and meta["history"]["lines"] == 2
    code, doc = train_json(["--resume", "--out", str(checkpointed), "--no-pictures"], capsys)
    assert code == 0 and [r["epoch"] for r in doc["history"]] == [1, 2, 3, 4]


def test_a_plain_install_trains_saves_and_says_pictures_were_skipped(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("npmlp.plots.available", lambda: False)  # as without matplotlib
    code, doc = train_json(["--dataset", "circles", "--epochs", "3", "--out", str(tmp_path)], capsys)
    assert code == 0 and doc["epochs_run"] == 3
    lines = [line for line in train_json.stderr.splitlines() if "pictures" in line]  # type: ignore[attr-defined]
    assert lines == ["npmlp train: pictures skipped (plots need matplotlib: pip install 'npmlp[plot]'); "
                     "the model and report.html are saved"]
    page = (tmp_path / "report.html").read_text()
    assert "data:image" not in page and "Pictures skipped: plots need matplotlib" in page
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "checkpoint").exists()
