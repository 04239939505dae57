"""The training loop's fast path: the arithmetic of :mod:`npmlp.network` and :mod:`npmlp.optim`
in preallocated buffers.

An epoch of training runs thousands of minibatch steps; on small networks most of each
step's time is NumPy's per-call overhead and the allocation of temporaries, not the matrix
products. This module computes exactly what the course path computes, but

- into the buffers of a :class:`Workspace` (``out=``), so that a step allocates nothing the
  size of a weight matrix or a minibatch;
- with the step size folded into the small output gradient (``scale``): every gradient
  below it comes out multiplied by ``eta_t``, which saves a pass over each weight matrix;
- with the softmax and the negative log-likelihood's gradient fused into one buffer, the
  rect mask written into a reused float buffer, ``l1 * sign(W)`` by a clip, and the update
  rules as in-place passes;
- with per-row weights (``sample_weight``), gathered with each minibatch, folded into the
  same normalisation; without them the arithmetic is the unweighted one, unchanged;
- optionally tallying the minibatch's loss and errors on the way (:class:`Tally`), from the
  logits the step computes anyway: the running training loss of an epoch, as scikit-learn
  reports it, without a second pass over the training set;
- with each weight matrix's penalty gradient and update rule run as one job over its rows,
  and a heavy one's rows shared with a helper thread while BLAS is idle (:func:`update_into`);
  where numba is installed, each job is one compiled loop with the same bits (:mod:`npmlp.fused`),
  and so are a rect layer's bias + activation and its derivative;
- with the dropout masks drawn into reused buffers, in the order
  :func:`npmlp.network.dropout_masks` draws them, so both paths see the same masks.

Each function says which course line it replaces, and every ``NOTE`` gives the measurement
that keeps its trick here. ``tests/test_kernels.py`` checks that this path gives the course
path's gradients and updates to round-off, for every activation, depth, penalty and rule.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import functions as F
from . import fused
from .dtypes import Array, Labels
from .network import MLP, Forward, Masks
from .optim import Adam, Arrays, Momentum, Nesterov, Optimizer

#: A last hidden layer up to this wide gets column-major logits (see Workspace).
NARROW = 64
_TINY: dict[np.dtype[Any], np.floating[Any]] = {
    np.dtype(t): np.finfo(t).tiny for t in (np.float16, np.float32, np.float64, np.longdouble)
}


class Workspace:
    """Preallocated buffers for minibatches of up to ``batch_size`` rows.

    ``A[l]``/``H[l]`` hold layer ``l``'s pre-activation and output, ``dH[l]`` the gradient
    with respect to ``H[l]``, ``grads`` one array per parameter, ``X``/``y`` a gathered
    minibatch. Each array's first ``n`` rows serve a minibatch of ``n`` rows. ``rates`` are the
    dropout rates of each weight matrix's input (:func:`npmlp.network.dropout_rates`); ``drop[l]``
    holds the mask of input ``l`` where its rate is not 0, ``Xd`` the masked inputs.
    """

    def __init__(self, net: MLP, batch_size: int, rates: tuple[float, ...] | None = None) -> None:
        dt, sizes = net.dtype, net.sizes
        # NOTE: the hidden layers' (n, units) buffers are column-major (order="F"): each
        # unit's n values are contiguous, the assignment's one-example-per-column layout in
        # memory. OpenBLAS runs ``W @ H.T`` faster for wide layers (100 x 784 by 784 x 512
        # float32: 568 vs 651 us). Column-major logits speed up the softmax's per-row max and
        # sum (its gradient: 11 vs 17 us on 100 x 10), but after a wide last hidden layer the
        # product dOa^T Hs slows down more than that (512 units: 37 vs 16 us).
        logits_order: Literal["C", "F"] = "F" if len(sizes) > 2 and sizes[-2] <= NARROW else "C"
        self.A = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.A.append(np.empty((batch_size, sizes[-1]), dt, order=logits_order))
        self.H = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.dH = [np.empty((batch_size, s), dt, order="F") for s in sizes[1:-1]]
        self.grads = {k: np.empty_like(v) for k, v in net.params.items()}
        self.scratch = {k: np.empty_like(v) for k, v in net.params.items() if k[0] == "W"}
        self.X = np.empty((batch_size, sizes[0]), dt)
        self.y = np.empty(batch_size, np.intp)
        self.w = np.empty(batch_size, dt)  # the minibatch's per-row weights, when there are any
        self.ones = np.ones(batch_size, dt)  # db = 1^T dA
        self.rows = np.arange(batch_size)  # the row index of each example's true class
        widest = max(sizes[1:-1], default=0)
        self.mask = np.empty((batch_size, widest), dt, order="F")
        self.zeros = np.zeros((batch_size, widest), dt, order="F")
        self.rect = net.activation == "rect"
        self.dtype = dt
        #: Large enough for compiled loops (:data:`FUSED_MIN` parameters; see update_into, rect_compiled).
        self.large = sum(P.size for P in net.params.values()) >= FUSED_MIN
        self.sizes = sizes
        self.rates = rates or (0.0,) * net.n_layers
        # NOTE: flat buffers, so that the first n rows are contiguous (see masks_into): the
        # generator only fills contiguous arrays.
        self.drop = [np.empty(batch_size * s, dt) if p else None for s, p in zip(sizes[:-1], self.rates, strict=True)]
        self.Xd = np.empty(batch_size * sizes[0] if self.rates[0] else 0, dt)
        #: Threads for the update's passes (:func:`update_into`): 2 where the process may use
        #: two CPUs or more, else 1; set it to 1 to keep every pass on the calling thread.
        self.threads = 2 if usable_cpus() >= 2 else 1
        #: Whether the update rules run as compiled loops (:mod:`npmlp.fused`; numba installed
        #: and not turned off): the same bits as the NumPy passes, in fewer reads and writes.
        #: None until the first step of a large network asks (numba takes 0.4 s to import).
        self.fused: bool | None = None
        self._helper: ThreadPoolExecutor | None = None
        #: update_into's jobs, made on its first step (see kernels._Plan).
        self.plan: _Plan | None = None
        self._seconds: dict[bool, float] = {}  # a moving average of the update's time, split or not
        self._updates = 0

    def choose_split(self) -> bool:
        """Whether the next heavy update runs on two threads: the faster way of late.

        Two threads win on an idle machine and lose on a busy one (a helper that gets no
        core keeps this thread waiting), so each way's time is tracked as a moving average
        (:data:`SPLIT_MEMORY`), and every :data:`SPLIT_PROBE`-th update tries the other way
        to keep its average current. Either way the bits are the same.
        """
        self._updates += 1
        if len(self._seconds) < 2:
            return not self._seconds.get(True)  # try the split first, then one thread
        faster = self._seconds[True] <= self._seconds[False]
        return faster if self._updates % SPLIT_PROBE else not faster

    def record_split(self, threaded: bool, seconds: float) -> None:
        """Add an update's time to its way's moving average (see :meth:`choose_split`)."""
        old = self._seconds.get(threaded)
        self._seconds[threaded] = seconds if old is None else old + SPLIT_MEMORY * (seconds - old)

    def helper(self) -> ThreadPoolExecutor:
        """The thread that shares a split update's row blocks, started on first use."""
        if self._helper is None:
            self._helper = ThreadPoolExecutor(1, thread_name_prefix="npmlp-update")
        return self._helper


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def masks_into(ws: Workspace, rng: np.random.Generator, n: int) -> list[Array | None]:
    """``network.dropout_masks(ws.rates, sizes, n, rng)`` drawn into the workspace's buffers, each (n, units)."""
    masks: list[Array | None] = []
    for layer, (p, flat, units) in enumerate(zip(ws.rates, ws.drop, ws.sizes[:-1], strict=True)):
        if flat is None:
            masks.append(None)
            continue
        # the inputs' (n, d) row by row, a hidden layer's unit by unit, (units, n), then transposed
        M = flat[: units * n].reshape(units, n).T if layer else flat[: units * n].reshape(n, units)
        rng.random(dtype=M.dtype, out=M.T if layer else M)
        np.greater_equal(M, p, out=M)  # M = (U >= p) / (1 - p)
        np.divide(M, 1 - p, out=M)
        masks.append(M)
    return masks


