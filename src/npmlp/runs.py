"""A training run on disk: data set, training, checkpoints, resume, and the output directory.

``train --out DIR`` writes ``model.npz`` and ``config.json`` (the model),
``history.json`` and ``history.csv``, ``curves.png``, ``decision_regions.png`` (2D
data) and ``report.html``; ``DIR/checkpoint/`` holds the resumable state while the
run goes on. The command line, the demo and the sweeps all go through :func:`run`.
"""

from __future__ import annotations

import csv
import io
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from . import __version__
from .datasets import NAMED, Dataset, load_dataset
from .errors import ModelFileError
from .persistence import (
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    remove_checkpoint,
    run_status,
    save_checkpoint,
    save_model,
)
from .settings import Integer, Real, Text, declared, setting, validate
from .training import SPLITS, Trainer, TrainConfig, TrainResult, train


@dataclass
class DataSpec:
    """How to load the data set of a run (kept in config.json so a run can be redone)."""

    dataset: str
    data_dir: str | None = setting(None, Text(optional=True), "where to look for mnist/fashion-mnist first",
                                   metavar="DIR")
    n_samples: int = setting(1100, Integer(1), "circles: number of points", metavar="N")
    noise: float = setting(0.0, Real(0), "circles: radial Gaussian noise", metavar="SIGMA")
    label_column: int = setting(-1, Integer(), "CSV/text files: the column of the label (0 the first, -1 the last)",
                                metavar="N")

    def __post_init__(self) -> None:
        validate(self)

    def load(self, *, seed: int, dtype: str, progress: bool = False) -> Dataset:
        return load_dataset(self.dataset, data_dir=self.data_dir, seed=seed, n_samples=self.n_samples,
                            noise=self.noise, dtype=dtype, label_column=self.label_column, progress=progress)

    def record(self, dataset: Dataset) -> dict[str, Any]:
        """What a run records of its data: how to load it again (the path resolved too) and what it was."""
        named = self.dataset in NAMED
        resolved = None if named else str(Path(self.dataset).expanduser().resolve())
        return {**asdict(self), "resolved": resolved, **dataset.identity}


def write_checkpoint(out: Path, trainer: Trainer, config: TrainConfig, data: DataSpec) -> None:
    """Save everything :func:`resume_trainer` needs into ``out/checkpoint/``.

    ``meta.json`` holds the settings and the trainer's small state; the history is appended
    to the checkpoint's history file, so a checkpoint costs the same in every epoch.
    """
    arrays, state = trainer.state_dict()
    meta = {"config": config.to_dict(), "data": data.__dict__, **state}
    save_checkpoint(out, params=trainer.net.params, state=arrays, meta=meta, history=trainer.state.history)


