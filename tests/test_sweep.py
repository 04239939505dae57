"""Sweeps: the plan, trials.jsonl and restarts, failures, budgets, local processes and Dask."""

from __future__ import annotations

import json
import math
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

pytest.importorskip("joblib")

from npmlp import sweep  # noqa: E402
from npmlp.cli import build_parser  # noqa: E402
from npmlp.settings import declared  # noqa: E402
from npmlp.sweep import (  # noqa: E402
    format_results,
    load_spec,
    plan_trials,
    read_trials,
    run_sweep,
    run_trial,
    sweep_panels,
    train_command,
)
from npmlp.training import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: 2 x 2 grid points x 2 draws of lr = 8 quick trials on a small circles set.
CIRCLES = {
    "dataset": "circles", "n_samples": 300, "noise": 0.05,
    "optimizer": "adam", "batch_size": 32, "epochs": 12, "early_stopping": 5, "seed": 0,
    "grid": {"hidden": [[4], [16]], "activation": ["rect", "tanh"]},
    "random": {"n_trials": 2, "seed": 1, "lr": {"log_uniform": [3e-3, 3e-2]}},
}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def shut_down_loky() -> None:
    """Stop joblib's idle loky workers, so that no test ever has more than 2 worker processes."""
    # NOTE: joblib keeps its reusable executor alive for 300 s after a Parallel call; its
    # module global is the only handle on it.
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> sweep.SweepResult:
    """The circles sweep on 2 local worker processes (loky)."""
    result = run_sweep(CIRCLES, out=tmp_path_factory.mktemp("local"), jobs=2)
    shut_down_loky()
    return result


# -- the sweep file and the plan ---------------------------------------------------------
def test_plan_is_the_grid_times_the_draws() -> None:
    spec = load_spec(CIRCLES)
    plan = plan_trials(spec)
    assert len(plan) == 8 and len({t["trial"] for t in plan}) == 8
    assert {tuple(t["params"]) for t in plan} == {("hidden", "activation", "lr")}
    lrs = sorted({t["params"]["lr"] for t in plan})
    assert len(lrs) == 2 and all(3e-3 <= v <= 3e-2 and v == float(f"{v:.4g}") for v in lrs)
    assert [t["trial"] for t in plan_trials(load_spec(CIRCLES))] == [t["trial"] for t in plan]  # stable
    for t in plan:  # every trial is a complete, valid TrainConfig
        assert TrainConfig.from_dict(t["config"]).to_dict()["epochs"] == 12


def test_trial_identity_ignores_spelling_but_not_settings() -> None:
    def ids(**changes: object) -> list[str]:
        return [t["trial"] for t in plan_trials(load_spec({**CIRCLES, **changes}))]

    base = ids()
    assert ids(grid={"hidden": [4, 16], "activation": ["rect", "tanh"]}) == base  # 4 is [4]
    assert ids(noise=0.05, l2=0) == ids(l2=0.0) == base  # 0 is 0.0 is the default
    assert set(ids(epochs=13)).isdisjoint(base)
    assert set(ids(n_samples=301)).isdisjoint(base)


def test_max_trials_keeps_a_seeded_subset() -> None:
    full = [t["trial"] for t in plan_trials(load_spec(CIRCLES))]
    some = [t["trial"] for t in plan_trials(load_spec({**CIRCLES, "max_trials": 3}))]
    assert len(some) == 3 and set(some) < set(full)
    assert some == [t for t in full if t in some]  # in plan order


