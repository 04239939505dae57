"""Memory and time bounds: what a run will need, checked before it is allocated.

The budget is ``--max-memory`` when given, else the kernel's ``MemAvailable``
(``/proc/meminfo``); where neither is known nothing is refused. A run over the budget
stops with one line: what it needs, what there is, and the flag that would help.

Training needs about (``s`` bytes per number: 8 for float64, 4 for float32)::

    data        s * d * (n_train + n_valid + n_test)
    parameters  s * P * (3 + k)      P = sum over layers of (fan_in + 1) * fan_out;
                                     the weights, their gradients, a copy saved per epoch,
                                     k = optimizer slots (sgd 0, momentum/nesterov 1,
                                     adam 2) + 1 with early stopping (the best epoch's)
    workspace   s * K' * (2 * d + 2 * (h_1 + ... + h_L) + 3 * m)
                                     K' = min(K, n_train): the minibatch (and the one
                                     gathered ahead), pre- and post-activations, logits,
                                     probabilities and their gradient
    evaluation  s * E * (2 * (h_1 + ... + h_L) + 2 * m) + s * n_test * m
                                     E = min(2048, n): batched forward passes, then
                                     the test probabilities of the report
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence
from typing import IO

from .errors import NpmlpError

__all__ = ["MemoryLimitError", "available", "check", "format_size", "limit", "read_bounded", "training_bytes"]

MEMINFO = "/proc/meminfo"
EVAL_BATCH = 2048
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}


class MemoryLimitError(NpmlpError, MemoryError):
    """Work that would need more memory than the budget allows."""


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def available() -> int | None:
    """The kernel's estimate of memory available without swapping (bytes), None when unknown."""
    try:
        with open(MEMINFO, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def limit(max_memory: int | None) -> tuple[int | None, str]:
    """The budget in bytes and where it comes from."""
    if max_memory is not None:
        return max_memory, "allowed by --max-memory"
    return available(), "available (MemAvailable)"


def check(need: int, what: str, *, max_memory: int | None, hint: str) -> None:
    """Raise :class:`MemoryLimitError` when ``need`` bytes exceed the budget."""
    have, source = limit(max_memory)
    if have is not None and need > have:
        raise MemoryLimitError(f"{what} would need about {format_size(need)}; {format_size(have)} {source}; "
                               f"{hint}.")


def training_bytes(*, rows: Sequence[int], d: int, hidden: Sequence[int], m: int, batch_size: int,
                   itemsize: int, optimizer: str, early_stopping: bool) -> dict[str, int]:
    """The terms of the module docstring's formula, in bytes: data, parameters, workspace, evaluation."""
    sizes = [d, *hidden, m]
    P = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    slots = OPTIMIZER_SLOTS[optimizer] + int(early_stopping)
    n_train, n = rows[0], sum(rows)
    K, E, H = min(batch_size, max(n_train, 1)), min(EVAL_BATCH, max(n, 1)), sum(hidden)
    return {"data": itemsize * d * n, "parameters": itemsize * P * (3 + slots),
            "workspace": itemsize * K * (2 * d + 2 * H + 3 * m),
            "evaluation": itemsize * (E * (2 * H + 2 * m) + rows[-1] * m)}


def read_bounded(stream: IO[bytes], name: str, *, limit: int, timeout: float) -> bytes:
    """All of ``stream`` (a pipe, standard input), refused past ``limit`` bytes or ``timeout`` seconds."""
    from .errors import DataError

    deadline, size = time.monotonic() + timeout, 0
    chunks: list[bytes] = []
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream: nothing can block
        fd = None
    if fd is None:
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise DataError(f"{name}: more than {format_size(limit)} of input; pass a file, or raise --max-memory.")
        return data
    while True:
        left = deadline - time.monotonic()
        ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            raise DataError(f"{name}: no end of input after {timeout:g} s (a pipe whose writer never closes it?); "
                            "close the input, or pass --timeout S.")
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:  # a non-blocking pipe said ready, then had nothing after all
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise DataError(f"{name}: more than {format_size(limit)} of input; pass a file, or raise --max-memory.")
        chunks.append(chunk)
