"""npmlp: a from-scratch NumPy multilayer perceptron for multiclass classification.

Every line of backprop in plain NumPy, gradient-checked, fast enough for real data.
"""

from __future__ import annotations

from .errors import DataError, DivergenceError, ModelFileError, NpmlpError
from .gradcheck import GradCheckReport, check_gradients
from .network import MLP

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "DivergenceError",
    "GradCheckReport",
    "MLP",
    "ModelFileError",
    "NpmlpError",
    "__version__",
    "check_gradients",
]
