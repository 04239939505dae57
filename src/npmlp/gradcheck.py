"""Finite-difference gradient checking (the assignment's part 3, Q1-Q4).

For every checked entry ``theta_j`` of every parameter (and, on request, of the input
``X``), a finite difference of the objective ``R`` estimates ``dR/dtheta_j``; it is compared
with the analytic gradient ``a_j`` by the ratio ``a_j / e_j`` (as the assignment prints it)
and the relative error ``|a_j - e_j| / max(|a_j|, |e_j|, tiny)``. ``R`` is the full
objective, penalty included, so the penalty's gradient is checked too; with per-row weights
(``sample_weight``) the weighted one, so the weights' part in the gradient is checked as well.
With dropout, the check fixes the masks (``masks``) and checks the objective they define:
the very function whose gradient a training step follows.

Three estimates (``method``), with ``h`` the step:

==============  ===========================================================  =========
``forward``     ``(R(theta + h) - R(theta)) / h``, the assignment's            ``O(h)``
``central``     ``(R(theta + h) - R(theta - h)) / (2h)``                       ``O(h^2)``
``five-point``  ``(8 (R(+h) - R(-h)) - (R(+2h) - R(-2h))) / (12h)``            ``O(h^4)``
==============  ===========================================================  =========

``forward`` and ``central`` evaluate ``R`` in the network's dtype, as the assignment did,
and pass when every ratio lies within ``1 +- tol`` (the assignment's band [0.99, 1.01] by
default). ``five-point``, the default, evaluates ``R`` on a long-double copy of the network
and passes when the largest relative error is below ``tol`` (1e-6 in float64).

An entry whose stencil moves a pre-activation of ``rect`` across 0, or a weight under an L1
penalty across 0, straddles a kink: the difference there measures the average of two
slopes, not the derivative. Such entries are skipped and counted. Entries whose gradient
and estimate are both below an absolute floor are kept for the relative error but left
out of the ratios (and counted): there the ratio of two round-off errors means nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import functions as F
from .dtypes import Array, Labels
from .network import MLP, Masks, check_weights, nll

GradientFn = Callable[[MLP, Array, Labels], dict[str, Array]]


@dataclass(frozen=True)
class Stencil:
    """``e = sum over terms (w, a, b) of w (R(theta + a h) - R(theta + b h)) / (divisor h)``.

    ``wide``: evaluate ``R`` in long double.
    """

    terms: tuple[tuple[int, int, int], ...]
    divisor: int
    wide: bool
    default_step: float
    default_tol: dict[np.dtype[Any], float]


#: The estimates by name. ``forward``/``central`` pass on ratios within ``1 +- tol``; ``five-point``
#: on relative errors below ``tol`` (a float32 backprop is only good to a few 1e-7 per operation).
METHODS = {
    "forward": Stencil(((1, 1, 0),), 1, False, 1e-5, {np.dtype(np.float64): 0.01, np.dtype(np.float32): 0.01}),
    "central": Stencil(((1, 1, -1),), 2, False, 1e-5, {np.dtype(np.float64): 0.01, np.dtype(np.float32): 0.01}),
    "five-point": Stencil(((8, 1, -1), (-1, 2, -2)), 12, True, 1e-4,
                          {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3}),
}
DEFAULT_METHOD = "five-point"
#: Gradients and estimates both below this (absolute) are left out of the ratios.
RATIO_FLOOR = 1e-7


@dataclass
class ParamCheck:
    """The check of one parameter: analytic and estimated gradients of the checked entries."""

    name: str
    shape: tuple[int, ...]
    index: NDArray[np.intp]  # flat indices of the checked entries
    analytic: NDArray[np.float64]
    estimate: NDArray[np.float64]
    skipped_kinks: int
    floor: float = RATIO_FLOOR

    @property
    def checked(self) -> int:
        return int(self.index.size)

    @property
    def rel_error(self) -> NDArray[np.float64]:
        return relative_error(self.analytic, self.estimate)

    @property
    def ratio(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.analytic / self.estimate
        return np.where((self.analytic == 0) & (self.estimate == 0), 1.0, r)

    @property
    def above_floor(self) -> NDArray[np.bool_]:
        """The entries whose ratio counts: gradient or estimate at least :attr:`floor`."""
        return np.maximum(np.abs(self.analytic), np.abs(self.estimate)) >= self.floor

    @property
    def below_floor(self) -> int:
        return int(self.checked - np.count_nonzero(self.above_floor))

    @property
    def ratio_min(self) -> float:
        r = self.ratio[self.above_floor]
        return float(r.min()) if r.size else 1.0

    @property
    def ratio_max(self) -> float:
        r = self.ratio[self.above_floor]
        return float(r.max()) if r.size else 1.0

    @property
    def max_rel_error(self) -> float:
        return float(self.rel_error.max()) if self.checked else 0.0


@dataclass
class GradCheckReport:
    """Per-parameter results and the verdict against ``tol`` under ``method``."""

    params: dict[str, ParamCheck]
    tol: float
    step: float
    method: str = DEFAULT_METHOD
    notes: list[str] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((p.max_rel_error for p in self.params.values()), default=0.0)

    @property
    def ratio_min(self) -> float:
        return min((p.ratio_min for p in self.params.values()), default=1.0)

    @property
    def ratio_max(self) -> float:
        return max((p.ratio_max for p in self.params.values()), default=1.0)

    @property
    def passed(self) -> bool:
        if METHODS[self.method].wide:
            return self.max_rel_error < self.tol
        return 1 - self.tol <= self.ratio_min and self.ratio_max <= 1 + self.tol

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``npmlp gradcheck --json``."""
        return {
            "method": self.method,
            "step": self.step,
            "max_rel_error": self.max_rel_error,
            "tol": self.tol,
            "passed": self.passed,
            "ratio_min": self.ratio_min,
            "ratio_max": self.ratio_max,
            "params": {k: _param_dict(p) for k, p in self.params.items()},
        }

    def format_text(self) -> str:
        """The assignment's printout: per parameter the true gradient, the estimate, the ratio."""
        lines = [f"method {self.method}, step {self.step:g}", ""]
        for p in self.params.values():
            lines.extend(_param_text(p))
        lines.extend(self.notes)
        verdict = "PASSED" if self.passed else "FAILED"
        if METHODS[self.method].wide:
            rule = f"max relative error {self.max_rel_error:.3e} (tolerance {self.tol:g})"
        else:
            rule = f"ratios within [{self.ratio_min:.8f}, {self.ratio_max:.8f}] (band 1 +- {self.tol:g})"
        lines.append(f"{rule}: {verdict}")
        return "\n".join(lines)


