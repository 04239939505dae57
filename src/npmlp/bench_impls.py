"""What ``npmlp bench`` times: the training problem, and one epoch of each implementation.

Each ``*_epoch`` function builds its implementation's state once and returns an :data:`Epoch`,
a callable that trains one epoch and returns its seconds. See :mod:`npmlp.bench` for what each
implementation does and why it is written the way its own users write it.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import fused
from .dtypes import Array, Labels, resolve_dtype
from .network import MLP
from .training import TrainConfig, Trainer

Epoch = Callable[[], float]  # trains (or multiplies) one epoch, returns seconds per epoch


IMPLS = ("npmlp-matrix", "npmlp-numpy", "npmlp-loop", "gemm-only", "sklearn", "torch")


BASE = "npmlp-matrix"


PEER_HINTS = {"sklearn": "pip install 'npmlp[bench]'", "torch": "pip install torch==2.13.0"}


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
    optimizer: str = "sgd"  # "sgd" or "adam": the rule every implementation uses

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.X.shape[1], *self.hidden, self.n_classes)


def _timed(fn: Callable[[], object], scale: float = 1.0) -> float:
    tic = time.perf_counter()
    fn()
    return (time.perf_counter() - tic) * scale


def npmlp_epoch(p: Problem, *, backprop: str = "matrix", rows: int | None = None, compiled: bool = True) -> Epoch:
    """npmlp's :meth:`Trainer.run_epoch`, on the first ``rows`` rows scaled to all of them.

    ``compiled=False``: the update rules as NumPy passes even where numba could compile them
    (:mod:`npmlp.fused`), the ``npmlp-numpy`` row.
    """
    config = TrainConfig(hidden=p.hidden, l1=p.l1, l2=p.l2, dtype=p.X.dtype.name, lr=p.lr,
                         batch_size=p.batch_size, backprop=backprop, seed=p.seed, optimizer=p.optimizer)
    trainer = Trainer.new(config, p.X.shape[1], p.n_classes)
    if not compiled:
        trainer.workspace.fused = False
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

    clf = MLPClassifier(hidden_layer_sizes=p.hidden, activation="relu", solver=p.optimizer, batch_size=p.batch_size,
                        learning_rate="constant", learning_rate_init=p.lr, momentum=0.0, nesterovs_momentum=False,
                        alpha=2 * p.l2 * p.batch_size, shuffle=True, random_state=p.seed)
    classes = np.arange(p.n_classes)
    return lambda: _timed(lambda: clf.partial_fit(p.X, p.y, classes=classes))


def torch_model(p: Problem) -> Any:
    """PyTorch's ``nn.Sequential`` of ``nn.Linear``/``nn.ReLU`` layers for ``p``, seeded."""
    import torch
    from torch import nn

    dt = {"float64": torch.float64, "float32": torch.float32}[p.X.dtype.name]
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the global RNG
        torch.manual_seed(p.seed)
        for i, o in zip(p.sizes[:-1], p.sizes[1:], strict=True):
            layers += [nn.Linear(i, o, dtype=dt), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def torch_params(model: Any) -> dict[str, Any]:
    """The model's parameters by npmlp's names (``W1``, ``b1``, ...)."""
    linear = [m for m in model if hasattr(m, "weight")]
    return {f"{s}{i}": getattr(m, a) for i, m in enumerate(linear, 1) for s, a in (("W", "weight"), ("b", "bias"))}


def torch_step(p: Problem, model: Any, **options: float) -> Callable[[Any, Any], None]:
    """One minibatch of training as PyTorch's users write it, with ``p``'s rule and elastic net.

    ``F.cross_entropy``, ``torch.optim.SGD`` or ``Adam`` (``options`` go to it); L2 as
    ``weight_decay`` on the weights, L1's gradient added to ``.grad`` in place; no penalty
    term in the graph.
    """
    import torch
    from torch.nn import functional as F

    params = torch_params(model)
    weights = [v for k, v in params.items() if k[0] == "W"]
    # NOTE: L2 as weight_decay, on the weights only (npmlp penalises no bias): torch adds
    # weight_decay * W to the gradient before the rule, and our l2 * ||W||^2 adds 2 l2 W.
    groups = [{"params": weights, "weight_decay": 2 * p.l2},
              {"params": [v for k, v in params.items() if k[0] == "b"], "weight_decay": 0.0}]
    rule = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[p.optimizer]
    opt = rule(groups, lr=p.lr, **options)

    def step(Xb: Any, yb: Any) -> None:
        loss = F.cross_entropy(model(Xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.l1:
            with torch.no_grad():  # the L1 gradient added in place, as the NumPy codes do
                for W in weights:
                    W.grad.add_(W.sign(), alpha=p.l1)
        opt.step()

    return step


def torch_epoch(p: Problem) -> Epoch:
    """PyTorch (:func:`torch_model`, :func:`torch_step`), minibatches gathered by index from a ``randperm``."""
    import torch

    step = torch_step(p, torch_model(p))
    X, y, K = torch.from_numpy(p.X), torch.from_numpy(p.y).long(), p.batch_size
    gen = torch.Generator().manual_seed(p.seed)

    def epoch() -> None:
        order = torch.randperm(X.shape[0], generator=gen)
        for s in range(0, X.shape[0], K):
            index = order[s : s + K]
            step(X[index], y[index])

    return lambda: _timed(epoch)


def import_peer(name: str) -> str | None:
    """None when peer ``name`` imports, else why not with the install hint."""
    module = {"sklearn": "sklearn.neural_network", "torch": "torch"}[name]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"not installed ({exc.__class__.__name__}: {exc}); {PEER_HINTS[name]}"
    return None


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


def build_epochs(p: Problem, impls: Sequence[str], loop_batches: int) -> dict[str, Epoch]:
    build: dict[str, Callable[[], Epoch]] = {
        "npmlp-matrix": lambda: npmlp_epoch(p),
        "npmlp-numpy": lambda: npmlp_epoch(p, compiled=False),
        "npmlp-loop": lambda: npmlp_epoch(p, backprop="loop", rows=loop_batches * p.batch_size),
        "gemm-only": lambda: gemm_epoch(p),
        "sklearn": lambda: sklearn_epoch(p),
        "torch": lambda: torch_epoch(p),
    }
    return {name: build[name]() for name in impls}


def implementation_notes(p: Problem, loop_batches: int) -> dict[str, str]:
    timed = min(loop_batches * p.batch_size, p.X.shape[0])
    return {
        "npmlp-loop": (f"timed on {timed} rows ({-(-timed // p.batch_size)} minibatches), scaled to the epoch"
                       if timed < p.X.shape[0] else "whole epoch"),
        "npmlp-numpy": "npmlp-matrix with the update rules as NumPy passes, not numba's compiled loops",
        "gemm-only": "the limit: the matrix products of forward + backprop only",
        "sklearn": f"partial_fit epoch, solver={p.optimizer}; alpha = 2*l2*K = {2 * p.l2 * p.batch_size:g}; no L1 term",
        "torch": (f"nn.Linear/ReLU, cross_entropy, optim.{'Adam' if p.optimizer == 'adam' else 'SGD'}"
                  + (f", weight_decay = 2*l2 = {2 * p.l2:g}" if p.l2 else "")
                  + (", l1*sign(W) added to .grad" if p.l1 else "")),
    }


def implementations(*, peers: bool, loop: bool) -> tuple[list[str], dict[str, str]]:
    """The implementations to time, in order, and the peers skipped with why."""
    skipped = {name: why for name in PEER_HINTS if peers and (why := import_peer(name))}
    wanted = [i for i in IMPLS if (loop or i != "npmlp-loop") and (peers or i not in PEER_HINTS)
              and (i != "npmlp-numpy" or fused.rules() is not None)]  # without numba, npmlp-matrix is it
    return [i for i in wanted if i not in skipped], skipped
