"""The update rules as one compiled pass over each parameter, when numba is installed.

:func:`npmlp.kernels.update_into` runs each rule as a chain of in-place NumPy passes: Adam
is twelve of them, the elastic net's gradient five more, and each pass reads and writes whole
matrices. Here each rule, with the penalty's gradient, is one loop that reads ``theta``,
``g`` and the rule's state once and writes them once. numba compiles it (``pip install
'npmlp[fast]'``); without numba, or with ``NPMLP_FUSED=0`` in the environment, the NumPy
passes run instead, and they stay the reference. A rect layer's bias and activation, and its
derivative in the backprop, are compiled the same way (one pass each instead of two).

The bits are the NumPy passes' bits: each loop performs the same float operations in the
same order, in the parameter's own dtype (the constants cast to it first, as NumPy casts a
Python float), and numba's default floating-point model neither reorders nor contracts them
(no ``fastmath``). ``tests/test_fused.py`` compares the two bit for bit. ``error_model=
"numpy"`` lets a division by 0 give inf as NumPy does, and lets LLVM vectorise the loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from ._version import installed_version
from .dtypes import Array

#: The environment variable that turns the compiled rules off ("0").
SWITCH = "NPMLP_FUSED"

# NOTE: measured on one 784 x 1024 float32 parameter (this 2-core machine, idle): Adam's
# twelve NumPy passes 1,300 us, this loop 250 us. Plain SGD without a penalty is one NumPy
# pass already and stays one.


def _compile() -> dict[str, Callable[..., None]]:
    import numba  # noqa: PLC0415 - optional, and 0.4 s to import: only when a training step needs it

    jit = numba.njit(nogil=True, cache=True, error_model="numpy")

    @jit
    def penalised(w: Any, g: Any, l1: bool, f1: Any, f2: Any, tiny: Any, l2: bool, b: Any) -> Any:
        # kernels._penalty: g + clip(w, -t, t) * f1 * f2, then + w * b (f2 is 1 where one product does)
        if l1:
            c = -tiny if w < -tiny else (tiny if w > tiny else w)
            g = g + (c * f1) * f2
        if l2:
            g = g + w * b
        return g

    @jit
    def sgd(p: Any, g: Any, l1: bool, f1: Any, f2: Any, tiny: Any, l2: bool, b: Any) -> None:
        for i in range(p.size):
            p[i] = p[i] - penalised(p[i], g[i], l1, f1, f2, tiny, l2, b)

    @jit
    def momentum(p: Any, g: Any, v: Any, mu: Any, l1: bool, f1: Any, f2: Any, tiny: Any, l2: bool, b: Any) -> None:
        for i in range(p.size):
            vi = v[i] * mu - penalised(p[i], g[i], l1, f1, f2, tiny, l2, b)
            v[i] = vi
            p[i] = p[i] + vi

    @jit
    def nesterov(p: Any, g: Any, v: Any, mu: Any, l1: bool, f1: Any, f2: Any, tiny: Any, l2: bool, b: Any) -> None:
        for i in range(p.size):
            gi = penalised(p[i], g[i], l1, f1, f2, tiny, l2, b)
            vi = v[i] * mu - gi
            v[i] = vi
            p[i] = (p[i] - gi) + vi * mu

    @jit
    def adam(p: Any, g: Any, m: Any, v: Any, b1: Any, b2: Any, eps: Any, step: Any,
             l1: bool, f1: Any, f2: Any, tiny: Any, l2: bool, b: Any) -> None:
        for i in range(p.size):
            gi = penalised(p[i], g[i], l1, f1, f2, tiny, l2, b)
            mi = (m[i] - gi) * b1 + gi  # m <- b1 (m - g) + g, as kernels._adam
            g2 = gi * gi
            vi = (v[i] - g2) * b2 + g2
            m[i] = mi
            v[i] = vi
            p[i] = p[i] - (mi / (np.sqrt(vi) + eps)) * step

    return {"sgd": sgd, "momentum": momentum, "nesterov": nesterov, "adam": adam, **_rect_layer(jit)}


def _rect_layer(jit: Callable[[Any], Any]) -> dict[str, Callable[..., None]]:
    """A rect layer's bias and activation, and its derivative, compiled by ``jit``."""

    @jit
    def rect_forward(A: Any, b: Any, H: Any, n: int, zero: Any) -> None:
        # kernels.linear_into's A += b, then activate_into's H = maximum(A, 0), one column (unit) at a time
        for j in range(A.shape[1]):
            bj = b[j]
            for i in range(n):
                a = A[i, j] + bj
                A[i, j] = a
                H[i, j] = a if (a > zero or a != a) else zero  # NumPy's maximum: nan stays, -0 gives +0

    @jit
    def rect_backward(dH: Any, A: Any, n: int, one: Any, zero: Any) -> None:
        # kernels.activation_backward_into's dH * (A > 0), the 0/1 mask as a float
        for j in range(A.shape[1]):
            for i in range(n):
                dH[i, j] = dH[i, j] * (one if A[i, j] > zero else zero)

    return {"rect_forward": rect_forward, "rect_backward": rect_backward}


