"""A self-contained HTML report of a run: settings, results, figures, history, notes.

The page needs nothing but itself: images are embedded as base64 ``data:`` URIs, the
stylesheet is inline, there is no script, no web font and no external link, so the file
can be mailed, archived or opened offline. Every piece of text goes through
:func:`html.escape`.

A report is a list of :class:`Section`, each a heading and blocks (:class:`Paragraph`,
:class:`Preformatted`, :class:`Table`, :class:`Image`); :func:`write_report` writes it.
:func:`training_report` builds the usual one for a training run.
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
from typing import Any

from .atomicfile import atomic_write_bytes

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
nav ul { padding-left: 1.2rem; margin: .3rem 0; }
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


Block = Paragraph | Preformatted | Table | Image


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
    sections.append(Section("History", [history_table(history)]))
    return write_report(path, title=title, sections=sections)


# -- ready-made tables -------------------------------------------------------------------
def settings_table(settings: Mapping[str, Any], *, caption: str | None = None) -> Table:
    """A two-column table ``setting | value``; lists and dicts are shown as JSON."""
    rows = [(str(k), v if isinstance(v, (int, float, str)) else _json(v)) for k, v in settings.items()]
    return Table(["setting", "value"], rows, caption=caption)


def results_table(final: Mapping[str, Any], *, caption: str | None = None) -> Table:
    """``metric | value``; ``*_error`` fractions are shown in percent."""
    rows = [(_metric_name(k), format_cell(v, percent=k.endswith("error"))) for k, v in final.items()]
    return Table(["metric", "value"], rows, caption=caption)


def history_table(history: Sequence[Mapping[str, Any]], *, caption: str | None = None) -> Table:
    """One row per epoch; a column that is missing in every epoch (e.g. no test set) is left out.

    Errors (fractions) are shown in percent with 2 decimals, losses with 6 significant
    digits, seconds with 4.
    """
    keys = [k for k in HISTORY_COLUMNS if any(_present(row.get(k)) for row in history)]
    rows = [
        [format_cell(row.get(k), percent=k.endswith("error"), digits=4 if k == "seconds" else 6) for k in keys]
        for row in history
    ]
    caption = caption or f"{len(history)} epochs; losses are the mean negative log-likelihood without penalty."
    return Table([HISTORY_COLUMNS[k] for k in keys], rows, caption=caption, scroll=len(history) > 20)


def format_cell(value: Any, *, percent: bool = False, digits: int = 6) -> str:
    """How a value is shown: integers as they are, fractions in percent (2 decimals) when
    ``percent``, other reals with ``digits`` significant digits, None/NaN as an em dash."""
    if not _present(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return f"{100 * float(value):.2f}" if percent else f"{float(value):.{digits}g}"


# -- helpers -----------------------------------------------------------------------------
def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: Any) -> str:
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
    from . import __version__  # late: the package may one day import this module

    return __version__