def _param_dict(p: ParamCheck) -> dict[str, Any]:
    return {"max_rel_error": p.max_rel_error, "checked": p.checked, "skipped_kinks": p.skipped_kinks,
            "ratio_min": p.ratio_min, "ratio_max": p.ratio_max, "below_floor": p.below_floor}


def _param_text(p: ParamCheck) -> list[str]:
    """One parameter's three arrays, as the assignment prints them, and its summary line."""
    lines = []
    full = p.checked == int(np.prod(p.shape))
    shape = p.shape if full else (p.checked,)
    what = "" if full else f" ({p.checked} of {int(np.prod(p.shape))} entries, chosen at random)"
    opts: dict[str, Any] = {"suppress_small": False, "max_line_width": 100, "threshold": 60}
    for title, values, digits in (("true gradient", p.analytic, 8), ("estimated gradient", p.estimate, 8),
                                  ("ratio between the two grads", p.ratio, 13)):
        # The ratio gets 13 fixed digits: a bare "1." would hide how close to 1 it is.
        fmt = {**opts, "precision": digits, "floatmode": "fixed" if digits > 8 else "maxprec"}
        lines += [f"The {title} for the parameter {p.name}{what} :", np.array2string(values.reshape(shape), **fmt), ""]
    kinks = f", {p.skipped_kinks} skipped at a kink" if p.skipped_kinks else ""
    floor = f", {p.below_floor} below {p.floor:g} left out of the ratios" if p.below_floor else ""
    lines += [f"{p.name}: max relative error {p.max_rel_error:.3e} over {p.checked} entries{kinks}{floor}", ""]
    return lines


