"""The compiled update rules (npmlp.fused) give the NumPy passes' bits, for every rule, penalty and dtype."""

from __future__ import annotations

import numpy as np
import pytest

from npmlp import fused
from npmlp import kernels as K
from npmlp.network import MLP
from npmlp.optim import OPTIMIZERS, make_optimizer

PENALTIES = [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-3), (1e-3, 1e-3), (3.0, 0.5)]  # l1 >= 2: l1_sign's other branch


def test_numba_compiles_the_rules() -> None:
    # the test extra installs numba: the compiled path must be the one under test, not skipped
    assert fused.rules() is not None and fused.version()


def odd_values(dtype: str) -> np.ndarray:
    """Values where an operation order or a rounding would show: zeros of both signs, subnormals, extremes."""
    info = np.finfo(dtype)
    return np.array([0.0, -0.0, info.tiny / 4, -info.tiny / 4, info.tiny, -info.tiny, 1e-30, -1e-30, 1.0, -3.5,
                     info.eps, -info.eps], dtype=dtype)


def twins(name: str, penalty: tuple, dtype: str, threads: int) -> list[tuple[MLP, K.Workspace, object]]:
    out = []
    for compiled in (False, True):
        net = MLP.initialize((40, 65, 3), rng=np.random.default_rng(8), l1=penalty[0], l2=penalty[1], dtype=dtype)
        net.params["W1"].reshape(-1)[:12] = odd_values(dtype)
        ws = K.Workspace(net, 20)
        ws.fused, ws.threads = compiled, threads
        ws.choose_split = lambda: True  # type: ignore[method-assign]  # always, not as measured
        out.append((net, ws, make_optimizer(name, net.params)))
    return out


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("penalty", PENALTIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_updates_equal_the_numpy_passes_bit_for_bit(
    name: str, penalty: tuple, dtype: str, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(K, "SPLIT_WORK", 1)  # with two threads every parameter splits, biases too
    monkeypatch.setattr(K, "FUSED_MIN", 1)  # and every parameter runs as one compiled loop
    rng = np.random.default_rng(7)
    pair = twins(name, penalty, dtype, threads)
    for lr in (0.1, 0.05, 0.02):
        X, y = rng.standard_normal((20, 40)).astype(dtype), rng.integers(0, 3, 20)
        for net, ws, opt in pair:
            K.train_step(net, ws, opt, X, y, lr)
    (numpy_net, _, numpy_opt), (compiled_net, _, compiled_opt) = pair
    for a, b in ((numpy_net.params, compiled_net.params), (numpy_opt.state, compiled_opt.state)):  # type: ignore[attr-defined]
        for k in a:
            assert a[k].dtype == np.dtype(dtype) or k == "t", k  # Adam's step count aside
            assert np.isfinite(a[k]).all(), k
            np.testing.assert_array_equal(a[k].view(f"u{a[k].itemsize}"), b[k].view(f"u{b[k].itemsize}"), err_msg=k)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nan_and_inf_gradients_propagate_as_in_numpy(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # a diverging run must look the same to the divergence check whichever path updated it
    monkeypatch.setattr(K, "FUSED_MIN", 1)
    results = []
    for compiled in (False, True):
        net = MLP.initialize((5, 4, 3), rng=np.random.default_rng(1), l1=1e-3, l2=1e-3, dtype="float32")
        ws = K.Workspace(net, 4)
        ws.fused = compiled
        opt = make_optimizer(name, net.params)
        for g in ws.grads.values():
            g[...] = 1.0
        ws.grads["W1"].reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
        ws.grads["b1"][:] = 0.0  # Adam's 0 / (sqrt(0) + eps) and sgd's exact zero step
        with np.errstate(invalid="ignore"):  # inf - inf, on purpose
            K.update_into(net, ws, opt, 0.1, K.gradient_scale(opt, 0.1))
        results.append({**net.params, **opt.state})
    for k in results[0]:  # the same values, nan where NumPy has nan (its sign bit may differ: it means nothing)
        np.testing.assert_array_equal(results[0][k], results[1][k], err_msg=k)
        assert np.isnan(results[0][k]).any() == (k in ("W1", "m/W1", "v/W1"))  # only the nan gradient's matrix


def test_the_switch_turns_the_compiled_rules_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fused.SWITCH, "0")
    fused.rules.cache_clear()
    try:
        assert fused.rules() is None and fused.version() is None
        net = MLP.initialize((40, 30, 2), rng=np.random.default_rng(0))
        ws, opt = K.Workspace(net, 4), make_optimizer("adam", net.params)
        assert ws.fused is None  # decided on the first update that could use it
        K.update_into(net, ws, opt, 0.1, 1.0)
        assert ws.fused is False
    finally:
        monkeypatch.delenv(fused.SWITCH)
        fused.rules.cache_clear()
    assert fused.rules() is not None


def test_what_one_loop_cannot_serve_goes_to_numpy() -> None:
    a = np.zeros((4, 6), np.float32)
    assert fused.supports(a, a.copy())
    assert not fused.supports(a, a.astype(np.float64))  # one dtype
    assert not fused.supports(a[:, :3], a[:, :3].copy())  # contiguous rows only
    assert not fused.supports(a.astype(np.float16), a.astype(np.float16))


def test_the_run_records_numba_but_a_resume_without_it_is_no_difference() -> None:
    from npmlp import runs

    stack = runs.software_stack()
    assert stack["numba"] == fused.version()
    # the compiled rules give the NumPy passes' bits: a resume on a stack without numba differs in nothing that counts
    assert runs.stack_differences({**stack, "numba": None}, stack) == []
    assert runs.stack_differences({**stack, "numpy": "1.0"}, stack) == [f"numpy 1.0 -> {stack['numpy']}"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [7, 9])  # the whole buffer, and a last minibatch of fewer rows
def test_the_compiled_rect_layer_equals_numpy_bit_for_bit(dtype: str, n: int) -> None:
    # forward: A += b, H = maximum(A, 0) (kernels.linear_into, activate_into); backward: dH * (A > 0)
    rng = np.random.default_rng(5)
    K_, h = 9, 6
    odd = np.concatenate([odd_values(dtype), np.array([np.nan, -np.nan, np.inf, -np.inf], dtype)])
    A = np.asfortranarray(rng.standard_normal((K_, h)).astype(dtype))
    A.T.reshape(-1)[: odd.size] = odd  # column-major: the odd values fill the first columns
    b = rng.standard_normal(h).astype(dtype)
    b[:2] = 0.0  # so that the odd values reach the activation unchanged
    dH = np.asfortranarray(rng.standard_normal((K_, h)).astype(dtype))
    dH[:3, 3] = [-1.0, np.inf, np.nan]
    Z = np.zeros((K_, h), dtype, order="F")
    with np.errstate(invalid="ignore"):  # inf * 0, on purpose
        want_A = A.copy(order="F")
        want_A[:n] += b
        want_H = np.maximum(want_A[:n], Z[:n])
        want_dH = dH.copy(order="F")
        want_dH[:n] *= np.greater(want_A[:n], Z[:n]).astype(dtype)
        H = np.full((K_, h), 7.0, dtype, order="F")
        fused.rect_forward(A, b, H, n)
        fused.rect_backward(dH, A, n)
    for got, want in ((A, want_A), (H[:n], want_H), (dH, want_dH)):
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    assert (H[n:] == 7.0).all()  # rows past the minibatch untouched
