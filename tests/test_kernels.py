"""The fast path gives the course path's gradients and updates, to round-off."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from npmlp import kernels as K
from npmlp.network import MLP
from npmlp.optim import OPTIMIZERS, make_optimizer

ACTS = ["rect", "tanh", "sigmoid", "softplus"]
# (3,): narrow last hidden layer, column-major logits; (70,): wide, row-major logits (kernels.NARROW).
DEPTHS = [(6,), (5, 4), (5, 4, 3), (70,)]
PENALTIES = [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-3), (1e-2, 1e-2), (3.0, 0.5)]  # l1 >= 2: l1_sign's other branch
CASES = list(itertools.product(ACTS, DEPTHS, PENALTIES))


def assert_close(got: dict, want: dict, rtol: float) -> None:
    assert list(got) == list(want)
    for k in want:
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * scale, err_msg=k)


@pytest.mark.parametrize("act,hidden,penalty", CASES)
def test_fast_gradients_equal_the_course_gradients(act: str, hidden: tuple[int, ...], penalty: tuple) -> None:
    # one case per activation, depth and penalty; each on a full minibatch and a partial one
    rng = np.random.default_rng(3)
    net = MLP.initialize((4, *hidden, 3), rng=rng, activation=act, l1=penalty[0], l2=penalty[1])
    ws = K.Workspace(net, batch_size=16)
    for n, scale in ((16, 1.0), (7, 0.03)):  # a full minibatch, then the last, partial one, scaled
        X, y = rng.standard_normal((n, 4)), rng.integers(0, 3, n)
        want = {k: scale * g for k, g in net.gradients(X, y).items()}
        assert_close(K.matrix_gradients(net, ws, X, y, scale), want, rtol=1e-12)
        assert_close(K.loop_gradients(net, ws, X, y, scale), want, rtol=1e-10)


@pytest.mark.parametrize("act", ACTS)
def test_fast_gradients_in_float32(act: str) -> None:
    rng = np.random.default_rng(4)
    net = MLP.initialize((6, 70, 5, 3), rng=rng, activation=act, l1=1e-3, l2=1e-3, dtype="float32")
    X, y = rng.standard_normal((10, 6)).astype(np.float32), rng.integers(0, 3, 10)
    got = K.matrix_gradients(net, K.Workspace(net, 10), X, y, 1.0)
    assert all(g.dtype == np.float32 for g in got.values())
    assert_close(got, net.gradients(X, y), rtol=2e-5)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_in_place_steps_on_scaled_gradients_equal_the_update_rules(name: str) -> None:
    rng = np.random.default_rng(5)
    course = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(3)}
    fast = {k: v.copy() for k, v in course.items()}
    opt_course, opt_fast = make_optimizer(name, course), make_optimizer(name, fast)
    for lr in (0.1, 0.05, 0.02):
        grads = {k: rng.standard_normal(v.shape) for k, v in course.items()}
        opt_course.step(course, grads, lr)
        scale = K.gradient_scale(opt_fast, lr)
        K.scaled_step(opt_fast, fast, {k: scale * g for k, g in grads.items()}, lr)
    assert_close(fast, course, rtol=1e-13)
    assert_close(opt_fast.state, opt_course.state, rtol=1e-13)


@pytest.mark.parametrize("backprop", ["matrix", "loop"])
def test_a_training_step_is_the_course_step(backprop: str) -> None:
    rng = np.random.default_rng(6)
    net = MLP.initialize((4, 8, 3), rng=rng, l1=1e-3, l2=1e-3)
    twin = MLP({k: v.copy() for k, v in net.params.items()}, activation="rect", l1=1e-3, l2=1e-3)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    opt, opt_twin = make_optimizer("nesterov", net.params), make_optimizer("nesterov", twin.params)
    ws = K.Workspace(net, 10)
    for _ in range(3):
        K.train_step(net, ws, opt, X, y, 0.1, backprop)
        opt_twin.step(twin.params, twin.gradients(X, y), 0.1)
    assert_close(net.params, twin.params, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l1_sign_is_exact_for_every_normal_weight(dtype: type) -> None:
    from npmlp.kernels import l1_sign

    info = np.finfo(dtype)
    W = np.array([0.0, -0.0, info.tiny, -info.tiny, 1e-3, -2.5, info.max, -info.max, np.inf, -np.inf], dtype=dtype)
    out = np.empty_like(W)
    for a in (0.25, 3.0, 1e30):  # a >= 2 scales in two steps: a / tiny would overflow
        np.testing.assert_array_equal(l1_sign(W, a, out=out), (dtype(a) * np.sign(W)).astype(dtype))
        assert out.dtype == dtype


@pytest.mark.parametrize("act,hidden,penalty", CASES)
def test_weighted_fast_gradients_equal_the_course_gradients(act: str, hidden: tuple[int, ...], penalty: tuple) -> None:
    rng = np.random.default_rng(13)
    net = MLP.initialize((4, *hidden, 3), rng=rng, activation=act, l1=penalty[0], l2=penalty[1])
    ws = K.Workspace(net, batch_size=16)
    for n, scale in ((16, 1.0), (7, 0.03)):
        X, y = rng.standard_normal((n, 4)), rng.integers(0, 3, n)
        w = rng.choice([0.0, 0.5, 1.0, 3.0], size=n)
        want = {k: scale * g for k, g in net.gradients(X, y, sample_weight=w).items()}
        assert_close(K.matrix_gradients(net, ws, X, y, scale, w), want, rtol=1e-12)
        assert_close(K.loop_gradients(net, ws, X, y, scale, w), want, rtol=1e-10)


def test_a_minibatch_of_no_weight_adds_only_the_penalty() -> None:
    rng = np.random.default_rng(14)
    net = MLP.initialize((4, 5, 3), rng=rng, l2=1e-2)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    got = K.matrix_gradients(net, K.Workspace(net, 6), X, y, 1.0, np.zeros(6))
    assert_close(got, {k: net.penalty_gradients().get(k, np.zeros_like(P)) for k, P in net.params.items()}, 1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unweighted_output_gradient_is_the_unweighted_arithmetic_bit_for_bit(dtype: type) -> None:
    # No weights (and no tally): exactly the arithmetic the fast path had before weights existed.
    rng = np.random.default_rng(15)
    Oa, y = rng.standard_normal((9, 4)).astype(dtype), rng.integers(0, 4, 9)
    want = Oa.copy()
    want -= want.max(axis=1, keepdims=True)
    np.exp(want, out=want)
    want *= (0.03 / 9) / want.sum(axis=1, keepdims=True)
    want[np.arange(9), y] -= 0.03 / 9
    for tally in (None, K.Tally()):  # tallying the loss reads the logits, it changes nothing
        np.testing.assert_array_equal(K.nll_grad_into(Oa.copy(), y, np.arange(9), 0.03, tally=tally), want)


@pytest.mark.parametrize("backprop", ["matrix", "loop"])
@pytest.mark.parametrize("weighted", [False, True])
def test_the_tally_is_the_minibatches_loss_and_error(backprop: str, weighted: bool) -> None:
    from npmlp.network import nll

    rng = np.random.default_rng(16)
    net = MLP.initialize((4, 6, 3), rng=rng, activation="tanh")
    batches = [(rng.standard_normal((n, 4)), rng.integers(0, 3, n), rng.uniform(0, 2, n) if weighted else None)
               for n in (8, 8, 5)]
    loss = wrong = weight = 0.0
    for X, y, w in batches:
        Oa = net.forward(X).logits
        ww = np.ones(len(y)) if w is None else w
        loss += float(nll(Oa, y, ww)) * ww.sum()
        wrong += float(ww @ (Oa.argmax(axis=1) != y))
        weight += ww.sum()
    tally, ws = K.Tally(), K.Workspace(net, 8)
    for X, y, w in batches:  # gradients without a step: the parameters stay
        K.GRADIENTS[backprop](net, ws, X, y, 1.0, w, tally)
    np.testing.assert_allclose(tally.means(), (loss / weight, wrong / weight), rtol=1e-13)
    assert np.isnan(K.Tally().means()).all()  # nan before any weight


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("penalty", [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-3), (1e-3, 1e-3), (3.0, 0.5)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_updates_split_over_two_threads_equal_one_thread_bit_for_bit(
    name: str, penalty: tuple, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every pass of the penalty and the rules is elementwise, so rows on another thread
    # must give the very same bits as the single-threaded reference (ws.threads = 1).
    monkeypatch.setattr(K, "SPLIT_WORK", 1)  # every parameter splits, biases too
    rng = np.random.default_rng(7)
    hidden = 65  # an odd number of rows: halves of 32 and 33
    nets, opts, spaces = [], [], []
    for threads in (1, 2):
        net = MLP.initialize((40, hidden, 3), rng=np.random.default_rng(8), l1=penalty[0], l2=penalty[1], dtype=dtype)
        ws = K.Workspace(net, 20)
        ws.threads = threads
        ws.choose_split = lambda: True  # type: ignore[method-assign]  # always, not as measured
        nets.append(net), opts.append(make_optimizer(name, net.params)), spaces.append(ws)
    for lr in (0.1, 0.05, 0.02):
        X, y = rng.standard_normal((20, 40)).astype(dtype), rng.integers(0, 3, 20)
        for net, opt, ws in zip(nets, opts, spaces, strict=True):
            K.train_step(net, ws, opt, X, y, lr)
    assert spaces[0]._helper is None and spaces[1]._helper is not None  # the split path ran
    for a, b in ((nets[0].params, nets[1].params), (opts[0].state, opts[1].state)):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_split_update_waits_for_its_other_half_and_raises_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K, "SPLIT_WORK", 1)
    net = MLP.initialize((40, 30, 3), rng=np.random.default_rng(0), l1=1e-3)
    ws, opt = K.Workspace(net, 4), make_optimizer("adam", net.params)
    ws.threads = 2
    ws.choose_split = lambda: True  # type: ignore[method-assign]
    ws.grads["W1"] = ws.grads["W1"][:, :39]  # the wrong shape: every block fails
    with pytest.raises(ValueError):
        K.update_into(net, ws, opt, 0.1, 1.0)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_update_plan_is_kept_and_remade_when_an_array_is_swapped(name: str) -> None:
    # update_into keeps its jobs between steps (kernels._Plan); a parameter or a state swapped
    # for another array (here a Fortran-ordered copy: no compiled loop can take it) must be the
    # one updated, exactly as a twin that makes its plan anew every step updates its own
    def fresh() -> tuple[MLP, K.Workspace, object]:
        net = MLP.initialize((40, 30, 3), rng=np.random.default_rng(2), l1=1e-3, l2=1e-3)
        return net, K.Workspace(net, 4), make_optimizer(name, net.params)

    rng = np.random.default_rng(3)
    batches = [(rng.standard_normal((4, 40)), rng.integers(0, 3, 4)) for _ in range(6)]
    (net, ws, opt), (ref, ref_ws, ref_opt) = fresh(), fresh()
    for i, (X, y) in enumerate(batches):
        if i == 2:
            plan = ws.plan
            assert plan is not None and plan.whole
        if i == 3:
            assert ws.plan is plan  # kept while nothing changed
            for n in (net, ref):
                n.params["W1"] = np.asfortranarray(n.params["W1"])
            if name == "adam":
                for o in (opt, ref_opt):
                    o.state["m/W1"] = np.asfortranarray(o.state["m/W1"])  # type: ignore[attr-defined]
        ref_ws.plan = None  # the twin makes its plan anew every step
        for n, w, o in ((net, ws, opt), (ref, ref_ws, ref_opt)):
            K.train_step(n, w, o, X, y, 0.1)
        if i == 3:
            assert ws.plan is not plan  # remade for the new arrays
    for k in net.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k], err_msg=k)
    assert not np.array_equal(net.params["W1"], fresh()[0].params["W1"])  # the swapped-in array was trained


def test_the_split_is_chosen_by_its_recent_times_and_the_other_way_probed() -> None:
    ws = K.Workspace(MLP.initialize((2, 3, 2), rng=np.random.default_rng(0)), 4)
    assert ws.choose_split() is True  # first the split, ...
    ws.record_split(True, 2.0)
    assert ws.choose_split() is False  # ... then one thread
    ws.record_split(False, 1.0)
    ways = [ws.choose_split() for _ in range(2 * K.SPLIT_PROBE)]
    assert ways.count(True) == 2 and ways.count(False) == 2 * K.SPLIT_PROBE - 2  # one thread, probing the split
    for _ in range(10):  # the split gets faster (the machine went quiet)
        ws.record_split(True, 0.5)
    ways = [ws.choose_split() for _ in range(2 * K.SPLIT_PROBE)]
    assert ways.count(False) == 2


# -- dropout: the fast path draws the course's masks and follows the course's gradients --
DROPOUT_RATES = {(6,): (0.2, 0.5), (5, 4): (0.0, 0.3, 0.6), (5, 4, 3): (0.1, 0.0, 0.4, 0.2), (70,): (0.3, 0.5)}


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("hidden", DEPTHS)
def test_fast_gradients_with_dropout_equal_the_course_gradients(act: str, hidden: tuple[int, ...]) -> None:
    from npmlp.network import dropout_masks

    rng = np.random.default_rng(9)
    rates = DROPOUT_RATES[hidden]
    net = MLP.initialize((4, *hidden, 3), rng=rng, activation=act, l1=1e-3, l2=1e-3)
    ws = K.Workspace(net, batch_size=16, rates=rates)
    for n, scale, seed in ((16, 1.0, 1), (7, 0.03, 2)):
        X, y = rng.standard_normal((n, 4)), rng.integers(0, 3, n)
        masks = K.masks_into(ws, np.random.default_rng(seed), n)
        course = dropout_masks(rates, net.sizes, n, np.random.default_rng(seed))
        for got, want in zip(masks, course, strict=True):
            assert (got is None and want is None) or np.array_equal(got, want)
        want = {k: scale * g for k, g in net.gradients(X, y, masks=course).items()}
        assert_close(K.matrix_gradients(net, ws, X, y, scale, masks=masks), want, rtol=1e-12)
        assert_close(K.loop_gradients(net, ws, X, y, scale, masks=course), want, rtol=1e-12)


def test_fast_dropout_in_float32() -> None:
    from npmlp.network import dropout_masks

    rng = np.random.default_rng(10)
    net = MLP.initialize((6, 70, 5, 3), rng=rng, activation="rect", l2=1e-3, dtype="float32")
    X, y = rng.standard_normal((10, 6)).astype(np.float32), rng.integers(0, 3, 10)
    ws = K.Workspace(net, 10, rates=(0.2, 0.5, 0.3))
    masks = K.masks_into(ws, np.random.default_rng(0), 10)
    course = dropout_masks((0.2, 0.5, 0.3), net.sizes, 10, np.random.default_rng(0), np.float32)
    assert all(M.dtype == np.float32 and np.array_equal(M, C) for M, C in zip(masks, course, strict=True))
    assert_close(K.matrix_gradients(net, ws, X, y, 1.0, masks=masks), net.gradients(X, y, masks=course), rtol=2e-5)


@pytest.mark.parametrize("backprop", ["matrix", "loop"])
def test_a_training_step_with_dropout_is_the_course_step(backprop: str) -> None:
    from npmlp.network import dropout_masks

    rng = np.random.default_rng(11)
    net = MLP.initialize((4, 8, 3), rng=rng, l2=1e-3)
    twin = MLP({k: v.copy() for k, v in net.params.items()}, activation="rect", l2=1e-3)
    X, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    opt, opt_twin = make_optimizer("adam", net.params), make_optimizer("adam", twin.params)
    ws = K.Workspace(net, 10, rates=(0.2, 0.5))
    for step in range(3):
        K.train_step(net, ws, opt, X, y, 0.01, backprop, masks_rng=np.random.default_rng(step))
        masks = dropout_masks((0.2, 0.5), twin.sizes, 10, np.random.default_rng(step))
        opt_twin.step(twin.params, twin.gradients(X, y, masks=masks), 0.01)
    assert_close(net.params, twin.params, rtol=1e-12)
