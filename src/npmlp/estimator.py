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
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import functions as F
from .dtypes import resolve_dtype
from .errors import ModelFileError
from .model import Model
from .network import MLP, check_weights
from .persistence import read_run_history
from .preprocess import LabelMap, Standardizer
from .settings import declared
from .training import TrainConfig, Trainer, TrainResult, train

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


class _LossPlateau:
    """scikit-learn's ``tol``: stop once the training loss (``loss_curve_``'s mean NLL) has not
    fallen below the best one by at least ``tol`` for more than ``n_iter_no_change`` consecutive
    epochs. An ``on_epoch`` callback of :func:`train`."""

    def __init__(self, tol: float, n_iter_no_change: int) -> None:
        self.tol, self.n_iter_no_change = tol, n_iter_no_change
        self.best, self.count = math.inf, 0

    def __call__(self, trainer: Trainer) -> None:
        if not self.tol or not trainer.state.history:
            return
        loss = trainer.state.history[-1]["train_loss"]
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        if self.count > self.n_iter_no_change:
            trainer.stop_after_epoch = "converged"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _run_record(directory: str | os.PathLike[str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The fit record of an ``npmlp train`` run, in :meth:`MLPClassifier.save`'s terms, from its ``history.json``
    and manifest (an empty record when the directory has no history)."""
    history = read_run_history(directory)
    if not history:
        return {}
    from .runs import MANIFEST_FILE  # the run directory's own record of why it stopped

    where = Path(directory)
    manifest = (where if where.is_dir() else where.parent) / MANIFEST_FILE
    try:
        stopped = json.loads(manifest.read_text(encoding="utf-8")).get("stopped_because")
    except (OSError, ValueError, AttributeError):
        stopped = None
    training = config.get("training")
    early = isinstance(training, dict) and training.get("early_stopping") is not None
    errors = [e for e in (row.get("valid_error") for row in history) if isinstance(e, (int, float))]
    scores = [1 - e for e in errors] if early and len(errors) == len(history) else None
    return {"loss_curve": [row["train_loss"] for row in history], "validation_scores": scores,
            "best_loss": None if scores else min(row["train_loss"] for row in history),
            # the run kept its first epoch with the lowest validation error (npmlp.training._stopping)
            "best_epoch": 1 + scores.index(max(scores)) if scores else len(history),
            "stopped_because": stopped if isinstance(stopped, str) else "unknown"}


def _one_epoch(trainer: Trainer) -> None:
    """partial_fit's epoch callback: one epoch of :func:`train` is all it wants."""
    trainer.stop_after_epoch = "partial_fit"


#: Where the estimator's defaults differ from the assignment's (TrainConfig's), the one list of
#: such overrides: scikit-learn's MLP's, so that a scikit-learn user gets what they expect, but
#: for the penalty and the epochs, chosen by measurement (benchmarks/defaults.py): with them
#: MLPClassifier() is at least as accurate as scikit-learn's on its four embedded data sets.
#: The training loss is scikit-learn's too, the running mean over each epoch's minibatches
#: (``train_metrics="running"``): no second pass over the training set per epoch.
SKLEARN_DEFAULTS: dict[str, Any] = {"hidden": (100,), "optimizer": "adam", "lr": 1e-3, "batch_size": 200,
                                    "tol": 1e-4, "early_stopping": False, "l2": 5e-3, "epochs": 400,
                                    "train_metrics": "running"}

#: Settings the estimator reads as scikit-learn does, not as ``npmlp train`` does: (type text, help).
_SKLEARN_MEANINGS: dict[str, tuple[str, str]] = {
    "tol": ("float >= 0", "stop when the training loss has not improved by at least tol for n_iter_no_change "
            "consecutive epochs (scikit-learn's meaning; npmlp train's --tol is a parameter change); 0: never"),
    "early_stopping": ("bool or int >= 1", "True: hold out validation_fraction of the rows, stop after "
                       "n_iter_no_change + 1 epochs without a better validation accuracy and keep the best "
                       "epoch (tol then does not apply); an int: that patience in epochs, as npmlp train's "
                       "--early-stopping; False or None: off"),
}

#: The estimator's own parameters, not settings of a training run.
_OWN: dict[str, tuple[Any, str, str]] = {
    "n_iter_no_change": (10, "int >= 1", "epochs without improvement that tol and early_stopping=True tolerate"),
    "validation_fraction": (0.1, "float in (0, 1)", "share of the rows held out for early stopping "
                            "(stratified when possible)"),
    "class_weight": (None, "None, 'balanced' or dict of label to weight", "per-class weights of the loss, "
                     "multiplying sample_weight: 'balanced' weighs class k by total weight / (n_classes * weight of "
                     "class k) in the rows fit sees; a dict's missing labels weigh 1"),
    "warm_start": (False, "bool", "fit starts from the fitted network (a fresh optimizer) instead of a new one"),
    "verbose": (False, "bool", "a progress bar (tqdm.auto) while fitting, in a terminal or a notebook"),
    "random_state": (None, "int, RandomState instance or None", "an int is the seed of ``npmlp train --seed``; "
                     "else a seed is drawn from it"),
}


def _parameters() -> dict[str, tuple[Any, str, str]]:
    """name -> (default, type text, help), from TrainConfig's declarations then the estimator's own."""
    params: dict[str, tuple[Any, str, str]] = {}
    for name, (decl, default) in declared(TrainConfig).items():
        if name != "seed":  # random_state, scikit-learn's name, stands for it
            kind, help = _SKLEARN_MEANINGS.get(name, (decl.rule.describe(), decl.help))
            params[name] = (SKLEARN_DEFAULTS.get(name, default), kind, help)
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
    (SGD, lr 0.03, minibatches of 10). ``tol`` and ``early_stopping`` mean what they mean
    in scikit-learn: training stops once the training loss has not improved by ``tol`` for
    more than ``n_iter_no_change`` epochs; with ``early_stopping=True``,
    ``validation_fraction`` of the rows is held out, training stops after
    ``n_iter_no_change + 1`` epochs without a better validation accuracy and the best
    epoch's parameters are kept (an integer ``early_stopping`` is that patience itself, as
    ``npmlp train --early-stopping``). ``npmlp train --tol`` is the course's stopping rule,
    a threshold on the parameter change over an epoch.

    Saved with :meth:`save` and read back with :meth:`load` (also directories written by
    ``npmlp train``), as ``model.npz`` + ``config.json``: never a pickle.

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
        Mean training NLL (without the penalty, weighted by ``sample_weight`` and ``class_weight``)
        of each epoch: over its minibatches as each step saw them (``train_metrics="running"``,
        scikit-learn's), or of the whole training set after the epoch (``"exact"``).
    validation_scores_ : list of float or None
        Validation accuracy after each epoch when early stopping held out rows, else None.
    n_iter_ : int
        Epochs run, counting every ``partial_fit`` call.
    coefs_ : list of arrays of shape (fan_in, fan_out)
        The weight matrices in scikit-learn's orientation (views of ``net_``'s).
    intercepts_ : list of arrays of shape (fan_out,)
    best_loss_ : float or None
        The lowest training loss of ``loss_curve_``, what ``tol`` is measured on (scikit-learn's
        includes its penalty; ours, like ``loss_curve_``, does not); None with early stopping.
    best_validation_score_ : float or None
        The best validation accuracy, with early stopping.
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

    #: The standardiser of a loaded model that records one (``npmlp train`` on standardised data).
    _scaler: Standardizer | None = None
    #: The seed of the last fit (None when unknown: a loaded run without one).
    _seed_used: int | None = None
    loss_curve_: list[float]
    best_epoch_: int | None
    classes_: NDArray[Any]
    net_: MLP
    n_features_in_: int

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
        """The :class:`~npmlp.training.TrainConfig` of these parameters (it validates them).

        ``tol`` is the estimator's to apply (see :class:`_LossPlateau`): the run's own ``tol``, a
        parameter change, is off. ``early_stopping=True`` is a patience of ``n_iter_no_change + 1``.
        """
        settings = {name: getattr(self, name) for name in declared(TrainConfig) if name not in ("seed", "tol")}
        settings["early_stopping"] = self._patience()
        return TrainConfig(**settings, tol=0.0, seed=seed)

    def _patience(self) -> int | None:
        """The run's early-stopping patience in epochs (None: off), from ``early_stopping``."""
        es, n = self.early_stopping, self.n_iter_no_change
        if not _is_int(n) or int(n) < 1:
            raise ValueError(f"n_iter_no_change must be an integer >= 1. Got {n!r} instead.")
        if not isinstance(self.tol, numbers.Real) or isinstance(self.tol, bool) or not 0 <= float(self.tol) < math.inf:
            raise ValueError(f"tol must be a finite number >= 0. Got {self.tol!r} instead.")
        if es is None or es is False:
            return None
        if es is True:  # a bool is told apart from an integer patience by its type
            return int(n) + 1
        if _is_int(es) and int(es) >= 1:
            return int(es)
        raise ValueError(f"early_stopping must be True, False, None or a patience in epochs (an int >= 1). "
                         f"Got {es!r} instead.")

    # -- fitting -----------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> MLPClassifier:
        """Train on ``X`` of shape (n_samples, n_features) and labels ``y`` (n_samples,).

        A fresh network, or with ``warm_start`` the fitted one (with a fresh optimizer).
        ``sample_weight`` (n_samples,), finite and >= 0: the loss is the weighted mean, so an
        integer weight counts a row that many times and 0 drops it (times ``class_weight``).
        The validation rows of ``early_stopping=True`` keep their weights: the validation
        accuracy is weighted too.
        """
        config = self.train_config()
        warm = self._warm_net(config) if self.warm_start and hasattr(self, "net_") else None
        Xv, yv = validate_data(self, X, y, dtype=self._np_dtype(), reset=warm is None)
        classes, codes = self._encode_classes(yv)
        if warm is not None and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start needs the classes of the previous fit, {self.classes_.tolist()}. "
                             f"Got {classes.tolist()}.")
        weights = self._row_weights(sample_weight, codes, classes, balanced_ok=True)
        config = replace(config, seed=self._seed())
        if warm is not None and self._scaler is not None:  # a loaded model's standardisation stays
            Xv = self._scaler.transform(Xv)
        splits, split_weights = self._splits(Xv, codes, config, weights)
        trainer = Trainer.new(config, Xv.shape[1], len(classes), net=warm)  # kept for partial_fit
        self._seed_used, self._scaler = config.seed, self._scaler if warm is not None else None
        plateau = None if config.early_stopping else _LossPlateau(self.tol, self.n_iter_no_change)
        result = train(splits, config, trainer=trainer, progress=bool(self.verbose), on_epoch=plateau,
                       weights=split_weights)
        self.classes_ = classes
        self._record(trainer, result, validation="valid" in splits)
        return self

    def _warm_net(self, config: TrainConfig) -> MLP:
        """A copy of the fitted network to continue, checked against the settings."""
        net = self.net_
        if net.sizes[1:-1] != tuple(config.hidden) or net.dtype.name != config.dtype:
            raise ValueError(f"warm_start continues a {net.dtype.name} network with hidden layers "
                             f"{list(net.sizes[1:-1])}; the parameters now say {list(config.hidden)} and "
                             f"{config.dtype}. Set warm_start=False to start afresh.")
        return MLP({k: v.copy() for k, v in net.params.items()}, activation=config.activation, l1=config.l1,
                   l2=config.l2)

    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None, *,
                    sample_weight: ArrayLike | None = None) -> MLPClassifier:
        """Train one more epoch on ``(X, y)``, continuing the same network and optimizer state.

        ``classes`` (every label the model will ever see) is required on the first call.
        ``sample_weight`` as in :meth:`fit`; a ``class_weight`` must be a dict here ('balanced'
        would weigh each call's rows differently).
        The settings are those of the first call (or of ``fit``); early stopping and ``tol``
        do not apply. The learning-rate schedule's horizon is ``epochs``: past it, each call
        stretches it by one epoch (a cosine schedule then stays near 0).
        """
        first = not hasattr(self, "_trainer")
        loaded = first and hasattr(self, "net_")  # by load(): continue its network
        if first and not loaded and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit (every label y may hold).")
        fresh = first and not loaded
        Xv, yv = validate_data(self, X, y, dtype=self._np_dtype() if fresh else self.net_.dtype, reset=fresh)
        check_classification_targets(yv)
        if fresh and classes is not None:
            self._start_partial(Xv.shape[1], classes)
        elif loaded:
            config = replace(self.train_config(seed=self._seed()), early_stopping=None, tol=0.0)
            self._trainer = Trainer.new(config, self.n_features_in_, len(self.classes_), net=self._warm_net(config))
            self._trainer.state.epoch = len(self.loss_curve_)  # the epochs count on from the saved fit's
            self._trainer.state.history = [{"epoch": i, "train_loss": v} for i, v in enumerate(self.loss_curve_, 1)]
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes must stay {self.classes_.tolist()} across partial_fit calls. "
                             f"Got {np.unique(classes).tolist()}.")
        codes = self._codes(yv)
        weights = self._row_weights(sample_weight, codes, self.classes_, balanced_ok=False)
        if self._scaler is not None:
            Xv = self._scaler.transform(Xv)
        trainer = self._trainer
        epochs = max(trainer.config.epochs, trainer.state.epoch + 1)
        trainer.config = replace(trainer.config, epochs=epochs, early_stopping=None, tol=0.0)
        # Without early stopping the network is the last epoch's: a best epoch of fit no longer applies.
        trainer.state.best_epoch, trainer.state.best_params = None, None
        result = train({"train": (Xv, codes)}, trainer.config, trainer=trainer, on_epoch=_one_epoch,
                       weights=None if weights is None else {"train": weights})
        self._record(trainer, result, validation=False)
        return self

    def _start_partial(self, n_features: int, classes: ArrayLike) -> None:
        labels, _ = self._encode_classes(np.asarray(classes))
        config = replace(self.train_config(seed=self._seed()), early_stopping=None, tol=0.0)
        self._trainer = Trainer.new(config, n_features, len(labels))
        self._seed_used, self._scaler = config.seed, None
        self.classes_ = labels

    def _encode_classes(self, y: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
        """Sorted distinct labels and each label's index among them; at least two classes."""
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to learn from. "
                f"Got 1 class ({classes.tolist()[0]!r}) instead."
            )
        return classes, codes.reshape(-1).astype(np.intp)

    def _row_weights(self, sample_weight: ArrayLike | None, codes: NDArray[np.intp], classes: NDArray[Any], *,
                     balanced_ok: bool) -> NDArray[np.float64] | None:
        """Each row's weight, ``sample_weight`` times its class's ``class_weight``; None when neither is set."""
        cw = self.class_weight
        if sample_weight is None and cw is None:
            return None  # the unweighted code path, unchanged
        w: NDArray[np.float64] = np.ones(len(codes))
        if sample_weight is not None:
            w = check_weights(sample_weight, len(codes), np.dtype(np.float64)).astype(np.float64, copy=False)
        if cw is not None:
            w = w * self._class_weights(cw, w, codes, classes, balanced_ok)[codes]
        if not w.any():
            raise ValueError("sample weights are all zero (times class_weight): there is nothing to learn from.")
        heavy = np.flatnonzero(np.bincount(codes, w, minlength=len(classes)))
        if len(heavy) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes with a positive weight. Got only class "
                             f"{classes[heavy[0]]!r} (the other classes' rows all weigh 0).")
        return w

    def _class_weights(self, cw: Any, w: NDArray[np.float64], codes: NDArray[np.intp], classes: NDArray[Any],
                       balanced_ok: bool) -> NDArray[np.float64]:
        """The weight of each class (m,) from ``class_weight``."""
        m = len(classes)
        if isinstance(cw, str) and cw == "balanced":
            if not balanced_ok:
                raise ValueError("class_weight='balanced' does not apply to partial_fit: each call would weigh the "
                                 "classes by its own rows. Pass a dict of weights computed over all the data.")
            per_class = np.bincount(codes, w, minlength=m)  # total weight of each class
            with np.errstate(divide="ignore"):
                return np.where(per_class > 0, w.sum() / (m * per_class), 0.0)
        if not isinstance(cw, dict):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict of label to weight. Got {cw!r} instead.")
        known = {c.item() if isinstance(c, np.generic) else c: k for k, c in enumerate(classes)}
        unknown = [label for label in cw if label not in known]
        if unknown:
            raise ValueError(f"class_weight names labels that are not classes {classes.tolist()}: {unknown[:5]}.")
        weights = np.ones(m)
        for label, value in cw.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
                raise ValueError(f"class_weight[{label!r}] must be a finite number >= 0. Got {value!r} instead.")
            weights[known[label]] = float(value)
        return weights

    def _codes(self, y: NDArray[Any]) -> NDArray[np.intp]:
        """Indices of ``y``'s labels in :attr:`classes_`; unseen labels are an error."""
        codes = np.searchsorted(self.classes_, y)
        codes[codes == len(self.classes_)] = 0
        unseen = self.classes_[codes] != y
        if np.any(unseen):
            raise ValueError(f"y holds labels not in classes {self.classes_.tolist()}: "
                             f"{np.unique(y[unseen]).tolist()}.")
        return codes.astype(np.intp)

    def _splits(self, X: NDArray[Any], y: NDArray[np.intp], config: TrainConfig, w: NDArray[np.float64] | None
                ) -> tuple[dict[str, tuple[Any, Any]], dict[str, NDArray[np.float64]] | None]:
        """The training rows, and the held-out validation rows when early stopping is on; each split's weights."""
        if not config.early_stopping:
            return {"train": (X, y)}, None if w is None else {"train": w}
        f = self.validation_fraction
        if not isinstance(f, numbers.Real) or isinstance(f, bool) or not 0 < float(f) < 1:
            raise ValueError(f"validation_fraction must be in (0, 1). Got {f!r} instead.")
        n_valid, m = math.ceil(float(f) * len(y)), int(y.max()) + 1
        if n_valid >= len(y):
            raise ValueError(f"early stopping needs training rows left after holding out validation_fraction={f} "
                             f"of {len(y)} samples. Lower validation_fraction or pass more samples.")
        # Stratify when every class can appear on both sides; tiny data sets go unstratified.
        stratify = y if np.bincount(y).min() >= 2 and m <= min(n_valid, len(y) - n_valid) else None
        rows = np.arange(len(y))
        tr, va = train_test_split(rows, test_size=n_valid, random_state=config.seed % 2**32, stratify=stratify)
        splits = {"train": (X[tr], y[tr]), "valid": (X[va], y[va])}
        if w is None:
            return splits, None
        if not w[va].any() or not w[tr].any():
            raise ValueError(f"early stopping held out validation_fraction={f} of the rows, and the "
                             f"{'validation' if not w[va].any() else 'training'} rows' weights are all zero. "
                             f"Change random_state or validation_fraction.")
        return splits, {"train": w[tr], "valid": w[va]}

    def _record(self, trainer: Trainer, result: TrainResult | None, *, validation: bool) -> None:
        """Set the fitted attributes from the trainer's history; warn when training diverged."""
        history = trainer.state.history
        self._trainer = trainer
        self.net_ = trainer.net
        self.loss_curve_ = [row["train_loss"] for row in history]
        self.validation_scores_ = [1 - row["valid_error"] for row in history] if validation else None
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ and not validation else None
        self.best_validation_score_ = max(self.validation_scores_) if self.validation_scores_ else None
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

    @property
    def coefs_(self) -> list[NDArray[np.floating]]:
        """The weight matrices in scikit-learn's orientation, ``coefs_[l]`` of shape (fan_in, fan_out).

        Views of the network's (fan_out, fan_in) ``W`` matrices (``coefs_[l] = W_{l+1}.T``).
        """
        return [W.T for W in self.net_.weights]

    @property
    def intercepts_(self) -> list[NDArray[np.floating]]:
        """The bias vectors, ``intercepts_[l]`` of shape (fan_out,)."""
        return list(self.net_.biases)

    # -- files ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the fitted model to ``directory`` as ``model.npz`` + ``config.json``, no pickle.

        The files are those of ``npmlp train``, with the class labels (strings or integers),
        the feature names (when fitted on a table with named columns), the parameters and the
        fit's record: ``npmlp predict``, ``npmlp export``, :func:`npmlp.load` and :meth:`load`
        read them. Returns the directory.
        """
        check_is_fitted(self)
        labels = [c.item() if isinstance(c, np.generic) else c for c in self.classes_]
        if not (all(isinstance(c, str) for c in labels) or all(_is_int(c) for c in labels)):
            raise ValueError(f"save needs class labels that are all strings or all integers. Got "
                             f"{self.classes_.dtype} labels {labels[:5]}.")
        names = getattr(self, "feature_names_in_", None)
        model = Model(self.net_, self._scaler, LabelMap(tuple(labels)),
                      None if names is None else [str(n) for n in names])
        estimator = {name: getattr(self, name) for name in PARAMETERS if name not in declared(TrainConfig)}
        if isinstance(self.class_weight, dict):  # JSON keys are strings: kept as [label, weight] pairs instead
            estimator["class_weight"] = [[k.item() if isinstance(k, np.generic) else k, float(v)]
                                         for k, v in self.class_weight.items()]
        estimator.update(tol=self.tol, early_stopping=self.early_stopping, random_state=self._seed_used)
        fit = {"loss_curve": self.loss_curve_, "validation_scores": self.validation_scores_,
               "best_loss": self.best_loss_, "best_epoch": self.best_epoch_, "stopped_because": self.stopped_because_}
        config = replace(self.train_config(), seed=self._seed() if self._seed_used is None else self._seed_used)
        return model.save(directory, training={**config.to_dict(), "estimator": estimator}, extra={"fit": fit})

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> MLPClassifier:
        """A fitted estimator from a directory of :meth:`save` or ``npmlp train``; never unpickles.

        Its parameters are the saved ones (``npmlp train``'s settings for a run, ``tol=0``: the
        run stopped by its epochs or early stopping); a model that standardises its inputs
        keeps doing so in ``predict``. Raises :class:`~npmlp.errors.ModelFileError` for
        missing or damaged files.
        """
        model = Model.load(directory)
        training = model.config.get("training") or {}
        own = training.get("estimator")
        params = {k: v for k, v in training.items() if k in PARAMETERS and k not in ("tol", "early_stopping")}
        params.setdefault("train_metrics", "exact")  # a record without it measured the exact loss
        params["random_state"] = training.get("seed")
        params.update(own if isinstance(own, dict) else {"tol": 0.0, "early_stopping": training.get("early_stopping")})
        pairs = params.get("class_weight")
        if isinstance(pairs, list):
            try:
                params["class_weight"] = {label: weight for label, weight in pairs}
            except (TypeError, ValueError):
                raise ModelFileError(f"{directory}: class_weight must be [label, weight] pairs. "
                                     f"Got {pairs!r:.80}.") from None
        try:
            est = cls(**{k: tuple(v) if k == "hidden" else v for k, v in params.items() if k in PARAMETERS})
            est.train_config()
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{directory}: the recorded settings are not an MLPClassifier's: {exc}") from exc
        est._set_model(model, directory)
        return est

    def _set_model(self, model: Model, directory: str | os.PathLike[str]) -> None:
        """The fitted attributes of a loaded model and its fit record (an ``npmlp train`` run's: its history)."""
        self.net_, self._scaler, self.n_features_in_ = model.net, model.scaler, model.n_features
        self.classes_ = np.asarray(model.classes)
        if model.feature_names is not None:
            self.feature_names_in_ = np.asarray(model.feature_names, dtype=object)
        record = model.config.get("fit")
        fit: dict[str, Any] = record if isinstance(record, dict) else _run_record(directory, model.config)
        self.loss_curve_ = [float(v) for v in fit.get("loss_curve") or []]
        scores = fit.get("validation_scores")
        self.validation_scores_ = [float(v) for v in scores] if isinstance(scores, list) else None
        self.n_iter_ = len(self.loss_curve_)
        self.best_epoch_ = fit.get("best_epoch")
        self.stopped_because_ = str(fit.get("stopped_because", "unknown"))
        self.best_loss_ = float(fit["best_loss"]) if isinstance(fit.get("best_loss"), (int, float)) else None
        self.best_validation_score_ = max(self.validation_scores_) if self.validation_scores_ else None
        self._seed_used = self.random_state if _is_int(self.random_state) else None

    # -- prediction ----------------------------------------------------------------------
    def _logits(self, X: ArrayLike) -> NDArray[np.floating]:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype)
        if self._scaler is not None:  # a loaded model that standardises its inputs
            X = self._scaler.transform(np.asarray(X))
        return self.net_.logits(X)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The most probable label of each row of ``X`` (n_samples, n_features): shape (n_samples,)."""
        Oa = self._logits(X)
        labels: NDArray[Any] = self.classes_[np.argmax(Oa, axis=1)]
        return labels

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
