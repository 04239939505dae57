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

import inspect
import math
import numbers
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F
from .network import resolve_dtype
from .settings import declared
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


#: Where the estimator's defaults differ from the assignment's (TrainConfig's): scikit-learn's
#: MLP's, so that a scikit-learn user gets what they expect. The one list of such overrides.
SKLEARN_DEFAULTS: dict[str, Any] = {"hidden": (100,), "optimizer": "adam", "lr": 1e-3, "batch_size": 200}

#: The estimator's own parameters, not settings of a training run.
_OWN: dict[str, tuple[Any, str, str]] = {
    "validation_fraction": (0.1, "float in (0, 1)", "share of the rows held out for early stopping "
                            "(stratified when possible)"),
    "random_state": (None, "int, RandomState instance or None", "an int is the seed of ``npmlp train --seed``; "
                     "else a seed is drawn from it"),
}


def _parameters() -> dict[str, tuple[Any, str, str]]:
    """name -> (default, type text, help), from TrainConfig's declarations then the estimator's own."""
    params: dict[str, tuple[Any, str, str]] = {}
    for name, (decl, default) in declared(TrainConfig).items():
        if name != "seed":  # random_state, scikit-learn's name, stands for it
            params[name] = (SKLEARN_DEFAULTS.get(name, default), decl.rule.describe(), decl.help)
    return {**params, **_OWN}


PARAMETERS = _parameters()


def _signature() -> inspect.Signature:
    """``__init__(self, hidden=..., *, activation=..., ...)``: what scikit-learn's get_params reads."""
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    for i, (name, (default, _, _)) in enumerate(PARAMETERS.items()):
        params.append(P(name, P.POSITIONAL_OR_KEYWORD if i == 0 else P.KEYWORD_ONLY, default=default))
    return inspect.Signature(params)


def _parameters_doc() -> str:
    return "\n".join(f"    {name} : {kind}, default={default!r}\n        {help[:1].upper() + help[1:]}."
                     for name, (default, kind, help) in PARAMETERS.items())


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier (softmax output, negative log-likelihood loss).

    The parameters are those of ``npmlp train`` (``hidden`` is scikit-learn's
    ``hidden_layer_sizes``, ``lr`` its ``learning_rate_init``, ``epochs`` its
    ``max_iter``); the defaults follow scikit-learn's MLP (Adam, lr 1e-3, minibatches
    of 200, see :data:`SKLEARN_DEFAULTS`) where the command line's follow the course
    (SGD, lr 0.03, minibatches of 10). With ``early_stopping`` (a patience in epochs),
    ``validation_fraction`` of the rows is held out, training stops after that many epochs
    without a better validation error, and the best epoch's parameters are kept.

    Parameters
    ----------
{parameters}

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
        The epoch (1-based) whose parameters ``net_`` holds: with early stopping the best
        one, however the run ended (a divergence included).
    stopped_because_ : str
        ``max_epochs``, ``early_stopping``, ``converged``, ``diverged`` or ``partial_fit``.
    no_progress_ : bool
        The last fit or partial_fit ended no better than always guessing the most common
        class (validation error with early stopping, else training error). Recorded only:
        random labels are a legitimate thing to fit.

    Pickling keeps the fitted model, the settings and what ``partial_fit`` needs to continue
    bit for bit (the optimizer's moments, the generator's state); never the training rows
    or the trainer's workspace buffers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = _SIGNATURE.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

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
        settings = {name: getattr(self, name) for name in declared(TrainConfig) if name != "seed"}
        return TrainConfig(**settings, seed=seed)

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike) -> "MLPClassifier":
        """Train a fresh network on ``X`` of shape (n_samples, n_features) and labels ``y`` (n_samples,)."""
        config = self.train_config()
        X, y = validate_data(self, X, y, dtype=self._np_dtype())
        classes, codes = self._encode_classes(y)
        config = replace(config, seed=self._seed())
        splits = self._splits(X, codes, config.seed)
        trainer = Trainer.new(config, X.shape[1], len(classes))  # kept for partial_fit
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
        # Without early stopping the network is the last epoch's: a best epoch of fit no longer applies.
        trainer.state.best_epoch, trainer.state.best_params = None, None
        result = train({"train": (X, codes)}, trainer.config, trainer=trainer, on_epoch=_one_epoch)
        self._record(trainer, result, validation=False)
        return self

    def _start_partial(self, n_features: int, classes: ArrayLike) -> None:
        labels, _ = self._encode_classes(np.asarray(classes))
        config = replace(self.train_config(seed=self._seed()), early_stopping=None, tol=0.0)
        self._trainer = Trainer.new(config, n_features, len(labels))
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
        self.no_progress_ = bool(result.no_progress) if result else False
        if result is not None and result.stopped_because == "diverged":
            warnings.warn(result.message, ConvergenceWarning, stacklevel=3)

    # -- pickling ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The attributes, the trainer replaced by its state: no workspace buffers, no training rows."""
        state = dict(super().__getstate__())
        trainer = state.pop("_trainer", None)
        if trainer is not None:
            arrays, meta = trainer.state_dict()
            state["_trainer_state"] = {"config": trainer.config.to_dict(), "arrays": arrays, "meta": meta,
                                       "history": trainer.state.history}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop("_trainer_state", None)
        super().__setstate__(state)
        if saved is not None:
            config = TrainConfig.from_dict(saved["config"])
            self._trainer = Trainer.from_state(config, self.net_.params, saved["arrays"], saved["meta"],
                                               saved["history"])
            self.net_ = self._trainer.net

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


_SIGNATURE = _signature()
MLPClassifier.__init__.__signature__ = _SIGNATURE  # type: ignore[attr-defined]  # read by get_params
MLPClassifier.__doc__ = (MLPClassifier.__doc__ or "").replace("{parameters}", _parameters_doc())
