"""Minibatch gradient descent: the epoch loop, history, stopping rules and resumable state.

The assignment's question 2.6 and part 3: shuffled minibatches of size K (the last, partial one included),
``theta <- theta - eta_t * grad`` (or momentum, Nesterov, Adam), for a number of
epochs or until ``||theta_{t+1} - theta_t|| < epsilon`` (measured here across one
epoch), with optional early stopping on the validation error.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .dtypes import DTYPES, Array
from .errors import DataError, ModelFileError
from .functions import ACTIVATIONS
from .kernels import Tally, Workspace, train_step
from .minibatches import Prefetcher, gather_weights, gathered, one_blas_thread, prefetch_pays
from .network import BACKPROPS, MLP, check_weights, dropout_rates, nll
from .optim import OPTIMIZERS, SCHEDULES, learning_rate, make_optimizer
from .settings import Choice, Coefficients, Integer, Real, Sizes, setting, validate

Split = tuple[Array, NDArray[np.intp]]
SPLITS = ("train", "valid", "test")
#: How an epoch's train loss and error are measured (TrainConfig.train_metrics).
TRAIN_METRICS = ("exact", "running")


def _uses(**values: str) -> Callable[[Mapping[str, Any]], bool]:
    """``applies`` for a setting that only matters when another one takes one of some values."""
    return lambda c: all(c.get(k) in v.split("|") for k, v in values.items())


@dataclass
class TrainConfig:
    """Every setting of a training run: the network and how to fit it.

    Each field is the one declaration of its setting (see :mod:`npmlp.settings`): the
    command line's flags (``--batch-size`` is ``batch_size``), the estimator's parameters
    and the sweep file's keys are made from these fields. The defaults are the assignment's.
    """

    hidden: Sequence[int] = setting((10,), Sizes(), "hidden layer sizes, from the input, like 10 or 256,128",
                                    metavar="H")
    activation: str = setting("rect", Choice(ACTIVATIONS), "hidden activation (relu = rect)")
    l1: float | Sequence[float] = setting(0.0, Coefficients(), "L1 coefficient, one value or one per weight matrix",
                                          metavar="V", log_scale=True)
    l2: float | Sequence[float] = setting(0.0, Coefficients(), "L2 coefficient, one value or one per weight matrix",
                                          metavar="V", log_scale=True)
    dropout: float | Sequence[float] = setting(0.0, Coefficients(below=1, per="hidden layer"),
                                               "dropout rate of the hidden layers' outputs, one value or one per "
                                               "hidden layer (inverted dropout: kept units scaled by 1/(1-P))",
                                               metavar="P", applies=lambda c: bool(np.any(c.get("dropout"))))
    input_dropout: float = setting(0.0, Real(0, 1, high_open=True), "dropout rate of the inputs", metavar="P",
                                   applies=lambda c: bool(c.get("input_dropout")))
    dtype: str = setting("float64", Choice(DTYPES), "float precision")
    optimizer: str = setting("sgd", Choice(OPTIMIZERS), "update rule")
    lr: float = setting(0.03, Real(0, low_open=True), "learning rate eta_0", metavar="ETA", log_scale=True)
    lr_schedule: str = setting("constant", Choice(SCHEDULES), "eta_t per epoch")
    lr_decay: float = setting(0.01, Real(0), "invscaling: eta_0 / (1 + decay * t)",
                              applies=_uses(lr_schedule="invscaling"), log_scale=True)
    lr_step: int = setting(10, Integer(1), "step: epochs between decays", applies=_uses(lr_schedule="step"))
    lr_gamma: float = setting(0.5, Real(0, low_open=True), "step: factor per decay", applies=_uses(lr_schedule="step"))
    momentum: float = setting(0.9, Real(0, 1, high_open=True), "momentum/nesterov coefficient",
                              applies=_uses(optimizer="momentum|nesterov"))
    batch_size: int = setting(10, Integer(1), "minibatch size", metavar="K")
    epochs: int = setting(200, Integer(1), "maximum epochs", metavar="N")
    tol: float = setting(0.0, Real(0), "stop when ||theta_after - theta_before|| over an epoch is below EPS (0: off)",
                         metavar="EPS", applies=lambda c: bool(c.get("tol")), log_scale=True)
    early_stopping: int | None = setting(None, Integer(1, optional=True), "stop after PATIENCE epochs without a "
                                         "better valid error; keep the best epoch", metavar="PATIENCE",
                                         applies=lambda c: c.get("early_stopping") is not None)
    backprop: str = setting("matrix", Choice(BACKPROPS), "backprop version",
                            applies=lambda c: c.get("backprop") != "matrix")
    train_metrics: str = setting("exact", Choice(TRAIN_METRICS), "the epoch's train loss and error: exact (the "
                                 "training set evaluated after the epoch) or running (the mean data loss over the "
                                 "epoch's minibatches as each step saw them, under its dropout masks and without "
                                 "the penalty: no second pass)",
                                 applies=lambda c: c.get("train_metrics", "exact") != "exact")
    seed: int = setting(0, Integer(0), "seed of every random draw")

    def __post_init__(self) -> None:
        validate(self)
        dropout_rates(self.input_dropout, self.dropout, len(self.hidden))  # one rate, or one per hidden layer

    @property
    def dropout_rates(self) -> tuple[float, ...]:
        """The dropout rate of each weight matrix's input: the inputs', then each hidden layer's."""
        return dropout_rates(self.input_dropout, self.dropout, len(self.hidden))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("l1", "l2", "dropout"):
            d[k] = list(d[k]) if isinstance(d[k], (list, tuple)) else d[k]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def build(self, n_features: int, n_classes: int, rng: np.random.Generator) -> MLP:
        """A freshly initialised network for this configuration."""
        sizes = (n_features, *self.hidden, n_classes)
        return MLP.initialize(sizes, rng=rng, activation=self.activation, l1=self.l1, l2=self.l2, dtype=self.dtype)


