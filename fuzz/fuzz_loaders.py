"""Fuzz npmlp's file readers with atheris: only the library's own error may escape.

Targets (the first input byte picks one, the rest is the file's content):

- ``idx``: :func:`npmlp.datasets.read_idx` on the bytes as they are;
- ``idx-gz``: the same bytes gzipped first, so the fuzzer reaches the IDX parser
  behind the gzip layer;
- ``table``: :func:`npmlp.datasets.load_text` (CSV/whitespace data set);
- ``features``: :func:`npmlp.datasets.load_features` on a ``.npy`` file;
- ``table-header``: ``load_text`` with a header row and the label in the first column
  (string labels, quoted fields, sniffed delimiters);
- ``features-text``: :func:`npmlp.datasets.read_features` on a text table (header auto);
- ``model-npz``, ``model-json``: ``npmlp.persistence.load_model`` on a saved model
  folder whose ``model.npz`` (or ``config.json``) is the payload, the other file
  intact; only when that module exists. It must raise only ``ModelFileError``.

Any other exception, a hang (``-timeout``) or a memory blow-up (``-rss_limit_mb``)
is a finding: libFuzzer stops and writes the input to ``crash-*``/``timeout-*``.
Run: ``.venv/bin/python fuzz/fuzz_loaders.py fuzz/corpus -max_total_time=180``
(see fuzz/README.md).
"""

from __future__ import annotations

import gzip
import io
import sys
import tempfile
from pathlib import Path
from typing import Callable

import atheris

with atheris.instrument_imports():
    import numpy as np
    from npmlp import datasets
    from npmlp.errors import DataError, ModelFileError

# Hook for the model loader: fuzzed only once npmlp.persistence.load_model exists.
try:
    with atheris.instrument_imports():
        from npmlp.persistence import load_model, save_model
except ImportError:
    load_model = save_model = None

SCRATCH = Path(tempfile.mkdtemp(prefix="npmlp-fuzz-"))
MODEL_DIR = SCRATCH / "model"
MODEL_FILES: dict[str, bytes] = {}  # a pristine saved model: file name -> bytes


def file_writer(suffix: str, transform: Callable[[bytes], bytes] = lambda b: b) -> Callable[[bytes], Path]:
    """Write the payload (transformed) to a scratch file with this suffix."""
    def write(payload: bytes) -> Path:
        path = SCRATCH / f"input{suffix}"
        path.write_bytes(transform(payload))
        return path
    return write


def model_writer(fuzzed: str) -> Callable[[bytes], Path]:
    """A saved model folder whose file ``fuzzed`` holds the payload, the other file intact."""
    def write(payload: bytes) -> Path:
        for name, content in MODEL_FILES.items():
            (MODEL_DIR / name).write_bytes(payload if name == fuzzed else content)
        return MODEL_DIR
    return write


# name -> (write the payload somewhere, reader of that path, the one exception allowed)
TARGETS: list[tuple[str, Callable[[bytes], Path], Callable[[Path], object], type[Exception]]] = [
    ("idx", file_writer(".idx"), datasets.read_idx, DataError),
    ("idx-gz", file_writer(".gz", gzip.compress), datasets.read_idx, DataError),
    ("table", file_writer(".txt"), datasets.load_text, DataError),
    ("features", file_writer(".npy"), datasets.load_features, DataError),
    ("table-header", file_writer(".csv"), lambda p: datasets.load_text(p, label_column="first", header="yes"),
     DataError),
    ("features-text", file_writer(".csv"), lambda p: datasets.read_features(p, header="auto"), DataError),
]
if load_model is not None:
    TARGETS += [
        ("model-npz", model_writer("model.npz"), load_model, ModelFileError),
        ("model-json", model_writer("config.json"), load_model, ModelFileError),
    ]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    name, write, reader, allowed = TARGETS[data[0] % len(TARGETS)]
    path = write(data[1:])
    try:
        reader(path)
    except allowed:
        pass


def save_pristine_model() -> None:
    """Save a tiny real model for the model targets (its API may change: then skip them)."""
    global TARGETS
    try:
        from npmlp.network import MLP

        save_model(MODEL_DIR, MLP.initialize((2, 3, 2), rng=np.random.default_rng(0)))
        MODEL_FILES.update({name: (MODEL_DIR / name).read_bytes() for name in ("model.npz", "config.json")})
    except Exception as exc:  # noqa: BLE001 - another module's API; report and fuzz the rest
        print(f"model targets off: could not save a model ({exc!r})", file=sys.stderr)
        TARGETS = [t for t in TARGETS if not t[0].startswith("model")]


def seeds() -> dict[str, bytes]:
    """Valid inputs for every target, so mutations start from the real formats."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx = b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes()
    floats = b"\0\0\x0d\x01" + (3).to_bytes(4, "big") + np.array([1.5, -2, 3], ">f4").tobytes()
    npy = io.BytesIO()
    np.save(npy, np.arange(6.0).reshape(2, 3))
    table = "".join(f"{i / 7:.4f},{-i:.1f},{i % 3}\n" for i in range(8)).encode()
    named = ('kind,"x, 1";x2\n' + "".join(f'{"ab"[i % 2]},"{i / 7:.3f}";{-i}\n' for i in range(8))).encode()
    out = {"idx": b"\0" + idx, "idx-f4": b"\0" + floats, "idx-gz": b"\1" + idx,
           "table": b"\2" + table, "table-ws": b"\2" + table.replace(b",", b" "), "features": b"\3" + npy.getvalue(),
           "table-header": b"\4" + named, "table-header-comma": b"\4" + named.replace(b";", b","),
           "features-text": b"\5" + b"a,b\n" + table}
    names = [t[0] for t in TARGETS]
    for target, file in (("model-npz", "model.npz"), ("model-json", "config.json")):
        if target in names:
            out[target] = bytes([names.index(target)]) + MODEL_FILES[file]
    return out


def main() -> None:
    if load_model is not None:
        save_pristine_model()
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None and not corpus.exists():
        corpus.mkdir(parents=True)
        for name, content in seeds().items():
            (corpus / f"seed-{name}").write_bytes(content)
    print(f"fuzzing: {', '.join(t[0] for t in TARGETS)}", file=sys.stderr)
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
