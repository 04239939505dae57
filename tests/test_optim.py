"""Update rules against their textbook formulas; schedules by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from npmlp.optim import OPTIMIZERS, learning_rate, make_optimizer


def quadratic_grad(P: np.ndarray) -> np.ndarray:
    # f(P) = 0.5 * sum(a * P^2), gradient a * P, minimum at 0
    return np.array([1.0, 10.0]) * P


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_minimises_a_quadratic(name: str) -> None:
    params = {"W1": np.array([3.0, -2.0])}
    opt = make_optimizer(name, params)
    for _ in range(500):
        lr = 0.05
        opt.step(params, {"W1": quadratic_grad(params["W1"])}, lr)
    assert np.abs(params["W1"]).max() < 1e-2


def test_momentum_and_nesterov_match_their_formulas() -> None:
    mu, lr = 0.9, 0.1
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    for name in ("momentum", "nesterov"):
        P = {"W1": np.array([1.0, 1.0])}
        opt = make_optimizer(name, P, momentum=mu)
        opt.step(P, {"W1": g1}, lr)
        opt.step(P, {"W1": g2}, lr)
        v1 = -lr * g1
        v2 = mu * v1 - lr * g2
        # momentum: theta += v_new; nesterov: theta += mu * v_new - lr * g
        expected = 1 + v1 + v2 if name == "momentum" else 1 + (mu * v1 - lr * g1) + (mu * v2 - lr * g2)
        np.testing.assert_allclose(P["W1"], expected, rtol=1e-15)


def test_adam_matches_the_paper() -> None:
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    P = {"W1": np.array([1.0, -1.0, 0.5])}
    opt = make_optimizer("adam", P)
    ref, m, v = P["W1"].copy(), 0.0, 0.0
    rng = np.random.default_rng(0)
    for t in range(1, 6):
        g = rng.standard_normal(3)
        opt.step(P, {"W1": g.copy()}, lr)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        ref = ref - step * m / (np.sqrt(v) + eps)
    np.testing.assert_allclose(P["W1"], ref, rtol=1e-12)


def test_schedules() -> None:
    assert learning_rate("constant", 0.1, 7, epochs=10) == 0.1
    assert learning_rate("invscaling", 0.1, 4, epochs=10, decay=0.5) == pytest.approx(0.1 / 3)
    assert learning_rate("step", 0.1, 25, epochs=100, step=10, gamma=0.5) == pytest.approx(0.025)
    assert learning_rate("cosine", 0.1, 0, epochs=10) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 5, epochs=10) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine, invscaling, step. Got 'exp'"):
        learning_rate("exp", 0.1, 0, epochs=1)
    with pytest.raises(ValueError, match="optimizer must be one of adam, momentum, nesterov, sgd. Got 'lbfgs'"):
        make_optimizer("lbfgs", {})