@dataclass
class TrainResult:
    """What a run produced: the network and its history.

    ``net`` always holds the parameters :meth:`final` describes: the best epoch's with early
    stopping (however the run ended), else the last completed epoch's. ``no_progress`` says the
    final validation error (training error without a validation split) is not below guessing
    the most common class, ``majority_error``, minus one example; ``message`` then says so with
    a hint. It is recorded, never raised: fitting random labels is a legitimate thing to do.
    """

    net: MLP
    history: list[dict[str, Any]]
    stopped_because: str
    best_epoch: int | None = None
    message: str = ""
    no_progress: bool = False
    majority_error: float | None = None
    #: Whether a model file was written for this result (set by :func:`npmlp.runs.run`, which decides).
    model_written: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def kept_row(self) -> dict[str, Any]:
        """The history row of the returned parameters (the best epoch's with early stopping); {} without one."""
        if self.best_epoch:
            return self.history[self.best_epoch - 1]
        return self.history[-1] if self.history else {}

    def final(self) -> dict[str, float | None]:
        """Errors of the returned parameters (the best epoch's with early stopping)."""
        row = self.kept_row()
        return {f"{s}_error": row.get(f"{s}_error") for s in SPLITS}


def evaluate(net: MLP, X: Array, y: NDArray[np.intp], *, batch_size: int = 2048,
             check_finite: bool = False, weights: Array | None = None) -> tuple[float, float]:
    """Mean NLL (without penalty) and classification error of ``net`` on ``(X, y)``, batched.

    ``check_finite``: raise :class:`DataError` naming the first rows whose logits overflow
    (the training loop leaves it off: a non-finite loss there is how divergence shows).
    ``weights`` (n,): the weighted mean loss and weighted error (nan when they sum to 0).
    """
    total = X.shape[0] if weights is None else float(weights.sum())
    if X.shape[0] == 0 or not total:
        return float("nan"), float("nan")
    loss_sum, wrong = 0.0, 0.0
    for i in range(0, X.shape[0], batch_size):
        with np.errstate(over="ignore", invalid="ignore") if check_finite else contextlib.nullcontext():
            Oa = net.forward(X[i : i + batch_size]).logits
        if check_finite:
            refuse_nonfinite_rows(Oa, first_row=i)
        yb = y[i : i + batch_size]
        if weights is None:
            loss_sum += float(nll(Oa, yb)) * yb.shape[0]
            wrong += int(np.count_nonzero(Oa.argmax(axis=1) != yb))
        else:
            wb = weights[i : i + batch_size]
            loss_sum += float(nll(Oa, yb, wb)) * float(wb.sum())
            wrong += float(wb @ (Oa.argmax(axis=1) != yb))
    return loss_sum / total, wrong / total


