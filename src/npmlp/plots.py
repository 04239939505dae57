"""Figures to read at a glance: decision regions, learning curves, gradient checks, timings,
and for image data a confusion matrix, the worst mistakes and the first layer's weights.

Computing is kept apart from drawing, as in scikit-learn's decision-boundary display:
:func:`decision_grid` predicts on a grid, :func:`plot_decision_regions` draws it. Functions
that draw one panel take ``ax=None`` and return the axes; the others return a whole figure.

matplotlib is the optional extra ``npmlp[plot]``, imported only when something is drawn.
Figures are plain :class:`matplotlib.figure.Figure` objects made without pyplot: drawing
works in any thread or worker process, needs no display and leaves no global state behind.
A notebook shows a returned figure inline, pyplot or not (it renders itself as a PNG);
:func:`save_figure` writes one to a file.
"""

from __future__ import annotations

import functools
import io
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .atomicfile import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .gradcheck import GradCheckReport

INSTALL_HINT = "plots need matplotlib: pip install 'npmlp[plot]'"

#: Resolution of saved figures: a 12-inch-wide figure is 1320 pixels wide.
DPI = 110
#: Decision regions are drawn to scale (a square extent) when the two features' ranges are
#: within this factor of each other, else each axis spans its own feature's range.
SQUARE_RATIO = 4.0
#: Relative errors of exactly 0 are drawn at this floor on a log scale.
ERROR_FLOOR = 1e-18

SPLITS = {"train": "train", "valid": "validation", "test": "test"}
SPLIT_COLORS = {"train": "#1f77b4", "valid": "#ff7f0e", "test": "#2ca02c"}

#: What each figure shows, for captions in reports (:func:`npmlp.report.training_report`).
CAPTIONS = {
    "decision_regions": "Decision regions on the training data (left) and the test data (right): the shading is "
    "the class the network predicts at each point of the plane, the dots are the examples in the colour of "
    "their true class, and the ringed dots are the ones the network gets wrong.",
    "learning_curves": "Learning curves: classification error (left, in %) and mean negative log-likelihood "
    "(right, without the penalty) after each epoch, on each split. A validation curve that turns up while the "
    "training curve keeps falling is overfitting.",
    "best_epoch": " The dashed line marks the epoch with the best validation error, the one whose model was saved.",
    "gradcheck": "Gradient check: each checked parameter entry's gradient by backprop against its finite-difference "
    "estimate (left; on the line y = x when they agree), and their relative error (right, log scale) against "
    "the tolerance (dashed line).",
    "timing": "Seconds per training epoch of each implementation, measured in the same run, with the ratio to "
    "the reference.",
    "confusion_matrix": "Confusion matrix on the test set: row i, column j counts the images of true class i that "
    "the network predicts as class j; the colour is that count's share of row i, so a dark diagonal is good.",
    "misclassified": "The test images the network gets most wrong: those whose true class it finds least likely. "
    "Each shows its true class with the probability the network gives it, and the predicted class with its "
    "probability (written 1\u2212x when it is within 1% of certainty).",
    "first_layer_weights": "Each hidden unit's incoming weights, reshaped to the image: the pattern of pixels "
    "that excites (red) or inhibits (blue) the unit.",
}

Predict = Callable[[NDArray[np.floating]], ArrayLike]
Grid = tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.integer]]


# -- matplotlib, lazily ----------------------------------------------------------------
def _mpl() -> Any:
    """The matplotlib module with the submodules used here, or an ImportError with the fix."""
    try:
        import matplotlib
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.ticker
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return matplotlib


@functools.cache
def _figure_class() -> type[Figure]:
    """:class:`matplotlib.figure.Figure` with a ``_repr_png_``, made once matplotlib is imported."""

    class NotebookFigure(_mpl().figure.Figure):  # type: ignore[misc]
        """A figure that Jupyter shows inline: without pyplot, IPython knows no way to draw a Figure."""

        def _repr_png_(self) -> bytes:
            return render_png(self, close=False)

    return NotebookFigure

