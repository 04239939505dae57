"""Seed part 1: identities, derivatives against finite differences, stability at extremes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npmlp import functions as F

wide = st.floats(min_value=-700, max_value=700, allow_nan=False)
moderate = st.floats(min_value=-30, max_value=30, allow_nan=False)


@given(wide)
def test_sigmoid_is_shifted_tanh(x: float) -> None:
    # seed 1.1: sigma(x) = (tanh(x/2) + 1) / 2; the right side cancels for x << 0, so
    # it is only good to an absolute 1e-16 there.
    assert F.sigmoid(x) == pytest.approx((np.tanh(x / 2) + 1) / 2, rel=1e-12, abs=1e-15)


@given(wide)
def test_log_sigmoid_is_minus_softplus_of_minus_x(x: float) -> None:
    # seed 1.2: ln sigma(x) = -softplus(-x); relative precision even deep in the tail
    with np.errstate(divide="ignore"):
        assert np.log(F.sigmoid(x)) == pytest.approx(-F.softplus(-x), rel=1e-12, abs=1e-15)


@given(wide)
def test_sigmoid_derivative_identity(x: float) -> None:
    # seed 1.3: sigma' = sigma (1 - sigma)
    s = F.sigmoid(x)
    assert F.sigmoid_grad(x) == pytest.approx(s * (1 - s), rel=1e-12, abs=1e-300)


@given(wide)
def test_tanh_derivative_identity(x: float) -> None:
    # seed 1.4: tanh' = 1 - tanh^2
    assert F.tanh_grad(x) == pytest.approx(1 - np.tanh(x) ** 2, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("name", sorted(F.FUNCTIONS))
@settings(max_examples=50)
@given(x=moderate)
def test_derivative_matches_central_difference(name: str, x: float) -> None:
    f, df = F.FUNCTIONS[name]
    h = 1e-6
    if name in F.KINKED and abs(x) <= 2 * h:
        return  # the finite difference straddles the kink at 0
    estimate = (f(x + h) - f(x - h)) / (2 * h)
    assert df(x) == pytest.approx(estimate, rel=1e-5, abs=1e-8)


def test_kink_conventions() -> None:
    assert F.sign(0.0) == 0 and F.abs_grad(0.0) == 0 and F.rect_grad(0.0) == 0
    assert F.rect_grad(1e-300) == 1 and F.rect_grad(-1e-300) == 0
    assert F.FUNCTIONS["relu"] == F.FUNCTIONS["rect"]


def test_stable_at_extremes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            assert F.sigmoid(-1000.0) == 0 and F.sigmoid(1000.0) == 1
            assert F.softplus(1000.0) == 1000 and F.softplus(-1000.0) == 0
            np.testing.assert_array_equal(F.softmax(np.array([[1000.0, 0.0]])), [[1.0, 0.0]])
            np.testing.assert_array_equal(F.log_softmax(np.array([[1000.0, 0.0]])), [[0.0, -1000.0]])
            assert F.logsumexp(np.array([[1e308, 1e308]]))[0] == pytest.approx(1e308)
            for name, (f, df) in F.FUNCTIONS.items():
                x = np.array([-1e300, -1e3, 1e3, 1e300])
                assert np.all(np.isfinite(f(x))) and np.all(np.isfinite(df(x))), name


def test_limits_at_infinity() -> None:
    inf = np.array([-np.inf, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(F.sigmoid(inf), [0, 1])
        np.testing.assert_array_equal(F.tanh(inf), [-1, 1])
        np.testing.assert_array_equal(F.softplus(inf), [0, np.inf])
        np.testing.assert_array_equal(F.rect(inf), [0, np.inf])
        np.testing.assert_array_equal(F.sigmoid_grad(inf), [0, 0])
        np.testing.assert_array_equal(F.tanh_grad(inf), [0, 0])
        np.testing.assert_array_equal(F.softmax(np.array([[0.0, -np.inf]])), [[1, 0]])
        np.testing.assert_array_equal(F.log_softmax(np.array([[0.0, -np.inf]])), [[0, -np.inf]])
        np.testing.assert_array_equal(F.logsumexp(np.array([[-np.inf, -np.inf]])), [-np.inf])


@pytest.mark.parametrize("name", sorted(F.FUNCTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(name: str, dtype: type) -> None:
    f, df = F.FUNCTIONS[name]
    x = np.linspace(-3, 3, 7, dtype=dtype)
    assert f(x).dtype == dtype and df(x).dtype == dtype


def test_integers_become_float64() -> None:
    assert F.sigmoid(np.arange(3)).dtype == np.float64


@settings(max_examples=50)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=8))
def test_softmax_rows_are_distributions(row: list[float]) -> None:
    Z = np.array([row, row[::-1]])
    P = F.softmax(Z)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(F.log_softmax(Z)), P, rtol=1e-10, atol=1e-300)


def test_norm_gradients() -> None:
    x = np.array([-2.0, 0.0, 3.0])
    assert F.l2_squared(x) == 13 and F.l1(x) == 5
    np.testing.assert_array_equal(F.l2_squared_grad(x), [-4, 0, 6])
    np.testing.assert_array_equal(F.l1_grad(x), [-1, 0, 1])


def test_unknown_activation_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"activation must be one of rect, relu, sigmoid, softplus, tanh\. Got 'elu'"):
        F.get_activation("elu")
