"""The multilayer perceptron of the assignment's part 2, written as the course writes it.

Forward pass, loss, penalty and the two backprops, in plain NumPy expressions, to be read
line by line next to ``docs/math.md``. Examples are rows (``X`` of shape ``(n, d)``);
weight matrices keep the assignment's ``(fan_out, fan_in)`` shape, so every formula of the
assignment (one example per column) transposes cleanly:

==============================  ==============================
the assignment (columns)        npmlp (one example per row)
==============================  ==============================
``h_a = W1 x + b1``             ``Ha = X @ W1.T + b1``
``h_s = rect(h_a)``             ``Hs = rect(Ha)``
``o_a = W2 h_s + b2``           ``Oa = Hs @ W2.T + b2``
``o_s = softmax(o_a)``          ``Os = softmax(Oa)`` (per row)
``grad_oa = o_s - onehot(y)``   ``dOa = (Os - onehot(y)) / n``
``grad_W2 = grad_oa h_s^T``     ``dW2 = dOa.T @ Hs``
``grad_b2 = grad_oa``           ``db2 = dOa.sum(axis=0)``
``grad_hs = W2^T grad_oa``      ``dHs = dOa @ W2``
``grad_ha = grad_hs * 1[ha>0]`` ``dHa = dHs * rect'(Ha)``
``grad_W1 = grad_ha x^T``       ``dW1 = dHa.T @ X``
``grad_x = W1^T grad_ha``       ``dX = dHa @ W1``
==============================  ==============================

With ``L`` weight matrices the objective (the assignment's 2.18) is the empirical risk
plus the elastic-net penalty::

    R(theta) = mean_i -log softmax(Oa_i)[y_i]
               + sum_l ( l1[l] * sum|W_l| + l2[l] * sum W_l**2 )

With per-row weights ``w_i >= 0`` (``sample_weight``) the mean is the weighted one,
``sum_i w_i l_i / sum_i w_i``, as scikit-learn's MLP takes it: integer weights count a row
that many times, a weight of 0 drops it. Then ``dOa`` row ``i`` is ``(Os_i - onehot(y_i)) w_i
/ sum_j w_j`` and everything below it follows unchanged.

Inverted dropout multiplies the input of layer ``l`` (``X``, then each ``Hs``) by a mask
``M_l`` of shape (n, fan_in) that holds ``1 / (1 - p_l)`` for a kept unit (probability
``1 - p_l``) and 0 for a dropped one: ``Hs = rect(Ha) * M``. Given its masks the objective
above is an ordinary function of the parameters, and backprop multiplies by the same mask on
the way back: ``dHs = (dOa @ W2) * M``. Prediction uses no masks (the ``1 / (1 - p)`` in
training keeps each unit's expected value).

Biases are never penalised. The matrix backprop handles a whole minibatch at once; the
loop backprop visits one example at a time with the very same functions and averages, as
the assignment's first version did. The training loop runs the same arithmetic faster, in
preallocated buffers, in :mod:`npmlp.kernels`; tests check that both agree to round-off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F
from .dtypes import Array, Labels, resolve_dtype

#: Dropout masks, one per weight matrix's input (``X``, then each hidden layer's ``Hs``); None: no dropout there.
Masks: TypeAlias = Sequence[Array | None]


def linear(H: Array, W: Array, b: Array) -> Array:
    """``A = H @ W.T + b``: ``H`` (n, fan_in), ``W`` (fan_out, fan_in), ``b`` (fan_out,) -> (n, fan_out)."""
    A: Array = H @ W.T + b  # NOTE: W.T is a transpose flag for BLAS, not a copy
    return A


def linear_backward(dA: Array, H: Array, W: Array) -> tuple[Array, Array, Array]:
    """Backprop through ``A = H @ W.T + b``, given ``dA`` (n, fan_out), the gradient with respect to ``A``.

    Returns
    -------
    dH : array of shape (n, fan_in), ``dA @ W`` (the assignment's ``W^T grad_a``)
    dW : array of shape (fan_out, fan_in), ``dA.T @ H``: the examples' outer products, summed
    db : array of shape (fan_out,), ``dA`` summed over the examples
    """
    return dA @ W, dA.T @ H, dA.sum(axis=0)


def onehot(y: Labels, m: int, dtype: np.dtype[Any] | type = np.float64) -> Array:
    """Row ``i`` is 1 in column ``y[i]`` and 0 elsewhere: shape (n, m)."""
    Y: Array = np.eye(m, dtype=dtype)[y]
    return Y


def nll(Oa: Array, y: Labels, weights: Array | None = None) -> np.floating:
    """Mean negative log-likelihood from logits ``Oa`` (n, m) and labels ``y`` (n,).

    With ``weights`` (n,) the weighted mean ``sum_i w_i l_i / sum_i w_i`` (0 when every
    weight is 0: rows of no weight carry no loss). Returns a NumPy scalar of the logits' dtype.
    """
    # NOTE: log-softmax of the logits, never log(softmax): softmax underflows to 0 for
    # a confident wrong answer and log(0) = -inf.
    if weights is None:
        loss: np.floating[Any] = -np.mean(F.log_softmax(Oa)[np.arange(Oa.shape[0]), y])
        return loss
    losses = -F.log_softmax(Oa)[np.arange(Oa.shape[0]), y]
    total = np.sum(weights)
    weighted: np.floating[Any] = np.sum(weights * losses) / total if total else Oa.dtype.type(0)
    return weighted


def nll_grad(Oa: Array, y: Labels, weights: Array | None = None) -> Array:
    """Gradient of :func:`nll` with respect to the logits: ``(softmax(Oa) - onehot(y)) / n``, shape (n, m).

    With ``weights``, row ``i`` is multiplied by ``w_i / sum_j w_j`` instead of ``1 / n``.
    """
    # NOTE: softmax - onehot is the gradient only for a softmax output under the negative
    # log-likelihood (the assignment's Q5-Q7): the softmax's Jacobian cancels against log's derivative.
    n, m = Oa.shape
    if weights is None:
        dOa: Array = (F.softmax(Oa) - onehot(y, m, Oa.dtype)) / n
        return dOa
    total = np.sum(weights)
    share = weights / total if total else np.zeros_like(weights)  # w_i / sum_j w_j
    weighted: Array = (F.softmax(Oa) - onehot(y, m, Oa.dtype)) * share[:, None]
    return weighted


def check_weights(weights: ArrayLike, n: int, dtype: np.dtype[Any]) -> Array:
    """Per-row weights ``(n,)``: finite and >= 0, in ``dtype``; a ``ValueError`` otherwise."""
    w = np.asarray(weights)
    if w.shape != (n,):
        raise ValueError(f"sample weights must have shape ({n},), one per row. Got {w.shape} instead.")
    if not (np.issubdtype(w.dtype, np.number) and not np.issubdtype(w.dtype, np.complexfloating)):
        raise ValueError(f"sample weights must be real numbers. Got dtype {w.dtype} instead.")
    w = w.astype(dtype)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample weights must be finite and >= 0.")
    return w


def penalty_grad(W: Array, l1: float, l2: float) -> Array:
    """Gradient of ``l1 * sum|W| + l2 * sum W**2``: ``l1 * sign(W) + 2 * l2 * W`` (the assignment's 2.18)."""
    return l1 * F.l1_grad(W) + l2 * F.l2_squared_grad(W)


def per_layer(value: float | Sequence[float], n_layers: int, name: str) -> tuple[float, ...]:
    """Expand one coefficient, or check a list of one per weight matrix."""
    # A string is one value too (float("0.1")), as is a NumPy scalar; an array or a list has one per layer.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        values = [float(value)]
    else:
        values = [float(v) for v in value]
    if len(values) == 1:
        values = values * n_layers
    if len(values) != n_layers:
        raise ValueError(
            f"{name} needs one value or one per weight matrix ({n_layers}). Got {len(values)} values instead."
        )
    out = tuple(values)
    if any(not np.isfinite(v) or v < 0 for v in out):
        raise ValueError(f"{name} coefficients must be finite and >= 0. Got {out} instead.")
    return out


def dropout_rates(input_dropout: float, dropout: float | Sequence[float], n_hidden: int) -> tuple[float, ...]:
    """The dropout rate of each weight matrix's input: ``input_dropout``, then one per hidden layer.

    ``dropout`` is one rate for every hidden layer or a sequence of one per hidden layer;
    every rate must lie in [0, 1).
    """
    hidden = [float(p) for p in dropout] if isinstance(dropout, Sequence) else [float(dropout)] * n_hidden
    if len(hidden) != n_hidden:
        raise ValueError(f"dropout needs one rate or one per hidden layer ({n_hidden}). Got {len(hidden)} instead.")
    rates = (float(input_dropout), *hidden)
    if not all(0 <= p < 1 for p in rates):
        raise ValueError(f"dropout rates must lie in [0, 1). Got {rates} instead.")
    return rates


def dropout_mask(rng: np.random.Generator, n: int, units: int, p: float, dtype: np.dtype[Any] | type,
                 *, by_unit: bool = False) -> Array:
    """Inverted dropout's mask of shape (n, units): ``1 / (1 - p)`` where a unit is kept, 0 where it is dropped.

    Each entry is kept with probability ``1 - p``, independently: ``M = (U >= p) / (1 - p)``
    with ``U`` uniform on [0, 1), drawn from ``rng`` in ``dtype`` row by row, or unit by unit
    (``by_unit``: drawn as (units, n), then transposed).
    """
    U = rng.random((units, n), dtype=dtype).T if by_unit else rng.random((n, units), dtype=dtype)
    M: Array = (U >= p).astype(dtype) / (1 - p)  # noqa: SIM300  # U is an array, p the number
    return M


def dropout_masks(rates: Sequence[float], sizes: Sequence[int], n: int, rng: np.random.Generator,
                  dtype: np.dtype[Any] | type = np.float64) -> list[Array | None]:
    """One mask per weight matrix's input, from its rate (see :func:`dropout_rates`); None where the rate is 0.

    ``sizes`` are the layer sizes ``(d, h1, ..., m)``; mask ``l`` has shape (n, sizes[l]).
    The masks are drawn in order from the input on.
    """
    # NOTE: the inputs' mask row by row, the hidden layers' unit by unit: the order in which
    # the fast path's buffers lie in memory (X row-major, hidden units column-major), so both
    # paths get the same masks from one seed without a transposing pass (0.25 vs 0.01 ms on 128 x 1024).
    return [dropout_mask(rng, n, units, p, dtype, by_unit=layer > 0) if p else None
            for layer, (units, p) in enumerate(zip(sizes[:-1], rates, strict=True))]


@dataclass
class Forward:
    """What the forward pass keeps for backprop.

    ``inputs[l]`` is the input of layer ``l`` (``inputs[0] = X``, then each ``h_s``, times
    its dropout mask if any),
    ``pre[l]`` the pre-activation of hidden layer ``l`` (``h_a``), ``logits`` the output
    pre-activation ``o_a`` of shape (n, m).
    """

    inputs: list[Array]
    pre: list[Array]
    logits: Array


class MLP:
    """A multilayer perceptron with a softmax output and elastic-net penalty.

    Parameters
    ----------
    params : dict of str to array
        ``W1, b1, W2, b2, ...`` counted from the input; ``W_l`` of shape
        (fan_out, fan_in), ``b_l`` of shape (fan_out,), all of one float dtype.
    activation : str
        Hidden activation, a key of :data:`npmlp.functions.ACTIVATIONS`.
    l1, l2 : float or sequence of float
        Elastic-net coefficients, one for all weight matrices or one per matrix.
    """

    def __init__(
        self,
        params: dict[str, Array],
        *,
        activation: str = "rect",
        l1: float | Sequence[float] = 0.0,
        l2: float | Sequence[float] = 0.0,
    ) -> None:
        self.params = params
        self.activation = F.canonical_activation(activation)
        self._f, self._df = F.get_activation(self.activation)
        self._check_params()
        self.l1 = per_layer(l1, self.n_layers, "l1")
        self.l2 = per_layer(l2, self.n_layers, "l2")

    @classmethod
    def initialize(
        cls,
        sizes: Sequence[int],
        *,
        rng: np.random.Generator,
        activation: str = "rect",
        l1: float | Sequence[float] = 0.0,
        l2: float | Sequence[float] = 0.0,
        dtype: str | type = "float64",
    ) -> MLP:
        """A new network with layer sizes ``(d, h1, ..., m)``.

        ``W ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` and ``b = 0`` as in the course,
        drawn from ``rng``.
        """
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least (inputs, classes), each >= 1. Got {sizes} instead.")
        dt = np.dtype(resolve_dtype(dtype))
        params: dict[str, Array] = {}
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            bound = 1 / np.sqrt(fan_in)
            params[f"W{layer}"] = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(dt)
            params[f"b{layer}"] = np.zeros(fan_out, dtype=dt)
        return cls(params, activation=activation, l1=l1, l2=l2)

    def _check_params(self) -> None:
        n = len(self.params) // 2
        names = [f"{p}{layer}" for layer in range(1, n + 1) for p in "Wb"]
        if n < 1 or sorted(self.params) != sorted(names):
            raise ValueError(f"params must be named W1, b1, ..., W{n}, b{n}. Got {sorted(self.params)} instead.")
        dtypes = {a.dtype for a in self.params.values()}
        if len(dtypes) != 1 or not np.issubdtype(dtypes.pop(), np.floating):
            found = sorted(map(str, {a.dtype for a in self.params.values()}))
            raise TypeError(f"params must share one float dtype. Got {found}.")
        for layer in range(1, n + 1):
            W, b = self.params[f"W{layer}"], self.params[f"b{layer}"]
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise ValueError(f"W{layer} {W.shape} and b{layer} {b.shape} do not make a layer.")
            if layer > 1 and W.shape[1] != self.params[f"W{layer - 1}"].shape[0]:
                before = self.params[f"W{layer - 1}"].shape
                raise ValueError(f"cannot chain W{layer - 1} {before} and W{layer} {W.shape}.")
        # Keep the canonical order W1, b1, W2, b2, ... whatever order came in.
        self.params = {k: self.params[k] for k in names}
        #: ("W1", "b1"), ("W2", "b2"), ...: the names of each layer's parameters.
        self.layer_names = [(f"W{layer}", f"b{layer}") for layer in range(1, n + 1)]

    # -- shape facts -----------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of weight matrices (hidden layers + 1)."""
        return len(self.params) // 2

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer sizes ``(d, h1, ..., m)``."""
        Ws = self.weights
        return (Ws[0].shape[1], *(W.shape[0] for W in Ws))

    @property
    def weights(self) -> list[Array]:
        return [self.params[w] for w, _ in self.layer_names]

    @property
    def biases(self) -> list[Array]:
        return [self.params[b] for _, b in self.layer_names]

    @property
    def dtype(self) -> np.dtype:
        return self.params["W1"].dtype

    @overload
    def check_input(self, X: ArrayLike, y: None = None) -> tuple[Array, None]: ...
    @overload
    def check_input(self, X: ArrayLike, y: ArrayLike) -> tuple[Array, Labels]: ...
    @overload
    def check_input(self, X: ArrayLike, y: ArrayLike | None) -> tuple[Array, Labels | None]: ...

    def check_input(self, X: ArrayLike, y: ArrayLike | None = None) -> tuple[Array, Labels | None]:
        """Validate ``X`` (n, d) and optional labels ``y`` (n,) against this network."""
        X = np.asarray(X)
        d, m = self.sizes[0], self.sizes[-1]
        if X.ndim != 2 or X.shape[1] != d:
            raise ValueError(f"X must have shape (n, {d}). Got {X.shape} instead.")
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        if y is None:
            return X, None
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) to match X. Got {y.shape} instead.")
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= m):
            raise ValueError(f"y must hold integers in [0, {m}). Got {y.dtype} values in [{y.min()}, {y.max()}].")
        return X, y.astype(np.intp, copy=False)

    # -- forward ---------------------------------------------------------------------
    def forward(self, X: Array, masks: Masks | None = None) -> Forward:
        """Run the network on ``X`` (n, d), keeping what backprop needs.

        ``masks``: dropout masks, one per weight matrix (see :func:`dropout_masks`), or None.
        """
        masks = self.check_masks(masks, X.shape[0])
        H = X if masks[0] is None else X * masks[0]
        inputs, pre = [H], []
        for W, b, M in zip(self.weights[:-1], self.biases[:-1], masks[1:], strict=True):
            A = linear(H, W, b)  # h_a
            H = self._f(A)  # h_s
            if M is not None:
                H = H * M  # dropout: h_s * m
            pre.append(A)
            inputs.append(H)
        return Forward(inputs, pre, linear(H, self.weights[-1], self.biases[-1]))

    def check_masks(self, masks: Masks | None, n: int) -> list[Array | None]:
        """``masks`` as a list of one mask (n, fan_in) or None per weight matrix; all None when ``masks`` is."""
        if masks is None:
            return [None] * self.n_layers
        want = [(n, s) for s in self.sizes[:-1]]
        got = [None if M is None else np.shape(M) for M in masks]
        if len(got) != len(want) or any(g is not None and g != w for g, w in zip(got, want, strict=True)):
            raise ValueError(f"masks must be one array or None per weight matrix, of shapes {want}. Got {got} instead.")
        return list(masks)

    def logits(self, X: ArrayLike, *, batch_size: int = 4096) -> Array:
        """Output pre-activations ``Oa`` of shape (n, m), computed in batches."""
        X, _ = self.check_input(X)
        parts = [self.forward(X[i : i + batch_size]).logits for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities ``softmax(Oa)`` of shape (n, m)."""
        return F.softmax(self.logits(X))

    def predict(self, X: ArrayLike) -> NDArray[np.intp]:
        """Most probable class per row, shape (n,)."""
        classes: Labels = np.argmax(self.logits(X), axis=1)
        return classes

    # -- objective -------------------------------------------------------------------
    def loss(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
             masks: Masks | None = None) -> np.floating:
        """Mean negative log-likelihood on ``(X, y)``, without the penalty (a scalar of :attr:`dtype`).

        ``sample_weight`` (n,): the weighted mean instead (see :func:`nll`). ``masks``: dropout
        masks (see :meth:`forward`); the loss they define.
        """
        X, y = self.check_input(X, y)
        assert y is not None
        return nll(self.forward(X, masks).logits, y, self._weights(sample_weight, X))

    def _weights(self, sample_weight: ArrayLike | None, X: Array) -> Array | None:
        return None if sample_weight is None else check_weights(sample_weight, X.shape[0], self.dtype)

    def penalty(self) -> np.floating:
        """``sum_l l1[l] * ||W_l||_1 + l2[l] * ||W_l||_2^2`` (a scalar of :attr:`dtype`)."""
        terms = (a * F.l1(W) + b * F.l2_squared(W) for W, a, b in zip(self.weights, self.l1, self.l2, strict=True))
        total: np.floating[Any] = sum(terms, self.dtype.type(0))
        return total

    def objective(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                  masks: Masks | None = None) -> np.floating:
        """The regularised empirical risk: :meth:`loss` + :meth:`penalty` (the assignment's 2.18)."""
        risk: np.floating[Any] = self.loss(X, y, sample_weight, masks) + self.penalty()
        return risk

    # -- backprop --------------------------------------------------------------------
    def activation_backward(self, dH: Array, A: Array) -> Array:
        """``dA = dH * f'(A)``, elementwise (the assignment's ``grad_ha = grad_hs * 1[h_a > 0]`` for rect)."""
        return dH * self._df(A)

    def backprop(self, X: Array, y: Labels, weights: Array | None = None,
                 masks: Masks | None = None) -> tuple[dict[str, Array], Array]:
        """Gradients of the mean NLL over the rows of ``X`` (weighted by ``weights``), and ``dX``, in one matrix pass.

        ``masks``: dropout masks (see :meth:`forward`), or None.

        Returns
        -------
        grads : dict with the keys and shapes of :attr:`params` (the data term only, no penalty)
        dX : array of shape (n, d), the gradient with respect to the inputs
        """
        masks = self.check_masks(masks, X.shape[0])
        fw = self.forward(X, masks)
        dA = nll_grad(fw.logits, y, weights)  # dOa
        grads: dict[str, Array] = {}
        for i in range(self.n_layers - 1, -1, -1):  # layer i + 1 in the assignment's numbering
            w, b = self.layer_names[i]
            dH, grads[w], grads[b] = linear_backward(dA, fw.inputs[i], self.params[w])
            M = masks[i]
            if M is not None:  # back through the dropout: d(h_s * m) = dh * m
                dH = dH * M
            if i:  # dHa = dHs * f'(Ha)
                dA = self.activation_backward(dH, fw.pre[i - 1])
        return {k: grads[k] for k in self.params}, dH

    def penalty_gradients(self) -> dict[str, Array]:
        """``l1 * sign(W) + 2 * l2 * W`` for each weight matrix with a penalty, by name."""
        return {w: penalty_grad(self.params[w], a, b)
                for (w, _), a, b in zip(self.layer_names, self.l1, self.l2, strict=True) if a or b}

    def gradients(self, X: ArrayLike, y: ArrayLike, *, backprop: str = "matrix",
                  sample_weight: ArrayLike | None = None, masks: Masks | None = None) -> dict[str, Array]:
        """Gradient of :meth:`objective` for every parameter, by name.

        Parameters
        ----------
        X : array of shape (n, d)
        y : array of shape (n,)
        backprop : {"matrix", "loop"}
            ``matrix`` handles the minibatch in one pass; ``loop`` one example at a
            time, then averages (the assignment's part 3, Q1 and Q3).
        sample_weight : array of shape (n,), optional
            Per-row weights >= 0: the gradient of the weighted mean loss (see :func:`nll`).
        masks : sequence of array or None, optional
            Dropout masks (see :func:`dropout_masks`): the gradient of the objective they define.

        Returns
        -------
        dict with the keys and shapes of :attr:`params`.
        """
        X, y = self.check_input(X, y)
        if backprop not in BACKPROPS:
            raise ValueError(f"backprop must be one of {', '.join(BACKPROPS)}. Got {backprop!r} instead.")
        assert y is not None
        grads = BACKPROPS[backprop](self, X, y, self._weights(sample_weight, X), self.check_masks(masks, X.shape[0]))
        for w, dW in self.penalty_gradients().items():
            grads[w] = grads[w] + dW
        return grads

    def grad_x(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
               masks: Masks | None = None) -> Array:
        """Gradient of the mean loss with respect to the inputs, shape (n, d) (the assignment's Q17).

        Row ``i`` is ``W1^T grad_ha`` of example ``i`` divided by ``n``: the gradient of the
        mean. The penalty does not depend on ``X``.
        """
        X, y = self.check_input(X, y)
        assert y is not None
        return self.backprop(X, y, self._weights(sample_weight, X), masks)[1]


def matrix_backprop(net: MLP, X: Array, y: Labels, weights: Array | None = None,
                    masks: Masks | None = None) -> dict[str, Array]:
    """Data-term gradients for the whole minibatch in one matrix pass."""
    return net.backprop(X, y, weights, masks)[0]


def loop_backprop(net: MLP, X: Array, y: Labels, weights: Array | None = None,
                  masks: Masks | None = None) -> dict[str, Array]:
    """Data-term gradients one example at a time (with its rows of the masks), then averaged (the assignment's loop).

    With ``weights``, example ``i``'s gradient counts ``w_i`` times and the sum is divided by ``sum_i w_i``.
    """
    masks = net.check_masks(masks, X.shape[0])
    total = {k: np.zeros_like(P) for k, P in net.params.items()}
    for i in range(X.shape[0]):
        row = [None if M is None else M[i : i + 1] for M in masks]
        for k, g in matrix_backprop(net, X[i : i + 1], y[i : i + 1], None, row).items():
            total[k] += g if weights is None else weights[i] * g
    if weights is None:
        return {k: g / max(X.shape[0], 1) for k, g in total.items()}
    weight = np.sum(weights)
    return {k: g / weight if weight else g for k, g in total.items()}  # no weight: every g is 0


BACKPROPS: dict[str, Callable[[MLP, Array, Labels, Array | None, Masks | None], dict[str, Array]]] = {
    "matrix": matrix_backprop,
    "loop": loop_backprop,
}
