"""Text tables as people have them: CSV, semicolon, tab or whitespace files, with or without a header.

:func:`read_table` reads a file (or text already in memory) in two passes:

1. the ``csv`` module (C) walks the rows once, checking that every row has the same
   number of cells and collecting the label column (as codes into its distinct values,
   so memory does not grow with the strings), with the line number of every data row;
2. :func:`numpy.loadtxt`'s C reader parses the feature columns straight into one
   float64 array, so peak memory stays near the size of that array, not 7-22x the file
   as Python lists of strings were.

The layout is decided from the first rows: the delimiter (the first of tab, semicolon,
comma that splits every sampled row into the same number of cells, >= 2; else
whitespace), and with ``header="auto"`` whether the first row is a header (a cell that
is not a number above a column of numbers, or the label column's name). Blank lines
and ``#`` comments are skipped; quoted fields are read as the ``csv`` module reads them
(``"a,b"`` is one cell). A missing or non-numeric cell is an error naming its line and
column: imputing is the user's pipeline's job.
"""

from __future__ import annotations

import csv
import io
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from .errors import DataError

__all__ = ["DELIMITERS", "HEADERS", "Table", "TextSource", "decode", "is_number", "read_table"]

DELIMITERS: dict[str, str | None] = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "whitespace": None}
HEADERS = ("auto", "yes", "no")
#: Delimiters tried by sniffing, in order; none consistent: whitespace.
SNIFFED = ("\t", ";", ",")
SAMPLE_CHARS = 1 << 16
SAMPLE_ROWS = 50
#: Cells that people write for "no value"; named as missing in errors.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-", "--"})
LONGEST_LABEL = 200
_CONVERT = re.compile(r"could not convert string '(.*)' to \w+ at row (\d+), column (\d+)", re.DOTALL)


@dataclass(frozen=True)
class TextSource:
    """A table's text: a file (read in passes, never whole) or text already read (a stream)."""

    name: str
    path: Path | None = None
    text: str | None = None

    def open(self) -> IO[str]:
        if self.text is not None:
            return io.StringIO(self.text, newline="")  # lines split as a file's are
        assert self.path is not None
        return open(self.path, encoding="utf-8-sig", newline="")

    def size(self) -> int:
        return len(self.text) if self.text is not None else self.path.stat().st_size if self.path else 0


@dataclass
class Table:
    """A parsed table.

    Attributes
    ----------
    X : array of shape (n, d), float64
        The feature columns, in file order.
    codes : array of shape (n,), int64, or None
        Each row's label as an index into ``labels`` (None without a label column).
    labels : list of str
        The label column's distinct cells, in order of first appearance.
    lines : array of shape (n,), int64
        The file line of each data row (1-based), for messages.
    names : list of str or None
        The header's cell of every feature column, None without a header.
    label_column : int or None
        0-based file column of the label.
    label_name : str or None
    """

    X: NDArray[np.float64]
    codes: NDArray[np.int64] | None
    labels: list[str]
    lines: NDArray[np.int64]
    names: list[str] | None
    label_column: int | None
    label_name: str | None


@dataclass(frozen=True)
class _Layout:
    delimiter: str | None
    header: list[str] | None
    skip: int  # lines up to and including the header (0 without one)
    first_line: int  # line of the first data row
    n_columns: int


def _cut_comment(line: str) -> str:
    return line.split("#", 1)[0] if "#" in line else line


def _cells(lines: Sequence[str], delimiter: str | None) -> list[list[str]]:
    if delimiter is None:
        return [s.split() for s in lines]
    return [[c.strip() for c in row] for row in csv.reader(lines, delimiter=delimiter, skipinitialspace=True)]


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _sample(source: TextSource) -> list[tuple[int, str]]:
    """The first data lines (number, text without comment) of ``source``."""
    with source.open() as f:
        text = f.read(SAMPLE_CHARS)
        more = f.read(1) != ""
    # NOTE: split as file iteration does (\n, \r, \r\n): splitlines() also splits on \v,
    # \f and others, and the two passes would disagree on what a line is.
    lines = [s.rstrip("\r\n") for s in io.StringIO(text, newline="")]
    if more and lines:
        lines.pop()  # may be cut in the middle
    found = [(i, _cut_comment(s)) for i, s in enumerate(lines, start=1)]
    return [(i, s) for i, s in found if s.strip()][: SAMPLE_ROWS + 1]


def _sniff_delimiter(lines: Sequence[str]) -> str | None:
    """The first of :data:`SNIFFED` that splits every line alike, else that splits the first line, else None."""
    for d in SNIFFED:
        counts = {len(row) for row in _cells(lines, d)}
        if len(counts) == 1 and counts.pop() >= 2:
            return d
    return next((d for d in SNIFFED if len(_cells(lines[:1], d)[0]) >= 2), None)


