"""Find the attention projections by data flow: the linears whose outputs feed an attention op
(q, k, v) and those that read its result (o), never a router or a gate.

The model runs once on a probe input (``example_inputs``, by default token ids of shape (1, 8)),
under ``no_grad`` and in eval mode, with a ``TorchFunctionMode`` that tags every tensor with the
projections it came from (a projection's output is tagged with that projection alone). An
attention op is ``scaled_dot_product_attention`` or the eager form ``softmax(q @ kᵀ ...) @ v``; a
router (softmax of one projection's output) and a gate (sigmoid) are neither. The model is left
as it was: every module's attributes, the training flags and the random state are restored.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from elas_compile.errors import ELASError
from elas_compile.passes.model.trace import is_projection, preserved

_RAW, _SCORES, _ATTN = "<q·kᵀ>", "<softmax(q·kᵀ)>", "<attention output>"
_MARKERS = (_RAW, _SCORES, _ATTN)
_SDPA = (F.scaled_dot_product_attention,)
_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm, torch.Tensor.bmm)
_SOFTMAX = (F.softmax, torch.softmax, torch.Tensor.softmax)


def _projections_of(tags) -> frozenset:
    return frozenset(t for t in tags if t not in _MARKERS)


class _Flow(TorchFunctionMode):
    """Tags tensors with the projections they come from; records attention feeders."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict = {}  # id(tensor) -> (tensor, tags): the tensor is kept so its id stays unique
        self.feeders: set = set()

    def get(self, t) -> frozenset:
        entry = self.tags.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else frozenset()

    def put(self, value, tags) -> None:
        for t in tree_leaves(value):
            if isinstance(t, torch.Tensor):
                self.tags[id(t)] = (t, frozenset(tags))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        tags = frozenset().union(*(self.get(t) for t in inputs))
        if func in _SDPA:
            qkv = (list(args) + [kwargs.get(n) for n in ("query", "key", "value")])[:3]
            for t in qkv:
                self.feeders |= _projections_of(self.get(t))
            tags = {_ATTN}
        elif func in _MATMULS and len(args) >= 2:
            a, b = (self.get(t) for t in args[:2])
            if _SCORES in a:
                self.feeders |= _projections_of(b)
                tags = {_ATTN}
            elif _projections_of(a) and _projections_of(b) and not any(isinstance(t, nn.Parameter) for t in args[:2]):
                tags = tags | {_RAW}
        elif func in _SOFTMAX and _RAW in tags:
            self.feeders |= _projections_of(tags)
            tags = {_SCORES}
        self.put(out, tags)
        return out


def find_attention_projections(model: nn.Module, example_inputs: Optional[Sequence] = None) -> dict[str, str]:
    """``{path: "q/k/v" | "o"}`` for every projection that feeds an attention op or reads its result."""
    paths = {id(m): p for p, m in model.named_modules() if is_projection(m)}
    flow, readers = _Flow(), set()

    def before(module, args):
        if id(module) in paths and any(_ATTN in flow.get(t) for t in tree_leaves(args) if isinstance(t, torch.Tensor)):
            readers.add(paths[id(module)])

    def after(module, args, output):
        if id(module) in paths:
            flow.put(output, {paths[id(module)]})

    if example_inputs is None:
        first = next(model.parameters(), None)
        example_inputs = (torch.zeros(1, 8, dtype=torch.long, device=first.device if first is not None else None),)
    handles = [nn.modules.module.register_module_forward_pre_hook(before),
               nn.modules.module.register_module_forward_hook(after)]
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    cpu_rng = torch.get_rng_state()
    try:
        with preserved(*model.modules()), torch.no_grad(), flow:
            model.eval()
            model(*example_inputs)
    except Exception as e:
        raise ELASError(
            f"targets=('ffn', 'attention'): elas_compile finds the attention projections by running "
            f"{type(model).__name__} once on example inputs (default: token ids of shape (1, 8)), and that "
            f"run failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}). Pass "
            "apply(..., example_inputs=(...,)) that the model's forward accepts, or leave 'attention' out "
            "of ELASConfig.targets."
        ) from e
    finally:
        for h in handles:
            h.remove()
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    roles = {p: "o" for p in readers}
    roles.update({p: "q/k/v" for p in flow.feeders if p in paths.values()})
    return roles
