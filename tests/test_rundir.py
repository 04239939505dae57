"""The run directory as the unit of truth (issue 12, cases 4, 5, 6 and 7's flags), through the real CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npmlp import runs
from npmlp.atomicfile import LOCK_FILE, locked_directory
from npmlp.cli import main
from npmlp.persistence import arrays_sha256, load_model
from npmlp.training import Trainer

QUICK = ["--dataset", "circles", "--n-samples", "300", "--epochs", "3", "--lr", "0.1", "--quiet", "--no-pictures"]


def train(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``npmlp train``; return its exit code and its last line on stderr."""
    code = main(["train", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def model_bytes(out: Path) -> tuple[bytes, bytes]:
    return (out / "model.npz").read_bytes(), (out / "config.json").read_bytes()


def interrupt_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next run stops after its first minibatch, as after Ctrl-C: a checkpoint and exit 130."""
    @contextmanager
    def stop(trainer: Trainer) -> Iterator[None]:
        trainer.stop_requested = True
        yield
    monkeypatch.setattr(runs, "stop_on_signals", stop)


@pytest.fixture
def good_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "D"
    assert train(capsys, *QUICK, "--out", str(out))[0] == 0
    return out


# -- case 4: a diverged retrain never replaces a good model ------------------------------
def test_a_diverged_overwrite_keeps_the_good_run(good_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = model_bytes(good_run)
    code, last = train(capsys, *QUICK, "--lr", "1e6", "--overwrite", "--out", str(good_run))
    assert code == 1 and "diverged" in last
    assert model_bytes(good_run) == before
    assert sorted(p.name for p in good_run.parent.iterdir()) == ["D"]  # no staging directory left behind
    assert main(["evaluate", "--model", str(good_run), "--dataset", "circles", "--n-samples", "300"]) == 0


def test_a_run_that_diverges_in_epoch_1_writes_no_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "D"
    code = main(["train", "--json", *QUICK, "--lr", "1e6", "--out", str(out)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["stopped_because"] == "diverged"
    assert not (out / "model.npz").exists() and not (out / "config.json").exists()
    assert json.loads((out / "history.json").read_text()) == []
    assert main(["evaluate", "--model", str(out), "--dataset", "circles"]) == 2  # never the starting weights
    assert "config.json is missing" in capsys.readouterr().err
    assert train(capsys, *QUICK, "--out", str(out))[0] == 0  # a run without a model is no result to keep


# -- case 5: one writer per directory; a reader sees the old pair or the new one ---------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "D"
    with locked_directory(out):  # another run holds it
        code, last = train(capsys, *QUICK, "--out", str(out))
    assert code == 2
    assert f"is in use by another npmlp run (pid {os.getpid()})" in last and "--out" in last
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing of the other run was touched


def test_a_second_sweep_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('dataset = "circles"\nn_samples = 100\nepochs = 1\n\n[grid]\nhidden = [[2]]\n')
    out = tmp_path / "S"
    with locked_directory(out, what="sweep"):
        assert main(["sweep", "--config", str(config), "--out", str(out)]) == 2
    assert f"in use by another npmlp sweep (pid {os.getpid()})" in capsys.readouterr().err
    assert not (out / "trials.jsonl").exists()


def test_a_reader_during_a_retrain_sees_the_old_pair_or_the_new(good_run: Path, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    old = load_model(good_run)[1]["sha256"]
    seen: list[str] = []
    real = os.replace

    def read() -> None:
        net, config = load_model(good_run)
        assert config["sha256"] == arrays_sha256(net.params)  # the pair belongs together
        assert config["architecture"]["sizes"] == list(net.sizes)
        seen.append(config["sha256"])

    def replace_and_read(src: Any, dst: Any) -> None:
        into_run = Path(dst).parent == good_run
        if into_run:
            read()  # a reader just before and just after every rename into the run directory
        real(src, dst)
        if into_run:
            read()
    monkeypatch.setattr(os, "replace", replace_and_read)
    assert train(capsys, *QUICK, "--hidden", "7", "--epochs", "30", "--overwrite", "--out", str(good_run))[0] == 0
    monkeypatch.undo()
    new = load_model(good_run)[1]["sha256"]
    assert new != old and set(seen) == {old, new}
    assert seen == sorted(seen, key=[old, new].index)  # old, then new, never back


# -- case 6: the directory a run writes into -------------------------------------------
def test_out_refuses_a_finished_run_unless_resume_or_overwrite(good_run: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = model_bytes(good_run)
    code, last = train(capsys, *QUICK, "--out", str(good_run))
    assert code == 2 and "holds a finished run: pass --resume to continue it, --overwrite to replace it" in last
    assert model_bytes(good_run) == before


def test_out_refuses_a_checkpoint_and_overwrite_replaces_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "D"
    interrupt_at_once(monkeypatch)
    assert train(capsys, *QUICK, "--out", str(out))[0] == 130
    monkeypatch.undo()
    code, last = train(capsys, *QUICK, "--out", str(out))
    assert code == 2 and "holds an interrupted run's checkpoint: pass --resume" in last
    assert (out / "checkpoint" / "meta.json").is_file()
    assert train(capsys, *QUICK, "--overwrite", "--out", str(out))[0] == 0
    assert not (out / "checkpoint").exists() and load_model(out)[0].sizes == (2, 10, 2)


def test_an_interrupted_overwrite_keeps_the_old_run_and_resumes_into_it(
        good_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    before = model_bytes(good_run)
    interrupt_at_once(monkeypatch)
    assert main(["train", *QUICK, "--hidden", "7", "--epochs", "30", "--overwrite", "--out", str(good_run)]) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert model_bytes(good_run) == before
    staging = Path(err.split("--resume --out ")[-1].split()[0])
    assert staging.parent == good_run.parent and staging.name.startswith(".D.staging-")
    assert train(capsys, "--resume", "--out", str(staging), "--quiet")[0] == 0
    assert load_model(good_run)[0].sizes == (2, 7, 2) and not staging.exists()


def test_overwrite_removes_only_what_the_old_run_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "D"
    flags = [a for a in QUICK if a != "--no-pictures"]
    assert train(capsys, *flags, "--out", str(out))[0] == 0
    assert (out / "report.html").is_file() and (out / "decision_regions.png").is_file()
    (out / "notes.txt").write_text("mine")
    assert train(capsys, *QUICK, "--overwrite", "--out", str(out))[0] == 0
    left = {p.name for p in out.iterdir()}
    assert left == {"model.npz", "config.json", "history.json", "history.csv", "notes.txt", LOCK_FILE,
                    runs.MANIFEST_FILE}  # the old report and pictures no longer describe the model: gone
    assert json.loads((out / runs.MANIFEST_FILE).read_text())["files"] == sorted(left - {"notes.txt", LOCK_FILE,
                                                                                         runs.MANIFEST_FILE})


def test_out_refuses_a_directory_of_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("x")
    for extra in ([], ["--overwrite"]):
        code, last = train(capsys, *QUICK, *extra, "--out", str(out))
        assert code == 2 and "holds files that are not an npmlp run" in last and "--out" in last
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]  # not even a lock file


def test_without_out_each_run_gets_a_new_directory_under_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert train(capsys, *QUICK)[0] == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["circles", "circles-2"]
    assert load_model(tmp_path / "runs" / "circles-2")[0].sizes == (2, 10, 2)


@pytest.mark.parametrize("spec, where", [(".", "data"), ("..", "data/sub")])
def test_dataset_dot_and_dotdot_write_only_inside_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch, spec: str, where: str) -> None:
    from .test_datasets import write_idx_set

    write_idx_set(tmp_path / "data", n_train=200, n_test=50, learnable=True)
    (tmp_path / where).mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path / where)
    before = set(os.listdir(tmp_path / "data"))
    assert train(capsys, "--dataset", spec, "--hidden", "8", "--epochs", "5", "--quiet", "--no-pictures")[0] == 0
    assert set(os.listdir(tmp_path / where)) - before <= {"runs"}
    assert [p.name for p in (tmp_path / where / "runs").iterdir()] == ["data"]
    assert (tmp_path / where / "runs" / "data" / "model.npz").is_file()


def test_new_run_dir_names_are_safe(tmp_path: Path) -> None:
    for given in ["", "/", "..", "../../etc/passwd", "a b;c.csv", ".hidden.csv"]:
        path = runs.new_run_dir(tmp_path / "runs", given)
        assert path.parent == tmp_path / "runs" and path.name not in ("", ".", "..") and not path.name.startswith(".")


# -- case 7 (flags): --resume goes on with the checkpoint's settings, or says why not -----
@pytest.fixture
def interrupted(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "D"
    interrupt_at_once(monkeypatch)
    argv = [*QUICK, "--hidden", "10", "--lr-schedule", "cosine", "--epochs", "4", "--out", str(out)]
    assert train(capsys, *argv)[0] == 130
    monkeypatch.undo()
    return out


def test_resume_refuses_flags_that_contradict_the_checkpoint(interrupted: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, last = train(capsys, "--resume", "--out", str(interrupted), "--hidden", "50", "--dataset", "other.csv",
                       "--epochs", "2")
    assert code == 2
    for part in ["contradict its checkpoint", "--dataset other.csv (the checkpoint has circles)",
                 "--epochs 2 (the checkpoint has 4)", "--hidden 50 (the checkpoint has 10)", "--overwrite"]:
        assert part in last
    assert "--lr" not in last  # given, but the same as the checkpoint's: no contradiction
    code, last = train(capsys, "--resume", "--out", str(interrupted), "--hidden", "10", "--lr", "0.1", "--quiet")
    assert code == 0


def test_resume_may_raise_epochs_and_says_what_the_cosine_schedule_does(interrupted: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", "--out", str(interrupted), "--epochs", "6", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--epochs 6 moves the cosine schedule's horizon from 4 to 6 epochs" in err
    history = json.loads((interrupted / "history.json").read_text())
    assert len(history) == 6 and load_model(interrupted)[1]["training"]["epochs"] == 6


def test_resume_of_a_finished_run_says_there_is_no_checkpoint(good_run: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, last = train(capsys, "--resume", "--out", str(good_run))
    assert code == 2 and "has finished: nothing to resume" in last


def test_given_flags_are_those_on_the_command_line() -> None:
    from npmlp.cli import build_parser, given_flags

    argv = ["train", "--resume", "--out", "D", "--hidden", "100", "--quiet"]  # 100: the default, but given
    args = build_parser().parse_args(argv)
    args.argv = argv
    assert given_flags(args) == {"resume", "out", "hidden", "quiet"}


def test_publishable_is_the_one_rule_for_writing_a_model() -> None:
    net = runs.TrainConfig(hidden=[2]).build(2, 2, np.random.default_rng(0))
    row = [{"epoch": 1}]
    assert runs.publishable(runs.TrainResult(net, row, "max_epochs"))
    for why in ("diverged", "interrupted"):
        assert not runs.publishable(runs.TrainResult(net, row, why))
    assert not runs.publishable(runs.TrainResult(net, row, "max_epochs", no_progress=True))
    # A diverged run keeps its best epoch only with early stopping, and never writes over an earlier run.
    assert runs.publishable(runs.TrainResult(net, row, "diverged", best_epoch=1))
    assert not runs.publishable(runs.TrainResult(net, row, "diverged", best_epoch=1), replacing=True)
    assert not runs.publishable(runs.TrainResult(net, [], "max_epochs"))