def test_toml_file_and_dict_give_the_same_plan(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(
        'dataset = "circles"\nn_samples = 300\nnoise = 0.05\noptimizer = "adam"\nbatch-size = 32\nepochs = 12\n'
        "early_stopping = 5\nseed = 0\n\n[grid]\nhidden = [[4], [16]]\nactivation = [\"rect\", \"tanh\"]\n\n"
        "[random]\nn_trials = 2\nseed = 1\nlr = {log_uniform = [3e-3, 3e-2]}\n"
    )
    assert [t["trial"] for t in plan_trials(load_spec(path))] == [t["trial"] for t in plan_trials(load_spec(CIRCLES))]


@pytest.mark.parametrize("name", sweep.EXAMPLES)
def test_examples_parse(name: str) -> None:
    spec = load_spec(sweep.example_path(name))
    plan = plan_trials(spec)
    assert 1 <= len(plan) <= (spec.max_trials or len(plan)) and spec.metric == "valid_error"


def test_fashion_example_stays_in_its_brief() -> None:
    spec = load_spec(sweep.example_path("fashion"))
    assert spec.data["dataset"] == "fashion-mnist" and spec.base["dtype"] == "float32"
    assert spec.max_trial_seconds is not None and spec.max_trial_seconds <= 300
    for t in plan_trials(spec):
        c = t["config"]
        assert len(c["hidden"]) == 1 and 1024 <= c["hidden"][0] <= 2048
        assert c["optimizer"] == "adam" and c["lr_schedule"] == "cosine" and 5e-4 <= c["lr"] <= 2e-3
        assert 64 <= c["batch_size"] <= 256 and 20 <= c["epochs"] <= 40 and 1e-6 <= c["l2"] <= 1e-4


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"dataset": None}, "a sweep needs dataset"),
        ({"lrr": 0.1}, "unknown setting 'lrr'. Valid settings: activation,"),
        ({"metric": "test_error"}, "never used for selection"),
        ({"metric": "accuracy"}, "metric must be one of valid_error, valid_loss, train_error, train_loss"),
        ({"max_trials": 0}, "max_trials must be a whole number > 0. Got 0"),
        ({"max_seconds": -1}, "max_seconds must be a number > 0"),
        ({"grid": {"lr": 0.1}}, r"\[grid\] lr must be a non-empty list"),
        ({"random": {"n_trials": 2, "lr": {"normal": [0, 1]}}}, "must be one of {choice | int_uniform | log_uniform"),
        ({"random": {"n_trials": 2, "lr": {"log_uniform": [0, 1]}}}, r"needs \[low, high\] numbers with 0 < low"),
        ({"random": {"n_trials": 2, "epochs": {"int_uniform": [5.5, 9]}}}, "integers"),
        ({"random": {"lr": {"uniform": [0.1, 0.2]}}}, "needs n_trials"),
        ({"random": {"n_trials": 2, "hidden": {"choice": [[4]]}}}, "hidden cannot be in both"),
    ],
)
def test_bad_sweep_files_say_what_is_wrong(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_spec({**CIRCLES, **changes})


# -- running -------------------------------------------------------------------------------
def test_local_sweep_records_ranks_and_reports(local_sweep: sweep.SweepResult) -> None:
    result, out = local_sweep, local_sweep.out
    records = lines(out / "trials.jsonl")
    assert len(records) == result.n_run == result.n_planned == 8 and result.n_resumed == 0
    assert all(r["status"] == "ok" for r in records) and not result.failed
    first = records[0]
    assert set(first) >= {"trial", "params", "config", "data", "status", "metrics", "final", "seconds", "error"}
    assert first["final"]["test_error"] == first["metrics"]["test_error"]
    values = [(r["metrics"]["valid_error"], r["metrics"]["valid_loss"]) for r in result.ranked]
    assert values == sorted(values)
    assert result.varied == ["hidden", "activation", "lr"]
    text = format_results(result)
    assert "never used to choose" in text and result.command in text
    md = (out / "results.md").read_text()
    assert "| rank | trial | valid_error | test_error |" in md and result.command in md
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_command_reruns_the_best_configuration(local_sweep: sweep.SweepResult) -> None:
    best = local_sweep.best
    words = shlex.split(local_sweep.command)
    assert words[:2] == ["npmlp", "train"]
    args = build_parser().parse_args(words[1:])
    rerun = TrainConfig(**{name: getattr(args, name) for name in declared(TrainConfig)})
    assert rerun.to_dict() == TrainConfig.from_dict(best["config"]).to_dict()
    assert (args.dataset, args.n_samples, args.noise) == ("circles", 300, 0.05)


def test_sweep_panels(local_sweep: sweep.SweepResult) -> None:
    panels = {p.name: p for p in sweep_panels(local_sweep)}
    assert list(panels) == ["hidden", "activation", "lr"]
    assert panels["lr"].scale == "log" and panels["lr"].labels is None
    assert panels["hidden"].labels == ["4", "16"] and panels["activation"].labels == ["rect", "tanh"]
    assert all(len(p.x) == len(p.y) == 8 and p.best == 0 for p in panels.values())
    assert panels["lr"].y[0] == local_sweep.best["metrics"]["valid_error"]


def test_dask_cluster_gives_the_same_ranking(local_sweep: sweep.SweepResult, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    shut_down_loky()
    # Worker processes, as on a real cluster: each trial is pickled to another interpreter.
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        result = run_sweep(CIRCLES, out=tmp_path, scheduler=cluster.scheduler_address)
    assert [r["trial"] for r in result.ranked] == [r["trial"] for r in local_sweep.ranked]
    assert [r["metrics"] for r in result.ranked] == [r["metrics"] for r in local_sweep.ranked]
    assert {r["host"] for r in result.records} and result.n_run == 8


def test_restart_skips_recorded_trials(tmp_path: Path) -> None:
    plan = plan_trials(load_spec(CIRCLES))
    fake = {"status": "ok", "error": None, "seconds": 123.0, "epochs_run": 1, "best_epoch": None,
            "stopped_because": "max_epochs", "final": {}, "metrics": {"valid_error": 0.5, "valid_loss": 9.0}}
    log = tmp_path / "trials.jsonl"
    done = [{**{k: t[k] for k in ("trial", "params", "config", "data")}, **fake} for t in plan[:2]]
    # Two finished trials, then a line torn by a kill in the middle of a write.
    log.write_text("".join(json.dumps(r) + "\n" for r in done) + '{"trial": "abc", "sta')
    result = run_sweep(CIRCLES, out=tmp_path, jobs=1)
    assert (result.n_resumed, result.n_run) == (2, 6)
    recorded = read_trials(log)
    assert len(recorded) == 8 and all(recorded[r["trial"]]["seconds"] == 123.0 for r in done)
    assert len(log.read_text().splitlines()) == 2 + 1 + 6  # the torn line stays, alone on its line
    again = run_sweep(CIRCLES, out=tmp_path, jobs=1)
    assert (again.n_resumed, again.n_run) == (8, 0) and len(read_trials(log)) == 8


def test_killed_sweep_resumes_where_it_stopped(tmp_path: Path) -> None:
    slow = {**CIRCLES, "batch_size": 4, "epochs": 40, "early_stopping": None}
    code = f"from npmlp.sweep import run_sweep; run_sweep({slow!r}, out={str(tmp_path)!r}, jobs=1)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    log = tmp_path / "trials.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().count("\n") >= 1) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = read_trials(log)
    assert 1 <= len(before) < 8
    result = run_sweep(slow, out=tmp_path, jobs=1)
    assert result.n_resumed == len(before) and result.n_run == 8 - len(before)
    ids = []
    for line in log.read_text().splitlines():
        try:  # the kill may have torn a line in the middle of a write
            ids.append(json.loads(line)["trial"])
        except ValueError:
            continue
    assert len(ids) == len(set(ids)) == 8


def test_failing_trials_are_recorded_and_the_sweep_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = sweep._train_trial

    def flaky(trial: dict, max_seconds: float | None, prefetch: bool | None) -> dict:
        if trial["params"]["hidden"] == [3]:
            raise RuntimeError("worker lost its GPU")
        return real(trial, max_seconds, prefetch)

    monkeypatch.setattr(sweep, "_train_trial", flaky)  # jobs=1 runs the trials in this process
    config = {**CIRCLES, "epochs": 3, "grid": {"hidden": [[3], [4]], "lr": [0.1, 0.01]}, "random": {}}
    result = run_sweep(config, out=tmp_path, jobs=1)
    errors = sorted(r["error"] for r in result.failed)
    assert errors == ["RuntimeError: worker lost its GPU"] * 2 and len(result.ranked) == 2
    assert all("Traceback" in r["traceback"] for r in result.failed)
    assert result.best["params"]["hidden"] == [4]
    assert "failed:" in format_results(result) and "## Failed trials" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("where,table", [("[grid]", {"grid": {"lr": [0.1, -1.0]}}), ("sweep file", {"lr": -1.0}),
                                         ("sweep file", {"lr_gamma": 0}), ("[grid]", {"grid": {"hidden": [[0]]}})])
def test_a_value_no_setting_accepts_is_refused_before_any_trial(tmp_path: Path, where: str, table: dict) -> None:
    # The declared rules check every base and grid value while the file is read, not trial by trial.
    with pytest.raises(ValueError, match=re.escape(where) + ": (lr|lr_gamma|hidden) must be"):
        run_sweep({**CIRCLES, "epochs": 1, **table}, out=tmp_path / "s", jobs=1)
    assert not (tmp_path / "s" / "trials.jsonl").exists()


def test_trials_side_by_side_gather_their_minibatches_in_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parallel trials share the cores: no gathering thread per trial (a serial sweep decides by the data).
    calls: list[dict] = []
    monkeypatch.setattr(sweep, "run_trial", lambda trial, **options: calls.append(options) or {"trial": trial["trial"]})
    monkeypatch.setattr(sweep, "_backend", lambda jobs, scheduler: nullcontext(
        lambda tasks: (f(*args, **kwargs) for f, args, kwargs in tasks)))
    todo = plan_trials(load_spec(CIRCLES))[:2]
    for jobs, expected in ((2, False), (1, None)):
        calls.clear()
        list(sweep._execute(todo, load_spec(CIRCLES), jobs=jobs, scheduler=None, start=time.time()))
        assert [c["prefetch"] for c in calls] == [expected, expected]


def test_a_trial_told_not_to_prefetch_never_starts_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from npmlp.minibatches import Prefetcher

    def refuse(*args: object) -> None:
        raise AssertionError("the gathering thread was started")

    monkeypatch.setattr(Prefetcher, "minibatches", refuse)
    trial = plan_trials(load_spec({**CIRCLES, "epochs": 2}))[0]
    assert run_trial(trial, prefetch=False)["status"] == "ok"
    assert run_trial(trial, prefetch=True)["error"] == "AssertionError: the gathering thread was started"


def test_time_budgets(tmp_path: Path) -> None:
    trial = plan_trials(load_spec(CIRCLES))[0]
    assert run_trial(trial, deadline=time.time() - 1) == {"trial": trial["trial"], "status": "not_run"}
    record = run_trial(trial, max_seconds=1e-9)  # the first epoch always runs, then no more
    assert (record["status"], record["epochs_run"], record["stopped_because"]) == ("ok", 1, "time_budget")
    result = run_sweep({**CIRCLES, "max_seconds": 1e-9}, out=tmp_path, jobs=1)
    assert (result.n_not_run, result.n_run, result.best, result.plot) == (8, 0, None, None)
    assert "8 left unrun by max_seconds" in format_results(result)
    assert not (tmp_path / "trials.jsonl").exists() or lines(tmp_path / "trials.jsonl") == []


def test_train_command_names_only_relevant_flags() -> None:
    config = TrainConfig(hidden=[8, 4], optimizer="nesterov", lr_schedule="step", l2=[1e-4, 0.0]).to_dict()
    command = train_command(config, {"dataset": "data dir/x.csv", "data_dir": None, "n_samples": 1100, "noise": 0.0})
    assert "--momentum 0.9" in command and "--lr-step 10" in command and "--lr-decay" not in command
    assert "--hidden 8,4" in command and "--l2 0.0001,0" in command and "'data dir/x.csv'" in command
    assert "--early-stopping" not in command and "--n-samples" not in command
    assert math.isclose(float(shlex.split(command)[shlex.split(command).index("--lr") + 1]), 0.03)


@pytest.mark.parametrize(("config", "out"), [("examples/sweep-circles.toml", "runs/sweep-circles"),
                                             ("my.toml", "runs/sweep-my"), (sweep.example_path("fashion"),
                                                                            "runs/sweep-fashion")])
def test_default_out_never_doubles_the_prefix(config, out: str) -> None:
    assert sweep.default_out(config) == Path(out)


def test_example_files_ship_in_the_package_and_print(capsys) -> None:
    from npmlp.cli import main

    assert main(["sweep", "--example", "circles", "--print"]) == 0
    text = capsys.readouterr().out
    assert text == sweep.example_path("circles").read_text() and 'dataset = "circles"' in text
    assert sweep.example_path("circles").parent.parent == Path(sweep.__file__).parent


def test_a_missing_joblib_is_one_line_naming_the_smallest_extra(monkeypatch, tmp_path: Path, capsys) -> None:
    from npmlp.cli import main

    monkeypatch.setitem(sys.modules, "joblib", None)  # import joblib now raises ImportError
    code = main(["sweep", "--example", "circles", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err == "npmlp sweep: error: sweeps need joblib: pip install 'npmlp[sweep]'\n"


def test_fashion_best_args_are_one_of_the_best_sweeps_trials() -> None:
    from npmlp.training import TrainConfig

    examples = Path(__file__).parents[1] / "examples"
    text = (examples / "fashion-best.args").read_text()
    assert text.count("\n") == 1 and "--dataset" not in text and "--out" not in text
    args = build_parser().parse_args(["train", "--dataset", "fashion-mnist", *shlex.split(text)])
    chosen = TrainConfig(**{name: getattr(args, name) for name in declared(TrainConfig)}).to_dict()
    plan = plan_trials(load_spec(examples / "sweep-fashion-best.toml"))
    trials = [TrainConfig.from_dict(t["config"]).to_dict() for t in plan]
    # the sweep's trials run at the final length: the chosen flags are one of them, exactly
    assert [t for t in trials if t == chosen] == [chosen] and chosen["dtype"] == "float32"
    assert chosen["dropout"] == 0.3 and chosen["input_dropout"] == 0.1
