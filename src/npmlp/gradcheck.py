"""Finite-difference gradient checking (seed part 3, Q1-Q4).

For every checked entry ``theta_j`` of every parameter, a central difference of the
objective ``R`` around ``theta_j`` (see :func:`check_gradients`) is compared with the
analytic gradient ``a_j`` by the ratio ``a_j / e_j`` (as the seed prints it) and the
relative error ``|a_j - e_j| / max(|a_j|, |e_j|, tiny)``.
``R`` is the full objective, penalty included, so the penalty gradient is checked too.

An entry whose step moves a pre-activation of ``rect`` across 0, or a weight under an
L1 penalty across 0, straddles a kink: the finite difference there measures the
average of two slopes, not the derivative. Such entries are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import functions as F
from .network import MLP, Array, nll

GradientFn = Callable[[MLP, Array, NDArray[np.intp]], dict[str, Array]]

#: Default finite-difference step, and pass threshold by the checked network's dtype:
#: a float32 backprop is only good to a few 1e-7 per operation.
DEFAULT_STEP = 1e-4
TOLERANCES = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3}


@dataclass
class ParamCheck:
    """The check of one parameter: analytic and estimated gradients of the checked entries."""

    name: str
    shape: tuple[int, ...]
    index: NDArray[np.intp]  # flat indices of the checked entries
    analytic: Array
    estimate: Array
    skipped_kinks: int

    @property
    def checked(self) -> int:
        return int(self.index.size)

    @property
    def rel_error(self) -> Array:
        return relative_error(self.analytic, self.estimate)

    @property
    def ratio(self) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.analytic / self.estimate
        return np.where((self.analytic == 0) & (self.estimate == 0), 1.0, r)

    @property
    def max_rel_error(self) -> float:
        return float(self.rel_error.max()) if self.checked else 0.0


@dataclass
class GradCheckReport:
    """Per-parameter results and the verdict against ``tol``."""

    params: dict[str, ParamCheck]
    tol: float
    step: float
    notes: list[str] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        return max((p.max_rel_error for p in self.params.values()), default=0.0)

    @property
    def passed(self) -> bool:
        return self.max_rel_error < self.tol

    def to_dict(self) -> dict[str, Any]:
        """The SPEC's JSON document for ``npmlp gradcheck --json``."""
        return {
            "max_rel_error": self.max_rel_error,
            "tol": self.tol,
            "passed": self.passed,
            "params": {
                k: {"max_rel_error": p.max_rel_error, "checked": p.checked, "skipped_kinks": p.skipped_kinks}
                for k, p in self.params.items()
            },
        }

    def format_text(self) -> str:
        """The seed's printout: per parameter the true gradient, the estimate, the ratio."""
        lines = []
        opts = dict(precision=8, suppress_small=False, max_line_width=100, threshold=60)
        for p in self.params.values():
            full = p.checked == int(np.prod(p.shape))
            shape = p.shape if full else (p.checked,)
            what = "" if full else f" ({p.checked} of {int(np.prod(p.shape))} entries, chosen at random)"
            for title, values, digits in (("true gradient", p.analytic, 8), ("estimated gradient", p.estimate, 8),
                                          ("ratio between the two grads", p.ratio, 13)):
                # The ratio gets 13 fixed digits: a bare "1." would hide how close to 1 it is.
                fmt: dict[str, Any] = {**opts, "precision": digits, "floatmode": "fixed" if digits > 8 else "maxprec"}
                lines.append(f"The {title} for the parameter {p.name}{what} :")
                lines.append(np.array2string(values.reshape(shape), **fmt))
                lines.append("")
            kinks = f", {p.skipped_kinks} skipped at a kink" if p.skipped_kinks else ""
            lines.append(f"{p.name}: max relative error {p.max_rel_error:.3e} over {p.checked} entries{kinks}")
            lines.append("")
        lines.extend(self.notes)
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"max relative error {self.max_rel_error:.3e} (tolerance {self.tol:g}): {verdict}")
        return "\n".join(lines)


