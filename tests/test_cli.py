"""The command line: exit codes, JSON on stdout only, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from npmlp.cli import main


@pytest.mark.parametrize("act", ["rect", "tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("hidden", ["2", "8,8"])
@pytest.mark.parametrize("K", ["1", "10"])
def test_gradcheck_json_passes(act: str, hidden: str, K: str, capsys) -> None:
    argv = ["gradcheck", "--json", "--hidden", hidden, "--activation", act,
            "--l1", "1e-3", "--l2", "1e-3", "--batch-size", K]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is True and doc["max_rel_error"] < 1e-6 and doc["tol"] == 1e-6
    n_layers = len(hidden.split(",")) + 1
    assert list(doc["params"]) == [f"{p}{layer}" for layer in range(1, n_layers + 1) for p in "Wb"]
    assert set(doc["params"]["W1"]) == {"max_rel_error", "checked", "skipped_kinks", "ratio_min", "ratio_max",
                                        "below_floor"}
    assert doc["method"] == "five-point" and doc["step"] == 1e-4


def test_gradcheck_the_assignments_way(capsys) -> None:
    # `--method forward --step 1e-5`: (R(t + eps) - R(t)) / eps, ratios like the assignment's 1.000001.
    assert main(["gradcheck", "--json", "--method", "forward", "--step", "1e-5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "forward" and doc["step"] == 1e-5 and doc["tol"] == 0.01 and doc["passed"] is True
    assert 0.99 <= doc["ratio_min"] < 1 - 1e-8 or 1 + 1e-8 < doc["ratio_max"] <= 1.01  # visibly not 1.0000000
    assert main(["gradcheck", "--method", "central", "--batch-size", "10"]) == 0
    assert "band 1 +- 0.01): PASSED" in capsys.readouterr().out


def test_gradcheck_text_is_seed_style(capsys) -> None:
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for name in ("W1", "b1", "W2", "b2"):
        assert f"The true gradient for the parameter {name} :" in out
        assert f"The estimated gradient for the parameter {name} :" in out
        assert f"The ratio between the two grads for the parameter {name} :" in out
    assert out.rstrip().endswith("PASSED")


def test_gradcheck_over_tolerance_exits_1(capsys) -> None:
    # A tolerance no float arithmetic can meet makes the check fail.
    assert main(["gradcheck", "--json", "--tol", "1e-300", "--activation", "tanh"]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False


@pytest.mark.parametrize(
    "argv,match",
    [
        (["gradcheck", "--hidden", "0"], "must be an integer >= 1 or a non-empty list"),
        (["gradcheck", "--hidden", "a,b"], "expected integers separated by commas"),
        (["gradcheck", "--l1", "-1"], "--l1: must be a finite number >= 0"),
        (["gradcheck", "--l2", "1,2,3"], r"l2 needs one value or one per weight matrix \(2\)"),
        (["gradcheck", "--activation", "elu"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv: list[str], match: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and __import__("re").search(match, err[-1])


def test_python_dash_m_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "npmlp", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("npmlp ")


def test_json_is_strict_and_lists_non_finite_numbers(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # issue 12 case 8: --json printed NaN/Infinity, which no strict JSON parser reads.
    import numpy as np

    import npmlp.cli as cli

    class Report:
        passed = True

        def to_dict(self) -> dict:
            return {"max": float("nan"), "rows": [1.0, np.float64(np.inf), {"a/b": -np.inf}], "ok": 0.5}

        def format_text(self) -> str:
            return "text"

    monkeypatch.setattr(cli, "check_gradients", lambda *a, **k: Report())
    assert main(["gradcheck", "--json"]) == 0

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output")

    doc = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert doc == {"max": None, "rows": [1.0, None, {"a/b": None}], "ok": 0.5,
                   "non_finite": ["/max", "/rows/1", "/rows/2/a~1b"]}
    monkeypatch.setattr(Report, "to_dict", lambda self: {"ok": 0.5})
    assert main(["gradcheck", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": 0.5}  # no "non_finite" key when all are finite


@pytest.mark.parametrize("activation", ["rect", "tanh", "sigmoid", "softplus"])
def test_gradcheck_with_dropout_passes_and_says_the_masks_are_fixed(activation: str, capsys) -> None:
    argv = ["gradcheck", "--dropout", "0.3", "--hidden", "8,8", "--activation", activation]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "dropout masks fixed (rates 0, 0.3, 0.3, from the input on)" in out and out.rstrip().endswith("PASSED")
    assert main([*argv, "--input-dropout", "0.2", "--batch-size", "5", "--inputs", "4", "--classes", "3"]) == 0
    assert main(["gradcheck", "--dropout", "0.3,0.2,0.1", "--hidden", "8,8"]) == 2
    assert "dropout needs one rate or one per hidden layer (2). Got 3" in capsys.readouterr().err
