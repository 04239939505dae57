"""The training loop: learning, determinism, loop == matrix, stopping rules, divergence, memory."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from npmlp.training import TrainConfig, Trainer, TrainResult, evaluate, train


def rings(n: int, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings (radius 1.0: class 0, radius 0.6: class 1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(y == 0, 1.0, 0.6)
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)].astype(dtype)
    return X, y


def splits(dtype=np.float64) -> dict:
    X, y = rings(600, 0, dtype)
    return {"train": (X[:360], y[:360]), "valid": (X[360:480], y[360:480]), "test": (X[480:], y[480:])}



@contextlib.contextmanager
def stop_in_epoch_2_after_5_minibatches(trainer: Trainer) -> Iterator[None]:
    """Wrap the training step so that the trainer is asked to stop after the fifth minibatch of epoch 2."""
    from npmlp import kernels, training

    def stopping_step(*args: Any, **kwargs: Any) -> None:
        kernels.train_step(*args, **kwargs)
        if trainer.state.epoch == 1 and trainer.state.batch == 4:
            trainer.stop_requested = True

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_step", stopping_step)
        yield

def test_learns_the_rings() -> None:
    result = train(splits(), TrainConfig(hidden=[10], batch_size=10, epochs=60, lr=0.1, seed=1))
    assert result.stopped_because == "max_epochs" and result.epochs_run == 60
    assert result.final()["test_error"] <= 0.02
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"] / 4
    metrics = {f"{s}_{m}" for s in ("train", "valid", "test") for m in ("loss", "error")}
    assert set(first) == {"epoch", "lr", "seconds"} | metrics


def test_same_seed_same_bits() -> None:
    config = TrainConfig(hidden=[8], batch_size=7, epochs=5, lr=0.05, optimizer="adam", l1=1e-3, l2=1e-3, seed=3)
    a, b = train(splits(), config), train(splits(), config)
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_loop_and_matrix_give_the_same_trajectory(optimizer: str) -> None:
    kw = dict(hidden=[6], batch_size=16, epochs=3, lr=0.02, optimizer=optimizer, l1=1e-3, l2=1e-3, seed=5)
    m = train(splits(), TrainConfig(backprop="matrix", **kw))
    lo = train(splits(), TrainConfig(backprop="loop", **kw))
    for k in m.net.params:
        np.testing.assert_allclose(lo.net.params[k], m.net.params[k], rtol=1e-9, atol=1e-12)


def test_early_stopping_restores_the_best_epoch() -> None:
    # A learning rate this high makes the validation error wander: patience 2 stops it.
    result = train(splits(), TrainConfig(hidden=[10], batch_size=10, epochs=200, lr=0.5, early_stopping=2, seed=0))
    assert result.stopped_because == "early_stopping"
    best = result.best_epoch
    assert best is not None and result.epochs_run == best + 2
    errors = [r["valid_error"] for r in result.history]
    assert errors[best - 1] == min(errors)
    X, y = splits()["valid"]
    assert evaluate(result.net, X, y)[1] == pytest.approx(errors[best - 1])


def test_tol_stops_when_parameters_settle() -> None:
    result = train(splits(), TrainConfig(hidden=[4], batch_size=360, epochs=500, lr=1e-4, tol=1e-3, seed=0))
    assert result.stopped_because == "converged" and result.epochs_run < 500


def test_divergence_is_caught_and_parameters_stay_finite() -> None:
    result = train(splits(), TrainConfig(hidden=[10], batch_size=10, epochs=5, lr=1e6, seed=0))
    assert result.stopped_because == "diverged"
    assert "Lower the learning rate" in result.message
    assert all(np.isfinite(P).all() for P in result.net.params.values())


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (1e-4, 0.0), (0.0, 1e-4), (1e-4, 1e-4)])
def test_float32_stays_float32(optimizer: str, l1: float, l2: float) -> None:
    config = TrainConfig(hidden=[8], dtype="float32", optimizer=optimizer, l1=l1, l2=l2, epochs=2)
    result = train(splits(np.float32), config)
    assert {P.dtype for P in result.net.params.values()} == {np.dtype(np.float32)}
    rng = np.random.default_rng(0)  # and through the split update (kernels.update_into), which the above skips
    trainer = Trainer.new(TrainConfig(hidden=[600], dtype="float32", optimizer=optimizer, l1=l1, l2=l2), 300, 10)
    trainer.run_epoch(rng.standard_normal((200, 300)).astype(np.float32), rng.integers(0, 10, 200))
    arrays = [*trainer.net.params.values(), *trainer.optimizer.state.values(), *trainer.workspace.grads.values()]
    assert {a.dtype for a in arrays if a.ndim} == {np.dtype(np.float32)}


def test_float64_data_for_a_float32_net_is_converted_once() -> None:
    result = train(splits(np.float64), TrainConfig(hidden=[8], dtype="float32", epochs=1))
    assert result.net.dtype == np.float32


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (1e-4, 0.0), (0.0, 1e-4), (1e-4, 1e-4)])
def test_an_epoch_allocates_no_full_size_temporary(optimizer: str, l1: float, l2: float) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 300))
    y = rng.integers(0, 10, 1000)
    # W1's update is split over two threads where it is heavy enough (adam, nesterov with
    # the penalty: kernels.SPLIT_WORK): that path is traced too.
    config = TrainConfig(hidden=[256], batch_size=100, epochs=1, optimizer=optimizer, l1=l1, l2=l2)
    net = config.build(300, 10, rng)
    trainer = Trainer(net, config, rng)
    trainer.run_epoch(X, y)  # warm up: lazily created state
    tracemalloc.start()
    trainer.run_epoch(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # W1 is 256 x 300 float64 = 614 kB, a minibatch of inputs 100 x 300 = 240 kB, of
    # hidden units 100 x 256 = 205 kB. The epoch may allocate its permutation (8 kB),
    # (100, 10) arrays and NumPy's fixed 64 kB ufunc buffer (broadcast bias add), nothing
    # of any of those sizes.
    assert peak < 100_000, peak


def test_interrupt_then_continue_matches_an_uninterrupted_run() -> None:
    config = TrainConfig(hidden=[8], batch_size=10, epochs=3, lr=0.05, optimizer="momentum", seed=2)
    full = train(splits(), config)
    rng = np.random.default_rng(config.seed)
    X, y = splits()["train"]
    net = config.build(2, 2, rng)
    trainer = Trainer(net, config, rng)
    calls = {"n": 0}

    def stop_in_epoch_two(t: Trainer) -> None:
        calls["n"] += 1

    # Stop after 5 minibatches of epoch 2 by flipping the flag from a wrapped training step.
    with stop_in_epoch_2_after_5_minibatches(trainer):
        first = train(splits(), config, trainer=trainer, on_epoch=stop_in_epoch_two)
    assert first.stopped_because == "interrupted" and trainer.state.batch == 5
    assert_net_is_final(first)  # the result holds epoch 1's parameters; the trainer goes on mid-epoch
    assert first.net is not trainer.net
    trainer.stop_requested = False
    rest = train(splits(), config, trainer=trainer)
    assert rest.stopped_because == "max_epochs"
    for k in full.net.params:
        np.testing.assert_array_equal(rest.net.params[k], full.net.params[k])


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1. Got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="early_stopping needs a validation split"):
        train({"train": splits()["train"]}, TrainConfig(early_stopping=3))


def test_an_epoch_callback_can_end_the_run_with_its_reason() -> None:
    def after_three(trainer: Trainer) -> None:
        if trainer.state.epoch == 3:
            trainer.stop_after_epoch = "enough"

    result = train(splits(), TrainConfig(hidden=[4], epochs=50), on_epoch=after_three)
    assert result.stopped_because == "enough" and result.epochs_run == 3


def assert_net_is_final(result: TrainResult) -> None:
    """The returned network's errors on every split are those ``result.final()`` reports."""
    for s, (X, y) in splits().items():
        assert evaluate(result.net, X, y)[1] == result.final()[f"{s}_error"], s