def relative_error(a: Array, e: Array, tiny: float = 1e-12) -> Array:
    """``|a - e| / max(|a|, |e|, tiny)``, elementwise."""
    return np.abs(a - e) / np.maximum(np.maximum(np.abs(a), np.abs(e)), tiny)


def _widest(net: MLP) -> MLP:
    """A copy of ``net`` in the widest float NumPy has (80-bit long double on x86)."""
    wide = np.longdouble if np.finfo(np.longdouble).eps < np.finfo(net.dtype).eps else np.float64
    params = {k: v.astype(wide) for k, v in net.params.items()}
    return MLP(params, activation=net.activation, l1=net.l1, l2=net.l2)


def _evaluate(net: MLP, X: Array, y: NDArray[np.intp], kinked: bool) -> tuple[np.floating, list[Array]]:
    """The objective and, for a kinked activation, the signs of every pre-activation."""
    fw = net.forward(X)
    value = nll(fw.logits, y) + net.penalty()
    return value, [np.sign(A) for A in fw.pre] if kinked else []


def check_gradients(
    net: MLP,
    X: Array,
    y: NDArray[np.intp],
    *,
    step: float | None = None,
    tol: float | None = None,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
    gradient_fn: GradientFn | None = None,
) -> GradCheckReport:
    """Compare analytic gradients with finite differences.

    The estimate is the five-point central difference (error ``O(h^4)``)::

        e_j = (8 (R(+h) - R(-h)) - (R(+2h) - R(-2h))) / (12 h)

    evaluated on a long-double copy of the network, so that rounding in ``R`` does
    not swamp small gradient entries (plain float64 differences lose about 1e-11 in
    absolute terms, which is a relative error of 1e-3 on an entry of 1e-8).

    Parameters
    ----------
    net : MLP
        The network whose analytic gradients are checked; it is not modified.
    X : array of shape (n, d)
    y : array of shape (n,)
    step : float, optional
        Finite-difference step ``h`` (default 1e-4).
    tol : float, optional
        Pass when the max relative error is below it (1e-6 float64, 1e-3 float32).
    max_entries : int, optional
        Check at most this many entries per parameter, drawn with ``rng``.
    gradient_fn : callable, optional
        ``gradient_fn(net, X, y) -> dict``; defaults to the matrix backprop. Tests pass
        a deliberately wrong one to show that the checker catches it.

    Returns
    -------
    GradCheckReport
    """
    X, y = net.check_input(X, y)
    assert y is not None
    h = DEFAULT_STEP if step is None else float(step)
    tol = TOLERANCES[net.dtype] if tol is None else float(tol)
    rng = np.random.default_rng(0) if rng is None else rng
    analytic = (gradient_fn or (lambda n, a, b: n.gradients(a, b)))(net, X, y)
    wide = _widest(net)
    Xw = X.astype(wide.dtype)
    kinked = net.activation in F.KINKED
    results = {}
    for name, P in wide.params.items():
        flat = P.reshape(-1)  # a view: writing it perturbs the parameter
        index = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            index = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
        l1 = net.l1[int(name[1:]) - 1] if name[0] == "W" else 0.0
        keep, est = [], []
        for j in index:
            old = flat[j]
            values, signs = {}, []
            for k in (2, 1, -1, -2):
                flat[j] = old + k * h
                values[k], s = _evaluate(wide, Xw, y, kinked)
                signs.append(s)
            flat[j] = old
            crosses = any(
                np.any(S == 0) or any(not np.array_equal(S, other[i]) for other in signs[1:])
                for i, S in enumerate(signs[0])
            )
            if crosses or (l1 and np.sign(old + 2 * h) != np.sign(old - 2 * h)):
                continue  # a rect pre-activation, or |W| under L1, has its kink inside the stencil
            keep.append(j)
            est.append((8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (12 * h))
        keep_idx = np.asarray(keep, dtype=np.intp)
        results[name] = ParamCheck(
            name=name,
            shape=P.shape,
            index=keep_idx,
            analytic=np.asarray(analytic[name]).reshape(-1)[keep_idx].astype(np.float64),
            estimate=np.asarray(est, dtype=np.float64),
            skipped_kinks=int(index.size - keep_idx.size),
        )
    return GradCheckReport(results, tol=tol, step=h)