def available() -> bool:
    """Whether figures can be drawn here (matplotlib, the extra ``npmlp[plot]``, is installed)."""
    try:
        _mpl()
    except ImportError:
        return False
    return True


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches at :data:`DPI`, with constrained layout."""
    _mpl()  # NOTE: checked on every call: the class below is made once
    fig: Figure = _figure_class()(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig


def render_png(fig: Figure, *, close: bool = True) -> bytes:
    """The figure as PNG bytes (closed afterwards unless ``close`` is false)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    if close:
        close_figure(fig)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write the figure to a PNG atomically (temporary file, fsync, rename), then close it."""
    return atomic_write_bytes(path, render_png(fig), parents=True)


def close_figure(fig: Figure) -> None:
    """Release a figure; only one made through pyplot needs (and gets) ``plt.close``."""
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)


def _class_colors(m: int) -> list[Any]:
    cmap = _mpl().colormaps["tab10" if m <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(m)]


def _class_names(class_names: Sequence[str] | None, m: int) -> list[str]:
    names = list(class_names or [])
    return names + [f"class {c}" for c in range(len(names), m)]


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


# -- decision regions (2D data) ----------------------------------------------------------
def _check_points(X: ArrayLike, y: ArrayLike | None = None) -> tuple[NDArray[np.floating], NDArray[np.intp]]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n, 2) with n >= 1. Got {X.shape} instead.")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must hold finite numbers only. Got NaN or inf.")
    if y is None:
        return X, np.zeros(0, np.intp)
    return X, _check_labels(y, X.shape[0], "y")


def _check_labels(y: ArrayLike, n: int | None, name: str) -> NDArray[np.intp]:
    """Integer labels >= 0 of shape (n,), any length when ``n`` is None."""
    y = np.asarray(y)
    if y.ndim != 1 or (n is not None and y.shape[0] != n):
        raise ValueError(f"{name} must have shape ({'n' if n is None else n},). Got {y.shape} instead.")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
        raise ValueError(f"{name} must hold integers >= 0. Got {y.dtype} values from {y.min()}.")
    return y.astype(np.intp, copy=False)


def decision_grid(predict: Predict, X: ArrayLike, *, margin: float = 0.25, resolution: int = 300) -> Grid:
    """Predicted classes on a regular grid covering the points ``X`` with a margin.

    Parameters
    ----------
    predict : callable
        ``predict(P)`` for ``P`` of shape (k, 2) returns k labels; called once, on the whole grid.
    X : array of shape (n, 2)
    margin : float
        Extra room on each side, as a fraction of the data's range on that axis. When the two
        ranges are within a factor :data:`SQUARE_RATIO`, the shorter grows to the longer (a
        square extent, drawn to scale).
    resolution : int
        Grid points per axis.

    Returns
    -------
    xx, yy : arrays of shape (resolution, resolution)
        Grid coordinates, as :func:`numpy.meshgrid` gives them.
    Z : array of shape (resolution, resolution)
        The predicted class at each grid point.
    """
    X, _ = _check_points(X)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0. Got {margin!r} instead.")
    if int(resolution) < 2:
        raise ValueError(f"resolution must be >= 2. Got {resolution!r} instead.")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * np.where(hi > lo, hi - lo, 1.0)  # one point: a unit range around it
    lo, hi = lo - pad, hi + pad
    span = hi - lo
    if span.max() <= SQUARE_RATIO * span.min():
        # Comparable ranges are drawn to scale (equal aspect): the shorter one grows about its
        # centre to the longer, so the shading fills the square panel with no blank band.
        centre = (lo + hi) / 2
        lo, hi = centre - span.max() / 2, centre + span.max() / 2
    xs, ys = (np.linspace(a, b, int(resolution)) for a, b in zip(lo, hi, strict=True))
    xx, yy = np.meshgrid(xs, ys)
    Z = np.asarray(predict(np.column_stack([xx.ravel(), yy.ravel()])))
    if Z.shape != (xx.size,):
        raise ValueError(f"predict must return one label per grid point, shape ({xx.size},). Got {Z.shape} instead.")
    return xx, yy, Z.reshape(xx.shape).astype(np.intp)


def plot_decision_regions(
    predict: Predict,
    X: ArrayLike,
    y: ArrayLike,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    grid: Grid | None = None,
) -> Axes:
    """Shade the predicted class over the plane, draw the points in their true class's colour,
    and ring the misclassified ones; the error rate goes in the title.

    Parameters
    ----------
    predict : callable
        ``predict(P)`` for ``P`` of shape (k, 2) returns k labels.
    X : array of shape (n, 2)
    y : array of shape (n,)
        True labels.
    ax : Axes, optional
        Where to draw; a new figure when omitted.
    title : str, optional
        Put before the error rate in the title.
    class_names : sequence of str, optional
    grid : (xx, yy, Z), optional
        A grid from :func:`decision_grid`, to share one between panels.

    Returns
    -------
    Axes
    """
    X, y = _check_points(X, y)
    xx, yy, Z = decision_grid(predict, X) if grid is None else grid
    wrong = np.asarray(predict(X)).reshape(-1) != y
    m = int(max(y.max(), Z.max()) + 1)
    colors, names = _class_colors(m), _class_names(class_names, m)
    if ax is None:
        ax = new_figure(7.5, 7).subplots()
    light = [_mpl().colors.to_rgba(c, alpha=0.22) for c in colors]
    cmap = _mpl().colors.ListedColormap(light)
    ax.pcolormesh(xx, yy, Z, cmap=cmap, vmin=-0.5, vmax=m - 0.5, shading="nearest", rasterized=True)
    if Z.min() != Z.max():  # a line along each boundary; contour warns when there is none
        ax.contour(xx, yy, Z, levels=np.arange(Z.min(), Z.max()) + 0.5, colors="0.25", linewidths=0.8)
    size = float(np.clip(400 / np.sqrt(X.shape[0]), 8, 40))
    for c in np.unique(y):
        P = X[y == c]
        ax.scatter(P[:, 0], P[:, 1], s=size, color=colors[c], edgecolors="0.15", linewidths=0.3, label=names[c])
    # A ring, not a cross, so that the point's true colour stays visible inside it.
    ring = ax.scatter(X[wrong, 0], X[wrong, 1], s=4 * size, marker="o", facecolors="none", edgecolors="black",
                      linewidths=1.1, label=f"misclassified ({int(wrong.sum())})")
    ring.set_gid("misclassified")
    ax.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), xlabel="feature x1", ylabel="feature x2")
    ax.set_aspect("equal" if np.isclose(np.ptp(xx), np.ptp(yy)) else "auto")  # see decision_grid
    ax.legend(title="points: true class, shading: predicted class", loc="upper center", bbox_to_anchor=(0.5, -0.1),
              ncols=min(len(np.unique(y)) + 1, 4), title_fontsize="medium", markerscale=1.5, frameon=False)
    error = f"error {wrong.mean():.2%} ({int(wrong.sum())} of {y.size} misclassified)"
    ax.set_title(f"{title}: {error}" if title else f"Decision regions, {error}")
    return ax


def decision_regions_figure(
    predict: Predict,
    train: tuple[ArrayLike, ArrayLike],
    test: tuple[ArrayLike, ArrayLike],
    *,
    settings: str,
    class_names: Sequence[str] | None = None,
    resolution: int = 300,
) -> Figure:
    """Decision regions on the training data and on the test data, side by side (the assignment's part 3, Q5).

    Both panels share one grid covering all points, so their regions are the same picture.

    Parameters
    ----------
    predict : callable
        ``predict(P)`` for ``P`` of shape (k, 2) returns k labels.
    train, test : (X, y)
        ``X`` of shape (n, 2), ``y`` of shape (n,).
    settings : str
        The run's settings (e.g. ``"hidden=4, K=10, epochs=200, lr=0.03"``), shown in the title.
    """
    (Xtr, ytr), (Xte, yte) = _check_points(*train), _check_points(*test)
    grid = decision_grid(predict, np.concatenate([Xtr, Xte]), resolution=resolution)
    fig = new_figure(13, 7)
    axes = fig.subplots(1, 2)
    plot_decision_regions(predict, Xtr, ytr, ax=axes[0], title="Training data", class_names=class_names, grid=grid)
    plot_decision_regions(predict, Xte, yte, ax=axes[1], title="Test data", class_names=class_names, grid=grid)
    errors = [np.mean(np.asarray(predict(X)).reshape(-1) != y) for X, y in ((Xtr, ytr), (Xte, yte))]
    fig.suptitle(f"{_wrap(settings)}\ntrain error {errors[0]:.2%}, test error {errors[1]:.2%}", fontsize="large")
    return fig


def decision_regions_grid_figure(
    panels: Sequence[tuple[str, Predict]],
    data: tuple[ArrayLike, ArrayLike],
    *,
    ncols: int,
    title: str,
    resolution: int = 150,
) -> Figure:
    """Decision regions of several classifiers on the same data, one small panel each.

    Parameters
    ----------
    panels : sequence of (name, predict)
        One panel per classifier, filled row by row.
    data : (X, y)
        ``X`` of shape (n, 2), ``y`` of shape (n,), drawn in every panel.
    ncols : int
        Panels per row.
    title : str
    """
    X, y = _check_points(*data)
    nrows = -(-len(panels) // ncols)
    fig = new_figure(3.6 * ncols, 3.9 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).reshape(-1)
    for ax, (name, predict) in zip(axes, panels, strict=False):  # the last row may have spare axes
        plot_decision_regions(predict, X, y, ax=ax, grid=decision_grid(predict, X, resolution=resolution))
        wrong = np.mean(np.asarray(predict(X)).reshape(-1) != y)
        ax.set_title(f"{name}\nerror {wrong:.1%}", fontsize="medium")
        ax.get_legend().remove()
        ax.set(xlabel="", ylabel="", xticks=[], yticks=[])
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(_wrap(title, width=int(22 * ncols)), fontsize="large")
    return fig


# -- learning curves ---------------------------------------------------------------------
def _series(history: Sequence[Mapping[str, Any]], key: str) -> NDArray[np.float64]:
    """``history[i][key]`` for every epoch, NaN where missing or None."""
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in history], dtype=np.float64)


def learning_curves_figure(
    history: Sequence[Mapping[str, Any]], *, best_epoch: int | None = None, title: str | None = None
) -> Figure:
    """Classification error (%) and mean loss per epoch, for each split present in ``history``.

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch: ``epoch`` (1-based), ``{train,valid,test}_{loss,error}`` (errors
        are fractions; a split may be missing or None), ``seconds``.
    best_epoch : int, optional
        Marked with a dashed vertical line on both panels.
    title : str, optional

    Returns
    -------
    Figure with two axes: error (left) and loss (right).
    """
    if len(history) == 0:
        raise ValueError("history must hold at least one epoch. Got an empty history.")
    epochs = np.array([r.get("epoch", i + 1) for i, r in enumerate(history)], dtype=np.float64)
    fig = new_figure(13, 5.5)
    ax_err, ax_loss = fig.subplots(1, 2, sharex=True)
    marker = "o" if len(history) <= 40 else None
    for split, label in SPLITS.items():
        for ax, key, scale in ((ax_err, f"{split}_error", 100.0), (ax_loss, f"{split}_loss", 1.0)):
            values = _series(history, key)
            if np.isfinite(values).any():
                ax.plot(epochs, scale * values, marker=marker, ms=3, lw=1.6, color=SPLIT_COLORS[split], label=label)
    note = ""
    if best_epoch is not None:
        for ax in (ax_err, ax_loss):
            ax.axvline(best_epoch, color="0.35", ls="--", lw=1, label=f"best epoch ({best_epoch})")
        best = [r for r in history if r.get("epoch") == best_epoch and r.get("valid_error") is not None]
        note = f"; best epoch {best_epoch}" + (f", validation error {best[0]['valid_error']:.2%}" if best else "")
    ax_err.set(xlabel="epoch", ylabel="classification error (%)", title="Classification error")
    ax_loss.set(xlabel="epoch", ylabel="mean loss (negative log-likelihood, nats)", title="Mean loss")
    for ax in (ax_err, ax_loss):
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(_mpl().ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title or 'Learning curves'} ({len(history)} epochs{note})", fontsize="large")
    return fig


# -- gradient check ----------------------------------------------------------------------
def gradcheck_figure(report: GradCheckReport) -> Figure:
    """A gradient check at a glance: backprop against finite differences for every checked
    entry (left, on the line y = x when they agree), and each entry's relative error on a log
    scale against the tolerance (right).

    Exact agreement (relative error 0) is drawn at :data:`ERROR_FLOOR`.
    """
    fig = new_figure(13, 5.8)
    ax_xy, ax_err = fig.subplots(1, 2)
    colors = _class_colors(max(len(report.params), 1))
    values, clipped = [], 0
    for i, (name, p) in enumerate(report.params.items()):
        a, e = np.asarray(p.analytic, np.float64), np.asarray(p.estimate, np.float64)
        values += [a, e]
        ax_xy.scatter(a, e, s=22, color=colors[i], alpha=0.8, label=f"{name} ({p.checked} entries)")
        err = np.asarray(p.rel_error, np.float64)
        clipped += int(np.sum(err < ERROR_FLOOR))
        spread = ((np.arange(err.size) * 0.618034) % 1 - 0.5) * 0.5  # deterministic jitter
        ax_err.scatter(i + spread, np.maximum(err, ERROR_FLOOR), s=16, color=colors[i], alpha=0.8)
    flat = np.concatenate(values) if values else np.zeros(1)
    top = float(np.max(np.abs(flat))) or 1.0
    nonzero = np.abs(flat[flat != 0])
    # NOTE: symlog spans the decades of the entries, large and small, and keeps their signs;
    # entries below linthresh share a linear band around 0. The axes end on a labelled decade.
    decade = np.ceil(np.log10(top))
    linthresh = 10 ** max(np.floor(np.log10(nonzero.min())) if nonzero.size else decade - 1, decade - 5)
    ax_xy.plot([-(10**decade), 10**decade], [-(10**decade), 10**decade], color="0.3", lw=1, ls="--",
               label="y = x (perfect agreement)")
    ticks = 10.0 ** np.arange(np.log10(linthresh), decade + 1)
    ticks = np.concatenate([-ticks[::-1], [0.0], ticks])
    ax_xy.set_xscale("symlog", linthresh=linthresh)
    ax_xy.set_yscale("symlog", linthresh=linthresh)
    ax_xy.set(xlim=(-(10**decade), 10**decade), ylim=(-(10**decade), 10**decade))
    for axis in (ax_xy.xaxis, ax_xy.yaxis):
        axis.set_major_locator(_mpl().ticker.FixedLocator(ticks))
        axis.set_minor_locator(_mpl().ticker.NullLocator())
    ax_xy.set(xlabel="analytic gradient (backprop)", ylabel="finite-difference estimate",
              title=f"Gradient entries (symmetric log scale, linear within \u00b1{linthresh:.0e})")
    ax_xy.legend(fontsize="small")
    ax_err.axhline(report.tol, color="crimson", ls="--", lw=1.2, label=f"tolerance {report.tol:g}")
    ax_err.set_yscale("log")
    ax_err.set_ylim(ERROR_FLOOR / 10, max(report.tol, report.max_rel_error, 1e-6) * 100)
    names = [f"{n}\n{p.checked} checked" + (f", {p.skipped_kinks} at kinks" if p.skipped_kinks else "")
             for n, p in report.params.items()]
    ax_err.set_xticks(range(len(names)), names)
    ax_err.set_xlim(-0.6, len(names) - 0.4)
    floor = f" ({clipped} exact, drawn at {ERROR_FLOOR:g})" if clipped else ""
    ax_err.set(ylabel="relative error |a - e| / max(|a|, |e|)", title=f"Relative error per entry{floor}")
    ax_err.grid(axis="y", alpha=0.3)
    ax_err.legend(loc="upper right")
    verdict = "PASSED" if report.max_rel_error < report.tol else "FAILED"
    sign = "<" if verdict == "PASSED" else "\u2265"
    fig.suptitle(f"Gradient check {verdict}: max relative error {report.max_rel_error:.2e} {sign} "
                 f"tolerance {report.tol:g}", fontsize="large")
    return fig


# -- timings -----------------------------------------------------------------------------
def timing_figure(seconds: Mapping[str, float], *, title: str | None = None, reference: str | None = None) -> Figure:
    """Horizontal bars of seconds per epoch, each labelled with its value and its ratio to
    ``reference`` (e.g. ``{"loop": 5.4, "matrix": 0.77}`` with ``reference="matrix"``).
    """
    names = list(seconds)
    values = np.array([float(seconds[k]) for k in names])
    if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f"seconds must map names to positive finite times. Got {dict(seconds)} instead.")
    if reference is not None and reference not in seconds:
        raise ValueError(f"reference must be one of {', '.join(names)}. Got {reference!r} instead.")
    fig = new_figure(11, 1.6 + 0.6 * len(names))
    ax = fig.subplots()
    colors = ["0.35" if k == reference else "#1f77b4" for k in names]
    ax.barh(range(len(names)), values, color=colors, height=0.6)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # the first entry on top
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        label = f"{v:.3g} s"
        if reference is not None:
            label += " (reference)" if name == reference else f"  ({v / seconds[reference]:.3g}\u00d7 {reference})"
        ax.text(v + values.max() * 0.01, i, label, va="center")
    ax.set_xlim(0, values.max() * 1.4)
    ax.set_xlabel("seconds per epoch (shorter is faster)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or ("Time per epoch" + (f", ratios to {reference}" if reference else "")))
    return fig


# -- image data --------------------------------------------------------------------------
def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, m: int | None = None) -> NDArray[np.intp]:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as ``j``, shape (m, m)."""
    y_true = _check_labels(y_true, None, "y_true")
    y_pred = _check_labels(y_pred, y_true.size, "y_pred")
    m = int(max(m or 0, y_true.max(initial=-1) + 1, y_pred.max(initial=-1) + 1))
    return np.bincount(m * y_true + y_pred, minlength=m * m).reshape(m, m)


def confusion_matrix_figure(y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str] | None = None) -> Figure:
    """The confusion matrix: counts in the cells, colours by the share of each true class (row).

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n,)
    class_names : sequence of str, optional
    """
    C = confusion_matrix(y_true, y_pred, len(class_names or ()))
    m, n = C.shape[0], int(C.sum())
    share = C / np.maximum(C.sum(axis=1, keepdims=True), 1)
    fig = new_figure(10.5, 9)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if m <= 30:
        size = "medium" if m <= 10 else "x-small"
        for i, j in np.ndindex(C.shape):
            ax.text(j, i, f"{C[i, j]}", ha="center", va="center", fontsize=size,
                    color="white" if share[i, j] > 0.5 else ("black" if C[i, j] else "0.6"))
    names = _class_names(class_names, m)
    slanted = max(map(len, names)) > 3  # long names would overlap side by side
    ax.set_xticks(range(m), names, rotation=45 if slanted else 0, ha="right" if slanted else "center")
    ax.set_yticks(range(m), names)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class (each row sums to 1)")
    error = 1 - np.trace(C) / max(n, 1)
    ax.set_title(f"Confusion matrix on {n:,} examples, error {error:.2%}\n"
                 "numbers: counts; diagonal: correct; colour: share of the row's true class")
    return fig