def test_the_returned_net_is_the_best_epoch_even_when_the_run_diverges() -> None:
    # issue 12 case 3: the diverged path returned the last epoch's parameters, final() the best epoch's.
    config = TrainConfig(hidden=[10], batch_size=10, epochs=200, lr=0.5, lr_schedule="step", lr_step=1, lr_gamma=3,
                         early_stopping=50, seed=0)
    result = train(splits(), config)
    assert result.stopped_because == "diverged" and result.best_epoch is not None
    assert result.best_epoch < result.epochs_run
    assert f"kept the parameters of epoch {result.best_epoch}." in result.message
    assert_net_is_final(result)


@pytest.mark.parametrize("stop", ["early_stopping", "converged", "diverged", "max_epochs"])
def test_every_way_of_ending_returns_the_net_final_describes(stop: str) -> None:
    kw = {"early_stopping": dict(lr=0.5, early_stopping=2), "converged": dict(lr=1e-4, batch_size=360, tol=1e-3),
          "diverged": dict(lr=1e6), "max_epochs": dict(lr=0.1, epochs=5)}[stop]
    result = train(splits(), TrainConfig(**{"hidden": [10], "epochs": 500, "seed": 0, **kw}))
    assert result.stopped_because == stop
    if result.history:
        assert_net_is_final(result)


