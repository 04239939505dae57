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
- ``update-only``: the training loop's update (the penalty gradient and the update rule,
  ``kernels.update_into``) for every parameter, once per minibatch, split over two threads
  where training splits it; ``update-1thread``: the same on one thread; with a rule
  other than SGD also ``update-sgd``, plain SGD without penalty (``P -= G``)
- ``npmlp-matrix``: the real training epoch (``Trainer.run_epoch``)
- ``step-*``: the whole training step (forward, softmax gradient, backprop, elastic-net
  gradient, SGD update) written out with the fewest NumPy calls its math needs, no
  function layers, no dicts (one hidden layer), on minibatches that are
  ``step-gather``: the shuffled rows gathered in line, as the training loop does for wide
  layers; ``step-prefetch``: the same rows gathered ahead by the training loop's own
  gathering thread (:class:`npmlp.minibatches.Prefetcher`) while BLAS runs on one thread, as
  it does for light layers; ``step-stream``: contiguous slices in order, streamed from memory
  as gemm-only reads them (no gather at all); ``step-cache``: the same few minibatches again
  and again, already in cache (the best a gathering thread could hand over)
- ``gemm-1thread``: gemm-only's products on one BLAS thread, as they run while a gathering
  thread takes the other core

and reported with the floors ``(gemm + gather + update) / gemm`` (nothing else costs
anything, the gather is not hidden), ``(gemm + update) / gemm`` (the gather fully
hidden in another thread, which only pays while BLAS leaves a core idle) and
``(gemm-1thread + update) / gemm`` (the gather hidden on a core taken from BLAS), and each
``step-*`` over gemm-only: what any NumPy implementation of the step costs at best.
Every timed epoch starts after a rest (``--settle``, as ``npmlp bench``): without it, an
epoch that follows two-thread products pays for the BLAS threads still spinning after them
(the assignment's network, Haswell kernel: npmlp's epoch 0.15 s right after gemm-only's,
0.104 s after its own or a rest).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from npmlp.bench import PRESETS, SETTLE, Problem, gemm_epoch, interleave, npmlp_epoch, pinned_threads, training_data
from npmlp.kernels import gradient_scale, update_into
from npmlp.minibatches import Prefetcher, gather_rows, one_blas_thread
from npmlp.training import TrainConfig, Trainer

#: ``step-cache`` cycles through this many minibatches (K = 100 rows of Fashion-MNIST in
#: float64: 5 MB, inside the 32 MB last-level cache of the project's machine).
CACHED_BATCHES = 8
SOURCES = ("gather", "prefetch", "stream", "cache")


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


def one_thread_epoch(epoch):
    """``epoch`` with BLAS on one thread, as the training loop runs it while a thread gathers."""
    def timed() -> float:
        with one_blas_thread():
            return epoch()

    return timed


