"""Identify an activation by what it computes, not by its class name.

A leaf module or function is run on a fixed probe vector and compared with the activations
elas_compile knows. This recognises transformers' ACT2FN classes, torch.nn modules and a
user's own activation modules alike. An elementwise function that is none of them is
``"unknown"``: a plain MLP's activation is replaced by ReLU² whatever it was, a gated MLP's gate
must be one of :data:`GATE_ACTIVATIONS`.
"""
from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

KNOWN = {
    "silu": F.silu,
    "gelu": lambda t: F.gelu(t),
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "relu": torch.relu,
    "relu2": lambda t: torch.relu(t) ** 2,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda t: t,
}
GATE_ACTIVATIONS = ("silu", "gelu", "gelu_tanh")

# call_function / call_method targets that are activations, by identity.
_FUNCTIONS = {
    F.silu: "silu", torch.nn.functional.silu: "silu",
    F.relu: "relu", torch.relu: "relu", torch.sigmoid: "sigmoid", torch.tanh: "tanh",
}
_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}


def _probe() -> torch.Tensor:
    return torch.linspace(-6.0, 6.0, 241, dtype=torch.float32)


def _run(fn, t: torch.Tensor):
    try:
        with torch.no_grad():
            out = fn(t.clone())
    except Exception:
        return None
    return out if isinstance(out, torch.Tensor) and out.shape == t.shape else None


def classify_callable(fn) -> str | None:
    """Name of the known activation ``fn`` computes (on a probe vector), ``"unknown"`` for another
    elementwise function, None for anything else (a norm, a shape change, an error)."""
    t = _probe()
    out = _run(fn, t)
    if out is None:
        return None
    for name, ref in KNOWN.items():
        if torch.allclose(out.float(), ref(t), atol=1e-6, rtol=1e-5):
            return name
    head = _run(fn, t[:100])  # elementwise: the first 100 outputs do not depend on the rest
    if head is None or not torch.allclose(head.float(), out[:100].float(), atol=1e-6, rtol=1e-5):
        return None
    return "unknown"


def classify_module(module: nn.Module) -> str | None:
    """Activation name of a leaf module (see :func:`classify_callable`); the module is left as it was.
    Modules with parameters count too (xIELU's learnable slopes): the rewrite replaces them anyway."""
    from elas_compile.passes.model.trace import is_projection, preserved

    if is_projection(module) or isinstance(module, (nn.Dropout, nn.Identity)):
        return None
    tensors = list(module.parameters()) + list(module.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    with preserved(module):
        if device.type == "meta":  # no values to compare: an elementwise shape is all we can check
            return "unknown" if _run(module, _probe().to("meta")) is not None else None
        if device.type != "cpu":
            return classify_callable(lambda t: module(t.to(device)).cpu())
        return classify_callable(module)


def classify_node(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """Activation name computed by an FX node, None if it is not an elementwise activation."""
    if node.op == "call_module":
        return classify_module(modules[node.target])
    if node.op == "call_function":
        if node.target is F.gelu:
            approx = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
            return "gelu_tanh" if approx == "tanh" else "gelu"
        return _FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return _METHODS.get(node.target)
    return None


def is_dropout(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.Dropout)
    return (node.op == "call_function" and node.target in (F.dropout, torch.dropout)) or (
        node.op == "call_method" and node.target == "dropout")


def dropout_p(node: torch.fx.Node, modules: dict[str, nn.Module], training: bool) -> float | None:
    """The probability of a dropout node, 0.0 when it can never drop (``training=False`` in a
    module that was training when traced), None when it is not a constant."""
    if node.op == "call_module":
        return float(modules[node.target].p)
    args = list(node.args[1:]) + [None, None]
    p = node.kwargs.get("p", args[0] if args[0] is not None else 0.5)
    on = node.kwargs.get("training", args[1] if args[1] is not None else node.target is F.dropout)
    if not isinstance(p, (int, float)) or not isinstance(on, bool):
        return None
    return 0.0 if (not on and training) else float(p)


def is_mul(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in (operator.mul, torch.mul)) or (
        node.op == "call_method" and node.target == "mul"
    )