def _layout(source: TextSource, *, delimiter: str, header: str, label: int | str | None) -> _Layout:
    """Delimiter, header and column count from the first rows."""
    sample = _sample(source)
    if not sample:
        raise DataError(f"{source.name}: a data file must have rows of numbers. Got no data rows (empty or only "
                        "comments).")
    lines = [s for _, s in sample]
    d = DELIMITERS[delimiter] if delimiter != "auto" else _sniff_delimiter(lines)
    rows = _cells(lines, d)
    first, rest = rows[0], rows[1:]
    named = isinstance(label, str) and label not in ("first", "last")
    if header == "auto":
        above_numbers = any(not is_number(c) and all(j < len(r) and is_number(r[j]) for r in rest)
                            for j, c in enumerate(first)) if rest else not all(map(is_number, first))
        has_header = above_numbers or (named and label in first)
    else:
        has_header = header == "yes"
    if has_header:
        if len(sample) < 2:
            raise DataError(f"{source.name}: a data file must have rows of numbers. Got only a header row "
                            f"(line {sample[0][0]}).")
        return _Layout(d, first, sample[0][0], sample[1][0], len(first))
    return _Layout(d, None, 0, sample[0][0], len(first))


def _label_index(source: TextSource, label: int | str, layout: _Layout) -> int:
    n = layout.n_columns
    if label in ("first", "last"):
        return 0 if label == "first" else n - 1
    if isinstance(label, str):
        if layout.header is None:
            raise DataError(f"{source.name}: --label-column {label!r} names a column, but the file has no header "
                            "row (pass --header yes if its first row is one, or give the column's number).")
        if label not in layout.header:
            shown = ", ".join(repr(h) for h in layout.header[:12]) + (", ..." if n > 12 else "")
            raise DataError(f"{source.name}: --label-column must name a header column ({shown}). Got {label!r} "
                            "instead.")
        return layout.header.index(label)
    if not -n <= label < n:
        raise DataError(f"{source.name}: --label-column must be in [{-n}, {n - 1}] for its {n} columns. "
                        f"Got {label} instead.")
    return label % n


def _rows(f: IO[str], layout: _Layout, where: list[int]) -> Iterator[list[str]]:
    """Every data row's cells; ``where[0]`` is the line of the row just yielded."""

    def lines() -> Iterator[str]:
        for i, line in enumerate(f, start=1):
            if i <= layout.skip:
                continue
            s = _cut_comment(line)
            if s.strip():
                where[0] = i
                yield s

    if layout.delimiter is None:
        return (s.split() for s in lines())
    return csv.reader(lines(), delimiter=layout.delimiter, skipinitialspace=True)


def _scan(source: TextSource, layout: _Layout, label: int | None) -> tuple[array[int], array[int], dict[str, int]]:
    """Pass 1: line numbers, label codes and distinct labels; every row checked for its cell count."""
    lines, codes, seen = array("q"), array("q"), dict[str, int]()
    where = [0]
    with source.open() as f:
        try:
            for row in _rows(f, layout, where):
                if len(row) != layout.n_columns:
                    raise DataError(f"{source.name}, line {where[0]}: every row must have {layout.n_columns} columns "
                                    f"like line {layout.first_line}. Got {len(row)} instead.")
                lines.append(where[0])
                if label is not None:
                    cell = row[label].strip()
                    if len(cell) > LONGEST_LABEL:
                        raise DataError(f"{source.name}, line {where[0]}: a label must be at most {LONGEST_LABEL} "
                                        f"characters. Got {len(cell)} instead.")
                    codes.append(seen.setdefault(cell, len(seen)))
        except csv.Error as exc:
            raise DataError(f"{source.name}, line {where[0] + 1}: cannot read it as {_kind(layout)} ({exc}).") from exc
    return lines, codes, seen


def _kind(layout: _Layout) -> str:
    names = {",": "CSV", ";": "semicolon-separated text", "\t": "tab-separated text", None: "text"}
    return names[layout.delimiter]


