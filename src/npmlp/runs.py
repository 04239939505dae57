"""A training run on disk: data set, training, checkpoints, resume, and the output directory.

``train --out DIR`` writes ``model.npz`` and ``config.json`` (the model),
``history.json`` and ``history.csv``, ``curves.png``, ``decision_regions.png`` (2D
data) and ``report.html``; ``DIR/checkpoint/`` holds the resumable state while the
run goes on. The command line and the demo go through :func:`run`.

The run directory is the unit of truth. One writer at a time holds its lock
(:func:`~npmlp.atomicfile.locked_directory`); ``DIR/.npmlp-manifest.json`` lists the files
its run wrote, the only files npmlp ever removes there. A directory holding a finished run
or a checkpoint is reused only to resume it or, with ``overwrite``, through a staging
directory beside it whose files replace the old run's only once the new run has a model
(:func:`publishable`; :func:`publish`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import budget, fused, tables
from ._version import __version__, installed_version
from .atomicfile import LOCK_FILE, atomic_write_json, atomic_write_text, fsync_dir, locked_directory
from .datasets import NAMED, Dataset, load_dataset
from .errors import DataError, ModelFileError, RunDirectoryError
from .persistence import (
    CHECKPOINT_DIR,
    META_FILE,
    MODEL_FILE,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
    save_model,
)
from .preprocess import Standardizer
from .settings import ByteSize, Choice, Column, Flag, Integer, Real, Text, declared, setting, shown, validate
from .training import TrainConfig, Trainer, TrainResult, train


@dataclass
class DataSpec:
    """How to load the data set of a run (kept in config.json so a run can be redone)."""

    dataset: str
    data_dir: str | None = setting(None, Text(optional=True), "where to look for mnist/fashion-mnist first",
                                   metavar="DIR")
    n_samples: int = setting(1100, Integer(1), "circles: number of points", metavar="N")
    noise: float = setting(0.0, Real(0), "circles: radial Gaussian noise", metavar="SIGMA")
    label_column: int | str = setting("last", Column(), "CSV/text files: the label's column, a header name, a "
                                      "0-based index (negative from the end), first or last", metavar="COLUMN")
    header: str = setting("auto", Choice(tables.HEADERS), "CSV/text files: whether the first row names the columns "
                          "(auto: when it is not numbers over numbers)")
    delimiter: str = setting("auto", Choice(tables.DELIMITERS), "CSV/text files: the cell separator (auto: sniffed)")
    test_dataset: str | None = setting(None, Text(optional=True), "CSV/text files: a test file in the same layout; "
                                       "the --dataset file then splits 80/20 into train and valid", metavar="FILE")
    standardize: bool = setting(False, Flag(), "learn each feature's mean and standard deviation on the training "
                                "split and scale every input by them (stored with the model)")
    max_memory: int | None = setting(None, ByteSize(), "refuse work that would need more memory than this, like "
                                     "600M or 4G (default: the memory available)", metavar="SIZE")

    def __post_init__(self) -> None:
        validate(self)

    def load(self, *, seed: int, dtype: str, progress: bool = False) -> Dataset:
        return load_dataset(self.dataset, data_dir=self.data_dir, seed=seed, n_samples=self.n_samples,
                            noise=self.noise, dtype=dtype, label_column=self.label_column, header=self.header,
                            delimiter=self.delimiter, test_dataset=self.test_dataset, max_memory=self.max_memory,
                            progress=progress)

    def record(self, dataset: Dataset) -> dict[str, Any]:
        """What a run records of its data: how to load it again (the paths resolved too) and what it was."""
        named = self.dataset in NAMED
        resolved = None if named else str(Path(self.dataset).expanduser().resolve())
        test = str(Path(self.test_dataset).expanduser().resolve()) if self.test_dataset else None
        return {**asdict(self), "resolved": resolved, "test_resolved": test, **dataset.identity}


def software_stack() -> dict[str, Any]:
    """What a run computed with: npmlp, Python, NumPy, the BLAS (library, version, kernel, threads), the CPU.

    Bit-for-bit reproducibility (a resumed run equal to an uninterrupted one) is only
    promised on the same stack: a different NumPy or BLAS kernel may round differently.
    """
    from .bench_machine import blas_libraries

    blas = (blas_libraries() or [{}])[0]
    return {"npmlp": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": fused.version(),  # the compiled update rules give NumPy's bits: recorded, not required
            # light networks train with one BLAS thread where it is installed (minibatches.one_blas_thread)
            "threadpoolctl": installed_version("threadpoolctl"),
            "blas": {k: blas.get(k) for k in ("internal_api", "version", "architecture", "num_threads")},
            "machine": platform.machine()}


def stack_differences(recorded: Any, now: Mapping[str, Any]) -> list[str]:
    """``"numpy 2.4.6 -> 2.5.0"`` for each fact of the stack that changed (nothing for an old record)."""
    if not isinstance(recorded, Mapping):
        return []
    was, is_ = _flat_stack(recorded), _flat_stack(now)
    # numba's compiled update rules give the NumPy passes' bits (tests/test_fused.py): not a difference
    return [f"{k} {was.get(k)} -> {v}" for k, v in is_.items() if k in was and was[k] != v and k != "numba"]


def _flat_stack(stack: Mapping[str, Any]) -> dict[str, Any]:
    blas = stack.get("blas")
    return {**{k: v for k, v in stack.items() if k != "blas"},
            **{f"BLAS {k}": v for k, v in (blas.items() if isinstance(blas, Mapping) else ())}}


def write_checkpoint(out: Path, trainer: Trainer, config: TrainConfig, data: DataSpec,
                     record: Mapping[str, Any] | None = None) -> None:
    """Save everything :func:`resume_trainer` needs into ``out/checkpoint/``.

    ``meta.json`` holds the settings, the data's identity (``record``, see
    :meth:`DataSpec.record`), the software stack and the trainer's small state; the
    history is appended to the checkpoint's history file, so a checkpoint costs the same
    in every epoch.
    """
    arrays, state = trainer.state_dict()
    meta = {"config": config.to_dict(), "data": asdict(data), "data_record": dict(record or {}),
            "stack": software_stack(), **state}
    save_checkpoint(out, params=trainer.net.params, state=arrays, meta=meta, history=trainer.state.history)


def resume_trainer(out: Path) -> tuple[Trainer, TrainConfig, DataSpec, dict[str, Any]]:
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
    return Trainer.from_state(config, ck.params, ck.state, meta, ck.history, where=where), config, data, meta


@contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trainer to stop after the current minibatch (a checkpoint follows)."""

    def request_stop(signum: int, frame: Any) -> None:
        trainer.stop_requested = True

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


