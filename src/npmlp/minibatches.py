"""The shuffled minibatches of an epoch, gathered in place or ahead in a background thread.

An epoch visits the rows of ``X`` in the order of a random permutation, ``K`` at a
time. Each minibatch is copied ("gathered") into a reused buffer, so no copy of the
data set is ever made. The copy is a memory-bound pass over ``K`` random rows; for a
small network it costs as much as the minibatch's matrix products (assignment's network on
Fashion-MNIST: 75 us gathering vs 70 us of products per minibatch).

:class:`Prefetcher` overlaps the two: a background thread gathers the next
``CHUNK`` minibatches into one of two buffers while training works on the other.
``np.take`` releases the GIL while it copies, so the copy runs on another core. The
minibatches, and therefore the trained parameters, are bit-identical either way.

While it does, BLAS runs on one thread (:func:`one_blas_thread`, with threadpoolctl): such
light networks' products are too small to gain from a second one, and its spinning
threads would take the cores the gather and the Python step need.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .dtypes import Array, Labels
from .kernels import Workspace, usable_cpus

Minibatches = Generator[tuple[Array, Labels], None, None]
#: A request to the gather thread: ``(X, y, index, Xbuf, ybuf)`` as :func:`gather_rows` takes them.
GatherJob = tuple[Array, Labels, NDArray[np.intp], Array, Labels]
#: Its answer: the gathered ``(X, y)`` rows, or the exception the gather raised.
Gathered = tuple[Array, Labels] | BaseException

#: Minibatches gathered per request to the background thread: fewer requests mean fewer
#: handovers of the GIL (measured on the assignment's network: 1 -> 0.099 s/epoch, 4 -> 0.089 s).
CHUNK = 4
#: Prefetch only when the minibatch's matrix products are light next to its gather: below
#: this many flops per byte of gathered rows. Measured on Fashion-MNIST, 2 cores, one
#: hidden layer of h units: h=10 gains 30% in float64 (7.6 flops/byte) and 25% in float32
#: (15.2); h=16-24 in float64 (12-18) neither gains nor loses; from 24 flops/byte on
#: (h=16 float32, h=32 float64, ..., 512) it loses 2-9%: BLAS already keeps both cores busy.
LIGHT_FLOPS_PER_BYTE = 16.0
#: ... and only when the data set is much larger than the two buffers (a small one is
#: gathered in no time anyway): at least this many chunks per epoch, so the buffers stay
#: within 5% of the data (the memory target allows 15% over the data for all of training).
MIN_CHUNKS = 40


def prefetch_pays(sizes: tuple[int, ...], batch_size: int, itemsize: int, n_rows: int) -> bool:
    """Whether gathering ahead in a thread is expected to speed up training.

    ``sizes`` are the layer sizes ``(d, h1, ..., m)``: forward and backprop do
    ``6 K sum(fan_in * fan_out)`` flops per minibatch against ``K d itemsize`` bytes gathered.
    """
    flops = 6 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    light = flops / (sizes[0] * itemsize) < LIGHT_FLOPS_PER_BYTE
    return light and n_rows >= MIN_CHUNKS * CHUNK * batch_size and usable_cpus() >= 2


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's controller of the loaded BLAS libraries (made once: it scans them), or None."""
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread inside the block (its own count restored after), where threadpoolctl is installed.

    For the light networks that :func:`prefetch_pays` picks. Measured on the assignment's network
    (10 units, float64, K=100, 2 cores), seconds per epoch with the gathering thread, BLAS on
    2 threads against 1: OpenBLAS's Haswell kernel 0.217 vs 0.142 (it threads every small
    product, and its waiting threads spin); the SkylakeX kernel 0.083 vs 0.084 (its small-matrix
    path runs on one thread anyway). The thread count can change a product's last bits: the
    run's software stack records threadpoolctl's version, so a resume without it says so.
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def gather_rows(X: Array, y: Labels, index: Labels, Xbuf: Array, ybuf: Labels) -> tuple[Array, Labels]:
    """Rows ``index`` of ``(X, y)`` copied into the first ``len(index)`` rows of ``Xbuf``, ``ybuf``."""
    k = index.shape[0]
    # NOTE: mode="clip" because the default "raise" stages the rows in a temporary
    # before writing `out`; the indices come from a permutation, so none is clipped.
    return np.take(X, index, axis=0, out=Xbuf[:k], mode="clip"), np.take(y, index, out=ybuf[:k], mode="clip")


