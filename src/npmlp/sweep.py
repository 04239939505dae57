"""Hyperparameter sweeps: a TOML file in; ranked trials, a plot and the best ``npmlp train`` out.

A sweep file declares the data set, the base settings of every trial, what varies and the
budget (every key but ``grid`` and ``random`` is optional except ``dataset``)::

    dataset = "circles"          # and the data options: data_dir, n_samples, noise
    epochs = 40                  # base settings: any flag of `npmlp train`, dashes as
    optimizer = "adam"           # underscores (hidden, lr, lr_schedule, batch_size, seed...)
    metric = "valid_error"       # minimised: valid_error (default), valid_loss,
                                 # train_error or train_loss; never a test metric
    max_trials = 12              # budget: trials in the plan (default: all of them)
    max_seconds = 600            # budget: no trial starts after this many seconds
    max_trial_seconds = 300      # budget: a trial stops before an epoch that would cross it
    blas_threads = 1             # BLAS threads per trial (default 1 when trials run in parallel)

    [grid]                       # every combination of these lists
    hidden = [[4], [16]]
    activation = ["rect", "tanh"]

    [random]                     # n_trials draws, each paired with every grid point
    n_trials = 3
    seed = 0
    lr = {log_uniform = [1e-3, 1e-1]}    # also uniform, int_uniform (inclusive), choice
    batch_size = {choice = [16, 64]}     # (a bare list is a choice too)

The plan is the grid's points times the random draws (drawn values rounded to 4
significant digits, duplicates dropped); when it holds more than ``max_trials`` trials, a
seeded random subset of ``max_trials`` is kept.

Selection never looks at the test split: the test error of every trial is recorded and
shown, but choosing a model by its test error would make that error an optimistic,
leaked estimate of the error on new data. Ties on the metric are broken by the matching
loss (error) or error (loss), then by trial id.

Each trial is trained exactly as ``npmlp train`` trains (same data loading, same
:func:`~npmlp.training.train`), in a local process pool (joblib's loky backend, ``jobs``
workers) or on a Dask cluster (joblib's ``dask`` backend, one code path for both). Each
finished trial is appended as one JSON line to ``OUT/trials.jsonl``; a trial's identity is
a hash of its full settings and data options, so a restarted sweep skips every trial
already recorded there, failed ones included (delete a line to run its trial again).
At the end ``OUT/results.md`` holds the ranked table and the best ``npmlp train`` command,
and ``OUT/sweep.png`` the metric against each varied setting.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shlex
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .atomicfile import atomic_write_text, locked_directory
from .plots import Panel
from .runs import DataSpec
from .settings import applies, declared
from .training import SPLITS, TrainConfig, Trainer, train

INSTALL_HINT = "sweeps need joblib: pip install 'npmlp[sweep]'"
DASK_HINT = "--scheduler needs dask.distributed: pip install 'npmlp[dask]'"
#: The sweep files that ship with npmlp (``npmlp sweep --example NAME``), in ``npmlp/sweeps/``.
EXAMPLES = ("circles", "fashion")

SETTINGS = declared(TrainConfig)
TRAIN_DEFAULTS: dict[str, Any] = {name: default for name, (_, default) in SETTINGS.items()}
DATA_DEFAULTS: dict[str, Any] = {name: default for name, (_, default) in declared(DataSpec).items()}
#: Plans up to this many trials are listed whole; larger ones are sampled (``max_trials``) or refused.
PLAN_LIMIT = 100_000
SWEEP_KEYS = ("metric", "max_trials", "max_seconds", "max_trial_seconds", "blas_threads", "grid", "random")
#: Metrics a sweep may minimise, each with its tie-breaker. No test metric, on purpose.
METRICS = {"valid_error": "valid_loss", "valid_loss": "valid_error",
           "train_error": "train_loss", "train_loss": "train_error"}
#: Settings best seen on a log axis (with those drawn from log_uniform), when no value is negative.
LOG_SCALE = frozenset(name for name, (decl, _) in SETTINGS.items() if decl.log_scale)
SIGNIFICANT_DIGITS = 4


# -- distributions of [random]: name -> (check, draw) -----------------------------------
def _check_range(name: str, key: str, args: Any, *, positive: bool = False, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = (isinstance(args, list) and len(args) == 2
          and all(isinstance(a, kind) and not isinstance(a, bool) for a in args)
          and args[0] <= args[1] and (not positive or args[0] > 0))
    if not ok:
        need = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"[random] {key} = {{{name} = ...}} needs [low, high] {'integers' if integer else 'numbers'} "
                         f"with {need}. Got {args!r} instead.")


def _check_choice(name: str, key: str, args: Any) -> None:
    if not isinstance(args, list) or not args:
        raise ValueError(f"[random] {key} = {{choice = ...}} needs a non-empty list of values. Got {args!r} instead.")


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


DISTRIBUTIONS: dict[str, tuple[Callable[[str, str, Any], None], Callable[[Any, np.random.Generator], Any]]] = {
    "choice": (_check_choice, lambda a, rng: a[int(rng.integers(len(a)))]),
    "int_uniform": (lambda n, k, a: _check_range(n, k, a, integer=True),
                    lambda a, rng: int(rng.integers(a[0], a[1] + 1))),
    "log_uniform": (lambda n, k, a: _check_range(n, k, a, positive=True),
                    lambda a, rng: _round(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))))),
    "uniform": (_check_range, lambda a, rng: _round(rng.uniform(a[0], a[1]))),
}


# -- the sweep file --------------------------------------------------------------------
@dataclass
class SweepSpec:
    """A parsed, checked sweep file (see the module docstring)."""

    data: dict[str, Any]
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_random: int = 1
    random_seed: int = 0
    metric: str = "valid_error"
    max_trials: int | None = None
    max_seconds: float | None = None
    max_trial_seconds: float | None = None
    blas_threads: int | None = None


def example_path(name: str) -> Path:
    """The sweep file ``name`` (one of :data:`EXAMPLES`) shipped inside the package."""
    if name not in EXAMPLES:
        raise ValueError(f"--example must be one of {', '.join(EXAMPLES)}. Got {name!r} instead.")
    return Path(__file__).with_name("sweeps") / f"{name}.toml"


def default_out(config: str | os.PathLike[str]) -> Path:
    """``runs/sweep-NAME`` for a sweep file ``NAME.toml`` or ``sweep-NAME.toml`` (no ``sweep-sweep-``)."""
    stem = Path(config).stem
    return Path("runs") / f"sweep-{stem.removeprefix('sweep-')}"


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw contents of a sweep TOML file (tomllib on Python 3.11+, tomli before)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the Python version
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise ImportError("reading TOML on Python 3.10 needs tomli: pip install 'npmlp[sweep]'") from exc
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
            return doc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}.") from exc


def _canonical(key: str, value: Any) -> Any:
    """One spelling per value, so equal settings hash equally: ``hidden = 16`` is ``[16]``, ``l2 = 0`` is ``0.0``."""
    default = TRAIN_DEFAULTS.get(key, DATA_DEFAULTS.get(key))
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(default, float):
        return [_as_float(v) for v in value] if isinstance(value, list) else _as_float(value)
    if isinstance(default, tuple) and isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def _as_float(v: Any) -> Any:
    """An int as the float it stands for (``0`` is ``0.0``); anything else as it is."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _setting_key(key: str, where: str) -> str:
    name = key.replace("-", "_")
    if name not in TRAIN_DEFAULTS:
        raise ValueError(f"{where}: unknown setting {key!r}. Valid settings: {', '.join(sorted(TRAIN_DEFAULTS))}.")
    return name