def linear_into(H: Array, W: Array, b: Array, out: Array) -> Array:
    """``network.linear`` (``H @ W.T + b``) written into ``out`` (n, fan_out)."""
    np.matmul(H, W.T, out=out)
    out += b
    return out


def activate_into(net: MLP, ws: Workspace, A: Array, out: Array) -> Array:
    """The hidden activation ``f(A)`` written into ``out``."""
    if ws.rect:
        # NOTE: against an array of zeros, not the scalar 0: NumPy's maximum with a scalar
        # operand runs 3x slower (20 vs 6 us on 100 x 512 float32).
        return np.maximum(A, ws.zeros[: A.shape[0], : A.shape[1]], out=out)
    out[...] = net._f(A)
    return out


def rect_compiled(ws: Workspace) -> bool:
    """Whether a rect layer's bias, activation and derivative run as compiled loops (:mod:`npmlp.fused`).

    As the update rules do: in networks of :data:`FUSED_MIN` parameters or more, where numba is
    there. The loops do NumPy's float operations, so the bits are the same (``tests/test_fused.py``).
    """
    return ws.rect and ws.large and _compiling(ws) and fused.supports_dtype(ws.dtype)


def forward_into(net: MLP, ws: Workspace, X: Array, masks: Masks, compiled: bool) -> Forward:
    """``MLP.forward(X, masks)`` with every intermediate array in the workspace's buffers.

    ``compiled``: the rect layers' bias and activation as one compiled pass (:func:`rect_compiled`).
    """
    n = X.shape[0]
    if masks[0] is not None:  # the masked inputs X * M
        X = np.multiply(X, masks[0], out=ws.Xd[: X.size].reshape(X.shape))
    inputs, pre, H = [X], [], X
    for i, (W, b, M) in enumerate(zip(net.weights[:-1], net.biases[:-1], masks[1:], strict=True)):
        if compiled:  # NOTE: the bias and rect in one pass: 128 x 1024 float32, 17 vs 26 + 18 us
            A = np.matmul(H, W.T, out=ws.A[i][:n])
            fused.rect_forward(ws.A[i], b, ws.H[i], n)
            H = ws.H[i][:n]
        else:
            A = linear_into(H, W, b, ws.A[i][:n])
            H = activate_into(net, ws, A, ws.H[i][:n])
        if M is not None:
            H *= M  # dropout: h_s * m
        pre.append(A)
        inputs.append(H)
    return Forward(inputs, pre, linear_into(H, net.weights[-1], net.biases[-1], ws.A[-1][:n]))


