"""Every figure shows what it claims: extents, artists, labels, counts; never pixels by hash."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from npmlp import plots  # noqa: E402
from npmlp.gradcheck import GradCheckReport, ParamCheck, check_gradients  # noqa: E402
from npmlp.network import MLP  # noqa: E402

SPLIT_LABELS = {"train", "validation", "test"}


@pytest.fixture(autouse=True)
def close_figures():
    """Our figures bypass pyplot: none may be left registered there; close any anyway."""
    yield
    leaked = plt.get_fignums()
    plt.close("all")
    assert leaked == [], "a plot function registered a figure with pyplot"


def split_by_x0(P: np.ndarray) -> np.ndarray:
    """A classifier that splits the plane: class 1 where x0 > 0."""
    return (P[:, 0] > 0).astype(int)


def points(rng: np.random.Generator, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform([-2.0, 1.0], [4.0, 3.0], size=(n, 2))
    return X, split_by_x0(X)


def history(epochs: int = 5, *, test: bool = True) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "seconds": 0.05}
        for k, split in enumerate(("train", "valid", "test")):
            ok = test or split != "test"
            row[f"{split}_loss"] = 1.0 / e + 0.1 * k if ok else None
            row[f"{split}_error"] = 0.5 / e + 0.01 * k if ok else None
        rows.append(row)
    return rows


def png_pixels(fig) -> np.ndarray:
    return mpimg.imread(io.BytesIO(plots.render_png(fig, close=False)), format="png")


def pixel_at(fig, ax, image: np.ndarray, x: float, y: float) -> np.ndarray:
    """The RGB of the saved image at data point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return image[image.shape[0] - 1 - int(round(py)), int(round(px)), :3]


# -- matplotlib is optional ---------------------------------------------------------------
def test_missing_matplotlib_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"plots need matplotlib: pip install 'npmlp\[plot\]'"):
        plots.timing_figure({"matrix": 1.0})


# -- decision grid -------------------------------------------------------------------------
def test_decision_grid_covers_the_data_with_the_margin(rng) -> None:
    X, _ = points(rng)
    calls = []

    def predict(P):
        calls.append(P.shape)
        return split_by_x0(P)

    xx, yy, Z = plots.decision_grid(predict, X, margin=0.25, resolution=50)
    assert calls == [(2500, 2)]  # one vectorised call on the raveled grid
    assert xx.shape == yy.shape == Z.shape == (50, 50)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.25 * (hi - lo)
    grid_lo, grid_hi = np.array([xx.min(), yy.min()]), np.array([xx.max(), yy.max()])
    assert np.all(grid_lo <= lo - pad + 1e-12) and np.all(grid_hi >= hi + pad - 1e-12)
    # comparable ranges: a square extent, the shorter range grown about its centre
    np.testing.assert_allclose(np.ptp(xx), np.ptp(yy))
    np.testing.assert_allclose((grid_lo + grid_hi) / 2, (lo + hi) / 2)
    assert np.isclose(np.ptp(xx), (hi + pad - lo + pad).max())
    np.testing.assert_array_equal(Z, xx > 0)  # the reshape kept every label at its point


def test_decision_regions_of_non_square_data_fill_their_panel(rng) -> None:
    X = rng.uniform([0, 0], [3, 1], size=(50, 2))  # ranges 3 and 1: drawn to scale, no blank band
    ax = plots.plot_decision_regions(split_by_x0, X, split_by_x0(X))
    assert ax.get_aspect() == 1.0
    assert np.isclose(np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()))
    X = rng.uniform([0, 0], [100, 1], size=(50, 2))  # ranges far apart: each axis its own range
    xx, yy, _ = plots.decision_grid(split_by_x0, X)
    assert np.ptp(xx) > 50 * np.ptp(yy)
    assert plots.plot_decision_regions(split_by_x0, X, split_by_x0(X)).get_aspect() == "auto"


def test_decision_grid_of_one_point_is_not_empty() -> None:
    xx, yy, _ = plots.decision_grid(split_by_x0, [[1.0, 1.0]], resolution=3)
    assert xx.min() < 1.0 < xx.max() and yy.min() < 1.0 < yy.max()


