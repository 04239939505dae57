"""CSVs as people have them (first-contact issue): headers, label columns, string labels, delimiters, scaling."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from npmlp.cli import main
from npmlp.datasets import load_dataset, read_features
from npmlp.errors import DataError
from npmlp.tables import TextSource, read_table


def table(text: str, **options: object) -> object:
    return read_table(TextSource("t.csv", text=text), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("text,delimiter", [
    ("a,b,c\n1,2,x\n3,4,y\n", ","), ("a;b;c\n1;2;x\n3;4;y\n", ";"), ("a\tb\tc\n1\t2\tx\n3\t4\ty\n", "\t"),
    ("a b  c\n1 2 x\n3  4 y\n", None)])
def test_the_delimiter_is_sniffed_and_the_header_found(text: str, delimiter: str | None) -> None:
    t = table(text)
    assert t.names == ["a", "b"] and t.label_name == "c" and t.X.tolist() == [[1, 2], [3, 4]]  # type: ignore[attr-defined]
    assert t.labels == ["x", "y"] and t.lines.tolist() == [2, 3]  # type: ignore[attr-defined]


def test_a_numeric_header_needs_header_yes_and_quoted_fields_are_one_cell() -> None:
    text = "0,1\n1.5,2\n3,4\n"
    assert table(text, label=None).X.shape == (3, 2)  # type: ignore[attr-defined]
    assert table(text, label=None, header="yes").names == ["0", "1"]  # type: ignore[attr-defined]
    t = table('x,"y, z",label\n1,"2",a\n3,4,"b,c"\n')
    assert t.names == ["x", "y, z"] and t.labels == ["a", "b,c"] and t.X.tolist() == [[1, 2], [3, 4]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("label,column", [("first", 0), ("last", 2), (0, 0), (-2, 1), ("b", 1)])
def test_the_label_column_by_name_index_or_position(label: object, column: int) -> None:
    assert table("a,b,c\n1,2,3\n4,5,6\n", label=label).label_column == column  # type: ignore[attr-defined]


@pytest.mark.parametrize("text,options,match", [
    ("a,b\n1,2\n", {"label": "z"}, "--label-column must name a header column \\('a', 'b'\\). Got 'z'"),
    ("1,2\n3,4\n", {"label": "z"}, "names a column, but the file has no header row"),
    ("a,b,c\n1,,x\n", {}, "line 2, column 2 \\('b'\\): a missing value"),
    ("a;b;c\n1,5;2;x\n", {}, "Got '1,5' instead \\(a decimal comma"),
    ("1,2,3\n4,5\n", {}, "line 2: every row must have 3 columns like line 1. Got 2"),
    # found by atheris: a \v inside a line made the sample see two rows where the file has one
    ('k,"x\v2",y\n', {"header": "yes"}, "Got only a header row"),
    ("a,b\n1,2\n3\r4,5\n", {"label": None}, "line 3: every row must have 2 columns"),  # atheris: a lone \r
])
def test_table_errors_name_the_line_column_and_flag(text: str, options: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        table(text, **options)


def wine_csv(path: Path) -> Path:
    """scikit-learn's wine data with a header and its three classes as names in the first column."""
    datasets = pytest.importorskip("sklearn.datasets")
    wine = datasets.load_wine()
    names = np.array(["barolo", "grignolino", "barbera"])[wine.target]
    lines = ["cultivar," + ",".join(wine.feature_names)]
    lines += [f"{n}," + ",".join(f"{v:g}" for v in row) for n, row in zip(names, wine.data, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wine_with_names_in_its_first_column_trains_standardized_and_predict_prints_the_names(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, out = wine_csv(tmp_path / "wine.csv"), tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--label-column", "cultivar", "--standardize", "--epochs", "100",
                 "--out", str(out), "--quiet", "--no-pictures", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["final"]["test_error"] <= 0.10
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["barbera", "barolo", "grignolino"] and config["feature_names"][0] == "alcohol"
    assert len(config["preprocessing"]["standardize"]["mean"]) == 13
    assert "178" not in json.dumps(config["preprocessing"])  # statistics only, no rows
    rows = path.read_text().splitlines()
    features = "\n".join(r.split(",", 1)[1] for r in rows[:6]) + "\n"  # the header and 5 rows, no label
    read, write = os.pipe()
    os.write(write, features.encode())
    os.close(write)
    with os.fdopen(read) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["predict", "--model", str(out), "-"]) == 0
    assert capsys.readouterr().out.split() == ["barolo"] * 5
    assert main(["predict", "--model", str(out), str(path)]) == 0  # the label column is skipped by name
    predicted = capsys.readouterr().out.split()
    assert len(predicted) == 178 and set(predicted) == {"barbera", "barolo", "grignolino"}
    assert main(["evaluate", "--model", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["error"] <= 0.10


def test_a_test_file_is_the_test_split_and_the_main_file_splits_80_20(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, n in (("train.csv", 50), ("test.csv", 12)):
        y = np.array(["cat", "dog"])[np.arange(n) % 2]
        lines = ["x1,x2,animal"] + [f"{a:.3f},{b:.3f},{c}" for a, b, c in zip(*rng.random((2, n)), y, strict=True)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    data = load_dataset(str(tmp_path / "train.csv"), test_dataset=tmp_path / "test.csv")
    assert [len(y) for _, y in data.splits().values()] == [40, 10, 12] and data.class_names == ["cat", "dog"]
    (tmp_path / "bad.csv").write_text("x1,x2,animal\n1,2,cow\n")
    with pytest.raises(DataError, match="line 2: the label 'cow' is not a class of the training file"):
        load_dataset(str(tmp_path / "train.csv"), test_dataset=tmp_path / "bad.csv")


def test_features_by_header_name_in_the_model_order(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("b,label,a\n1,x,2\n3,y,4\n")
    X, names = read_features(path, select=["a", "b"])
    assert X.tolist() == [[2, 1], [4, 3]] and names == ["a", "b"]


def test_predict_refuses_a_header_without_the_models_features(tmp_path: Path, capsys) -> None:
    # A renamed column used to be ignored silently: every column was then read by position.
    from npmlp.cli import main

    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    rows = [f"{a:.4f},{b:.4f},{'yes' if c else 'no'}" for a, b, c in zip(rng.standard_normal(120) + 2 * y,
                                                                          rng.standard_normal(120), y, strict=True)]
    (tmp_path / "train.csv").write_text("alpha,beta,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "train.csv"), "--label-column", "label", "--epochs", "20",
                 "--lr", "0.1", "--out", str(out), "--quiet", "--no-pictures"]) == 0
    (tmp_path / "new.csv").write_text("alpha,gamma\n0.1,0.2\n")
    capsys.readouterr()
    assert main(["predict", "--model", str(out), str(tmp_path / "new.csv")]) == 2
    err = capsys.readouterr().err
    assert "its header lacks the model's features beta" in err