def update_epoch(p: Problem, threads: int | None = None, optimizer: str | None = None):
    """The training loop's update (``kernels.update_into``: penalty and rule) for every parameter, per minibatch.

    ``threads`` 1 keeps every pass on one thread; None lets it split as training does.
    ``optimizer`` replaces the configuration's rule. The gradients hold a tiny constant to
    begin with (the weights stay normal floats).
    """
    config = TrainConfig(hidden=p.hidden, l1=p.l1, l2=p.l2, dtype=p.X.dtype.name, lr=p.lr, batch_size=p.batch_size,
                         seed=p.seed, optimizer=optimizer or p.optimizer)
    trainer = Trainer.new(config, p.X.shape[1], p.n_classes)
    net, ws, opt = trainer.net, trainer.workspace, trainer.optimizer
    if threads is not None:
        ws.threads = threads
    for g in ws.grads.values():
        g.fill(1e-12)
    batches, scale = -(-p.X.shape[0] // p.batch_size), gradient_scale(opt, p.lr)

    def epoch() -> float:
        tic = time.perf_counter()
        for _ in range(batches):
            update_into(net, ws, opt, p.lr, scale)
        return time.perf_counter() - tic

    return epoch


def step_floor(p: Problem, source: str = "gather"):
    """One epoch of the whole SGD step, inlined with the fewest NumPy calls (one hidden layer, rect).

    The network is initialised as :class:`npmlp.training.Trainer` does for the same seed
    and with ``source="gather"`` or ``"prefetch"`` visits the same shuffled minibatches: its
    parameters after an epoch are those of ``Trainer.run_epoch``, bit for bit (tested), so the
    floor does all of the step's work, in the fewest calls. Returns ``(epoch, net)``.
    """
    if len(p.hidden) != 1 or source not in SOURCES:
        raise ValueError(f"one hidden layer and a source in {SOURCES}. Got {p.hidden} and {source!r} instead.")
    config = TrainConfig(hidden=p.hidden, l1=p.l1, l2=p.l2, dtype=p.X.dtype.name, lr=p.lr,
                         batch_size=p.batch_size, seed=p.seed)
    rng = np.random.default_rng(p.seed)
    net = config.build(p.X.shape[1], p.n_classes, rng)
    W1, b1, W2, b2 = (net.params[k] for k in ("W1", "b1", "W2", "b2"))
    K, (h, d), dt, X, y = p.batch_size, W1.shape, W1.dtype, p.X, p.y
    A1, H1, M1, dH1, Z = (np.empty((K, h), dt, order="F") for _ in range(5))
    Z.fill(0)
    Oa = np.empty((K, p.n_classes), dt, order="F" if h <= 64 else "C")
    dW1, dW2, db1, db2, S1, S2 = (np.empty_like(a) for a in (W1, W2, b1, b2, W1, W2))
    Xbuf, ybuf, ones, rows = np.empty((K, d), dt), np.empty(K, np.intp), np.ones(K, dt), np.arange(K)
    a, c, t = p.l1 * p.lr, 2 * p.l2 * p.lr, np.finfo(dt).tiny  # penalty gradient times the step size

    def step(Xb: np.ndarray, yb: np.ndarray) -> None:
        k, g = Xb.shape[0], p.lr / Xb.shape[0]
        A, H, M, dH, Ok = A1[:k], H1[:k], M1[:k], dH1[:k], Oa[:k]
        np.matmul(Xb, W1.T, out=A), np.add(A, b1, out=A), np.maximum(A, Z[:k], out=H)
        np.matmul(H, W2.T, out=Ok), np.add(Ok, b2, out=Ok)
        np.subtract(Ok, Ok.max(axis=1, keepdims=True), out=Ok), np.exp(Ok, out=Ok)
        np.multiply(Ok, g / Ok.sum(axis=1, keepdims=True), out=Ok)
        Ok[rows[:k], yb] -= g
        np.matmul(Ok.T, H, out=dW2), np.matmul(ones[:k], Ok, out=db2), np.matmul(Ok, W2, out=dH)
        np.greater(A, Z[:k], out=M), np.multiply(dH, M, out=dH)
        np.matmul(dH.T, Xb, out=dW1), np.matmul(ones[:k], dH, out=db1)
        if a:  # a * sign(W) as npmlp.kernels.l1_sign computes it (a < 2)
            W1.clip(-t, t, out=S1), np.multiply(S1, a / t, out=S1), np.add(dW1, S1, out=dW1)
            W2.clip(-t, t, out=S2), np.multiply(S2, a / t, out=S2), np.add(dW2, S2, out=dW2)
        if c:
            np.multiply(W1, c, out=S1), np.add(dW1, S1, out=dW1), np.multiply(W2, c, out=S2), np.add(dW2, S2, out=dW2)
        np.subtract(W1, dW1, out=W1), np.subtract(b1, db1, out=b1)
        np.subtract(W2, dW2, out=W2), np.subtract(b2, db2, out=b2)

    n = X.shape[0]
    cache = np.ascontiguousarray(X[: CACHED_BATCHES * K]) if source == "cache" else None
    prefetcher = Prefetcher(K)

    def epoch() -> float:
        tic = time.perf_counter()
        if source == "gather":
            order = rng.permutation(n)
            for s in range(0, n, K):
                step(*gather_rows(X, y, order[s : s + K], Xbuf, ybuf))
        elif source == "prefetch":
            with one_blas_thread():
                for Xb, yb in prefetcher.minibatches(X, y, rng.permutation(n), 0):
                    step(Xb, yb)
        elif source == "stream":
            for s in range(0, n, K):
                step(X[s : s + K], y[s : s + K])
        else:
            for s in range(0, n, K):
                j = s % (CACHED_BATCHES * K)
                step(cache[j : j + K], y[j : j + K])
        return time.perf_counter() - tic

    return epoch, net


def floor(name: str, repeats: int, threads: int | None, *, data: tuple | None = None, batch_size: int = 100,
          settle: float = SETTLE) -> dict:
    """Time the epochs of preset ``name`` interleaved, each after ``settle`` seconds of rest; the medians,
    mins and floors.

    ``data``, an ``(X, y)`` pair, replaces Fashion-MNIST's training split.
    """
    c = PRESETS[name]
    X, y, m = training_data("fashion-mnist", c["dtype"], data=data)
    p = Problem(X, y, m, tuple(c["hidden"]), c.get("batch_size", batch_size), c.get("lr", 0.03), c["l1"], c["l2"], 0,
                c.get("optimizer", "sgd"))
    gemm = gemm_epoch(p)
    epochs = {"gemm-only": gemm, "gemm-1thread": one_thread_epoch(gemm), "gather-only": gather_epoch(p),
              "update-only": update_epoch(p),
              "update-1thread": update_epoch(p, threads=1), "npmlp-matrix": npmlp_epoch(p),
              **{f"step-{s}": step_floor(p, s)[0] for s in SOURCES}}
    if p.optimizer != "sgd":
        epochs["update-sgd"] = update_epoch(Problem(**{**vars(p), "l1": 0.0, "l2": 0.0}), optimizer="sgd")

    def log(line: str) -> None:
        print(f"[{name}] {line}", file=sys.stderr)

    with pinned_threads(threads):
        _, runs, _ = interleave(epochs, repeats, settle=settle, log=log)
    med = {k: statistics.median(v) for k, v in runs.items()}
    g = med["gemm-only"]
    return {"config": name, **{k: c[k] for k in ("hidden", "dtype", "l1", "l2")}, "median_seconds": med,
            "min_seconds": {k: min(v) for k, v in runs.items()},
            "floor_sequential": (g + med["gather-only"] + med["update-only"]) / g,
            "floor_gather_hidden": (g + med["update-only"]) / g,
            "floor_gather_hidden_one_thread": (med["gemm-1thread"] + med["update-only"]) / g,
            **{f"step_{s}_over_gemm": med[f"step-{s}"] / g for s in SOURCES},
            # the inlined step runs SGD: with another rule, swap its update for the rule's
            "step_gather_rule_over_gemm": ((med["step-gather"] - med["update-sgd"] + med["update-only"]) / g
                                           if "update-sgd" in med else med["step-gather"] / g),
            "npmlp_over_gemm": med["npmlp-matrix"] / g,
            "npmlp_over_gemm_best": min(runs["npmlp-matrix"]) / min(runs["gemm-only"]),
            # paired round by round: a slow phase hits both sides of each ratio
            "npmlp_over_step_paired": {s: paired_ratio(runs["npmlp-matrix"], runs[f"step-{s}"]) for s in SOURCES}}


def paired_ratio(a: list[float], b: list[float]) -> float:
    """The median over rounds of ``a[i] / b[i]``: epoch against epoch of the same round."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", choices=sorted(PRESETS), default=["A", "B"])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: usable CPUs)")
    ap.add_argument("--settle", type=float, default=SETTLE, help=f"seconds of rest before each timed epoch ({SETTLE})")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 0 <= args.settle <= 60:  # also refuses nan
        ap.error(f"--settle must be 0-60 seconds. Got {args.settle} instead.")
    docs = [floor(name, args.repeats, args.threads, settle=args.settle) for name in args.config]
    if args.json:
        print(json.dumps(docs, indent=1))
        return 0
    for d in docs:
        print(f"[{d['config']}] hidden {d['hidden']}, {d['dtype']}, l1={d['l1']}, l2={d['l2']}: "
              f"median seconds per epoch of {args.repeats} interleaved rounds")
        for k, v in d["median_seconds"].items():
            print(f"  {k:<14} {v:8.4f}   {v / d['median_seconds']['gemm-only']:5.2f}x gemm-only")
        print(f"  floor, gather in line:     {d['floor_sequential']:.3f}x gemm-only")
        print(f"  floor, gather hidden:      {d['floor_gather_hidden']:.3f}x gemm-only")
        print(f"  floor, gather on a core taken from BLAS: {d['floor_gather_hidden_one_thread']:.3f}x gemm-only")
        for s in SOURCES:
            print(f"  whole step inlined, {s:<8} {d[f'step_{s}_over_gemm']:.3f}x gemm-only")
        if "update-sgd" in d["median_seconds"]:
            print(f"  step-gather with its rule: {d['step_gather_rule_over_gemm']:.3f}x gemm-only "
                  "(the inlined SGD step, its P -= G swapped for the rule's update)")
        print(f"  npmlp-matrix:              {d['npmlp_over_gemm']:.3f}x gemm-only "
              f"(fastest rounds: {d['npmlp_over_gemm_best']:.3f}x)")
        paired = d["npmlp_over_step_paired"]
        print("  npmlp-matrix over each inlined step, the median of the rounds' ratios: "
              + ", ".join(f"{s} {paired[s]:.3f}x" for s in SOURCES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