@dataclass
class Tally:
    """Sums over the minibatches seen so far: ``sum w_i l_i``, ``sum w_i`` and ``sum w_i [wrong_i]``.

    ``l_i`` is example ``i``'s negative log-likelihood and ``wrong_i`` whether its most probable
    class is not ``y_i``, both at the parameters of the step that used it; ``w_i`` is 1 without
    weights. Their ratios are the running loss and error of an epoch.
    """

    loss: float = 0.0
    weight: float = 0.0
    wrong: float = 0.0

    def add(self, losses: Array, wrong: Array, weights: Array | None) -> None:
        """Count one minibatch: its per-row ``losses`` (n,), ``wrong`` flags (n,) and ``weights``."""
        if weights is None:
            self.loss += float(losses.sum())
            self.weight += losses.shape[0]
            self.wrong += int(np.count_nonzero(wrong))
        else:
            self.loss += float(weights @ losses)
            self.weight += float(weights.sum())
            self.wrong += float(weights @ wrong)

    def means(self) -> tuple[float, float]:
        """The weighted mean loss and error so far (nan before any weight)."""
        if not self.weight:
            return float("nan"), float("nan")
        return self.loss / self.weight, self.wrong / self.weight


def nll_grad_into(Oa: Array, y: Labels, rows: Labels, scale: float, weights: Array | None = None,
                  tally: Tally | None = None) -> Array:
    """``scale * network.nll_grad(Oa, y, weights)``, written over ``Oa``.

    That is ``scale * (softmax(Oa) - onehot(y)) / n``, or with ``weights`` row ``i`` times
    ``scale * w_i / sum_j w_j``. The softmax is computed in place of the logits, the mean's
    ``1/n`` (or ``w_i / sum w``) and the step size folded into its normalisation, and the
    one-hot subtracted at ``(rows, y)``: no (n, m) temporary but the row maxima and sums (and
    the rows' weight shares). ``tally``: also count the minibatch's losses and errors there.
    """
    n = Oa.shape[0]
    wrong = Oa.argmax(axis=1) != y if tally is not None else None
    Oa -= Oa.max(axis=1, keepdims=True)  # NOTE: exp of <= 0 never overflows
    true = Oa[rows, y] if tally is not None else None  # the true class's logit, shifted
    np.exp(Oa, out=Oa)
    sums = Oa.sum(axis=1, keepdims=True)
    if tally is not None:  # -log softmax(Oa)[y] = log(sum exp(shifted)) - shifted[y]
        assert wrong is not None and true is not None
        tally.add(np.log(sums[:, 0]) - true, wrong, weights)
    if weights is None:
        Oa *= (scale / n) / sums
        Oa[rows, y] -= scale / n
        return Oa
    total = weights.sum()
    share = weights * (scale / total if total else 0.0)  # scale * w_i / sum w: a minibatch of no weight adds 0
    Oa *= share[:, None] / sums
    Oa[rows, y] -= share
    return Oa


