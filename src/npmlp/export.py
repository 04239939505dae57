"""Models out of Python: an ONNX graph a serving stack (onnxruntime and the like) can run.

The graph takes the raw rows ``X`` of shape (N, d), in the model's dtype (float32 or
float64), and computes what :class:`npmlp.model.Model` computes::

    Z = (X - mean) / scale                  # when the model records a standardiser (in float64)
    H_l = f(H_{l-1} @ W_l.T + b_l)          # each hidden layer, f the activation
    probabilities = softmax(H @ W_L.T + b_L)    # (N, m), the model's dtype
    label = classes[argmax(probabilities)]      # (N,), int64 or string labels

Two outputs, ``label`` and ``probabilities``, the latter a plain (N, m) tensor as
skl2onnx gives with its ZipMap turned off. Weights are stored transposed, ``(fan_in,
fan_out)``, so each layer is one ``MatMul`` and one ``Add``.

The ``onnx`` package is an optional extra (``pip install 'npmlp[onnx]'``), imported only here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .atomicfile import atomic_write_bytes
from .model import Model
from .persistence import PathLike

if TYPE_CHECKING:
    from onnx import ModelProto

__all__ = ["FORMATS", "export", "to_onnx"]

INSTALL_HINT = "exporting to ONNX needs the onnx package. Install it with: pip install 'npmlp[onnx]'"
#: Opset 17 and IR version 8 (ONNX 1.12, 2022): read by every onnxruntime since 1.12.
OPSET, IR_VERSION = 17, 8


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return onnx


class _Graph:
    """Nodes and constants, each output named once (``name``, ``name_1``, ...)."""

    def __init__(self, onnx: Any) -> None:
        self.onnx, self.nodes, self.initializers = onnx, [], []  # type: ignore[var-annotated]
        self._names: set[str] = set()

    def name(self, base: str) -> str:
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, base: str, value: np.ndarray[Any, Any]) -> str:
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, out: str | None = None, **attrs: Any) -> str:
        name = out or self.name(base)
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], name=f"{op_type}_{name}", **attrs))
        return name


def _softplus(g: _Graph, x: str, dtype: np.dtype[Any]) -> str:
    """``softplus(x) = max(x, 0) + log(1 + exp(-|x|))``: onnxruntime has no float64 Softplus kernel."""
    if dtype == np.float32:
        return g.op("Softplus", [x], "softplus")
    # NOTE: exp(-|x|) <= 1 never overflows; for large |x| the log term is below the max's ulp.
    tail = g.op("Exp", [g.op("Neg", [g.op("Abs", [x], "abs")], "neg")], "exp")
    log1p = g.op("Log", [g.op("Add", [tail, g.const("one", np.ones((), dtype))], "one_plus")], "log")
    return g.op("Add", [g.op("Relu", [x], "relu"), log1p], "softplus")


#: Each hidden activation as ONNX nodes: (graph, input name, dtype) -> output name.
ACTIVATIONS: dict[str, Callable[[_Graph, str, np.dtype[Any]], str]] = {
    "rect": lambda g, x, dt: g.op("Relu", [x], "relu"),
    "sigmoid": lambda g, x, dt: g.op("Sigmoid", [x], "sigmoid"),
    "softplus": _softplus,
    "tanh": lambda g, x, dt: g.op("Tanh", [x], "tanh"),
}


def _standardize(g: _Graph, x: str, model: Model, elem: int) -> str:
    """``(X - mean) / scale`` in float64, as :class:`~npmlp.preprocess.Standardizer` computes it."""
    if model.scaler is None:
        return x
    onnx, wide = g.onnx, model.net.dtype == np.float64
    x64 = x if wide else g.op("Cast", [x], "x64", to=onnx.TensorProto.DOUBLE)
    z = g.op("Div", [g.op("Sub", [x64, g.const("mean", model.scaler.mean)], "centred"),
                     g.const("scale", model.scaler.scale)], "standardized")
    return z if wide else g.op("Cast", [z], "z", to=elem)


def _class_labels(model: Model) -> np.ndarray[Any, Any]:
    """The labels as an ONNX-ready array: int64, or strings (object array of str)."""
    classes = model.labels.classes if model.labels else tuple(range(model.net.sizes[-1]))
    if all(isinstance(c, str) for c in classes):
        return np.array(classes, dtype=object)
    return np.array(classes, dtype=np.int64)


def to_onnx(model: Model) -> ModelProto:
    """The ONNX graph of ``model`` (see the module docstring), checked by ``onnx.checker``.

    Parameters
    ----------
    model : Model
        As :func:`npmlp.load` returns it.

    Returns
    -------
    onnx.ModelProto with input ``X`` (N, d) and outputs ``label`` (N,), ``probabilities`` (N, m).
    """
    onnx = _onnx()
    net, helper = model.net, onnx.helper
    dtype = net.dtype
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    g = _Graph(onnx)
    H = _standardize(g, g.name("X"), model, elem)
    for i, (W, b) in enumerate(zip(net.weights, net.biases, strict=True), start=1):
        # NOTE: W.T, (fan_in, fan_out), stored contiguous: X @ W.T is then a plain MatMul.
        A = g.op("Add", [g.op("MatMul", [H, g.const(f"W{i}T", np.ascontiguousarray(W.T))], f"matmul{i}"),
                         g.const(f"b{i}", b)], f"a{i}")
        H = ACTIVATIONS[net.activation](g, A, dtype) if i < net.n_layers else A
    proba = g.op("Softmax", [H], "", out=g.name("probabilities"), axis=1)
    index = g.op("ArgMax", [proba], "index", axis=1, keepdims=0)
    labels = _class_labels(model)
    g.op("Gather", [g.const("classes", labels), index], "", out=g.name("label"), axis=0)
    d, m = net.sizes[0], net.sizes[-1]
    label_elem = onnx.TensorProto.STRING if labels.dtype == object else onnx.TensorProto.INT64
    graph = helper.make_graph(
        g.nodes, "npmlp", [helper.make_tensor_value_info("X", elem, ["N", d])],
        [helper.make_tensor_value_info("label", label_elem, ["N"]),
         helper.make_tensor_value_info("probabilities", elem, ["N", m])],
        initializer=g.initializers)
    proto: ModelProto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="npmlp",
                              doc_string=_doc(model))
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _doc(model: Model) -> str:

    names = f"; features: {', '.join(model.feature_names)}" if model.feature_names else ""
    return (f"npmlp {__version__} MLP, sizes {list(model.net.sizes)}, activation {model.net.activation}, "
            f"{model.net.dtype.name}{', standardised inputs' if model.scaler else ''}{names}")


def export_onnx(model: Model, path: PathLike) -> Path:
    """Write ``model``'s ONNX graph to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, to_onnx(model).SerializeToString())


#: The export formats: name -> writer(model, path).
FORMATS: dict[str, Callable[[Model, PathLike], Path]] = {"onnx": export_onnx}


def export(model: Model, path: PathLike, *, format: str = "onnx") -> Path:  # noqa: A002 - the CLI's --format
    """Write ``model`` to ``path`` in ``format`` (one of :data:`FORMATS`); return the path."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Got {format!r} instead.")
    return FORMATS[format](model, path)