def test_no_progress_is_recorded_against_the_majority_class() -> None:
    # issue 12 case 9: ending at chance used to look like any other run.
    good = train(splits(), TrainConfig(hidden=[10], epochs=20, lr=0.1, seed=1))
    assert not good.no_progress and good.majority_error == 0.5 and good.message == ""
    X, y = splits()["train"]
    flat = {"train": (np.zeros_like(X), y)}  # the rows cannot be told apart: the error stays at 50%
    result = train(flat, TrainConfig(hidden=[4], epochs=3))
    assert result.no_progress and result.stopped_because == "max_epochs"
    assert "no progress: the final train error (50.00%) is not below 50.00%" in result.message
    assert "learning rate (now 0.03)" in result.message
    y_skewed = np.where(np.arange(len(y)) % 10 == 0, 1, 0)  # 90% class 0: 10% error is no progress either
    result = train({"train": (np.zeros_like(X), y_skewed)}, TrainConfig(hidden=[4], epochs=3))
    assert result.majority_error == pytest.approx(0.1) and result.no_progress


def test_a_run_diverging_in_its_first_epoch_made_no_progress() -> None:
    result = train(splits(), TrainConfig(hidden=[10], batch_size=10, epochs=5, lr=1e6, seed=0))
    assert result.stopped_because == "diverged" and result.epochs_run == 0 and result.no_progress


def test_running_train_metrics_are_the_epochs_minibatches_and_change_no_parameter() -> None:
    # Full-batch gradient descent: epoch e's running loss is the loss before its one step, i.e.
    # the exact loss after epoch e - 1. The parameters and the other splits are untouched.
    X, y = rings(120, 3)
    data = {"train": (X, y), "valid": rings(40, 4)}
    config = TrainConfig(hidden=[6], batch_size=120, epochs=6, lr=0.3, seed=1)
    exact = train(data, config)
    running = train(data, TrainConfig(**{**config.to_dict(), "train_metrics": "running"}))
    for k in exact.net.params:
        np.testing.assert_array_equal(running.net.params[k], exact.net.params[k])
    before = evaluate(TrainConfig.build(config, 2, 2, np.random.default_rng(1)), X, y)
    want = [before] + [(r["train_loss"], r["train_error"]) for r in exact.history[:-1]]
    got = [(r["train_loss"], r["train_error"]) for r in running.history]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert [r["valid_loss"] for r in running.history] == [r["valid_loss"] for r in exact.history]


