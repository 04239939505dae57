"""The public surface: a sorted __all__ of names that exist; a wheel installed without extras works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npmlp


def test_all_is_sorted_and_importable() -> None:
    assert npmlp.__all__ == sorted(npmlp.__all__)
    for name in npmlp.__all__:
        assert getattr(npmlp, name) is not None


# -- a plain install -----------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def plain_env(cache: Path | None = None) -> dict[str, str]:
    """The environment without this checkout on the path: the installed wheel is what runs.

    With ``cache``, a fresh download cache and mirrors that refuse at once: nothing is downloaded.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NPMLP_DEBUG")}
    if cache is not None:
        env.update(XDG_CACHE_HOME=str(cache), NPMLP_DATA=str(cache), NPMLP_MIRROR_MNIST="http://127.0.0.1:9/",
                   NPMLP_MIRROR_FASHION_MNIST="http://127.0.0.1:9/")
    return env


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory) -> Path:
    """A fresh virtual environment holding npmlp's wheel and NumPy, and nothing of its extras.

    The wheel is built from this checkout (no network: setuptools from this environment); NumPy,
    the one dependency, is linked in from this environment rather than downloaded.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(tree)],
                   check=True, capture_output=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("npmlp-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=plain_env())
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    numpy_dir = Path(np.__file__).parent
    for path in [numpy_dir, *numpy_dir.parent.glob("numpy.libs"), *numpy_dir.parent.glob("numpy-*.dist-info")]:
        (site / path.name).symlink_to(path)
    return venv


def plain_run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "npmlp"), *args], capture_output=True, text=True, cwd=cwd,
                          env=plain_env(cwd / "cache"), timeout=300)


@pytest.mark.slow
def test_a_wheel_without_extras_trains_circles_and_writes_its_report(plain_venv: Path, tmp_path: Path) -> None:
    probe = subprocess.run([str(plain_venv / "bin" / "python"), "-c", "import npmlp, numpy, matplotlib"],
                           capture_output=True, text=True, env=plain_env())
    assert "No module named 'matplotlib'" in probe.stderr  # really a plain install
    done = plain_run(plain_venv, "train", "--dataset", "circles", "--epochs", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "pictures" in line] == [
        "npmlp train: pictures skipped (plots need matplotlib: pip install 'npmlp[plot]'); "
        "the model and report.html are saved"]
    out = tmp_path / "runs" / "circles"
    assert (out / "model.npz").exists() and not (out / "checkpoint").exists()
    page = (out / "report.html").read_text()
    assert "Test error" in page and "data:image" not in page and not list(out.glob("*.png"))


@pytest.mark.slow
def test_a_wheel_without_extras_runs_the_demo_and_names_the_extra_a_sweep_needs(plain_venv: Path,
                                                                              tmp_path: Path) -> None:
    done = plain_run(plain_venv, "demo", "--fast", "--out", "d", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("pictures skipped") == 1
    assert "Gradient check PASSED" in (tmp_path / "d" / "report.html").read_text()
    sweep = plain_run(plain_venv, "sweep", "--example", "circles", cwd=tmp_path)
    hint = "npmlp sweep: error: sweeps need joblib: pip install 'npmlp[sweep]'\n"
    assert (sweep.returncode, sweep.stderr) == (2, hint)
