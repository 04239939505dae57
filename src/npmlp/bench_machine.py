"""Facts about the machine a benchmark ran on: versions, BLAS kernel and threads, load; thread pinning."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import fused

BUSY_PER_CORE = 0.5  # a 1-minute load average above this per core: timings unreliable


ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_libraries() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process, as threadpoolctl sees them (numpy's first)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    libs = [{**{k: lib.get(k) for k in keys}, "file": Path(lib["filepath"]).name, "numpy": "numpy" in lib["filepath"]}
            for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return sorted(libs, key=lambda lib: not lib["numpy"])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def cpu_busy() -> tuple[float, float, int] | None:
    """(seconds, busy CPU-seconds of the whole machine, CPUs counted) from /proc/stat, Linux only."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        lines = Path("/proc/stat").read_text().splitlines()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in lines[0].split()[1:9])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        return time.monotonic(), busy, sum(line.startswith("cpu") for line in lines[1:])
    return None


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine_info(threads: int | None) -> dict[str, Any]:
    """Versions, BLAS kernel and threads, CPU, environment and load of this machine, now."""
    libs = blas_libraries()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": fused.version(),  # the update rules' compiled loops, or None: NumPy passes
        "blas": libs[0] if libs else None,
        "blas_libraries": libs,
        "threads_pinned": threads,
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "loadavg_before": loadavg(),
    }


def busy_warnings(machine: dict[str, Any]) -> list[str]:
    """WARN lines when others were using the CPUs before, during or after the run."""
    cores, out = machine["cpu_count"] or 1, []
    limit = BUSY_PER_CORE * cores
    for when in ("before", "after"):
        load = machine.get(f"loadavg_{when}")
        own = machine.get("own_cores", 0.0) if when == "after" else 0.0
        if load and load[0] - own > limit:
            extra = f" ({own:.2f} of it this run's own)" if own else ""
            out.append(f"machine busy: 1-minute load average {load[0]:.2f}{extra} {when} the run on {cores} CPUs "
                       f"(> {BUSY_PER_CORE} per core): timings unreliable")
    others = machine.get("others_cores")
    if others is not None and others > limit:
        out.append(f"machine busy: other processes used {others:.2f} CPUs on average during the run "
                   f"(> {BUSY_PER_CORE} per core): timings unreliable")
    return out


@contextlib.contextmanager
def busy_machine_warnings() -> Iterator[list[str]]:
    """The bench's busy-machine warnings about the timings taken inside the block (for the demo's).

    The list yielded is filled when the block ends.
    """
    machine, start, own = {"cpu_count": os.cpu_count(), "loadavg_before": loadavg()}, cpu_busy(), own_cpu()
    warnings: list[str] = []
    yield warnings
    record_after(machine, start, own)
    warnings += busy_warnings(machine)


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[int | None]:
    """Pin BLAS/OpenMP threads (threadpoolctl) and torch's for the block; yield the BLAS count in force."""
    with contextlib.ExitStack() as stack:
        if threads is not None:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=threads))
        libs = blas_libraries()
        count = libs[0]["num_threads"] if libs else threads
        torch = sys.modules.get("torch")
        if torch is not None and count:
            before = torch.get_num_threads()
            torch.set_num_threads(count)
            stack.callback(torch.set_num_threads, before)
        yield count


def torch_info() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")
    return {"version": torch.__version__, "threads": torch.get_num_threads()} if torch is not None else None


def record_after(machine: dict[str, Any], start: tuple[float, float, int] | None, own_before: float) -> None:
    """Record the load after the run, this run's own CPU use and the others' (from /proc/stat)."""
    machine["loadavg_after"] = loadavg()
    end = cpu_busy()
    if start and end and end[0] > start[0]:
        wall = end[0] - start[0]
        machine["own_cores"] = round((own_cpu() - own_before) / wall, 2)
        machine["others_cores"] = round(max(0.0, (end[1] - start[1]) / wall - machine["own_cores"]), 2)