def _check_images(X: ArrayLike, image_shape: Sequence[int], name: str) -> NDArray[np.floating]:
    X = np.asarray(X)
    d = int(np.prod(image_shape))
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(
            f"{name} must have shape (n, {d}) for images of shape {tuple(image_shape)}. Got {X.shape} instead."
        )
    return X


def _grid_shape(k: int, max_cols: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid of ``k >= 1`` cells, at most ``max_cols`` wide."""
    cols = max(1, min(k, max_cols, int(np.ceil(np.sqrt(k)))))
    return -(-k // cols), cols


def _image_grid(fig: Figure, k: int, max_cols: int) -> list[Axes]:
    """``k`` axes without ticks on a grid of at most ``max_cols`` columns; spare cells removed."""
    axes = list(np.atleast_1d(fig.subplots(*_grid_shape(k, max_cols))).ravel())
    for ax in axes[k:]:
        ax.remove()
    for ax in axes[:k]:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes[:k]


def misclassified_gallery_figure(
    X: ArrayLike,
    y_true: ArrayLike,
    proba: ArrayLike,
    image_shape: Sequence[int],
    class_names: Sequence[str] | None = None,
    n: int = 16,
) -> Figure:
    """The ``n`` misclassified images the network was most confident about.

    Parameters
    ----------
    X : array of shape (N, prod(image_shape))
        Images, one per row.
    y_true : array of shape (N,)
    proba : array of shape (N, m)
        Predicted class probabilities.
    image_shape : (height, width)
    class_names : sequence of str, optional
    n : int
        At most this many images.
    """
    X = _check_images(X, image_shape, "X")
    y_true = _check_labels(y_true, X.shape[0], "y_true")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1. Got {n!r} instead.")
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[0] != X.shape[0]:
        raise ValueError(f"proba must have shape ({X.shape[0]}, m). Got {proba.shape} instead.")
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    # The true class's probability orders the mistakes even where the predicted one rounds to 1.
    worst = wrong[np.argsort(proba[wrong, y_true[wrong]], kind="stable")][: int(n)]
    names = _class_names(class_names, max(proba.shape[1], int(y_true.max(initial=0)) + 1))
    k = worst.size
    rows, cols = _grid_shape(max(k, 1), 6)
    fig = new_figure(max(2.7 * cols, 6), 0.8 + 3.0 * rows)
    head = (f"The {k} worst of {wrong.size} misclassified images (of {X.shape[0]:,}), least likely true class first"
            if k else f"No misclassified images among {X.shape[0]:,}")
    fig.suptitle(head, fontsize="large")
    if k == 0:
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "every image is classified correctly", ha="center", va="center")
        return fig
    lo, hi = float(X.min()), float(X.max())
    for ax, i in zip(_image_grid(fig, k, 6), worst, strict=True):
        ax.imshow(X[i].reshape(image_shape), cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(f"true: {names[y_true[i]]} (p={format_probability(proba[i, y_true[i]])})\n"
                     f"predicted: {names[pred[i]]} (p={format_probability(proba[i, pred[i]])})", fontsize="medium")
    return fig


def format_probability(p: float) -> str:
    """A probability short and telling: ``0.73``, ``3.1e-06``, and ``1\u22124.2e-05`` near certainty."""
    p = float(p)
    if p >= 0.99:
        return "1" if p >= 1 else f"1\u2212{1 - p:.1e}"
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1e}"


def first_layer_weights_figure(W1: ArrayLike, image_shape: Sequence[int], n: int = 64) -> Figure:
    """Each hidden unit's incoming weights ``W1[j]`` shown as an image, on one colour scale
    centred on 0 (red: the pixel excites the unit, blue: it inhibits it).

    Parameters
    ----------
    W1 : array of shape (hidden, prod(image_shape))
        The first weight matrix, ``(fan_out, fan_in)``.
    image_shape : (height, width)
    n : int
        Show the first ``n`` units at most.
    """
    W1 = _check_images(W1, image_shape, "W1")
    k = min(int(n), W1.shape[0])
    if k < 1:
        raise ValueError(f"n must be >= 1 and W1 must have a row. Got n={n}, W1 {W1.shape}.")
    # NOTE: a few large weights would wash every image out; the colour scale stops at the
    # 99.5th percentile of |W1| and the colour bar shows where it clips.
    magnitude = np.abs(W1[:k])
    scale = float(np.quantile(magnitude, 0.995)) or float(magnitude.max()) or 1.0
    clipped = bool(magnitude.max() > scale)
    rows, cols = _grid_shape(k, 10)
    fig = new_figure(max(1.25 * cols + 1.5, 7), 1.5 + 1.3 * rows)
    axes = _image_grid(fig, k, 10)
    for j, ax in enumerate(axes):
        im = ax.imshow(W1[j].reshape(image_shape), cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(f"unit {j + 1}", fontsize="small")
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight", extend="both" if clipped else "neither")
    shown = f"the first {k} of {W1.shape[0]}" if k < W1.shape[0] else f"all {k}"
    shape = "x".join(map(str, image_shape))
    fig.suptitle(f"Incoming weights of {shown} hidden units, each shown as a {shape} image\n"
                 "red: positive weight (the pixel excites the unit), blue: negative (it inhibits it), white: 0",
                 fontsize="large")
    return fig


# -- sweeps ------------------------------------------------------------------------------
@dataclass
class Panel:
    """One panel of ``sweep.png``: the metric of each ranked trial against one setting."""

    name: str
    x: list[float]
    y: list[float]
    scale: str  # "linear", "log" or "symlog"
    labels: list[str] | None = None  # tick labels of a categorical setting (x are their positions)
    best: int | None = None  # index of the best trial in x and y


def _few_and_apart(panel: Panel, most: int = 5, gap: float = 0.18) -> bool:
    """Whether the values tried can label the axis themselves: at most ``most`` of them, each at
    least ``gap`` of the axis away from the next (on the panel's scale), so labels cannot collide."""
    distinct = np.unique(np.asarray(panel.x, np.float64))
    if distinct.size > most or distinct.size < 2:
        return distinct.size == 1
    where = np.log10(distinct) if panel.scale == "log" else distinct
    return bool(np.min(np.diff(where)) >= gap * (where[-1] - where[0]))


def sweep_figure(panels: Sequence[Panel], metric: str) -> Figure:
    """The metric against each varied setting, one panel each, the best trial ringed."""
    ticker = _mpl().ticker
    fig = new_figure(4.4 * max(len(panels), 1), 3.8)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        ax.scatter(panel.x, panel.y, s=22, alpha=0.75)
        if panel.best is not None:
            ax.scatter([panel.x[panel.best]], [panel.y[panel.best]], s=110, facecolors="none", edgecolors="red",
                       label="best")
            ax.legend(loc="best", fontsize="small")
        if panel.scale == "symlog":
            positive = [v for v in panel.x if v > 0]
            ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
        else:
            ax.set_xscale(panel.scale)
        # NOTE: a few ticks, labelled compactly, so that neighbours never overlap in a narrow panel:
        # the values tried when they are few, else a locator's round numbers; no minor labels.
        if panel.labels is not None or _few_and_apart(panel):
            distinct = sorted(set(panel.x))
            labels = panel.labels or [f"{v:.3g}" for v in distinct]
            ax.set_xticks(range(len(labels)) if panel.labels is not None else distinct, labels)
            ax.xaxis.set_minor_locator(ticker.NullLocator())
            if sum(map(len, labels)) > 24:
                ax.tick_params(axis="x", labelrotation=30)
        elif panel.scale == "log":
            ax.xaxis.set_major_locator(ticker.LogLocator(numticks=5))
            ax.xaxis.set_major_formatter(ticker.LogFormatterSciNotation())
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        elif panel.scale == "linear":
            ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
        ax.set_xlabel(panel.name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if not panels:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "nothing varied", ha="center", va="center")
    fig.suptitle(f"{metric} of each trial against each varied setting (lower is better)")
    return fig
