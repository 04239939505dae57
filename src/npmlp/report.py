"""A self-contained HTML report of a run: settings, results, figures, history, notes.

The page needs nothing but itself: images are embedded as base64 ``data:`` URIs, the
stylesheet is inline, there is no script, no web font and no external link, so the file
can be mailed, archived or opened offline. Every piece of text goes through
:func:`html.escape`.

A report is a list of :class:`Section`, each a heading and blocks (:class:`Paragraph`,
:class:`Preformatted`, :class:`Table`, :class:`Image`, :class:`Headline`, :class:`Details`);
:func:`write_report` writes it. :func:`run_report` writes the one of ``npmlp train``: the
results first, then the pictures, the test set class by class, the data, the settings that
apply and the history, folded. It shows counts and summaries of the data, never its rows.
"""

from __future__ import annotations

import base64
import html
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .atomicfile import atomic_write_bytes

if TYPE_CHECKING:
    from .datasets import Dataset
    from .training import TrainConfig, TrainResult

#: History keys in column order, with the header shown for each.
HISTORY_COLUMNS = {
    "epoch": "epoch",
    "train_loss": "train loss",
    "train_error": "train error (%)",
    "valid_loss": "valid loss",
    "valid_error": "valid error (%)",
    "test_loss": "test loss",
    "test_error": "test error (%)",
    "seconds": "seconds",
}

#: Image types by file suffix; bytes are recognised by their magic number instead.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}

