"""The package's array types and precisions, in one low module every other one imports.

Rows are examples: ``X`` of shape (n, d) is an :data:`Array`, ``y`` of shape (n,) is
:data:`Labels`. Networks compute in float64 by default, float32 on request, never mixed.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = ["DTYPES", "Array", "Labels", "resolve_dtype"]

#: Floats of any precision (float32 or float64 in practice): inputs, parameters, gradients.
Array: TypeAlias = NDArray[np.floating[Any]]
#: Class labels: one platform integer (np.intp) per example.
Labels: TypeAlias = NDArray[np.intp]
#: The precisions a network computes in, by name.
DTYPES = {"float64": np.float64, "float32": np.float32}


def resolve_dtype(dtype: str | type | np.dtype[Any]) -> type:
    """``"float64"``/``"float32"`` (or the NumPy type) to the NumPy scalar type."""
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}. Got {name!r} instead.")
    return DTYPES[name]
