"""The main job: the assignment's part 3 end to end, into one self-contained report.

1. Q2/Q4: the gradient check on 1 and on 10 examples.
2. Q5: circles with ``dh=4`` and no penalty, ``dh=10`` with every penalty at 1e-3 (K=10,
   200 epochs, lr 0.03), decision regions on train and test; then a grid of hidden sizes
   and penalties on noisy circles, so capacity and regularisation can be seen.
3. Q8: seconds per epoch, loop vs matrix backprop, on MNIST-format data (dh=10, K=100).
4. Q9/Q10: a tuned run on MNIST-format data with its learning curves: the good
   hyperparameters the assignment could not find (:data:`TUNED`).

MNIST is used when present or downloadable, else Fashion-MNIST (Debian's package
``dataset-fashion-mnist`` when installed), else scikit-learn's 8x8 digits, which ship with
scikit-learn (the ``demo`` extra); the report says which it used. Without any of them,
parts 3 and 4 are skipped and the report says how to get the files.

The report opens on a headline of every part's result; long printouts are folded. Without
matplotlib every part still runs and the report is written, without pictures.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .atomicfile import locked_directory
from .bench_machine import busy_machine_warnings
from .datasets import Dataset, identity, load_dataset
from .errors import DataError, RunDirectoryError
from .gradcheck import GradCheckReport, check_gradients
from .network import MLP
from .report import (
    Block,
    Details,
    Headline,
    Image,
    Paragraph,
    Preformatted,
    Section,
    Table,
    applied_settings,
    class_tables,
    format_percent,
    format_seconds,
    history_table,
    settings_line,
    split_table,
    write_report,
)
from .runs import (
    LEGACY_OUTPUTS,
    MANIFEST_FILE,
    DataSpec,
    files_under,
    publish,
    run,
    staging_dir,
    write_manifest,
)
from .training import TrainConfig, Trainer, train

#: Hyperparameters for one hidden layer on MNIST-format data, found by
#: ``npmlp sweep --example fashion`` (see the README).
TUNED: dict[str, Any] = dict(hidden=[1024], optimizer="adam", lr=1e-3, lr_schedule="cosine", batch_size=128, epochs=30,
             l2=1e-5, dtype="float32")

#: The assignment's two circles runs (part 3, Q5).
SEED_CIRCLES: dict[str, dict[str, Any]] = {
    "dh=4, no penalty": dict(hidden=[4]),
    "dh=10, penalties 1e-3": dict(hidden=[10], l1=1e-3, l2=1e-3),
}


@dataclass
class Demo:
    """Where the demo writes, how big it runs, and what it found so far."""

    out: Path
    fast: bool = False
    seed: int = 0
    data_dir: str | None = None
    sections: list[Section] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)  # one line per part, for the headline
    warnings: list[str] = field(default_factory=list)  # what makes a result doubtful, for the headline

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        """A warning in the headline, said once on stderr too."""
        if text not in self.warnings:
            self.warnings.append(text)
            self.say(f"  warning: {text}")

    def figure(self, draw: Callable[[], Any], name: str, caption: str) -> list[Block]:
        """``[Image]`` of the figure ``draw()`` makes, saved as ``name``; ``[]`` without matplotlib."""
        if not plots.available():
            self.warn(f"pictures skipped ({plots.INSTALL_HINT})")
            return []
        return [Image(plots.save_figure(draw(), self.out / name), caption)]


def gradient_checks(demo: Demo) -> None:
    """Q2/Q4: d=2, dh=2, m=2, every penalty at 1e-3; K=1 then K=10."""
    blocks: list[Block] = [Paragraph(
        "Backprop against five-point central differences of the whole objective (penalty included), "
        "for every parameter entry: the true (analytic) gradient, the estimate, and their ratio, "
        "as the assignment prints them.")]
    verdicts = []
    for K in (1, 10):
        rng = np.random.default_rng(demo.seed)
        net = MLP.initialize((2, 2, 2), rng=rng, l1=1e-3, l2=1e-3)
        report = check_gradients(net, rng.standard_normal((K, 2)), rng.integers(0, 2, K))
        doc = demo.summary[f"gradcheck_K{K}"] = report.to_dict()
        verdicts.append(doc)
        verdict = (f"K = {K}: {'PASSED' if doc['passed'] else 'FAILED'}, max relative error "
                   f"{doc['max_rel_error']:.1e} (tolerance {doc['tol']:g})")
        blocks += [Paragraph(verdict), Details(f"K = {K}: the printout, parameter by parameter",
                                               [Preformatted(report.format_text())])]
        course = _course_check(net, rng, K)
        doc["forward"] = course.to_dict()
        blocks += [Paragraph(f"K = {K}, the assignment's way (forward differences, step {course.step:g}): "
                             f"{'PASSED' if course.passed else 'FAILED'}, every ratio within "
                             f"[{course.ratio_min:.7f}, {course.ratio_max:.7f}]"),
                   Details(f"K = {K}: the assignment's printout", [Preformatted(course.format_text())])]
        if K == 10:
            blocks += demo.figure(partial(plots.gradcheck_figure, report), "gradcheck.png",
                                  plots.CAPTIONS["gradcheck"])
        demo.say(f"== K={K} ==\n{report.format_text()}\n")
    passed = all(d["passed"] for d in verdicts)
    worst = max(d["max_rel_error"] for d in verdicts)
    demo.facts.append(f"Gradient check {'PASSED' if passed else 'FAILED'} on 1 and 10 examples: max relative error "
                      f"{worst:.1e}, tolerance {verdicts[0]['tol']:g}")
    demo.sections.append(Section("Gradient check (Q2, Q4)", blocks))


def _course_check(net: MLP, rng: np.random.Generator, K: int) -> GradCheckReport:
    """The assignment's own check on fresh data: forward differences with a step of 1e-5, ratios near 1."""
    return check_gradients(net, rng.standard_normal((K, 2)), rng.integers(0, 2, K), method="forward", step=1e-5)


