"""The ``npmlp`` command line: a thin layer over the library.

Every command takes ``--json`` (one JSON document on stdout, nothing else) and
``--seed``. Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__
from .errors import DivergenceError, NpmlpError
from .functions import ACTIVATIONS
from .gradcheck import check_gradients
from .network import DTYPES, MLP

Command = Callable[[argparse.Namespace], int]


class CheckFailed(Exception):
    """A command ran but its check failed (exit 1)."""


def int_list(text: str) -> list[int]:
    """``"256,128"`` -> ``[256, 128]``; every size must be >= 1."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, like 256,128. Got {text!r}.") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1. Got {text!r}.")
    return values


def float_list(text: str) -> list[float]:
    """``"1e-3,0"`` -> ``[0.001, 0.0]``; every value must be finite and >= 0."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, like 1e-3,0. Got {text!r}.") from None
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"coefficients must be finite and >= 0. Got {text!r}.")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer. Got {text!r}.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1. Got {value}.")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number. Got {text!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0. Got {text!r}.")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout, logs on stderr")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")


def _network_flags(parser: argparse.ArgumentParser, *, hidden: str) -> None:
    acts = sorted(ACTIVATIONS)
    parser.add_argument("--hidden", type=int_list, default=int_list(hidden), metavar="H",
                        help=f"hidden layer sizes, like 10 or 256,128 (default {hidden})")
    parser.add_argument("--activation", choices=acts, default="rect", help="hidden activation (relu = rect)")
    parser.add_argument("--l1", type=float_list, default=[0.0], metavar="V",
                        help="L1 coefficient, one value or one per weight matrix (default 0)")
    parser.add_argument("--l2", type=float_list, default=[0.0], metavar="V",
                        help="L2 coefficient, one value or one per weight matrix (default 0)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="float precision (default float64)")


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    """Print the JSON document with ``--json``, else the human text."""
    if args.json:
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)


# -- gradcheck -----------------------------------------------------------------------
def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradcheck", help="check backprop against finite differences on random data",
                       description="Finite-difference gradient check on random data (seed part 3, Q2 and Q4).")
    _common(p)
    _network_flags(p, hidden="2")
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="K", help="examples in the check (default 1)")
    p.add_argument("--inputs", type=positive_int, default=2, metavar="d", help="input dimension (default 2)")
    p.add_argument("--classes", type=positive_int, default=2, metavar="m", help="number of classes (default 2)")
    p.add_argument("--tol", type=positive_float, default=None, metavar="T",
                   help="pass threshold on the max relative error (default 1e-6 float64, 1e-3 float32)")
    p.add_argument("--max-entries", type=positive_int, default=None, metavar="N",
                   help="check at most N random entries per parameter (default: all)")
    p.set_defaults(run=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    sizes = (args.inputs, *args.hidden, args.classes)
    net = MLP.initialize(sizes, rng=rng, activation=args.activation, l1=args.l1, l2=args.l2, dtype=args.dtype)
    X = rng.standard_normal((args.batch_size, args.inputs)).astype(net.dtype)
    y = rng.integers(0, args.classes, size=args.batch_size)
    report = check_gradients(net, X, y, tol=args.tol, max_entries=args.max_entries, rng=rng)
    emit(args, report.to_dict(), report.format_text())
    return 0 if report.passed else 1


# -- demo ----------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the seed's experiments end to end",
                       description="The main job: the seed's part 3 on this machine.")
    _common(p)
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    documents, ok = {}, True
    for K in (1, 10):  # seed part 3, Q2 (one example) and Q4 (ten examples)
        rng = np.random.default_rng(args.seed)
        net = MLP.initialize((2, 2, 2), rng=rng, l1=1e-3, l2=1e-3)
        X, y = rng.standard_normal((K, 2)), rng.integers(0, 2, size=K)
        report = check_gradients(net, X, y)
        ok &= report.passed
        documents[f"gradcheck_K{K}"] = report.to_dict()
        if not args.json:
            print(f"== Gradient check on K={K} example(s), d=2, dh=2, m=2, all penalties 1e-3 ==")
            print(report.format_text() + "\n")
    if args.json:
        emit(args, documents, "")
    return 0 if ok else 1


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_gradcheck, _add_demo]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npmlp", description="A from-scratch NumPy multilayer perceptron for multiclass classification."
    )
    parser.add_argument("--version", action="version", version=f"npmlp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 check failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DivergenceError as exc:
        print(f"npmlp {args.command}: {exc}", file=sys.stderr)
        return 1
    except CheckFailed as exc:
        print(f"npmlp {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `npmlp gradcheck | head`: the reader left, nothing to say
        sys.stderr.close()
        return 0
    except (NpmlpError, ValueError, OSError) as exc:
        if os.environ.get("NPMLP_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"npmlp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npmlp {args.command}: interrupted", file=sys.stderr)
        return 130