def tally_logits(Oa: Array, y: Labels, weights: Array | None, tally: Tally) -> None:
    """Count a minibatch's losses and errors from its logits ``Oa`` (n, m) (the course path's tally)."""
    tally.add(-F.log_softmax(Oa)[np.arange(Oa.shape[0]), y], Oa.argmax(axis=1) != y, weights)


def linear_backward_into(
    dA: Array, H: Array, W: Array, out: tuple[Array | None, Array, Array], ones: Array
) -> Array | None:
    """``network.linear_backward`` into ``out = (dH or None, dW, db)``; returns ``dH``."""
    dH, dW, db = out
    if dH is not None:
        np.matmul(dA, W, out=dH)
    np.matmul(dA.T, H, out=dW)
    # NOTE: db, the sum over examples, as the product 1^T dA: one BLAS call, 5x faster than
    # a column sum of a column-major dA (3.3 vs 18.3 us on 100 x 512 float32).
    np.matmul(ones, dA, out=db)
    return dH


def activation_backward_into(net: MLP, ws: Workspace, dH: Array, A: Array) -> Array:
    """``MLP.activation_backward`` (``dH * f'(A)``) written into ``dH``."""
    if ws.rect:  # f'(A) is the 0/1 mask A > 0
        # NOTE: the mask into a reused float buffer, not a new bool array that multiply must
        # cast: 15.7 vs 18.6 us on 100 x 512 float32.
        n, h = A.shape
        return np.multiply(dH, np.greater(A, ws.zeros[:n, :h], out=ws.mask[:n, :h]), out=dH)
    return np.multiply(dH, net._df(A), out=dH)


def l1_sign(W: Array, a: float, *, out: Array) -> Array:
    """``a * sign(W)`` written into ``out``, the gradient of ``a * ||W||_1``.

    Computed as ``clip(W, -t, t) * (a / t)`` with ``t`` the dtype's smallest normal number:
    every nonzero normal ``W`` clips to ``+-t``, and since ``t`` is a power of two the product
    is exactly ``+-a``; 0 stays 0, nan stays nan, and nothing overflows.
    """
    # NOTE: np.sign runs at a third of the speed of a clip and a multiply (512 x 784
    # float32: 250 vs 88 us). Only subnormal weights (below 1.2e-38 in float32) get less
    # than +-a, in proportion to their size.
    t = _TINY[W.dtype]
    W.clip(-t, t, out=out)  # NOTE: the method, not np.clip: 1.4 us less of Python wrappers
    if a < 2:  # a / t is finite: the dtype's max * t is about 4
        np.multiply(out, a / t, out=out)
        return out
    np.multiply(out, 1 / t, out=out)
    return np.multiply(out, a, out=out)


def add_penalty_into(net: MLP, grads: Arrays, scratch: Arrays, scale: float) -> Arrays:
    """``grads[W] += scale * network.penalty_grad(W, l1, l2)`` for each penalised weight matrix."""
    for (w, _), a, b in zip(net.layer_names, net.l1, net.l2, strict=True):
        if a:
            grads[w] += l1_sign(net.params[w], a * scale, out=scratch[w])
        if b:
            grads[w] += np.multiply(net.params[w], 2 * b * scale, out=scratch[w])
    return grads


