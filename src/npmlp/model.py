"""A trained model as users meet it: the network with its preprocessing and class labels.

:class:`Model` answers on the user's raw rows with the user's own labels: it standardises
the inputs as the training data was (when the model records a standardiser), runs the
network and maps output ``k`` to ``classes[k]``. ``npmlp.load(DIR)``, ``npmlp predict``,
``npmlp evaluate``, ``npmlp export`` and ``MLPClassifier.load`` all read a model directory
through it, so none of them can forget a step and answer silently wrong.

A model directory is ``model.npz`` + ``config.json`` (see :mod:`npmlp.persistence`, and
:mod:`npmlp.preprocess` for the ``classes``, ``feature_names`` and ``preprocessing`` keys);
loading one never unpickles anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F
from .dtypes import Array
from .network import MLP
from .persistence import PathLike, load_model, save_model
from .preprocess import Label, LabelMap, Standardizer, read_preprocessing
from .training import refuse_nonfinite_rows

__all__ = ["Model", "load"]


@dataclass(frozen=True)
class Model:
    """A network with what stands between it and the user's data.

    Attributes
    ----------
    net : MLP
        Layer sizes ``(d, h1, ..., m)``.
    scaler : Standardizer or None
        Applied to the raw inputs before the network (None: the network takes them as they are).
    labels : LabelMap or None
        Output ``k`` is ``labels.classes[k]`` (None: the labels are the integers ``0..m-1``).
    feature_names : list of str or None
        The ``d`` input columns' names, when the training data named them.
    config : dict
        The parsed ``config.json`` (empty for a model made in memory).
    """

    net: MLP
    scaler: Standardizer | None = None
    labels: LabelMap | None = None
    feature_names: list[str] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d, m = self.net.sizes[0], self.net.sizes[-1]
        if self.scaler is not None and self.scaler.mean.shape != (d,):
            raise ValueError(f"scaler must have {d} features. Got {self.scaler.mean.shape[0]} instead.")
        if self.labels is not None and len(self.labels.classes) != m:
            raise ValueError(f"labels must name {m} classes. Got {len(self.labels.classes)} instead.")
        if self.feature_names is not None and len(self.feature_names) != d:
            raise ValueError(f"feature_names must list {d} names. Got {len(self.feature_names)} instead.")

    # -- files ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: PathLike) -> Model:
        """Read a model directory (or its ``model.npz``/``config.json``); never unpickles.

        Raises :class:`~npmlp.errors.ModelFileError` naming the file and the problem.
        """
        net, config = load_model(path)
        scaler, labels, names = read_preprocessing(config, str(Path(path)))
        return cls(net, scaler, labels, names, config)

    def save(self, directory: PathLike, *, training: Mapping[str, Any] | None = None,
             extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``directory/model.npz`` and ``config.json`` with the labels, names and preprocessing.

        ``training`` (the settings to retrain) and ``extra`` (more top-level keys) default to
        those of the loaded ``config``.
        """
        own: dict[str, Any] = {"classes": self.labels.to_json() if self.labels else None,
                               "feature_names": self.feature_names,
                               "preprocessing": {"standardize": self.scaler.to_json()} if self.scaler else None}
        kept = {k: v for k, v in self.config.items() if k in _KEPT} if extra is None else dict(extra)
        doc = {**kept, **{k: v for k, v in own.items() if v is not None}}
        return save_model(directory, self.net, training=self.config.get("training", {}) if training is None
                          else training, extra=doc)

    # -- shape facts ---------------------------------------------------------------------
    @property
    def classes(self) -> NDArray[Any]:
        """The labels, shape (m,): output ``k`` of the network is ``classes[k]``."""
        return np.array(self.labels.classes if self.labels else range(self.net.sizes[-1]))

    @property
    def n_features(self) -> int:
        return self.net.sizes[0]

    # -- prediction ----------------------------------------------------------------------
    def transform(self, X: ArrayLike) -> Array:
        """Raw rows ``X`` (n, d) as the network takes them: checked, in its dtype, standardised."""
        Xa, _ = self.net.check_input(_columns(X, self.feature_names))
        return self.scaler.transform(Xa) if self.scaler is not None else Xa

    def logits(self, X: ArrayLike, *, source: str = "the input") -> Array:
        """Output pre-activations of shape (n, m) for raw rows ``X`` (n, d).

        Rows whose activations overflow are refused (a :class:`~npmlp.errors.DataError`
        naming them, with ``source`` saying where they came from): their argmax would be a
        label that means nothing.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, naming the rows
            Oa = self.net.logits(self.transform(X))
        refuse_nonfinite_rows(Oa, source=source)
        return Oa

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities of shape (n, m), columns in the order of :attr:`classes`."""
        return F.softmax(self.logits(X))

    def predict_log_proba(self, X: ArrayLike) -> Array:
        """Log-probabilities of shape (n, m)."""
        return F.log_softmax(self.logits(X))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most probable label of each row of ``X`` (n, d), shape (n,)."""
        labels: NDArray[Any] = self.classes[np.argmax(self.logits(X), axis=1)]
        return labels

    def encode(self, labels: Sequence[Label] | NDArray[Any]) -> NDArray[np.intp]:
        """Class numbers ``0..m-1`` of the user's ``labels`` (an unknown label is a ``ValueError``)."""
        return self.labels.encode(labels) if self.labels else LabelMap(tuple(range(self.net.sizes[-1]))).encode(labels)


#: Top-level keys of a loaded config.json that :meth:`Model.save` carries over (the data's identity).
_KEPT = ("data",)


def _columns(X: ArrayLike, names: list[str] | None) -> ArrayLike:
    """A table with named columns (a pandas DataFrame) reordered to ``names``; anything else as it is."""
    columns = getattr(X, "columns", None)
    if columns is None or names is None:
        return X
    table: Any = X
    have = [str(c) for c in columns]
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(f"X lacks the model's feature columns {', '.join(missing[:5])}. "
                         f"Got columns {', '.join(have[:10])}.")
    return np.asarray(table[names])


def load(path: PathLike) -> Model:
    """The model in directory ``path`` (written by ``npmlp train``, ``MLPClassifier.save`` or :meth:`Model.save`).

    Returns a :class:`Model`: ``load(DIR).predict(X)`` takes raw rows and answers with the
    training data's own labels. Never unpickles. Raises
    :class:`~npmlp.errors.ModelFileError` when the files are missing, damaged or inconsistent.
    """
    return Model.load(path)