@pytest.mark.parametrize("metrics", ["exact", "running"])
def test_only_running_train_metrics_count_in_the_steps(monkeypatch: pytest.MonkeyPatch, metrics: str) -> None:
    # The running tally (an argmax, a log and a sum per minibatch) is work that exact metrics
    # never read: their steps must be given no tally, and the state's stays empty.
    from npmlp import training
    from npmlp.kernels import Tally

    tallies: list[object] = []
    real = training.train_step

    def spy(*args: Any) -> None:
        tallies.append(args[8])  # train_step(net, ws, optimizer, X, y, lr, backprop, weights, tally, masks_rng)
        real(*args)
    monkeypatch.setattr(training, "train_step", spy)
    X, y = rings(60, 5)
    trainer = Trainer.new(TrainConfig(hidden=[5], batch_size=20, seed=0, train_metrics=metrics), 2, 2)
    for _ in range(2):
        trainer.run_epoch(X, y)
    assert len(tallies) == 6
    if metrics == "exact":
        assert tallies == [None] * 6 and trainer.state.tally == Tally()
    else:
        assert all(isinstance(t, Tally) for t in tallies) and trainer.state.tally.weight == 60


@pytest.mark.parametrize("backprop", ["matrix", "loop"])
def test_unit_weights_are_no_weights_bit_for_bit_and_integer_weights_repeat_rows(backprop: str) -> None:
    X, y = rings(60, 5)
    config = TrainConfig(hidden=[5], batch_size=200, epochs=5, lr=0.1, optimizer="adam", l2=1e-3, seed=2,
                         backprop=backprop)
    plain = train({"train": (X, y)}, config)
    ones = train({"train": (X, y)}, config, weights={"train": np.ones(60)})
    for k in plain.net.params:
        np.testing.assert_array_equal(ones.net.params[k], plain.net.params[k])
    w = np.arange(60) % 4  # 0 drops a row, 3 counts it thrice
    weighted = train({"train": (X, y)}, config, weights={"train": w})
    repeated = train({"train": (X.repeat(w, axis=0), y.repeat(w))}, config)
    for k in plain.net.params:
        np.testing.assert_allclose(weighted.net.params[k], repeated.net.params[k], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([r["train_loss"] for r in weighted.history],
                               [r["train_loss"] for r in repeated.history], rtol=1e-10)


def test_weighted_evaluation_and_majority_and_bad_weights() -> None:
    from npmlp.training import majority_error

    X, y = rings(50, 6)
    net = TrainConfig(hidden=[4]).build(2, 2, np.random.default_rng(0))
    w = np.arange(50) % 3
    loss, err = evaluate(net, X, y, weights=w.astype(float), batch_size=7)
    want = evaluate(net, X.repeat(w, axis=0), y.repeat(w))
    np.testing.assert_allclose((loss, err), want, rtol=1e-12)
    assert majority_error(np.array([0, 0, 1]), np.array([1.0, 1.0, 5.0])) == 2 / 7
    with pytest.raises(ValueError, match="all zero"):
        train({"train": (X, y)}, TrainConfig(hidden=[4], epochs=1), weights={"train": np.zeros(50)})
    with pytest.raises(ValueError, match="not there: valid"):
        train({"train": (X, y)}, TrainConfig(hidden=[4], epochs=1), weights={"valid": np.ones(50)})


def test_running_metrics_resume_mid_epoch_from_saved_state() -> None:
    import json

    config = TrainConfig(hidden=[8], batch_size=10, epochs=3, lr=0.05, optimizer="momentum", seed=2,
                         train_metrics="running")
    weights = {"train": (np.arange(360) % 3).astype(float)}
    full = train(splits(), config, weights=weights)
    trainer = Trainer.new(config, 2, 2)
    with stop_in_epoch_2_after_5_minibatches(trainer):
        assert train(splits(), config, trainer=trainer, weights=weights).stopped_because == "interrupted"
    arrays, meta = trainer.state_dict()
    meta = json.loads(json.dumps(meta))
    assert meta["tally"][1] > 0  # five minibatches of epoch 2 counted so far
    again = Trainer.from_state(config, trainer.net.params, arrays, meta, list(trainer.state.history))
    rest = train(splits(), config, trainer=again, weights=weights)
    assert rest.history == [{**r, "seconds": s["seconds"]} for r, s in zip(full.history, rest.history, strict=True)]
    for bad in ([1.0, 2.0], [1.0, -1.0, 0.0], "x"):
        from npmlp.errors import ModelFileError

        with pytest.raises(ModelFileError, match="tally"):
            Trainer.from_state(config, trainer.net.params, arrays, {**meta, "tally": bad}, list(trainer.state.history))


@pytest.mark.parametrize("backprop", ["matrix"])
def test_a_weighted_running_epoch_allocates_no_full_size_temporary(backprop: str) -> None:
    rng = np.random.default_rng(0)
    X, y, w = rng.standard_normal((1000, 300)), rng.integers(0, 10, 1000), rng.uniform(0, 2, 1000)
    config = TrainConfig(hidden=[256], batch_size=100, epochs=1, optimizer="adam", l2=1e-4, train_metrics="running")
    trainer = Trainer(config.build(300, 10, rng), config, rng)
    trainer.run_epoch(X, y, w)
    tracemalloc.start()
    trainer.run_epoch(X, y, w)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100_000, peak


# -- dropout -------------------------------------------------------------------------
DROPOUT = dict(hidden=[8, 6], dropout=[0.3, 0.1], input_dropout=0.2, batch_size=16, epochs=3, lr=0.01,
               optimizer="adam", l2=1e-3, seed=4)


def test_dropout_is_seeded_by_the_run_and_changes_the_trajectory() -> None:
    a, b = train(splits(), TrainConfig(**DROPOUT)), train(splits(), TrainConfig(**DROPOUT))
    plain = train(splits(), TrainConfig(**{**DROPOUT, "dropout": 0.0, "input_dropout": 0.0}))
    other = train(splits(), TrainConfig(**{**DROPOUT, "seed": 5}))
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])
    assert not np.array_equal(a.net.params["W1"], plain.net.params["W1"])
    assert not np.array_equal(a.net.params["W2"], other.net.params["W2"])


