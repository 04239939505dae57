"""Minibatches gathered ahead in a background thread: same bits, clean stops, no allocation."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from npmlp import minibatches as M
from npmlp import training
from npmlp.kernels import train_step
from npmlp.training import TrainConfig, Trainer, train


def data(n: int = 1234, d: int = 20, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, d)).astype(dtype)
    return X, (X[:, 0] > 0).astype(np.intp) + 2 * (X[:, 1] > 0)


def trainer(prefetch: bool, config: TrainConfig, d: int = 20) -> Trainer:
    rng = np.random.default_rng(config.seed)
    t = Trainer(config.build(d, 4, rng), config, rng)
    t.prefetch = prefetch
    return t


def gather_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "npmlp-gather"]


@pytest.mark.parametrize("batch_size", [1, 7, 100])  # 1234 rows: the last minibatch and chunk are partial
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prefetched_minibatches_are_the_gathered_ones(batch_size: int, dtype: type) -> None:
    X, y = data(dtype=dtype)
    order = np.random.default_rng(0).permutation(X.shape[0])
    config = TrainConfig(hidden=[4], batch_size=batch_size, dtype=np.dtype(dtype).name)
    ws = trainer(False, config).workspace
    plain = [(a.copy(), b.copy()) for a, b in M.gathered(X, y, order, 3 * batch_size, batch_size, ws)]
    ahead = [(a.copy(), b.copy()) for a, b in M.Prefetcher(batch_size).minibatches(X, y, order, 3 * batch_size)]
    assert len(plain) == len(ahead) == -(-(X.shape[0] - 3 * batch_size) // batch_size)
    for (a, b), (c, d) in zip(plain, ahead, strict=True):
        assert a.dtype == c.dtype == dtype and np.array_equal(a, c) and np.array_equal(b, d)
    assert not gather_threads()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_with_prefetch_gives_the_same_bits(optimizer: str) -> None:
    X, y = data()
    config = TrainConfig(hidden=[8], batch_size=16, epochs=3, lr=0.05, optimizer=optimizer, l1=1e-3, l2=1e-3, seed=4)
    runs = []
    for prefetch in (False, True):
        t = trainer(prefetch, config)
        runs.append(train({"train": (X, y)}, config, trainer=t))
    for k, P in runs[0].net.params.items():
        assert np.array_equal(P, runs[1].net.params[k]), k
    assert not gather_threads()


def test_a_stop_mid_epoch_joins_the_thread_and_resumes_exactly() -> None:
    X, y = data()
    config = TrainConfig(hidden=[8], batch_size=10, epochs=2, lr=0.05, seed=6)
    full = trainer(True, config)
    full.run_epoch(X, y)
    full.run_epoch(X, y)

    t = trainer(True, config)
    t.run_epoch(X, y)

    def stop_after_5(*args, **kwargs):  # type: ignore[no-untyped-def]
        train_step(*args, **kwargs)
        t.stop_requested = t.state.batch == 4  # this is the 5th minibatch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_step", stop_after_5)
        assert t.run_epoch(X, y) is False and t.state.batch == 5
    assert not gather_threads()  # the generator was closed: the thread is gone
    t.stop_requested = False
    assert t.run_epoch(X, y) is True
    for k, P in full.net.params.items():
        assert np.array_equal(P, t.net.params[k]), k


def test_an_error_in_the_gathering_thread_is_raised_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = data()
    t = trainer(True, TrainConfig(hidden=[4], batch_size=10))

    def broken_take(*args, **kwargs):
        raise MemoryError("no room for the rows")

    monkeypatch.setattr(M.np, "take", broken_take)
    with pytest.raises(MemoryError, match="no room"):
        t.run_epoch(X, y)
    assert not gather_threads()


def test_a_prefetched_epoch_allocates_no_full_size_temporary() -> None:
    X, y = data(n=4000, d=300)
    t = trainer(True, TrainConfig(hidden=[64], batch_size=100, l1=1e-4, l2=1e-4), d=300)
    t.run_epoch(X, y)  # warm up: the chunk buffers are made once, here
    tracemalloc.start()
    t.run_epoch(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # A minibatch of inputs is 100 x 300 float64 = 240 kB, a chunk four of them: the
    # epoch allocates its permutation (32 kB), the thread and its queues, nothing more.
    assert peak < 100_000, peak


def test_prefetch_is_chosen_for_light_networks_on_large_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "usable_cpus", lambda: 2)
    assert M.prefetch_pays((784, 10, 10), 100, 8, 50_000)  # the seed's network on Fashion-MNIST
    assert not M.prefetch_pays((784, 512, 10), 100, 4, 50_000)  # products heavy enough to use both cores
    assert not M.prefetch_pays((784, 10, 10), 100, 8, 5_000)  # too little data to bother
    smallest = M.MIN_CHUNKS * M.CHUNK * 100  # rows: the two chunk buffers are then 5% of the data
    assert M.prefetch_pays((784, 10, 10), 100, 8, smallest) and not M.prefetch_pays((784, 10, 10), 100, 8, smallest - 1)
    assert 0.05 * smallest >= 2 * M.CHUNK * 100
    monkeypatch.setattr(M, "usable_cpus", lambda: 1)
    assert not M.prefetch_pays((784, 10, 10), 100, 8, 50_000)  # no second core to gather on


def test_the_loop_backprop_never_prefetches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "usable_cpus", lambda: 2)
    X = np.zeros((100_000, 2))
    for backprop, expected in (("matrix", True), ("loop", False)):  # the same light network on the same data
        t = trainer(None, TrainConfig(hidden=[2], batch_size=10, backprop=backprop), d=2)  # type: ignore[arg-type]
        assert t.uses_prefetch(X) is expected, backprop


def test_a_light_network_on_enough_data_trains_through_the_prefetcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "usable_cpus", lambda: 2)
    X, y = data(n=M.MIN_CHUNKS * M.CHUNK * 10, d=4)  # just enough rows for K=10
    t = trainer(None, TrainConfig(hidden=[3], batch_size=10), d=4)  # type: ignore[arg-type]
    seen: list[int] = []
    real = t.prefetcher.minibatches

    def spy(*args, **kwargs):
        for batch in real(*args, **kwargs):
            seen.append(len(gather_threads()))
            yield batch

    monkeypatch.setattr(t.prefetcher, "minibatches", spy)
    assert t.uses_prefetch(X) and t.run_epoch(X, y)
    assert len(seen) == X.shape[0] // 10 and set(seen) == {1}  # every minibatch came with the thread alive
    assert not gather_threads()


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture
def steps_blas_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The BLAS thread count each training step runs with, recorded as the steps run."""
    seen: list[int] = []

    def step(*args: object, **kwargs: object) -> None:
        seen.append(blas_threads())
        train_step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "train_step", step)
    return seen


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_prefetching_epoch_runs_blas_on_one_thread_and_restores_it(prefetch: bool,
                                                                      steps_blas_threads: list[int]) -> None:
    from threadpoolctl import threadpool_limits

    seen = steps_blas_threads
    X, y = data()
    t = trainer(prefetch, TrainConfig(hidden=[4], batch_size=10))
    with threadpool_limits(limits=2, user_api="blas"):
        t.run_epoch(X, y)
        assert blas_threads() == 2  # restored
    assert set(seen) == ({1} if prefetch else {2})


def test_without_threadpoolctl_the_blas_threads_stay(steps_blas_threads: list[int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr(M, "_blas_controller", lambda: None)  # as if threadpoolctl were not installed
    seen = steps_blas_threads
    X, y = data()
    t = trainer(True, TrainConfig(hidden=[4], batch_size=10))
    with threadpool_limits(limits=2, user_api="blas"):
        assert t.run_epoch(X, y)
    assert seen and set(seen) == {2}  # the prefetching epoch ran, on the threads it was given