def backprop_into(net: MLP, ws: Workspace, X: Array, y: Labels, scale: float, weights: Array | None = None,
                  tally: Tally | None = None, masks: Masks | None = None) -> Arrays:
    """``scale * MLP.gradients(X, y, sample_weight=weights, masks=masks)`` without the penalty (matrix backprop)
    into ``ws.grads``.

    ``tally``: also count the minibatch's losses and errors (before the step, under the masks).
    """
    n = X.shape[0]
    masks = masks or [None] * net.n_layers
    compiled = rect_compiled(ws)
    fw = forward_into(net, ws, X, masks, compiled)
    dA = nll_grad_into(fw.logits, y, ws.rows[:n], scale, weights, tally)
    for i in range(net.n_layers - 1, -1, -1):
        w, b = net.layer_names[i]
        out = (ws.dH[i - 1][:n] if i else None, ws.grads[w], ws.grads[b])
        dH = linear_backward_into(dA, fw.inputs[i], net.params[w], out, ws.ones[:n])
        if dH is not None:
            M = masks[i]
            if M is not None:
                dH *= M  # back through the dropout: dh * m
            if compiled:  # NOTE: no mask buffer written and read back: 128 x 1024 float32, 15 vs 28 + 14 us
                fused.rect_backward(ws.dH[i - 1], ws.A[i - 1], n)
                dA = dH
            else:
                dA = activation_backward_into(net, ws, dH, fw.pre[i - 1])
    return ws.grads


def matrix_gradients(net: MLP, ws: Workspace, X: Array, y: Labels, scale: float, weights: Array | None = None,
                     tally: Tally | None = None, masks: Masks | None = None) -> Arrays:
    """``scale * MLP.gradients(X, y, sample_weight=weights, masks=masks)`` (matrix backprop and penalty) into
    ``ws.grads``.

    ``tally``: also count the minibatch's losses and errors (before the step).
    """
    return add_penalty_into(net, backprop_into(net, ws, X, y, scale, weights, tally, masks), ws.scratch, scale)


def loop_gradients(net: MLP, ws: Workspace, X: Array, y: Labels, scale: float, weights: Array | None = None,
                   tally: Tally | None = None, masks: Masks | None = None) -> Arrays:
    """``scale * MLP.gradients(X, y, backprop="loop", sample_weight=weights, masks=masks)`` into ``ws.grads``:
    the course's loop, kept slow."""
    if tally is not None:
        tally_logits(net.forward(X, masks).logits, y, weights, tally)
    for k, g in net.gradients(X, y, backprop="loop", sample_weight=weights, masks=masks).items():
        np.multiply(g, scale, out=ws.grads[k])
    return ws.grads


GRADIENTS: dict[str, Callable[[MLP, Workspace, Array, Labels, float, Array | None, Tally | None, Masks | None],
                               Arrays]] = {
    "matrix": matrix_gradients,
    "loop": loop_gradients,
}


# -- the update rules of npmlp.optim, in place on gradients already scaled --------------
def gradient_scale(optimizer: Optimizer, lr: float) -> float:
    """The factor the backprop folds into the gradients for ``optimizer``'s in-place step.

    ``lr`` for the rules that only ever use ``lr * g`` (sgd, momentum, Nesterov), 1 for Adam,
    which divides by the gradient's running scale and so needs ``g`` itself.
    """
    return 1.0 if isinstance(optimizer, Adam) else lr


# Each rule updates one parameter ``P`` from its scaled gradient ``G`` (scratch: it is
# overwritten) and its state arrays, elementwise. Row blocks of the same arrays can therefore
# run on different threads and give the very same bits (see ``update_into``).
def _sgd(P: Array, G: Array) -> None:  # theta <- theta - eta g, with G = eta g
    P -= G


def _momentum(P: Array, G: Array, V: Array, mu: float) -> None:  # v <- mu v - eta g;  theta <- theta + v
    V *= mu
    V -= G
    P += V


def _nesterov(P: Array, G: Array, V: Array, mu: float) -> None:  # v <- mu v - eta g;  theta <- theta + mu v - eta g
    V *= mu
    V -= G
    P -= G
    P += np.multiply(V, mu, out=G)  # G is spent: it holds mu v


def _adam(P: Array, G: Array, M: Array, V: Array, b1: float, b2: float, eps: float, step: float) -> None:
    M -= G  # m <- b1 m + (1 - b1) g, as b1 (m - g) + g: no temporary
    M *= b1
    M += G
    G *= G  # G is spent: it holds g^2
    V -= G  # v <- b2 v + (1 - b2) g^2
    V *= b2
    V += G
    np.sqrt(V, out=G)
    G += eps
    np.divide(M, G, out=G)
    G *= step
    P -= G  # theta <- theta - step m / (sqrt(v) + eps)


