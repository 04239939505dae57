"""npmlp's Python API in one page: data, a network, its gradients checked, training, predictions.

    python examples/quickstart.py [OUT_DIR]

Trains the assignment's network (one hidden layer of 10 rect units, every elastic-net
coefficient at 1e-3) on the circles, prints what it learned, and writes the model and a
picture of its decision regions into OUT_DIR (default ``runs/quickstart``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from npmlp import MLP, check_gradients
from npmlp.datasets import load_dataset
from npmlp.persistence import load_model, save_model
from npmlp.training import TrainConfig, train


def main(out: Path) -> None:
    # 1. Data: rows are examples. X of shape (n, 2), integer labels y of shape (n,).
    data = load_dataset("circles", seed=0)
    X_train, y_train = data.X_train, data.y_train
    print(f"circles: {X_train.shape[0]} training rows of {X_train.shape[1]} features, {data.n_classes} classes")

    # 2. A network: layer sizes (d, dh, m); W ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)], b = 0.
    net = MLP.initialize((2, 10, 2), rng=np.random.default_rng(0), l1=1e-3, l2=1e-3)
    grads = net.gradients(X_train[:10], y_train[:10])  # the objective's gradient, by parameter name
    print("gradient shapes:", {k: g.shape for k, g in grads.items()})

    # 3. The gradient check, as the assignment does it: forward differences with a step of 1e-5.
    report = check_gradients(net, X_train[:10], y_train[:10], method="forward", step=1e-5)
    print(f"gradient check ({report.method}): ratios within [{report.ratio_min:.6f}, {report.ratio_max:.6f}],",
          "passed" if report.passed else "FAILED")

    # 4. Training: minibatches of 10, 200 epochs at learning rate 0.03 (the assignment's settings).
    config = TrainConfig(hidden=[10], l1=1e-3, l2=1e-3, batch_size=10, epochs=200, lr=0.03, seed=0)
    result = train(data.splits(), config)
    print(f"after {result.epochs_run} epochs:", {k: f"{v:.2%}" for k, v in result.final().items()})

    # 5. Predictions, and the model saved and loaded back.
    points = np.array([[0.0, 1.0], [0.0, 0.8]])
    print("P(class | x) for a point on each circle:\n", result.net.predict_proba(points).round(3))
    save_model(out, result.net)
    loaded, _ = load_model(out)
    assert np.array_equal(loaded.predict(data.X_test), result.net.predict(data.X_test))
    print(f"model saved in {out}")

    # 6. A picture (needs matplotlib: pip install 'npmlp[plot]').
    from npmlp import plots

    try:
        fig = plots.decision_regions_figure(result.net.predict, data.splits()["train"], data.splits()["test"],
                                            settings="circles, dh=10, penalties 1e-3, 200 epochs")
    except ImportError as exc:
        print(exc)
        return
    print("decision regions in", plots.save_figure(fig, out / "decision_regions.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/quickstart"))