def test_loop_and_matrix_give_the_same_trajectory_with_dropout() -> None:
    m = train(splits(), TrainConfig(backprop="matrix", **DROPOUT))
    lo = train(splits(), TrainConfig(backprop="loop", **DROPOUT))
    for k in m.net.params:
        np.testing.assert_allclose(lo.net.params[k], m.net.params[k], rtol=1e-9, atol=1e-12)


def test_an_interrupted_run_with_dropout_resumes_with_the_same_masks() -> None:
    config = TrainConfig(**DROPOUT)
    full = train(splits(), config)
    rng = np.random.default_rng(config.seed)
    trainer = Trainer(config.build(2, 2, rng), config, rng)
    from npmlp import kernels, training

    def stopping_step(*args, **kwargs):
        kernels.train_step(*args, **kwargs)
        trainer.stop_requested = trainer.state.epoch == 1 and trainer.state.batch == 6

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train_step", stopping_step)
        assert train(splits(), config, trainer=trainer).stopped_because == "interrupted"
    trainer.stop_requested = False
    rest = train(splits(), config, trainer=trainer)
    for k in full.net.params:
        np.testing.assert_array_equal(rest.net.params[k], full.net.params[k])


def test_an_epoch_with_dropout_allocates_no_full_size_temporary() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((1000, 300)), rng.integers(0, 10, 1000)
    config = TrainConfig(hidden=[256], batch_size=100, epochs=1, optimizer="adam", dropout=0.5, input_dropout=0.2)
    trainer = Trainer(config.build(300, 10, rng), config, rng)
    trainer.run_epoch(X, y)
    tracemalloc.start()
    trainer.run_epoch(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 100_000, peak  # the masks (100 x 300 and 100 x 256: 205-240 kB) live in the workspace


def test_bad_dropout_settings_are_named() -> None:
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), or a list of them \(one per hidden "
                                         r"layer\). Got 1.0 instead"):
        TrainConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"dropout needs one rate or one per hidden layer \(1\). Got 2 instead"):
        TrainConfig(hidden=[10], dropout=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"input_dropout must be a number in \[0, 1\). Got -0.1 instead"):
        TrainConfig(input_dropout=-0.1)