def relative_error(a: NDArray[np.float64], e: NDArray[np.float64], tiny: float = 1e-12) -> NDArray[np.float64]:
    """``|a - e| / max(|a|, |e|, tiny)``, elementwise."""
    return np.abs(a - e) / np.maximum(np.maximum(np.abs(a), np.abs(e)), tiny)


def _widest(net: MLP) -> MLP:
    """A copy of ``net`` in the widest float NumPy has (80-bit long double on x86)."""
    wide = np.longdouble if np.finfo(np.longdouble).eps < np.finfo(net.dtype).eps else np.float64
    params = {k: v.astype(wide) for k, v in net.params.items()}
    return MLP(params, activation=net.activation, l1=net.l1, l2=net.l2)


def _copy(net: MLP) -> MLP:
    """A copy of ``net`` in its own dtype, whose parameters the check may perturb."""
    return MLP({k: v.copy() for k, v in net.params.items()}, activation=net.activation, l1=net.l1, l2=net.l2)


def _evaluate(net: MLP, X: Array, y: Labels, w: Array | None, masks: Masks | None,
              kinked: bool) -> tuple[np.floating, list[Array]]:
    """The objective (weighted by ``w``, given the dropout ``masks``) and, for a kinked activation, the signs of
    every pre-activation."""
    fw = net.forward(X, masks)
    value = nll(fw.logits, y, w) + net.penalty()
    return value, [np.sign(A) for A in fw.pre] if kinked else []


def _crosses_a_kink(signs: list[list[Array]]) -> bool:
    """Whether any pre-activation is 0 or changes sign between the stencil's points."""
    first, *others = signs
    return any(np.any(S == 0) or any(not np.array_equal(S, other[i]) for other in others)
               for i, S in enumerate(first))


def _estimate_entry(
    net: MLP, X: Array, y: Labels, w: Array | None, masks: Masks | None, flat: Array, j: int, h: float,
    stencil: Stencil, l1: float
) -> float | None:
    """The finite-difference estimate for entry ``j`` of ``flat`` (a view into ``net`` or ``X``), or None at a kink."""
    old = flat[j]
    kinked = net.activation in F.KINKED
    values, signs = {}, []
    for k in sorted({k for _, a, b in stencil.terms for k in (a, b)}):
        flat[j] = old + k * h
        values[k], s = _evaluate(net, X, y, w, masks, kinked)
        signs.append(s)
    flat[j] = old
    lo, hi = old + min(values) * h, old + max(values) * h
    if _crosses_a_kink(signs) or (l1 and (np.sign(lo) != np.sign(hi) or lo == 0 or hi == 0)):
        return None  # a rect pre-activation, or |W| under L1, has its kink inside the stencil
    # NOTE: differences first: where R does not depend on the entry, the estimate is exactly 0.
    total = sum(w * (values[a] - values[b]) for w, a, b in stencil.terms)
    return float(total / (stencil.divisor * h))


def _check_array(
    name: str, target: Array, analytic: Array, net: MLP, X: Array, y: Labels, w: Array | None,
    masks: Masks | None, *, h: float, stencil: Stencil, l1: float, index: NDArray[np.intp]
) -> ParamCheck:
    """Estimate the entries ``index`` of ``target`` (a parameter of ``net``, or ``X`` itself) and compare."""
    flat = target.reshape(-1)  # a view: writing it perturbs the array
    estimates = {int(j): _estimate_entry(net, X, y, w, masks, flat, int(j), h, stencil, l1) for j in index}
    keep = np.array([j for j, e in estimates.items() if e is not None], dtype=np.intp)
    return ParamCheck(name=name, shape=target.shape, index=keep,
                      analytic=np.asarray(analytic, dtype=np.float64).reshape(-1)[keep],
                      estimate=np.array([estimates[int(j)] for j in keep], dtype=np.float64),
                      skipped_kinks=int(index.size - keep.size))


