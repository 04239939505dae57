"""ONNX export: onnxruntime gives what ``npmlp predict --proba`` gives, for every activation, depth and dtype."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from npmlp.cli import main
from npmlp.dtypes import DTYPES
from npmlp.functions import ACTIVATIONS
from npmlp.model import Model
from npmlp.network import MLP
from npmlp.preprocess import LabelMap, Standardizer

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run_onnx(path: Path, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    label, proba = session.run(None, {"X": X})
    return label, proba


def _cli_proba(model_dir: Path, X_file: Path, capsys) -> tuple[list, np.ndarray]:
    assert main(["predict", "--json", "--proba", "--model", str(model_dir), str(X_file)]) == 0
    proba = np.array(json.loads(capsys.readouterr().out)["probabilities"])
    assert main(["predict", "--json", "--model", str(model_dir), str(X_file)]) == 0
    return json.loads(capsys.readouterr().out)["predictions"], proba


def _export(model_dir: Path, out: Path, capsys) -> None:
    assert main(["export", "--json", "--model", str(model_dir), "--format", "onnx", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("hidden", [(), (6,), (8, 5, 4)], ids=["depth0", "depth1", "depth3"])
@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"relu"}))
def test_onnxruntime_matches_npmlp_predict(activation: str, hidden: tuple, dtype: str, tmp_path: Path,
                                           capsys) -> None:
    rng = np.random.default_rng(len(hidden))
    net = MLP.initialize((3, *hidden, 4), rng=rng, activation=activation, dtype=dtype)
    for W in net.weights:
        W *= 4  # large pre-activations reach both tails of every activation
    X = rng.normal(50, 30, size=(64, 3))
    X[:4] = [[1e4, -1e4, 0], [-1e4, 1e4, 50], [50, 50, 50], [1e3, 1e3, -1e3]]
    Model(net, Standardizer.fit(X[4:]), LabelMap(("d", "a", "c", "b"))).save(tmp_path / "m")
    np.save(tmp_path / "x.npy", X)
    _export(tmp_path / "m", tmp_path / "m.onnx", capsys)
    labels, expected = _cli_proba(tmp_path / "m", tmp_path / "x.npy", capsys)
    label, proba = _run_onnx(tmp_path / "m.onnx", X.astype(dtype))
    assert proba.dtype == np.dtype(dtype) and proba.shape == (64, 4)
    assert np.abs(proba - expected).max() <= 1e-5
    assert label.tolist() == labels


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_a_circles_run_exports_with_integer_labels(dtype: str, tmp_path: Path, capsys) -> None:
    assert main(["train", "--json", "--dataset", "circles", "--hidden", "8", "--epochs", "20", "--lr", "0.1",
                 "--dtype", dtype,
                 "--out", str(tmp_path / "run"), "--no-pictures", "--quiet"]) == 0
    capsys.readouterr()
    X = np.random.default_rng(0).uniform(-1.2, 1.2, size=(100, 2))
    np.save(tmp_path / "x.npy", X)
    _export(tmp_path / "run", tmp_path / "run.onnx", capsys)
    labels, expected = _cli_proba(tmp_path / "run", tmp_path / "x.npy", capsys)
    label, proba = _run_onnx(tmp_path / "run.onnx", X.astype(dtype))
    assert label.dtype == np.int64 and label.tolist() == labels
    assert np.abs(proba - expected).max() <= 1e-5


def test_softplus_float64_is_built_from_primitives(tmp_path: Path) -> None:
    # onnxruntime has no float64 Softplus kernel; the export spells it out stably.
    from npmlp.export import to_onnx

    net = MLP.initialize((2, 3, 2), rng=np.random.default_rng(0), activation="softplus")
    ops = {node.op_type for node in to_onnx(Model(net)).graph.node}
    assert "Softplus" not in ops and {"Abs", "Exp", "Log", "Relu"} <= ops


def test_unknown_format_and_missing_onnx_are_one_line_errors(tmp_path: Path, capsys, monkeypatch) -> None:
    Model(MLP.initialize((2, 3, 2), rng=np.random.default_rng(0))).save(tmp_path / "m")
    with pytest.raises(SystemExit) as exc:
        main(["export", "--model", str(tmp_path / "m"), "--format", "pmml", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert main(["export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["npmlp export: error: exporting to ONNX needs the onnx package. Install it with: "
                   "pip install 'npmlp[onnx]'"]
    assert not (tmp_path / "m.onnx").exists()
