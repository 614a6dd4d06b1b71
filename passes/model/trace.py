"""Reading a user's module without changing it: projections, and FX traces that leave no state.

FX tracing runs a module's ``forward`` with Proxies, so any attribute that forward writes (an
aux-loss stash, a counter, a cache) would be left holding a Proxy. :func:`preserved` snapshots a
module's attributes and puts them back, and :func:`trace_children_as_leaves` reports what the
forward wrote: a side effect the rewrite would drop.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional, Tuple

import torch
import torch.fx
import torch.nn as nn

_DICTS = ("_parameters", "_buffers", "_modules")


def _conv1d_class():
    """transformers' ``Conv1D`` (GPT-2's projections: a linear with its weight stored in x out), if
    transformers is loaded; a user's model cannot hold one otherwise."""
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    return getattr(pytorch_utils, "Conv1D", None)


def is_projection(module: nn.Module) -> bool:
    """An ``nn.Linear`` or a transformers ``Conv1D``: the projections an MLP is built from."""
    conv1d = _conv1d_class()
    return isinstance(module, nn.Linear) or (conv1d is not None and isinstance(module, conv1d))


def projection_shape(module: nn.Module) -> Tuple[int, int]:
    """(in_features, out_features) of a projection."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.weight.shape[0], module.weight.shape[1]  # Conv1D stores (in, out)


def projection_weight(module: nn.Module) -> torch.Tensor:
    """The projection's weight as nn.Linear lays it out: (out, in)."""
    return module.weight if isinstance(module, nn.Linear) else module.weight.t()


def projection_bias(module: nn.Module) -> Optional[torch.Tensor]:
    return getattr(module, "bias", None)


def _state(module: nn.Module) -> dict:
    return {"__dict__": dict(module.__dict__), **{k: dict(module.__dict__[k]) for k in _DICTS}}


def _restore(module: nn.Module, saved: dict) -> None:
    for key in _DICTS:
        inner = saved["__dict__"][key]
        inner.clear()
        inner.update(saved[key])
    module.__dict__.clear()
    module.__dict__.update(saved["__dict__"])


def _written(module: nn.Module, saved: dict) -> list[str]:
    """Names of the attributes that differ from the snapshot ``saved``."""
    now = _state(module)
    names = [k for k in set(now["__dict__"]) | set(saved["__dict__"]) if k not in _DICTS
             and now["__dict__"].get(k, saved) is not saved["__dict__"].get(k, now)]
    for key in _DICTS:
        names += [k for k in set(now[key]) | set(saved[key]) if now[key].get(k, saved) is not saved[key].get(k, now)]
    return sorted(names)


@contextlib.contextmanager
def preserved(*modules: nn.Module) -> Iterator[list]:
    """Run a block that may run the modules' code; afterwards their attributes are as before.
    Yields a list that, after the block, holds the names of the attributes the block wrote."""
    saved = [(m, _state(m)) for m in modules]
    written: list = []
    try:
        yield written
    finally:
        for module, state in saved:
            written += _written(module, state)
            _restore(module, state)


class _LeafTracer(torch.fx.Tracer):
    """Treat every child module as a leaf: the candidate's own forward is what we read."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_children_as_leaves(module: nn.Module) -> Tuple[Optional[torch.fx.GraphModule], str]:
    """``(graph module, "")`` or ``(None, why the forward cannot be read)``. The module is left as
    it was; a forward that writes attributes is a side effect the rewrite would drop, so it is
    refused here with the attributes' names."""
    with preserved(module) as written:
        try:
            graph = _LeafTracer().trace(module)
        except Exception as e:  # data-dependent control flow, unsupported args, ...
            first = (str(e).strip().splitlines() or [""])[0][:160]
            return None, f"its forward cannot be traced with torch.fx ({type(e).__name__}: {first})"
    if written:
        return None, (f"its forward writes the attribute(s) {', '.join(written)}: a side effect the "
                      "rewritten MLP would not have")
    return torch.fx.GraphModule(module, graph), ""