def _checked(name: str, value: Any, where: str) -> Any:
    """``value`` if setting ``name`` accepts it (its declared rule), else ``ValueError`` naming where it came from."""
    try:
        SETTINGS[name][0].rule.check(name, value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return value


def _positive(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value: Any = doc.get(key)
    if value is None:
        return None
    of_kind = isinstance(value, kind) and not isinstance(value, bool)
    if not of_kind or value <= 0:
        raise ValueError(f"{key} must be {what} > 0. Got {value!r} instead.")
    return value


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> SweepSpec:
    """Parse and check a sweep file (a path, or its contents as a dict)."""
    raw = source if isinstance(source, Mapping) else read_config(source)
    doc = {k.replace("-", "_"): v for k, v in raw.items()}  # batch-size, as on the command line, is batch_size
    if not isinstance(doc.get("dataset"), str):
        raise ValueError(f"a sweep needs dataset = \"circles\" (or mnist, fashion-mnist, a path). "
                         f"Got {doc.get('dataset')!r}.")
    data = {"dataset": doc["dataset"], **{k: _canonical(k, doc.get(k, v)) for k, v in DATA_DEFAULTS.items()}}
    base = {name: _checked(name, _canonical(name, v), "sweep file") for k, v in doc.items()
            if k not in SWEEP_KEYS and k not in data for name in [_setting_key(k, "sweep file")]}
    metric = doc.get("metric", "valid_error")
    if metric not in METRICS:
        why = " The test split is never used for selection." if str(metric).startswith("test") else ""
        raise ValueError(f"metric must be one of {', '.join(METRICS)}. Got {metric!r} instead.{why}")
    spec = SweepSpec(data=data, base=base, metric=metric,
                     max_trials=_positive(doc, "max_trials", int, "a whole number"),
                     max_seconds=_positive(doc, "max_seconds", (int, float), "a number"),
                     max_trial_seconds=_positive(doc, "max_trial_seconds", (int, float), "a number"),
                     blas_threads=_positive(doc, "blas_threads", int, "a whole number"))
    spec.grid = _parse_grid(doc.get("grid", {}))
    spec.random, spec.n_random, spec.random_seed = _parse_random(doc.get("random", {}))
    both = set(spec.grid) & set(spec.random)
    if both:
        raise ValueError(f"{', '.join(sorted(both))} cannot be in both [grid] and [random].")
    return spec


def _parse_grid(table: Any) -> dict[str, list[Any]]:
    if not isinstance(table, Mapping):
        raise ValueError(f"[grid] must be a table of lists. Got {table!r} instead.")
    grid = {}
    for key, values in table.items():
        name = _setting_key(key, "[grid]")
        if not isinstance(values, list) or not values:
            raise ValueError(f"[grid] {key} must be a non-empty list of values. Got {values!r} instead.")
        grid[name] = [_checked(name, _canonical(name, v), "[grid]") for v in values]
    return grid


def _parse_random(table: Any) -> tuple[dict[str, dict[str, Any]], int, int]:
    if not isinstance(table, Mapping):
        raise ValueError(f"[random] must be a table. Got {table!r} instead.")
    table = dict(table)
    n, seed = table.pop("n_trials", 1 if not table else None), table.pop("seed", 0)
    if table and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"[random] needs n_trials, a whole number >= 1. Got {n!r} instead.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"[random] seed must be a whole number >= 0. Got {seed!r} instead.")
    dists = {}
    for key, dist in table.items():
        name = _setting_key(key, "[random]")
        dist = {"choice": dist} if isinstance(dist, list) else dist
        if not isinstance(dist, Mapping) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise ValueError(f"[random] {key} must be one of {{{' | '.join(DISTRIBUTIONS)} = [...]}}. "
                             f"Got {dist!r} instead.")
        (kind, args), = dist.items()
        DISTRIBUTIONS[kind][0](kind, key, args)
        dists[name] = {kind: args}
    return dists, n or 1, seed


# -- the plan --------------------------------------------------------------------------
def trial_id(config: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """A stable 12-hex-digit hash of a trial's full settings and data options."""
    text = json.dumps({"config": config, "data": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _draws(spec: SweepSpec) -> list[dict[str, Any]]:
    rng = np.random.default_rng(spec.random_seed)
    draws = []
    for _ in range(spec.n_random):
        draw = {}
        for key in sorted(spec.random):
            (kind, args), = spec.random[key].items()
            draw[key] = _canonical(key, DISTRIBUTIONS[kind][1](args, rng))
        draws.append(draw)
    return draws


def _trial(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    config = {k: _canonical(k, v) for k, v in {**TRAIN_DEFAULTS, **spec.base, **params}.items()}
    return {"trial": trial_id(config, spec.data), "params": params, "config": config, "data": dict(spec.data)}


def plan_size(spec: SweepSpec) -> int:
    """Trials in the full plan before duplicates are dropped: grid points times draws (never listed)."""
    return math.prod(len(v) for v in spec.grid.values()) * spec.n_random


def _sampled_plan(spec: SweepSpec, total: int, k: int) -> list[dict[str, Any]]:
    """``k`` distinct trials drawn from a plan of ``total`` without listing it.

    Trial ``i`` is grid point ``i // n_random`` (its digits in the grid's mixed radix) with
    draw ``i % n_random``, drawn from its own generator seeded by (seed, 2, draw index).
    """
    rng, plan, tries = np.random.default_rng([spec.random_seed, 1]), dict[str, dict[str, Any]](), 0
    while len(plan) < k and tries < 10:
        tries += 1
        for i in sorted(int(j) for j in rng.choice(total, k, replace=False)):
            g, r = divmod(i, spec.n_random)
            point = {}
            for key in reversed(list(spec.grid)):
                g, digit = divmod(g, len(spec.grid[key]))
                point[key] = spec.grid[key][digit]
            draw_rng = np.random.default_rng([spec.random_seed, 2, r])
            draw = {key: _canonical(key, DISTRIBUTIONS[kind][1](args, draw_rng))
                    for key in sorted(spec.random) for kind, args in spec.random[key].items()}
            trial = _trial(spec, {**{key: point[key] for key in spec.grid}, **draw})
            if len(plan) < k:
                plan.setdefault(trial["trial"], trial)
    return list(plan.values())


def plan_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """The trials of a sweep, in a stable order: ``{"trial", "params", "config", "data"}`` each.

    ``params`` holds the settings that the grid and the draws set, ``config`` every
    setting of :class:`~npmlp.training.TrainConfig`. A plan of more than
    :data:`PLAN_LIMIT` trials is never listed: with ``max_trials`` that many are sampled
    from it (see :func:`_sampled_plan`), without it the sweep is refused.
    """
    total = plan_size(spec)
    if total > PLAN_LIMIT:
        if spec.max_trials is None or spec.max_trials > PLAN_LIMIT:
            raise ValueError(f"the sweep plans {total:,} trials ({total // spec.n_random:,} grid points x n_trials "
                             f"{spec.n_random:,}), more than {PLAN_LIMIT:,}: set max_trials (at most {PLAN_LIMIT:,}), "
                             "or use fewer values in [grid] or a smaller n_trials in [random].")
        return _sampled_plan(spec, total, spec.max_trials)
    plan: dict[str, dict[str, Any]] = {}
    points = [dict(zip(spec.grid, values, strict=True)) for values in itertools.product(*spec.grid.values())]
    for point, draw in itertools.product(points, _draws(spec)):
        trial = _trial(spec, {**point, **draw})
        plan.setdefault(trial["trial"], trial)
    trials = list(plan.values())
    if spec.max_trials is not None and len(trials) > spec.max_trials:
        keep = np.random.default_rng([spec.random_seed, 1]).choice(len(trials), spec.max_trials, replace=False)
        trials = [trials[i] for i in sorted(keep)]
    return trials


def varied_settings(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The settings that take more than one value across ``trials``, in the plan's order."""
    names = list(dict.fromkeys(k for t in trials for k in t["params"]))
    return [k for k in names if len({json.dumps(t["params"].get(k)) for t in trials}) > 1]


# -- one trial (runs in a worker) ------------------------------------------------------
@contextmanager
def _blas_threads(n: int | None) -> Iterator[None]:
    """At most ``n`` BLAS threads inside the block (no limit for None or without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        n = None
    if n is None:
        yield
        return
    with threadpool_limits(limits=n):
        yield


def _time_budget(seconds: float | None) -> Callable[[Trainer], None] | None:
    """An ``on_epoch`` callback that ends training before an epoch that would end past ``seconds``.

    The first epoch always runs; the next one runs when the mean epoch so far still fits.
    """
    if seconds is None:
        return None
    start = time.perf_counter()

    def check(trainer: Trainer) -> None:
        elapsed, done = time.perf_counter() - start, trainer.state.epoch
        if trainer.state.batch == 0 and done and elapsed + elapsed / done > seconds:
            trainer.stop_after_epoch = "time_budget"

    return check


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _train_trial(trial: Mapping[str, Any], max_seconds: float | None, prefetch: bool | None = None) -> dict[str, Any]:
    """Load the data and train as ``npmlp train`` does (without writing files); the outcome."""
    config = TrainConfig.from_dict(trial["config"])
    dataset = DataSpec(**trial["data"]).load(seed=config.seed, dtype=config.dtype)
    result = train(dataset.splits(), config, on_epoch=_time_budget(max_seconds), prefetch=prefetch)
    if not result.history:  # diverged in the first epoch: nothing to rank
        raise ArithmeticError(result.message or f"training stopped ({result.stopped_because}) before one epoch ended")
    row = result.kept_row()
    return {
        "metrics": {f"{s}_{k}": _finite(row.get(f"{s}_{k}")) for s in SPLITS for k in ("loss", "error")},
        "final": {k: _finite(v) for k, v in result.final().items()},
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_because": result.stopped_because,
        "no_progress": result.no_progress,
        "message": result.message,
    }


def run_trial(trial: Mapping[str, Any], *, deadline: float | None = None, blas_threads: int | None = 1,
              max_seconds: float | None = None, prefetch: bool | None = None) -> dict[str, Any]:
    """Run one trial and return its record; an exception becomes a ``failed`` record.

    ``deadline`` (``time.time()`` seconds) passed: returns ``{"status": "not_run"}`` unrun.
    ``prefetch`` is :attr:`npmlp.training.Trainer.prefetch` (None: decided by the data).
    """
    if deadline is not None and time.time() > deadline:
        return {"trial": trial["trial"], "status": "not_run"}
    record: dict[str, Any] = {k: trial[k] for k in ("trial", "params", "config", "data")}
    tic = time.perf_counter()
    try:
        with _blas_threads(blas_threads):
            record.update(_train_trial(trial, max_seconds, prefetch), status="ok", error=None)
    except Exception as exc:  # a failing trial is a result to record, not the end of the sweep
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])
    record.update(seconds=round(time.perf_counter() - tic, 3), host=socket.gethostname(),
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return record


# -- trials.jsonl ----------------------------------------------------------------------
def read_trials(path: Path) -> dict[str, dict[str, Any]]:
    """Recorded trials by id; a torn last line (a killed sweep) is ignored."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (isinstance(record, dict) and record.get("status") in ("ok", "failed")
                and isinstance(record.get("trial"), str)):
            records[record["trial"]] = record
    return records


def append_record(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` and flush it to disk."""
    line = json.dumps(record, allow_nan=False, default=str) + "\n"
    with path.open("ab") as f:
        if f.tell() > 0:
            with path.open("rb") as r:  # a torn last line must not swallow this one
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


# -- running ---------------------------------------------------------------------------
def _joblib() -> Any:
    try:
        import joblib
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return joblib


@contextmanager
def _backend(jobs: int, scheduler: str | None) -> Iterator[Any]:
    """joblib's ``Parallel`` on local processes (loky) or, given an address, on a Dask cluster."""
    joblib = _joblib()
    with ExitStack() as stack:
        if scheduler is None:
            stack.enter_context(joblib.parallel_config(backend="loky", n_jobs=jobs))
        else:
            try:
                from dask.distributed import Client
            except ImportError as exc:
                raise ImportError(DASK_HINT) from exc
            stack.enter_context(Client(scheduler))  # type: ignore[no-untyped-call]  # dask's Client is unannotated
            stack.enter_context(joblib.parallel_config(backend="dask", n_jobs=-1))
        # One task per trial, results in the order they finish.
        yield joblib.Parallel(batch_size=1, return_as="generator_unordered")


def _execute(todo: Sequence[Mapping[str, Any]], spec: SweepSpec, *, jobs: int, scheduler: str | None,
             start: float) -> Iterator[dict[str, Any]]:
    """Run ``todo``; yield each record as its trial finishes."""
    if not todo:
        return
    parallel = jobs != 1 or scheduler is not None
    threads = spec.blas_threads if spec.blas_threads is not None else (1 if parallel else None)
    # NOTE: trials running side by side share the cores: a gathering thread per trial then
    # only competes with the other trials (seed network, 2 trials on 2 cores: 0.151 s per
    # epoch with it, 0.119 s without).
    prefetch = False if parallel else None
    deadline = start + spec.max_seconds if spec.max_seconds else None
    delayed = _joblib().delayed
    tasks = (delayed(run_trial)(t, deadline=deadline, blas_threads=threads, max_seconds=spec.max_trial_seconds,
                                prefetch=prefetch)
             for t in todo)
    with _backend(jobs, scheduler) as run_all:
        yield from run_all(tasks)


@dataclass
class SweepResult:
    """What a sweep found; ``records`` are this sweep's recorded trials in plan order."""

    out: Path
    metric: str
    varied: list[str]
    records: list[dict[str, Any]]
    n_planned: int
    n_resumed: int
    n_run: int
    n_not_run: int
    seconds: float
    log_axes: frozenset[str] = LOG_SCALE
    plot: Path | None = None

    @property
    def ranked(self) -> list[dict[str, Any]]:
        """Trials that finished with a metric, best first."""
        return rank(self.records, self.metric)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok" or r["metrics"].get(self.metric) is None]

    @property
    def best(self) -> dict[str, Any] | None:
        ranked = self.ranked
        return ranked[0] if ranked else None

    @property
    def command(self) -> str | None:
        """The best trial as a ready-to-run ``npmlp train`` command line."""
        best = self.best
        return train_command(best["config"], best["data"], out=self.out / "best") if best else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (the ``--json`` document of ``npmlp sweep``)."""
        return {
            "out": str(self.out), "metric": self.metric, "varied": self.varied, "planned": self.n_planned,
            "resumed": self.n_resumed, "run": self.n_run, "not_run": self.n_not_run, "seconds": self.seconds,
            "best": self.best, "command": self.command, "ranking": [r["trial"] for r in self.ranked],
            "failed": [{"trial": r["trial"], "error": r.get("error")} for r in self.failed],
            "plot": str(self.plot) if self.plot else None, "trials": self.records,
        }


def run_sweep(source: str | os.PathLike[str] | Mapping[str, Any], *, out: str | os.PathLike[str], jobs: int = 1,
              scheduler: str | None = None, progress: bool = False) -> SweepResult:
    """Run the trials of a sweep file not yet in ``out/trials.jsonl``; rank, tabulate and plot them all.

    Parameters
    ----------
    source : path of a TOML file, or its contents as a dict
    out : directory of ``trials.jsonl``, ``results.md`` and ``sweep.png`` (created)
    jobs : int
        Local worker processes (joblib's convention: -1 is one per core; 1 runs in this process).
    scheduler : str, optional
        A Dask scheduler address (``tcp://HOST:PORT``): run the trials on every worker of
        that cluster instead (``jobs`` is then ignored). Each worker needs npmlp and the data.
    progress : bool
        One line per finished trial on stderr.

    Raises
    ------
    RunDirectoryError
        When another sweep holds ``out`` (its lock, for the whole sweep).
    """
    spec, out = load_spec(source), Path(out)
    with locked_directory(out, what="sweep"):  # two sweeps never append to one trials.jsonl
        return _run_locked(spec, out, jobs=jobs, scheduler=scheduler, progress=progress)


def _run_locked(spec: SweepSpec, out: Path, *, jobs: int, scheduler: str | None, progress: bool) -> SweepResult:
    start = time.time()
    log, plan = out / "trials.jsonl", plan_trials(spec)
    done = read_trials(log)
    todo = [t for t in plan if t["trial"] not in done]
    n_resumed, n_run, n_not_run = len(plan) - len(todo), 0, 0
    for record in _execute(todo, spec, jobs=jobs, scheduler=scheduler, start=start):
        if record["status"] == "not_run":
            n_not_run += 1
            continue
        append_record(log, record)
        done[record["trial"]] = record
        n_run += 1
        if progress:
            print(f"[{n_resumed + n_run}/{len(plan)}] {_trial_line(record, spec.metric)}", file=sys.stderr)
    records = [done[t["trial"]] for t in plan if t["trial"] in done]
    log_axes = LOG_SCALE | {k for k, dist in spec.random.items() if "log_uniform" in dist}
    result = SweepResult(out, spec.metric, varied_settings(plan), records, len(plan), n_resumed, n_run,
                         n_not_run, round(time.time() - start, 3), log_axes)
    result.plot = _try_plot(result)
    atomic_write_text(out / "results.md", results_markdown(result))
    return result


# -- ranking and reporting -------------------------------------------------------------
def rank(records: Iterable[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Trials with a ``metric`` value, best (lowest) first; ties broken by the matching loss or error, then id."""
    tie = METRICS[metric]
    ok = [dict(r) for r in records if r["status"] == "ok" and r["metrics"].get(metric) is not None]

    def key(r: Mapping[str, Any]) -> tuple[float, float, str]:
        m = r["metrics"]
        return m[metric], m[tie] if m.get(tie) is not None else math.inf, r["trial"]

    return sorted(ok, key=key)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _trial_line(record: Mapping[str, Any], metric: str) -> str:
    params = " ".join(f"{k}={_show(v)}" for k, v in record["params"].items())
    if record["status"] != "ok":
        return f"{record['trial']} failed ({record['seconds']:.1f}s) {params}: {record.get('error')}"
    value = record["metrics"].get(metric)
    shown = f"{value:.4f}" if value is not None else "n/a"
    return f"{record['trial']} ok {metric} {shown} ({record['seconds']:.1f}s) {params}"


def train_command(config: Mapping[str, Any], data: Mapping[str, Any], *, out: Path | None = None) -> str:
    """An ``npmlp train`` command line that reruns ``config`` on ``data``."""
    words = ["npmlp", "train", "--dataset", str(data["dataset"])]
    if data.get("data_dir"):
        words += ["--data-dir", str(data["data_dir"])]
    if data["dataset"] == "circles":
        words += ["--n-samples", str(data["n_samples"]), "--noise", _show(data["noise"])]
    for key, value in config.items():
        if key not in SETTINGS or applies(key, SETTINGS[key][0], config):
            words += ["--" + key.replace("_", "-"), _show(value)]
    if out is not None:
        words += ["--out", str(out)]
    return shlex.join(words)


def _table(result: SweepResult, *, markdown: bool) -> list[str]:
    metric = result.metric
    extra = [m for m in ("valid_error", "test_error") if m != metric]
    head = ["rank", "trial", metric, *extra, "epochs", "stopped", "seconds", *result.varied]
    rows = []
    for i, r in enumerate(result.ranked, start=1):
        values = [r["metrics"][metric], *(r["metrics"].get(m) for m in extra)]
        rows.append([str(i), r["trial"], *(f"{v:.4f}" if v is not None else "-" for v in values), str(r["epochs_run"]),
                     r["stopped_because"], f"{r['seconds']:.1f}",
                     *(_show(r["params"].get(k, r["config"].get(k))) for k in result.varied)])
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return ["  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)) for line in [head, *rows]]


def _summary_lines(result: SweepResult) -> list[str]:
    lines = [f"{len(result.records)} of {result.n_planned} trials recorded ({result.n_resumed} from an earlier run, "
             f"{result.n_run} run now, {len(result.failed)} failed"
             + (f", {result.n_not_run} left unrun by max_seconds" if result.n_not_run else "") + ")."]
    lines.append(f"Ranked by {result.metric} (lower is better). The test error is shown, never used to choose.")
    return lines


def format_results(result: SweepResult) -> str:
    """The ranked table, the failures and the best ``npmlp train`` command, as text."""
    lines = _summary_lines(result) + [""] + _table(result, markdown=False)
    for r in result.failed:
        lines.append(f"failed: {_trial_line(r, result.metric)}")
    if result.command:
        lines += ["", "best:", "  " + result.command]
    if result.plot:
        lines.append(f"plot: {result.plot}")
    return "\n".join(lines)


def results_markdown(result: SweepResult) -> str:
    """``results.md``: the summary, the ranked table, the failures and the best command."""
    lines = ["# Sweep results", "", *_summary_lines(result), "", *_table(result, markdown=True)]
    if result.failed:
        lines += ["", "## Failed trials", ""] + [f"- `{r['trial']}` {_show(r['params'])}: {r.get('error')}"
                                                 for r in result.failed]
    if result.command:
        lines += ["", "## Best configuration", "", "```sh", result.command, "```"]
    if result.plot:
        lines += ["", f"![{result.metric} against each varied setting]({result.plot.name})"]
    return "\n".join(lines) + "\n"


# -- the plot's data (plots.sweep_figure draws it) -------------------------------------
def sweep_panels(result: SweepResult) -> list[Panel]:
    """The data of ``sweep.png``, one :class:`~npmlp.plots.Panel` per varied setting; nothing is drawn."""
    ranked, panels = result.ranked, []
    for name in result.varied:
        values = [r["config"].get(name) for r in ranked]
        y = [r["metrics"][result.metric] for r in ranked]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric:
            scale = "linear"
            if name in result.log_axes and values and min(values) >= 0:
                scale = "log" if min(values) > 0 else "symlog"
            panels.append(Panel(name, [float(v) for v in values], y, scale, best=0 if ranked else None))
        else:
            labels = sorted({_show(v) for v in values}, key=lambda s: (len(s), s))
            x = [float(labels.index(_show(v))) for v in values]
            panels.append(Panel(name, x, y, "linear", labels, best=0 if ranked else None))
    return panels


def _try_plot(result: SweepResult) -> Path | None:
    """Write ``sweep.png``; None when matplotlib is missing or no trial has a metric."""
    if not result.ranked or not plots.available():
        return None
    return plots.save_figure(plots.sweep_figure(sweep_panels(result), result.metric), result.out / "sweep.png")
