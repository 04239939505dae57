"""MLPClassifier: scikit-learn's own checks pass, and underneath it is npmlp's training."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from npmlp.estimator import MLPClassifier  # noqa: E402
from npmlp.training import TrainConfig, train  # noqa: E402

#: Small settings that keep each test to a fraction of a second.
FAST = dict(hidden=(16,), lr=0.01, batch_size=16, epochs=20, random_state=0)
#: scikit-learn's checks: full-batch steps (its data sets have at most a few hundred rows), so that
#: a fit is deterministic in the way its sample-weight checks need: with minibatches, repeating a
#: row changes which rows share a minibatch, which weighting it cannot.
CHECKED = dict(hidden=(16,), lr=0.03, batch_size=1000, epochs=60, random_state=0)


@parametrize_with_checks([MLPClassifier(**CHECKED)])
def test_scikit_learn_estimator_checks(estimator: MLPClassifier, check) -> None:
    check(estimator)


def blobs(n: int = 120, m: int = 3, *, seed: int = 0, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``m`` well-separated Gaussian blobs in 2D, labels 0..m-1 of shape (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % m
    centres = 2.0 * np.column_stack([np.cos(2 * np.pi * np.arange(m) / m), np.sin(2 * np.pi * np.arange(m) / m)])
    return centres[y] + spread * rng.standard_normal((n, 2)), y


def test_defaults_follow_scikit_learn_and_learn_an_easy_problem() -> None:
    clf = MLPClassifier()
    assert (clf.hidden, clf.optimizer, clf.lr, clf.batch_size) == ((100,), "adam", 1e-3, 200)
    assert (clf.l2, clf.epochs, clf.tol, clf.n_iter_no_change, clf.early_stopping) == (5e-3, 400, 1e-4, 10, False)
    X, y = blobs(200)
    assert clf.fit(X, y).score(X, y) > 0.95
    assert clf.n_iter_ < 400 and clf.stopped_because_ == "converged"


@pytest.mark.parametrize("dropout", [{}, {"dropout": (0.3, 0.1), "input_dropout": 0.2}])
def test_fit_is_train_with_the_same_seed(dropout: dict) -> None:
    X, y = blobs(90)
    clf = MLPClassifier(hidden=(8, 5), activation="tanh", l2=1e-3, optimizer="momentum", lr=0.05, batch_size=7,
                        epochs=4, random_state=3, **dropout).fit(X, y)
    config = TrainConfig(hidden=[8, 5], activation="tanh", l2=1e-3, optimizer="momentum", lr=0.05, batch_size=7,
                         epochs=4, seed=3, train_metrics="running", **dropout)
    result = train({"train": (X, y)}, config)
    for name, P in result.net.params.items():
        np.testing.assert_array_equal(clf.net_.params[name], P)
    assert clf.loss_curve_ == [row["train_loss"] for row in result.history]
    np.testing.assert_array_equal(clf.predict(X), result.net.predict(X))


def test_string_labels_round_trip() -> None:
    X, codes = blobs(90)
    names = np.array(["emu", "cat", "dog"])
    for y in (names[codes], names[codes].astype(object)):
        clf = MLPClassifier(**FAST).fit(X, y)
        assert clf.classes_.tolist() == ["cat", "dog", "emu"]
        assert set(clf.predict(X)) <= set(names) and clf.score(X, y) > 0.95
        P = clf.predict_proba(X)
        np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X))
        np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-12)


def test_loss_curve_decreases_on_an_easy_problem() -> None:
    X, y = blobs(60, 2)
    # Full-batch gradient descent with a small step: every epoch lowers the loss.
    clf = MLPClassifier(hidden=(8,), optimizer="sgd", lr=0.1, batch_size=60, epochs=30, random_state=0).fit(X, y)
    curve = np.array(clf.loss_curve_)
    assert len(curve) == clf.n_iter_ == 30
    assert np.all(np.diff(curve) < 0) and curve[-1] < 0.5 * curve[0]


def test_works_in_a_pipeline_with_a_scaler() -> None:
    X, y = blobs(120)
    X = 1000 * X + 5000  # badly scaled features: the scaler is what makes this learnable
    model = make_pipeline(StandardScaler(), MLPClassifier(**FAST)).fit(X, y)
    assert model.score(X, y) > 0.95


def test_works_in_grid_search() -> None:
    X, y = blobs(80)
    search = GridSearchCV(MLPClassifier(**FAST), {"hidden": [(2,), (16,)], "lr": [0.01, 0.03]}, cv=2).fit(X, y)
    assert search.best_params_["hidden"] in [(2,), (16,)]
    assert search.best_score_ > 0.9 and len(search.cv_results_["params"]) == 4


def test_partial_fit_continues_the_same_trainer() -> None:
    X, y = blobs(60)
    once = MLPClassifier(**{**FAST, "epochs": 2}).fit(X, y)
    steps = MLPClassifier(**{**FAST, "epochs": 2})
    steps.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    for name, P in once.net_.params.items():  # two epochs in two calls == two epochs in one
        np.testing.assert_array_equal(steps.net_.params[name], P)
    assert steps.loss_curve_ == once.loss_curve_ and steps.n_iter_ == 2
    steps.partial_fit(X, y)  # past `epochs`: one more epoch all the same
    assert steps.n_iter_ == 3 and steps.stopped_because_ == "partial_fit"
    once.partial_fit(X, y)  # after fit: continues from the fitted network
    assert once.n_iter_ == 3


def test_partial_fit_after_pickling_continues_identically() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    copy = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))


def test_early_stopping_holds_out_a_validation_set() -> None:
    X, y = blobs(200, spread=0.9, seed=1)
    clf = MLPClassifier(**{**FAST, "epochs": 60}, early_stopping=3, validation_fraction=0.25).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_epoch_ == 1 + int(np.argmax(scores))  # the first epoch with the best accuracy
    assert clf.stopped_because_ in ("early_stopping", "max_epochs")
    assert MLPClassifier(**FAST).fit(X, y).validation_scores_ is None


def test_float32_end_to_end() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(**FAST, dtype="float32").fit(X, y)
    assert clf.net_.dtype == np.float32 and clf.predict_proba(X).dtype == np.float32


def test_random_state_none_or_generator_draws_a_seed() -> None:
    X, y = blobs(30)
    a = MLPClassifier(hidden=(4,), epochs=1).fit(X, y)
    b = MLPClassifier(hidden=(4,), epochs=1).fit(X, y)
    assert not np.array_equal(a.net_.params["W1"], b.net_.params["W1"])
    c = MLPClassifier(hidden=(4,), epochs=1, random_state=np.random.RandomState(0)).fit(X, y)
    d = MLPClassifier(hidden=(4,), epochs=1, random_state=np.random.RandomState(0)).fit(X, y)
    np.testing.assert_array_equal(c.net_.params["W1"], d.net_.params["W1"])


def test_divergence_warns_and_keeps_finite_parameters() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(hidden=(8,), optimizer="sgd", lr=1e6, batch_size=10, epochs=5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        clf.fit(X, y)
    assert clf.stopped_because_ == "diverged"
    assert all(np.isfinite(P).all() for P in clf.net_.params.values())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of adam, momentum, nesterov, sgd"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
        ({"activation": "cube"}, "activation must be one of"),
        ({"early_stopping": 0}, r"early_stopping must be True, False, None or a patience in epochs \(an int >= 1\)"),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be an integer >= 1"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"early_stopping": 2, "validation_fraction": 1.5}, r"validation_fraction must be in \(0, 1\)"),
    ],
)
def test_bad_parameters_fail_in_fit_with_the_reason(params: dict, match: str) -> None:
    clf = MLPClassifier(**{**FAST, **params})  # sklearn rule: __init__ only stores
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_one_class_is_a_clear_error() -> None:
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"at least 2 classes to learn from. Got 1 class \('a'\)"):
        MLPClassifier(**FAST).fit(X, ["a"] * 5)


def test_partial_fit_checks_its_classes() -> None:
    X, y = blobs(30)
    clf = MLPClassifier(**FAST)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"labels not in classes \[0, 1, 2\]: \[7\]"):
        clf.partial_fit(X, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match="classes must stay"):
        clf.partial_fit(X, y, classes=[0, 1])


def test_net_is_the_best_epoch_even_when_the_run_later_diverges() -> None:
    # issue 12 case 3: the step schedule triples the learning rate every epoch until it diverges.
    X, y = blobs(300, spread=2.0, seed=3)
    clf = MLPClassifier(hidden=(10,), optimizer="sgd", lr=0.5, lr_schedule="step", lr_step=1, lr_gamma=3.0,
                        batch_size=10, epochs=200, early_stopping=50, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"diverged .* kept the parameters of epoch \d+"):
        clf.fit(X, y)
    assert clf.stopped_because_ == "diverged" and clf.best_epoch_ < clf.n_iter_
    # the rows fit held out (random_state=0: the seed)
    valid = clf._splits(X, y, clf.train_config(seed=0), None)[0]["valid"]
    error = float(np.mean(clf.predict(valid[0]) != valid[1]))
    assert error == pytest.approx(1 - clf.validation_scores_[clf.best_epoch_ - 1])
    assert clf.validation_scores_[clf.best_epoch_ - 1] == max(clf.validation_scores_)


def test_no_progress_is_recorded_not_raised() -> None:
    # issue 12 case 9: random labels are a legitimate thing to fit (scikit-learn's checks do).
    X, y = np.ones((60, 2)), np.arange(60) % 2  # nothing to tell the rows apart: 50% error at best
    clf = MLPClassifier(**FAST, tol=0.0).fit(X, y)
    assert clf.no_progress_ is True and clf.stopped_because_ == "max_epochs"
    assert MLPClassifier(**FAST).fit(*blobs(60)).no_progress_ is False


def test_pickle_holds_no_training_rows_and_stays_small() -> None:
    # issue 12 case 10: the trainer's minibatch buffers used to carry raw training rows into the pickle.
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((400, 20)), np.arange(400) % 3
    for clf in (MLPClassifier(**{**FAST, "epochs": 3}).fit(X, y),
                MLPClassifier(**{**FAST, "epochs": 3}, early_stopping=2).fit(X, y),
                MLPClassifier(**{**FAST, "epochs": 3}, optimizer="adam").partial_fit(X, y, classes=[0, 1, 2])):
        blob = pickle.dumps(clf)
        for row in X[[0, 1, 17, 199, 398, 399]]:  # a row's bytes, and any 32-byte run of them
            assert row.tobytes() not in blob and row.tobytes()[:32] not in blob and row.tobytes()[-32:] not in blob
        param_bytes = sum(P.nbytes for P in clf.net_.params.values())
        # the network, the optimizer's moments (Adam: two) and the best epoch's copy, plus the history
        assert len(blob) < 5 * param_bytes + 20_000, (len(blob), param_bytes)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_partial_fit_after_a_pickle_round_trip_is_bit_identical(optimizer: str) -> None:
    X, y = blobs(90)
    clf = MLPClassifier(**FAST, optimizer=optimizer).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    for c in (clf, copy):
        c.partial_fit(X, y).partial_fit(X[:50], y[:50])
    for name, P in clf.net_.params.items():
        np.testing.assert_array_equal(copy.net_.params[name], P)
    assert copy.loss_curve_ == clf.loss_curve_ and copy.n_iter_ == clf.n_iter_
    assert copy.net_ is copy._trainer.net  # one network, as before pickling


def test_save_then_load_predicts_the_same_without_pickle(tmp_path) -> None:
    X, codes = blobs(90)
    y = np.array(["emu", "cat", "dog"])[codes]
    clf = MLPClassifier(**FAST, l2=1e-3).fit(X, y)
    clf.save(tmp_path / "m")
    loaded = MLPClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.predict(X).tolist() == clf.predict(X).tolist()
    assert loaded.get_params() == {**clf.get_params(), "random_state": 0}
    assert loaded.loss_curve_ == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_
    assert loaded.best_loss_ == clf.best_loss_ and loaded.stopped_because_ == clf.stopped_because_
    loaded.partial_fit(X, y)  # continues the loaded network
    assert loaded.n_iter_ == clf.n_iter_ + 1


def test_load_reads_an_npmlp_train_run(tmp_path, capsys) -> None:
    from npmlp.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "circles", "--hidden", "6", "--epochs", "20", "--lr", "0.1", "--out", str(out),
                 "--no-pictures", "--quiet", "--seed", "4"]) == 0
    clf = MLPClassifier.load(out)
    assert (clf.hidden, clf.optimizer, clf.batch_size, clf.epochs, clf.random_state, clf.tol) == \
        ((6,), "sgd", 10, 20, 4, 0.0)
    assert clf.classes_.tolist() == [0, 1] and clf.n_features_in_ == 2
    X = np.random.default_rng(0).uniform(-1, 1, size=(20, 2))
    np.save(tmp_path / "x.npy", X)
    capsys.readouterr()
    assert main(["predict", "--json", "--proba", "--model", str(out), str(tmp_path / "x.npy")]) == 0
    np.testing.assert_array_equal(clf.predict_proba(X), json.loads(capsys.readouterr().out)["probabilities"])
    history = json.loads((out / "history.json").read_text())
    assert clf.loss_curve_ == [row["train_loss"] for row in history] and clf.n_iter_ == len(history) == 20
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.stopped_because_ == "max_epochs"
    assert clf.validation_scores_ is None and clf.best_epoch_ == 20
    clf.partial_fit(X, (X[:, 0] > 0).astype(int))  # the epochs count on from the run's
    assert clf.n_iter_ == 21


def test_load_reads_an_early_stopped_runs_validation_scores_and_refuses_a_damaged_history(tmp_path, capsys) -> None:
    from npmlp.cli import main
    from npmlp.errors import ModelFileError

    out = tmp_path / "run"
    assert main(["train", "--dataset", "circles", "--hidden", "6", "--epochs", "30", "--lr", "0.1", "--out", str(out),
                 "--no-pictures", "--quiet", "--early-stopping", "3"]) == 0
    history = json.loads((out / "history.json").read_text())
    clf = MLPClassifier.load(out / "model.npz")  # a model file finds its run's history beside it
    errors = [row["valid_error"] for row in history]
    assert clf.validation_scores_ == [1 - e for e in errors] and clf.best_loss_ is None
    assert clf.best_epoch_ == 1 + errors.index(min(errors))
    assert clf.stopped_because_ in ("early_stopping", "max_epochs") and clf.n_iter_ == len(history)
    for bad in ([{"epoch": 2, "train_loss": 0.5}], [{"epoch": 1, "train_loss": "x"}], {"epoch": 1}):
        (out / "history.json").write_text(json.dumps(bad))
        with pytest.raises(ModelFileError, match="history.json"):
            MLPClassifier.load(out)


def test_npmlp_predict_reads_a_saved_estimator(tmp_path, capsys) -> None:
    from npmlp.cli import main

    X, codes = blobs(90)
    clf = MLPClassifier(**FAST).fit(X, np.array(["emu", "cat", "dog"])[codes])
    clf.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", X)
    assert main(["predict", "--json", "--model", str(tmp_path / "m"), str(tmp_path / "x.npy")]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"] == clf.predict(X).tolist()


def test_save_refuses_labels_a_model_file_cannot_hold(tmp_path) -> None:
    X, codes = blobs(30)
    clf = MLPClassifier(**FAST).fit(X, codes.astype(float))
    with pytest.raises(ValueError, match="save needs class labels that are all strings or all integers"):
        clf.save(tmp_path)


def test_coefs_and_intercepts_in_scikit_learn_orientation() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(**{**FAST, "hidden": (5, 4)}).fit(X, y)
    assert [W.shape for W in clf.coefs_] == [(2, 5), (5, 4), (4, 3)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (4,), (3,)]
    H = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1], strict=True):
        H = np.maximum(H @ W + b, 0)
    np.testing.assert_allclose(H @ clf.coefs_[-1] + clf.intercepts_[-1], clf.net_.logits(X), rtol=1e-12)


def test_tol_stops_when_the_training_loss_stops_improving() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(**{**FAST, "epochs": 500}, tol=0.05, n_iter_no_change=3).fit(X, y)
    curve = clf.loss_curve_
    assert clf.stopped_because_ == "converged" and clf.n_iter_ < 500
    assert clf.best_loss_ == min(curve)
    # scikit-learn's rule: stop once n_iter_no_change + 1 epochs in a row failed to beat the best by tol
    best, count, stop = np.inf, 0, None
    for epoch, loss in enumerate(curve, start=1):
        count = count + 1 if loss > best - 0.05 else 0
        best = min(best, loss)
        if count > 3:
            stop = stop or epoch
    assert stop == clf.n_iter_
    assert MLPClassifier(**{**FAST, "epochs": 30}, tol=0.0).fit(X, y).n_iter_ == 30


def test_early_stopping_true_is_scikit_learns() -> None:
    X, y = blobs(200, spread=0.9, seed=1)
    clf = MLPClassifier(**{**FAST, "epochs": 300}, early_stopping=True, n_iter_no_change=4).fit(X, y)
    scores = clf.validation_scores_
    assert clf.stopped_because_ == "early_stopping" and len(scores) == clf.n_iter_
    assert clf.n_iter_ - clf.best_epoch_ == 5 and clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None


def test_warm_start_continues_the_fitted_network() -> None:
    X, y = blobs(60)
    clf = MLPClassifier(**{**FAST, "epochs": 3}, warm_start=True).fit(X, y)
    W1 = clf.net_.params["W1"].copy()
    clf.fit(X, y)
    cold = MLPClassifier(**{**FAST, "epochs": 3}).fit(X, y)
    assert clf.loss_curve_[0] < cold.loss_curve_[0]  # it started where the first fit ended
    assert not np.array_equal(clf.net_.params["W1"], W1)
    with pytest.raises(ValueError, match="warm_start needs the classes of the previous fit"):
        clf.fit(X, np.where(y == 2, 5, y))
    clf.set_params(hidden=(3,))
    with pytest.raises(ValueError, match="warm_start continues a float64 network with hidden layers"):
        clf.fit(X, y)


def test_verbose_shows_a_bar_only_where_someone_looks(capsys) -> None:
    X, y = blobs(30)
    MLPClassifier(**FAST, verbose=True).fit(X, y)  # stderr is no terminal under pytest: quiet
    assert capsys.readouterr().err == ""


def test_sample_weight_counts_rows_and_class_weight_multiplies_it() -> None:
    X, y = blobs(90, spread=0.8, seed=2)
    w = np.arange(90) % 4  # 0 drops a row, 3 counts it three times
    full_batch = dict(hidden=(8,), lr=0.05, batch_size=1000, epochs=15, random_state=0)
    weighted = MLPClassifier(**full_batch).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**full_batch).fit(X.repeat(w, axis=0), y.repeat(w))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    # class_weight: the same as weighing each row by its class's weight
    by_class = MLPClassifier(**full_batch, class_weight={0: 2.0, 2: 0.5}).fit(X, y, sample_weight=w)
    by_rows = MLPClassifier(**full_batch).fit(X, y, sample_weight=w * np.array([2.0, 1.0, 0.5])[y])
    np.testing.assert_array_equal(by_class.predict_proba(X), by_rows.predict_proba(X))
    # balanced: every class carries the same total weight
    counts = np.bincount(y[:50])
    balanced = MLPClassifier(**full_batch, class_weight="balanced").fit(X[:50], y[:50])
    explicit = MLPClassifier(**full_batch).fit(X[:50], y[:50], sample_weight=(50 / (3 * counts))[y[:50]])
    np.testing.assert_allclose(balanced.predict_proba(X), explicit.predict_proba(X), rtol=1e-12)


def test_weights_with_string_labels_minibatches_partial_fit_and_early_stopping() -> None:
    X, codes = blobs(120, spread=0.9, seed=3)
    y = np.array(["emu", "cat", "dog"])[codes]
    w = 1.0 + (codes == 1)
    clf = MLPClassifier(**FAST, class_weight={"emu": 3}).fit(X, y, sample_weight=w)
    assert clf.score(X, y) > 0.8
    steps = MLPClassifier(**FAST, class_weight={"cat": 2.0})
    steps.partial_fit(X, y, classes=["cat", "dog", "emu"], sample_weight=w).partial_fit(X, y, sample_weight=w)
    assert steps.n_iter_ == 2
    es = MLPClassifier(**{**FAST, "epochs": 30}, early_stopping=True, n_iter_no_change=3).fit(X, y, sample_weight=w)
    assert es.validation_scores_ is not None and len(es.validation_scores_) == es.n_iter_


@pytest.mark.parametrize("kwargs,fit,match", [
    ({}, {"sample_weight": np.zeros(30)}, "all zero"),
    ({}, {"sample_weight": -np.ones(30)}, ">= 0"),
    ({}, {"sample_weight": np.ones(29)}, "shape"),
    ({}, {"sample_weight": (np.arange(30) % 3 == 0).astype(float)}, "at least 2 classes with a positive weight"),
    ({"class_weight": {0: 0.0, 1: 0.0}}, {}, "at least 2 classes"),
    ({"class_weight": {7: 1.0}}, {}, "not classes"),
    ({"class_weight": {0: -1.0}}, {}, "finite number >= 0"),
    ({"class_weight": "even"}, {}, "None, 'balanced' or a dict"),
])
def test_bad_weights_are_one_line_errors(kwargs: dict, fit: dict, match: str) -> None:
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**FAST, **kwargs).fit(X, y, **fit)


def test_balanced_class_weight_is_refused_by_partial_fit() -> None:
    X, y = blobs(30)
    with pytest.raises(ValueError, match="'balanced' does not apply to partial_fit"):
        MLPClassifier(**FAST, class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_the_estimators_loss_curve_is_the_running_minibatch_loss() -> None:
    X, y = blobs(90)
    clf = MLPClassifier(**{**FAST, "epochs": 3}).fit(X, y)
    exact = MLPClassifier(**{**FAST, "epochs": 3}, train_metrics="exact").fit(X, y)
    for name, P in clf.net_.params.items():  # how the loss is measured changes no parameter
        np.testing.assert_array_equal(exact.net_.params[name], P)
    assert clf.train_metrics == "running" and clf.loss_curve_ != exact.loss_curve_


def test_save_and_load_keep_class_weight_with_its_label_types(tmp_path) -> None:
    X, codes = blobs(60)
    for y, cw in ((codes, {np.int64(0): 2.0, 2: 0.5}), (np.array(["emu", "cat", "dog"])[codes], {"cat": 3})):
        clf = MLPClassifier(**FAST, class_weight=cw).fit(X, y)
        loaded = MLPClassifier.load(clf.save(tmp_path / str(len(cw))))
        assert loaded.class_weight == {(k.item() if isinstance(k, np.generic) else k): v for k, v in cw.items()}
        refit = MLPClassifier(**loaded.get_params()).fit(X, y)
        np.testing.assert_array_equal(refit.predict_proba(X), clf.predict_proba(X))
