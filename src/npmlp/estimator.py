"""A scikit-learn classifier over npmlp's own network and training loop.

:class:`MLPClassifier` is a thin adapter: it validates data the scikit-learn way,
maps any labels (strings too) to ``0..m-1``, then builds a
:class:`~npmlp.training.TrainConfig` and calls :func:`npmlp.training.train` with a
:class:`~npmlp.training.Trainer`, exactly as ``npmlp train`` does. With an integer
``random_state`` and no early stopping, ``fit`` gives bit for bit the parameters of
``train({"train": (X, y)}, TrainConfig(..., seed=random_state))``.

scikit-learn is an optional extra (``pip install 'npmlp[sklearn]'``), imported only here.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F
from .network import resolve_dtype
from .training import Trainer, TrainConfig, TrainResult, train

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "npmlp.estimator needs scikit-learn. Install it with: pip install 'npmlp[sklearn]'"
    ) from exc

__all__ = ["MLPClassifier"]


def _one_epoch(trainer: Trainer) -> None:
    """partial_fit's epoch callback: one epoch of :func:`train` is all it wants."""
    trainer.stop_after_epoch = "partial_fit"


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier (softmax output, negative log-likelihood loss).

    The parameters are those of ``npmlp train`` (``hidden`` is scikit-learn's
    ``hidden_layer_sizes``, ``lr`` its ``learning_rate_init``, ``epochs`` its
    ``max_iter``); the defaults follow scikit-learn's MLP (Adam, lr 1e-3, minibatches
    of 200) where the command line's follow the course (SGD, lr 0.03, minibatches of 10).

    Parameters
    ----------
    hidden : int or sequence of int, default=(100,)
        Hidden layer sizes, from the input.
    activation : {"rect", "relu", "tanh", "sigmoid", "softplus"}, default="rect"
    l1, l2 : float or sequence of float, default=0.0
        Elastic-net coefficients: one for every weight matrix, or one per matrix.
    optimizer : {"sgd", "momentum", "nesterov", "adam"}, default="adam"
    lr : float, default=1e-3
        Initial learning rate eta_0.
    lr_schedule : {"constant", "cosine", "invscaling", "step"}, default="constant"
    lr_decay, lr_step, lr_gamma : float, int, float
        Schedule knobs (see ``npmlp train --help``).
    momentum : float, default=0.9
        For ``momentum`` and ``nesterov``.
    batch_size : int, default=200
        Minibatch size K.
    epochs : int, default=200
        Maximum passes over the training data; also the horizon of the cosine schedule.
    tol : float, default=0.0
        Stop when the parameters move less than this (L2 norm) over one epoch; 0 never stops.
    early_stopping : int or None, default=None
        Patience in epochs. When set, ``validation_fraction`` of the training rows is held
        out (stratified when possible), training stops after ``early_stopping`` epochs
        without a better validation error, and the best epoch's parameters are kept.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping, in (0, 1).
    backprop : {"matrix", "loop"}, default="matrix"
    dtype : {"float64", "float32"}, default="float64"
    random_state : int, RandomState instance or None, default=None
        An int is the seed of ``npmlp train --seed``.

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
        The labels seen in ``fit``, sorted; the network's output ``k`` is ``classes_[k]``.
    n_features_in_ : int
    net_ : npmlp.network.MLP
        The trained network.
    loss_curve_ : list of float
        Mean training NLL (without the penalty) after each epoch.
    validation_scores_ : list of float or None
        Validation accuracy after each epoch when early stopping held out rows, else None.
    n_iter_ : int
        Epochs run, counting every ``partial_fit`` call.
    best_epoch_ : int
        The epoch (1-based) whose parameters ``net_`` holds.
    stopped_because_ : str
        ``max_epochs``, ``early_stopping``, ``converged``, ``diverged`` or ``partial_fit``.
    """

    def __init__(
        self,
        hidden: int | Sequence[int] = (100,),
        *,
        activation: str = "rect",
        l1: float | Sequence[float] = 0.0,
        l2: float | Sequence[float] = 0.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        lr_decay: float = 0.01,
        lr_step: int = 10,
        lr_gamma: float = 0.5,
        momentum: float = 0.9,
        batch_size: int = 200,
        epochs: int = 200,
        tol: float = 0.0,
        early_stopping: int | None = None,
        validation_fraction: float = 0.1,
        backprop: str = "matrix",
        dtype: str = "float64",
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.l1 = l1
        self.l2 = l2
        self.optimizer = optimizer
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_step = lr_step
        self.lr_gamma = lr_gamma
        self.momentum = momentum
        self.batch_size = batch_size
        self.epochs = epochs
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.backprop = backprop
        self.dtype = dtype
        self.random_state = random_state

    # -- configuration -----------------------------------------------------------------
    def _np_dtype(self) -> type:
        return resolve_dtype(self.dtype)

    def _seed(self) -> int:
        """An int ``random_state`` is the seed itself, as ``npmlp train --seed``; else one drawn from it."""
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def train_config(self, seed: int = 0) -> TrainConfig:
        """The :class:`~npmlp.training.TrainConfig` of these parameters (it validates them)."""
        if isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping is a patience in epochs (an int >= 1) or None. Got {self.early_stopping}.")
        names = ("hidden", "activation", "l1", "l2", "dtype", "optimizer", "lr", "lr_schedule", "lr_decay",
                 "lr_step", "lr_gamma", "momentum", "batch_size", "epochs", "tol", "early_stopping", "backprop")
        return TrainConfig(**{k: getattr(self, k) for k in names}, seed=seed)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike) -> "MLPClassifier":
        """Train a fresh network on ``X`` of shape (n_samples, n_features) and labels ``y`` (n_samples,)."""
        config = self.train_config()
        X, y = validate_data(self, X, y, dtype=self._np_dtype())
        classes, codes = self._encode_classes(y)
        config = replace(config, seed=self._seed())
        splits = self._splits(X, codes, config.seed)
        rng = np.random.default_rng(config.seed)
        # NOTE: the very steps train() takes when given no trainer (same generator, same
        # draws); made here so that the trainer lives on for partial_fit.
        trainer = Trainer(config.build(X.shape[1], len(classes), rng), config, rng)
        result = train(splits, config, trainer=trainer)
        self.classes_ = classes
        self._record(trainer, result, validation="valid" in splits)
        return self

    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None) -> "MLPClassifier":
        """Train one more epoch on ``(X, y)``, continuing the same network and optimizer state.

        ``classes`` (every label the model will ever see) is required on the first call.
        The settings are those of the first call (or of ``fit``); early stopping and ``tol``
        do not apply. The learning-rate schedule's horizon is ``epochs``: past it, each call
        stretches it by one epoch (a cosine schedule then stays near 0).
        """
        first = not hasattr(self, "_trainer")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit (every label y may hold).")
        X, y = validate_data(self, X, y, dtype=self._np_dtype() if first else self.net_.dtype, reset=first)
        check_classification_targets(y)
        if first:
            self._start_partial(X.shape[1], classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes must stay {self.classes_.tolist()} across partial_fit calls. Got {np.unique(classes).tolist()}.")
        codes = self._codes(y)
        trainer = self._trainer
        epochs = max(trainer.config.epochs, trainer.state.epoch + 1)
        trainer.config = replace(trainer.config, epochs=epochs, early_stopping=None, tol=0.0)
        result = train({"train": (X, codes)}, trainer.config, trainer=trainer, on_epoch=_one_epoch)
        self._record(trainer, result, validation=False)
        return self

    def _start_partial(self, n_features: int, classes: ArrayLike) -> None:
        labels, _ = self._encode_classes(np.asarray(classes))
        config = replace(self.train_config(seed=self._seed()), early_stopping=None, tol=0.0)
        rng = np.random.default_rng(config.seed)
        self._trainer = Trainer(config.build(n_features, len(labels), rng), config, rng)
        self.classes_ = labels

    def _encode_classes(self, y: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
        """Sorted distinct labels and each label's index among them; at least two classes."""
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to learn from. Got 1 class ({classes.tolist()[0]!r}) instead."
            )
        return classes, codes.reshape(-1).astype(np.intp)

    def _codes(self, y: NDArray[Any]) -> NDArray[np.intp]:
        """Indices of ``y``'s labels in :attr:`classes_`; unseen labels are an error."""
        codes = np.searchsorted(self.classes_, y)
        codes[codes == len(self.classes_)] = 0
        unseen = self.classes_[codes] != y
        if np.any(unseen):
            raise ValueError(f"y holds labels not in classes {self.classes_.tolist()}: {np.unique(y[unseen]).tolist()}.")
        return codes.astype(np.intp)

    def _splits(self, X: NDArray[Any], y: NDArray[np.intp], seed: int) -> dict[str, tuple[Any, Any]]:
        """The training rows, and the held-out validation rows when early stopping is on."""
        if self.early_stopping is None:
            return {"train": (X, y)}
        f = self.validation_fraction
        if not isinstance(f, numbers.Real) or not 0 < f < 1:
            raise ValueError(f"validation_fraction must be in (0, 1). Got {f!r} instead.")
        n_valid, m = math.ceil(f * len(y)), int(y.max()) + 1
        if n_valid >= len(y):
            raise ValueError(f"early stopping needs training rows left after holding out validation_fraction={f} "
                             f"of {len(y)} samples. Lower validation_fraction or pass more samples.")
        # Stratify when every class can appear on both sides; tiny data sets go unstratified.
        stratify = y if np.bincount(y).min() >= 2 and m <= min(n_valid, len(y) - n_valid) else None
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=n_valid, random_state=seed % 2**32, stratify=stratify)
        return {"train": (X_tr, y_tr), "valid": (X_va, y_va)}

    def _record(self, trainer: Trainer, result: TrainResult | None, *, validation: bool) -> None:
        """Set the fitted attributes from the trainer's history; warn when training diverged."""
        history = trainer.state.history
        self._trainer = trainer
        self.net_ = trainer.net
        self.loss_curve_ = [row["train_loss"] for row in history]
        self.validation_scores_ = [1 - row["valid_error"] for row in history] if validation else None
        self.n_iter_ = len(history)
        self.best_epoch_ = (result.best_epoch if result else None) or self.n_iter_
        self.stopped_because_ = result.stopped_because if result else "partial_fit"
        if result is not None and result.stopped_because == "diverged":
            warnings.warn(result.message, ConvergenceWarning, stacklevel=3)

    # -- prediction ----------------------------------------------------------------------
    def _logits(self, X: ArrayLike) -> NDArray[np.floating]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype)
        return self.net_.logits(X)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most probable label of each row of ``X`` (n_samples, n_features): shape (n_samples,)."""
        Oa = self._logits(X)
        return self.classes_[np.argmax(Oa, axis=1)]

    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating]:
        """Class probabilities of shape (n_samples, n_classes), columns in the order of :attr:`classes_`."""
        return F.softmax(self._logits(X))

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.floating]:
        """Log-probabilities of shape (n_samples, n_classes)."""
        # NOTE: log-softmax of the logits stays finite where log(predict_proba) gives -inf.
        return F.log_softmax(self._logits(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = False  # given an int random_state
        return tags

