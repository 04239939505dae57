"""Seconds per training epoch: npmlp's matrix and loop versions, the GEMM-only limit, and peers.

One epoch is one shuffled pass over the training rows in minibatches of ``K``. Timed,
for each configuration (hidden sizes, dtype):

- ``npmlp-matrix``: :meth:`npmlp.training.Trainer.run_epoch`, the training hot path
  (gather the minibatch, forward, matrix backprop, penalty gradient, SGD step).
- ``npmlp-loop``: the same with ``backprop="loop"`` (one example at a time). Too slow
  for whole epochs: it trains ``loop_batches`` minibatches and the time is scaled to
  an epoch (``rows / timed_rows``).
- ``gemm-only``: the limit. Only the ``3L - 1`` matrix products of forward and
  backprop per minibatch (five for one hidden layer: ``X W1^T``, ``H W2^T``,
  ``dOa^T H``, ``dOa W2``, ``dHa^T X``) into preallocated outputs, each minibatch a
  contiguous slice of the data so the inputs stream from memory as in training. No
  gather, no softmax, no activation, no update: no training loop can beat it.
- ``sklearn`` (``peers=True``): ``MLPClassifier(solver="sgd", momentum=0)``, one
  ``partial_fit`` epoch. Its L2 term is ``alpha/(2K) * sum W**2`` per minibatch, so our
  ``l2 * sum W**2`` (gradient ``2 l2 W``) is ``alpha = 2 * l2 * K``; it has no L1 term.
  Its epoch also validates ``X`` (a finite check over the whole array), one-hot
  encodes ``y``, allocates each minibatch by fancy indexing, computes the loss and the
  squared weight norm of every minibatch, and allocates new gradient and update arrays.
- ``torch`` (``peers=True``): written as PyTorch's users write it: ``nn.Linear``/``nn.ReLU``
  layers, ``F.cross_entropy``, ``torch.optim.SGD`` (or ``Adam``) with L2 as
  ``weight_decay = 2 * l2`` on the weights, and the L1 gradient ``l1 * sign(W)`` added to
  ``W.grad`` in place (as the NumPy codes add it) only when ``l1 > 0``: no penalty terms in
  the autograd graph (those roughly doubled its epoch on B, where both are 0). The data a
  tensor sharing the array's memory, minibatches gathered by index from a ``randperm``,
  no DataLoader; ``torch.set_num_threads`` set to the BLAS thread count.

The implementations run interleaved (A B C A B C ...) for ``repeats`` rounds after a
warm-up round, so a change in machine load hits them all alike; each is reported by
its median, min and max, and by the ratio of its median to npmlp-matrix's. BLAS
threads are pinned for the whole run (``threads``); the NumPy/BLAS versions, BLAS
kernel, thread counts and machine load are recorded. Peak memory of npmlp training is
measured in a fresh subprocess so the peers' allocations cannot pollute it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bench_format import format_bench
from .bench_impls import (
    BASE,
    IMPLS,
    PEER_HINTS,
    Epoch,
    Problem,
    build_epochs,
    gemm_arrays,
    gemm_epoch,
    implementation_notes,
    implementations,
    npmlp_epoch,
    training_data,
)
from .bench_machine import busy_warnings, cpu_busy, machine_info, own_cpu, pinned_threads, record_after
from .bench_memory import measure_memory, memory_warnings
from .dtypes import resolve_dtype

__all__ = ["BASE", "IMPLS", "PRESETS", "BenchOptions", "Epoch", "Problem", "bench_config", "format_bench",
           "gemm_arrays", "gemm_epoch", "interleave", "npmlp_epoch", "pinned_threads", "run_bench", "summarize",
           "training_data"]

#: The issues' configurations: the assignment's network (with its elastic net), a wide one in
#: float32 (no penalty; "B+pen" adds the assignment's, to show its cost; "B+adam" trains it
#: with Adam), and the tuned recipe's network and settings (issue 19), Adam with a little L2.
#: A key a preset leaves out takes the run's setting (``BenchOptions``: K, lr, optimizer).
PRESETS: dict[str, dict[str, Any]] = {
    "A": {"hidden": (10,), "dtype": "float64", "l1": 1e-3, "l2": 1e-3},
    "B": {"hidden": (512,), "dtype": "float32", "l1": 0.0, "l2": 0.0},
    "B+pen": {"hidden": (512,), "dtype": "float32", "l1": 1e-3, "l2": 1e-3},
    "B+adam": {"hidden": (512,), "dtype": "float32", "l1": 0.0, "l2": 0.0, "optimizer": "adam", "lr": 1e-3},
    "tuned": {"hidden": (1024,), "dtype": "float32", "l1": 0.0, "l2": 1e-5, "optimizer": "adam", "lr": 1e-3,
              "batch_size": 128},
}
#: GEMM-only and npmlp-matrix do the same work every round: an interquartile range above
#: this fraction of the median means the machine itself changed speed during the run (a
#: virtual machine's host can, unseen by the load average); their ratio is then unreliable.
UNSTEADY_IQR = 0.10
#: A round is steady when GEMM-only's epoch is within the first fraction of its fastest and
#: npmlp's within the second: this project's machine has slow phases that double npmlp's
#: epoch (its memory-bound passes and thread hand-overs) while GEMM-only's moves by 0-50%.
STEADY = (0.10, 0.20)
#: The peers whose per-round ratio to npmlp the steady rounds report, by their short names.
STEADY_PEERS = {"gemm-only": "gemm", "torch": "torch", "sklearn": "sklearn"}

#: Seconds of idleness before each timed epoch. Worker threads of the implementation that
#: ran before (PyTorch's in particular) keep cores busy for a while after it returns: the
#: seed network's epoch, right after a PyTorch epoch, took 0.178, 0.141, 0.113, 0.087 s in a
#: row, and 0.077-0.080 s after 2 s of rest. Nothing of the pause is timed.
SETTLE = 0.5


def interleave(epochs: dict[str, Epoch], repeats: int, *, log: Callable[[str], None] | None = None,
               settle: float = SETTLE) -> tuple[dict[str, float], dict[str, list[float]], list[str]]:
    """One warm-up round, then ``repeats`` rounds of every implementation in turn (A B C A B C ...).

    Each timed epoch starts after ``settle`` seconds of rest (see :data:`SETTLE`).
    Returns the warm-up seconds, the timed seconds per implementation, and the order they ran in.
    """
    if log:
        log(f"warm-up round: {', '.join(epochs)}")
    warmup = {name: epoch() for name, epoch in epochs.items()}
    runs: dict[str, list[float]] = {name: [] for name in epochs}
    order: list[str] = []
    for r in range(repeats):
        for name, epoch in epochs.items():
            time.sleep(settle)
            runs[name].append(epoch())
            order.append(name)
            if log:
                log(f"round {r + 1}/{repeats}  {name:<13} {runs[name][-1]:.3f} s/epoch")
    return warmup, runs, order


def summarize(runs: dict[str, list[float]], base: str = BASE) -> dict[str, dict[str, Any]]:
    """Median, min, max and runs per implementation, and the ratio of each median to ``base``'s."""
    out: dict[str, dict[str, Any]] = {
        name: {"median": statistics.median(r), "min": min(r), "max": max(r), "runs": list(r)}
        for name, r in runs.items()
    }
    for row in out.values():
        row["ratio_to_npmlp"] = row["median"] / out[base]["median"] if base in out else None
    return out