def circles(demo: Demo) -> None:
    """Q5: the assignment's two runs with decision regions, then capacity x regularisation."""
    epochs = 20 if demo.fast else 200
    data = load_dataset("circles", seed=demo.seed)
    blocks: list[Block] = [Paragraph(f"Circles: 1,100 points, class 0 on radius 1.0, class 1 on radius 0.8; "
                                   f"K=10, {epochs} epochs, lr 0.03, split 60/20/20.")]
    rows = []
    for i, (name, kw) in enumerate(SEED_CIRCLES.items()):
        config = TrainConfig(batch_size=10, epochs=epochs, lr=0.03, seed=demo.seed, **kw)
        tic = time.perf_counter()
        result = train(data.splits(), config)
        seconds = time.perf_counter() - tic
        final = result.final()
        rows.append([name, *(round(_percent(final, s), 2) for s in ("train", "valid", "test")),
                     format_seconds(seconds), format_seconds(seconds / epochs)])
        draw = partial(plots.decision_regions_figure, result.net.predict, data.splits()["train"],
                       data.splits()["test"], settings=f"circles, {name}: {settings_line(config)}")
        blocks += demo.figure(draw, f"circles_{i + 1}.png", plots.CAPTIONS["decision_regions"])
        demo.summary[f"circles {name}"] = final
        demo.say(f"  {name}: test error {_percent(final, 'test'):.2f}% in {seconds:.1f} s")
    header = ["run", "train error (%)", "valid error (%)", "test error (%)", "seconds", "s / epoch"]
    blocks.insert(1, Table(header, rows))
    blocks += capacity_grid(demo, epochs)
    demo.facts.append("Circles, the assignment's two runs: test error " + " and ".join(
        f"{row[3]:.2f}% ({row[0]})" for row in rows))
    demo.sections.append(Section("Circles: decision regions (Q5)", blocks))


