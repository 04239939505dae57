"""Shared fixtures: seeded generators, tiny data, the course's circles file, figure cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

os.environ.setdefault("MPLBACKEND", "Agg")
# scikit-learn's estimator checks run their array-API case only when SciPy sees this at import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def circles_file() -> Path:
    path = SHARED_DATA / "circles.txt"
    if not path.exists():
        pytest.skip(f"the course's circles.txt is not at {path}")
    return path