@pytest.mark.parametrize(
    ("X", "kwargs", "message"),
    [
        (np.zeros((4, 3)), {}, r"X must have shape \(n, 2\) with n >= 1. Got \(4, 3\)"),
        (np.zeros((0, 2)), {}, r"X must have shape \(n, 2\)"),
        ([[0.0, np.nan]], {}, "finite"),
        (np.zeros((4, 2)), {"margin": -0.1}, "margin must be >= 0. Got -0.1"),
        (np.zeros((4, 2)), {"resolution": 1}, "resolution must be >= 2"),
    ],
)
def test_decision_grid_rejects_bad_input(X, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        plots.decision_grid(split_by_x0, X, **kwargs)


def test_decision_grid_checks_what_predict_returns(rng) -> None:
    with pytest.raises(ValueError, match=r"predict must return one label per grid point, shape \(16,\)"):
        plots.decision_grid(lambda P: P, points(rng)[0], resolution=4)


# -- decision regions ----------------------------------------------------------------------
def test_decision_regions_show_both_classes_and_ring_each_mistake(rng) -> None:
    X, y = points(rng)
    y[:7] = 1 - y[:7]  # seven points the classifier must get wrong
    ax = plots.plot_decision_regions(split_by_x0, X, y, title="circles")
    xx, yy, Z = plots.decision_grid(split_by_x0, X)
    assert ax.get_xlim() == pytest.approx((xx.min(), xx.max()))
    assert ax.get_ylim() == pytest.approx((yy.min(), yy.max()))
    mesh = next(c for c in ax.collections if c.__class__.__name__ == "QuadMesh")
    assert set(np.unique(mesh.get_array())) == {0, 1}
    ring = next(c for c in ax.collections if c.get_gid() == "misclassified")
    assert len(ring.get_offsets()) == 7
    np.testing.assert_allclose(np.asarray(ring.get_offsets()), X[:7])
    assert ax.get_title() == "circles: error 3.50% (7 of 200 misclassified)"
    assert ax.get_xlabel() and ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["class 0", "class 1", "misclassified (7)"]


def test_decision_regions_draw_into_the_given_axes(rng) -> None:
    fig = plots.new_figure(6, 5)
    ax = fig.subplots()
    X, y = points(rng, 30)
    assert plots.plot_decision_regions(split_by_x0, X, y, ax=ax) is ax
    assert len(fig.axes) == 1


def test_decision_regions_figure_side_by_side_with_settings(rng, tmp_path: Path) -> None:
    train, test = points(rng, 120), points(rng, 40)
    Xte, yte = test
    yte = yte.copy()
    yte[:4] = 1 - yte[:4]
    fig = plots.decision_regions_figure(split_by_x0, train, (Xte, yte), settings="hidden=4, K=10, lr=0.03")
    left, right = fig.axes
    assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    assert left.get_title().startswith("Training data: error 0.00%")
    assert right.get_title().startswith("Test data: error 10.00%")
    title = fig.get_suptitle()
    assert "hidden=4, K=10, lr=0.03" in title and "train error 0.00%" in title and "test error 10.00%" in title
    # The saved PNG has the promised size and, read back, two region colours on either side of x0 = 0.
    image = png_pixels(fig)
    assert image.shape[:2] == (round(7 * plots.DPI), round(13 * plots.DPI))
    (x0, x1), (y0, y1) = left.get_xlim(), left.get_ylim()
    y_top = y1 - 0.03 * (y1 - y0)  # inside the frame, clear of its spine
    west = pixel_at(fig, left, image, x0 + 0.05 * (x1 - x0), y_top)
    east = pixel_at(fig, left, image, x1 - 0.05 * (x1 - x0), y_top)
    assert not np.allclose(west, east, atol=0.02)


# -- learning curves -----------------------------------------------------------------------
def split_lines(ax) -> list:
    return [line for line in ax.get_lines() if line.get_label() in SPLIT_LABELS]


def test_learning_curves_one_line_per_split_per_panel() -> None:
    hist = history(6)
    fig = plots.learning_curves_figure(hist, title="run 1")
    err, loss = fig.axes
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3]
    assert err.get_xlabel() == loss.get_xlabel() == "epoch"
    assert "%" in err.get_ylabel() and "loss" in loss.get_ylabel()
    train = next(line for line in err.get_lines() if line.get_label() == "train")
    np.testing.assert_allclose(train.get_ydata(), [100 * r["train_error"] for r in hist])
    np.testing.assert_array_equal(train.get_xdata(), np.arange(1, 7))
    assert fig.get_suptitle().startswith("run 1 (6 epochs")
    assert all(ax.get_legend() is not None for ax in fig.axes)


