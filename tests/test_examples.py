"""examples/: every notebook runs from top to bottom with pictures inline and no error output;
quickstart.py runs; figures and progress bars behave in a Jupyter kernel."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import pytest

from npmlp.training import Progress

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
#: Prepended to a notebook to play a machine without the data set: every lookup fails.
NO_DATA = (
    "import npmlp.datasets\n"
    "def _absent(*args, **kwargs):\n"
    "    raise npmlp.datasets.DataError('fashion-mnist: not found (this test hides it)')\n"
    "npmlp.datasets.load_dataset = _absent"
)


def execute(path: Path, monkeypatch: pytest.MonkeyPatch, *, first_cell: str | None = None):  # type: ignore[no-untyped-def]
    """Run the notebook at ``path`` in a fresh kernel, in its own folder; return it with its outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel inherits the environment: no Agg backend forced by conftest, as in a real notebook.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    if first_cell is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(first_cell))
    tic = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    print(f"{path.name}: {time.perf_counter() - tic:.1f} s")  # shown with -rP; never asserted
    return nb


def outputs(nb):  # type: ignore[no-untyped-def]
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_there_is_a_notebook_for_each_part_of_the_assignment() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_functions", "02_gradient_check", "03_circles", "04_mnist_format"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_with_pictures_inline_and_no_error_output(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute(path, monkeypatch)
    outs = outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    stderr = [o.text for o in outs if o.output_type == "stream" and o.name == "stderr"]
    assert stderr == [], "a notebook paints stderr as a warning"
    assert any(c.metadata.get("tags") == ["parameters"] for c in nb.cells), "no parameter cell"
    texts = [o.get("data", {}) for o in outs if o.output_type in ("execute_result", "display_data")]
    assert not [d for d in texts if "<Figure size" in d.get("text/plain", "") and "image/png" not in d]
    skipped = any("SKIPPED" in o.get("text", "") for o in outs if o.output_type == "stream")
    assert skipped or any("image/png" in d for d in texts), "no picture shown inline"


@pytest.mark.slow
def test_mnist_notebook_says_it_skips_when_the_data_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute(EXAMPLES / "04_mnist_format.ipynb", monkeypatch, first_cell=NO_DATA)
    outs = outputs(nb)
    text = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert "SKIPPED" in text and "apt-get install dataset-fashion-mnist" in text
    assert not [o for o in outs if o.output_type in ("error", "display_data", "execute_result")]


def test_quickstart_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["quickstart.py", str(tmp_path / "qs")])
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "passed" in out and "test_error" in out
    assert (tmp_path / "qs" / "model.npz").exists()


def test_progress_shows_in_a_notebook_whose_stderr_is_no_terminal(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(Progress, "in_notebook", staticmethod(lambda: True))
    bar = Progress(True, total=2)
    bar.epoch({"epoch": 1, "train_loss": 0.5, "train_error": 0.25, "seconds": 0.1})
    bar.close()
    captured = capsys.readouterr()
    assert "epoch 1" in captured.out, "in a notebook the lines are the cell's output, not a warning"


def test_progress_is_silent_outside_terminals_and_notebooks(capsys) -> None:  # type: ignore[no-untyped-def]
    bar = Progress(True, total=2)  # pytest captures stderr: no terminal, and no kernel runs here
    bar.epoch({"epoch": 1, "train_loss": 0.5, "train_error": 0.25, "seconds": 0.1})
    bar.close()
    assert capsys.readouterr() == ("", "")
