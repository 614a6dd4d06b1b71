"""Skip the copies of permuted tensors that are already laid out as the copy asks: a post-grad pass.

In a LLaMA step's backward graph, the attention backward's gradients are permuted back from
(batch, heads, tokens, head_dim) to (batch, tokens, heads, head_dim) and copied contiguous
(``aten.clone(permute(g), memory_format=contiguous_format)``) before the projections' GEMMs. The
FX graph's strides say the copy is needed, so Inductor's ``remove_noop_ops`` keeps it; but the
cuDNN attention backward writes its gradients in the layout of its inputs, which Inductor laid out
(batch, tokens, heads, head_dim): the permuted view is already contiguous. Inductor still lowers
the clone to a copy, and with the input's buffer reused for the output it becomes a kernel that
loads every element and stores it back in place (350m preset, 64 x 256 tokens, H100: two such
kernels a layer in every variant, in the step's profile: `python -m tools.profile_step`).

This pass routes such clones through ``elas::contiguous``, whose Inductor lowering asks for the
contiguous layout (``ExternKernel.require_contiguous``): a view of the buffer when it already has
it, one copy otherwise, as the clone was. Only clones whose value is read, not written and not
returned (the output could then alias another tensor), are rewritten: through views, every reader
must be a non-mutating aten op outside the scatter family that Inductor may turn into in-place
writes.
"""
from __future__ import annotations

import torch
import torch.fx
from torch._dynamo.utils import counters
from torch._inductor import ir
from torch._inductor.lowering import register_lowering

aten = torch.ops.aten

_PERMUTES = (aten.permute.default, aten.transpose.int, aten.t.default)
# ops that only re-view their input: follow them to the readers
_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default, *_PERMUTES,
          aten.expand.default, aten.unsqueeze.default, aten.squeeze.dim, aten.slice.Tensor, aten.select.int)
# functional ops that post-grad passes may rewrite into in-place writes of their first input
_SCATTERS = ("index_put", "scatter", "scatter_add", "scatter_reduce", "slice_scatter", "select_scatter",
             "as_strided_scatter", "diagonal_scatter", "copy", "index_add", "index_copy", "index_fill",
             "masked_scatter")


@torch.library.custom_op("elas::contiguous", mutates_args=())
def contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the contiguous layout; under Inductor a view of ``x``'s buffer when it has that
    layout already (see the module docstring), else a copy."""
    return x.clone(memory_format=torch.contiguous_format)


@contiguous.register_fake
def _contiguous_fake(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape)


@register_lowering(torch.ops.elas.contiguous.default, type_promotion_kind=None)
def _lower_contiguous(x):
    out = ir.ExternKernel.require_contiguous(x)
    return out if isinstance(out, ir.TensorBox) else ir.TensorBox(out)


def _reads_only(node: torch.fx.Node) -> bool:
    """Whether every use of ``node``'s value, through views, is a read by a non-mutating aten op."""
    todo = [node]
    while todo:
        n = todo.pop()
        for user in n.users:
            if user.op != "call_function" or not isinstance(user.target, torch._ops.OpOverload):
                return False  # the graph's output, a getitem, a Python function: keep the copy
            if user.target in _VIEWS:
                todo.append(user)
                continue
            schema = user.target._schema
            if schema.is_mutable or user.target.name().split("::")[-1] in _SCATTERS:
                return False
    return True


def skip_layout_copies(graph: torch.fx.Graph) -> int:
    """Rewrite ``clone(permute(x), memory_format=contiguous_format)`` read-only values into
    ``elas.contiguous(permute(x))``; returns how many."""
    done = 0
    for node in list(graph.find_nodes(op="call_function", target=aten.clone.default)):
        src = node.args[0]
        if (node.kwargs.get("memory_format") is not torch.contiguous_format
                or not isinstance(src, torch.fx.Node) or src.op != "call_function" or src.target not in _PERMUTES
                or not _reads_only(node)):
            continue
        with graph.inserting_before(node):
            new = graph.call_function(torch.ops.elas.contiguous.default, (src,))
        new.meta.update(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        done += 1
    counters["elas"]["layout_copy_skipped"] += done
    return done