def _step_and_tol(stencil: Stencil, dtype: np.dtype[Any], step: float | None, tol: float | None) -> tuple[float, float]:
    """The step ``h`` and the tolerance: the given ones, checked, or the method's defaults."""
    h = stencil.default_step if step is None else float(step)
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"step must be a finite number > 0. Got {step} instead.")
    return h, stencil.default_tol[dtype] if tol is None else float(tol)


def _stencil(method: str) -> Stencil:
    """The stencil of ``method``, or a ``ValueError`` listing the methods."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}. Got {method!r} instead.")
    return METHODS[method]


def _entries(size: int, max_entries: int | None, rng: np.random.Generator) -> NDArray[np.intp]:
    """All flat indices, or ``max_entries`` of them drawn at random (sorted)."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_entries, replace=False))


def _analytic(net: MLP, X: Array, y: Labels, w: Array | None, masks: Masks | None, gradient_fn: GradientFn | None,
              inputs: bool) -> dict[str, Array]:
    """The gradients to check: ``gradient_fn``'s or :meth:`MLP.gradients` (weighted by ``w``, given the dropout
    ``masks``), and ``x``'s."""
    analytic = (gradient_fn or (lambda n, a, b: n.gradients(a, b, sample_weight=w, masks=masks)))(net, X, y)
    return {**analytic, "x": net.grad_x(X, y, w, masks)} if inputs else analytic


def check_gradients(
    net: MLP,
    X: Array, y: Labels,
    *,
    method: str = DEFAULT_METHOD,
    step: float | None = None,
    tol: float | None = None,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
    gradient_fn: GradientFn | None = None,
    inputs: bool = False,
    sample_weight: Array | None = None, masks: Masks | None = None,
) -> GradCheckReport:
    """Compare analytic gradients with finite differences.

    Parameters
    ----------
    net : MLP
        The network whose analytic gradients are checked; it is not modified.
    X : array of shape (n, d)
    y : array of shape (n,)
    method : {"five-point", "central", "forward"}
        The estimate (see the module's docstring); ``forward`` is the assignment's.
    step : float, optional
        Finite-difference step ``h`` (1e-4 for five-point, 1e-5 otherwise).
    tol : float, optional
        five-point: pass when the max relative error is below it (1e-6 float64, 1e-3 float32);
        forward/central: pass when every ratio lies in ``[1 - tol, 1 + tol]`` (0.01).
    max_entries : int, optional
        Check at most this many entries per parameter, drawn with ``rng``.
    gradient_fn : callable, optional
        ``gradient_fn(net, X, y) -> dict``, by default :meth:`MLP.gradients` (tests pass wrong ones).
    inputs : bool
        Also check the gradient with respect to ``X`` (:meth:`MLP.grad_x`), reported as ``x``.
    sample_weight : array of shape (n,), optional
        Per-row weights >= 0: check the weighted mean loss plus the penalty (see :func:`npmlp.network.nll`).
    masks : sequence of array or None, optional
        Dropout masks (:func:`npmlp.network.dropout_masks`): check the objective they define.

    Returns
    -------
    GradCheckReport
    """
    stencil = _stencil(method)
    X, y_checked = net.check_input(X, y)
    assert y_checked is not None
    h, tol = _step_and_tol(stencil, net.dtype, step, tol)
    rng = np.random.default_rng(0) if rng is None else rng
    w = None if sample_weight is None else check_weights(sample_weight, X.shape[0], net.dtype)
    analytic = _analytic(net, X, y_checked, w, masks, gradient_fn, inputs)
    copy = _widest(net) if stencil.wide else _copy(net)  # the masks, 0 or 1 / (1 - p) in net's dtype, widen exactly
    Xc, wc = X.astype(copy.dtype), None if w is None else w.astype(copy.dtype)  # copies: the input check perturbs X
    targets = {**copy.params, **({"x": Xc} if inputs else {})}
    results = {
        name: _check_array(name, A, analytic[name], copy, Xc, y_checked, wc, masks, h=h, stencil=stencil,
                           l1=net.l1[int(name[1:]) - 1] if name[0] == "W" else 0.0,
                           index=_entries(A.size, max_entries, rng))
        for name, A in targets.items()
    }
    return GradCheckReport(results, tol=tol, step=h, method=method)
