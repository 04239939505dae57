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
- ``torch`` (``peers=True``): ``nn.Linear``/``nn.ReLU`` layers, ``F.cross_entropy``
  plus ``l1 * sum|W| + l2 * sum W**2`` on the weights, ``torch.optim.SGD``; the data a
  tensor sharing the array's memory, minibatches gathered by index from a
  ``randperm``, no DataLoader; ``torch.set_num_threads`` set to the BLAS thread count.

The implementations run interleaved (A B C A B C ...) for ``repeats`` rounds after a
warm-up round, so a change in machine load hits them all alike; each is reported by
its median, min and max, and by the ratio of its median to npmlp-matrix's. BLAS
threads are pinned for the whole run (``threads``); the NumPy/BLAS versions, BLAS
kernel, thread counts and machine load are recorded. Peak memory of npmlp training is
measured in a fresh subprocess so the peers' allocations cannot pollute it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .network import MLP, Array, Labels, resolve_dtype
from .training import TrainConfig, Trainer, evaluate

Epoch = Callable[[], float]  # trains (or multiplies) one epoch, returns seconds per epoch

IMPLS = ("npmlp-matrix", "npmlp-loop", "gemm-only", "sklearn", "torch")
BASE = "npmlp-matrix"
PEER_HINTS = {"sklearn": "pip install 'npmlp[bench]'", "torch": "pip install torch==2.13.0"}
#: The issue's two configurations: the seed's network (with its elastic net), and a wide
#: one in float32 (the issue gives it no penalty; "B+pen" adds the seed's, to show its cost).
PRESETS: dict[str, dict[str, Any]] = {
    "A": {"hidden": (10,), "dtype": "float64", "l1": 1e-3, "l2": 1e-3},
    "B": {"hidden": (512,), "dtype": "float32", "l1": 0.0, "l2": 0.0},
    "B+pen": {"hidden": (512,), "dtype": "float32", "l1": 1e-3, "l2": 1e-3},
}
BUSY_PER_CORE = 0.5  # a 1-minute load average above this per core: timings unreliable
#: GEMM-only and npmlp-matrix do the same work every round: an interquartile range above
#: this fraction of the median means the machine itself changed speed during the run (a
#: virtual machine's host can, unseen by the load average); their ratio is then unreliable.
UNSTEADY_IQR = 0.10
MEMORY_TARGET = 1.15  # peak training memory over the data's own size
ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Problem:
    """One configuration's training problem: data ``X`` (n, d), labels ``y`` (n,) and the settings."""

    X: Array
    y: Labels
    n_classes: int
    hidden: tuple[int, ...]
    batch_size: int
    lr: float
    l1: float
    l2: float
    seed: int

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.X.shape[1], *self.hidden, self.n_classes)


# -- the timed implementations: each builds its state once and returns an Epoch ----------
def _timed(fn: Callable[[], object], scale: float = 1.0) -> float:
    tic = time.perf_counter()
    fn()
    return (time.perf_counter() - tic) * scale


def npmlp_epoch(p: Problem, *, backprop: str = "matrix", rows: int | None = None) -> Epoch:
    """npmlp's :meth:`Trainer.run_epoch`, on the first ``rows`` rows scaled to all of them."""
    config = TrainConfig(hidden=p.hidden, l1=p.l1, l2=p.l2, dtype=p.X.dtype.name, lr=p.lr,
                         batch_size=p.batch_size, backprop=backprop, seed=p.seed)
    rng = np.random.default_rng(p.seed)
    trainer = Trainer(config.build(p.X.shape[1], p.n_classes, rng), config, rng)
    n = p.X.shape[0] if rows is None else min(rows, p.X.shape[0])
    X, y = p.X[:n], p.y[:n]
    return lambda: _timed(lambda: trainer.run_epoch(X, y), p.X.shape[0] / n)