def steady_rounds(results: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The rounds that ran at the machine's steady speed (:data:`STEADY`) and npmlp's ratios in them.

    Returns ``{"rounds": [i, ...], "of": n, "within": [0.1, 0.2], "npmlp_over_gemm": [lo, hi], ...}``:
    the indices of the steady rounds, how many rounds there were, the thresholds, and the range
    of npmlp's per-round ratio to each peer of :data:`STEADY_PEERS` over them (a round's epochs
    ran seconds apart, so a ratio within a round is paired). None without npmlp-matrix and GEMM-only.
    """
    if BASE not in results or "gemm-only" not in results:
        return None
    n, g = results[BASE]["runs"], results["gemm-only"]["runs"]
    rounds = [i for i, (a, b) in enumerate(zip(n, g, strict=True))
              if b <= (1 + STEADY[0]) * min(g) and a <= (1 + STEADY[1]) * min(n)]
    out: dict[str, Any] = {"rounds": rounds, "of": len(n), "within": list(STEADY)}
    for impl, short in STEADY_PEERS.items():
        if impl in results and rounds:
            ratios = [n[i] / results[impl]["runs"][i] for i in rounds]
            out[f"npmlp_over_{short}"] = [min(ratios), max(ratios)]
    return out


def bench_config(p: Problem, *, name: str, impls: Sequence[str], repeats: int, loop_batches: int,
                 log: Callable[[str], None] | None = None, settle: float = SETTLE) -> dict[str, Any]:
    """Time ``impls`` interleaved on one problem; the configuration's section of the document."""
    warmup, runs, order = interleave(build_epochs(p, impls, loop_batches), repeats, log=log, settle=settle)
    results, notes = summarize(runs), implementation_notes(p, loop_batches)
    for impl, row in results.items():
        row["note"] = notes.get(impl, "Trainer.run_epoch, the training hot path")
    if "npmlp-loop" in results:
        results["npmlp-loop"]["timed_rows"] = min(loop_batches * p.batch_size, p.X.shape[0])
    limit = results.get("gemm-only", {}).get("median")
    return {"name": name, "hidden": list(p.hidden), "dtype": p.X.dtype.name, "batch_size": p.batch_size,
            "rows": p.X.shape[0], "features": p.X.shape[1], "classes": p.n_classes,
            "l1": p.l1, "l2": p.l2, "lr": p.lr, "optimizer": p.optimizer, "results": results, "warmup": warmup,
            "order": order,
            "npmlp_over_gemm": results[BASE]["median"] / limit if BASE in results and limit else None,
            # NOTE: a slower host only ever adds time, so the fastest rounds are the least disturbed
            # view of the same ratio; reported beside the medians', never instead of them.
            "npmlp_over_gemm_best": (results[BASE]["min"] / results["gemm-only"]["min"]
                                     if BASE in results and limit else None),
            "steady": steady_rounds(results)}