def test_learning_curves_leave_out_a_missing_split() -> None:
    with_none = plots.learning_curves_figure(history(4, test=False))
    assert [len(ax.get_lines()) for ax in with_none.axes] == [2, 2]
    absent = [{k: v for k, v in r.items() if not k.startswith("test")} for r in history(4)]
    fig = plots.learning_curves_figure(absent)
    assert [{line.get_label() for line in ax.get_lines()} for ax in fig.axes] == [{"train", "validation"}] * 2


def test_learning_curves_mark_the_best_epoch() -> None:
    fig = plots.learning_curves_figure(history(8), best_epoch=3)
    for ax in fig.axes:
        assert len(split_lines(ax)) == 3
        (best,) = [line for line in ax.get_lines() if line.get_label() == "best epoch (3)"]
        assert list(best.get_xdata()) == [3, 3]
    assert "best epoch 3, validation error 17.67%" in fig.get_suptitle()


def test_learning_curves_need_an_epoch() -> None:
    with pytest.raises(ValueError, match="history must hold at least one epoch"):
        plots.learning_curves_figure([])


# -- gradient check ------------------------------------------------------------------------
def test_gradcheck_figure_shows_every_parameter_against_the_tolerance() -> None:
    rng = np.random.default_rng(0)
    net = MLP.initialize((2, 3, 2), rng=rng, activation="tanh", l2=1e-3)
    report = check_gradients(net, rng.standard_normal((4, 2)), rng.integers(0, 2, 4))
    fig = plots.gradcheck_figure(report)
    scatter, errors = fig.axes
    assert len(scatter.collections) == len(errors.collections) == 4
    for name, collection in zip(report.params, errors.collections, strict=True):
        assert len(collection.get_offsets()) == report.params[name].checked
    assert errors.get_yscale() == "log"
    tol_line = [line for line in errors.get_lines() if line.get_label().startswith("tolerance")]
    assert len(tol_line) == 1 and list(tol_line[0].get_ydata()) == [report.tol] * 2
    assert [t.get_text().split("\n")[0] for t in errors.get_xticklabels()] == ["W1", "b1", "W2", "b2"]
    assert any(line.get_label().startswith("y = x") for line in scatter.get_lines())
    assert fig.get_suptitle().startswith("Gradient check PASSED")


def test_gradcheck_figure_draws_exact_agreement_at_the_floor() -> None:
    exact = np.array([0.5, -0.25, 0.0])
    param = ParamCheck("W1", (3,), np.arange(3), exact, exact.copy(), skipped_kinks=2)
    wrong = ParamCheck("b1", (1,), np.arange(1), np.array([1.0]), np.array([-1.0]), skipped_kinks=0)
    fig = plots.gradcheck_figure(GradCheckReport({"W1": param, "b1": wrong}, tol=1e-6, step=1e-4))
    errors = fig.axes[1]
    y = np.asarray(errors.collections[0].get_offsets())[:, 1]
    assert np.all(y == plots.ERROR_FLOOR) and errors.get_ylim()[0] < plots.ERROR_FLOOR
    assert "3 exact" in errors.get_title()
    assert "2 at kinks" in errors.get_xticklabels()[0].get_text()
    assert fig.get_suptitle().startswith("Gradient check FAILED")


# -- timing --------------------------------------------------------------------------------
def test_timing_figure_prints_value_and_ratio_on_each_bar() -> None:
    seconds = {"loop": 5.4, "matrix": 0.77, "PyTorch": 0.385}
    fig = plots.timing_figure(seconds, reference="matrix")
    (ax,) = fig.axes
    assert [p.get_width() for p in ax.patches] == list(seconds.values())
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["5.4 s  (7.01\u00d7 matrix)", "0.77 s (reference)", "0.385 s  (0.5\u00d7 matrix)"]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(seconds)
    assert "seconds per epoch" in ax.get_xlabel() and "matrix" in ax.get_title()


@pytest.mark.parametrize(
    ("seconds", "reference", "message"),
    [
        ({"a": 1.0}, "b", "reference must be one of a. Got 'b'"),
        ({"a": 0.0}, None, "positive finite"),
        ({}, None, "positive"),
    ],
)
def test_timing_figure_rejects_bad_input(seconds, reference, message) -> None:
    with pytest.raises(ValueError, match=message):
        plots.timing_figure(seconds, reference=reference)


