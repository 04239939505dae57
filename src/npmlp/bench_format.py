"""The readable table of a ``npmlp bench`` document."""

from __future__ import annotations

from typing import Any


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _header(doc: dict[str, Any]) -> list[str]:
    m, s = doc["machine"], doc["settings"]
    b = m.get("blas")
    blas_text = (f"{b['internal_api']} {b['version']} kernel {b['architecture']}, {b['num_threads']} threads"
                 if b else "unknown (install threadpoolctl: pip install 'npmlp[bench]')")
    pinned = "pinned" if m["threads_pinned"] is not None else "not pinned"
    torch = m.get("torch")
    env = ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in m["env"].items() if k.startswith("OPENBLAS"))
    load = f"load average {m['loadavg_before']} before, {m.get('loadavg_after')} after"
    if m.get("others_cores") is not None:
        load += f"; during the run this process used {m['own_cores']} CPUs, others {m['others_cores']}"
    return [
        f"npmlp bench: seconds per epoch on {s['dataset']}, K={s['batch_size']}, lr={s['lr']:g}, "
        f"l1={s['l1']:g}, l2={s['l2']:g}; median of {s['repeats']} interleaved rounds "
        f"after {s['warmup_rounds']} warm-up",
        f"numpy {m['numpy']}; BLAS {blas_text} ({pinned}); update rules "
        + (f"compiled by numba {m['numba']}" if m.get("numba") else "as NumPy passes (no numba)")
        + (f"; torch {torch['version']}, {torch['threads']} threads" if torch else ""),
        f"{m['cpu']}, {m['cpu_count']} CPUs; {env}",
        load,
    ]


def _section(c: dict[str, Any], skipped: dict[str, str]) -> list[str]:
    lines = ["", f"[{c['name']}] hidden {c['hidden']}, {c['dtype']}, {c.get('optimizer', 'sgd')} "
                  f"lr={c['lr']:g}, K={c['batch_size']}, l1={c['l1']:g}, l2={c['l2']:g}, "
                  f"{c['rows']} rows x {c['features']} features, {c['classes']} classes",
             f"{'implementation':<14} {'median':>9} {'min':>9} {'max':>9} {'/ npmlp':>8}  note"]
    for name, r in c["results"].items():
        lines.append(f"{name:<14} {r['median']:>9.4f} {r['min']:>9.4f} {r['max']:>9.4f} "
                     f"{r['ratio_to_npmlp']:>7.2f}x  {r['note']}")
    for name, why in skipped.items():
        lines.append(f"{name:<14} {'skipped':>9}  {why}")
    if c.get("npmlp_over_gemm"):
        lines.append(f"npmlp-matrix takes {c['npmlp_over_gemm']:.2f}x the GEMM-only limit "
                     f"(medians; fastest rounds: {c['npmlp_over_gemm_best']:.2f}x)")
    if c.get("steady"):
        lines.append(_steady_line(c["steady"]))
    mem = c.get("memory")
    if mem and "error" not in mem:
        lines.append(f"memory: data {_mb(mem['data_bytes'])}; interpreter before data {_mb(mem['rss_before_data'])}; "
                     f"epoch peak {_mb(mem['epoch_peak'])} = before + {mem['epoch_over_data']:.3f}x data "
                     f"(target {mem['target']:.2f}x: {'met' if mem['within_target'] else 'MISSED'}); "
                     f"with evaluation {mem['eval_over_data']:.3f}x; loading peaked at {_mb(mem['load_peak'])}")
    elif mem:
        lines.append(f"memory: not measured ({mem['error']})")
    return lines


#: How the steady rounds name each peer (see npmlp.bench.steady_rounds).
_PEER_TEXT = {"gemm": "the GEMM-only limit", "torch": "torch's epoch", "sklearn": "sklearn's epoch"}


def _steady_line(st: dict[str, Any]) -> str:
    g, n = st["within"]
    head = (f"steady rounds (GEMM-only within {g:.0%} and npmlp within {n:.0%} of their fastest): "
            f"{len(st['rounds'])} of {st['of']}")
    if not st["rounds"]:
        return head + ": the machine never ran steadily; run again"
    ranges = [f"{st[k][0]:.2f}-{st[k][1]:.2f}x {text}" for short, text in _PEER_TEXT.items()
              if (k := f"npmlp_over_{short}") in st]
    return head + "; in them npmlp-matrix takes " + ", ".join(ranges)


def format_bench(doc: dict[str, Any]) -> str:
    """A readable table of a :func:`run_bench` document: one section per configuration."""
    lines = _header(doc) + [f"WARNING: {w}" for w in doc["warnings"]]
    for c in doc["configs"]:
        lines += _section(c, doc.get("skipped", {}))
    return "\n".join(lines)