MISSING = "\u2014"  # an em dash for a value that is None or NaN

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       max-width: 1200px; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2rem; }
.subtitle { color: #555; margin-top: 0; }
nav ul { display: flex; flex-wrap: wrap; gap: .2rem 1.2rem; list-style: none; padding: 0; margin: .3rem 0; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .92rem; }
caption { caption-side: top; text-align: left; color: #444; padding-bottom: .3rem; }
th, td { border: 1px solid #d4d4d4; padding: .25rem .6rem; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
.scroll { max-height: 32rem; overflow: auto; display: inline-block; }
.scroll thead th { position: sticky; top: 0; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { color: #333; margin-top: .4rem; max-width: 60rem; }
pre { background: #f6f6f6; border: 1px solid #e2e2e2; padding: .7rem; overflow-x: auto;
      font-size: .85rem; line-height: 1.3; }
footer { color: #777; font-size: .85rem; margin-top: 3rem; }
.headline { background: #f3f7fb; border: 1px solid #c9d9ea; border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0; }
.headline .big { font-size: 1.35rem; font-weight: 600; margin: .2rem 0 .4rem; }
.headline ul { margin: .2rem 0; padding-left: 1.2rem; }
.warning { color: #8a4b00; }
details { margin: .6rem 0 1rem; }
summary { cursor: pointer; color: #224; }
""".strip()


# -- blocks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str

    def to_html(self) -> str:
        return f"<p>{_esc(self.text)}</p>"


@dataclass(frozen=True)
class Preformatted:
    """Text shown as it is, in a monospaced font (e.g. a gradient-check printout)."""

    text: str
    caption: str | None = None

    def to_html(self) -> str:
        caption = f"<p>{_esc(self.caption)}</p>\n" if self.caption else ""
        return f"{caption}<pre>{_esc(self.text)}</pre>"


@dataclass(frozen=True)
class Table:
    """A table of ``columns`` headers and ``rows`` of cells; numbers are right-aligned.

    Cells are shown with :func:`format_cell` unless they are already strings.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str | None = None
    scroll: bool = False  # long tables scroll inside a box with a sticky header

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"every row of the table needs {len(self.columns)} cells. Row {i} has {len(row)} instead."
                )

    def to_html(self) -> str:
        caption = f"<caption>{_esc(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{_esc(c)}</th>" for c in self.columns)
        body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in self.rows)
        table = f"<table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"
        return f'<div class="scroll">{table}</div>' if self.scroll else table


@dataclass(frozen=True)
class Image:
    """An image embedded as a ``data:`` URI, with a caption saying what it shows.

    ``source`` is a PNG/JPEG/GIF file path or the image's bytes.
    """

    source: str | os.PathLike[str] | bytes
    caption: str

    def to_html(self) -> str:
        data, mime = _image_bytes(self.source)
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        return (
            f'<figure><img src="{uri}" alt="{_esc(self.caption)}">'
            f"<figcaption>{_esc(self.caption)}</figcaption></figure>"
        )


@dataclass(frozen=True)
class Headline:
    """The first thing on the page: one line in large type and a few short facts under it.

    ``warnings`` are facts that make a figure doubtful (a busy machine, no better than chance),
    shown in their own colour.
    """

    text: str
    facts: Sequence[str] = ()
    warnings: Sequence[str] = ()

    def to_html(self) -> str:
        items = [f"<li>{_esc(f)}</li>" for f in self.facts]
        items += [f'<li class="warning">{_esc(w)}</li>' for w in self.warnings]
        listing = f"<ul>{''.join(items)}</ul>" if items else ""
        return f'<div class="headline" id="headline"><p class="big">{_esc(self.text)}</p>{listing}</div>'


@dataclass(frozen=True)
class Details:
    """Blocks folded under a one-line summary (``<details>``): long printouts, whole histories."""

    summary: str
    blocks: Sequence[Block]

    def to_html(self) -> str:
        inner = "\n".join(b.to_html() for b in self.blocks)
        return f"<details><summary>{_esc(self.summary)}</summary>\n{inner}\n</details>"


class Label(str):
    """A table cell that is a name, shown as text even when it looks like a number (class ``3``)."""


@dataclass(frozen=True)
class Shaded:
    """A table cell shown as ``text`` on a blue background of strength ``share`` in [0, 1] (a heat map)."""

    text: str
    share: float

    def to_html(self) -> str:
        alpha = min(max(float(self.share), 0.0), 1.0)
        color = "#fff" if alpha > 0.55 else "#1b1b1b"
        style = f"background: rgba(31, 96, 180, {alpha:.2f}); color: {color}"
        return f'<td class="num" style="{style}">{_esc(self.text)}</td>'


Block = Paragraph | Preformatted | Table | Image | Headline | Details


@dataclass(frozen=True)
class Section:
    """A heading and the blocks under it, in order."""

    heading: str
    blocks: Sequence[Block] = field(default_factory=tuple)


# -- writing -----------------------------------------------------------------------------
def render_report(*, title: str, sections: Sequence[Section], subtitle: str | None = None) -> str:
    """The whole HTML page as a string (see :func:`write_report`)."""
    ids = _section_ids(sections)
    nav = "".join(f'<li><a href="#{i}">{_esc(s.heading)}</a></li>' for i, s in zip(ids, sections, strict=True))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>\n{STYLE}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="subtitle">{_esc(subtitle)}</p>')
    if len(sections) > 1:
        parts.append(f"<nav><ul>{nav}</ul></nav>")
    for sid, section in zip(ids, sections, strict=True):
        parts.append(f'<section id="{sid}">\n<h2>{_esc(section.heading)}</h2>')
        parts.extend(block.to_html() for block in section.blocks)
        parts.append("</section>")
    parts += [f"<footer>Written by npmlp {_esc(_version())}.</footer>", "</body>", "</html>", ""]
    return "\n".join(parts)


def write_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    sections: Sequence[Section],
    subtitle: str | None = None,
) -> Path:
    """Write a self-contained HTML report atomically and return its path.

    Parameters
    ----------
    path : path-like
        The ``.html`` file to write; missing parent directories are created.
    title : str
        The page title and top heading.
    sections : sequence of Section
        The content, in order; a table of contents links them when there are several.
    subtitle : str, optional
        A line under the title (e.g. the command that produced the run).
    """
    page = render_report(title=title, sections=sections, subtitle=subtitle)
    return atomic_write_bytes(path, page.encode("utf-8"), parents=True)


def training_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    settings: Mapping[str, Any],
    final: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    images: Mapping[str, str | os.PathLike[str] | bytes],
    notes: Iterable[str] = (),
) -> Path:
    """Write the report of a training run: settings, final results, figures, notes, history.

    Parameters
    ----------
    path : path-like
        The ``report.html`` to write.
    title : str
    settings : mapping
        The run's settings (``{"hidden": 10, "lr": 0.03, ...}``), shown as a table.
    final : mapping
        Final results (``{"train_error": 0.01, ...}``); ``*_error`` values are fractions.
    history : sequence of mappings
        One dict per epoch, as training writes it (see :func:`history_table`).
    images : mapping of caption to path (or PNG bytes)
        The figures, each with a caption saying what it shows (see :data:`npmlp.plots.CAPTIONS`).
    notes : iterable of str
        Preformatted text blocks, e.g. a gradient-check printout.
    """
    sections = [
        Section("Settings", [settings_table(settings)]),
        Section("Final results", [results_table(final)]),
    ]
    if images:
        sections.append(Section("Figures", [Image(p, caption) for caption, p in images.items()]))
    notes = list(notes)
    if notes:
        sections.append(Section("Notes", [Preformatted(n) for n in notes]))
    sections.append(Section("History", [Details(f"{len(history)} epochs, one row each", [history_table(history)])]))
    return write_report(path, title=title, sections=sections)


# -- ready-made tables -------------------------------------------------------------------
def settings_table(settings: Mapping[str, Any], *, caption: str | None = None) -> Table:
    """A two-column table ``setting | value``; lists as ``256,128``, None as ``off``, dicts as JSON."""
    rows = [(str(k), _json(v) if isinstance(v, Mapping) else show_setting(v)) for k, v in settings.items()]
    return Table(["setting", "value"], rows, caption=caption)


def results_table(final: Mapping[str, Any], *, caption: str | None = None) -> Table:
    """``metric | value``; ``*_error`` fractions are shown in percent."""
    rows = [(_metric_name(k), format_cell(v, percent=k.endswith("error"))) for k, v in final.items()]
    return Table(["metric", "value"], rows, caption=caption)


def history_table(history: Sequence[Mapping[str, Any]], *, caption: str | None = None) -> Table:
    """One row per epoch; a column that is missing in every epoch (e.g. no test set) is left out.

    Errors (fractions) are shown in percent with 2 decimals, losses with 4 significant
    digits, seconds with 3.
    """
    keys = [k for k in HISTORY_COLUMNS if any(_present(row.get(k)) for row in history)]
    rows = [
        [format_cell(row.get(k), percent=k.endswith("error"), digits=3 if k == "seconds" else 4) for k in keys]
        for row in history
    ]
    caption = caption or f"{len(history)} epochs; losses are the mean negative log-likelihood without penalty."
    return Table([HISTORY_COLUMNS[k] for k in keys], rows, caption=caption, scroll=len(history) > 20)


def format_cell(value: Any, *, percent: bool = False, digits: int = 4) -> str:
    """How a value is shown: integers as they are, fractions in percent (2 decimals) when
    ``percent``, other reals with ``digits`` significant digits, None/NaN as an em dash."""
    if not _present(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{100 * float(value):.2f}" if percent else f"{float(value):.{digits}g}"


# -- the report of a training run ---------------------------------------------------------
#: Why training stopped, in words.
STOPPED = {"max_epochs": "ran every epoch of --epochs", "converged": "the parameters moved less than --tol",
           "early_stopping": "no better validation error for --early-stopping epochs", "diverged": "diverged",
           "interrupted": "interrupted"}


def settings_line(config: TrainConfig) -> str:
    """The settings that matter at a glance, for figure titles."""
    c = config
    pen = f"l1={show_setting(c.l1)} l2={show_setting(c.l2)}" if np.any(c.l1) or np.any(c.l2) else "no penalty"
    drop = "".join(f", {k}={show_setting(getattr(c, k))}"
                   for k in ("input_dropout", "dropout") if np.any(getattr(c, k)))
    return (f"hidden={','.join(map(str, c.hidden))} {c.activation}, {c.optimizer} lr={c.lr:g} ({c.lr_schedule}), "
            f"K={c.batch_size}, {pen}{drop}, {c.dtype}")


def run_report(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig) -> list[Path]:
    """Draw the run's figures into ``out`` (when matplotlib is installed) and write ``out/report.html``.

    The page opens on the results; without matplotlib it is written all the same, with a line
    where the pictures would be. Returns the files written: the figures, then the report.
    """
    from . import plots

    figures = run_figures(out, result, dataset, config) if plots.available() else {}
    pictures: list[Block] = [Image(path, caption) for caption, path in figures.items()] or [
        Paragraph(f"Pictures skipped: {plots.INSTALL_HINT}, then train again.")]
    split = _headline_split(dataset)
    X, y = dataset.splits()[split]
    sections = [
        Section("Results", [run_headline(result, dataset, config), split_table(result, dataset)]),
        Section("Pictures", pictures),
        Section(f"The {_SPLIT_NAMES[split]} set, class by class", class_tables(y, result.net.predict(X),
                                                                              dataset, split)),
        Section("Data", data_summary(dataset)),
        Section("Settings", [applied_settings(config)]),
        Section("History", [Details(f"{result.epochs_run} epochs, one row each (also in history.csv)",
                                    [history_table(result.history)])]),
    ]
    report = write_report(out / "report.html", title=f"npmlp train on {dataset.name}", sections=sections,
                          subtitle=dataset.source or None)
    return [*figures.values(), report]


def run_figures(out: Path, result: TrainResult, dataset: Dataset, config: TrainConfig) -> dict[str, Path]:
    """Draw the run's figures into ``out``; returns caption -> PNG path. ImportError without matplotlib."""
    from . import plots
    from .functions import softmax

    figures: dict[str, Path] = {}
    title = f"{dataset.name}: {settings_line(config)}"
    fig = plots.learning_curves_figure(result.history, best_epoch=result.best_epoch, title=title)
    caption = plots.CAPTIONS["learning_curves"] + (plots.CAPTIONS["best_epoch"] if result.best_epoch else "")
    figures[caption] = plots.save_figure(fig, out / "curves.png")
    net, splits = result.net, dataset.splits()
    if dataset.n_features == 2:
        fig = plots.decision_regions_figure(net.predict, splits["train"], splits["test"], settings=title,
                                            class_names=dataset.class_names)
        figures[plots.CAPTIONS["decision_regions"]] = plots.save_figure(fig, out / "decision_regions.png")
    if dataset.image_shape is not None:
        X, y = splits["test"]
        P = softmax(net.logits(X).astype(np.float64))  # NOTE: float32 rounds a confident mistake's p to 1
        fig = plots.misclassified_gallery_figure(X, y, P, dataset.image_shape, class_names=dataset.class_names)
        figures[plots.CAPTIONS["misclassified"]] = plots.save_figure(fig, out / "misclassified.png")
        fig = plots.first_layer_weights_figure(net.params["W1"], dataset.image_shape)
        figures[plots.CAPTIONS["first_layer_weights"]] = plots.save_figure(fig, out / "first_layer_weights.png")
    return figures


_SPLIT_NAMES = {"train": "training", "valid": "validation", "test": "test"}


def _headline_split(dataset: Dataset) -> str:
    """The split a run is judged on: test when there is one, else validation, else training."""
    sizes = {name: X.shape[0] for name, (X, _) in dataset.splits().items()}
    return next((s for s in ("test", "valid") if sizes[s]), "train")


def run_headline(result: TrainResult, dataset: Dataset, config: TrainConfig) -> Headline:
    """The error on the split that judges the run, how long it took, and what makes it doubtful."""
    split = _headline_split(dataset)
    final = result.final()
    error, (_, y) = final[f"{split}_error"], dataset.splits()[split]
    seconds = sum(float(r.get("seconds") or 0) for r in result.history)
    facts = [", ".join(f"{_SPLIT_NAMES[s]} error {format_percent(final[f'{s}_error'])}"
                       for s in ("train", "valid", "test") if s != split and final[f"{s}_error"] is not None),
             f"{result.epochs_run} epochs in {format_seconds(seconds)} of training; stopped because it "
             f"{STOPPED.get(result.stopped_because, result.stopped_because)}",
             f"network {'-'.join(map(str, result.net.sizes))} {config.activation}; "
             + settings_line(config).split(", ", 1)[1]]
    if result.best_epoch:
        facts.append(f"the model saved is epoch {result.best_epoch}'s, the best on the validation set")
    warnings = [result.message] if result.message else []
    baseline = 1 - np.bincount(y, minlength=dataset.n_classes).max() / max(y.size, 1)
    if error is not None and error >= baseline:
        warnings.append(f"no better than always answering the most frequent class (error {format_percent(baseline)})")
    text = f"{_SPLIT_NAMES[split].capitalize()} error {format_percent(error)} on {y.size:,} examples"
    return Headline(text, [f for f in facts if f], warnings)


def split_table(result: TrainResult, dataset: Dataset) -> Table:
    """``split | examples | error (%) | loss`` for the epoch whose model was saved."""
    history = result.history
    row = history[result.best_epoch - 1] if result.best_epoch else (history[-1] if history else {})
    rows = [[_SPLIT_NAMES[s], f"{X.shape[0]:,}", format_cell(row.get(f"{s}_error"), percent=True),
             format_cell(row.get(f"{s}_loss"), digits=4)] for s, (X, _) in dataset.splits().items()]
    return Table(["split", "examples", "error (%)", "loss (mean negative log-likelihood, no penalty)"], rows)


def class_tables(y_true: Any, y_pred: Any, dataset: Dataset, split: str) -> list[Block]:
    """The confusion matrix as a shaded table, with each class's recall and precision beside it."""
    from .plots import confusion_matrix

    m = dataset.n_classes
    C = confusion_matrix(y_true, y_pred, m)
    names = dataset.class_names or [str(c) for c in range(m)]
    support, predicted = C.sum(axis=1), C.sum(axis=0)
    rows: list[list[Any]] = []
    for i in range(m):
        share = C[i] / max(support[i], 1)
        rows.append([Label(names[i]), *(Shaded(f"{c:,}", s) for c, s in zip(C[i], share, strict=True)),
                     format_cell(C[i, i] / support[i] if support[i] else None, percent=True), f"{support[i]:,}"])
    precision = [format_cell(C[j, j] / predicted[j] if predicted[j] else None, percent=True) for j in range(m)]
    rows.append(["precision (%)", *precision, "", ""])
    table = Table(["true \u2193 predicted \u2192", *names, "recall (%)", "examples"], rows, caption=(
        f"{_SPLIT_NAMES[split].capitalize()} set: row i, column j counts the examples of class i predicted as "
        "class j; the shade is that count's share of its row. Recall: the share of a class found; precision: "
        "the share of a class's predictions that are right."))
    return [table] if m <= 12 else [Details(f"{m} classes: confusion matrix, recall and precision", [table])]


def data_summary(dataset: Dataset) -> list[Block]:
    """Where the data came from, its size and its classes per split: counts only, never rows."""
    splits = dataset.splits()
    counts = {s: np.bincount(y, minlength=dataset.n_classes) for s, (_, y) in splits.items()}
    names = dataset.class_names or [str(c) for c in range(dataset.n_classes)]
    rows = [[Label(names[c]), *(f"{counts[s][c]:,}" for s in splits), f"{sum(counts[s][c] for s in splits):,}"]
            for c in range(dataset.n_classes)]
    rows.append(["all", *(f"{X.shape[0]:,}" for X, _ in splits.values()),
                 f"{sum(X.shape[0] for X, _ in splits.values()):,}"])
    ident, split = dataset.identity, dataset.identity.get("split") or {}
    kind = f"images of {dataset.image_shape[0]}x{dataset.image_shape[1]} pixels" if dataset.image_shape \
        else f"{dataset.n_features} features"
    text = (f"{dataset.name}: {kind}, {dataset.n_classes} classes, stored as {dataset.X_train.dtype.name}"
            + (f"; split with seed {split['seed']}" if split.get("seed") is not None else "")
            + (f"; data fingerprint (SHA-256) {ident['sha256'][:16]}\u2026" if ident.get("sha256") else "") + ".")
    table = Table(["class", *(_SPLIT_NAMES[s] for s in splits), "all"], rows, caption="Examples per class and split.")
    return [Paragraph(text), table if dataset.n_classes <= 12 else Details("examples per class and split", [table])]


def applied_settings(config: TrainConfig) -> Table:
    """The settings that have an effect in this run (see :func:`npmlp.settings.applies`), with what each does."""
    from .settings import applies, declared
    from .training import TrainConfig

    values = config.to_dict()
    rows = [["--" + name.replace("_", "-"), show_setting(values[name]), decl.help]
            for name, (decl, _) in declared(TrainConfig).items() if applies(name, decl, values)]
    return Table(["setting", "value", "what it does"], rows,
                 caption="The settings of `npmlp train` that apply to this run; the others had no effect.")


def show_setting(value: Any) -> str:
    """A setting's value as a person writes it on the command line: ``256,128``, ``0.001``, ``off``."""
    if value is None:
        return "off"
    if isinstance(value, (list, tuple)):
        return ",".join(show_setting(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_percent(fraction: Any) -> str:
    """A fraction as a percentage with two decimals (``0.0045`` -> ``0.45%``), None as an em dash."""
    return MISSING if not _present(fraction) else f"{100 * float(fraction):.2f}%"


def format_seconds(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``2 min 05 s``."""
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


# -- helpers -----------------------------------------------------------------------------
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, Shaded):
        return value.to_html()
    if isinstance(value, Label):
        return f"<td>{_esc(value)}</td>"
    text = value if isinstance(value, str) else format_cell(value)
    numeric = text == MISSING or re.fullmatch(r"[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?%?", text) is not None
    return f'<td class="num">{_esc(text)}</td>' if numeric else f"<td>{_esc(text)}</td>"


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not math.isnan(value)
    except (TypeError, ValueError):
        return True


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _metric_name(key: str) -> str:
    name = key.replace("_", " ")
    return f"{name} (%)" if key.endswith("error") else name


def _image_bytes(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        mime = next((m for magic, m in _MAGIC.items() if data.startswith(magic)), None)
        if mime is None:
            raise ValueError(f"image bytes must be a PNG, JPEG or GIF. Got bytes starting {data[:8]!r} instead.")
        return data, mime
    path = Path(source)
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"image {path} must end in one of {', '.join(IMAGE_TYPES)}. Got {path.suffix!r} instead.")
    return path.read_bytes(), mime


def _section_ids(sections: Sequence[Section]) -> list[str]:
    ids: list[str] = []
    for s in sections:
        base = re.sub(r"[^a-z0-9]+", "-", s.heading.lower()).strip("-") or "section"
        sid, k = base, 2
        while sid in ids:
            sid, k = f"{base}-{k}", k + 1
        ids.append(sid)
    return ids


def _version() -> str:
    return __version__
