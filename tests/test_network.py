"""The MLP: hand-worked loss, shapes and dtypes, loop == matrix backprop, input errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from npmlp.network import MLP, nll, per_layer

ACTS = ["rect", "tanh", "sigmoid", "softplus"]


def tiny_net() -> MLP:
    # d=2, one hidden layer of 2 rect units, m=2; numbers chosen to be worked by hand.
    params = {
        "W1": np.array([[1.0, -1.0], [0.5, 2.0]]),
        "b1": np.array([0.0, -1.0]),
        "W2": np.array([[1.0, 0.0], [-1.0, 1.0]]),
        "b2": np.array([0.0, 0.5]),
    }
    return MLP(params, activation="rect", l1=[0.1, 0.0], l2=[0.0, 0.2])


def test_loss_worked_by_hand() -> None:
    net = tiny_net()
    X, y = np.array([[1.0, 1.0]]), np.array([1])
    # Ha = [1 - 1 + 0, 0.5 + 2 - 1] = [0, 1.5];  Hs = rect(Ha) = [0, 1.5]
    # Oa = [1*0 + 0*1.5 + 0, -1*0 + 1*1.5 + 0.5] = [0, 2]
    # L = -Oa[1] + log(e^0 + e^2) = -2 + log(1 + e^2)
    assert net.loss(X, y) == pytest.approx(-2 + np.log1p(np.exp(2)), rel=1e-15)
    # penalty = 0.1 * |W1|_1 + 0.2 * |W2|_2^2 = 0.1 * 4.5 + 0.2 * 3
    assert net.penalty() == pytest.approx(0.45 + 0.6, rel=1e-15)
    assert net.objective(X, y) == pytest.approx(-2 + np.log1p(np.exp(2)) + 1.05, rel=1e-15)
    g = net.gradients(X, y)
    # dOa = softmax([0, 2]) - [0, 1] = [s0, s1 - 1] with s0 = 1 / (1 + e^2)
    s0 = 1 / (1 + np.exp(2))
    np.testing.assert_allclose(g["b2"], [s0, -s0], rtol=1e-14)
    # dW2 = dOa^T Hs + 2 * 0.2 * W2
    np.testing.assert_allclose(g["W2"], np.outer([s0, -s0], [0, 1.5]) + 0.4 * net.params["W2"], rtol=1e-14)
    # dHs = dOa W2 = [s0 + s0, -s0];  dHa = dHs * [Ha > 0] = [0, -s0] (rect'(0) = 0)
    np.testing.assert_allclose(g["b1"], [0, -s0], rtol=1e-14)
    np.testing.assert_allclose(g["W1"], np.outer([0, -s0], [1, 1]) + 0.1 * np.sign(net.params["W1"]), rtol=1e-14)


def test_nll_is_finite_for_confident_wrong_answers() -> None:
    Oa = np.array([[1000.0, -1000.0]])
    assert nll(Oa, np.array([1])) == pytest.approx(2000.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hidden", [(3,), (4, 3)])
def test_gradients_have_parameter_shapes_and_dtypes(dtype: type, hidden: tuple[int, ...], rng) -> None:
    net = MLP.initialize((5, *hidden, 3), rng=rng, dtype=dtype, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((7, 5)).astype(dtype), rng.integers(0, 3, 7)
    for backprop in ("matrix", "loop"):
        g = net.gradients(X, y, backprop=backprop)
        assert list(g) == list(net.params) == [f"{p}{layer}" for layer in range(1, len(hidden) + 2) for p in "Wb"]
        for k, v in g.items():
            assert v.shape == net.params[k].shape and v.dtype == dtype, k
    assert net.predict_proba(X).dtype == dtype
    assert net.loss(X, y).dtype == dtype


def test_initialisation_follows_the_course(rng) -> None:
    net = MLP.initialize((100, 50, 10), rng=rng)
    assert np.all(np.abs(net.params["W1"]) <= 1 / np.sqrt(100))
    assert np.all(np.abs(net.params["W2"]) <= 1 / np.sqrt(50))
    assert np.abs(net.params["W1"]).max() > 0.9 / np.sqrt(100)  # uniform over the whole range
    assert not net.params["b1"].any() and not net.params["b2"].any()
    again = MLP.initialize((100, 50, 10), rng=np.random.default_rng(12345))
    np.testing.assert_array_equal(again.params["W1"], net.params["W1"])


CASES = list(itertools.product(ACTS, [(6,), (5, 4), (5, 4, 3)], [(0, 0), (1e-3, 0), (0, 1e-3), (1e-2, 1e-2)]))


@pytest.mark.parametrize("act,hidden,penalty", CASES)
def test_loop_and_matrix_backprop_agree(act: str, hidden: tuple[int, ...], penalty: tuple[float, float]) -> None:
    rng = np.random.default_rng(7)
    net = MLP.initialize((4, *hidden, 3), rng=rng, activation=act, l1=penalty[0], l2=penalty[1])
    X, y = rng.standard_normal((13, 4)), rng.integers(0, 3, 13)
    gm, gl = net.gradients(X, y, backprop="matrix"), net.gradients(X, y, backprop="loop")
    for k in gm:
        scale = np.abs(gm[k]).max()
        np.testing.assert_allclose(gl[k], gm[k], rtol=1e-10, atol=1e-10 * scale, err_msg=k)


def test_predict_is_argmax_of_proba(rng) -> None:
    net = MLP.initialize((3, 8, 4), rng=rng)
    X = rng.standard_normal((5000, 3))  # more than one evaluation batch
    P = net.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(net.predict(X), P.argmax(axis=1))


def test_penalties_per_weight_matrix() -> None:
    assert per_layer(1e-3, 2, "l1") == (1e-3, 1e-3)
    assert per_layer([1e-3, 0], 2, "l1") == (1e-3, 0.0)
    with pytest.raises(ValueError, match=r"l2 needs one value or one per weight matrix \(2\)\. Got 3 values"):
        per_layer([1, 2, 3], 2, "l2")
    with pytest.raises(ValueError, match="finite and >= 0"):
        per_layer(-1, 2, "l1")


def test_bad_inputs_name_the_problem(rng) -> None:
    net = MLP.initialize((2, 3, 2), rng=rng)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 2\)\. Got \(5, 3\) instead\."):
        net.predict(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"y must hold integers in \[0, 2\)"):
        net.gradients(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        net.gradients(np.zeros((2, 2)), np.array([0]))
    with pytest.raises(ValueError, match="backprop must be one of matrix, loop"):
        net.gradients(np.zeros((1, 2)), np.array([0]), backprop="autograd")
    with pytest.raises(ValueError, match="dtype must be one of float64, float32"):
        MLP.initialize((2, 2), rng=rng, dtype="float16")
    with pytest.raises(ValueError, match=r"cannot chain W1 \(3, 2\) and W2 \(2, 4\)"):
        MLP({"W1": np.zeros((3, 2)), "b1": np.zeros(3), "W2": np.zeros((2, 4)), "b2": np.zeros(2)})


def test_network_reads_as_the_course_without_buffers_or_ufunc_tricks() -> None:
    import inspect
    import re

    import npmlp.network

    source = inspect.getsource(npmlp.network)
    assert not re.findall(r"out=|\.at\(|\.reduce\(", source), "speed tricks belong in npmlp.kernels"


def test_grad_x_is_w1_transposed_times_grad_ha(rng) -> None:
    # The assignment's Q17, grad_x = W1^T grad_ha, for a mean over n rows: one row per example, / n.
    net = MLP.initialize((3, 5, 4), rng=rng, activation="tanh", l1=1e-2)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 4, 6)
    dX = net.grad_x(X, y)
    assert dX.shape == X.shape
    h = 1e-6
    for i, j in itertools.product(range(6), range(3)):
        E = np.zeros_like(X)
        E[i, j] = h
        estimate = (net.objective(X + E, y) - net.objective(X - E, y)) / (2 * h)
        assert dX[i, j] == pytest.approx(estimate, rel=1e-6, abs=1e-10)


def test_nll_grad_is_softmax_minus_onehot_over_n() -> None:
    from npmlp.network import nll_grad

    Oa, y = np.array([[0.0, np.log(3.0)], [0.0, 0.0]]), np.array([1, 0])
    # softmax rows: [1/4, 3/4] and [1/2, 1/2]; minus onehot; / 2
    np.testing.assert_allclose(nll_grad(Oa, y), [[0.125, -0.125], [-0.25, 0.25]], rtol=1e-15)


def test_sample_weights_are_repeated_and_dropped_rows(rng) -> None:
    # integer weights count a row that many times; a weight of 0 drops it
    net = MLP.initialize((3, 5, 3), rng=rng, activation="tanh", l1=1e-3, l2=1e-2)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 3, 8)
    w = np.array([0, 1, 2, 3, 0, 1, 1, 4])
    Xr, yr = X.repeat(w, axis=0), y.repeat(w)
    np.testing.assert_allclose(net.loss(X, y, w), net.loss(Xr, yr), rtol=1e-14)
    for backprop in ("matrix", "loop"):
        got, want = net.gradients(X, y, backprop=backprop, sample_weight=w), net.gradients(Xr, yr)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15, err_msg=k)
    np.testing.assert_allclose(net.grad_x(X, y, w)[w > 0].sum(axis=0),
                               (net.grad_x(Xr, yr) * 1.0).sum(axis=0), rtol=1e-12)


def test_equal_weights_are_no_weights_and_bad_weights_name_the_problem(rng) -> None:
    net = MLP.initialize((3, 4, 2), rng=rng)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    np.testing.assert_allclose(net.objective(X, y, np.full(6, 2.5)), net.objective(X, y), rtol=1e-15)
    assert net.loss(X, y, np.zeros(6)) == 0  # no weight, no loss
    assert all(not g.any() for g in net.backprop(X, y, np.zeros(6))[0].values())
    for bad, match in ((np.ones(5), "shape"), (-np.ones(6), ">= 0"), (np.full(6, np.nan), "finite"),
                       (np.array(list("abcdef")), "real numbers")):
        with pytest.raises(ValueError, match=match):
            net.gradients(X, y, sample_weight=bad)


# -- dropout ---------------------------------------------------------------------------
def test_dropout_masks_keep_each_unit_with_probability_one_minus_p() -> None:
    from npmlp.network import dropout_masks

    masks = dropout_masks((0.2, 0.5, 0.0), (30, 40, 6, 3), 2000, np.random.default_rng(0))
    assert masks[2] is None and [M.shape for M in masks[:2]] == [(2000, 30), (2000, 40)]
    for M, p in zip(masks[:2], (0.2, 0.5), strict=True):
        assert set(np.unique(M)) == {0.0, 1 / (1 - p)}
        assert abs(np.mean(M == 0) - p) < 0.01 and abs(M.mean() - 1) < 0.02  # E[m] = 1: nothing to undo at prediction
    again = dropout_masks((0.2, 0.5, 0.0), (30, 40, 6, 3), 2000, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(masks[:2], again[:2], strict=True))


def test_dropout_worked_by_hand() -> None:
    net = tiny_net()
    X = np.array([[1.0, 0.5]])  # Ha = [0.5, 1.5], Hs = [0.5, 1.5]
    # the inputs kept (x 1), hidden unit 1 kept and scaled by 1 / (1 - 0.5) = 2, unit 2 dropped
    masks = [np.ones((1, 2)), np.array([[2.0, 0.0]])]
    # Hs * m = [1.0, 0.0]; Oa = W2 @ [1, 0] + b2 = [1.0, -1.0 + 0.5]
    np.testing.assert_allclose(net.forward(X, masks).logits, [[1.0, -0.5]])
    g = net.gradients(X, [0], masks=masks)
    # a dropped unit's weights get only their penalty's gradient: the L1 term 0.1 * sign(W1) in,
    # the L2 term 2 * 0.2 * W2 out; its bias nothing
    assert g["W1"][1].tolist() == [0.1, 0.1] and g["b1"][1] == 0.0
    assert g["W2"][:, 1].tolist() == [0.0, 0.4]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("hidden", [(6,), (5, 4), (5, 4, 3)])
def test_loop_and_matrix_backprop_agree_with_dropout(act: str, hidden: tuple[int, ...]) -> None:
    from npmlp.network import dropout_masks, dropout_rates

    rng = np.random.default_rng(8)
    net = MLP.initialize((4, *hidden, 3), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((13, 4)), rng.integers(0, 3, 13)
    masks = dropout_masks(dropout_rates(0.25, 0.5, len(hidden)), net.sizes, 13, rng)
    gm = net.gradients(X, y, backprop="matrix", masks=masks)
    gl = net.gradients(X, y, backprop="loop", masks=masks)
    assert any(not np.array_equal(gm[k], g) for k, g in net.gradients(X, y).items())  # the masks matter
    for k in gm:
        np.testing.assert_allclose(gl[k], gm[k], rtol=1e-12, atol=1e-12 * np.abs(gm[k]).max(), err_msg=k)


def test_bad_dropout_names_the_problem(rng) -> None:
    from npmlp.network import dropout_rates

    with pytest.raises(ValueError, match=r"dropout needs one rate or one per hidden layer \(2\). Got 3 instead"):
        dropout_rates(0.0, [0.1, 0.2, 0.3], 2)
    with pytest.raises(ValueError, match=r"dropout rates must lie in \[0, 1\). Got \(0.0, 1.0\)"):
        dropout_rates(0.0, 1.0, 1)
    net = MLP.initialize((2, 3, 2), rng=rng)
    with pytest.raises(ValueError, match=r"masks must be one array or None per weight matrix, of shapes "
                                         r"\[\(4, 2\), \(4, 3\)\]. Got \[None, \(4, 2\)\]"):
        net.gradients(np.zeros((4, 2)), [0, 1, 0, 1], masks=[None, np.ones((4, 2))])