@dataclass
class BenchOptions:
    """Everything a bench run is told: the data, the training settings and how to measure.

    Attributes
    ----------
    dataset : str
        A name or path for :func:`npmlp.datasets.load_dataset`; its training split is used.
    hidden, dtypes : sequence of int, sequence of str
        One configuration per dtype, each with these hidden sizes (ignored when
        ``configs`` is given: a list of ``{"name", "hidden", "dtype"}``, see :data:`PRESETS`).
    batch_size, l1, l2, lr, seed : the training settings (K, penalties, eta, seed).
    peers : bool
        Also time scikit-learn and PyTorch; a missing one is skipped with an install hint.
    loop : bool
        Also time the loop backprop, on ``loop_batches`` minibatches scaled to an epoch.
    repeats : int
        Timed rounds after the warm-up round.
    data_dir, max_rows : where to look for the data; keep only the first rows.
    progress : bool
        One line per timed run on stderr.
    threads : int, optional
        BLAS/OpenMP (and torch) threads for the whole run; None leaves them as they are.
    memory : bool
        Also measure npmlp's peak training memory in a subprocess.
    data : Dataset or (X, y), optional
        In-memory data instead of ``dataset`` (``X`` of shape (n, d), ``y`` of shape (n,)).
    settle : float
        Seconds of rest before each timed epoch (:data:`SETTLE`), not timed.
    """

    dataset: str = "fashion-mnist"
    hidden: Sequence[int] = (10,)
    batch_size: int = 100
    dtypes: Sequence[str] = ("float64", "float32")
    l1: float = 1e-3
    l2: float = 1e-3
    lr: float = 0.03
    peers: bool = False
    loop: bool = True
    repeats: int = 5
    seed: int = 0
    data_dir: str | None = None
    max_rows: int | None = None
    progress: bool = False
    threads: int | None = None
    loop_batches: int = 50
    memory: bool = True
    data: Any = field(default=None, repr=False)
    configs: Sequence[dict[str, Any]] | None = None
    settle: float = SETTLE

    def __post_init__(self) -> None:
        for name in ("batch_size", "repeats", "loop_batches", "threads", "max_rows"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1. Got {value!r} instead.")

    def sections(self) -> list[dict[str, Any]]:
        """The configurations to run: ``configs`` as given, else one per dtype with ``hidden``."""
        out: list[dict[str, Any]] = list(self.configs) if self.configs is not None else [
            {"name": f"h{'-'.join(map(str, self.hidden))}-{dt}", "hidden": tuple(self.hidden), "dtype": dt}
            for dt in self.dtypes]
        for c in out:
            resolve_dtype(c["dtype"])  # raises, naming the valid dtypes
        return out

    def recorded(self, impls: Sequence[str]) -> dict[str, Any]:
        """The settings as the document records them."""
        keep = ("batch_size", "l1", "l2", "lr", "repeats", "seed", "max_rows", "loop_batches")
        return {"dataset": self.dataset if self.data is None else "in-memory data",
                **{k: getattr(self, k) for k in keep}, "warmup_rounds": 1, "implementations": list(impls),
                "settle_seconds": self.settle}


def run_bench(options: BenchOptions | None = None, /, **settings: Any) -> dict[str, Any]:
    """Seconds per epoch of npmlp (matrix, loop), the GEMM-only limit and peers, interleaved.

    Parameters
    ----------
    options : BenchOptions, optional
        What to run; else ``settings`` are :class:`BenchOptions`'s fields by name.

    Returns
    -------
    dict
        ``{"machine", "settings", "configs": [{"name", "hidden", "dtype", "batch_size",
        "results": {impl: {"median", "min", "max", "runs", "ratio_to_npmlp", ...}},
        "npmlp_over_gemm", "npmlp_over_gemm_best", "steady", "order", "memory", ...}], "skipped", "warnings"}``
        (``steady``: :func:`steady_rounds`).
    """
    o = options if options is not None else BenchOptions(**settings)
    configs = o.sections()
    impls, skipped = implementations(peers=o.peers, loop=o.loop)  # imports the peers before pinning threads
    warnings, threads = _usable_threads(o.threads)
    machine = machine_info(threads)
    start, own = cpu_busy(), own_cpu()
    with pinned_threads(threads) as count:
        machine.update(_pinned_facts(count))
        sections = [_run_config(c, o, impls=impls, threads=threads) for c in configs]
    record_after(machine, start, own)
    warnings += busy_warnings(machine) + _steadiness_warnings(sections) + memory_warnings(sections)
    return {"machine": machine, "settings": o.recorded(impls), "configs": sections, "skipped": skipped,
            "warnings": warnings}


def _usable_threads(threads: int | None) -> tuple[list[str], int | None]:
    """The thread count that can be pinned (threadpoolctl needed), and a warning when it cannot."""
    import importlib.util

    if threads is not None and importlib.util.find_spec("threadpoolctl") is None:
        return [f"threads={threads} not applied: threadpoolctl is not installed ({PEER_HINTS['sklearn']})"], None
    return [], threads


def _pinned_facts(count: int | None) -> dict[str, Any]:
    """The BLAS libraries with the thread counts now pinned, and torch's."""
    from .bench_machine import blas_libraries, torch_info

    libs = blas_libraries()
    return {"blas": libs[0] if libs else None, "blas_libraries": libs, "blas_threads": count, "torch": torch_info()}


def _log(o: BenchOptions) -> Callable[[str], None] | None:
    return (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)) if o.progress else None