# -- the run directory ---------------------------------------------------------------
MANIFEST_FILE = ".npmlp-manifest.json"
#: What runs of npmlp before the manifest wrote: a directory without a manifest but with a
#: model or checkpoint is taken to hold these (the only names ever removed there).
LEGACY_OUTPUTS = ("model.npz", "config.json", "history.json", "history.csv", "curves.png", "decision_regions.png",
                  "confusion_matrix.png", "misclassified.png", "first_layer_weights.png", "report.html")
DirState = Literal["new", "empty", "resumable", "finished", "stopped", "other"]


def publishable(result: TrainResult, *, replacing: bool = False) -> bool:
    """Whether a run's model may be written: it trained, made progress and did not stop half-way.

    A run that diverged writes a model only when early stopping kept an earlier best epoch (the
    model every summary then describes), and never over an earlier run (``replacing``). Every
    writer of a run's model asks this one predicate.
    """
    if result.epochs_run == 0 or result.no_progress or result.stopped_because == "interrupted":
        return False
    return result.stopped_because != "diverged" or (result.best_epoch is not None and not replacing)


def directory_state(out: Path) -> DirState:
    """What ``out`` holds: nothing (``new``/``empty``), a run (``resumable``: a checkpoint; ``finished``: a
    model; ``stopped``: a run that ended without a model), or someone else's files (``other``)."""
    if not out.exists():
        return "new"
    if not out.is_dir():
        return "other"
    if (out / CHECKPOINT_DIR / META_FILE).is_file():
        return "resumable"
    if (out / MODEL_FILE).is_file():
        return "finished"
    if (out / MANIFEST_FILE).is_file():
        return "stopped"
    return "empty" if not set(os.listdir(out)) - {LOCK_FILE} else "other"