def capacity_grid(demo: Demo, epochs: int) -> list[Block]:
    """Test-set decision regions for several hidden sizes and penalties on noisy circles."""
    hidden, penalties = ([2, 4, 10, 50], [0.0, 1e-3, 1e-2]) if not demo.fast else ([2, 10], [0.0, 1e-2])
    data = load_dataset("circles", seed=demo.seed, noise=0.05)
    panels = []
    for pen in penalties:
        for h in hidden:
            config = TrainConfig(hidden=[h], l1=pen, l2=pen, batch_size=10, epochs=epochs, lr=0.03, seed=demo.seed)
            result = train(data.splits(), config)
            panels.append((f"dh={h}, l1=l2={pen:g}", result.net.predict))
    demo.summary["capacity_grid"] = [name for name, _ in panels]
    title = "Noisy circles (radial noise 0.05), test data: capacity grows to the right, the penalty downwards"
    draw = partial(plots.decision_regions_grid_figure, panels, data.splits()["test"], ncols=len(hidden), title=title)
    return demo.figure(draw, "circles_grid.png",
                       "Decision regions on the test set of noisy circles for each hidden size (columns) and "
                       "elastic-net coefficient (rows, l1 = l2): two units can only cut a band, "
                       "four already draw a polygon; a small penalty barely changes the boundary, while at 1e-2 "
                       "the L1 term drives every weight to 0 and the network answers one class everywhere.")


def image_data(demo: Demo) -> Dataset | None:
    """MNIST when it can be had, else Fashion-MNIST, else scikit-learn's digits, else None (and say why)."""
    reasons = []
    for name in ("mnist", "fashion-mnist"):
        try:
            return load_dataset(name, data_dir=demo.data_dir, dtype="float32", progress=True)
        except DataError as exc:
            reasons.append(f"{name}: {exc}")
    try:
        data = embedded_digits(demo.seed)
    except DataError as exc:
        reasons.append(f"digits: {exc}")
    else:
        demo.warn("no MNIST-format data found or downloadable: the image part ran on scikit-learn's 8x8 digits "
                  "(1,797 images) instead")
        demo.summary["image_data"] = {"used": "digits", "not_found": reasons}
        return data
    demo.summary["skipped"] = reasons
    demo.sections.append(Section("MNIST-format data (Q8-Q10): skipped", [
        Paragraph("Neither MNIST nor Fashion-MNIST could be found or downloaded, and scikit-learn (whose 8x8 digits "
                  "would stand in) is not installed, so the timing and the tuned run were skipped. Put the four IDX "
                  "files in ~/.cache/npmlp/mnist/ (or pass --data-dir), or install Debian's dataset-fashion-mnist, "
                  "or pip install 'npmlp[demo]', and run the demo again."),
        Details("why each data set was unavailable", [Preformatted("\n\n".join(reasons))])]))
    demo.warn("no image data: the timing and the tuned run were skipped (see the report for where to put the files)")
    return None


def embedded_digits(seed: int, dtype: str = "float32") -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, in scikit-learn's package), split 60/20/20, seeded.

    Pixels 0..16 are scaled to [0, 1]. Raises DataError when scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("scikit-learn's 8x8 digits need scikit-learn: pip install 'npmlp[demo]'") from None
    images, labels = load_digits(return_X_y=True)
    y = labels.astype(np.intp)
    X = (images / 16.0).astype(dtype)
    rows = np.split(np.random.default_rng(seed).permutation(y.size), [int(0.6 * y.size), int(0.8 * y.size)])
    (Xtr, ytr), (Xva, yva), (Xte, yte) = ((X[r], y[r]) for r in rows)
    return Dataset("digits", Xtr, ytr, Xva, yva, Xte, yte, n_classes=10, image_shape=(8, 8),
                   class_names=[str(c) for c in range(10)],
                   source="scikit-learn's load_digits(): 1,797 8x8 images of handwritten digits",
                   identity=identity([images, labels], rows, seed=seed))


