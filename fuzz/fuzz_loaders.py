"""Fuzz npmlp's file readers with atheris: only the library's own error may escape.

Targets (the first input byte picks one, the rest is the file's content):

- ``idx``: :func:`npmlp.datasets.read_idx` on the bytes as they are;
- ``idx-gz``: the same bytes gzipped first, so the fuzzer reaches the IDX parser
  behind the gzip layer;
- ``table``: :func:`npmlp.datasets.load_text` (CSV/whitespace data set);
- ``features``: :func:`npmlp.datasets.load_features` on a ``.npy`` file;
- ``model``: ``npmlp.persistence.load_model`` on a ``.npz`` file, when that module
  exists (another engineer writes it; it must raise only ``ModelFileError``).

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
    import numpy as np  # noqa: F401  (imported here so datasets' numpy use is shared)
    from npmlp import datasets
    from npmlp.errors import DataError, ModelFileError

# Hook for the model loader: fuzzed only once npmlp.persistence.load_model exists.
try:
    with atheris.instrument_imports():
        from npmlp.persistence import load_model
except ImportError:
    load_model = None

SCRATCH = Path(tempfile.mkdtemp(prefix="npmlp-fuzz-"))

# name -> (file suffix, transform of the payload, reader, the one exception allowed)
TARGETS: list[tuple[str, str, Callable[[bytes], bytes], Callable[[Path], object], type[Exception]]] = [
    ("idx", ".idx", lambda b: b, datasets.read_idx, DataError),
    ("idx-gz", ".gz", gzip.compress, datasets.read_idx, DataError),
    ("table", ".txt", lambda b: b, datasets.load_text, DataError),
    ("features", ".npy", lambda b: b, datasets.load_features, DataError),
]
if load_model is not None:
    TARGETS.append(("model", ".npz", lambda b: b, load_model, ModelFileError))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    name, suffix, transform, reader, allowed = TARGETS[data[0] % len(TARGETS)]
    path = SCRATCH / f"input{suffix}"
    path.write_bytes(transform(data[1:]))
    try:
        reader(path)
    except allowed:
        pass


def seeds() -> dict[str, bytes]:
    """Valid inputs for every target, so mutations start from the real formats."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx = b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape) + images.tobytes()
    floats = b"\0\0\x0d\x01" + (3).to_bytes(4, "big") + np.array([1.5, -2, 3], ">f4").tobytes()
    npy = io.BytesIO()
    np.save(npy, np.arange(6.0).reshape(2, 3))
    table = "".join(f"{i / 7:.4f},{-i:.1f},{i % 3}\n" for i in range(8)).encode()
    out = {"idx": b"\0" + idx, "idx-f4": b"\0" + floats, "idx-gz": b"\1" + idx,
           "table": b"\2" + table, "table-ws": b"\2" + table.replace(b",", b" "), "features": b"\3" + npy.getvalue()}
    if load_model is not None:
        out["model"] = b"\4" + npy.getvalue()  # better: a real model.npz from npmlp.persistence
    return out


def main() -> None:
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
