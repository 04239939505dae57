"""The gradient checker passes correct gradients, catches wrong ones and skips kinks."""

from __future__ import annotations

import numpy as np
import pytest

from npmlp.gradcheck import check_gradients
from npmlp.network import MLP


@pytest.mark.parametrize("act", ["rect", "tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("hidden", [(2,), (8, 8)])
@pytest.mark.parametrize("K", [1, 10])
def test_passes_with_every_penalty_on(act: str, hidden: tuple[int, ...], K: int) -> None:
    rng = np.random.default_rng(3)
    net = MLP.initialize((2, *hidden, 2), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((K, 2)), rng.integers(0, 2, K)
    report = check_gradients(net, X, y)
    assert report.passed and report.max_rel_error < 1e-6, report.format_text()
    assert sum(p.checked + p.skipped_kinks for p in report.params.values()) == sum(v.size for v in net.params.values())


def flipped_sign(net: MLP, X, y) -> dict:
    g = net.gradients(X, y)
    g["W2"] = -g["W2"]
    return g


def forgotten_penalty(net: MLP, X, y) -> dict:
    from npmlp.network import matrix_backprop

    return matrix_backprop(net, X, y)  # the data term alone


@pytest.mark.parametrize("wrong", [flipped_sign, forgotten_penalty])
def test_catches_a_wrong_gradient(wrong) -> None:
    rng = np.random.default_rng(0)
    net = MLP.initialize((2, 3, 2), rng=rng, activation="tanh", l1=1e-2, l2=1e-2)
    X, y = rng.standard_normal((5, 2)), rng.integers(0, 2, 5)
    report = check_gradients(net, X, y, gradient_fn=wrong)
    assert not report.passed
    assert report.params["W2"].max_rel_error > 1e-3
    assert "FAILED" in report.format_text()


def test_kinks_are_skipped_and_counted() -> None:
    # An input of exactly zero puts every first-layer pre-activation at b1 = 0: the
    # rect kink sits right under the step, so all those entries must be skipped.
    net = MLP.initialize((2, 3, 2), rng=np.random.default_rng(0), l1=1e-3)
    report = check_gradients(net, np.zeros((1, 2)), np.array([1]))
    assert report.params["b1"].skipped_kinks == 3
    assert report.passed


def test_subset_is_reported(rng) -> None:
    net = MLP.initialize((30, 20, 3), rng=rng)
    X, y = rng.standard_normal((4, 30)), rng.integers(0, 3, 4)
    report = check_gradients(net, X, y, max_entries=25, rng=rng)
    assert report.params["W1"].checked + report.params["W1"].skipped_kinks == 25
    assert report.params["b2"].checked + report.params["b2"].skipped_kinks == 3
    assert report.passed


def test_float32_network_passes_its_own_tolerance(rng) -> None:
    net = MLP.initialize((3, 5, 3), rng=rng, activation="tanh", dtype="float32", l2=1e-3)
    X, y = rng.standard_normal((6, 3)).astype(np.float32), rng.integers(0, 3, 6)
    report = check_gradients(net, X, y)
    assert report.tol == 1e-3 and report.passed


def test_network_is_left_unchanged(rng) -> None:
    net = MLP.initialize((2, 3, 2), rng=rng)
    before = {k: v.copy() for k, v in net.params.items()}
    check_gradients(net, rng.standard_normal((3, 2)), np.array([0, 1, 0]))
    for k in before:
        np.testing.assert_array_equal(before[k], net.params[k])


@pytest.mark.parametrize("method", ["forward", "central", "five-point"])
@pytest.mark.parametrize("act", ["rect", "tanh"])
def test_every_method_passes_correct_gradients_with_the_input_gradient(method: str, act: str) -> None:
    rng = np.random.default_rng(1)
    net = MLP.initialize((3, 4, 3), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((10, 3)), rng.integers(0, 3, 10)
    report = check_gradients(net, X, y, method=method, inputs=True)
    assert report.passed, report.format_text()
    assert list(report.params) == ["W1", "b1", "W2", "b2", "x"] and report.params["x"].shape == (10, 3)
    assert report.method == method and report.step == (1e-4 if method == "five-point" else 1e-5)


def test_forward_differences_print_ratios_like_the_assignments() -> None:
    # The assignment's forward differences with eps = 1e-5 printed ratios like 1.000001: an O(eps) error.
    rng = np.random.default_rng(0)
    net = MLP.initialize((2, 2, 2), rng=rng, l1=1e-3, l2=1e-3)
    forward = check_gradients(net, rng.standard_normal((1, 2)), np.array([1]), method="forward", step=1e-5)
    precise = check_gradients(net, rng.standard_normal((1, 2)), np.array([1]))
    assert forward.passed and 1e-8 < forward.max_rel_error < 1e-4
    assert 0.99 <= forward.ratio_min <= forward.ratio_max <= 1.01
    assert precise.max_rel_error < 1e-9


def test_forward_differences_catch_a_wrong_gradient_by_its_ratio() -> None:
    rng = np.random.default_rng(0)
    net = MLP.initialize((2, 3, 2), rng=rng, activation="tanh", l1=1e-2, l2=1e-2)
    X, y = rng.standard_normal((5, 2)), rng.integers(0, 2, 5)
    report = check_gradients(net, X, y, method="forward", gradient_fn=forgotten_penalty)
    assert not report.passed and not 0.99 <= report.params["W2"].ratio_min <= report.params["W2"].ratio_max <= 1.01


def test_tiny_entries_are_left_out_of_the_ratios_and_counted() -> None:
    rng = np.random.default_rng(2)
    net = MLP.initialize((2, 3, 2), rng=rng, activation="tanh")
    net.params["W2"][0, 0] = 0.0  # no penalty: W2[0, 0] alone carries no signal, but W1's row 0 ...
    X, y = np.zeros((1, 2)), np.array([0])  # ... multiplies x = 0: dW1 = 0 exactly
    report = check_gradients(net, X, y, method="central")
    assert report.params["W1"].below_floor == 6 and report.params["W1"].ratio_min == 1.0
    assert report.to_dict()["params"]["W1"]["below_floor"] == 6


def test_json_names_the_method_step_and_ratio_range(rng) -> None:
    net = MLP.initialize((2, 2, 2), rng=rng)
    d = check_gradients(net, rng.standard_normal((2, 2)), np.array([0, 1]), method="central", step=1e-6).to_dict()
    assert d["method"] == "central" and d["step"] == 1e-6
    assert {"ratio_min", "ratio_max", "max_rel_error", "checked", "skipped_kinks"} <= set(d["params"]["W1"])


def test_bad_method_and_step_name_the_problem(rng) -> None:
    net = MLP.initialize((2, 2, 2), rng=rng)
    with pytest.raises(ValueError, match="method must be one of forward, central, five-point. Got 'backward'"):
        check_gradients(net, np.zeros((1, 2)), np.array([0]), method="backward")
    with pytest.raises(ValueError, match="step must be a finite number > 0. Got 0"):
        check_gradients(net, np.zeros((1, 2)), np.array([0]), step=0)


@pytest.mark.parametrize("act", ["rect", "tanh", "softplus"])
@pytest.mark.parametrize("backprop", ["matrix", "loop"])
def test_weighted_loss_gradients_pass_with_the_inputs(act: str, backprop: str) -> None:
    # sample_weight: the objective checked is the weighted mean loss plus the penalty
    rng = np.random.default_rng(7)
    net = MLP.initialize((3, 5, 4, 3), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    w = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], size=12)
    report = check_gradients(net, X, y, inputs=True, sample_weight=w,
                             gradient_fn=lambda n, a, b: n.gradients(a, b, backprop=backprop, sample_weight=w))
    assert report.passed and report.max_rel_error < 1e-6, report.format_text()


def test_unweighted_gradients_fail_the_weighted_check() -> None:
    rng = np.random.default_rng(8)
    net = MLP.initialize((3, 4, 3), rng=rng, activation="tanh")
    X, y = rng.standard_normal((10, 3)), rng.integers(0, 3, 10)
    w = rng.uniform(0, 3, 10)
    assert check_gradients(net, X, y, sample_weight=w).passed
    forgot_weights = check_gradients(net, X, y, sample_weight=w, gradient_fn=lambda n, a, b: n.gradients(a, b))
    assert not forgot_weights.passed


@pytest.mark.parametrize("act", ["rect", "tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("hidden", [(8,), (8, 8), (6, 5, 4)])
def test_passes_with_dropout_masks_fixed(act: str, hidden: tuple[int, ...]) -> None:
    from npmlp.network import dropout_masks, dropout_rates

    rng = np.random.default_rng(4)
    net = MLP.initialize((3, *hidden, 2), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    masks = dropout_masks(dropout_rates(0.2, 0.3, len(hidden)), net.sizes, 6, rng)
    report = check_gradients(net, X, y, masks=masks, inputs=True)
    assert report.passed and report.max_rel_error < 1e-6, report.format_text()
    # the same check, blind to the masks, finds the gradient of the masked objective wrong
    blind = check_gradients(net, X, y, masks=masks, gradient_fn=lambda n, a, b: n.gradients(a, b))
    assert not blind.passed