# -- image data ----------------------------------------------------------------------------
def test_confusion_matrix_counts_by_hand() -> None:
    # true 0 -> predicted 0, 0, 1; true 2 -> predicted 2; class 1 never occurs as truth.
    C = plots.confusion_matrix([0, 0, 0, 2], [0, 0, 1, 2])
    np.testing.assert_array_equal(C, [[2, 1, 0], [0, 0, 0], [0, 0, 1]])


def test_confusion_matrix_figure_numbers_in_cells_colours_by_row() -> None:
    y_true, y_pred = [0, 0, 0, 2, 1, 1], [0, 0, 1, 2, 1, 0]
    fig = plots.confusion_matrix_figure(y_true, y_pred, class_names=["zero", "one", "two", "three"])
    ax, colorbar = fig.axes
    counts = ["2", "1", "0", "0", "1", "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "0"]
    assert [t.get_text() for t in ax.texts] == counts
    share = ax.images[0].get_array()
    np.testing.assert_allclose(share[0], [2 / 3, 1 / 3, 0, 0])
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["zero", "one", "two", "three"]
    assert "error 33.33%" in ax.get_title() and colorbar.get_ylabel()


def fake_images(rng: np.random.Generator, n: int = 40, wrong: int = 5):
    X = rng.random((n, 12))
    y = rng.integers(0, 3, n)
    proba = np.full((n, 3), 0.05)
    proba[np.arange(n), y] = 0.9
    confidence = np.linspace(0.6, 0.9, wrong)  # the last one is the most confident mistake
    for i, p in enumerate(confidence):
        proba[i] = (1 - p) / 2
        proba[i, (y[i] + 1) % 3] = p
    return X, y, proba


@pytest.mark.parametrize(("n", "shown"), [(16, 5), (3, 3)])
def test_gallery_shows_the_most_confident_mistakes(rng, n: int, shown: int) -> None:
    X, y, proba = fake_images(rng, wrong=5)
    fig = plots.misclassified_gallery_figure(X, y, proba, (3, 4), class_names=["a", "b", "c"], n=n)
    shown_axes = [ax for ax in fig.axes if ax.images]
    assert len(shown_axes) == len(fig.axes) == shown
    assert shown_axes[0].images[0].get_array().shape == (3, 4)
    first = shown_axes[0].get_title()
    i = 4  # the most confident mistake: its true class has the least probability
    assert first == f"true: {'abc'[y[i]]} (p=0.05)\npredicted: {'abc'[(y[i] + 1) % 3]} (p=0.90)"
    assert f"The {shown} worst of 5 misclassified images" in fig.get_suptitle()


def test_gallery_orders_near_certain_mistakes_by_their_true_class(rng) -> None:
    X, y, proba = fake_images(rng, wrong=0)
    for i, p_true in ((0, 1e-3), (1, 1e-9)):  # both predicted with p that rounds to 1.00
        proba[i] = 0.0
        proba[i, y[i]], proba[i, (y[i] + 1) % 3] = p_true, 1 - p_true
    fig = plots.misclassified_gallery_figure(X, y, proba, (3, 4), class_names=["a", "b", "c"])
    titles = [ax.get_title() for ax in fig.axes]
    assert "(p=1.0e-09)" in titles[0] and "(p=1\u22121.0e-09)" in titles[0] and "(p=1.0e-03)" in titles[1]


@pytest.mark.parametrize(("p", "shown"), [(0.734, "0.73"), (3.14e-6, "3.1e-06"), (0.99996, "1\u22124.0e-05"),
                                          (1.0, "1"), (0.0, "0.0e+00")])
def test_format_probability(p: float, shown: str) -> None:
    assert plots.format_probability(p) == shown


def test_gallery_without_mistakes_says_so(rng) -> None:
    X, y, proba = fake_images(rng, wrong=0)
    fig = plots.misclassified_gallery_figure(X, y, proba, (3, 4))
    assert sum(len(ax.images) for ax in fig.axes) == 0
    assert fig.get_suptitle().startswith("No misclassified images")


def test_gallery_checks_shapes(rng) -> None:
    X, y, proba = fake_images(rng)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 16\) for images of shape \(4, 4\)"):
        plots.misclassified_gallery_figure(X, y, proba, (4, 4))
    with pytest.raises(ValueError, match=r"proba must have shape \(40, m\)"):
        plots.misclassified_gallery_figure(X, y, proba[:3], (3, 4))
    with pytest.raises(ValueError, match="n must be >= 1. Got 0"):
        plots.misclassified_gallery_figure(X, y, proba, (3, 4), n=0)