def resume_trainer(out: Path) -> tuple[Trainer, TrainConfig, DataSpec]:
    """Rebuild the trainer of an interrupted run from ``out/checkpoint/``, exactly as it was.

    Every field is checked: an edited checkpoint gives a one-line :class:`ModelFileError`.
    """
    ck = load_checkpoint(out)
    meta, where = ck.meta, out / "checkpoint" / "meta.json"
    for key in ("config", "data"):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f"{where}: 'meta.{key}' must be an object. Got {meta.get(key)!r:.80} instead.")
    try:
        config, data = TrainConfig.from_dict(meta["config"]), DataSpec(**meta["data"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where} holds unusable settings: {exc}") from exc
    if not isinstance(data.dataset, str):
        raise ModelFileError(f"{where}: 'meta.data.dataset' must be a string. Got {data.dataset!r:.80} instead.")
    return Trainer.from_state(config, ck.params, ck.state, meta, ck.history, where=where), config, data


@contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trainer to stop after the current minibatch (a checkpoint follows)."""

    def request_stop(signum: int, frame: Any) -> None:
        trainer.stop_requested = True
        trainer.stop_signal = signum  # type: ignore[attr-defined]

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (e.g. a Dask worker's task thread)
        return
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def history_csv(history: list[dict[str, Any]]) -> str:
    """The history as CSV text, one row per epoch."""
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    return buf.getvalue()


def run(
    config: TrainConfig,
    data: DataSpec,
    *,
    out: Path | None,
    resume: bool = False,
    progress: bool = False,
    pictures: bool = True,
    dataset: Dataset | None = None,
) -> tuple[TrainResult, Dataset]:
    """Train as ``npmlp train`` does: load, train (or resume), checkpoint, write the outputs.

    ``dataset``, when given, is used instead of loading ``data`` (which is then only
    recorded). Returns the result and the data set it was trained on.
    """
    if resume:
        if out is None:
            raise ValueError("--resume needs --out DIR: the directory of the interrupted run.")
        if run_status(out) == "finished":
            raise ValueError(f"the run in {out} has finished: nothing to resume. Train without --resume to start afresh.")
        trainer, config, data = resume_trainer(out)
        print(f"resuming {out} at epoch {trainer.state.epoch + 1} (minibatch {trainer.state.batch})", file=sys.stderr)
    if dataset is None:
        dataset = data.load(seed=config.seed, dtype=config.dtype, progress=progress)
    if not resume:
        trainer = Trainer.new(config, dataset.n_features, dataset.n_classes)
    elif trainer.net.sizes[0] != dataset.n_features:
        raise ValueError(f"the checkpoint in {out} expects {trainer.net.sizes[0]} features; {data.dataset} has {dataset.n_features}.")
    save = (lambda t: write_checkpoint(out, t, config, data)) if out is not None else None
    with stop_on_signals(trainer):
        result = train(dataset.splits(), config, trainer=trainer, progress=progress, on_epoch=save)
    if out is not None and result.stopped_because != "interrupted":
        write_outputs(out, result, dataset, config, data, pictures=pictures)
        remove_checkpoint(out)
    return result, dataset


def summary(result: TrainResult, dataset: Dataset, out: Path | None) -> dict[str, Any]:
    """The ``--json`` document of ``npmlp train``."""
    return {
        "dataset": dataset.name,
        "epochs_run": result.epochs_run,
        "stopped_because": result.stopped_because,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "final": result.final(),
        "out": str(out) if out is not None else None,
    }


def write_outputs(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig, data: DataSpec,
                  *, pictures: bool = True) -> None:
    """Model, history and (when matplotlib is installed) pictures and report into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, result.net, training={**config.to_dict(), **asdict(data)}, extra={"data": data.record(dataset)})
    atomic_write_json(out / "history.json", result.history)
    atomic_write_text(out / "history.csv", history_csv(result.history))
    if pictures and result.history:  # a run that diverged in its first epoch has nothing to draw
        write_run_report(out, result, dataset, config, data)


def settings_line(config: TrainConfig) -> str:
    """The settings that matter at a glance, for figure titles."""
    c = config
    coef = lambda v: ",".join(f"{x:g}" for x in np.atleast_1d(v))  # noqa: E731
    pen = f"l1={coef(c.l1)} l2={coef(c.l2)}" if np.any(c.l1) or np.any(c.l2) else "no penalty"
    return (f"hidden={','.join(map(str, c.hidden))} {c.activation}, {c.optimizer} lr={c.lr:g} ({c.lr_schedule}), "
            f"K={c.batch_size}, {pen}, {c.dtype}")


