"""Identify an activation by what it computes, not by its class name.

A leaf module or function is run on a fixed probe vector and compared with the activations
elas_compile knows. This recognises transformers' ACT2FN classes, torch.nn modules and a
user's own activation modules alike.
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


def classify_callable(fn) -> str | None:
    """Name of the known activation ``fn`` computes (on a probe vector), else None."""
    t = _probe()
    try:
        with torch.no_grad():
            out = fn(t.clone())
    except Exception:
        return None
    if not isinstance(out, torch.Tensor) or out.shape != t.shape:
        return None
    for name, ref in KNOWN.items():
        if torch.allclose(out.float(), ref(t), atol=1e-6, rtol=1e-5):
            return name
    return "unknown"


def classify_module(module: nn.Module) -> str | None:
    """Activation name of a leaf module that holds no parameters, else None."""
    if any(True for _ in module.parameters()) or isinstance(module, (nn.Linear, nn.Dropout, nn.Identity)):
        return None
    try:
        p = next(module.buffers())
        device = p.device
    except StopIteration:
        device = torch.device("cpu")
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


def is_mul(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in (operator.mul, torch.mul)) or (
        node.op == "call_method" and node.target == "mul"
    )


