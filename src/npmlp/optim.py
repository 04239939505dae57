"""Update rules and learning-rate schedules, each written as the course writes it.

An optimizer only turns gradients into parameter updates; it knows nothing of networks.
``step(params, grads, lr)`` receives the objective's gradient ``g`` for each parameter
(``grads[k]``, of ``params[k]``'s shape) and the step size ``eta_t``, and updates the
parameter arrays in place:

=========  ==================================================================
sgd        ``theta <- theta - eta g`` (the assignment's 2.6)
momentum   ``v <- mu v - eta g``;  ``theta <- theta + v``
nesterov   ``v <- mu v - eta g``;  ``theta <- theta + mu v - eta g`` (Sutskever's form)
adam       ``m <- b1 m + (1 - b1) g``;  ``v <- b2 v + (1 - b2) g^2``;
           ``theta <- theta - eta_hat m / (sqrt(v) + eps)``,
           ``eta_hat = eta sqrt(1 - b2^t) / (1 - b1^t)``
=========  ==================================================================

``state`` holds each rule's running arrays by name (``v/W1``, ``m/W1``, ``t``), saved in
checkpoints. The training loop runs the same rules in place on gradients that already
carry ``eta`` (:func:`npmlp.kernels.scaled_step`), which saves passes over the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Arrays = dict[str, NDArray[np.floating]]


class Optimizer(Protocol):
    """What the training loop needs of an update rule."""

    state: Arrays

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        """Update ``params`` in place from the gradients ``grads`` and the step size ``lr``."""


class SGD:
    """Plain gradient descent (the assignment's 2.6): ``theta <- theta - eta_t g``."""

    def __init__(self, params: Arrays) -> None:
        self.state: Arrays = {}

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            P -= lr * grads[k]


class Momentum:
    """Heavy ball: ``v <- mu v - eta g``, ``theta <- theta + v``."""

    def __init__(self, params: Arrays, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.state = {f"v/{k}": np.zeros_like(P) for k, P in params.items()}

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            V = self.state[f"v/{k}"]
            V[...] = self.momentum * V - lr * grads[k]
            P += V


class Nesterov(Momentum):
    """Nesterov momentum in Sutskever's form: ``v <- mu v - eta g``, ``theta <- theta + mu v - eta g``."""

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            V = self.state[f"v/{k}"]
            V[...] = self.momentum * V - lr * grads[k]
            P += self.momentum * V - lr * grads[k]


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction."""

    def __init__(self, params: Arrays, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.state = {f"{s}/{k}": np.zeros_like(P) for k, P in params.items() for s in ("m", "v")}
        self.state["t"] = np.zeros((), dtype=np.int64)

    def advance(self, lr: float) -> float:
        """Count one more step ``t`` and return its step size ``eta sqrt(1 - b2^t) / (1 - b1^t)``."""
        t = int(self.state["t"]) + 1
        self.state["t"][...] = t
        # NOTE: bias correction folded into the step size, as in the paper's Algorithm 1 remark.
        return lr * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        step = self.advance(lr)
        b1, b2 = self.beta1, self.beta2
        for k, P in params.items():
            M, V, G = self.state[f"m/{k}"], self.state[f"v/{k}"], grads[k]
            M[...] = b1 * M + (1 - b1) * G
            V[...] = b2 * V + (1 - b2) * G**2
            P -= step * M / (np.sqrt(V) + self.eps)


OPTIMIZERS: dict[str, Callable[..., SGD | Momentum | Adam]] = {
    "adam": Adam,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "sgd": SGD,
}


def make_optimizer(name: str, params: Arrays, **options: float) -> SGD | Momentum | Adam:
    """An optimizer by name (``sgd``, ``momentum``, ``nesterov``, ``adam``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(sorted(OPTIMIZERS))}. Got {name!r} instead.")
    return OPTIMIZERS[name](params, **options)


# -- learning-rate schedules: eta_t for epoch t (0-based) ------------------------------
def constant(lr: float, t: int, *, epochs: int, decay: float, step: int, gamma: float) -> float:
    """``eta_t = eta_0``."""
    return lr


def invscaling(lr: float, t: int, *, epochs: int, decay: float, step: int, gamma: float) -> float:
    """``eta_t = eta_0 / (1 + decay * t)``."""
    return lr / (1 + decay * t)


def step_decay(lr: float, t: int, *, epochs: int, decay: float, step: int, gamma: float) -> float:
    """``eta_t = eta_0 * gamma ** floor(t / step)``."""
    return lr * gamma ** (t // step)


def cosine(lr: float, t: int, *, epochs: int, decay: float, step: int, gamma: float) -> float:
    """``eta_t = eta_0 (1 + cos(pi t / epochs)) / 2``: from eta_0 down to near 0 at the last epoch."""
    return lr * 0.5 * (1 + math.cos(math.pi * t / max(epochs, 1)))


SCHEDULES = {"constant": constant, "cosine": cosine, "invscaling": invscaling, "step": step_decay}


def learning_rate(
    schedule: str, lr: float, t: int, *, epochs: int, decay: float = 0.01, step: int = 10, gamma: float = 0.5
) -> float:
    """The learning rate of epoch ``t`` (0-based) under ``schedule``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(sorted(SCHEDULES))}. Got {schedule!r} instead.")
    return SCHEDULES[schedule](lr, t, epochs=epochs, decay=decay, step=step, gamma=gamma)