def gather_weights(weights: Array, order: Labels, start: int, k: int, buf: Array) -> Array:
    """The weights of the minibatch ``order[start : start + k]``, copied into the first ``k`` entries of ``buf``.

    The rows' weights travel with the rows: the same slice of the same permutation.
    """
    return np.take(weights, order[start : start + k], out=buf[:k], mode="clip")  # NOTE: see gather_rows


def gathered(X: Array, y: Labels, order: Labels, first: int, batch_size: int, ws: Workspace) -> Minibatches:
    """The minibatches ``order[first : first + K]``, ... gathered one at a time into ``ws.X``, ``ws.y``."""
    for start in range(first, X.shape[0], batch_size):
        yield gather_rows(X, y, order[start : start + batch_size], ws.X, ws.y)


def _gather_worker(requests: queue.SimpleQueue[GatherJob | None], results: queue.SimpleQueue[Gathered]) -> None:
    """The background thread: gathers each requested chunk of rows into its buffers."""
    while (job := requests.get()) is not None:
        try:
            results.put(gather_rows(*job))
        except BaseException as e:  # handed to the training thread, raised there
            results.put(e)


class Prefetcher:
    """Gathers minibatches ahead in a background thread; owns its two chunk buffers.

    The buffers (``2 * CHUNK * K`` rows) are made on first use and reused by every
    epoch; the thread lives for one epoch (:meth:`minibatches`).
    """

    def __init__(self, batch_size: int, chunk: int = CHUNK) -> None:
        self.batch_size, self.chunk = batch_size, chunk
        self.buffers: list[tuple[Array, Labels]] = []

    def _buffers(self, X: Array) -> list[tuple[Array, Labels]]:
        rows = self.chunk * self.batch_size
        if not self.buffers or self.buffers[0][0].shape[1:] != X.shape[1:] or self.buffers[0][0].dtype != X.dtype:
            self.buffers = [(np.empty((rows, X.shape[1]), X.dtype), np.empty(rows, np.intp)) for _ in range(2)]
        return self.buffers

    def minibatches(self, X: Array, y: Labels, order: Labels, first: int) -> Minibatches:
        """The minibatches ``order[first : first + K]``, ... as :func:`gathered` yields them.

        While the caller trains on chunk ``i`` (in buffer ``i % 2``), the thread fills
        chunk ``i + 1`` into the other buffer. Closing the generator (or leaving it
        early) stops and joins the thread.
        """
        K, buffers = self.batch_size, self._buffers(X)
        rows = self.chunk * K
        chunks = [order[s : s + rows] for s in range(first, X.shape[0], rows)]
        requests: queue.SimpleQueue[GatherJob | None] = queue.SimpleQueue()
        results: queue.SimpleQueue[Gathered] = queue.SimpleQueue()
        worker = threading.Thread(target=_gather_worker, args=(requests, results), name="npmlp-gather", daemon=True)
        worker.start()
        try:
            if chunks:
                requests.put((X, y, chunks[0], *buffers[0]))
            for i in range(len(chunks)):
                got = results.get()
                if isinstance(got, BaseException):
                    raise got
                if i + 1 < len(chunks):  # the caller is done with buffer (i + 1) % 2: refill it
                    requests.put((X, y, chunks[i + 1], *buffers[(i + 1) % 2]))
                Xc, yc = got
                for j in range(0, Xc.shape[0], K):
                    yield Xc[j : j + K], yc[j : j + K]
        finally:
            requests.put(None)
            worker.join()
