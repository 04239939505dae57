"""Update rules and learning-rate schedules.

An optimizer only turns gradients into parameter updates; it knows nothing of
networks. Every step works in place on the parameter arrays and may overwrite the
gradient arrays (they are scratch buffers refilled by the next backprop), so a
training step allocates nothing the size of a weight matrix.

``step(params, grads, lr)`` receives ``grads`` already multiplied by
``gradient_scale(lr)``: the step size for the rules that only ever use ``lr * g``
(sgd, momentum, nesterov), 1 for Adam. The backprop folds that factor into its small
output gradient, which saves a pass over every weight matrix per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Arrays = dict[str, NDArray[np.floating]]


class SGD:
    """Plain gradient descent (seed 2.6): ``theta <- theta - eta_t * g``."""

    def __init__(self, params: Arrays) -> None:
        self.state: Arrays = {}

    def gradient_scale(self, lr: float) -> float:
        return lr

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            P -= grads[k]  # grads[k] holds eta_t * g


class Momentum:
    """Heavy ball: ``v <- mu v - eta g``, ``theta <- theta + v``."""

    def __init__(self, params: Arrays, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.state = {f"v/{k}": np.zeros_like(P) for k, P in params.items()}

    def gradient_scale(self, lr: float) -> float:
        return lr

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            V, G = self.state[f"v/{k}"], grads[k]  # G holds eta * g
            V *= self.momentum
            V -= G
            P += V


class Nesterov(Momentum):
    """Nesterov momentum in Sutskever's form: ``v <- mu v - eta g``, ``theta <- theta + mu v - eta g``."""

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        for k, P in params.items():
            V, G = self.state[f"v/{k}"], grads[k]  # G holds eta * g
            V *= self.momentum
            V -= G
            P -= G
            np.multiply(V, self.momentum, out=G)  # G is spent: reuse it for mu * v
            P += G


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction."""

    def __init__(self, params: Arrays, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.state = {f"{s}/{k}": np.zeros_like(P) for k, P in params.items() for s in ("m", "v")}
        self.state["t"] = np.zeros((), dtype=np.int64)

    def gradient_scale(self, lr: float) -> float:
        return 1.0  # Adam divides by the gradient's running scale: it needs g itself

    def step(self, params: Arrays, grads: Arrays, lr: float) -> None:
        t = int(self.state["t"]) + 1
        self.state["t"][...] = t
        b1, b2 = self.beta1, self.beta2
        # NOTE: bias correction folded into the step size, as in the paper's Algorithm 1 remark.
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for k, P in params.items():
            M, V, G = self.state[f"m/{k}"], self.state[f"v/{k}"], grads[k]
            # NOTE: in place, no temporaries: b*M + (1-b)*G == b*(M - G) + G.
            M -= G
            M *= b1
            M += G
            G *= G  # G now holds g^2; the gradient itself is spent
            V -= G
            V *= b2
            V += G
            np.sqrt(V, out=G)
            G += self.eps
            np.divide(M, G, out=G)
            G *= step
            P -= G


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
