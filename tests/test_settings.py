"""Settings are declared once (TrainConfig's fields); the CLI, the estimator and sweeps derive from that."""

from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npmlp import cli, sweep
from npmlp.runs import DataSpec
from npmlp.settings import Choice, Coefficients, Integer, Real, Sizes, declared
from npmlp.training import TrainConfig, Trainer, train

SETTINGS = declared(TrainConfig)
SRC = Path(cli.__file__).parent


def _parser_defaults(argv: list[str]) -> dict[str, Any]:
    return vars(cli.build_parser().parse_args(argv))


def test_every_setting_is_a_train_flag_with_its_declared_default() -> None:
    args = _parser_defaults(["train", "--dataset", "circles"])
    for name, (_, default) in {**SETTINGS, **declared(DataSpec)}.items():
        assert name in args, f"npmlp train has no --{name.replace('_', '-')}"
        assert args[name] == default, name
    assert TrainConfig(**{name: args[name] for name in SETTINGS}) == TrainConfig()


def test_every_setting_is_an_estimator_parameter_with_its_declared_default() -> None:
    pytest.importorskip("sklearn")
    from npmlp.estimator import SKLEARN_DEFAULTS, MLPClassifier

    params = MLPClassifier().get_params()
    for name, (_, default) in SETTINGS.items():
        if name == "seed":  # scikit-learn's random_state stands for it
            assert "seed" not in params and "random_state" in params
            continue
        assert params[name] == SKLEARN_DEFAULTS.get(name, default), name
    assert set(SKLEARN_DEFAULTS) <= set(SETTINGS)
    doc = MLPClassifier.__doc__ or ""
    assert all(f"    {name} : " in doc for name in params), "the docstring lists every parameter"
    assert list(inspect.signature(MLPClassifier).parameters)[0] == "hidden"


BAD = {Integer: 0.5, Real: math.nan, Choice: "nope", Sizes: [0], Coefficients: -1.0}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_is_a_sweep_key_checked_by_its_rule(name: str) -> None:
    # A sweep file takes every setting (dashes or underscores) and checks it by the declared rule
    # when the file is read, in the base settings and in [grid] alike.
    _, default = SETTINGS[name]
    key = name.replace("_", "-")
    spec = sweep.load_spec({"dataset": "circles", key: default})
    assert name in spec.base
    bad = BAD[type(SETTINGS[name][0].rule)]
    with pytest.raises(ValueError, match=f"sweep file: {name} must be "):
        sweep.load_spec({"dataset": "circles", key: bad})
    with pytest.raises(ValueError, match=rf"\[grid\]: {name} must be "):
        sweep.load_spec({"dataset": "circles", "grid": {key: [default, bad]}})


# Settings whose only uses are the declaration and the code that applies them (the schedule and
# the optimizer): no other module may spell them out (a repeated default, a hand-made list).
SINGLE_USE = ("lr_decay", "lr_step", "lr_gamma", "momentum")


@pytest.mark.parametrize("module", ["cli.py", "estimator.py", "sweep.py", "runs.py", "demo.py", "report.py"])
def test_single_use_settings_are_not_repeated(module: str) -> None:
    tree = ast.parse((SRC / module).read_text())
    words = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    words |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    words |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg}
    assert not words & set(SINGLE_USE), f"{module} names {sorted(words & set(SINGLE_USE))}"


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_refuses_a_bad_value_naming_itself(name: str) -> None:
    bad = BAD[type(SETTINGS[name][0].rule)]
    with pytest.raises(ValueError, match=f"^{name} must be "):
        TrainConfig(**{name: bad})


@pytest.mark.parametrize("rule,good,bad", [
    (Integer(1), [1, np.int64(7)], [0, True, 1.0, "2", None]),
    (Integer(1, optional=True), [None, 3], [0, False]),
    (Real(0, low_open=True), [1e-9, 3, np.float32(0.5)], [0, -1, math.inf, math.nan, True, "1"]),
    (Real(0, 1, high_open=True), [0, 0.999], [1, -0.1]),
    (Sizes(), [3, [4, 5], (6,)], [[], [0], "10", [1.5], [True]]),
    (Coefficients(), [0, 1e-3, [0.1, 0]], [-1, [math.inf], [], "0.1"]),
])
def test_rules_accept_and_refuse(rule: Any, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        rule.check("x", value)
    for value in bad:
        with pytest.raises(ValueError, match="^x must be"):
            rule.check("x", value)


def test_trainer_new_starts_every_run_alike() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 3, 40)
    config = TrainConfig(hidden=[5], epochs=3, seed=11)
    trainer = Trainer.new(config, 3, 3)
    a = train({"train": (X, y)}, config, trainer=trainer)
    b = train({"train": (X, y)}, config)
    for k in a.net.params:
        np.testing.assert_array_equal(a.net.params[k], b.net.params[k])


def test_state_dict_round_trip_continues_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((50, 4)), rng.integers(0, 2, 50)
    config = TrainConfig(hidden=[6], optimizer="adam", epochs=4, seed=5)
    full = train({"train": (X, y)}, config)
    half = Trainer.new(config, 4, 2)
    train({"train": (X, y)}, TrainConfig(**{**config.to_dict(), "epochs": 2}), trainer=half)
    arrays, meta = half.state_dict()
    again = Trainer.from_state(config, half.net.params, arrays, meta, list(half.state.history))
    rest = train({"train": (X, y)}, config, trainer=again)
    for k in full.net.params:
        np.testing.assert_array_equal(rest.net.params[k], full.net.params[k])
