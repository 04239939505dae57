#!/usr/bin/env python
"""Run the benchmark twice: with OPENBLAS_CORETYPE as set, and with it and OPENBLAS_L2_SIZE unset.

OpenBLAS picks its GEMM kernel for the CPU it detects at load time; OPENBLAS_CORETYPE
forces one (e.g. Haswell on a CPU whose AVX-512 kernel is slower, or a virtual CPU
that hides its model), and OPENBLAS_L2_SIZE overrides the cache size it blocks for.
Both are read when the library loads, so each setting needs its own process:

    .venv/bin/python benchmarks/coretype.py                       # as set vs unset
    .venv/bin/python benchmarks/coretype.py --coretype Haswell    # Haswell vs unset
    .venv/bin/python benchmarks/coretype.py --rounds 2 -- --config A --repeats 3

Arguments after ``--`` go to run_bench.py. Prints, per run, the kernel OpenBLAS ran
(threadpoolctl's ``architecture``) and the medians, then the ratios between the runs.
The runs alternate (as set, unset, as set, unset, ...) for ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def environments(coretype: str | None) -> dict[str, dict[str, str]]:
    """The two environments: as set (or with ``coretype`` forced), and with UNSET removed."""
    as_set = dict(os.environ)
    if coretype:
        as_set["OPENBLAS_CORETYPE"] = coretype
    label = f"OPENBLAS_CORETYPE={as_set.get('OPENBLAS_CORETYPE', '(unset)')}"
    return {label: as_set, "CORETYPE and L2_SIZE unset": {k: v for k, v in os.environ.items() if k not in UNSET}}


def run(env: dict[str, str], args: list[str], out: Path, name: str) -> dict:
    cmd = [sys.executable, str(HERE / "run_bench.py"), "--out", str(out), "--name", name, *args]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / f"{name}.json").read_text())


def summary(label: str, docs: list[dict]) -> dict[tuple[str, str], float]:
    """Print the kernel and the median over rounds of each config's medians; return the latter."""
    blas = docs[0]["machine"]["blas"] or {}
    print(f"{label}: kernel {blas.get('architecture')} ({blas.get('internal_api')} {blas.get('version')}, "
          f"{blas.get('num_threads')} threads), env {docs[0]['machine']['env']}")
    medians: dict[tuple[str, str], float] = {}
    for c in docs[0]["configs"]:
        for impl in c["results"]:
            runs = sorted(
                d_c["results"][impl]["median"] for d in docs for d_c in d["configs"] if d_c["name"] == c["name"]
            )
            medians[c["name"], impl] = runs[len(runs) // 2]
            print(f"  {c['name']:<14} {impl:<14} {medians[c['name'], impl]:.4f} s/epoch")
    return medians


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coretype", default=None, help="force this OPENBLAS_CORETYPE in the first run")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds of the two runs")
    p.add_argument("bench_args", nargs="*", help="after --: arguments of run_bench.py")
    a = p.parse_args()
    envs = environments(a.coretype)
    docs: dict[str, list[dict]] = {label: [] for label in envs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for i, (label, env) in enumerate(envs.items()):
                print(f"round {r + 1}/{a.rounds}: {label}", file=sys.stderr, flush=True)
                docs[label].append(run(env, a.bench_args, Path(tmp), f"run{r}-{i}"))
    (first, m1), (second, m2) = ((label, summary(label, d)) for label, d in docs.items())
    print(f"\nratio ({first}) / ({second}):")
    for key in [k for k in m1 if k in m2]:
        print(f"  {key[0]:<14} {key[1]:<14} {m1[key] / m2[key]:.3f}")
    for label, d in docs.items():
        for w in d[-1]["warnings"]:
            print(f"WARNING ({label}): {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
