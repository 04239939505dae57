"""What stands between a user's data and the network: feature standardisation and class labels.

Both are learnt from the training data, stored with the model (``config.json``, keys
``preprocessing`` and ``classes``) and applied again by ``evaluate``, ``predict``, the
estimator's loaded models and exports, so that a model always sees inputs the way it was
trained on them and answers with the user's own labels.

``config.json`` (model format 2) may hold, beside the network::

    "classes": ["barolo", "grignolino", "barbera"],     # output k is classes[k]; absent: 0..m-1
    "feature_names": ["alcohol", "malic_acid", ...],      # absent: unnamed
    "preprocessing": {"standardize": {"mean": [...], "scale": [...]}}   # absent: none

The stored numbers are per-feature statistics, never rows of the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ModelFileError

__all__ = ["LabelMap", "Standardizer", "read_preprocessing"]

Label = str | int


@dataclass(frozen=True)
class Standardizer:
    """``(X - mean) / scale`` per feature, learnt on the training split.

    Attributes
    ----------
    mean, scale : arrays of shape (d,), float64
        A constant feature gets scale 1 (it then only loses its mean).
    """

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(cls, X: NDArray[np.floating[Any]]) -> Standardizer:
        """Mean and standard deviation of each column of ``X`` (n, d), computed in float64."""
        X64 = np.asarray(X, dtype=np.float64)
        std = X64.std(axis=0)
        return cls(X64.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, X: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        """``X`` (n, d) standardised, in ``X``'s own dtype."""
        if X.shape[1:] != self.mean.shape:
            raise ValueError(f"X must have {self.mean.shape[0]} features. Got shape {X.shape} instead.")
        out: NDArray[np.floating[Any]] = ((X - self.mean) / self.scale).astype(X.dtype, copy=False)
        return out

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, doc: Any, where: str, n_features: int) -> Standardizer:
        """Read what :meth:`to_json` wrote, checked: ``n_features`` finite means and positive scales."""
        ok = isinstance(doc, Mapping) and all(_numbers(doc.get(k), n_features) for k in ("mean", "scale"))
        if not ok or not all(s > 0 for s in doc["scale"]):
            raise ModelFileError(f"{where}: 'preprocessing.standardize' must hold 'mean' and 'scale', {n_features} "
                                 "finite numbers each, the scales > 0.")
        return cls(np.asarray(doc["mean"], dtype=np.float64), np.asarray(doc["scale"], dtype=np.float64))


def _numbers(values: Any, n: int) -> bool:
    return (isinstance(values, list) and len(values) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values))


@dataclass(frozen=True)
class LabelMap:
    """The user's labels, sorted, and their class numbers ``0..m-1`` (output ``k`` is ``classes[k]``)."""

    classes: tuple[Label, ...]

    @classmethod
    def fit(cls, labels: Sequence[Label] | NDArray[Any]) -> LabelMap:
        """The distinct labels in sorted order (all strings, or all integers)."""
        values = [v.item() if isinstance(v, np.generic) else v for v in np.unique(np.asarray(labels))]
        return cls(tuple(values))

    def encode(self, labels: Sequence[Label] | NDArray[Any]) -> NDArray[np.intp]:
        """Class numbers of ``labels``; a label not in :attr:`classes` is a ``ValueError`` naming it."""
        index = {c: k for k, c in enumerate(self.classes)}
        unknown = sorted({str(v) for v in np.asarray(labels).tolist() if v not in index})
        if unknown:
            raise ValueError(f"labels {', '.join(unknown[:5])} are not among the model's classes "
                             f"{', '.join(map(str, self.classes[:10]))}.")
        return np.array([index[v] for v in np.asarray(labels).tolist()], dtype=np.intp)

    def decode(self, codes: NDArray[np.integer[Any]]) -> list[Label]:
        """The labels of class numbers ``codes``."""
        return [self.classes[int(k)] for k in codes]

    def to_json(self) -> list[Label]:
        return list(self.classes)

    @classmethod
    def from_json(cls, doc: Any, where: str, n_classes: int) -> LabelMap:
        """Read what :meth:`to_json` wrote: ``n_classes`` distinct strings or integers."""
        kinds = {type(v) for v in doc} if isinstance(doc, list) else set()
        if not isinstance(doc, list) or len(doc) != n_classes or len(set(doc)) != n_classes \
                or not (kinds <= {str} or kinds <= {int}):
            raise ModelFileError(f"{where}: 'classes' must list {n_classes} distinct labels, all strings or all "
                                 f"integers. Got {str(doc)[:80]} instead.")
        return cls(tuple(doc))


def read_preprocessing(config: Mapping[str, Any], where: str) -> tuple[Standardizer | None, LabelMap | None,
                                                                       list[str] | None]:
    """The standardiser, class labels and feature names a model's ``config.json`` records (each may be None)."""
    sizes = config["architecture"]["sizes"]
    pre = config.get("preprocessing") or {}
    if not isinstance(pre, Mapping):
        raise ModelFileError(f"{where}: 'preprocessing' must be an object. Got {str(pre)[:80]} instead.")
    scaler = Standardizer.from_json(pre["standardize"], where, sizes[0]) if pre.get("standardize") else None
    labels = LabelMap.from_json(config["classes"], where, sizes[-1]) if config.get("classes") is not None else None
    names = config.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != sizes[0]
                              or not all(isinstance(n, str) for n in names)):
        raise ModelFileError(f"{where}: 'feature_names' must list {sizes[0]} strings. Got {str(names)[:80]} instead.")
    return scaler, labels, names
