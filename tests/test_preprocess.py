"""Standardisation and class labels stored with a model: round trips and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from npmlp.errors import ModelFileError
from npmlp.preprocess import LabelMap, Standardizer, read_preprocessing


def test_standardizer_centres_and_scales_and_keeps_constant_columns() -> None:
    X = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    s = Standardizer.fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), [1, 0, 1])
    assert s.scale[1] == 1.0
    assert s.transform(X.astype(np.float32)).dtype == np.float32
    back = Standardizer.from_json(s.to_json(), "config.json", 3)
    np.testing.assert_array_equal(back.mean, s.mean)
    with pytest.raises(ValueError, match="X must have 3 features"):
        s.transform(X[:, :2])


@pytest.mark.parametrize("doc", [{"mean": [0, 0], "scale": [1, 1]}, {"mean": [0, 0, 0], "scale": [1, 0, 1]},
                                 {"mean": [0, 0, float("nan")], "scale": [1, 1, 1]}, [1, 2]])
def test_standardizer_refuses_bad_records(doc: object) -> None:
    with pytest.raises(ModelFileError, match="'preprocessing.standardize' must hold"):
        Standardizer.from_json(doc, "config.json", 3)


def test_label_map_sorts_encodes_and_decodes() -> None:
    labels = LabelMap.fit(["b", "a", "c", "a"])
    assert labels.classes == ("a", "b", "c")
    np.testing.assert_array_equal(labels.encode(["c", "a"]), [2, 0])
    assert labels.decode(np.array([1, 2])) == ["b", "c"]
    assert LabelMap.fit(np.array([3, 1, 2])).classes == (1, 2, 3)
    with pytest.raises(ValueError, match="labels z are not among"):
        labels.encode(["z"])


def test_read_preprocessing_checks_sizes() -> None:
    config = {"architecture": {"sizes": [2, 4, 3]}, "classes": ["x", "y", "z"], "feature_names": ["f", "g"],
              "preprocessing": {"standardize": {"mean": [0.0, 1.0], "scale": [1.0, 2.0]}}}
    scaler, labels, names = read_preprocessing(config, "c.json")
    assert scaler is not None and labels is not None and labels.classes == ("x", "y", "z") and names == ["f", "g"]
    assert read_preprocessing({"architecture": {"sizes": [2, 3]}}, "c.json") == (None, None, None)
    with pytest.raises(ModelFileError, match="'classes' must list 3 distinct labels"):
        read_preprocessing({**config, "classes": ["x", "x", "z"]}, "c.json")
    with pytest.raises(ModelFileError, match="'feature_names' must list 2 strings"):
        read_preprocessing({**config, "feature_names": ["f"]}, "c.json")
