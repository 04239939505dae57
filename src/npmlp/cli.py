"""The ``npmlp`` command line: a thin layer over the library.

Every command takes ``--json`` (one JSON document on stdout, nothing else) and
``--seed``. Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import budget
from ._version import __version__
from .dtypes import DTYPES
from .errors import DivergenceError, NpmlpError
from .gradcheck import DEFAULT_METHOD, METHODS, check_gradients
from .network import MLP, dropout_masks, dropout_rates
from .runs import DataSpec, run_data
from .settings import Choice, Flag, Rule, declared, shown
from .sweep import EXAMPLES
from .training import TrainConfig

Command = Callable[[argparse.Namespace], int]



def int_list(text: str) -> list[int]:
    """``"256,128"`` -> ``[256, 128]``; every size must be >= 1."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, like 256,128. Got {text!r}.") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1. Got {text!r}.")
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


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds. Got {text!r}.") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60 seconds. Got {text!r}.")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout, logs on stderr")
    _setting_flags(parser, TrainConfig, ["seed"])


def _flag_type(rule: Rule) -> Callable[[str], Any]:
    """An argparse ``type`` from a setting's rule: parse the text, then check the value."""

    def parse(text: str) -> Any:
        try:
            value = rule.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        try:
            return rule.check("value", value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}. Got {text!r}.") from None

    parse.__name__ = type(rule).__name__.lower()
    return parse


