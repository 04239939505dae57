"""The report stands alone: every image embedded, every number shown, every text escaped."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from npmlp import report
from npmlp.report import Image, Paragraph, Preformatted, Section, Table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour, made without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def history(epochs: int = 4, *, test: bool = True) -> list[dict]:
    rng = np.random.default_rng(7)
    return [
        {
            "epoch": e,
            "train_loss": float(rng.random()),
            "train_error": float(rng.random()),
            "valid_loss": float(rng.random()),
            "valid_error": float(rng.random()),
            "test_loss": float(rng.random()) if test else None,
            "test_error": float(rng.random()) if test else None,
            "seconds": float(rng.random()),
        }
        for e in range(1, epochs + 1)
    ]


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    out = {}
    pictures = (("Learning curves: error and loss per epoch", (200, 0, 0)), ("Decision regions", (0, 90, 200)))
    for caption, rgb in pictures:
        path = tmp_path / f"{rgb[0]}.png"
        path.write_bytes(tiny_png(3, 2, rgb))
        out[caption] = path
    return out


def write(tmp_path: Path, images: dict[str, Path], **kwargs) -> str:
    args = dict(
        title="circles run",
        settings={"hidden": 4, "lr": 0.03, "l1": [0.001, 0.0]},
        final={"train_error": 0.0125, "valid_error": 0.03, "test_error": 0.0341},
        history=history(),
        images=images,
        notes=["max relative error 1.2e-10 (tolerance 1e-06): PASSED"],
    )
    args.update(kwargs)
    path = report.training_report(tmp_path / "run" / "report.html", **args)
    assert path == tmp_path / "run" / "report.html"
    return path.read_text(encoding="utf-8")


def test_every_image_is_embedded_and_decodes_back(tmp_path: Path, images) -> None:
    page = write(tmp_path, images)
    assert page.count("data:image/png;base64,") == len(images) == 2
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [base64.b64decode(u) for u in uris] == [p.read_bytes() for p in images.values()]
    for caption in images:
        assert f"<figcaption>{caption}</figcaption>" in page


def test_every_number_of_the_history_is_in_the_table_rounded(tmp_path: Path, images) -> None:
    hist = history(5)
    page = write(tmp_path, images, history=hist)
    cells = re.findall(r'<td class="num">([^<]*)</td>', page.split('id="history"')[1])
    expected = []
    for row in hist:
        expected += [str(row["epoch"])]
        for split in ("train", "valid", "test"):
            expected += [f"{row[f'{split}_loss']:.4g}", f"{100 * row[f'{split}_error']:.2f}"]
        expected += [f"{row['seconds']:.3g}"]
    assert cells == expected
    assert "test error (%)" in page


def test_a_split_missing_everywhere_has_no_column(tmp_path: Path, images) -> None:
    page = write(tmp_path, images, history=history(3, test=False), final={"train_error": 0.1})
    assert "test loss" not in page and "valid loss" in page


def test_final_results_and_settings_are_shown(tmp_path: Path, images) -> None:
    page = write(tmp_path, images)
    assert '<td>train error (%)</td><td class="num">1.25</td>' in page
    assert '<td>lr</td><td class="num">0.03</td>' in page
    assert "<td>0.001,0</td>" in page  # as on the command line
    assert "<pre>max relative error 1.2e-10 (tolerance 1e-06): PASSED</pre>" in page


def test_all_text_is_escaped(tmp_path: Path, images) -> None:
    evil = "<script>alert('x')</script>"
    page = write(
        tmp_path,
        {f"caption {evil}": next(iter(images.values()))},
        title=f"run & {evil}",
        settings={evil: evil, "note": 'say "hi" <b>'},
        notes=[f"a < b > c {evil}"],
    )
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<title>run &amp; &lt;script&gt;" in page and "say &quot;hi&quot; &lt;b&gt;" in page


def test_no_external_reference(tmp_path: Path, images) -> None:
    page = write(tmp_path, images)
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert links and all(link.startswith(("data:", "#")) for link in links)
    assert not any("http" in link for link in links)
    for forbidden in ("<link", "<script", "url(", "@import", "@font-face"):
        assert forbidden not in page
    assert '<meta charset="utf-8">' in page and "<style>" in page


def test_write_report_keeps_block_order_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    path.write_text("old")
    sections = [
        Section("Intro", [Paragraph("first"), Preformatted("  spaced\n    text", caption="printout")]),
        Section("Intro", [
            Table(["a", "b"], [[1, "x"], [2.5, None]], caption="t"), Image(tiny_png(1, 1, (0, 0, 0)), "dot"),
        ]),
    ]
    report.write_report(path, title="T", sections=sections, subtitle="sub")
    page = path.read_text()
    blocks = ("<p>first</p>", "<pre>  spaced\n    text</pre>", "<caption>t</caption>", "<figcaption>dot</figcaption>")
    order = [page.index(s) for s in blocks]
    assert order == sorted(order)
    assert 'id="intro"' in page and 'id="intro-2"' in page  # repeated headings keep unique anchors
    assert f'<td class="num">{report.MISSING}</td>' in page and '<td class="num">2.5</td>' in page
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_table_rows_must_match_the_columns() -> None:
    with pytest.raises(ValueError, match="every row of the table needs 2 cells. Row 1 has 3 instead."):
        Table(["a", "b"], [[1, 2], [1, 2, 3]])


def test_images_must_be_png_jpeg_or_gif(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in one of .png, .jpg, .jpeg, .gif. Got '.svg'"):
        Image(tmp_path / "a.svg", "x").to_html()
    with pytest.raises(ValueError, match="image bytes must be a PNG, JPEG or GIF"):
        Image(b"GIF", "x").to_html()


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        (None, {}, report.MISSING),
        (float("nan"), {}, report.MISSING),
        (3, {}, "3"),
        (np.int64(12), {}, "12"),
        (np.float32(0.25), {"percent": True}, "25.00"),
        (1 / 3, {}, "0.3333"),
        (0.0123456, {"digits": 3}, "0.0123"),
        (True, {}, "True"),
        ("text", {}, "text"),
    ],
)
def test_format_cell(value, kwargs, shown) -> None:
    assert report.format_cell(value, **kwargs) == shown


def test_report_with_real_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from npmlp import plots

    hist = [{"epoch": e, "train_loss": 1 / e, "train_error": 0.3 / e, "seconds": 0.1} for e in range(1, 4)]
    curves = plots.save_figure(plots.learning_curves_figure(hist), tmp_path / "curves.png")
    page_path = report.training_report(
        tmp_path / "report.html", title="t", settings={}, final={}, history=hist,
        images={plots.CAPTIONS["learning_curves"]: curves},
    )
    page = page_path.read_text()
    (uri,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(uri).startswith(PNG_SIGNATURE)


# -- the report of a training run ---------------------------------------------------------
@pytest.fixture(scope="module")
def circles_run(tmp_path_factory):
    from npmlp.runs import DataSpec, run
    from npmlp.training import TrainConfig

    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(hidden=[6], epochs=4, lr=0.1, optimizer="momentum")
    result, dataset, _ = run(config, DataSpec("circles", n_samples=300), out=out)
    return out, result, dataset, (out / "report.html").read_text()


def test_run_report_opens_on_the_results(circles_run) -> None:
    _, result, _, page = circles_run
    body = page.split("<body>")[1]
    headline = body.split('id="headline"')[1].split("</div>")[0]
    assert body.index('id="headline"') < body.index("<img") < body.index('id="settings"')
    assert f"Test error {100 * result.final()['test_error']:.2f}% on 60 examples" in headline
    assert "4 epochs in" in headline and "network 2-6-2 rect" in headline


def test_run_report_shows_only_the_settings_that_apply(circles_run) -> None:
    page = circles_run[3]
    settings = page.split('id="settings"')[1].split("</section>")[0]
    assert "<td>--momentum</td>" in settings and "<td>--lr</td>" in settings and "<td>--hidden</td>" in settings
    for unused in ("--lr-decay", "--lr-step", "--lr-gamma", "--tol", "--early-stopping", "--backprop", "--dropout",
                   "--input-dropout"):
        assert f"<td>{unused}</td>" not in settings
    assert "null" not in page and "None" not in page


def test_run_report_has_a_data_summary_and_a_class_by_class_table(circles_run) -> None:
    _, result, dataset, page = circles_run
    data = page.split('id="data"')[1].split("</section>")[0]
    counts = [np.bincount(y, minlength=2) for _, y in dataset.splits().values()]
    first = (dataset.class_names or ["0"])[0]  # a name, left-aligned, even when it looks like a number
    assert f'<td>{first}</td><td class="num">{counts[0][0]}</td><td class="num">{counts[1][0]}</td>' in data
    assert "2 features, 2 classes" in data and "split with seed 0" in data
    table = page.split('id="the-test-set-class-by-class"')[1].split("</section>")[0]
    X, y = dataset.splits()["test"]
    wrong = int((result.net.predict(X) != y).sum())
    cells = [int(c) for c in re.findall(r'style="background[^"]*">(\d+)</td>', table)]
    assert len(cells) == 4 and sum(cells) == y.size and cells[1] + cells[2] == wrong
    assert "recall (%)" in table and "precision (%)" in table


def test_run_report_never_shows_rows_of_the_data(circles_run) -> None:
    _, _, dataset, page = circles_run
    text = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    for X, _ in dataset.splits().values():
        for value in X[:20].ravel():
            for shown in (f"{value:.4g}", f"{value:.6g}", repr(float(value))):
                if len(shown) > 4:  # short numbers (0.5) could be anything
                    assert shown not in text, shown


def test_run_report_folds_the_history(circles_run) -> None:
    page = circles_run[3]
    history = page.split('id="history"')[1]
    assert history.index("<details>") < history.index("<summary>4 epochs") < history.index("<table>")


def test_the_settings_line_names_dropout_only_when_on() -> None:
    from npmlp.report import settings_line
    from npmlp.training import TrainConfig

    assert "dropout" not in settings_line(TrainConfig(hidden=[8, 4]))
    line = settings_line(TrainConfig(hidden=[8, 4], dropout=[0.5, 0.2], input_dropout=0.1))
    assert "input_dropout=0.1, dropout=0.5,0.2, float64" in line
