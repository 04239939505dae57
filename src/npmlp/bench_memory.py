"""Peak memory of npmlp training, measured in a fresh subprocess so no other allocation pollutes it."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .bench_impls import Problem, load_data, training_data
from .training import TrainConfig, Trainer, evaluate

MEMORY_TARGET = 1.15  # peak training memory over the data's own size


def resident_bytes(arrays: Sequence[np.ndarray]) -> int:
    """Bytes of the memory behind ``arrays``, each buffer once (a view counts its whole base)."""
    roots: dict[int, int] = {}
    for a in arrays:
        while isinstance(a.base, np.ndarray):
            a = a.base
        roots[id(a)] = a.nbytes
    return sum(roots.values())


_PROBE = ("import json, sys; from npmlp.bench_memory import memory_probe; "
          "print(json.dumps(memory_probe(**json.load(sys.stdin))))")


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
                 arrays: Sequence[str] | None = None, optimizer: str = "sgd") -> dict[str, Any]:
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
    config = TrainConfig(hidden=list(hidden), l1=l1, l2=l2, dtype=dtype, lr=lr, batch_size=batch_size, seed=seed,
                         optimizer=optimizer)
    trainer = Trainer.new(config, X.shape[1], m)
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
            "lr": p.lr, "l1": p.l1, "l2": p.l2, "seed": p.seed, "data_dir": data_dir, "max_rows": max_rows,
            "optimizer": p.optimizer}
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


def memory_warnings(sections: list[dict[str, Any]]) -> list[str]:
    out = []
    for s in sections:
        mem = s.get("memory") or {}
        if "error" in mem:
            out.append(f"{s['name']}: memory measurement failed: {mem['error']}")
        elif mem and not mem["peak_reset"]:
            out.append(f"{s['name']}: could not reset the peak-RSS mark: the training peak includes loading")
    return out