def _setting_flags(parser: argparse.ArgumentParser, cls: type, names: Sequence[str] | None = None,
                   *, defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per setting that ``cls`` declares (or the ``names`` among them), from its declaration."""
    for name, (decl, default) in declared(cls).items():
        if names is not None and name not in names:
            continue
        default = (defaults or {}).get(name, default)
        options: dict[str, Any] = {"type": _flag_type(decl.rule), "metavar": decl.metavar}
        if isinstance(decl.rule, Choice):
            options = {"choices": sorted(decl.rule.options)}
        if isinstance(decl.rule, Flag):
            parser.add_argument("--" + name.replace("_", "-"), default=default, action="store_true", help=decl.help)
            continue
        parser.add_argument("--" + name.replace("_", "-"), default=default, **options,
                            help=f"{decl.help} (default {shown(default)})")


#: Entries checked per parameter by default: all of the seed's networks, a sample of large ones
#: (each entry costs a few forward passes, in long double for the five-point method).
GRADCHECK_ENTRIES = 300
NETWORK_SETTINGS = ("hidden", "activation", "l1", "l2", "dtype")


def strict_json(value: Any, path: str = "", non_finite: list[str] | None = None) -> tuple[Any, list[str]]:
    """``value`` with every nan/inf number replaced by None, and the JSON Pointers (RFC 6901) of those numbers.

    NumPy scalars and arrays become Python numbers and lists on the way.
    """
    found = [] if non_finite is None else non_finite
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        found.append(path)
        return None, found
    if isinstance(value, dict):  # RFC 6901 escapes "~" and "/" in keys
        return {k: strict_json(v, path + "/" + str(k).replace("~", "~0").replace("/", "~1"), found)[0]
                for k, v in value.items()}, found
    if isinstance(value, (list, tuple)):
        return [strict_json(v, f"{path}/{i}", found)[0] for i, v in enumerate(value)], found
    return value, found


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    """Print the JSON document with ``--json``, else the human text.

    The document is strict JSON: a nan or inf number is written as ``null`` and its JSON
    Pointer listed in a top-level ``"non_finite"`` array (present only when there are some).
    """
    if args.json:
        document, non_finite = strict_json(document)
        if non_finite:
            document = {**document, "non_finite": non_finite}
        json.dump(document, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(text)


# -- gradcheck -----------------------------------------------------------------------
def _add_gradcheck(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gradcheck", help="check backprop against finite differences on random data",
                       description="Finite-difference gradient check on random data (the assignment's part 3, "
                                   "Q2 and Q4).")
    _common(p)
    _setting_flags(p, TrainConfig, (*NETWORK_SETTINGS, "dropout", "input_dropout"), defaults={"hidden": (2,)})
    p.add_argument("--batch-size", type=positive_int, default=1, metavar="K", help="examples in the check (default 1)")
    p.add_argument("--inputs", type=positive_int, default=2, metavar="d", help="input dimension (default 2)")
    p.add_argument("--classes", type=positive_int, default=2, metavar="m", help="number of classes (default 2)")
    p.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD,
                   help="forward: (R(t+h) - R(t)) / h, the assignment's; central: (R(t+h) - R(t-h)) / 2h; "
                        "five-point: O(h^4) in long double, the precise check (default)")
    p.add_argument("--step", type=positive_float, default=None, metavar="EPS",
                   help="finite-difference step (default 1e-4 five-point, 1e-5 forward and central)")
    p.add_argument("--tol", type=positive_float, default=None, metavar="T",
                   help="five-point: pass threshold on the max relative error (default 1e-6 float64, 1e-3 float32); "
                        "forward, central: every ratio within 1 +- T (default 0.01, the assignment's band)")
    p.add_argument("--max-entries", type=positive_int, default=GRADCHECK_ENTRIES, metavar="N",
                   help=f"check at most N entries per parameter, drawn at random (default {GRADCHECK_ENTRIES}: "
                        "every entry of the assignment's small networks, a sample of a large one's)")
    p.add_argument("--weighted", action="store_true",
                   help="per-row weights (sample_weight) drawn from {0, 0.5, 1, 2, 3}: check the weighted loss")
    _setting_flags(p, DataSpec, ["max_memory"])
    p.set_defaults(run=cmd_gradcheck)


def cmd_gradcheck(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    sizes = (args.inputs, *args.hidden, args.classes)
    itemsize = np.dtype(args.dtype).itemsize
    params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    # NOTE: the parameters and their gradient, twice (a long-double copy of each), and the
    # batch's activations; one finite difference at a time adds nothing that grows.
    need = 4 * 16 * params + itemsize * args.batch_size * (args.inputs + 3 * sum(sizes[1:]))
    budget.check(need, f"gradcheck of sizes {','.join(map(str, sizes))} on {args.batch_size} examples",
                 max_memory=args.max_memory, hint="pass a smaller --batch-size, --hidden or --inputs")
    net = MLP.initialize(sizes, rng=rng, activation=args.activation, l1=args.l1, l2=args.l2, dtype=args.dtype)
    X = rng.standard_normal((args.batch_size, args.inputs)).astype(net.dtype)
    y = rng.integers(0, args.classes, size=args.batch_size)
    w = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], size=args.batch_size) if args.weighted else None
    rates = dropout_rates(args.input_dropout, args.dropout, len(args.hidden))
    masks = dropout_masks(rates, sizes, args.batch_size, rng, net.dtype) if any(rates) else None
    report = check_gradients(net, X, y, method=args.method, step=args.step, tol=args.tol,
                             max_entries=args.max_entries, rng=rng, sample_weight=w, masks=masks)
    if masks is not None:
        report.notes.append(f"dropout masks fixed (rates {', '.join(f'{p:g}' for p in rates)}, from the input on): "
                            f"the objective they define is checked")
    emit(args, report.to_dict(), report.format_text())
    return 0 if report.passed else 1


# -- train, evaluate, predict ---------------------------------------------------------
def _data_flags(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--dataset", required=required, metavar="D",
                        help="circles, mnist, fashion-mnist, a directory of IDX files or a CSV/text file")
    _setting_flags(parser, DataSpec)


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="train a network on a data set", description="Minibatch gradient descent "
                       "with per-epoch train/valid/test loss and error; writes the model, history, plots and report.")
    _common(p)
    _setting_flags(p, TrainConfig, [n for n in declared(TrainConfig) if n != "seed"])  # --seed is common
    _data_flags(p, required=False)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: a new runs/<dataset>, runs/<dataset>-2, ...)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out DIR, with its settings")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out DIR, once the new one has a model (the old one stays until then)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--no-pictures", action="store_true", help="skip the plots and the HTML report")
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .runs import run, summary

    if args.dataset is None and not args.resume:
        raise ValueError("--dataset is required (circles, mnist, fashion-mnist or a path), unless --resume --out DIR.")
    if args.resume and not args.out:
        raise ValueError("--resume needs --out DIR: the directory of the interrupted run.")
    config = TrainConfig(**{name: getattr(args, name) for name in declared(TrainConfig)})
    data = DataSpec(args.dataset or "", **{name: getattr(args, name) for name in declared(DataSpec)})
    progress = not (args.quiet or args.json)
    result, dataset, out = run(config, data, out=Path(args.out) if args.out else None, runs_root=Path("runs"),
                               resume=args.resume, overwrite=args.overwrite, given=given_flags(args),
                               progress=progress, pictures=not args.no_pictures)
    doc = summary(result, dataset, out)
    final = result.final()
    line = (f"{dataset.name}: {result.epochs_run} epochs ({result.stopped_because}); "
            + ", ".join(f"{k.replace('_', ' ')} {100 * v:.2f}%" for k, v in final.items() if v is not None))
    if result.stopped_because == "interrupted":
        print(f"npmlp train: interrupted; checkpoint saved. Resume with: npmlp train --resume --out {out}",
              file=sys.stderr)
        emit(args, doc, line)
        return 130
    if result.model_written:
        from .plots import INSTALL_HINT, available

        if not args.no_pictures and not available():
            print(f"npmlp train: pictures skipped ({INSTALL_HINT}); the model and report.html are saved",
                  file=sys.stderr)
        emit(args, doc, f"{line}\nwrote {out}/" + (f" (the model of the best epoch, {result.best_epoch})"
                                                    if result.stopped_because == "diverged" else ""))
    else:
        emit(args, doc, f"{line}\nno model written" + (f"; {out}/ keeps what was there" if args.overwrite else ""))
    if result.stopped_because == "diverged" or not result.model_written:
        raise DivergenceError(result.message or f"the run stopped ({result.stopped_because}) without a model.")
    return 0


def given_flags(args: argparse.Namespace) -> set[str]:
    """The destinations of the flags given on the command line (not left at their defaults)."""
    parser = build_parser()
    stack: list[argparse.ArgumentParser] = [parser]
    while stack:  # every default of every subcommand becomes "absent"
        for action in stack.pop()._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    given = vars(parser.parse_args(args.argv))
    return {k for k in given if k not in ("command", "run")}


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="loss and error of a saved model on each split of its data",
                       description="Loss and error of a saved model on the train, valid and test splits of the "
                                   "data it was trained on, split as the run split it (both recorded in its "
                                   "config.json). With --dataset, another data set: when its fingerprint matches "
                                   "the run's, the run's split applies; else its own split, and a note says so.")
    _common(p)
    p.add_argument("--model", required=True, metavar="DIR_OR_FILE", help="a train output directory or its model.npz")
    p.add_argument("--dataset", default=None, metavar="D", help="evaluate on this data instead (default: the run's)")
    # the model's own standardiser applies: --standardize would change nothing here
    _setting_flags(p, DataSpec, [n for n in declared(DataSpec) if n != "standardize"],
                   defaults=dict.fromkeys(declared(DataSpec)))
    p.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .model import Model
    from .training import evaluate

    model = Model.load(args.model)
    net, config = model.net, model.config
    options = {name: getattr(args, name, None) for name in declared(DataSpec)}
    found = run_data(config, dataset=args.dataset, dtype=net.dtype.name, options=options)
    data = found.dataset
    if data.n_features != net.sizes[0] or data.n_classes > net.sizes[-1]:
        raise ValueError(f"the model {args.model} takes {net.sizes[0]} features and {net.sizes[-1]} classes; "
                         f"{data.source or data.name} has {data.n_features} features and {data.n_classes} classes.")
    if found.note:
        print(f"npmlp evaluate: note: {found.note}", file=sys.stderr)
    splits = {}
    for name, (X, y) in data.splits().items():
        if model.labels is not None and data.labels is not None and data.labels.classes != model.labels.classes:
            y = model.labels.encode(data.labels.decode(y))  # the data's own classes, numbered as the model's
        loss, error = evaluate(net, model.transform(X), y)
        splits[name] = {"loss": loss, "error": error, "n": int(X.shape[0])}
    text = "\n".join(f"{k:5s}  loss {v['loss']:.4f}  error {100 * v['error']:.2f}%  ({v['n']} rows)"
                     for k, v in splits.items())
    doc = {"model": str(args.model), "dataset": data.name, "source": data.source, "same_data": found.same,
           "note": found.note or None, "splits": splits}
    emit(args, doc, text)
    return 0


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("predict", help="labels (or probabilities) for the rows of a CSV/text/.npy file")
    _common(p)
    p.add_argument("--model", required=True, metavar="DIR_OR_FILE", help="a train output directory or its model.npz")
    p.add_argument("input", metavar="INPUT", help="CSV/whitespace text or .npy file, one example per row: the "
                   "features only, or a header naming the model's features (other columns ignored); - reads "
                   "standard input, and a pipe works as a path")
    p.add_argument("--proba", action="store_true", help="print class probabilities instead of labels")
    _setting_flags(p, DataSpec, ["header", "delimiter", "max_memory"])
    p.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                   help="give up on a stream (standard input, a pipe) that has not ended after S seconds (default 60)")
    p.set_defaults(run=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from .datasets import read_features
    from .functions import softmax
    from .model import Model

    model = Model.load(args.model)
    names = model.feature_names
    X, header = read_features(args.input, dtype=model.net.dtype.name, header=args.header, delimiter=args.delimiter,
                              max_memory=args.max_memory, timeout=args.timeout, select=names)
    where = "standard input" if args.input == "-" else str(args.input)
    if names is not None and header is not None and set(names) <= set(header):
        X = X[:, [header.index(n) for n in names]]  # the model's features by name, in its order
    if X.shape[1] != model.n_features:
        want = f" ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})" if names else ""
        raise ValueError(f"{where} has {X.shape[1]} columns; the model {args.model} takes {model.n_features} "
                         f"features{want}.")
    Oa = model.logits(X, source=where)
    if args.proba:
        P = softmax(Oa)
        text = "\n".join(",".join(f"{p:.6g}" for p in row) for row in P)
        emit(args, {"classes": model.classes.tolist(), "probabilities": P.tolist()}, text)
    else:
        labels = model.classes[Oa.argmax(axis=1)].tolist()
        emit(args, {"predictions": labels}, "\n".join(map(str, labels)))
    return 0


# -- export --------------------------------------------------------------------------
def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .export import FORMATS

    p = sub.add_parser("export", help="write a saved model for a serving stack (ONNX)",
                       description="Write a model directory (from npmlp train or MLPClassifier.save) as an ONNX "
                                   "graph with its preprocessing: input X (N, d) in the model's dtype, outputs "
                                   "'label' (N,) and 'probabilities' (N, m). Needs pip install 'npmlp[onnx]'.")
    _common(p)
    p.add_argument("--model", required=True, metavar="DIR_OR_FILE", help="a model directory or its model.npz")
    p.add_argument("--format", choices=sorted(FORMATS), default="onnx", help="file format (default onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write, like model.onnx")
    p.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export
    from .model import Model

    model = Model.load(args.model)
    path = export(model, args.out, format=args.format)
    doc = {"model": str(args.model), "format": args.format, "out": str(path), "sizes": list(model.net.sizes),
           "dtype": model.net.dtype.name, "classes": model.classes.tolist()}
    emit(args, doc, f"wrote {path} ({args.format}, inputs {model.n_features} {model.net.dtype.name}, "
                    f"{len(model.classes)} classes)")
    return 0


# -- bench ---------------------------------------------------------------------------
def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="seconds per epoch: matrix vs loop, the GEMM limit, scikit-learn and PyTorch",
                       description="Times one training epoch of each implementation, interleaved in one run, "
                                   "and prints medians, ranges and ratios. Default: the configurations A (the "
                                   "assignment's: dh=10 float64, elastic net 1e-3), B (dh=512 float32), B+pen, "
                                   "B+adam and tuned (the README's tuned run: dh=1024, Adam, K=128).")
    _common(p)
    p.add_argument("--dataset", default="fashion-mnist", metavar="D", help="data set (default fashion-mnist)")
    p.add_argument("--data-dir", default=None, metavar="DIR")
    p.add_argument("--hidden", type=int_list, default=None, metavar="H", help="instead of the presets: these sizes")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="with --hidden: one dtype (default both)")
    p.add_argument("--batch-size", type=positive_int, default=100, metavar="K", help="minibatch size (default 100)")
    p.add_argument("--peers", action="store_true", help="also time scikit-learn and PyTorch when installed")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (default 5)")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--threads", type=positive_int, default=usable,
                   help="BLAS and PyTorch threads, pinned for the run (default: usable CPUs)")
    p.add_argument("--max-rows", type=positive_int, default=None, help="time on the first N training rows only")
    p.add_argument("--no-loop", action="store_true", help="skip the (slow) loop backprop")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--settle", type=seconds, default=0.5, metavar="S",
                   help="seconds of rest before each timed epoch, so the previous one's threads go idle (default 0.5)")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import PRESETS, format_bench, run_bench

    if args.hidden is None:
        configs = [{"name": k, **v} for k, v in PRESETS.items()]
    else:
        configs = [{"name": f"h{'-'.join(map(str, args.hidden))}-{dt}", "hidden": args.hidden, "dtype": dt}
                   for dt in ([args.dtype] if args.dtype else ["float64", "float32"])]
    doc = run_bench(dataset=args.dataset, data_dir=args.data_dir, configs=configs, batch_size=args.batch_size,
                    peers=args.peers, loop=not args.no_loop, repeats=args.repeats, threads=args.threads,
                    max_rows=args.max_rows, memory=not args.no_memory, seed=args.seed, progress=not args.json,
                    settle=args.settle)
    emit(args, doc, format_bench(doc))
    return 0


# -- sweep ---------------------------------------------------------------------------
def _add_sweep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sweep", help="hyperparameter search (grid and/or random) on local processes or Dask",
                       description="Run the trials of a TOML sweep file, append each to DIR/trials.jsonl as it "
                                   "finishes (a restarted sweep skips them), rank them and plot the metric.")
    _common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", metavar="FILE", help="the sweep's TOML file")
    which.add_argument("--example", choices=EXAMPLES, help="a sweep file that ships with npmlp: circles (a minute "
                       "on 2 cores) or fashion (the one behind the README's settings; about 15 minutes)")
    p.add_argument("--print", action="store_true", help="print the sweep file and exit (a start for your own)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a Dask scheduler, tcp://HOST:PORT: run the trials on its workers")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="local worker processes (default 1; -1: one per core)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/sweep-NAME for "
                   "NAME.toml, sweep-NAME.toml or --example NAME)")
    p.set_defaults(run=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import default_out, example_path, format_results, run_sweep

    if args.jobs == 0 or args.jobs < -1:
        raise ValueError(f"--jobs must be >= 1 or -1 (one per core). Got {args.jobs} instead.")
    config = example_path(args.example) if args.example else Path(args.config)
    if args.print:
        sys.stdout.write(config.read_text(encoding="utf-8"))
        return 0
    out = Path(args.out) if args.out else default_out(config)
    result = run_sweep(config, out=out, jobs=args.jobs, scheduler=args.scheduler, progress=not args.json)
    emit(args, result.to_dict(), format_results(result))
    return 0 if result.best is not None else 1


# -- demo ----------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the assignment's experiments end to end",
                       description="The main job: part 3 of the assignment (IFT 6390, assignment 3) on this machine.")
    _common(p)
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="where to look for MNIST first")
    p.add_argument("--fast", action="store_true", help="small data and few epochs (for tests; also NPMLP_DEMO_FAST=1)")
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    fast = args.fast or os.environ.get("NPMLP_DEMO_FAST") == "1"
    path, summary = run_demo(Path(args.out), fast=fast, seed=args.seed, data_dir=args.data_dir)
    emit(args, {"report": str(path), **summary}, f"report: {path.resolve()}")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_gradcheck, _add_train, _add_evaluate, _add_predict, _add_export, _add_bench, _add_sweep, _add_demo]


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.run(args))
    except DivergenceError as exc:
        print(f"npmlp {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `npmlp gradcheck | head`: the reader left, nothing to say
        sys.stderr.close()
        return 0
    except MemoryError as exc:  # the estimate said it fits, or there was none: said the same way
        if os.environ.get("NPMLP_DEBUG"):
            raise
        message = " ".join(str(exc).split()) if isinstance(exc, NpmlpError) else (
            f"out of memory ({' '.join(str(exc).split()) or 'MemoryError'}); pass --dtype float32 or a smaller "
            "--batch-size/--hidden, or use less data")
        print(f"npmlp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (NpmlpError, ValueError, OSError, ImportError) as exc:  # ImportError: an extra is missing
        if os.environ.get("NPMLP_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"npmlp {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npmlp {args.command}: interrupted", file=sys.stderr)
        return 130