@cache
def rules() -> dict[str, Callable[..., None]] | None:
    """The compiled rules by name, or None: numba missing, or turned off by :data:`SWITCH`."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    try:
        return _compile()
    except ImportError:
        return None


def _cast(dtype: np.dtype[Any]) -> Callable[[Any], Any]:
    """What makes a constant of ``dtype`` for the compiled loops.

    float64 constants are passed as Python floats (the same values): numba takes them in 0.5 us
    against 1.2 us for NumPy's float64 scalars, the difference of a 100-entry loop's call.
    """
    return float if dtype == np.float64 else dtype.type


@cache
def _scalars(dtype: np.dtype[Any]) -> tuple[Any, Any]:
    """0 and 1 in ``dtype``, for the compiled loops (made once per dtype: the rect loops ask every step)."""
    t = _cast(dtype)
    return t(0), t(1)


def rect_forward(A: Array, b: Array, H: Array, n: int) -> None:
    """``A[:n] += b; H[:n] = maximum(A[:n], 0)`` in one pass, for column-major ``(K, h)`` buffers ``A``, ``H``."""
    compiled = rules()
    assert compiled is not None
    compiled["rect_forward"](A, b, H, n, _scalars(A.dtype)[0])


def rect_backward(dH: Array, A: Array, n: int) -> None:
    """``dH[:n] *= (A[:n] > 0)`` in one pass, for column-major ``(K, h)`` buffers ``dH``, ``A``."""
    compiled = rules()
    assert compiled is not None
    zero, one = _scalars(A.dtype)
    compiled["rect_backward"](dH, A, n, one, zero)


def version() -> str | None:
    """numba's version where the compiled rules would run (installed, not turned off), else None.

    For the run's software stack: read from the package's metadata, without importing numba.
    """
    return None if os.environ.get(SWITCH, "1") == "0" else installed_version("numba")


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def supports_dtype(dtype: np.dtype[Any]) -> bool:
    """Whether the compiled loops take arrays of ``dtype`` (float32, float64)."""
    return dtype in _FLOATS


def supports(*arrays: Array) -> bool:
    """Whether one compiled loop can run over ``arrays``: float32 or float64, one dtype, contiguous."""
    dt = arrays[0].dtype
    return supports_dtype(dt) and all(a.dtype == dt and a.flags.c_contiguous for a in arrays)


def penalty_constants(dtype: np.dtype[Any], tiny: Any, a: float, b: float) -> tuple[Any, ...]:
    """The penalty's constants in ``dtype``, as :func:`npmlp.kernels.l1_sign` and ``_penalty`` apply them."""
    t = _cast(dtype)
    f1, f2 = (a / tiny, 1.0) if a < 2 else (1 / tiny, a)
    return bool(a), t(f1), t(f2), t(tiny), bool(b), t(b)


def loop(name: str, dtype: np.dtype[Any], penalty: tuple[float, float, Any] | None
         ) -> Callable[[list[Array], tuple[float, ...]], None]:
    """Rule ``name`` over parameters of ``dtype``, with the penalty ``(a, b, tiny)`` if any, as one loop.

    Returns ``run(arrays, consts)``: ``arrays`` are the flat ``(theta, g, *state)``, ``consts`` the
    rule's constants; the penalty's are cast to ``dtype`` once, here, the rule's on each call.
    """
    compiled = rules()
    assert compiled is not None
    rule, t = compiled[name], _cast(dtype)
    a, b, tiny = penalty if penalty is not None else (0.0, 0.0, 1.0)
    pen = penalty_constants(dtype, tiny, a, b)

    def run(arrays: list[Array], consts: tuple[float, ...]) -> None:
        rule(*arrays, *[t(c) for c in consts], *pen)
    return run
