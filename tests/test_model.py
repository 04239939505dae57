"""Model: the network with its standardiser, labels and feature names, loaded and saved safely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import npmlp
from npmlp.cli import main
from npmlp.model import Model
from npmlp.network import MLP
from npmlp.preprocess import LabelMap, Standardizer


def _model(rng: np.random.Generator, *, dtype: str = "float64", labels: tuple = ("no", "yes", "maybe")) -> Model:
    net = MLP.initialize((3, 5, len(labels)), rng=rng, activation="tanh", dtype=dtype)
    X = rng.normal(100, 20, size=(40, 3))
    return Model(net, Standardizer.fit(X), LabelMap(labels), ["a", "b", "c"])


def test_predicts_raw_rows_as_the_network_predicts_standardised_ones(rng) -> None:
    model = _model(rng)
    X = rng.normal(100, 20, size=(10, 3))
    Z = (X - model.scaler.mean) / model.scaler.scale
    np.testing.assert_array_equal(model.predict_proba(X), model.net.predict_proba(Z))
    assert model.predict(X).tolist() == [model.labels.classes[k] for k in model.net.predict(Z)]
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), model.predict_proba(X), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("labels", [("no", "yes", "maybe"), (-1, 3, 7)])
def test_save_then_load_round_trips_everything(dtype: str, labels: tuple, rng, tmp_path: Path) -> None:
    model = _model(rng, dtype=dtype, labels=labels)
    model.save(tmp_path / "m", training={"note": "kept"})
    loaded = npmlp.load(tmp_path / "m")
    assert isinstance(loaded, Model)
    assert loaded.labels == model.labels and loaded.feature_names == ["a", "b", "c"]
    assert loaded.config["training"] == {"note": "kept"}
    for k, v in model.net.params.items():
        np.testing.assert_array_equal(loaded.net.params[k], v)
        assert loaded.net.params[k].dtype == np.dtype(dtype)
    X = rng.normal(100, 20, size=(6, 3))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.classes.tolist() == list(labels)


def test_a_model_without_preprocessing_answers_class_numbers(rng, tmp_path: Path) -> None:
    net = MLP.initialize((2, 4, 3), rng=rng)
    Model(net).save(tmp_path)
    loaded = npmlp.load(tmp_path)
    X = rng.standard_normal((5, 2))
    assert loaded.scaler is None and loaded.labels is None
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.classes.tolist() == [0, 1, 2]


def test_named_columns_are_taken_by_name(rng) -> None:
    pd = pytest.importorskip("pandas")
    model = _model(rng)
    X = rng.normal(100, 20, size=(4, 3))
    shuffled = pd.DataFrame(X[:, [2, 0, 1]], columns=["c", "a", "b"])
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(X))
    with pytest.raises(ValueError, match="X lacks the model's feature columns b"):
        model.predict(pd.DataFrame(X, columns=["a", "x", "c"]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"scaler": Standardizer(np.zeros(2), np.ones(2))}, "scaler must have 3 features"),
        ({"labels": LabelMap(("a", "b"))}, "labels must name 3 classes"),
        ({"feature_names": ["a"]}, "feature_names must list 3 names"),
    ],
)
def test_parts_that_do_not_fit_the_network_are_refused(kwargs: dict, match: str, rng) -> None:
    with pytest.raises(ValueError, match=match):
        Model(MLP.initialize((3, 4, 3), rng=rng), **kwargs)


def test_tampered_labels_are_a_model_file_error(rng, tmp_path: Path) -> None:
    # Format 2 reads the config embedded in model.npz (the commit point): tamper with that copy.
    _model(rng).save(tmp_path)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    config = json.loads(arrays["config"].tobytes().decode())
    config["classes"] = ["no", "no", "yes"]
    arrays["config"] = np.frombuffer(json.dumps(config).encode(), dtype=np.uint8)
    np.savez(tmp_path / "model.npz", **arrays)
    with pytest.raises(npmlp.ModelFileError, match="'classes' must list 3 distinct labels"):
        npmlp.load(tmp_path)


def test_cli_predict_answers_with_the_model_labels_on_raw_rows(rng, tmp_path: Path, capsys) -> None:
    model = _model(rng)
    model.save(tmp_path / "m")
    X = rng.normal(100, 20, size=(7, 3))
    np.save(tmp_path / "x.npy", X)
    assert main(["predict", "--json", "--model", str(tmp_path / "m"), str(tmp_path / "x.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == model.predict(X).tolist()
    assert main(["predict", "--json", "--proba", "--model", str(tmp_path / "m"), str(tmp_path / "x.npy")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["classes"] == ["no", "yes", "maybe"]
    np.testing.assert_array_equal(np.array(doc["probabilities"]), model.predict_proba(X))
