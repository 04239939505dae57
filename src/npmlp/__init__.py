"""npmlp: a from-scratch NumPy multilayer perceptron for multiclass classification.

Every line of backprop in plain NumPy, gradient-checked, fast enough for real data.
"""

from __future__ import annotations

from ._version import __version__
from .errors import DataError, DivergenceError, ModelFileError, NpmlpError
from .gradcheck import GradCheckReport, check_gradients
from .model import Model, load
from .network import MLP


def __getattr__(name: str) -> object:
    # MLPClassifier needs scikit-learn, an optional extra: import it only when asked for.
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module 'npmlp' has no attribute {name!r}")

__all__ = [
    "DataError",
    "DivergenceError",
    "GradCheckReport",
    "MLP",
    "MLPClassifier",
    "Model",
    "ModelFileError",
    "NpmlpError",
    "__version__",
    "check_gradients",
    "load",
]