def run_figures(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig) -> dict[str, Path]:
    """Draw the run's figures into ``out``; returns caption -> PNG path."""
    from . import plots

    figures: dict[str, Path] = {}
    title = f"{dataset.name}: {settings_line(config)}"
    fig = plots.learning_curves_figure(result.history, best_epoch=result.best_epoch, title=title)
    figures[plots.CAPTIONS["learning_curves"]] = plots.save_figure(fig, out / "curves.png")
    net, splits = result.net, dataset.splits()
    if dataset.n_features == 2:
        fig = plots.decision_regions_figure(net.predict, splits["train"], splits["test"], settings=title,
                                            class_names=dataset.class_names)
        figures[plots.CAPTIONS["decision_regions"]] = plots.save_figure(fig, out / "decision_regions.png")
    if dataset.image_shape is not None:
        X, y = splits["test"]
        P = net.predict_proba(X)
        fig = plots.confusion_matrix_figure(y, P.argmax(axis=1), class_names=dataset.class_names)
        figures[plots.CAPTIONS["confusion_matrix"]] = plots.save_figure(fig, out / "confusion_matrix.png")
        fig = plots.misclassified_gallery_figure(X, y, P, dataset.image_shape, class_names=dataset.class_names)
        figures[plots.CAPTIONS["misclassified"]] = plots.save_figure(fig, out / "misclassified.png")
        fig = plots.first_layer_weights_figure(net.params["W1"], dataset.image_shape)
        figures[plots.CAPTIONS["first_layer_weights"]] = plots.save_figure(fig, out / "first_layer_weights.png")
    return figures


def write_run_report(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig, data: DataSpec) -> Path:
    """``curves.png``, ``decision_regions.png`` (2D data) and friends, and ``report.html``."""
    from .report import training_report

    figures = run_figures(out, result, dataset, config)
    settings = {"dataset": dataset.name, "source": dataset.source, **config.to_dict(),
                "epochs run": result.epochs_run, "stopped because": result.stopped_because,
                "best epoch": result.best_epoch, "npmlp": __version__}
    notes = [result.message] if result.message else []
    return training_report(out / "report.html", title=f"npmlp train on {dataset.name}", settings=settings,
                           final=result.final(), history=result.history, images=figures, notes=notes)


# -- the data of a saved run ---------------------------------------------------------------
@dataclass
class RunData:
    """The data set to evaluate a saved model on, and whether it is the data the model was trained on.

    ``same`` is True when its fingerprint matches the run's record (the splits are then the
    run's own), False when it differs, None when the model records no fingerprint (older files).
    """

    dataset: Dataset
    same: bool | None
    note: str = ""


def run_data(model_config: Mapping[str, Any], *, dataset: str | None = None, dtype: str,
             options: Mapping[str, Any] | None = None) -> RunData:
    """Load the data a saved model was trained on, or ``dataset`` instead, checked against the run's record.

    ``options`` (DataSpec fields other than ``dataset``) override the recorded ones when not None.
    The run's split seed is reused, so the run's own data gets the run's own split, and the
    split's row hash proves it.
    """
    training = model_config.get("training", {})
    record: Mapping[str, Any] = model_config.get("data") or {}
    spec = {k: v for k, v in {**training, **record}.items() if k in declared(DataSpec) or k == "dataset"}
    spec.update({k: v for k, v in (options or {}).items() if v is not None})
    given = dataset is not None
    source = dataset if given else (record.get("resolved") or spec.get("dataset"))
    if not source:
        raise ValueError("the model records no data set (a model saved outside npmlp train): pass --dataset D.")
    spec["dataset"] = str(source)
    seed = (record.get("split") or {}).get("seed")
    seed = training.get("seed", 0) if seed is None else seed
    loaded = DataSpec(**spec).load(seed=seed, dtype=dtype)
    if "sha256" not in record:
        return RunData(loaded, None, "the model records no data fingerprint (written by an older npmlp): "
                                     "the split could not be checked against the run's.")
    if loaded.identity["sha256"] != record["sha256"]:
        if not given:
            raise ValueError(f"{source} has changed since the run (its data fingerprint differs): pass --dataset "
                             "to evaluate on other data.")
        return RunData(loaded, False, f"{source} is not the data this model was trained on (fingerprint differs): "
                                      "its splits are its own, not the run's.")
    if loaded.identity["split"]["rows_sha256"] != record["split"]["rows_sha256"]:
        raise ValueError(f"cannot redraw the run's split of {source} (the row indices differ: another NumPy "
                         "version?); the run's splits are unknown here.")
    return RunData(loaded, True)