def _penalty(W: Array, G: Array, S: Array, a: float, b: float) -> None:
    """``G += a sign(W) + b W`` as :func:`add_penalty_into` adds it (``a``, ``b`` already scaled)."""
    if a:
        G += l1_sign(W, a, out=S)
    if b:
        G += np.multiply(W, b, out=S)


#: A rule's elementwise passes over a parameter (its cost in :data:`SPLIT_WORK`'s units).
PASSES = {"sgd": 1, "momentum": 3, "nesterov": 5, "adam": 12, "l1": 3, "l2": 2}
#: A network of at least this many parameters runs its update rules as compiled loops
#: (:mod:`npmlp.fused`), every parameter's: a loop's call costs about 1 us, less than the NumPy
#: passes even on a 10 x 10 matrix (SGD with the elastic net: 1.0 vs 4.8 us). Smaller networks
#: train in moments, and the 0.4 s of importing numba would only slow them down.
FUSED_MIN = 1024
#: ... and as one compiled loop (npmlp.fused), in the same units: about what each costs there.
FUSED_PASSES = {"sgd": 1, "momentum": 2, "nesterov": 2, "adam": 3, "l1": 1, "l2": 0}
#: Split a parameter's update across two threads when its size times its passes reaches
#: this: its rows run on both cores while BLAS is idle between minibatches (NumPy releases
#: the GIL inside ufuncs). Handing work to the other thread costs about 20 us.
SPLIT_WORK = 1 << 20
#: ... in this many blocks of rows, which both threads take in turn: when the helper thread
#: gets no core (a busy machine), the calling thread does them all instead of waiting.
BLOCKS = 4
#: Every this many heavy updates, the way not in favour is timed again (Workspace.choose_split) ...
SPLIT_PROBE = 16
#: ... and each new time moves its way's average by this fraction of the difference.
SPLIT_MEMORY = 0.25


def _rule(optimizer: Optimizer, lr: float) -> tuple[Callable[..., None], str, tuple[str, ...], tuple[float, ...]]:
    """The in-place rule for ``optimizer``, its name, its state arrays' prefixes and its constants.

    Adam's constants count one more step (``Adam.advance``): call this once per step.
    """
    if isinstance(optimizer, Adam):
        o = optimizer
        return _adam, "adam", ("m", "v"), (o.beta1, o.beta2, o.eps, o.advance(lr))
    if isinstance(optimizer, Nesterov):
        return _nesterov, "nesterov", ("v",), (optimizer.momentum,)
    if isinstance(optimizer, Momentum):
        return _momentum, "momentum", ("v",), (optimizer.momentum,)
    return _sgd, "sgd", (), ()


#: A parameter's penalty and rule on its rows ``[lo, hi)``, given the step's rule constants.
Job = Callable[[int, int, tuple[float, ...]], None]
Block = tuple[Job, int, int]


def _job(rule: Callable[..., None], P: Array, G: Array, state: list[Array],
         penalty: tuple[Array, float, float] | None) -> Job:
    rows = P.shape[0]

    def run(lo: int, hi: int, consts: tuple[float, ...]) -> None:
        arrays = (P, G, *state) if hi - lo == rows else [x[lo:hi] for x in (P, G, *state)]
        if penalty is not None:
            S, a, b = penalty
            _penalty(arrays[0], arrays[1], S if hi - lo == rows else S[lo:hi], a, b)
        rule(*arrays, *consts)
    return run


def _compiling(ws: Workspace) -> bool:
    """``ws.fused``, decided on first use: whether numba's compiled rules are there."""
    if ws.fused is None:
        ws.fused = fused.rules() is not None
    return ws.fused


def _fused_job(name: str, P: Array, G: Array, state: list[Array], penalty: tuple[Array, float, float] | None) -> Job:
    """:func:`_job`'s passes as one compiled loop over the rows (:mod:`npmlp.fused`): the same bits."""
    loop = fused.loop(name, P.dtype, None if penalty is None else (penalty[1], penalty[2], _TINY[P.dtype]))
    flat = [x.reshape(-1) for x in (P, G, *state)]  # views: the arrays are contiguous (fused.supports)
    rows = P.shape[0]
    width = P.size // max(rows, 1)

    def run(lo: int, hi: int, consts: tuple[float, ...]) -> None:
        loop(flat if hi - lo == rows else [x[lo * width : hi * width] for x in flat], consts)
    return run


