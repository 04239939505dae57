"""`npmlp demo` in its fast mode: every part runs and lands in one self-contained report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from npmlp import demo as demo_module
from npmlp.cli import main
from npmlp.errors import DataError

from .conftest import FASHION_DIR


def images_in(html: str) -> int:
    return len(re.findall(r"data:image/png;base64,", html))


@pytest.mark.realdata
@pytest.mark.skipif(not FASHION_DIR.exists(), reason="Fashion-MNIST (Debian's dataset-fashion-mnist) is not installed")
def test_fast_demo_writes_every_part(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("NPMLP_DEMO_FAST", "1")
    monkeypatch.setenv("NPMLP_DATA", str(tmp_path / "nowhere"))  # MNIST absent: falls back to Fashion
    monkeypatch.setattr("npmlp.datasets.DOWNLOAD_TIMEOUT", 0.01, raising=False)
    assert main(["demo", "--json", "--out", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    for name in ["report.html", "gradcheck.png", "circles_1.png", "circles_2.png", "circles_grid.png", "timing.png",
                 "tuned/model.npz", "tuned/report.html", "tuned/curves.png", "tuned/misclassified.png",
                 "tuned/first_layer_weights.png"]:
        assert (tmp_path / name).stat().st_size > 0, name
    html = (tmp_path / "report.html").read_text()
    # gradcheck, 2 circles runs, the grid, timing, and the tuned run's 3 figures (its confusion matrix is a table)
    assert images_in(html) == 8
    headline = html.split('id="headline"')[1].split("</div>")[0]
    assert "Gradient check PASSED on 1 and 10 examples" in headline and "A tuned run on fashion-mnist" in headline
    for heading in ["Gradient check (Q2, Q4)", "Circles: decision regions (Q5)", "Loop vs matrix backprop (Q8)",
                    "A tuned run on fashion-mnist (Q9, Q10)"]:
        assert heading in html
    assert "The ratio between the two grads for the parameter W1" in html
    assert doc["gradcheck_K1"]["passed"] and doc["gradcheck_K10"]["passed"]
    # the assignment's own check beside the precise one: forward differences, ratios in [0.99, 1.01]
    assert all(doc[f"gradcheck_K{k}"]["forward"]["passed"] for k in (1, 10))
    assert "way (forward differences, step 1e-05): PASSED" in html
    assert doc["timing"]["ratio"] > 1  # the loop is slower than the matrix version
    assert doc["report"].endswith("report.html")


@pytest.fixture
def no_idx_data(monkeypatch):
    """Neither MNIST nor Fashion-MNIST can be found or downloaded."""

    def unavailable(name: str, **kw):
        if name == "circles":
            return real(name, **kw)
        raise DataError(f"{name} not found: put the IDX files in ~/.cache/npmlp/{name}/")

    real = demo_module.load_dataset
    monkeypatch.setattr(demo_module, "load_dataset", unavailable)


def test_demo_without_image_data_or_matplotlib_says_what_it_skipped(tmp_path: Path, monkeypatch, no_idx_data,
                                                                   capsys) -> None:
    def no_sklearn(seed: int) -> None:
        raise DataError("scikit-learn's 8x8 digits need scikit-learn: pip install 'npmlp[demo]'")

    monkeypatch.setattr(demo_module, "embedded_digits", no_sklearn)
    monkeypatch.setattr("npmlp.plots.available", lambda: False)  # a plain install: no matplotlib
    path, summary = demo_module.run_demo(tmp_path, fast=True)
    html = path.read_text()
    assert "MNIST-format data (Q8-Q10): skipped" in html
    assert "~/.cache/npmlp/mnist/" in html and "fashion-mnist not found" in html and "npmlp[demo]" in html
    assert len(summary["skipped"]) == 3
    headline = html.split('id="headline"')[1].split("</div>")[0]
    assert "the timing and the tuned run were skipped" in headline and "Gradient check PASSED" in headline
    assert images_in(html) == 0
    assert "pictures skipped (plots need matplotlib: pip install &#x27;npmlp[plot]&#x27;)" in html
    assert capsys.readouterr().err.count("pictures skipped") == 1
    assert not list(tmp_path.glob("*.png"))


def test_demo_falls_back_to_scikit_learns_digits(tmp_path: Path, monkeypatch, no_idx_data) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.setattr("npmlp.plots.available", lambda: False)  # pictures are the fast demo test's; time is short
    path, summary = demo_module.run_demo(tmp_path, fast=True)
    html = path.read_text()
    assert summary["image_data"]["used"] == "digits" and summary["tuned"]["dataset"] == "digits"
    assert "A tuned run on digits (Q9, Q10)" in html and "scikit-learn&#x27;s 8x8 digits" in html
    assert "Test error" in (tmp_path / "tuned" / "report.html").read_text()


def test_embedded_digits_is_a_seeded_split_of_all_1797_images() -> None:
    pytest.importorskip("sklearn")
    data = demo_module.embedded_digits(seed=3)
    assert [X.shape for X, _ in data.splits().values()] == [(1078, 64), (359, 64), (360, 64)]
    assert data.image_shape == (8, 8) and data.n_classes == 10 and 0 <= data.X_train.min() < data.X_train.max() <= 1
    again = demo_module.embedded_digits(seed=3)
    assert again.identity == data.identity and (again.y_test == data.y_test).all()


def test_demo_reruns_over_its_own_output_and_refuses_other_files(tmp_path: Path, monkeypatch, capsys,
                                                                no_idx_data) -> None:
    def no_digits(seed: int):
        raise DataError("digits not found")

    monkeypatch.setattr(demo_module, "embedded_digits", no_digits)
    out = tmp_path / "demo"
    for _ in range(2):  # `make demo` twice: the second replaces the first's output
        path, _ = demo_module.run_demo(out, fast=True)
        assert path == out / "report.html" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no staging directory left
    (out / "gradcheck.png").unlink()  # an old file the new demo will write again
    (out / "notes.txt").write_text("mine")
    demo_module.run_demo(out, fast=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "gradcheck.png").is_file()
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("x")
    assert main(["demo", "--fast", "--out", str(other)]) == 2
    assert "holds files that npmlp demo did not write" in capsys.readouterr().err
