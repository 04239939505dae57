#!/usr/bin/env python
"""How close can a shuffled-minibatch NumPy epoch get to the GEMM-only limit? Its floor, measured.

    .venv/bin/python benchmarks/floor.py                 # configs A and B, 9 rounds
    .venv/bin/python benchmarks/floor.py --config B --repeats 15 --json

Besides its matrix products, every epoch of minibatch SGD on shuffled rows must
(1) copy each minibatch's K random rows out of the data set ("gather": a permuted copy
of the whole data set per epoch is what the memory target forbids) and (2) update
every weight matrix once per minibatch, ``W -= dW``, a pass over W and dW. In NumPy
both are memory-bound ufunc/take calls that BLAS cannot fuse into its products.

Timed interleaved (A B C ... A B C) on the configuration's data, one epoch each:

- ``gemm-only``: the products alone, as in ``npmlp bench`` (minibatches sliced in order)
- ``gather-only``: ``np.take`` of each shuffled minibatch into a reused buffer
- ``update-only``: ``P -= G`` for every parameter, once per minibatch
- ``npmlp-matrix``: the real training epoch (``Trainer.run_epoch``)

and reported with the floors ``(gemm + gather + update) / gemm`` (nothing else costs
anything, the gather is not hidden) and ``(gemm + update) / gemm`` (the gather fully
hidden in another thread, which only pays while BLAS leaves a core idle).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from npmlp.bench import PRESETS, Problem, gemm_epoch, npmlp_epoch, pinned_threads, training_data
from npmlp.network import MLP, gather_rows
from npmlp.optim import SGD


def gather_epoch(p: Problem):
    """Every shuffled minibatch gathered into one reused buffer, by the training loop's own gather_rows."""
    K, rng = p.batch_size, np.random.default_rng(p.seed)
    Xb, yb = np.empty((K, p.X.shape[1]), p.X.dtype), np.empty(K, np.intp)

    def epoch() -> float:
        tic = time.perf_counter()
        order = rng.permutation(p.X.shape[0])
        for s in range(0, p.X.shape[0], K):
            gather_rows(p.X, p.y, order[s : s + K], Xb, yb)
        return time.perf_counter() - tic

    return epoch


def update_epoch(p: Problem):
    """The training loop's plain SGD step (``P -= G`` for every parameter), once per minibatch."""
    params = MLP.initialize(p.sizes, rng=np.random.default_rng(p.seed), dtype=p.X.dtype.name).params
    grads = {k: np.full_like(v, 1e-12) for k, v in params.items()}  # tiny: the weights stay normal floats
    batches, sgd = -(-p.X.shape[0] // p.batch_size), SGD(params)

    def epoch() -> float:
        tic = time.perf_counter()
        for _ in range(batches):
            sgd.step(params, grads, p.lr)
        return time.perf_counter() - tic

    return epoch


def floor(name: str, repeats: int, threads: int | None, *, data: tuple | None = None, batch_size: int = 100) -> dict:
    """Time the four epochs of preset ``name`` interleaved; the medians, mins and floors.

    ``data``, an ``(X, y)`` pair, replaces Fashion-MNIST's training split.
    """
    c = PRESETS[name]
    X, y, m = training_data("fashion-mnist", c["dtype"], data=data)
    p = Problem(X, y, m, tuple(c["hidden"]), batch_size, 0.03, c["l1"], c["l2"], 0)
    epochs = {"gemm-only": gemm_epoch(p), "gather-only": gather_epoch(p), "update-only": update_epoch(p),
              "npmlp-matrix": npmlp_epoch(p)}
    runs: dict[str, list[float]] = {k: [] for k in epochs}
    with pinned_threads(threads):
        for f in epochs.values():  # warm-up
            f()
        for r in range(repeats):
            for k, f in epochs.items():
                runs[k].append(f())
            print(f"[{name}] round {r + 1}/{repeats}", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in runs.items()}
    g = med["gemm-only"]
    return {"config": name, **{k: c[k] for k in ("hidden", "dtype", "l1", "l2")}, "median_seconds": med,
            "min_seconds": {k: min(v) for k, v in runs.items()},
            "floor_sequential": (g + med["gather-only"] + med["update-only"]) / g,
            "floor_gather_hidden": (g + med["update-only"]) / g,
            "npmlp_over_gemm": med["npmlp-matrix"] / g}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", choices=("A", "B"), default=["A", "B"])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: usable CPUs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    docs = [floor(name, args.repeats, args.threads) for name in args.config]
    if args.json:
        print(json.dumps(docs, indent=1))
        return 0
    for d in docs:
        print(f"[{d['config']}] hidden {d['hidden']}, {d['dtype']}, l1={d['l1']}, l2={d['l2']}: "
              f"median seconds per epoch of {args.repeats} interleaved rounds")
        for k, v in d["median_seconds"].items():
            print(f"  {k:<13} {v:8.4f}   {v / d['median_seconds']['gemm-only']:5.2f}x gemm-only")
        print(f"  floor, gather in line:     {d['floor_sequential']:.3f}x gemm-only")
        print(f"  floor, gather hidden:      {d['floor_gather_hidden']:.3f}x gemm-only")
        print(f"  npmlp-matrix:              {d['npmlp_over_gemm']:.3f}x gemm-only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