@pytest.mark.parametrize(("hidden", "n", "shown"), [(10, 64, 10), (70, 64, 64)])
def test_first_layer_weights_one_image_per_unit_centred_on_zero(rng, hidden: int, n: int, shown: int) -> None:
    W1 = rng.normal(size=(hidden, 6)) + 0.5  # mostly positive: the scale must still be symmetric
    fig = plots.first_layer_weights_figure(W1, (2, 3), n=n)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == shown
    np.testing.assert_array_equal(images[1].get_array(), W1[1].reshape(2, 3))
    vmin, vmax = images[0].get_clim()
    assert vmin == -vmax > -np.inf
    assert len(fig.axes) == shown + 1  # and the colour bar
    assert "hidden units" in fig.get_suptitle() and "2x3" in fig.get_suptitle()


def test_first_layer_weights_check_the_image_shape(rng) -> None:
    with pytest.raises(ValueError, match=r"W1 must have shape \(n, 784\)"):
        plots.first_layer_weights_figure(rng.normal(size=(4, 6)), (28, 28))


# -- saving --------------------------------------------------------------------------------
def test_save_figure_writes_a_png_atomically_and_closes_pyplot_figures(tmp_path: Path) -> None:
    path = tmp_path / "out" / "timing.png"
    plots.save_figure(plots.timing_figure({"a": 1.0, "b": 2.0}), path)
    first = path.read_bytes()
    fig = plt.figure(figsize=(4, 3), dpi=100)  # a pyplot figure is closed too
    plots.save_figure(fig, path)
    assert not plt.fignum_exists(fig.number)
    assert path.read_bytes() != first and mpimg.imread(path).shape[:2] == (300, 400)
    assert [p.name for p in path.parent.iterdir()] == ["timing.png"]  # no temporary file left


def test_captions_cover_every_figure() -> None:
    assert set(plots.CAPTIONS) == {
        "decision_regions", "learning_curves", "gradcheck", "timing",
        "confusion_matrix", "misclassified", "first_layer_weights", "best_epoch",
    }


def test_a_figure_renders_itself_for_a_notebook_without_pyplot() -> None:
    # IPython draws an object that has _repr_png_; a bare Figure has none until pyplot's
    # inline backend registers a formatter, so the notebook would print "<Figure size ...>".
    fig = plots.timing_figure({"loop": 2.0, "matrix": 1.0}, reference="matrix")
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(io.BytesIO(png)).shape[1] == round(fig.get_figwidth() * plots.DPI)
    assert fig.axes, "rendering for the notebook must not clear or close the figure"

    # the best-epoch line is promised only where it is drawn (with early stopping)
    assert "dashed" not in plots.CAPTIONS["learning_curves"] and "dashed" in plots.CAPTIONS["best_epoch"]


# -- sweeps --------------------------------------------------------------------------------
def tick_labels_overlap(ax) -> bool:
    renderer = ax.figure._get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("x", [[1e-3, 1.2e-3, 2e-3, 5e-3, 1e-2], list(np.geomspace(1e-5, 1e-1, 9)),
                               [0.00123456, 0.00234567, 0.00345678]])
def test_sweep_figure_ticks_never_overlap(x: list[float]) -> None:
    categorical = plots.Panel("hidden", [0.0, 1.0, 2.0, 3.0], [0.3, 0.2, 0.25, 0.1], "linear",
                              labels=["1024", "2048", "1024,512", "2048,1024,512"], best=3)
    numeric = plots.Panel("lr", [float(v) for v in x], list(np.linspace(0.1, 0.4, len(x))), "log", best=0)
    fig = plots.sweep_figure([categorical, numeric], "valid_error")
    fig.draw_without_rendering()
    assert not any(tick_labels_overlap(ax) for ax in fig.axes)
    assert fig.axes[1].get_xscale() == "log" and "valid_error" in fig.get_suptitle()
