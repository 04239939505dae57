"""Elementwise functions, their derivatives, the softmax family and norm gradients.

The assignment's part 1. Every function is vectorised, keeps a floating dtype (float32 in,
float32 out; integers become float64) and stays finite for finite inputs of any
magnitude. Each forward formula sits next to its derivative.

Conventions at the kinks: ``sign(0) = 0``, so ``abs'(0) = 0``, and ``rect'(0) = 0``. The
assignment's statement writes ``sign(0) = -1`` but then takes the derivative of abs at 0 to
be 0; npmlp keeps the second (``docs/math.md``, "sign(0)", says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .dtypes import Array

Pair = tuple[Callable[["Array"], "Array"], Callable[["Array"], "Array"]]


def _float(x: ArrayLike) -> Array:
    """Return ``x`` as a floating array, keeping float32/float64 as they are."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


def softplus(x: ArrayLike) -> Array:
    """``softplus(x) = ln(1 + e^x)``."""
    # NOTE: logaddexp(0, x) never forms e^x, so softplus(1000) == 1000 exactly.
    x = _float(x)
    y: Array = np.logaddexp(x.dtype.type(0), x)
    return y


def sigmoid(x: ArrayLike) -> Array:
    """``sigma(x) = 1 / (1 + e^-x)``, computed as ``exp(-softplus(-x))`` (the assignment's 1.2)."""
    # NOTE: the naive 1/(1+exp(-x)) overflows at x=-1000; this form never does and
    # keeps full relative precision in the far-negative tail.
    x = _float(x)
    return np.exp(-softplus(-x))


def sigmoid_grad(x: ArrayLike) -> Array:
    """``sigma'(x) = sigma(x) (1 - sigma(x))`` (the assignment's 1.3)."""
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x: ArrayLike) -> Array:
    """Hyperbolic tangent."""
    return np.tanh(_float(x))


def tanh_grad(x: ArrayLike) -> Array:
    """``tanh'(x) = 1 - tanh(x)^2`` (the assignment's 1.4)."""
    t = tanh(x)
    return 1 - t * t


def sign(x: ArrayLike) -> Array:
    """``sign(x)`` in {-1, 0, 1}; ``sign(0) = 0``."""
    return np.sign(_float(x))


def sign_grad(x: ArrayLike) -> Array:
    """``sign'(x) = 0`` wherever it exists (everywhere but 0; 0 there by convention)."""
    return np.zeros_like(_float(x))


def abs(x: ArrayLike) -> Array:  # noqa: A001 - the assignment's name
    """``abs(x) = |x|``."""
    return np.abs(_float(x))


def abs_grad(x: ArrayLike) -> Array:
    """``abs'(x) = sign(x)`` with ``abs'(0) = 0`` (the assignment's 1.6)."""
    return sign(x)


def rect(x: ArrayLike) -> Array:
    """``rect(x) = max(0, x)``, the rectifier (ReLU)."""
    x = _float(x)
    y: Array = np.maximum(x, x.dtype.type(0))
    return y


def rect_grad(x: ArrayLike) -> Array:
    """``rect'(x) = 1 if x > 0 else 0`` (the assignment's 1.7)."""
    x = _float(x)
    return (x > 0).astype(x.dtype)


def softplus_grad(x: ArrayLike) -> Array:
    """``softplus'(x) = sigma(x)``."""
    return sigmoid(x)


#: Every elementwise function of the assignment's part 1 as a ``(f, df)`` pair.
FUNCTIONS: dict[str, Pair] = {
    "abs": (abs, abs_grad),
    "rect": (rect, rect_grad),
    "relu": (rect, rect_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "sign": (sign, sign_grad),
    "softplus": (softplus, softplus_grad),
    "tanh": (tanh, tanh_grad),
}

#: The hidden-layer activations a network may use (``relu`` is an alias of ``rect``).
ACTIVATIONS: dict[str, Pair] = {k: FUNCTIONS[k] for k in ("rect", "relu", "sigmoid", "softplus", "tanh")}

#: Activations whose derivative jumps at 0: finite differences across 0 are meaningless.
KINKED = frozenset({"abs", "rect", "relu", "sign"})


def get_activation(name: str) -> Pair:
    """Return the ``(f, df)`` pair of a hidden activation by name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        valid = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"activation must be one of {valid}. Got {name!r} instead.") from None


def canonical_activation(name: str) -> str:
    """Return the registry name of an activation, resolving the ``relu`` alias."""
    get_activation(name)
    return "rect" if name == "relu" else name


def logsumexp(Z: ArrayLike, axis: int = -1) -> Array:
    """``log(sum(exp(Z)))`` along ``axis``, without overflow.

    Parameters
    ----------
    Z : array of shape (n, m)
        Logits, one row per example.

    Returns
    -------
    array of shape (n,)
    """
    Z = _float(Z)
    M = np.max(Z, axis=axis, keepdims=True)
    # NOTE: shifting by the row max keeps every exponent <= 0; a row of -inf has no
    # finite max, so it is shifted by 0 instead of producing -inf - -inf = nan.
    M = np.where(np.isfinite(M), M, 0).astype(Z.dtype)
    S = np.sum(np.exp(Z - M), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):  # a row of -inf: log(0) = -inf is the right limit
        lse: Array = np.squeeze(M + np.log(S), axis=axis)
    return lse


def log_softmax(Z: ArrayLike, axis: int = -1) -> Array:
    """``log(softmax(Z))`` computed as ``Z - logsumexp(Z)``, exact in the tails.

    Parameters
    ----------
    Z : array of shape (n, m)

    Returns
    -------
    array of shape (n, m)
    """
    Z = _float(Z)
    return Z - np.expand_dims(logsumexp(Z, axis=axis), axis)


def softmax(Z: ArrayLike, axis: int = -1) -> Array:
    """``exp(Z_k) / sum_j exp(Z_j)`` along ``axis``: each row is a distribution.

    Parameters
    ----------
    Z : array of shape (n, m)

    Returns
    -------
    array of shape (n, m), rows summing to 1
    """
    Z = _float(Z)
    M = np.max(Z, axis=axis, keepdims=True)
    E = np.exp(Z - np.where(np.isfinite(M), M, 0).astype(Z.dtype))  # NOTE: see logsumexp
    P: Array = E / np.sum(E, axis=axis, keepdims=True)
    return P


def l2_squared(x: ArrayLike) -> np.floating:
    """``||x||_2^2 = sum(x^2)``, a scalar of ``x``'s dtype."""
    x = _float(x)
    return np.vdot(x, x)


def l2_squared_grad(x: ArrayLike) -> Array:
    """``grad ||x||_2^2 = 2x`` (the assignment's 1.8)."""
    return 2 * _float(x)


def l1(x: ArrayLike) -> np.floating:
    """``||x||_1 = sum(|x|)``, a scalar of ``x``'s dtype."""
    return np.sum(np.abs(_float(x)))


def l1_grad(x: ArrayLike) -> Array:
    """``grad ||x||_1 = sign(x)`` (the assignment's 1.9)."""
    return sign(x)