def timing(demo: Demo, data: Dataset) -> None:
    """Q8: seconds per epoch of the loop and the matrix backprop, dh=10, K=100, penalties 1e-3."""
    X, y = data.X_train.astype(np.float64), data.y_train
    if demo.fast:
        X, y = X[:2000], y[:2000]
    seconds = {}
    with busy_machine_warnings() as busy:
        for backprop in ("loop", "matrix"):
            config = TrainConfig(hidden=[10], batch_size=100, lr=0.03, l1=1e-3, l2=1e-3, backprop=backprop,
                                 seed=demo.seed)
            trainer = Trainer.new(config, X.shape[1], data.n_classes)
            runs = []
            for _ in range(1 if backprop == "loop" else 3):
                tic = time.perf_counter()
                trainer.run_epoch(X, y)
                runs.append(time.perf_counter() - tic)
            seconds[f"{backprop} backprop"] = float(np.median(runs))
            demo.say(f"  {backprop}: {seconds[f'{backprop} backprop']:.2f} s per epoch")
    ratio = seconds["loop backprop"] / seconds["matrix backprop"]
    demo.summary["timing"] = {**seconds, "ratio": ratio, "warnings": busy}
    if busy:
        more = f" (and {len(busy) - 1} more in its section)" if len(busy) > 1 else ""
        demo.warn(f"loop vs matrix timing: {busy[0]}{more}")
    demo.facts.append(f"Loop vs matrix backprop on {data.name}: the loop takes {ratio:.1f} times as long"
                      + (" (machine busy: unreliable)" if busy else ""))
    title = f"{data.name}, {X.shape[0]:,} rows: seconds per epoch (dh=10, K=100, float64)"
    demo.sections.append(Section("Loop vs matrix backprop (Q8)", [
        Paragraph(f"One epoch over {X.shape[0]:,} training rows of {data.name}, dh=10, K=100, lr 0.03, every "
                  f"penalty 1e-3, float64. The assignment measured 5.4 s (loop) and 0.77 s (matrix) on MNIST; here "
                  f"the loop takes {ratio:.1f} times as long as the matrix version."),
        *(Paragraph(f"Warning: {w}.") for w in busy),
        *demo.figure(lambda: plots.timing_figure(seconds, reference="matrix backprop", title=title), "timing.png",
                     plots.CAPTIONS["timing"])]))


def tuned(demo: Demo, data: Dataset) -> None:
    """Q9/Q10: the tuned run, with its full output directory under ``out/tuned``."""
    settings = dict(TUNED, epochs=2) if demo.fast else dict(TUNED)
    config = TrainConfig(seed=demo.seed, **settings)
    tic = time.perf_counter()
    result, data, _ = run(config, DataSpec(data.name, data_dir=demo.data_dir), out=demo.out / "tuned", progress=True,
                       dataset=data)
    seconds = time.perf_counter() - tic
    final = result.final()
    demo.summary["tuned"] = {"dataset": data.name, "settings": settings, "final": final, "seconds": seconds}
    demo.say(f"  test error {100 * (final['test_error'] or 0):.2f}% after {result.epochs_run} epochs, {seconds:.0f} s")
    demo.facts.append(f"A tuned run on {data.name}: test error {format_percent(final['test_error'])} after "
                      f"{result.epochs_run} epochs, {format_seconds(seconds)}")
    figures = [("curves.png", "learning_curves"), ("misclassified.png", "misclassified"),
               ("first_layer_weights.png", "first_layer_weights")]
    again = (f"`npmlp evaluate --model tuned --dataset {data.name}` re-checks it" if data.name != "digits"
             else "scikit-learn's digits are not a data set of `npmlp train`, so it cannot be re-evaluated there")
    X, y = data.splits()["test"]
    demo.sections.append(Section(f"A tuned run on {data.name} (Q9, Q10)", [
        Paragraph(f"One hidden layer, settings found by a sweep (`npmlp sweep --example fashion`): "
                  f"{settings_line(config)}, {config.epochs} epochs. Its own report, model and history are in "
                  f"tuned/ beside this page; {again}."),
        split_table(result, data),
        *class_tables(y, result.net.predict(X), data, "test"),
        *(Image(demo.out / "tuned" / f, plots.CAPTIONS[c]) for f, c in figures if (demo.out / "tuned" / f).exists()),
        Details("the settings that apply", [applied_settings(config)]),
        Details(f"history: {result.epochs_run} epochs", [history_table(result.history)])]))


STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("gradient check on 1 and 10 examples (Q2, Q4)", gradient_checks),
    ("circles: the assignment's runs and a capacity/penalty grid (Q5)", circles),
]


#: What the demo wrote before it kept a manifest: a directory holding the first two is an old demo's output.
LEGACY_DEMO_FILES = ("report.html", "gradcheck.png", "circles_1.png", "circles_2.png", "circles_grid.png",
                     "timing.png", *(f"tuned/{name}" for name in LEGACY_OUTPUTS))


def demo_owns(out: Path) -> bool:
    """Whether ``out`` is new, empty, or holds only what an earlier demo wrote (and files it did not touch)."""
    if not out.exists():
        return True
    if (out / MANIFEST_FILE).is_file():
        return "npmlp demo" in (out / MANIFEST_FILE).read_text(encoding="utf-8", errors="replace")
    if (out / "report.html").is_file() and (out / "gradcheck.png").is_file():
        write_manifest(out, [f for f in LEGACY_DEMO_FILES if (out / f).is_file()], written_by="npmlp demo")
        return True
    return not files_under(out)


def run_demo(
    out: Path, *, fast: bool = False, seed: int = 0, data_dir: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Run every part of the demo into a staging directory, then replace the previous demo in ``out`` with it.

    The demo owns ``out``: it refuses a directory holding anything else, replaces only the
    files an earlier demo wrote (its manifest lists them), and a demo that fails half-way
    leaves the previous one whole. Returns the path of ``out/report.html`` and a summary.
    """
    if not demo_owns(out):
        raise RunDirectoryError(f"{out} holds files that npmlp demo did not write: choose another --out.")
    with locked_directory(out, what="demo"):
        stage = staging_dir(out)
        try:
            with locked_directory(stage, what="demo"):
                summary = _run_demo_into(stage, fast=fast, seed=seed, data_dir=data_dir)
            write_manifest(stage, files_under(stage), written_by="npmlp demo")
            publish(stage, out, first=())
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return out / "report.html", summary


def _run_demo_into(out: Path, *, fast: bool, seed: int, data_dir: str | None) -> dict[str, Any]:
    demo, tic = Demo(out, fast=fast, seed=seed, data_dir=data_dir), time.perf_counter()
    for i, (title, step) in enumerate(STEPS, start=1):
        demo.say(f"[{i}/4] {title}")
        step(demo)
    demo.say("[3/4] loop vs matrix backprop on MNIST-format data (Q8)")
    data = image_data(demo)
    if data is not None:
        if fast:
            data = _small(data)
        timing(demo, data)
        demo.say(f"[4/4] a tuned run on {data.name} (Q9, Q10)")
        tuned(demo, data)
    demo.summary["seconds"] = time.perf_counter() - tic
    demo.summary["warnings"] = demo.warnings
    headline = Headline(f"The assignment's part 3, reproduced on this machine in "
                        f"{format_seconds(demo.summary['seconds'])}", demo.facts, demo.warnings)
    intro = Section("Results", [headline, Paragraph(
        "npmlp's demo: the experiments of part 3 of the assignment (IFT 6390, assignment 3), each part below."
        + (" Fast mode: small data and few epochs, for tests." if fast else ""))])
    title = "npmlp demo: the assignment's experiments"
    write_report(out / "report.html", title=title, sections=[intro, *demo.sections])
    return demo.summary


def _percent(final: dict[str, float | None], split: str) -> float:
    """The error on ``split`` in percent, from ``TrainResult.final()``; the circles data has all three splits."""
    error = final[f"{split}_error"]
    if error is None:
        raise ValueError(f"the run has no {split} error: its {split} split is empty")
    return 100 * error


def _small(data: Dataset, rows: int = 600) -> Dataset:
    """Fast mode: the first rows of each split."""
    # X_train=..., y_train=...: keyword arguments of two array types
    parts: dict[str, Any] = {
        f"{a}_{s}": v[:rows] for s, pair in data.splits().items() for a, v in zip("Xy", pair, strict=True)
    }
    return dataclasses.replace(data, **parts)