def gemm_arrays(p: Problem) -> tuple[list[Array], list[Array], list[Array], list[Array]]:
    """Weights ``W_l`` (fan_out, fan_in) as npmlp initialises them, and the products' outputs.

    Returns ``Ws``, the forward outputs (K, fan_out) (also the backward deltas), ``dHs``
    (K, fan_in) of layers 2..L, and ``dWs``; all in the data's dtype (a mixed-dtype
    matmul would leave BLAS for a slow casting loop).
    """
    K, dt = p.batch_size, p.X.dtype
    Ws = MLP.initialize(p.sizes, rng=np.random.default_rng(p.seed), dtype=dt.name).weights
    return (Ws, [np.empty((K, W.shape[0]), dt) for W in Ws], [np.empty((K, W.shape[1]), dt) for W in Ws[1:]],
            [np.empty_like(W) for W in Ws])


def gemm_epoch(p: Problem) -> Epoch:
    """Only the matrix products of forward + backprop, minibatches sliced in order: the limit."""
    Ws, outs, dHs, dWs = gemm_arrays(p)
    K = p.batch_size

    def minibatch(Xb: Array) -> None:
        k, inputs = Xb.shape[0], [Xb]
        for W, out in zip(Ws, outs, strict=True):  # A_l = H_{l-1} @ W_l.T
            inputs.append(np.matmul(inputs[-1], W.T, out=out[:k]))
        dA = inputs.pop()  # stands in for dOa: same shape, the values do not matter to BLAS
        for i in range(len(Ws) - 1, -1, -1):  # dW_i = dA_i.T @ H_{i-1}; dH_{i-1} = dA_i @ W_i
            np.matmul(dA.T, inputs[i], out=dWs[i])
            dA = np.matmul(dA, Ws[i], out=dHs[i - 1][:k]) if i else dA

    X = p.X

    def epoch() -> None:
        for s in range(0, X.shape[0], K):
            minibatch(X[s : s + K])

    return lambda: _timed(epoch)