def _numbers(source: TextSource, layout: _Layout, usecols: list[int], lines: NDArray[np.int64]) -> NDArray[np.float64]:
    """Pass 2: the ``usecols`` columns as float64 (n, len(usecols)), every cell a finite number."""
    with source.open() as f:
        try:
            T: NDArray[np.float64] = np.loadtxt(f, dtype=np.float64, delimiter=layout.delimiter, comments="#",
                                                skiprows=layout.skip, usecols=usecols, quotechar='"', ndmin=2)
        except ValueError as exc:
            found = _CONVERT.search(str(exc))
            if not found:
                raise DataError(f"{source.name}: cannot read it as {_kind(layout)} ({exc}).") from exc
            cell, row, column = found.group(1), int(found.group(2)), int(found.group(3))
            line = int(lines[row]) if row < len(lines) else row + 1
            raise _bad_cell(source, layout, line, column - 1, cell) from None
    if T.shape[0] != len(lines):  # both passes must see the same rows
        raise DataError(f"{source.name}: cannot read it as {_kind(layout)}: {T.shape[0]} rows of numbers in "
                        f"{len(lines)} data rows (a quoted field over several lines?).")
    bad = ~np.isfinite(T)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise _bad_cell(source, layout, int(lines[r]), usecols[c], str(T[r, c]))
    return T


def _bad_cell(source: TextSource, layout: _Layout, line: int, column: int, cell: str) -> DataError:
    name = f" ({layout.header[column]!r})" if layout.header and column < len(layout.header) else ""
    where = f"{source.name}, line {line}, column {column + 1}{name}"
    if cell.strip().lower() in MISSING:
        return DataError(f"{where}: a missing value ({cell.strip()!r}). npmlp does not impute: fill or drop such "
                         "rows first.")
    if cell.strip().lower().lstrip("+-") in ("inf", "infinity"):
        return DataError(f"{where}: every cell must be a finite number. Got {cell[:40]!r} instead.")
    hint = (" (a decimal comma? write decimal points)" if "," in cell and layout.delimiter != ","
            else " (pass --label-column for the column that holds the labels)" if layout.header is None else "")
    return DataError(f"{where}: every feature cell must be a finite number. Got {cell[:40]!r} instead{hint}.")


def read_table(source: TextSource, *, label: int | str | None = "last", header: str = "auto",
               delimiter: str = "auto", memory: Callable[[int, str], None] | None = None,
               select: Sequence[str] | None = None) -> Table:
    """Parse ``source`` into features and (unless ``label`` is None) a label column.

    Parameters
    ----------
    label : int, str or None
        The label column: a 0-based index (negative from the end), ``"first"``, ``"last"``,
        or a header name; None when every column is a feature.
    header : {"auto", "yes", "no"}
    delimiter : {"auto", "comma", "semicolon", "tab", "whitespace"}
    memory : callable, optional
        Called with the bytes the feature array will take and a description, before it is
        parsed (a memory budget's check).
    select : list of str, optional
        Feature columns to keep, by header name, in this order, when the file has a header
        holding them all (a model's features; other columns, the label's too, are skipped).
    """
    try:
        layout = _layout(source, delimiter=delimiter, header=header, label=label)
        column = None if label is None else _label_index(source, label, layout)
        if layout.n_columns < (2 if column is not None else 1):
            raise DataError(f"{source.name}: a data set file must have at least 2 columns (features and the "
                            f"label). Got {layout.n_columns} instead.")
        line_list, codes, seen = _scan(source, layout, column)
        if not line_list:
            raise DataError(f"{source.name}: a data file must have rows of numbers. Got no data rows.")
        lines = np.frombuffer(line_list, dtype=np.int64) if line_list else np.zeros(0, np.int64)
        usecols = [j for j in range(layout.n_columns) if j != column]
        if select is not None and layout.header is not None:
            missing = [name for name in select if name not in layout.header]
            if missing:  # never the model's features by position under other names
                raise DataError(f"{source.name}: its header lacks the model's features {', '.join(missing[:8])}"
                                f"{', ...' if len(missing) > 8 else ''}; name the columns as in training, or "
                                "pass --header no for rows of the features alone, in the model's order.")
            usecols = [layout.header.index(name) for name in select]
        if memory is not None:
            memory(2 * len(lines) * len(usecols) * 8, f"reading {source.name} ({len(lines)} rows x {len(usecols)} "
                                                        "columns as float64)")
        X = _numbers(source, layout, usecols, lines)
    except csv.Error as exc:  # in the first rows (the scan names the line of a later one)
        raise DataError(f"{source.name}: cannot read its first rows as a table ({exc}).") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{source.name}: a data file must be UTF-8 text (numbers separated by commas, semicolons, "
                        f"tabs or spaces). Got byte 0x{exc.object[exc.start]:02x} instead.") from exc
    names = [layout.header[j] for j in usecols] if layout.header else None
    return Table(X, np.frombuffer(codes, dtype=np.int64) if column is not None else None, list(seen), lines, names,
                 column, layout.header[column] if layout.header and column is not None else None)


def decode(data: bytes, name: str) -> TextSource:
    """A table's bytes read from a stream, as text."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: input must be UTF-8 text. Got byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start} instead.") from exc
    return TextSource(name, text=text)
