#!/usr/bin/env python
"""Run the npmlp speed benchmark and write its table and JSON document to files.

    .venv/bin/python benchmarks/run_bench.py                      # configs A and B, npmlp only
    .venv/bin/python benchmarks/run_bench.py --peers --repeats 7  # with scikit-learn and PyTorch
    .venv/bin/python benchmarks/run_bench.py --hidden 256 --dtype float32 --threads 1

See benchmarks/README.md for what is measured. Writes OUT/bench-<stamp>.txt and .json
(OUT defaults to benchmarks/results/) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from npmlp.bench import PRESETS, format_bench, run_bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", nargs="+", choices=sorted(PRESETS), default=None,
                   help="preset configurations (A: hidden 10 float64; B: hidden 512 float32); default A B")
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="hidden sizes like 10 or 256,128 (instead of --config)")
    p.add_argument("--dtype", choices=("float64", "float32"), action="append", default=None,
                   help="with --hidden: one section per --dtype (default both)")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--l1", type=float, default=1e-3)
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count(), help="BLAS/OpenMP/torch threads, pinned for the run (default: usable CPUs)")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--loop-batches", type=int, default=50)
    p.add_argument("--peers", action="store_true", help="also time scikit-learn and PyTorch")
    p.add_argument("--no-loop", action="store_true", help="skip the loop backprop")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default=None, help="file name stem (default bench-<date>-<time>)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.hidden is not None:
        configs = [{"name": f"h{'-'.join(map(str, a.hidden))}-{dt}", "hidden": a.hidden, "dtype": dt}
                   for dt in (a.dtype or ["float64", "float32"])]
    else:
        configs = [{"name": k, **PRESETS[k]} for k in (a.config or sorted(PRESETS))]
    doc = run_bench(dataset=a.dataset, data_dir=a.data_dir, configs=configs, batch_size=a.batch_size, lr=a.lr,
                    l1=a.l1, l2=a.l2, peers=a.peers, loop=not a.no_loop, repeats=a.repeats, threads=a.threads,
                    max_rows=a.max_rows, loop_batches=a.loop_batches, memory=not a.no_memory, progress=True)
    table = format_bench(doc)
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / (a.name or time.strftime("bench-%Y%m%d-%H%M%S"))
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".txt").write_text(table + "\n")
    print(table)
    print(f"\nwrote {stem}.txt and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
