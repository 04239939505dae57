#!/usr/bin/env python
"""Seconds of training to each test error: the tuned recipe in npmlp and in PyTorch, side by side.

    .venv/bin/python benchmarks/time_to_accuracy.py                  # 30 epochs, seeds 0 1 2
    .venv/bin/python benchmarks/time_to_accuracy.py --seeds 0 --epochs 5 --json

The recipe is the README's tuned run: one hidden layer of 1024 rect units, Adam with
lr 1e-3 and a cosine schedule over the epochs (``npmlp.optim.cosine``, set per epoch),
minibatches of 128, L2 1e-5 on the weights, float32, no dropout, so that PyTorch runs the
very same recipe, written as its users write it (``nn.Linear``/``nn.ReLU``,
``F.cross_entropy``, ``torch.optim.Adam`` with ``weight_decay = 2 * l2`` on the weights,
``LambdaLR`` stepped once per epoch, ``randperm`` minibatches). Each seed trains both
models one epoch at a time, alternating (npmlp, torch, npmlp, torch, ...), so a slow phase
of the machine hits both; only the training epochs are timed, each after ``--settle``
seconds of rest. After every epoch each model's test error is measured (not timed).

Reported for each threshold (every 1% of test error from 20% down, then 10.5%): the
training seconds until the first epoch at or under it, the median over seeds (``None``
where a seed never got there), and npmlp's median over PyTorch's; then npmlp's epoch over
PyTorch's, paired epoch by epoch, over the epochs where both ran at steady speed
(:func:`steady_epochs`): the machine's slow phases weigh on the times above by how many
epochs they took.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from npmlp.bench import STEADY as BENCH_STEADY
from npmlp.bench import pinned_threads
from npmlp.datasets import load_dataset
from npmlp.minibatches import usable_cpus
from npmlp.optim import learning_rate
from npmlp.training import TrainConfig, Trainer

RECIPE: dict[str, Any] = {"hidden": (1024,), "optimizer": "adam", "lr": 1e-3, "lr_schedule": "cosine",
                          "batch_size": 128, "l2": 1e-5, "dtype": "float32"}
THRESHOLDS = tuple(t / 100 for t in range(20, 10, -1)) + (0.105,)

#: One model under training: ``epoch(t)`` trains epoch ``t`` and returns its seconds;
#: ``error()`` is the test error now.
Model = tuple[Callable[[int], float], Callable[[], float]]


def npmlp_model(data: Any, seed: int, epochs: int) -> Model:
    config = TrainConfig(**RECIPE, epochs=epochs, seed=seed)
    trainer = Trainer.new(config, data.X_train.shape[1], data.n_classes)

    def epoch(t: int) -> float:
        trainer.state.epoch = t  # the schedule's epoch (what train() keeps in the state)
        tic = time.perf_counter()
        trainer.run_epoch(data.X_train, data.y_train)
        return time.perf_counter() - tic

    def error() -> float:
        return float(np.mean(trainer.net.predict(data.X_test) != data.y_test))

    return epoch, error


def torch_model(data: Any, seed: int, epochs: int) -> Model:
    import torch
    from torch import nn
    from torch.nn import functional as F

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(data.X_train.shape[1], 1024), nn.ReLU(), nn.Linear(1024, data.n_classes))
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    biases = [m.bias for m in model if isinstance(m, nn.Linear)]
    opt = torch.optim.Adam([{"params": weights, "weight_decay": 2 * RECIPE["l2"]},
                            {"params": biases, "weight_decay": 0.0}], lr=RECIPE["lr"])
    # the same cosine as npmlp's, as a factor of the initial lr, stepped once per epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: learning_rate("cosine", 1.0, t, epochs=epochs))
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train).long()
    Xt, K = torch.from_numpy(data.X_test), RECIPE["batch_size"]
    gen = torch.Generator().manual_seed(seed)

    def epoch(t: int) -> float:
        tic = time.perf_counter()
        model.train()
        order = torch.randperm(X.shape[0], generator=gen)
        for s in range(0, X.shape[0], K):
            index = order[s : s + K]
            loss = F.cross_entropy(model(X[index]), y[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        return time.perf_counter() - tic

    def error() -> float:
        with torch.no_grad():
            return float((model(Xt).argmax(1).numpy() != data.y_test).mean())

    return epoch, error


def times_to(errors: Sequence[float], seconds: Sequence[float],
             thresholds: Sequence[float]) -> dict[float, float | None]:
    """For each threshold, the training seconds up to the first epoch whose error is at or under it."""
    elapsed = np.cumsum(seconds)
    out: dict[float, float | None] = {}
    for t in thresholds:
        hit = [i for i, e in enumerate(errors) if e <= t]
        out[t] = float(elapsed[hit[0]]) if hit else None
    return out


def median_or_none(values: Sequence[float | None]) -> float | None:
    """The median of the seeds' times; None unless more than half of them reached the threshold."""
    got = sorted(math.inf if v is None else v for v in values)
    m = statistics.median(got)
    return None if math.isinf(m) else m


