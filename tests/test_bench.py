"""The benchmark harness: its document, interleaving, ratios, skipped peers and the table.

Timings are never compared with a threshold here: on a shared 2-core machine they mean
nothing. Only the structure and the arithmetic of the report are tested.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from npmlp import bench, bench_format, bench_impls, bench_machine
from npmlp.bench import IMPLS, format_bench, interleave, run_bench, summarize, training_data

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# npmlp-numpy: the same loop with the update rules as NumPy passes, beside numba's (the test extra installs it)
OURS = ["npmlp-matrix", "npmlp-numpy", "npmlp-loop", "gemm-only"]


@pytest.fixture
def tiny(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """300 rows, 20 features, 3 classes."""
    return rng.random((300, 20)), rng.integers(0, 3, 300)


def quick(data: tuple[np.ndarray, np.ndarray], **options: object) -> dict:
    settings = {"data": data, "batch_size": 50, "repeats": 2, "loop_batches": 1, "memory": False, "settle": 0.0,
                **options}
    return run_bench(**settings)  # type: ignore[arg-type]


def block_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import sklearn...`` and ``import torch`` fail as if they were not installed."""
    for name in ("sklearn", "sklearn.neural_network", "torch"):
        monkeypatch.setitem(sys.modules, name, None)


def test_document_structure_and_ratios(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    doc = quick(tiny, dtypes=("float64", "float32"))
    assert set(doc) == {"machine", "settings", "configs", "skipped", "warnings"}
    assert [c["dtype"] for c in doc["configs"]] == ["float64", "float32"]
    for c in doc["configs"]:
        assert {"name", "hidden", "dtype", "batch_size", "results", "npmlp_over_gemm"} <= set(c)
        assert list(c["results"]) == OURS and c["hidden"] == [10] and c["batch_size"] == 50
        base = c["results"]["npmlp-matrix"]["median"]
        for r in c["results"].values():
            assert len(r["runs"]) == 2 and all(t > 0 for t in r["runs"])
            assert r["min"] <= r["median"] <= r["max"]
            assert r["ratio_to_npmlp"] == pytest.approx(r["median"] / base)
        assert c["npmlp_over_gemm"] == pytest.approx(base / c["results"]["gemm-only"]["median"])
        best = c["results"]["npmlp-matrix"]["min"] / c["results"]["gemm-only"]["min"]
        assert c["npmlp_over_gemm_best"] == pytest.approx(best)
        assert c["results"]["npmlp-loop"]["timed_rows"] == 50  # one minibatch, scaled to the epoch
        assert c["steady"] == bench.steady_rounds(c["results"]) and c["steady"]["of"] == 2


def test_without_numba_there_is_no_numpy_row(tiny: tuple[np.ndarray, np.ndarray],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_impls.fused, "rules", lambda: None)  # as if numba were not installed
    monkeypatch.setattr(bench_impls.fused, "version", lambda: None)
    doc = quick(tiny, dtypes=("float32",))
    assert list(doc["configs"][0]["results"]) == [i for i in OURS if i != "npmlp-numpy"]
    assert "update rules as NumPy passes (no numba)" in format_bench(doc)


def test_runs_are_interleaved(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    doc = quick(tiny, dtypes=("float32",), repeats=3)
    assert doc["configs"][0]["order"] == OURS * 3


def test_interleave_warms_up_once_then_alternates() -> None:
    calls: list[str] = []

    def epoch(name: str):  # a fake implementation that records when it runs
        return lambda: calls.append(name) or 1.0

    warmup, runs, order = interleave({k: epoch(k) for k in "ABC"}, 2, settle=0.0)
    assert calls == list("ABC" * 3) and order == list("ABCABC")
    assert warmup == {"A": 1.0, "B": 1.0, "C": 1.0} and runs == {k: [1.0, 1.0] for k in "ABC"}


def test_summarize_medians_and_ratios_by_hand() -> None:
    out = summarize({"npmlp-matrix": [3.0, 1.0, 2.0], "gemm-only": [0.5, 1.5, 1.0]})
    assert out["npmlp-matrix"] == {
        "median": 2.0, "min": 1.0, "max": 3.0, "runs": [3.0, 1.0, 2.0], "ratio_to_npmlp": 1.0
    }
    assert out["gemm-only"]["ratio_to_npmlp"] == 0.5  # median 1.0 / 2.0


def test_missing_peers_are_skipped_with_a_hint(tiny: tuple[np.ndarray, np.ndarray],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    block_peers(monkeypatch)
    doc = quick(tiny, dtypes=("float32",), peers=True, repeats=1)
    assert list(doc["configs"][0]["results"]) == OURS
    assert "npmlp[bench]" in doc["skipped"]["sklearn"] and "torch==2.13.0" in doc["skipped"]["torch"]
    table = format_bench(doc)
    for name in IMPLS:
        assert name in table
    assert "skipped" in table and "pip install torch==2.13.0" in table


def test_sklearn_peer_runs_when_installed(tiny: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "torch", None)
    doc = quick(tiny, dtypes=("float32",), peers=True, repeats=1, loop=False)
    assert list(doc["configs"][0]["results"]) == ["npmlp-matrix", "npmlp-numpy", "gemm-only", "sklearn"]
    assert "alpha = 2*l2*K = 0.1" in doc["configs"][0]["results"]["sklearn"]["note"]  # 2 * 1e-3 * 50


def test_torch_peer_runs_when_installed(tiny: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "sklearn.neural_network", None)
    threads = torch.get_num_threads()
    doc = quick(tiny, dtypes=("float64",), peers=True, repeats=1, loop=False, threads=1)
    assert "torch" in doc["configs"][0]["results"] and "sklearn" in doc["skipped"]
    assert doc["machine"]["torch"]["threads"] == 1  # set to the pinned BLAS count ...
    assert torch.get_num_threads() == threads  # ... and restored afterwards


def test_format_bench_lists_every_implementation(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    doc = quick(tiny, dtypes=("float64",), repeats=1)
    table = format_bench(doc)
    for name in OURS:
        assert name in table
    assert "numpy" in table and "GEMM-only limit" in table and "h10-float64" in table


def test_threads_are_pinned_and_released(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    doc = quick(tiny, dtypes=("float64",), repeats=1, threads=1)
    assert doc["machine"]["threads_pinned"] == 1 and doc["machine"]["blas"]["num_threads"] == 1
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before


def test_threads_without_threadpoolctl_warn(tiny: tuple[np.ndarray, np.ndarray],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "threadpoolctl" else find_spec(name, *a)
    )
    doc = quick(tiny, dtypes=("float64",), repeats=1, threads=1)
    assert doc["machine"]["threads_pinned"] is None
    assert any("threads=1 not applied: threadpoolctl is not installed" in w for w in doc["warnings"])


def test_busy_machine_warns(tiny: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_machine, "loadavg", lambda: [1000.0, 1000.0, 1000.0])
    doc = quick(tiny, dtypes=("float64",), repeats=1)
    assert any("before the run" in w for w in doc["warnings"])
    assert "WARNING: machine busy" in format_bench(doc)


def test_memory_is_measured_in_a_subprocess(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = tiny
    doc = quick(tiny, dtypes=("float32",), repeats=1, loop=False, memory=True)
    mem = doc["configs"][0]["memory"]
    assert "error" not in mem, mem
    assert mem["data_bytes"] == X.astype(np.float32).nbytes + y.astype(np.intp).nbytes
    assert mem["epoch_peak"] >= mem["rss_before_data"] > 0
    assert mem["epoch_over_data"] == pytest.approx((mem["epoch_peak"] - mem["rss_before_data"]) / mem["data_bytes"])
    assert isinstance(mem["within_target"], bool) and "memory: data" in format_bench(doc)


def test_training_data_keeps_the_first_rows_in_the_dtype(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    X, y, m = training_data("unused", "float32", data=tiny, max_rows=100)
    assert X.shape == (100, 20) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.dtype == np.intp and m == 3 and not np.shares_memory(y, tiny[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gemm_only_arrays_share_the_data_dtype(dtype: str) -> None:
    X = np.zeros((10, 6), dtype)
    Ws, outs, dHs, dWs = bench.gemm_arrays(bench.Problem(X, np.zeros(10, np.intp), 3, (5, 4), 10, 0.1, 0, 0, 0))
    assert [W.shape for W in Ws] == [(5, 6), (4, 5), (3, 4)] and [D.shape for D in dHs] == [(10, 5), (10, 4)]
    assert {A.dtype for A in Ws + outs + dHs + dWs} == {np.dtype(dtype)}  # a mixed-dtype matmul is slow


def test_gemm_only_handles_deeper_networks_and_partial_minibatches(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    doc = quick(tiny, hidden=(8, 4), batch_size=70, dtypes=("float64",), repeats=1, loop=False)
    assert doc["configs"][0]["hidden"] == [8, 4]
    assert math.isfinite(doc["configs"][0]["npmlp_over_gemm"])


@pytest.mark.parametrize(
    "options, match",
    [({"repeats": 0}, "repeats must be an integer >= 1"), ({"threads": 0}, "threads must be"),
     ({"max_rows": 0}, "max_rows must be an integer >= 1. Got 0"),
     ({"dtypes": ("float16",)}, "dtype must be one of float64, float32. Got 'float16'")],
)
def test_bad_settings_are_refused(tiny: tuple[np.ndarray, np.ndarray], options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        quick(tiny, **options)


def test_bad_data_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"data must be X of shape \(n, d\) and y of shape \(n,\)"):
        training_data("unused", "float64", data=(np.zeros((4, 2)), np.zeros(3, int)))


@pytest.mark.realdata
def test_real_fashion_mnist_subset() -> None:
    if not FASHION_DIR.exists():
        pytest.skip(f"Fashion-MNIST is not at {FASHION_DIR}")
    doc = run_bench(max_rows=1000, dtypes=("float32",), repeats=1, loop_batches=1, memory=False, settle=0.0)
    c = doc["configs"][0]
    assert (c["rows"], c["features"], c["classes"]) == (1000, 784, 10)


def load_floor():
    spec = importlib.util.spec_from_file_location("floor", Path(__file__).parents[1] / "benchmarks" / "floor.py")
    floor = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(floor)  # type: ignore[union-attr]
    return floor


def test_floor_benchmark_reports_its_arithmetic(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    doc = load_floor().floor("B", 2, None, data=tiny, batch_size=50, settle=0.0)
    med = doc["median_seconds"]
    steps = {"step-gather", "step-prefetch", "step-stream", "step-cache"}
    assert set(med) == {"gemm-only", "gemm-1thread", "gather-only", "update-only", "update-1thread",
                        "npmlp-matrix"} | steps
    assert all(v > 0 for v in med.values()) and doc["dtype"] == "float32"
    g = med["gemm-only"]
    assert math.isclose(doc["floor_sequential"], (g + med["gather-only"] + med["update-only"]) / g)
    assert math.isclose(doc["floor_gather_hidden"], (g + med["update-only"]) / g)
    assert math.isclose(doc["floor_gather_hidden_one_thread"], (med["gemm-1thread"] + med["update-only"]) / g)
    assert math.isclose(doc["npmlp_over_gemm"], med["npmlp-matrix"] / g)
    for s in steps:
        assert math.isclose(doc[f"{s.replace('-', '_')}_over_gemm"], med[s] / g)
        assert doc["npmlp_over_step_paired"][s[5:]] > 0


def test_the_floor_pairs_npmlp_with_each_step_round_by_round() -> None:
    # A slow round for one side (npmlp's 10 s) is one ratio of three, not a shifted median:
    # the ratio of the medians would say 3x.
    assert load_floor().paired_ratio([1.0, 3.0, 10.0], [1.0, 3.0, 1.0]) == 1.0


@pytest.mark.parametrize("source", ["gather", "prefetch"])
@pytest.mark.parametrize("dtype, l1, l2", [("float64", 1e-3, 1e-3), ("float32", 0.0, 0.0), ("float32", 0.0, 1e-2)])
def test_the_inlined_step_of_the_floor_does_all_of_the_training_step(
    rng: np.random.Generator, dtype: str, l1: float, l2: float, source: str
) -> None:
    # The floor claims the fewest calls for the same work: after two epochs on the same
    # shuffled minibatches its parameters must be the training loop's, bit for bit.
    from npmlp.training import TrainConfig, Trainer

    X, y = rng.standard_normal((437, 12)).astype(dtype), rng.integers(0, 4, 437)
    p = bench.Problem(X, y, 4, (9,), 50, 0.05, l1, l2, 3)
    epoch, net = load_floor().step_floor(p, source)
    config = TrainConfig(hidden=(9,), l1=l1, l2=l2, dtype=dtype, lr=0.05, batch_size=50, seed=3)
    trainer_rng = np.random.default_rng(3)
    trainer = Trainer(config.build(12, 4, trainer_rng), config, trainer_rng)
    for _ in range(2):
        epoch()
        trainer.run_epoch(X, y)
    for k, P in trainer.net.params.items():
        np.testing.assert_array_equal(net.params[k], P, err_msg=k)
    assert not np.array_equal(net.params["W1"], config.build(12, 4, np.random.default_rng(3)).params["W1"])


def test_each_timed_epoch_starts_after_the_settle_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(bench.time, "sleep", lambda s: events.append(f"sleep {s}"))

    def epoch(name: str):
        return lambda: events.append(name) or 1.0

    interleave({k: epoch(k) for k in "AB"}, 2, settle=0.25)
    # the warm-up round runs straight through; every timed epoch follows a pause
    assert events == ["A", "B"] + ["sleep 0.25", "A", "sleep 0.25", "B"] * 2


def test_settle_must_be_a_sane_number_of_seconds(capsys: pytest.CaptureFixture) -> None:
    from npmlp.cli import main

    for bad in ("-1", "nan", "soon", "1e9"):
        with pytest.raises(SystemExit) as e:
            main(["bench", "--settle", bad])
        assert e.value.code == 2
        assert "settle" in capsys.readouterr().err


def test_an_unsteady_machine_is_named() -> None:
    def section(name: str, gemm: list[float], ours: list[float]) -> dict:
        return {"name": name, "results": {impl: {"runs": runs, "median": float(np.median(runs))}
                                          for impl, runs in (("gemm-only", gemm), ("npmlp-matrix", ours))}}

    steady = [1.0, 1.02, 1.01, 1.6, 1.0]  # one slow round: the quartiles do not move
    unsteady = [0.5, 0.9, 0.52, 0.88, 0.7]
    assert bench._steadiness_warnings([section("A", steady, steady)]) == []
    lines = bench._steadiness_warnings([section("A", steady, steady), section("B", unsteady, steady),
                                        section("C", steady, unsteady), {"name": "D", "results": {}}])
    assert [line.split(",")[0] for line in lines] == ["B: gemm-only", "C: npmlp-matrix"]
    assert all("51%" in line and "ratios unreliable" in line for line in lines)


def test_compare_script_pairs_a_revision_with_the_tree(tiny: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    root = Path(__file__).parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    spec = importlib.util.spec_from_file_location("compare", root / "benchmarks" / "compare.py")
    compare = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(compare)  # type: ignore[union-attr]
    base = compare.load_revision("HEAD", tmp_path)
    try:
        assert base.__name__ == "npmlp_base.bench" and Path(base.__file__).is_relative_to(tmp_path)
        d = compare.compare(base, "A", 3, 0.0, data=tiny, batch_size=50)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("npmlp_base")]:
            del sys.modules[name]
    q1, q3 = d["quartiles"]
    assert q1 <= d["new_over_base"] <= q3 and d["base_over_gemm"] > 0 and d["new_over_gemm"] > 0
    assert set(d["min"]) == {"base", "new", "gemm"}


def test_presets_carry_their_own_rule_lr_and_batch_size(tiny: tuple[np.ndarray, np.ndarray],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")  # noqa: F841
    monkeypatch.setitem(sys.modules, "sklearn.neural_network", None)
    configs = [{"name": k, **bench.PRESETS[k], "hidden": (7,), "dtype": "float64"} for k in ("B", "B+pen", "tuned")]
    doc = quick(tiny, configs=configs, peers=True, repeats=1, loop=False, threads=1)
    B, pen, tuned = doc["configs"]
    assert (B["optimizer"], B["lr"], B["batch_size"]) == ("sgd", 0.03, 50)
    assert (tuned["optimizer"], tuned["lr"], tuned["batch_size"], tuned["l2"]) == ("adam", 1e-3, 128, 1e-5)
    # PyTorch as its users write it: no penalty terms where they are 0, L2 as weight_decay
    assert B["results"]["torch"]["note"] == "nn.Linear/ReLU, cross_entropy, optim.SGD"
    assert pen["results"]["torch"]["note"].endswith("weight_decay = 2*l2 = 0.002, l1*sign(W) added to .grad")
    assert "optim.Adam, weight_decay = 2*l2 = 2e-05" in tuned["results"]["torch"]["note"]
    assert "[tuned] hidden [7], float64, adam lr=0.001, K=128" in bench.format_bench(doc)


def test_the_torch_peer_takes_npmlp_s_step(rng: np.random.Generator) -> None:
    # Same weights, same minibatch: PyTorch's step (the elastic net as the peer adds it,
    # Adam's weight_decay) must give the parameters npmlp's training step gives.
    torch = pytest.importorskip("torch")
    from npmlp import kernels
    from npmlp.network import MLP
    from npmlp.optim import make_optimizer

    X, y = rng.standard_normal((30, 6)), rng.integers(0, 3, 30)
    # Adam: torch adds eps to sqrt(v / (1 - b2^t)), npmlp (the paper's Algorithm 1 remark) to
    # sqrt(v): the same rule but for where eps sits (with eps=1e-8 the parameters here differ
    # by 5e-6 after 3 steps), so both take a negligible eps.
    for optimizer, lr, options in (("sgd", 0.1, {}), ("adam", 0.01, {"eps": 1e-14})):
        p = bench.Problem(X, y, 3, (5,), 30, lr, 1e-2, 1e-2, 0, optimizer)
        model = bench_impls.torch_model(p)
        net = MLP({k: v.detach().numpy().copy() for k, v in bench_impls.torch_params(model).items()},
                  activation="rect", l1=p.l1, l2=p.l2)
        opt, ws = make_optimizer(optimizer, net.params, **options), kernels.Workspace(net, 30)
        step = bench_impls.torch_step(p, model, **options)
        for _ in range(3):
            step(torch.from_numpy(X), torch.from_numpy(y).long())
            kernels.train_step(net, ws, opt, X, y, lr)
        for k, v in bench_impls.torch_params(model).items():
            np.testing.assert_allclose(v.detach().numpy(), net.params[k], rtol=1e-10, atol=1e-10, err_msg=k)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_time_to_accuracy_reports_the_first_epoch_at_each_error() -> None:
    tta = load_script("time_to_accuracy")
    got = tta.times_to([0.3, 0.15, 0.12, 0.13, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0], [0.2, 0.13, 0.105, 0.05])
    assert got == {0.2: 3.0, 0.13: 6.0, 0.105: 15.0, 0.05: None}
    assert tta.median_or_none([3.0, None, 1.0]) == 3.0 and tta.median_or_none([None, None, 1.0]) is None


def test_time_to_accuracy_pairs_the_steady_epochs() -> None:
    tta = load_script("time_to_accuracy")
    # two seeds; npmlp's second epoch of seed 0 and torch's first of seed 1 are slow (2x)
    curves = {"npmlp": [{"seconds": [1.0, 2.0]}, {"seconds": [1.1, 1.0]}],
              "torch": [{"seconds": [1.5, 1.5]}, {"seconds": [3.0, 1.6]}]}
    st = tta.steady_epochs(curves)
    assert st == {"pairs": 2, "of": 4, "median": pytest.approx((1.0 / 1.5 + 1.0 / 1.6) / 2),
                  "range": pytest.approx([1.0 / 1.6, 1.0 / 1.5])}
    assert tta.steady_epochs({"npmlp": curves["npmlp"]}) is None  # no peer to pair with


def test_time_to_accuracy_runs_the_recipe_on_tiny_data(rng: np.random.Generator) -> None:
    from types import SimpleNamespace

    tta = load_script("time_to_accuracy")
    X, y = rng.random((300, 8)).astype(np.float32), rng.integers(0, 3, 300)
    data = SimpleNamespace(X_train=X[:200], y_train=y[:200], X_test=X[200:], y_test=y[200:], n_classes=3)
    impls = ["npmlp", "torch"] if importlib.util.find_spec("torch") else ["npmlp"]
    doc = tta.run(data, [0], 2, 0.0, impls)
    assert doc["recipe"]["epochs"] == 2 and all(len(doc["curves"][k][0]["test_error"]) == 2 for k in impls)
    assert list(doc["median_seconds_to"]["npmlp"]) == [f"{t:.3f}" for t in tta.THRESHOLDS]
    assert "npmlp" in tta.format_table(doc)
    if "torch" in impls:
        assert doc["steady_epochs"]["of"] == 2 and "steady epochs" in tta.format_table(doc)


def test_steady_rounds_are_those_at_the_machines_fastest_with_their_paired_ratios() -> None:
    # rounds 1 and 3 are a slow phase: GEMM-only 1.5x and npmlp 2x their fastest; round 2's
    # npmlp alone is 1.25x its fastest (over the 20% allowed), round 4's GEMM-only 1.05x (within 10%)
    runs = {"npmlp-matrix": [1.0, 2.0, 1.25, 2.0, 1.1], "gemm-only": [0.8, 1.2, 0.8, 1.2, 0.84],
            "torch": [2.0, 2.0, 2.0, 2.0, 1.0], "npmlp-numpy": [9.0] * 5}
    st = bench.steady_rounds(summarize(runs))
    assert st is not None and st["rounds"] == [0, 4] and st["of"] == 5 and st["within"] == [0.1, 0.2]
    assert st["npmlp_over_gemm"] == pytest.approx([1.0 / 0.8, 1.1 / 0.84])
    assert st["npmlp_over_torch"] == pytest.approx([0.5, 1.1])
    assert "npmlp_over_sklearn" not in st  # not run
    line = bench_format._steady_line(st)
    assert "2 of 5" in line and "1.25-1.31x the GEMM-only limit" in line and "0.50-1.10x torch's epoch" in line
    assert bench.steady_rounds(summarize({"npmlp-matrix": [1.0], "torch": [1.0]})) is None  # no GEMM-only
    never = {"rounds": [], "of": 3, "within": [0.1, 0.2]}
    assert bench_format._steady_line(never).endswith("never ran steadily; run again")
