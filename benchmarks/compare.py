#!/usr/bin/env python
"""Is this change faster? The working tree's training epoch against a git revision's, paired.

    .venv/bin/python benchmarks/compare.py HEAD~1             # configs A and B, 25 rounds
    .venv/bin/python benchmarks/compare.py main --config A --rounds 40

On a shared machine two runs of the same epoch can differ by 30%, more than most changes
to the hot path are worth. This script loads the package twice in one process (the
working tree's ``npmlp`` and ``REV``'s copy, extracted with ``git archive`` into a
temporary folder and imported as ``npmlp_base``) and alternates their epochs with the
GEMM-only limit (base, new, gemm, base, new, gemm, ...). Each round's ``new / base`` is a
paired ratio: a slow phase of the machine hits both sides of it. Reported: the median of
the paired ratios and its quartiles, each side's median ratio to GEMM-only, the minima.
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from npmlp.bench import PRESETS, Problem, gemm_epoch, npmlp_epoch, training_data

ROOT = Path(__file__).resolve().parents[1]


def load_revision(rev: str, into: Path):
    """``npmlp.bench`` of git revision ``rev``, imported as ``npmlp_base.bench``."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/npmlp"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        try:
            t.extractall(into, filter="data")
        except TypeError:  # Python < 3.10.12 / 3.11.4: no extraction filters (our own repository's archive)
            t.extractall(into)
    (into / "src" / "npmlp").rename(into / "npmlp_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("npmlp_base.bench")


def compare(
    base_bench, name: str, rounds: int, rest: float, *, data: tuple | None = None, batch_size: int = 100
) -> dict:
    """Alternate REV's epoch, this tree's and GEMM-only's ``rounds`` times on preset ``name``.

    ``data``, an ``(X, y)`` pair, replaces Fashion-MNIST's training split.
    """
    c = PRESETS[name]
    X, y, m = training_data("fashion-mnist", c["dtype"], data=data)
    p = Problem(X, y, m, tuple(c["hidden"]), c.get("batch_size", batch_size), c.get("lr", 0.03), c["l1"], c["l2"], 0,
                c.get("optimizer", "sgd"))
    epochs = {"base": base_bench.npmlp_epoch(p), "new": npmlp_epoch(p), "gemm": gemm_epoch(p)}
    for f in epochs.values():  # warm-up
        f()
    runs: dict[str, list[float]] = {k: [] for k in epochs}
    for _ in range(rounds):
        for k, f in epochs.items():
            time.sleep(rest)
            runs[k].append(f())
    b, n, g = (np.array(runs[k]) for k in ("base", "new", "gemm"))
    q1, med, q3 = np.percentile(n / b, [25, 50, 75])
    return {"config": name, "new_over_base": med, "quartiles": (q1, q3), "base_over_gemm": float(np.median(b / g)),
            "new_over_gemm": float(np.median(n / g)), "min": {"base": b.min(), "new": n.min(), "gemm": g.min()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the git revision to compare against (e.g. HEAD, HEAD~1, main)")
    ap.add_argument("--config", nargs="+", choices=sorted(PRESETS), default=["A", "B"])
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--rest", type=float, default=0.1, help="seconds of rest before each epoch (not timed)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = load_revision(args.rev, Path(tmp))
        for name in args.config:
            d = compare(base, name, args.rounds, args.rest)
            mins = d["min"]
            print(f"[{name}] new / {args.rev}: median {d['new_over_base']:.3f} of {args.rounds} paired rounds "
                  f"(quartiles {d['quartiles'][0]:.3f}-{d['quartiles'][1]:.3f}); over GEMM-only: "
                  f"{args.rev} {d['base_over_gemm']:.3f}x, new {d['new_over_gemm']:.3f}x; fastest rounds "
                  f"{args.rev} {mins['base']:.4f} s, new {mins['new']:.4f} s, GEMM-only {mins['gemm']:.4f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