#: An epoch pair is steady when both epochs are within this fraction of their implementation's
#: fastest: the bench's margin for npmlp's epoch (the machine's slow phases double it).
STEADY = BENCH_STEADY[1]


def steady_epochs(curves: dict[str, list[dict[str, list[float]]]]) -> dict[str, Any] | None:
    """npmlp's epoch over PyTorch's, paired epoch by epoch, over the pairs where both ran at steady speed.

    Returns ``{"pairs": n, "of": total, "median": r, "range": [lo, hi]}``, or None without both.
    """
    if not {"npmlp", "torch"} <= set(curves):
        return None
    pairs = [(a, b) for cn, ct in zip(curves["npmlp"], curves["torch"], strict=True)
             for a, b in zip(cn["seconds"], ct["seconds"], strict=True)]
    fastest = min(a for a, _ in pairs), min(b for _, b in pairs)
    ratios = [a / b for a, b in pairs if a <= (1 + STEADY) * fastest[0] and b <= (1 + STEADY) * fastest[1]]
    out: dict[str, Any] = {"pairs": len(ratios), "of": len(pairs)}
    if ratios:
        out.update(median=statistics.median(ratios), range=[min(ratios), max(ratios)])
    return out


def run(data: Any, seeds: Sequence[int], epochs: int, settle: float, impls: Sequence[str],
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every implementation for every seed, epochs alternating; the curves and times to each error."""
    build = {"npmlp": npmlp_model, "torch": torch_model}
    curves: dict[str, list[dict[str, list[float]]]] = {k: [] for k in impls}
    for seed in seeds:
        models = {k: build[k](data, seed, epochs) for k in impls}
        curve = {k: {"seconds": [], "test_error": []} for k in impls}
        for t in range(epochs):
            for k, (epoch, error) in models.items():
                time.sleep(settle)
                curve[k]["seconds"].append(epoch(t))
                curve[k]["test_error"].append(error())
                if log:
                    log(f"seed {seed} epoch {t + 1}/{epochs} {k:<6} {curve[k]['seconds'][-1]:.3f} s, "
                        f"test error {curve[k]['test_error'][-1]:.4f}")
        for k in impls:
            curves[k].append(curve[k])
    times = {k: {t: median_or_none([times_to(c["test_error"], c["seconds"], [t])[t] for c in curves[k]])
                 for t in THRESHOLDS} for k in impls}
    epoch_median = {k: statistics.median(s for c in curves[k] for s in c["seconds"]) for k in impls}
    return {"recipe": {**RECIPE, "epochs": epochs}, "seeds": list(seeds), "curves": curves,
            "median_seconds_to": {k: {f"{t:.3f}": v for t, v in times[k].items()} for k in impls},
            "median_epoch_seconds": epoch_median, "steady_epochs": steady_epochs(curves)}


def format_table(doc: dict[str, Any]) -> str:
    impls = list(doc["median_seconds_to"])
    lines = [f"training seconds to each test error, median of seeds {doc['seeds']} "
             f"(tuned recipe, {doc['recipe']['epochs']} epochs)",
             f"{'test error':>10} " + " ".join(f"{k:>9}" for k in impls)
             + ("   npmlp / torch" if {"npmlp", "torch"} <= set(impls) else "")]
    for t in doc["median_seconds_to"][impls[0]]:
        row = [doc["median_seconds_to"][k][t] for k in impls]
        text = " ".join(f"{'-' if v is None else f'{v:.1f}':>9}" for v in row)
        if {"npmlp", "torch"} <= set(impls):
            a, b = doc["median_seconds_to"]["npmlp"][t], doc["median_seconds_to"]["torch"][t]
            text += f"   {a / b:.2f}x" if a is not None and b is not None else "   -"
        lines.append(f"{float(t):>10.1%} {text}")
    per_epoch = doc["median_epoch_seconds"]
    lines.append("median seconds per epoch: " + ", ".join(f"{k} {v:.3f}" for k, v in per_epoch.items()))
    st = doc.get("steady_epochs")
    if st:
        lines.append(f"steady epochs (both within {STEADY:.0%} of their fastest): {st['pairs']} of {st['of']} pairs"
                     + (f"; npmlp / torch median {st['median']:.2f}x ({st['range'][0]:.2f}-{st['range'][1]:.2f}x)"
                        if st["pairs"] else "; none: the machine never ran steadily"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--settle", type=float, default=0.5, help="seconds of rest before each timed epoch")
    ap.add_argument("--threads", type=int, default=None, help="BLAS and torch threads (default: usable CPUs)")
    ap.add_argument("--no-torch", action="store_true", help="npmlp only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    impls = ["npmlp"] if args.no_torch else ["npmlp", "torch"]
    if "torch" in impls:
        import torch  # noqa: F401  (imported before the threads are pinned, as npmlp bench does)
    data = load_dataset("fashion-mnist", dtype=RECIPE["dtype"])
    log = None if args.json else (lambda msg: print(f"[tta] {msg}", file=sys.stderr, flush=True))
    with pinned_threads(args.threads or usable_cpus()):
        doc = run(data, args.seeds, args.epochs, args.settle, impls, log)
    print(json.dumps(doc, indent=1) if args.json else format_table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