@dataclass
class _Plan:
    """:func:`update_into`'s jobs for one optimizer, step scale and set of arrays.

    Made on the first step and kept while nothing it was made from changes (:func:`_plan_fits`):
    the arrays are checked by identity every step, so a parameter or optimizer state swapped
    for another array (a loaded checkpoint, a non-contiguous one) makes a new plan, never an
    update of a stale one.
    """

    key: tuple[Any, ...]
    split: list[Block]  # heavy jobs, each over all its rows
    whole: list[Block]  # the rest, each run in one go
    arrays: tuple[Array, ...]  # the arrays its jobs work on, each checked by identity before a step
    blocks: list[Block] = field(init=False)  # the heavy jobs cut into BLOCKS row blocks, for two threads
    in_turn: list[Block] = field(init=False)  # every job whole, for one thread

    def __post_init__(self) -> None:
        self.blocks = [block for job, _, rows in self.split for block in _blocks(job, rows, BLOCKS)]
        self.in_turn = self.split + self.whole


@functools.cache
def _state_keys(names: tuple[str, ...], prefixes: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The optimizer state's keys of each parameter (``m/W1``, ``v/W1``, ...), made once."""
    return tuple(tuple(f"{s}/{k}" for s in prefixes) for k in names)


def _plan_arrays(net: MLP, ws: Workspace, optimizer: Optimizer, prefixes: tuple[str, ...]) -> tuple[Array, ...]:
    """Every array a plan's jobs work on."""
    state = optimizer.state
    return (*net.params.values(), *ws.grads.values(), *ws.scratch.values(),
            *(state[k] for keys in _state_keys(tuple(net.params), prefixes) for k in keys))


def _plan_key(net: MLP, ws: Workspace, name: str, scale: float, penalty: bool) -> tuple[Any, ...]:
    """Everything but the arrays that a plan depends on."""
    return (name, scale, penalty, net.l1, net.l2, ws.fused, ws.threads, SPLIT_WORK, tuple(net.params))


def _plan_fits(plan: _Plan | None, key: tuple[Any, ...], arrays: tuple[Array, ...]) -> bool:
    """Whether ``plan`` was made for ``key`` and these very arrays (the same objects)."""
    return (plan is not None and plan.key == key and len(plan.arrays) == len(arrays)
            and all(map(operator.is_, plan.arrays, arrays)))


def _make_plan(net: MLP, ws: Workspace, optimizer: Optimizer, rule: Callable[..., None], name: str,
               prefixes: tuple[str, ...], scale: float, penalty: bool) -> _Plan:
    l1 = dict.fromkeys(net.params, 0.0)
    l2 = dict.fromkeys(net.params, 0.0)
    if penalty:
        for (w, _), a, b in zip(net.layer_names, net.l1, net.l2, strict=True):
            l1[w], l2[w] = a * scale, 2 * b * scale
    split: list[Block] = []
    whole: list[Block] = []
    for (k, P), keys in zip(net.params.items(), _state_keys(tuple(net.params), prefixes), strict=True):
        pen = (ws.scratch[k], l1[k], l2[k]) if l1[k] or l2[k] else None
        state = [optimizer.state[s] for s in keys]
        # NOTE: plain SGD is one NumPy pass already; the rest is 2-17 passes against one loop
        compiled = (ws.large and (pen is not None or name != "sgd") and _compiling(ws)
                    and fused.supports(P, ws.grads[k], *state))
        job = (_fused_job(name, P, ws.grads[k], state, pen) if compiled
               else _job(rule, P, ws.grads[k], state, pen))
        cost = FUSED_PASSES if compiled else PASSES
        work = P.size * (cost[name] + (cost["l1"] if l1[k] else 0) + (cost["l2"] if l2[k] else 0))
        rows = P.shape[0]
        (split if ws.threads > 1 and rows > 1 and work >= SPLIT_WORK else whole).append((job, 0, rows))
    return _Plan(_plan_key(net, ws, name, scale, penalty), split, whole, _plan_arrays(net, ws, optimizer, prefixes))


def update_into(net: MLP, ws: Workspace, optimizer: Optimizer, lr: float, scale: float,
                penalty: bool = True) -> None:
    """The penalty gradient (with ``penalty``) and ``optimizer``'s step, parameter by parameter, in place.

    ``ws.grads`` hold ``scale * g`` (``scale = gradient_scale(optimizer, lr)``) and are spent.
    Each weight matrix's penalty and rule run as one job over its rows; a large one (see
    :data:`SPLIT_WORK`) runs in :data:`BLOCKS` blocks of rows that this thread and ``ws``'s
    helper thread share, when ``ws.choose_split`` says that pays. Every pass is elementwise,
    so the bits are those of one thread whatever the choice. The jobs are made once and kept
    in ``ws`` (:class:`_Plan`): a small network's step is short enough for their making to show.
    """
    rule, name, prefixes, consts = _rule(optimizer, lr)
    plan = ws.plan
    if not _plan_fits(plan, _plan_key(net, ws, name, scale, penalty), _plan_arrays(net, ws, optimizer, prefixes)):
        plan = ws.plan = _make_plan(net, ws, optimizer, rule, name, prefixes, scale, penalty)
    assert plan is not None
    if not plan.split:
        _run_jobs(plan.whole, consts)
        return
    threaded = ws.choose_split()
    tic = time.perf_counter()
    if threaded:
        _run_split(ws, plan.blocks, plan.whole, consts)
    else:
        _run_jobs(plan.in_turn, consts)
    ws.record_split(threaded, time.perf_counter() - tic)


def _run_split(ws: Workspace, blocks: list[Block], whole: list[Block], consts: tuple[float, ...]) -> None:
    claims = _Claims(blocks, consts)
    done = ws.helper().submit(claims.run)
    try:
        _run_jobs(whole, consts)
        claims.run()
    finally:
        # NOTE: a helper that has not started yet (its core busy elsewhere) is cancelled, and
        # this thread has done its blocks; one that has, is waited for, even when this thread
        # failed: no pass may outlive the step.
        if not done.cancel():
            done.result()


def _run_jobs(jobs: list[Block], consts: tuple[float, ...]) -> None:
    for job, lo, hi in jobs:
        job(lo, hi, consts)


def _blocks(job: Job, rows: int, n: int) -> list[Block]:
    """``job`` on ``n`` blocks of rows of (nearly) equal size."""
    edges = [rows * i // n for i in range(n + 1)]
    return [(job, lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


class _Claims:
    """Row blocks that two threads take one at a time, until none is left."""

    def __init__(self, blocks: list[Block], consts: tuple[float, ...]) -> None:
        self.blocks, self.consts = blocks, consts
        self.claim = itertools.count().__next__  # NOTE: atomic under the GIL: no block runs twice

    def run(self) -> None:
        while (i := self.claim()) < len(self.blocks):
            job, lo, hi = self.blocks[i]
            job(lo, hi, self.consts)


def scaled_step(optimizer: Optimizer, params: Arrays, scaled_grads: Arrays, lr: float) -> None:
    """``optimizer.step(params, grads, lr)`` in place, given ``gradient_scale(optimizer, lr) * grads``.

    ``scaled_grads`` are scratch: they are overwritten. One thread; the training loop's
    :func:`update_into` runs the same rules, with the penalty, in row blocks.
    """
    rule, _, prefixes, consts = _rule(optimizer, lr)
    for k, P in params.items():
        rule(P, scaled_grads[k], *(optimizer.state[f"{s}/{k}"] for s in prefixes), *consts)


def train_step(net: MLP, ws: Workspace, optimizer: Optimizer, X: Array, y: Labels, lr: float,
               backprop: str = "matrix", weights: Array | None = None, tally: Tally | None = None,
               masks_rng: np.random.Generator | None = None) -> None:
    """One minibatch of gradient descent on ``net``'s parameters, in place.

    The course's ``masks = dropout_masks(ws.rates, net.sizes, n, masks_rng)`` (no dropout without
    ``masks_rng``), then ``grads = net.gradients(X, y, sample_weight=weights, masks=masks);
    optimizer.step(net.params, grads, lr)``; ``tally`` counts the minibatch's losses and errors at
    the parameters before the step.
    The matrix backprop leaves the penalty to :func:`update_into`, which adds it to each
    weight matrix's gradient in the same pass over its rows as the update.
    """
    scale = gradient_scale(optimizer, lr)
    masks = None if masks_rng is None else masks_into(ws, masks_rng, X.shape[0])
    if backprop == "matrix":
        backprop_into(net, ws, X, y, scale, weights, tally, masks)
        update_into(net, ws, optimizer, lr, scale)
    else:
        GRADIENTS[backprop](net, ws, X, y, scale, weights, tally, masks)
        update_into(net, ws, optimizer, lr, scale, penalty=False)
