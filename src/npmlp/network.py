"""The multilayer perceptron of seed part 2: forward pass, loss, penalty, two backprops.

Examples are rows (``X`` of shape ``(n, d)``); weight matrices keep the seed's
``(fan_out, fan_in)`` shape, so every formula of the seed transposes cleanly:

==============================  ==============================
seed (one example per column)   npmlp (one example per row)
==============================  ==============================
``h_a = W1 x + b1``             ``Ha = X @ W1.T + b1``
``h_s = rect(h_a)``             ``Hs = rect(Ha)``
``o_a = W2 h_s + b2``           ``Oa = Hs @ W2.T + b2``
``o_s = softmax(o_a)``          ``Os = softmax(Oa)`` (per row)
``grad_oa = o_s - onehot(y)``   ``dOa = (Os - onehot(y)) / n``
``grad_W2 = grad_oa h_s^T``     ``dW2 = dOa.T @ Hs``
``grad_b2 = sum over examples`` ``db2 = dOa.sum(axis=0)``
``grad_hs = W2^T grad_oa``      ``dHs = dOa @ W2``
``grad_ha = grad_hs * 1[ha>0]`` ``dHa = dHs * rect'(Ha)``
``grad_W1 = grad_ha x^T``       ``dW1 = dHa.T @ X``
==============================  ==============================

With ``L`` weight matrices the objective (seed 2.18) is the empirical risk plus
the elastic-net penalty::

    R(theta) = mean_i -log softmax(Oa_i)[y_i]
               + sum_l ( l1[l] * sum|W_l| + l2[l] * sum W_l**2 )

Biases are never penalised. The matrix backprop handles a whole minibatch at once;
the loop backprop visits one example at a time with the very same per-layer
functions and averages, as the seed's first version did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F

# The package's array types, defined here once and imported from here everywhere.
#: Floats of any precision (float32 or float64 in practice): inputs, parameters, gradients.
Array: TypeAlias = NDArray[np.floating[Any]]
#: Class labels: one platform integer (np.intp) per example.
Labels: TypeAlias = NDArray[np.intp]
DTYPES = {"float64": np.float64, "float32": np.float32}


def linear(H: Array, W: Array, b: Array, *, out: Array | None = None) -> Array:
    """``A = H @ W.T + b``: ``H`` (n, fan_in), ``W`` (fan_out, fan_in), ``b`` (fan_out,).

    ``out``, of shape (n, fan_out), receives the result instead of a new array.
    """
    A = np.matmul(H, W.T, out=out)  # NOTE: W.T is a transpose flag for BLAS, not a copy
    A += b
    return A


def linear_backward(
    dA: Array, H: Array, W: Array, *, need_dH: bool = True, out: LayerGrads | None = None,
    ones: Array | None = None,
) -> tuple[Array | None, Array, Array]:
    """Backprop through ``A = H @ W.T + b``.

    Parameters
    ----------
    dA : array of shape (n, fan_out)
        Gradient of the loss with respect to ``A``.
    H : array of shape (n, fan_in)
        The layer's input.
    W : array of shape (fan_out, fan_in)
    out : (dH, dW, db) buffers, optional
        Arrays of the shapes below to write into instead of allocating.
    ones : array of shape (n,), optional
        A vector of ones in ``dA``'s dtype (made here when not given).

    Returns
    -------
    dH : array of shape (n, fan_in), or None when ``need_dH`` is false
    dW : array of shape (fan_out, fan_in)
    db : array of shape (fan_out,)
    """
    dH_out, dW_out, db_out = out if out is not None else (None, None, None)
    dH = np.matmul(dA, W, out=dH_out) if need_dH else None
    # NOTE: db, the sum over examples, as the product 1^T dA: one BLAS call, 5x faster than
    # a column sum of a column-major dA (3.8 vs 18.8 us on 100 x 512 float32).
    db = np.matmul(np.ones(dA.shape[0], dA.dtype) if ones is None else ones, dA, out=db_out)
    return dH, np.matmul(dA.T, H, out=dW_out), db


LayerGrads = tuple["Array | None", "Array | None", "Array | None"]


def nll_logits_grad(
    Oa: Array, y: NDArray[np.integer], *, out: Array | None = None, scale: float = 1.0,
    rows: NDArray[np.intp] | None = None,
) -> Array:
    """Gradient of ``mean_i -log softmax(Oa_i)[y_i]`` with respect to the logits ``Oa``.

    Returns ``scale * (softmax(Oa) - onehot(y)) / n`` of shape (n, m), written into
    ``out`` when given (``out=Oa`` is allowed: the logits are then overwritten).
    ``rows`` is ``arange(n)`` when the caller keeps one.
    """
    # NOTE: the fused form softmax - onehot is only valid for a softmax output with the
    # negative log-likelihood loss (seed 2.7); it avoids the softmax Jacobian entirely.
    n = Oa.shape[0]
    # NOTE: exp of <= 0 never overflows. ufunc.reduce is .max()/.sum() without the wrappers.
    E = np.subtract(Oa, np.maximum.reduce(Oa, axis=1, keepdims=True), out=out)
    np.exp(E, out=E)
    E *= (scale / n) / np.add.reduce(E, axis=1, keepdims=True)  # softmax / n: the mean's 1/n folded in
    # NOTE: ufunc.at instead of E[rows, y] -= s: the same numbers, without fancy indexing's
    # read-modify-write copies (2.6 vs 4.4 us per minibatch).
    np.add.at(E, (np.arange(n) if rows is None else rows, y), -scale / n)
    return E


def nll(Oa: Array, y: NDArray[np.integer]) -> np.floating:
    """Mean negative log-likelihood from logits ``Oa`` (n, m) and labels ``y`` (n,).

    Returns a NumPy scalar of the logits' dtype.
    """
    # NOTE: log-softmax of the logits, never log(softmax): softmax underflows to 0 for
    # a confident wrong answer and log(0) = -inf.
    loss: np.floating[Any] = -np.mean(F.log_softmax(Oa)[np.arange(Oa.shape[0]), y])
    return loss


def l1_sign(W: Array, a: float, *, out: Array) -> Array:
    """``a * sign(W)`` written into ``out``, the gradient of ``a * ||W||_1``.

    Computed as ``clip(W, -t, t) * (a / t)`` with ``t`` the dtype's smallest normal
    number: every nonzero normal ``W`` clips to ``+-t``, and since ``t`` is a power of two
    the product is exactly ``+-a``; 0 stays 0, nan stays nan, and nothing overflows.
    """
    # NOTE: np.sign is not vectorised and ran at a third of the speed of a clip and a
    # multiply (a 512 x 784 float32 matrix: 284 us vs 90 us). Only subnormal weights
    # (below 1.2e-38 in float32) get less than +-a, in proportion to their size.
    t = _TINY[W.dtype]
    W.clip(-t, t, out=out)  # NOTE: the method, not np.clip: 1.4 us less of Python wrappers
    if a < 2:  # a / t is finite: the dtype's max * t is about 4
        np.multiply(out, a / t, out=out)
        return out
    np.multiply(out, 1 / t, out=out)
    return np.multiply(out, a, out=out)


_TINY: dict[np.dtype[Any], np.floating[Any]] = {
    np.dtype(t): np.finfo(t).tiny for t in (np.float16, np.float32, np.float64, np.longdouble)
}


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


@dataclass
class Forward:
    """What the forward pass keeps for backprop.

    ``inputs[l]`` is the input of layer ``l`` (``inputs[0] = X``), ``pre[l]`` the
    pre-activation of hidden layer ``l`` (``Ha`` in the seed), ``logits`` the output
    pre-activation ``Oa`` of shape (n, m).
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
        #: ("W1", "b1"), ("W2", "b2"), ...: the hot path looks parameters up by these.
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
    def forward(self, X: Array, *, workspace: Workspace | None = None) -> Forward:
        """Run the network on ``X`` (n, d), keeping what backprop needs.

        With a :class:`Workspace`, every intermediate array is written into its
        preallocated buffers (sliced to ``n`` rows) instead of new arrays.
        """
        n, ws = X.shape[0], workspace
        inputs, pre = [X], []
        H = X
        Ws, bs = self.weights, self.biases
        for i, (W, b) in enumerate(zip(Ws[:-1], bs[:-1], strict=True)):
            A = linear(H, W, b, out=ws.A[i][:n] if ws else None)
            H = self._f(A) if not ws else ws.activate(A, out=ws.H[i][:n])
            pre.append(A)
            inputs.append(H)
        return Forward(inputs, pre, linear(H, Ws[-1], bs[-1], out=ws.A[-1][:n] if ws else None))

    def logits(self, X: ArrayLike, *, batch_size: int = 4096) -> Array:
        """Output pre-activations ``Oa`` of shape (n, m), computed in batches."""
        X, _ = self.check_input(X)
        parts = [self.forward(X[i : i + batch_size]).logits for i in range(0, X.shape[0], batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities ``softmax(Oa)`` of shape (n, m)."""
        return F.softmax(self.logits(X))

    def predict(self, X: ArrayLike) -> Labels:
        """Most probable class per row, shape (n,)."""
        classes: Labels = np.argmax(self.logits(X), axis=1)
        return classes

    # -- objective -------------------------------------------------------------------
    def loss(self, X: ArrayLike, y: ArrayLike) -> np.floating:
        """Mean negative log-likelihood on ``(X, y)``, without the penalty (a scalar of :attr:`dtype`)."""
        X, y = self.check_input(X, y)
        return nll(self.forward(X).logits, y)

    def penalty(self) -> np.floating:
        """``sum_l l1[l] * ||W_l||_1 + l2[l] * ||W_l||_2^2`` (a scalar of :attr:`dtype`)."""
        zero = self.dtype.type(0)
        terms = (a * F.l1(W) + b * F.l2_squared(W) for W, a, b in zip(self.weights, self.l1, self.l2, strict=True))
        total: np.floating[Any] = sum(terms, zero)
        return total

    def objective(self, X: ArrayLike, y: ArrayLike) -> np.floating:
        """The regularised empirical risk: :meth:`loss` + :meth:`penalty` (seed 2.18)."""
        risk: np.floating[Any] = self.loss(X, y) + self.penalty()
        return risk

    # -- backprop --------------------------------------------------------------------
    def _data_gradients(
        self, X: Array, y: Labels, *, workspace: Workspace | None = None, scale: float = 1.0
    ) -> dict[str, Array]:
        """Gradients of the mean NLL over the rows of ``X``, one matrix pass, times ``scale``.

        With a :class:`Workspace` the gradients are written into its buffers (and
        returned as those buffers): nothing is allocated but a few (n, m) arrays.
        """
        n, ws = X.shape[0], workspace
        fw = self.forward(X, workspace=ws)
        # NOTE: scaling the (n, m) output gradient scales every gradient below it, so a
        # step size folded in here never costs a pass over a weight-sized array.
        dA = nll_logits_grad(fw.logits, y, out=fw.logits if ws else None, scale=scale, rows=ws.rows[:n] if ws else None)
        grads: dict[str, Array] = {} if ws is None else ws.grads
        for i in range(self.n_layers - 1, -1, -1):  # layer i + 1 of the seed's numbering
            w, b = self.layer_names[i]
            out = None if ws is None else (ws.dH[i - 1][:n] if i else None, ws.grads[w], ws.grads[b])
            dH, grads[w], grads[b] = linear_backward(dA, fw.inputs[i], self.params[w], need_dH=i > 0, out=out,
                                                     ones=None if ws is None else ws.ones[:n])
            if i:  # dHa = dHs * f'(Ha), elementwise (seed 2.13-2.14)
                # dH is an array here: linear_backward returns None for it only when i == 0
                dA = (ws or self).activation_backward(dH, fw.pre[i - 1])  # type: ignore[arg-type]
        return grads if ws is not None else {k: grads[k] for k in self.params}

    def activation_backward(self, dH: Array, A: Array) -> Array:
        """``dA = dH * f'(A)``, written into ``dH``."""
        return np.multiply(dH, self._df(A), out=dH)

    def add_penalty_gradients(
        self, grads: dict[str, Array], *, scratch: dict[str, Array] | None = None, scale: float = 1.0
    ) -> dict[str, Array]:
        """Add ``scale * (l1 * sign(W) + 2 * l2 * W)`` to each ``dW`` in place (seed 2.18).

        ``scratch`` (one array per weight matrix) avoids the temporaries.
        """
        for (w, _), a, b in zip(self.layer_names, self.l1, self.l2, strict=True):
            if not (a or b):
                continue
            W, dW = self.params[w], grads[w]
            S = scratch[w] if scratch is not None else np.empty_like(W)
            if a:
                dW += l1_sign(W, a * scale, out=S)
            if b:
                dW += np.multiply(W, 2 * b * scale, out=S)
        return grads

    def gradients(
        self, X: ArrayLike, y: ArrayLike, *, backprop: str = "matrix", workspace: Workspace | None = None
    ) -> dict[str, Array]:
        """Gradient of :meth:`objective` for every parameter, by name.

        Parameters
        ----------
        X : array of shape (n, d)
        y : array of shape (n,)
        backprop : {"matrix", "loop"}
            ``matrix`` handles the minibatch in one pass; ``loop`` one example at a
            time, then averages (seed part 3, Q6-Q7).
        workspace : Workspace, optional
            Buffers for the matrix backprop (the training loop's hot path); the
            returned arrays are then the workspace's and are overwritten next call.

        Returns
        -------
        dict with the keys and shapes of :attr:`params`.
        """
        X, y = self.check_input(X, y)
        if backprop not in BACKPROPS:
            raise ValueError(f"backprop must be one of {', '.join(BACKPROPS)}. Got {backprop!r} instead.")
        assert y is not None
        grads = BACKPROPS[backprop](self, X, y, workspace)
        return self.add_penalty_gradients(grads, scratch=workspace.scratch if workspace else None)


#: A last hidden layer up to this wide gets column-major logits (see Workspace).
NARROW = 64


class Workspace:
    """Preallocated buffers for minibatches of up to ``batch_size`` rows.

    The training loop's hot path runs forward and backprop into these arrays, so an
    epoch allocates nothing the size of a weight matrix or of a minibatch of inputs.
    ``A[l]``/``H[l]`` hold layer ``l``'s pre-activation and output, ``dH[l]`` the
    gradient with respect to ``H[l]``, ``grads`` one array per parameter.
    """

    def __init__(self, net: MLP, batch_size: int) -> None:
        dt, sizes = net.dtype, net.sizes
        # NOTE: the hidden layers' (n, units) buffers are column-major (order="F"): each
        # unit's n values are contiguous, the seed's one-example-per-column layout in memory.
        # NumPy hands BLAS ``W @ H.T`` for them, which OpenBLAS runs faster for wide layers
        # (100 x 784 by 784 x 512 float32: 568 vs 651 us). Column-major logits make the
        # softmax's per-row max and sum vector operations (its gradient: 11 vs 17 us on
        # 100 x 10), but with a wide last hidden layer the product dOa^T Hs then slows down
        # more than that (512 units: 37 vs 16 us): they are row-major after a wide layer.
        logits_order: Literal["C", "F"] = "F" if len(sizes) > 2 and sizes[-2] <= NARROW else "C"
        self.A = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.A.append(np.empty((batch_size, sizes[-1]), dt, order=logits_order))
        self.H = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.dH = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.grads = {k: np.empty_like(v) for k, v in net.params.items()}
        self.X = np.empty((batch_size, sizes[0]), dt)
        self.y = np.empty(batch_size, np.intp)
        self.ones = np.ones(batch_size, dt)  # db = 1^T dA
        self.rows = np.arange(batch_size)  # the row index of each example's true class
        self.scratch = {k: np.empty_like(v) for k, v in net.params.items() if k[0] == "W"}
        widest = max(sizes[1:-1], default=0)
        self.mask = np.empty((batch_size, widest), dt, order="F")
        self.zeros = np.zeros((batch_size, widest), dt, order="F")
        self._f, self._df = net._f, net._df
        self._rect = net.activation == "rect"

    def activate(self, A: Array, *, out: Array) -> Array:
        """The hidden activation of ``A`` written into ``out``."""
        if self._rect:  # NOTE: the one activation with a cheap in-place form
            # NOTE: against an array of zeros, not the scalar 0: NumPy's maximum with a
            # scalar operand ran 4x slower (31 vs 8 us on 100 x 512 float32).
            return np.maximum(A, self.zeros[: A.shape[0], : A.shape[1]], out=out)
        out[...] = self._f(A)
        return out

    def activation_backward(self, dH: Array, A: Array) -> Array:
        """``dA = dH * f'(A)`` written into ``dH``; for rect, ``f'(A)`` is the 0/1 mask ``A > 0``."""
        if self._rect:  # NOTE: the 0/1 mask into a float buffer: no allocation, no cast buffer
            n, h = A.shape
            mask = np.greater(A, self.zeros[:n, :h], out=self.mask[:n, :h])
            return np.multiply(dH, mask, out=dH)
        return np.multiply(dH, self._df(A), out=dH)

    def gather(self, X: Array, y: Labels, index: NDArray[np.intp]) -> tuple[Array, Labels]:
        """Rows ``index`` of ``(X, y)`` copied into the minibatch buffers: one gather, no allocation."""
        return gather_rows(X, y, index, self.X, self.y)


def gather_rows(
    X: Array, y: Labels, index: NDArray[np.intp], Xbuf: Array, ybuf: Labels
) -> tuple[Array, Labels]:
    """Rows ``index`` of ``(X, y)`` copied into the first ``len(index)`` rows of ``Xbuf``, ``ybuf``."""
    k = index.shape[0]
    # NOTE: mode="clip" because the default "raise" stages the rows in a temporary
    # before writing `out`; the indices come from a permutation, so none is clipped.
    return np.take(X, index, axis=0, out=Xbuf[:k], mode="clip"), np.take(y, index, out=ybuf[:k], mode="clip")


def matrix_backprop(
    net: MLP, X: Array, y: Labels, workspace: Workspace | None = None, scale: float = 1.0
) -> dict[str, Array]:
    """Data-term gradients (times ``scale``) for the whole minibatch in one matrix pass."""
    return net._data_gradients(X, y, workspace=workspace, scale=scale)


def loop_backprop(
    net: MLP, X: Array, y: Labels, workspace: Workspace | None = None, scale: float = 1.0
) -> dict[str, Array]:
    """Data-term gradients (times ``scale``) one example at a time, then averaged (the seed's loop)."""
    total = workspace.grads if workspace else {k: np.empty_like(v) for k, v in net.params.items()}
    for g in total.values():
        g.fill(0)
    for i in range(X.shape[0]):
        for k, g in net._data_gradients(X[i : i + 1], y[i : i + 1]).items():
            total[k] += g
    factor = scale / max(X.shape[0], 1)
    for g in total.values():
        g *= factor
    return total


BACKPROPS = {"matrix": matrix_backprop, "loop": loop_backprop}


def resolve_dtype(dtype: str | type | np.dtype) -> type:
    """``"float64"``/``"float32"`` (or the NumPy type) to the NumPy scalar type."""
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}. Got {name!r} instead.")
    return DTYPES[name]