def sklearn_epoch(p: Problem) -> Epoch:
    """scikit-learn's ``MLPClassifier``, one ``partial_fit`` epoch (the first also initialises)."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=p.hidden, activation="relu", solver="sgd", batch_size=p.batch_size,
                        learning_rate="constant", learning_rate_init=p.lr, momentum=0.0, nesterovs_momentum=False,
                        alpha=2 * p.l2 * p.batch_size, shuffle=True, random_state=p.seed)
    classes = np.arange(p.n_classes)
    return lambda: _timed(lambda: clf.partial_fit(p.X, p.y, classes=classes))


def torch_epoch(p: Problem) -> Epoch:
    """PyTorch: Linear/ReLU layers, cross-entropy plus the elastic net, plain SGD, randperm minibatches."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    dt = {"float64": torch.float64, "float32": torch.float32}[p.X.dtype.name]
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the global RNG
        torch.manual_seed(p.seed)
        for i, o in zip(p.sizes[:-1], p.sizes[1:], strict=True):
            layers += [nn.Linear(i, o, dtype=dt), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    opt = torch.optim.SGD(model.parameters(), lr=p.lr)
    X, y, K = torch.from_numpy(p.X), torch.from_numpy(p.y).long(), p.batch_size
    gen = torch.Generator().manual_seed(p.seed)

    def epoch() -> None:
        order = torch.randperm(X.shape[0], generator=gen)
        for s in range(0, X.shape[0], K):
            index = order[s : s + K]
            loss = F.cross_entropy(model(X[index]), y[index])
            loss = loss + sum(p.l1 * W.abs().sum() + p.l2 * W.square().sum() for W in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return lambda: _timed(epoch)


def _import_peer(name: str) -> str | None:
    """None when peer ``name`` imports, else why not with the install hint."""
    module = {"sklearn": "sklearn.neural_network", "torch": "torch"}[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"not installed ({exc.__class__.__name__}: {exc}); {PEER_HINTS[name]}"
    return None


# -- machine facts ------------------------------------------------------------------------
def _blas_libraries() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process, as threadpoolctl sees them (numpy's first)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    libs = [{**{k: lib.get(k) for k in keys}, "file": Path(lib["filepath"]).name, "numpy": "numpy" in lib["filepath"]}
            for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return sorted(libs, key=lambda lib: not lib["numpy"])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _loadavg() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def _cpu_busy() -> tuple[float, float, int] | None:
    """(seconds, busy CPU-seconds of the whole machine, CPUs counted) from /proc/stat, Linux only."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = Path("/proc/stat").read_text().splitlines()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in lines[0].split()[1:9])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        return time.monotonic(), busy, sum(line.startswith("cpu") for line in lines[1:])
    return None


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_info(threads: int | None) -> dict[str, Any]:
    """Versions, BLAS kernel and threads, CPU, environment and load of this machine, now."""
    libs = _blas_libraries()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "blas": libs[0] if libs else None,
        "blas_libraries": libs,
        "threads_pinned": threads,
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "loadavg_before": _loadavg(),
    }


def _busy_warnings(machine: dict[str, Any]) -> list[str]:
    """WARN lines when others were using the CPUs before, during or after the run."""
    cores, out = machine["cpu_count"] or 1, []
    limit = BUSY_PER_CORE * cores
    for when in ("before", "after"):
        load = machine.get(f"loadavg_{when}")
        own = machine.get("own_cores", 0.0) if when == "after" else 0.0
        if load and load[0] - own > limit:
            extra = f" ({own:.2f} of it this run's own)" if own else ""
            out.append(f"machine busy: 1-minute load average {load[0]:.2f}{extra} {when} the run on {cores} CPUs "
                       f"(> {BUSY_PER_CORE} per core): timings unreliable")
    others = machine.get("others_cores")
    if others is not None and others > limit:
        out.append(f"machine busy: other processes used {others:.2f} CPUs on average during the run "
                   f"(> {BUSY_PER_CORE} per core): timings unreliable")
    return out


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[int | None]:
    """Pin BLAS/OpenMP threads (threadpoolctl) and torch's for the block; yield the BLAS count in force."""
    with contextlib.ExitStack() as stack:
        if threads is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        libs = _blas_libraries()
        count = libs[0]["num_threads"] if libs else threads
        torch = sys.modules.get("torch")
        if torch is not None and count:
            before = torch.get_num_threads()
            torch.set_num_threads(count)
            stack.callback(torch.set_num_threads, before)
        yield count


# -- data -----------------------------------------------------------------------------------
def load_data(dataset: str, dtype: str, data_dir: str | None = None) -> Any:
    """The :class:`npmlp.datasets.Dataset` ``dataset`` (looked up, or downloaded, as by ``npmlp train``)."""
    from .datasets import load_dataset

    return load_dataset(dataset, data_dir=data_dir, dtype=dtype)


def training_data(dataset: str, dtype: str, *, data: Any = None, data_dir: str | None = None,
                  max_rows: int | None = None) -> tuple[Array, Labels, int]:
    """The training split ``X`` (n, d) in ``dtype``, ``y`` (n,) and the class count.

    ``data`` (a :class:`npmlp.datasets.Dataset` or an ``(X, y)`` pair) is used instead of
    loading ``dataset``; ``max_rows`` keeps the first rows only (a copy, so the rest is freed).
    """
    data = load_data(dataset, dtype, data_dir) if data is None else data
    X, y = (data.X_train, data.y_train) if hasattr(data, "X_train") else data
    X, y = np.asarray(X), np.asarray(y).astype(np.intp, copy=False)
    n_classes = int(getattr(data, "n_classes", int(y.max()) + 1))
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"data must be X of shape (n, d) and y of shape (n,). Got {X.shape} and {y.shape} instead.")
    if max_rows is not None:
        X, y = X[:max_rows].copy(), y[:max_rows].copy()
    return np.ascontiguousarray(X, dtype=resolve_dtype(dtype)), y, n_classes


def resident_bytes(arrays: Sequence[np.ndarray]) -> int:
    """Bytes of the memory behind ``arrays``, each buffer once (a view counts its whole base)."""
    roots: dict[int, int] = {}
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        roots[id(a)] = a.nbytes
    return sum(roots.values())


# -- memory, in a subprocess ------------------------------------------------------------------
_PROBE = (
    "import json, sys; from npmlp.bench import memory_probe; print(json.dumps(memory_probe(**json.load(sys.stdin))))"
)


def _rss() -> int:
    """Resident bytes now (Linux), else the peak so far."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return _peak_rss()


def _peak_rss() -> int:
    """Peak resident bytes since start or since the last :func:`_reset_peak_rss` (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # NOTE: bytes on macOS, KiB elsewhere


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False when impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_probe(*, dataset: str, dtype: str, hidden: Sequence[int], batch_size: int, lr: float, l1: float,
                 l2: float, seed: int, data_dir: str | None = None, max_rows: int | None = None,
                 arrays: Sequence[str] | None = None) -> dict[str, Any]:
    """Peak resident memory of one npmlp epoch (then an evaluation pass) against the data's size.

    Runs in a fresh interpreter (:func:`measure_memory`). The data held is what ``npmlp
    train`` holds: every split of the data set (only the training rows with ``max_rows``),
    or the ``X`` and ``y`` saved as ``.npy`` files at ``arrays``.
    """
    before = _rss()
    data = tuple(np.load(a) for a in arrays) if arrays else load_data(dataset, dtype, data_dir)
    X, y, m = training_data(dataset, dtype, data=data, max_rows=max_rows)
    splits = data.splits().values() if hasattr(data, "splits") else [data]
    held = [X, y] if max_rows else [X, y, *(a for pair in splits for a in pair)]  # alive to the end
    data_bytes = resident_bytes(held)
    del data, splits
    gc.collect()
    with_data, load_peak, reset = _rss(), _peak_rss(), _reset_peak_rss()
    config = TrainConfig(hidden=list(hidden), l1=l1, l2=l2, dtype=dtype, lr=lr, batch_size=batch_size, seed=seed)
    rng = np.random.default_rng(seed)
    trainer = Trainer(config.build(X.shape[1], m, rng), config, rng)
    trainer.run_epoch(X, y)
    epoch_peak = _peak_rss()
    evaluate(trainer.net, X, y)
    eval_peak = _peak_rss()
    return {"data_bytes": data_bytes, "train_bytes": X.nbytes + y.nbytes, "rss_before_data": before,
            "rss_with_data": with_data, "load_peak": load_peak, "epoch_peak": epoch_peak, "eval_peak": eval_peak,
            "peak_reset": reset, "epoch_over_data": (epoch_peak - before) / data_bytes,
            "eval_over_data": (eval_peak - before) / data_bytes, "target": MEMORY_TARGET}


def measure_memory(p: Problem, *, dataset: str, data_dir: str | None, max_rows: int | None, in_memory: bool,
                   threads: int | None) -> dict[str, Any]:
    """Run :func:`memory_probe` in a subprocess; on failure a dict with ``error``."""
    args = {"dataset": dataset, "dtype": p.X.dtype.name, "hidden": list(p.hidden), "batch_size": p.batch_size,
            "lr": p.lr, "l1": p.l1, "l2": p.l2, "seed": p.seed, "data_dir": data_dir, "max_rows": max_rows}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    if threads is not None:
        env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    with tempfile.TemporaryDirectory() as tmp:
        if in_memory:
            args["arrays"] = [str(Path(tmp) / f"{k}.npy") for k in "Xy"]
            np.save(args["arrays"][0], p.X)
            np.save(args["arrays"][1], p.y)
        proc = subprocess.run([sys.executable, "-c", _PROBE], input=json.dumps(args), capture_output=True,
                              text=True, env=env, timeout=900, check=False)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout)
    result["within_target"] = result["epoch_over_data"] <= MEMORY_TARGET
    return result


# -- the run ------------------------------------------------------------------------------------
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


def _epochs(p: Problem, impls: Sequence[str], loop_batches: int) -> dict[str, Epoch]:
    build: dict[str, Callable[[], Epoch]] = {
        "npmlp-matrix": lambda: npmlp_epoch(p),
        "npmlp-loop": lambda: npmlp_epoch(p, backprop="loop", rows=loop_batches * p.batch_size),
        "gemm-only": lambda: gemm_epoch(p),
        "sklearn": lambda: sklearn_epoch(p),
        "torch": lambda: torch_epoch(p),
    }
    return {name: build[name]() for name in impls}


def _notes(p: Problem, loop_batches: int) -> dict[str, str]:
    timed = min(loop_batches * p.batch_size, p.X.shape[0])
    return {
        "npmlp-loop": (f"timed on {timed} rows ({-(-timed // p.batch_size)} minibatches), scaled to the epoch"
                       if timed < p.X.shape[0] else "whole epoch"),
        "gemm-only": "the limit: the matrix products of forward + backprop only",
        "sklearn": f"partial_fit epoch; alpha = 2*l2*K = {2 * p.l2 * p.batch_size:g}; no L1 term",
        "torch": "nn.Linear/ReLU, cross_entropy + elastic net, optim.SGD",
    }


def bench_config(p: Problem, *, name: str, impls: Sequence[str], repeats: int, loop_batches: int,
                 log: Callable[[str], None] | None = None, settle: float = SETTLE) -> dict[str, Any]:
    """Time ``impls`` interleaved on one problem; the configuration's section of the document."""
    warmup, runs, order = interleave(_epochs(p, impls, loop_batches), repeats, log=log, settle=settle)
    results, notes = summarize(runs), _notes(p, loop_batches)
    for impl, row in results.items():
        row["note"] = notes.get(impl, "Trainer.run_epoch, the training hot path")
    if "npmlp-loop" in results:
        results["npmlp-loop"]["timed_rows"] = min(loop_batches * p.batch_size, p.X.shape[0])
    limit = results.get("gemm-only", {}).get("median")
    return {"name": name, "hidden": list(p.hidden), "dtype": p.X.dtype.name, "batch_size": p.batch_size,
            "rows": p.X.shape[0], "features": p.X.shape[1], "classes": p.n_classes,
            "l1": p.l1, "l2": p.l2, "lr": p.lr, "results": results, "warmup": warmup, "order": order,
            "npmlp_over_gemm": results[BASE]["median"] / limit if BASE in results and limit else None,
            # NOTE: a slower host only ever adds time, so the fastest rounds are the least disturbed
            # view of the same ratio; reported beside the medians', never instead of them.
            "npmlp_over_gemm_best": (results[BASE]["min"] / results["gemm-only"]["min"]
                                     if BASE in results and limit else None)}


def run_bench(
    *,
    dataset: str = "fashion-mnist",
    hidden: Sequence[int] = (10,),
    batch_size: int = 100,
    dtypes: Sequence[str] = ("float64", "float32"),
    l1: float = 1e-3,
    l2: float = 1e-3,
    lr: float = 0.03,
    peers: bool = False,
    loop: bool = True,
    repeats: int = 5,
    seed: int = 0,
    data_dir: str | None = None,
    max_rows: int | None = None,
    progress: bool = False,
    threads: int | None = None,
    loop_batches: int = 50,
    memory: bool = True,
    data: Any = None,
    configs: Sequence[dict[str, Any]] | None = None,
    settle: float = SETTLE,
) -> dict[str, Any]:
    """Seconds per epoch of npmlp (matrix, loop), the GEMM-only limit and peers, interleaved.

    Parameters
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

    Returns
    -------
    dict
        ``{"machine", "settings", "configs": [{"name", "hidden", "dtype", "batch_size",
        "results": {impl: {"median", "min", "max", "runs", "ratio_to_npmlp", ...}},
        "npmlp_over_gemm", "npmlp_over_gemm_best", "order", "memory", ...}], "skipped", "warnings"}``.
    """
    _check_settings(batch_size=batch_size, repeats=repeats, loop_batches=loop_batches, threads=threads,
                    max_rows=max_rows)
    configs = _configs(hidden, dtypes, configs)
    log = (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)) if progress else None
    impls, skipped = _implementations(peers=peers, loop=loop)  # imports the peers before pinning threads
    warnings = []
    if threads is not None and importlib.util.find_spec("threadpoolctl") is None:
        warnings.append(f"threads={threads} not applied: threadpoolctl is not installed ({PEER_HINTS['sklearn']})")
        threads = None
    machine = machine_info(threads)
    settings = {"dataset": dataset if data is None else "in-memory data", "batch_size": batch_size, "l1": l1,
                "l2": l2, "lr": lr, "repeats": repeats, "warmup_rounds": 1, "seed": seed, "max_rows": max_rows,
                "loop_batches": loop_batches, "implementations": impls, "settle_seconds": settle}
    start, own = _cpu_busy(), _own_cpu()
    with pinned_threads(threads) as count:
        libs = _blas_libraries()  # now with the pinned thread counts
        machine.update(blas=libs[0] if libs else None, blas_libraries=libs, blas_threads=count, torch=_torch_info())
        sections = [_run_config(c, impls=impls, dataset=dataset, data=data, data_dir=data_dir, max_rows=max_rows,
                                settings=(batch_size, lr, l1, l2, seed), repeats=repeats, loop_batches=loop_batches,
                                memory=memory, threads=threads, log=log, settle=settle) for c in configs]
    _after(machine, start, own)
    warnings = warnings + _busy_warnings(machine) + _steadiness_warnings(sections) + _memory_warnings(sections)
    return {"machine": machine, "settings": settings, "configs": sections, "skipped": skipped, "warnings": warnings}


def _check_settings(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1. Got {value!r} instead.")


def _configs(hidden: Sequence[int], dtypes: Sequence[str], configs: Sequence[dict[str, Any]] | None
             ) -> list[dict[str, Any]]:
    """The sections to run: ``configs`` as given, else one per dtype with ``hidden``."""
    out: list[dict[str, Any]] = list(configs) if configs is not None else [
        {"name": f"h{'-'.join(map(str, hidden))}-{dt}", "hidden": tuple(hidden), "dtype": dt} for dt in dtypes]
    for c in out:
        resolve_dtype(c["dtype"])  # raises, naming the valid dtypes
    return out


def _implementations(*, peers: bool, loop: bool) -> tuple[list[str], dict[str, str]]:
    """The implementations to time, in order, and the peers skipped with why."""
    skipped = {name: why for name in PEER_HINTS if peers and (why := _import_peer(name))}
    wanted = [i for i in IMPLS if (loop or i != "npmlp-loop") and (peers or i not in PEER_HINTS)]
    return [i for i in wanted if i not in skipped], skipped


def _torch_info() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    return {"version": torch.__version__, "threads": torch.get_num_threads()} if torch is not None else None


def _after(machine: dict[str, Any], start: tuple[float, float, int] | None, own_before: float) -> None:
    """Record the load after the run, this run's own CPU use and the others' (from /proc/stat)."""
    machine["loadavg_after"] = _loadavg()
    end = _cpu_busy()
    if start and end and end[0] > start[0]:
        wall = end[0] - start[0]
        machine["own_cores"] = round((_own_cpu() - own_before) / wall, 2)
        machine["others_cores"] = round(max(0.0, (end[1] - start[1]) / wall - machine["own_cores"]), 2)


def _run_config(c: dict[str, Any], *, impls: Sequence[str], dataset: str, data: Any, data_dir: str | None,
                max_rows: int | None, settings: tuple[int, float, float, float, int], repeats: int,
                loop_batches: int, memory: bool, threads: int | None,
                log: Callable[[str], None] | None, settle: float) -> dict[str, Any]:
    X, y, m = training_data(dataset, c["dtype"], data=data, data_dir=data_dir, max_rows=max_rows)
    batch_size, lr, l1, l2, seed = settings
    p = Problem(X, y, m, tuple(int(h) for h in c["hidden"]), batch_size, lr, c.get("l1", l1), c.get("l2", l2), seed)
    if log:
        log(f"config {c['name']}: hidden {list(p.hidden)}, {c['dtype']}, {X.shape[0]} rows, K={p.batch_size}")
    mem = measure_memory(p, dataset=dataset, data_dir=data_dir, max_rows=max_rows, in_memory=data is not None,
                         threads=threads) if memory else None  # first: the subprocess runs alone
    return {**bench_config(p, name=c["name"], impls=impls, repeats=repeats, loop_batches=loop_batches, log=log,
                           settle=settle),
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


def _memory_warnings(sections: list[dict[str, Any]]) -> list[str]:
    out = []
    for s in sections:
        mem = s.get("memory") or {}
        if "error" in mem:
            out.append(f"{s['name']}: memory measurement failed: {mem['error']}")
        elif mem and not mem["peak_reset"]:
            out.append(f"{s['name']}: could not reset the peak-RSS mark: the training peak includes loading")
    return out


# -- the table ----------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _header(doc: dict[str, Any]) -> list[str]:
    m, s = doc["machine"], doc["settings"]
    b = m.get("blas")
    blas_text = (f"{b['internal_api']} {b['version']} kernel {b['architecture']}, {b['num_threads']} threads"
                 if b else "unknown (install threadpoolctl: pip install 'npmlp[bench]')")
    pinned = "pinned" if m["threads_pinned"] is not None else "not pinned"
    torch = m.get("torch")
    env = ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in m["env"].items() if k.startswith("OPENBLAS"))
    load = f"load average {m['loadavg_before']} before, {m.get('loadavg_after')} after"
    if m.get("others_cores") is not None:
        load += f"; during the run this process used {m['own_cores']} CPUs, others {m['others_cores']}"
    return [
        f"npmlp bench: seconds per epoch on {s['dataset']}, K={s['batch_size']}, lr={s['lr']:g}, "
        f"l1={s['l1']:g}, l2={s['l2']:g}; median of {s['repeats']} interleaved rounds "
        f"after {s['warmup_rounds']} warm-up",
        f"numpy {m['numpy']}; BLAS {blas_text} ({pinned})"
        + (f"; torch {torch['version']}, {torch['threads']} threads" if torch else ""),
        f"{m['cpu']}, {m['cpu_count']} CPUs; {env}",
        load,
    ]


def _section(c: dict[str, Any], skipped: dict[str, str]) -> list[str]:
    lines = ["", f"[{c['name']}] hidden {c['hidden']}, {c['dtype']}, K={c['batch_size']}, l1={c['l1']:g}, "
                  f"l2={c['l2']:g}, {c['rows']} rows x {c['features']} features, {c['classes']} classes",
             f"{'implementation':<14} {'median':>9} {'min':>9} {'max':>9} {'/ npmlp':>8}  note"]
    for name, r in c["results"].items():
        lines.append(f"{name:<14} {r['median']:>9.4f} {r['min']:>9.4f} {r['max']:>9.4f} "
                     f"{r['ratio_to_npmlp']:>7.2f}x  {r['note']}")
    for name, why in skipped.items():
        lines.append(f"{name:<14} {'skipped':>9}  {why}")
    if c.get("npmlp_over_gemm"):
        lines.append(f"npmlp-matrix takes {c['npmlp_over_gemm']:.2f}x the GEMM-only limit "
                     f"(medians; fastest rounds: {c['npmlp_over_gemm_best']:.2f}x)")
    mem = c.get("memory")
    if mem and "error" not in mem:
        lines.append(f"memory: data {_mb(mem['data_bytes'])}; interpreter before data {_mb(mem['rss_before_data'])}; "
                     f"epoch peak {_mb(mem['epoch_peak'])} = before + {mem['epoch_over_data']:.3f}x data "
                     f"(target {mem['target']:.2f}x: {'met' if mem['within_target'] else 'MISSED'}); "
                     f"with evaluation {mem['eval_over_data']:.3f}x; loading peaked at {_mb(mem['load_peak'])}")
    elif mem:
        lines.append(f"memory: not measured ({mem['error']})")
    return lines


def format_bench(doc: dict[str, Any]) -> str:
    """A readable table of a :func:`run_bench` document: one section per configuration."""
    lines = _header(doc) + [f"WARNING: {w}" for w in doc["warnings"]]
    for c in doc["configs"]:
        lines += _section(c, doc.get("skipped", {}))
    return "\n".join(lines)