def _run_config(c: dict[str, Any], o: BenchOptions, *, impls: Sequence[str], threads: int | None) -> dict[str, Any]:
    """One configuration: its problem, its memory (first: the subprocess runs alone), then its timings."""
    X, y, m = training_data(o.dataset, c["dtype"], data=o.data, data_dir=o.data_dir, max_rows=o.max_rows)
    p = Problem(X, y, m, tuple(int(h) for h in c["hidden"]), c.get("batch_size", o.batch_size), c.get("lr", o.lr),
                c.get("l1", o.l1), c.get("l2", o.l2), o.seed, c.get("optimizer", "sgd"))
    log = _log(o)
    if log:
        log(f"config {c['name']}: hidden {list(p.hidden)}, {c['dtype']}, {X.shape[0]} rows, K={p.batch_size}")
    mem = measure_memory(p, dataset=o.dataset, data_dir=o.data_dir, max_rows=o.max_rows,
                         in_memory=o.data is not None, threads=threads) if o.memory else None
    return {**bench_config(p, name=c["name"], impls=impls, repeats=o.repeats, loop_batches=o.loop_batches, log=log,
                           settle=o.settle),
            "memory": mem}


def _steadiness_warnings(sections: list[dict[str, Any]]) -> list[str]:
    """WARN lines where GEMM-only's or npmlp-matrix's rounds varied more than :data:`UNSTEADY_IQR`."""
    out = []
    for s in sections:
        for impl in ("gemm-only", BASE):
            r = s["results"].get(impl)
            if not r or len(r["runs"]) < 2:
                continue
            q1, q3 = np.percentile(r["runs"], [25, 75])
            if q3 - q1 > UNSTEADY_IQR * r["median"]:
                out.append(f"{s['name']}: {impl}, the same work every round, varied by {(q3 - q1) / r['median']:.0%} "
                           f"of its median between quartiles ({q1:.4f} to {q3:.4f} s): the machine changed speed "
                           f"during the run, ratios unreliable; run again, with more --repeats")
    return out