def refuse_nonfinite_rows(Oa: Array, *, first_row: int = 0, source: str = "the input") -> None:
    """Raise :class:`DataError` naming the first rows (counted from 1) whose logits ``Oa`` (n, m) are not finite.

    Inputs far out of the training range (1.7e308, say) overflow the activations to inf and
    then nan, and ``argmax`` of a nan row is 0: a label that means nothing.
    """
    bad = np.flatnonzero(~np.isfinite(Oa).all(axis=1))
    if bad.size:
        rows = ", ".join(str(first_row + int(r) + 1) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise DataError(f"{source} has rows whose activations overflow (row{'s' if bad.size > 1 else ''} {rows}, "
                        f"counting from 1; "
                        f"{bad.size} in all): their values are far outside what the model was trained on.")


def majority_error(y: NDArray[np.intp], weights: Array | None = None) -> float:
    """The error of always guessing the most common label of ``y`` (n,) (the heaviest, with ``weights``)."""
    if weights is not None:
        total = float(weights.sum())
        return 1.0 - float(np.bincount(y, weights).max()) / total if y.shape[0] and total else float("nan")
    return 1.0 - int(np.bincount(y).max()) / y.shape[0] if y.shape[0] else float("nan")


def judge_progress(result: TrainResult, splits: Mapping[str, Split], lr: float,
                   weights: Mapping[str, Array] | None = None) -> TrainResult:
    """Set ``result.no_progress`` (and its hint in ``message``) from the split the final error is measured on.

    No progress: the final validation error (training error without validation rows) is not
    below the majority-class error minus one example, or no epoch completed at all.
    """
    split = "valid" if "valid" in splits and splits["valid"][1].shape[0] else "train"
    y = splits[split][1]
    result.majority_error = majority_error(y, (weights or {}).get(split))
    if result.stopped_because == "interrupted":
        return result
    error = result.final().get(f"{split}_error")
    if error is not None and error < result.majority_error - 1 / max(y.shape[0], 1):
        return result
    result.no_progress = True
    shown = "no epoch completed" if error is None else f"{100 * error:.2f}%"
    hint = (f"no progress: the final {split} error ({shown}) is not below {100 * result.majority_error:.2f}% "
            f"(always guessing the most common class) by one example. Try a lower learning rate (now {lr:g}) "
            f"or scaling the features to about unit size.")
    result.message = f"{result.message} {hint}".strip()
    return result


#: A train loss this many times that of guessing uniformly (log m) means divergence:
#: with an exploding step the loss grows huge long before it overflows to inf.
DIVERGENCE_FACTOR = 100.0


def diverged(net: MLP, train_loss: float) -> bool:
    """True when the parameters or the loss are non-finite, or the loss has exploded."""
    finite = all(np.isfinite(P).all() for P in net.params.values())
    return not (finite and train_loss <= DIVERGENCE_FACTOR * math.log(max(net.sizes[-1], 2)))


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # minibatches done in the epoch in progress
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_params: dict[str, Array] | None = None
    rng_epoch_start: dict[str, Any] | None = None  # RNG state that drew this epoch's permutation
    tally: Tally = field(default_factory=Tally)  # the epoch in progress's minibatch losses (train_metrics running)


class Trainer:
    """Runs minibatch gradient descent on one network; the hot path allocates nothing big.

    Parameters
    ----------
    net : MLP
        Trained in place.
    config : TrainConfig
    rng : numpy.random.Generator
        Draws each epoch's permutation of the training rows.
    """

    def __init__(self, net: MLP, config: TrainConfig, rng: np.random.Generator) -> None:
        self.net, self.config, self.rng = net, config, rng
        options = {"momentum": config.momentum} if config.optimizer in ("momentum", "nesterov") else {}
        self.optimizer = make_optimizer(config.optimizer, net.params, **options)
        self.workspace = Workspace(net, config.batch_size, config.dropout_rates)
        self.state = TrainState()
        self.stop_requested = False  # set by a signal handler: stop after this minibatch
        self.stop_after_epoch: str | None = None  # set by an on_epoch callback: end the run, saying why
        #: Gather minibatches ahead in a background thread: None decides per data set
        #: (:func:`npmlp.minibatches.prefetch_pays`); the result is the same either way.
        self.prefetch: bool | None = None
        self.prefetcher = Prefetcher(config.batch_size)

    @classmethod
    def new(cls, config: TrainConfig, n_features: int, n_classes: int, *, net: MLP | None = None) -> Trainer:
        """The one way to start a run: a generator seeded by ``config.seed`` draws the initial
        weights (unless ``net`` is given), then every epoch's permutation.

        Every run of the same configuration and data therefore starts bit for bit alike,
        whichever entry point (command line, estimator, sweep, benchmark, demo) made it.
        """
        rng = np.random.default_rng(config.seed)
        return cls(net if net is not None else config.build(n_features, n_classes, rng), config, rng)

    def state_dict(self) -> tuple[dict[str, Array], dict[str, Any]]:
        """Everything :meth:`from_state` needs to continue exactly here: (arrays, JSON-able meta).

        The arrays are the optimizer's state (``opt/NAME``) and, with early stopping, the best
        epoch's parameters (``best/NAME``); the network's own parameters are the caller's to save.
        """
        st = self.state
        arrays = {f"opt/{k}": v for k, v in self.optimizer.state.items()}
        if st.best_params is not None:
            arrays.update({f"best/{k}": v for k, v in st.best_params.items()})
        meta = {"epoch": st.epoch, "batch": st.batch, "best_epoch": st.best_epoch,
                "rng": rng_state_to_json(self.rng), "rng_epoch_start": st.rng_epoch_start,
                "tally": [st.tally.loss, st.tally.weight, st.tally.wrong]}
        return arrays, meta

    @classmethod
    def from_state(cls, config: TrainConfig, params: Mapping[str, Array], arrays: Mapping[str, Array],
                   meta: Mapping[str, Any], history: list[dict[str, Any]], *, where: object = "the state") -> Trainer:
        """The trainer :meth:`state_dict` described, with the network's ``params`` and the run's ``history``.

        Every field is checked first (``where`` names the source in messages): anything that
        :meth:`state_dict` could not have written raises :class:`ModelFileError`.
        """
        try:
            net = MLP({k: v.copy() for k, v in params.items()}, activation=config.activation, l1=config.l1,
                      l2=config.l2)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{where}: the parameters do not make a network: {exc}") from exc
        _check_state(config, net, arrays, meta, history, where)
        trainer = cls(net, config, rng_from_json(meta["rng"]))
        _check_arrays("opt/", trainer.optimizer.state, arrays, where)
        for k, v in trainer.optimizer.state.items():
            v[...] = arrays[f"opt/{k}"]
        best = {k[len("best/"):]: v.copy() for k, v in arrays.items() if k.startswith("best/")}
        trainer.state = TrainState(epoch=meta["epoch"], batch=meta["batch"], history=history,
                                   best_epoch=meta["best_epoch"], best_params=best or None,
                                   rng_epoch_start=meta["rng_epoch_start"], tally=Tally(*meta.get("tally", (0, 0, 0))))
        return trainer

    def lr_at(self, epoch: int) -> float:
        c = self.config
        return learning_rate(c.lr_schedule, c.lr, epoch, epochs=c.epochs, decay=c.lr_decay, step=c.lr_step,
                             gamma=c.lr_gamma)

    def run_epoch(self, X: Array, y: NDArray[np.intp], weights: Array | None = None) -> bool:
        """Train over one shuffled pass of ``(X, y)``, from minibatch ``state.batch`` on.

        ``weights`` (n,): per-row weights of the loss, gathered with each minibatch. With
        ``train_metrics = "running"`` the steps tally their minibatches' losses in ``state.tally``.
        Returns False when a stop was requested mid-epoch (the state then says where).
        """
        net, ws, K, st = self.net, self.workspace, self.config.batch_size, self.state
        tally = st.tally if self.config.train_metrics == "running" else None
        if st.batch == 0 or st.rng_epoch_start is None:
            st.rng_epoch_start = dict(self.rng.bit_generator.state)
            if tally is not None:  # NOTE: exact metrics keep tally None: their steps count nothing
                st.tally = tally = Tally()
        else:  # resuming mid-epoch: redraw the very same permutation
            self.rng.bit_generator.state = st.rng_epoch_start
        order = self.rng.permutation(X.shape[0])
        lr, backprop, dropout = self.lr_at(st.epoch), self.config.backprop, any(self.config.dropout_rates)
        prefetch = self.uses_prefetch(X)
        if prefetch:
            minibatches = self.prefetcher.minibatches(X, y, order, st.batch * K)
        else:
            minibatches = gathered(X, y, order, st.batch * K, K, ws)
        # leaving early stops the gathering thread; a light network's products run on one BLAS thread
        with one_blas_thread() if prefetch else contextlib.nullcontext(), contextlib.closing(minibatches):
            for Xb, yb in minibatches:
                # The inputs were validated once by train(): straight to the fast path.
                wb = None if weights is None else gather_weights(weights, order, st.batch * K, yb.shape[0], ws.w)
                masks_rng = self.masks_rng(st.epoch, st.batch) if dropout else None
                train_step(net, ws, self.optimizer, Xb, yb, lr, backprop, wb, tally, masks_rng)
                st.batch += 1
                if self.stop_requested:
                    return False
        st.batch = 0
        return True

    def masks_rng(self, epoch: int, batch: int) -> np.random.Generator:
        """The generator of the dropout masks of minibatch ``batch`` (0-based) of epoch ``epoch`` (0-based).

        Seeded by the run's seed, the epoch and the minibatch alone, so a resumed run, or the
        loop backprop, draws the very same masks as the run it repeats.
        """
        return np.random.default_rng([self.config.seed, epoch, batch])

    def uses_prefetch(self, X: Array) -> bool:
        """Whether :meth:`run_epoch` gathers ahead in a thread for training data ``X``."""
        if self.prefetch is not None:
            return self.prefetch
        return self.config.backprop == "matrix" and prefetch_pays(
            self.net.sizes, self.config.batch_size, X.dtype.itemsize, X.shape[0])


def _check_arrays(prefix: str, want: Mapping[str, Array], arrays: Mapping[str, Array], where: object) -> None:
    """``arrays`` holds ``prefix + name`` for each of ``want``, of its shape and dtype."""
    for k, v in want.items():
        got = arrays.get(prefix + k)
        if got is None or got.shape != v.shape or got.dtype != v.dtype:
            shown = "none" if got is None else f"{got.dtype} {list(got.shape)}"
            raise ModelFileError(f"{where}: {prefix}{k} must be {v.dtype} of shape {list(v.shape)}. Got {shown}.")


def _check_state(config: TrainConfig, net: MLP, arrays: Mapping[str, Array], meta: Mapping[str, Any],
                 history: Sequence[Mapping[str, Any]], where: object) -> None:
    """Refuse trainer state that :meth:`Trainer.state_dict` could not have written, naming the field."""
    def bad(name: str, rule: str, value: Any) -> ModelFileError:
        return ModelFileError(f"{where}: {name!r} must be {rule}. Got {value!r:.80} instead.")

    def count(name: str, low: int, high: float) -> int:
        v = meta.get(name)
        if type(v) is not int or not low <= v <= high:
            raise bad(name, f"an integer from {low} to {high}", v)
        return v

    def generator(name: str) -> None:
        try:
            rng_from_json(meta.get(name))  # type: ignore[arg-type]  # it checks what it is given
        except ModelFileError as exc:
            raise ModelFileError(f"{where}: {name!r}: {exc}") from None

    if net.sizes[1:-1] != tuple(config.hidden) or net.dtype.name != config.dtype:
        raise ModelFileError(f"{where}: the parameters are a {net.dtype.name} network of sizes {list(net.sizes)}; "
                             f"the settings say hidden {list(config.hidden)} and {config.dtype}.")
    epoch, batch = count("epoch", 0, math.inf), count("batch", 0, math.inf)
    best = None if meta.get("best_epoch") is None else count("best_epoch", 1, epoch)
    if len(history) != epoch or any(row.get("epoch") != i + 1 for i, row in enumerate(history)):
        raise ModelFileError(f"{where}: the history must hold epochs 1 to {epoch}, one row each. "
                             f"Got {len(history)} rows.")
    has_best = any(k.startswith("best/") for k in arrays)
    if (best is not None) != has_best or (best is not None and not config.early_stopping):
        raise ModelFileError(f"{where}: 'best_epoch' ({best}) and the best/ arrays ({'some' if has_best else 'none'})"
                             f" must come together, with early stopping only.")
    if has_best:
        _check_arrays("best/", net.params, arrays, where)
    generator("rng")
    tally = meta.get("tally", [0, 0, 0])
    if not (isinstance(tally, list) and len(tally) == 3 and all(type(v) in (int, float) and 0 <= v < math.inf
                                                                for v in tally)):
        raise bad("tally", "three finite numbers >= 0 (loss, weight and errors so far)", tally)
    if meta.get("rng_epoch_start") is not None or batch > 0:  # resuming mid-epoch redraws the permutation from it
        generator("rng_epoch_start")


def _fmt(row: Mapping[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}"]
    for s in SPLITS:
        if row.get(f"{s}_loss") is not None:
            parts.append(f"{s} {row[f'{s}_loss']:.4f}/{100 * row[f'{s}_error']:.2f}%")
    parts.append(f"{row['seconds']:.2f}s")
    return "  ".join(parts)


class Progress:
    """One line per epoch (and a tqdm bar when installed), silent when not wanted.

    Shown on stderr when it is a terminal, and in a Jupyter notebook, whose stderr is no
    terminal: there the lines go to the cell's output (stdout; a notebook paints stderr as a
    warning) under ``tqdm.auto``'s widget bar.
    """

    def __init__(self, enabled: bool, total: int, initial: int = 0) -> None:
        notebook = self.in_notebook()
        self.enabled = enabled and (sys.stderr.isatty() or notebook)
        self.file = sys.stdout if notebook else sys.stderr
        self.bar = None
        if self.enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # the bar is a nicety: print plain lines without it
                return
            self.bar = tqdm(total=total, initial=initial, unit="epoch", file=self.file, leave=False)

    @staticmethod
    def in_notebook() -> bool:
        """True inside a Jupyter kernel (IPython's kernel app is running)."""
        shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
        return shell is not None and "IPKernelApp" in getattr(shell, "config", {})

    def epoch(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(_fmt(row), file=self.file)
            self.bar.update(1)
        else:
            print(_fmt(row), file=self.file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(
    splits: Mapping[str, Split],
    config: TrainConfig,
    *,
    net: MLP | None = None,
    trainer: Trainer | None = None,
    progress: bool = False,
    on_epoch: Callable[[Trainer], None] | None = None,
    prefetch: bool | None = None,
    weights: Mapping[str, ArrayLike] | None = None,
) -> TrainResult:
    """Fit a network on ``splits["train"]``, evaluating every split after each epoch.

    Parameters
    ----------
    splits : mapping of "train", optionally "valid" and "test", to (X, y)
        ``X`` of shape (n, d) in the configuration's dtype, ``y`` of shape (n,).
    config : TrainConfig
    net : MLP, optional
        Start from this network instead of a fresh one.
    trainer : Trainer, optional
        Continue this trainer (a resumed run: its state says where).
    progress : bool
        One line per epoch on stderr when stderr is a terminal.
    on_epoch : callable, optional
        Called with the trainer after every epoch (checkpoints) and when a stop was
        requested mid-epoch. Setting ``trainer.stop_after_epoch`` to a reason ends the
        run after this epoch, with that reason as ``stopped_because``.
    prefetch : bool, optional
        Sets :attr:`Trainer.prefetch`: gather minibatches ahead in a background thread.
        None decides by the data; False suits processes that share the cores (parallel trials).
    weights : mapping of split names to arrays of shape (n,), optional
        Per-row weights (``sample_weight``, >= 0): the training loss and its gradient are the
        weighted mean (see :func:`npmlp.network.nll`), and each split's loss and error are
        measured weighted. Without them the unweighted code runs, unchanged.

    Returns
    -------
    TrainResult
    """
    X, y = splits["train"]
    if trainer is None:
        trainer = Trainer.new(config, X.shape[1], int(y.max()) + 1, net=net)
    if prefetch is not None:
        trainer.prefetch = prefetch
    splits = {k: trainer.net.check_input(*v) for k, v in splits.items()}
    if config.early_stopping and "valid" not in splits:
        raise ValueError("early_stopping needs a validation split. Got none.")
    checked = _check_split_weights(weights or {}, splits, trainer.net)
    bar = Progress(progress, config.epochs, trainer.state.epoch)
    try:
        result = _loop(trainer, splits, bar, on_epoch, checked)
    finally:
        bar.close()
    return judge_progress(result, splits, config.lr, checked)


def _check_split_weights(weights: Mapping[str, ArrayLike], splits: Mapping[str, Split], net: MLP) -> dict[str, Array]:
    """Each split's weights checked against its rows, in the network's dtype; the training rows' not all 0."""
    unknown = sorted(set(weights) - set(splits))
    if unknown:
        raise ValueError(f"weights name splits that are not there: {', '.join(unknown)}. "
                         f"Got splits {', '.join(splits)}.")
    checked = {k: check_weights(w, splits[k][0].shape[0], net.dtype) for k, w in weights.items()}
    if "train" in checked and splits["train"][0].shape[0] and not checked["train"].any():
        raise ValueError("the training rows' sample weights are all zero: there is nothing to learn from.")
    return checked


def _result(trainer: Trainer, stopped: str, before: Mapping[str, Array] | None, message: str = "") -> TrainResult:
    """The result of a run ending now, its network holding the parameters its history's summary describes.

    With early stopping that is the best epoch's, however the run ended (a divergence or an
    interruption included). Otherwise, after a divergence or an interruption, it is ``before``:
    the parameters at the end of the last completed epoch. An interrupted run's trainer keeps
    its current parameters (a resumed run continues from them); its result gets a copy.
    """
    net, st, config = trainer.net, trainer.state, trainer.config
    best_epoch = st.best_epoch if config.early_stopping else None
    kept = st.best_params if config.early_stopping and st.best_params is not None else (
        before if stopped in ("diverged", "interrupted") else None)
    if kept is not None and stopped == "interrupted":
        net = MLP({k: v.copy() for k, v in kept.items()}, activation=net.activation, l1=net.l1, l2=net.l2)
    elif kept is not None:
        net.params.update({k: v.copy() for k, v in kept.items()})
    return TrainResult(net, st.history, stopped, best_epoch, message)


def _loop(trainer: Trainer, splits: Mapping[str, Split], bar: Progress, on_epoch: Callable[[Trainer], None] | None,
          weights: Mapping[str, Array]) -> TrainResult:
    net, st, config = trainer.net, trainer.state, trainer.config
    X, y = splits["train"]
    stopped = "max_epochs"
    while st.epoch < config.epochs:
        before = {k: v.copy() for k, v in net.params.items()}
        tic = time.perf_counter()
        finished = trainer.run_epoch(X, y, weights.get("train"))
        seconds = time.perf_counter() - tic
        if not finished:
            if on_epoch:
                on_epoch(trainer)
            return _result(trainer, "interrupted", before)
        row: dict[str, Any] = {"epoch": st.epoch + 1, "lr": trainer.lr_at(st.epoch)}
        for s in SPLITS:
            measured: tuple[float, float] | tuple[None, None] = (None, None)
            if s == "train" and config.train_metrics == "running":  # what the epoch's steps saw
                measured = st.tally.means()
            elif s in splits:
                measured = evaluate(net, *splits[s], weights=weights.get(s))
            row[f"{s}_loss"], row[f"{s}_error"] = measured
        row["seconds"] = seconds
        if diverged(net, row["train_loss"]):
            kept = st.best_epoch if config.early_stopping and st.best_params is not None else st.epoch
            msg = (f"training diverged in epoch {st.epoch + 1} (train loss {row['train_loss']:.3g}); kept the "
                   f"parameters of epoch {kept}. Lower the learning rate (now {config.lr:g}).")
            return _result(trainer, "diverged", before, msg)
        st.history.append(row)
        st.epoch += 1
        bar.epoch(row)
        stopped = _stopping(trainer, before, row)
        if on_epoch:
            on_epoch(trainer)
        if stopped == "running" and trainer.stop_after_epoch:
            stopped, trainer.stop_after_epoch = trainer.stop_after_epoch, None
        if stopped != "running":
            break
    else:
        stopped = "max_epochs"
    return _result(trainer, stopped, None)


def _stopping(trainer: Trainer, before: Mapping[str, Array], row: Mapping[str, Any]) -> str:
    """Update the early-stopping record; say why training must stop, or ``running``."""
    net, st, config = trainer.net, trainer.state, trainer.config
    if config.early_stopping:
        best = st.history[st.best_epoch - 1]["valid_error"] if st.best_epoch else math.inf
        if row["valid_error"] < best:
            st.best_epoch, st.best_params = row["epoch"], {k: v.copy() for k, v in net.params.items()}
        elif row["epoch"] - (st.best_epoch or 0) >= config.early_stopping:
            return "early_stopping"
    if config.tol > 0:
        change = math.sqrt(sum(float(np.sum((net.params[k] - before[k]) ** 2)) for k in before))
        if change < config.tol:
            return "converged"
    return "running"


# -- random generators ---------------------------------------------------------------
# NOTE: only bit generators whose state holds no position index: numpy does not bound-check
# MT19937's ``pos`` or Philox's ``buffer_pos``, so a tampered one would read out of bounds.
_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "SFC64": np.random.SFC64}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def rng_state_to_json(rng: np.random.Generator) -> dict[str, Any]:
    """The state of ``rng``'s bit generator as JSON-able data (big ints, arrays as lists)."""
    name = type(rng.bit_generator).__name__
    if name not in _BIT_GENERATORS:
        raise ValueError(f"rng must use one of {', '.join(_BIT_GENERATORS)}. Got {name} instead.")
    state: dict[str, Any] = _plain(rng.bit_generator.state)
    return state


def rng_from_json(state: Mapping[str, Any]) -> np.random.Generator:
    """A generator in the state :func:`rng_state_to_json` returned: it draws the same stream."""
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ModelFileError(f"rng state must name one of {', '.join(_BIT_GENERATORS)} in 'bit_generator'. "
                             f"Got {name!r:.80} instead.")
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = dict(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ModelFileError(f"rng state is not a valid {name} state: {type(exc).__name__}: {exc}.") from exc
    return np.random.Generator(bit_generator)