def _relative(entry: Any, path: Path) -> str:
    """A manifest entry, refused unless it is a plain relative path inside the directory."""
    if not isinstance(entry, str) or not entry or Path(entry).is_absolute() or ".." in Path(entry).parts:
        raise RunDirectoryError(f"{path} lists {entry!r}, not a file inside the run directory: "
                                "it was not written by npmlp; remove it by hand.")
    return Path(entry).as_posix()


def manifest_files(directory: Path) -> set[str]:
    """The files the run in ``directory`` wrote (relative paths): its manifest, or the legacy names present."""
    path = directory / MANIFEST_FILE
    if not path.is_file():
        return {n for n in LEGACY_OUTPUTS if (directory / n).is_file()}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        files = doc["files"]
        if not isinstance(files, list):
            raise TypeError("'files' is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirectoryError(f"{path} is unreadable ({exc}): remove it by hand to reuse {directory}.") from exc
    return {_relative(f, path) for f in files}


def write_manifest(directory: Path, files: Iterable[str], **info: Any) -> None:
    """Record the files a run wrote in ``directory`` (and ``info``, e.g. why it stopped)."""
    atomic_write_json(directory / MANIFEST_FILE, {"format_version": 1, "files": sorted(set(files)), **info})


def files_under(directory: Path) -> list[str]:
    """Every file below ``directory`` as a relative POSIX path, but its lock and manifest."""
    found = [p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(f for f in found if f not in (LOCK_FILE, MANIFEST_FILE))


def remove_files(directory: Path, files: Iterable[str]) -> None:
    """Delete these files of a run in ``directory``, then the folders they leave empty."""
    for rel in sorted(files, reverse=True):
        with suppress(FileNotFoundError):
            (directory / rel).unlink()
        for parent in (directory / rel).parents:
            if parent == directory or directory not in parent.parents:
                break
            with suppress(OSError):
                parent.rmdir()  # only succeeds when empty: a user's file there keeps it


def publish(staging: Path, out: Path, *, first: Sequence[str] = (MODEL_FILE, "config.json")) -> None:
    """Replace the run in ``out`` by the one in ``staging``, then remove ``staging``.

    ``first`` go first: the rename of ``model.npz``, which carries its config, is the commit
    point, so a reader of ``out`` sees the old model or the new one. The manifest of ``out``
    lists the old files and the new ones meanwhile, so a crash half-way leaves nothing that
    a later run would not recognise as its own; the old run's files that the new one did not
    write are removed last, and never anything the manifest does not list.
    """
    new, old = files_under(staging), manifest_files(out)
    write_manifest(out, old | set(new), replacing=True)
    for rel in [f for f in first if f in new] + [f for f in new if f not in first]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, out / rel)
    remove_files(out, old - set(new))
    remove_checkpoint(out)  # an interrupted run that this one replaced
    if (staging / MANIFEST_FILE).is_file():
        os.replace(staging / MANIFEST_FILE, out / MANIFEST_FILE)
    else:
        write_manifest(out, new)
    fsync_dir(out)
    shutil.rmtree(staging, ignore_errors=True)  # its lock file and empty folders


def staging_dir(out: Path) -> Path:
    """A new directory beside ``out`` to build its replacement in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))


def new_run_dir(root: Path, dataset: str) -> Path:
    """``root/<name>``, else ``root/<name>-2``, ...: the first that does not exist, created (so it is ours).

    ``name`` is the data set's name made safe: never ``.``, ``..`` or a path, so nothing is
    written outside ``root`` or into ``root`` itself.
    """
    stem = Path(dataset).resolve().stem if dataset else ""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).lstrip(".") or "run"
    root.mkdir(parents=True, exist_ok=True)
    for i in itertools.count(1):
        path = root / (base if i == 1 else f"{base}-{i}")
        with suppress(FileExistsError):
            path.mkdir()
            return path
    raise AssertionError("unreachable")  # pragma: no cover


def check_reuse(out: Path, *, overwrite: bool) -> DirState:
    """Refuse to start a new run in ``out`` when that would lose something; return what ``out`` holds."""
    state = directory_state(out)
    if state in ("finished", "resumable") and not overwrite:
        held = "a finished run" if state == "finished" else "an interrupted run's checkpoint"
        raise RunDirectoryError(f"{out} holds {held}: pass --resume to continue it, --overwrite to replace it "
                                "(the old run stays until the new one has a model), or another --out.")
    if state == "other":
        raise RunDirectoryError(f"{out} holds files that are not an npmlp run: choose an empty or new directory "
                                "with --out (npmlp never removes files it did not write).")
    return state


# -- resuming ------------------------------------------------------------------------
def _same_dataset(a: str, b: str) -> bool:
    return a == b or (bool(a) and bool(b) and Path(a).resolve() == Path(b).resolve())


def resumed_config(saved: TrainConfig, saved_data: DataSpec, asked: TrainConfig, asked_data: DataSpec,
                   given: Collection[str], *, out: Path) -> TrainConfig:
    """The configuration a resumed run goes on with: the checkpoint's, with ``--epochs`` raised if asked.

    ``given`` names the settings the user chose explicitly (their values in ``asked`` and
    ``asked_data``); any that contradicts the checkpoint is refused, naming them all.
    """
    conflicts, settings = [], declared(TrainConfig)
    have, want = saved.to_dict(), asked.to_dict()
    for name in sorted(given):
        if name in settings:
            new, old = want[name], have[name]
        elif name == "dataset" or name in declared(DataSpec):
            new, old = getattr(asked_data, name), getattr(saved_data, name)
            if name == "dataset" and _same_dataset(new, old):
                continue
        else:
            continue
        if new != old and not (name == "epochs" and new > old):
            conflicts.append(f"--{name.replace('_', '-')} {shown(new)} (the checkpoint has {shown(old)})")
    if conflicts:
        raise RunDirectoryError(f"--resume continues the run in {out} with its own settings, and these flags "
                                f"contradict its checkpoint: {'; '.join(conflicts)}. Drop them, or start afresh "
                                "with --overwrite.")
    if "epochs" in given and asked.epochs != saved.epochs and saved.lr_schedule == "cosine":
        print(f"npmlp train: --epochs {asked.epochs} moves the cosine schedule's horizon from {saved.epochs} to "
              f"{asked.epochs} epochs: the learning rate of the remaining epochs is higher than the interrupted run "
              "planned, and the result differs from an uninterrupted run of either length.", file=sys.stderr)
    return dataclasses.replace(saved, epochs=max(asked.epochs, saved.epochs)) if "epochs" in given else saved


def _start_resume(out: Path, config: TrainConfig, data: DataSpec, given: Collection[str]
                  ) -> tuple[Trainer, TrainConfig, DataSpec, Any]:
    """The interrupted run's trainer, settings and data (its path as resolved when the run began), and
    the data's record to check the loaded data against."""
    state = directory_state(out)
    if state != "resumable":
        why = ("has finished: nothing to resume. Train without --resume (with --overwrite) to start afresh"
               if state == "finished" else "holds no checkpoint: train without --resume to start afresh")
        raise RunDirectoryError(f"the run in {out} {why}.")
    trainer, saved, saved_data, meta = resume_trainer(out)
    trainer.config = config = resumed_config(saved, saved_data, config, data, given, out=out)
    print(f"resuming {out} at epoch {trainer.state.epoch + 1} (minibatch {trainer.state.batch})", file=sys.stderr)
    changed = stack_differences(meta.get("stack"), software_stack())
    if changed:
        print(f"npmlp train: note: resuming on another software stack ({'; '.join(changed)}): the run continues, "
              "but is not promised to match an uninterrupted one bit for bit.", file=sys.stderr)
    record = meta.get("data_record")
    if isinstance(record, Mapping) and isinstance(record.get("resolved"), str):
        saved_data = replace(saved_data, dataset=record["resolved"])  # not resolved again from a new directory
    return trainer, config, saved_data, record


def check_resumed_data(out: Path, dataset: Dataset, record: Any) -> None:
    """Refuse to resume on data other than the run's own (its fingerprint and split, as the checkpoint records)."""
    if not isinstance(record, Mapping) or "sha256" not in record:
        return  # a checkpoint written before fingerprints: nothing to compare
    now = dataset.identity
    split: Mapping[str, Any] = record["split"] if isinstance(record.get("split"), Mapping) else {}
    if now.get("sha256") != record["sha256"]:
        raise DataError(f"{dataset.source or dataset.name} has changed since the run in {out} started (its data "
                        "fingerprint differs): resuming on other data would mix two data sets in one history. "
                        "Restore the file, or train afresh with --overwrite.")
    if now.get("split", {}).get("rows_sha256") != split.get("rows_sha256"):
        raise DataError(f"cannot redraw the split of the run in {out} (the row indices differ: another NumPy "
                        "version?); resuming would train on other rows.")


def run(
    config: TrainConfig,
    data: DataSpec,
    *,
    out: Path | None,
    resume: bool = False,
    overwrite: bool = False,
    given: Collection[str] = (),
    runs_root: Path | None = None,
    progress: bool = False,
    pictures: bool = True,
    dataset: Dataset | None = None,
) -> tuple[TrainResult, Dataset, Path | None]:
    """Train as ``npmlp train`` does: load, train (or resume), checkpoint, write the outputs.

    ``out`` is the run directory (held locked for the whole run; see :func:`check_reuse`
    for what it may hold); with ``out=None`` and ``runs_root``, a new directory there
    (:func:`new_run_dir`); with neither, nothing is written. ``overwrite`` replaces the
    run in ``out`` once the new one has a model; ``given`` names the settings the user
    chose, checked against the checkpoint on ``resume``. ``dataset``, when given, is used
    instead of loading ``data`` (which is then only recorded).

    Returns the result, the data set it was trained on, and the directory the run is in
    (for an interrupted ``overwrite``, the staging directory that holds its checkpoint).
    """
    if resume and out is None:
        raise ValueError("--resume needs --out DIR: the directory of the interrupted run.")
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: choose one.")
    if out is not None and not resume:
        check_reuse(out, overwrite=overwrite)  # before locking: a refused directory gets no lock file
    with ExitStack() as held:
        if out is not None:
            held.enter_context(locked_directory(out))
        trainer: Trainer | None = None
        if resume and out is not None:
            trainer, config, data, record = _start_resume(out, config, data, given)
        config, dataset = _prepared_data(config, data, dataset, progress=progress)
        if out is None and runs_root is not None:
            out = new_run_dir(runs_root, data.dataset or dataset.name)
            held.enter_context(locked_directory(out))
        work = _work_directory(out, overwrite=overwrite, held=held) if trainer is None else out
        if trainer is None:
            trainer = Trainer.new(config, dataset.n_features, dataset.n_classes)
        elif out is not None:
            check_resumed_data(out, dataset, record)
        if trainer.net.sizes[0] != dataset.n_features:
            raise ValueError(f"the checkpoint in {out} expects {trainer.net.sizes[0]} features; "
                             f"{data.dataset} has {dataset.n_features}.")
        try:
            result = _train_into(work, trainer, config, data, dataset, progress=progress)
            if work is not None:
                work = _finish(work, result, dataset, config, data, pictures=pictures, held=held, holding=out)
        except BaseException:
            if work is not None and work != out and not resume:
                shutil.rmtree(work, ignore_errors=True)  # a staged run that failed: the old run stays as it was
            raise
    return result, dataset, work


def _prepared_data(config: TrainConfig, data: DataSpec, dataset: Dataset | None, *,
                   progress: bool) -> tuple[TrainConfig, Dataset]:
    """The data set, loaded unless given and standardised when asked; the settings fitted to it and its memory."""
    if dataset is None:
        dataset = data.load(seed=config.seed, dtype=config.dtype, progress=progress)
    if data.standardize:
        dataset = standardized(dataset)
    config = fit_batch_size(config, dataset)
    check_memory(config, dataset, max_memory=data.max_memory)
    return config, dataset


def _work_directory(out: Path | None, *, overwrite: bool, held: ExitStack) -> Path | None:
    """Where a new run writes: ``out`` itself, or a locked staging directory beside it that replaces it at the end."""
    if out is None:
        return None
    state = check_reuse(out, overwrite=overwrite)  # again, now that nobody else can change it
    if state == "stopped":
        remove_files(out, manifest_files(out))  # a run that left no model: nothing to keep
    if state in ("finished", "resumable"):
        work: Path = held.enter_context(locked_directory(staging_dir(out)))
        write_manifest(work, [], replaces=str(out))
        return work
    write_manifest(out, [])
    return out


def _train_into(work: Path | None, trainer: Trainer, config: TrainConfig, data: DataSpec, dataset: Dataset,
                *, progress: bool) -> TrainResult:
    record = data.record(dataset)
    save = (lambda t: write_checkpoint(work, t, config, data, record)) if work is not None else None
    with stop_on_signals(trainer):
        return train(dataset.splits(), config, trainer=trainer, progress=progress, on_epoch=save)


def _finish(work: Path, result: TrainResult, dataset: Dataset, config: TrainConfig, data: DataSpec,
            *, pictures: bool, held: ExitStack, holding: Path | None) -> Path:
    """Write what the run produced into ``work``; publish a staged run. Returns where the run now is."""
    if result.stopped_because == "interrupted":
        return work  # the checkpoint stays, to resume
    info = {"stopped_because": result.stopped_because}
    replaces = _replaces(work)
    written = publishable(result, replacing=replaces is not None)
    if written:
        files = write_outputs(work, result, dataset, config, data, pictures=pictures)
    else:  # no model: the history says what happened, nothing replaces a model that was there
        files = write_history(work, result.history)
    remove_checkpoint(work)
    write_manifest(work, files, **info)
    result.model_written = written  # what every summary of the run reports
    if replaces is None:
        return work
    if not written:
        shutil.rmtree(work, ignore_errors=True)
        return replaces
    if replaces != holding:  # a resumed staging directory: its target is not locked yet
        held.enter_context(locked_directory(replaces))
    publish(work, replaces)
    return replaces


def _replaces(work: Path) -> Path | None:
    """The run directory that the staged run in ``work`` replaces, if it is one."""
    with suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        target = json.loads((work / MANIFEST_FILE).read_text(encoding="utf-8")).get("replaces")
        return Path(target) if isinstance(target, str) else None
    return None


def standardized(dataset: Dataset) -> Dataset:
    """``dataset`` with every split scaled by the mean and standard deviation of its training split."""
    scaler = Standardizer.fit(dataset.X_train)
    return replace(dataset, X_train=scaler.transform(dataset.X_train), X_valid=scaler.transform(dataset.X_valid),
                   X_test=scaler.transform(dataset.X_test), standardizer=scaler)


def fit_batch_size(config: TrainConfig, dataset: Dataset) -> TrainConfig:
    """``config`` with a minibatch no larger than the training split: K = min(K, n_train), said on stderr."""
    n = dataset.X_train.shape[0]
    if config.batch_size <= n:
        return config
    print(f"npmlp: note: --batch-size {config.batch_size} is more than the {n} training rows; training with "
          f"K = {n} (full batch).", file=sys.stderr)
    return replace(config, batch_size=n)


def check_memory(config: TrainConfig, dataset: Dataset, *, max_memory: int | None) -> None:
    """Refuse a run whose network, workspace and buffers would not fit (see :mod:`npmlp.budget`)."""
    rows = [X.shape[0] for X, _ in dataset.splits().values()]
    parts = budget.training_bytes(rows=rows, d=dataset.n_features, hidden=config.hidden, m=dataset.n_classes,
                                  batch_size=config.batch_size, itemsize=dataset.X_train.dtype.itemsize,
                                  optimizer=config.optimizer, early_stopping=config.early_stopping is not None)
    sizes = ",".join(map(str, config.hidden))
    hint = (("pass --dtype float32, " if config.dtype == "float64" else "pass ")
            + f"a smaller --hidden (now {sizes}) or --batch-size (now {config.batch_size}), or raise --max-memory")
    shown = ", ".join(f"{k} {budget.format_size(v)}" for k, v in parts.items())
    budget.check(sum(parts.values()), f"training ({shown})", max_memory=max_memory, hint=hint)


def summary(result: TrainResult, dataset: Dataset, out: Path | None) -> dict[str, Any]:
    """The ``--json`` document of ``npmlp train``."""
    return {
        "dataset": dataset.name,
        "epochs_run": result.epochs_run,
        "stopped_because": result.stopped_because,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "final": result.final(),
        "no_progress": result.no_progress,
        "model_written": result.model_written,
        "majority_error": result.majority_error,
        "message": result.message or None,
        "out": str(out) if out is not None else None,
    }


def write_outputs(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig, data: DataSpec,
                  *, pictures: bool = True) -> list[str]:
    """Model, history, report and (when matplotlib is installed) pictures into ``out``; returns their names."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, result.net, training={**config.to_dict(), **asdict(data)},
               extra={**model_extra(dataset, data), "stack": software_stack()})
    files = [MODEL_FILE, "config.json", *write_history(out, result.history)]
    if pictures and result.history:
        from .report import run_report

        files += [p.relative_to(out).as_posix() for p in run_report(out, result, dataset, config)]
    return files


def write_history(out: Path, history: list[dict[str, Any]]) -> list[str]:
    """``history.json`` and ``history.csv`` into ``out``; returns their names."""
    atomic_write_json(out / "history.json", history)
    atomic_write_text(out / "history.csv", history_csv(history))
    return ["history.json", "history.csv"]


def model_extra(dataset: Dataset, data: DataSpec) -> dict[str, Any]:
    """What a model stores beside its network: the data's record, the user's classes, feature names and
    preprocessing (see :mod:`npmlp.preprocess`); never rows of the data."""
    extra: dict[str, Any] = {"data": data.record(dataset)}
    if dataset.labels is not None:
        extra["classes"] = dataset.labels.to_json()
    if dataset.feature_names is not None:
        extra["feature_names"] = dataset.feature_names
    if dataset.standardizer is not None:
        extra["preprocessing"] = {"standardize": dataset.standardizer.to_json()}
    return extra


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
    if dataset is None and record.get("test_resolved"):
        spec["test_dataset"] = record["test_resolved"]
    elif dataset is not None:
        spec.pop("test_dataset", None)  # the run's test file goes with the run's data
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
