"""Compute each sin/cos table once: a post-grad pass for rotary position embeddings.

A LLaMA model computes cos and sin of (positions x inverse frequencies) once per forward, and every
layer's RoPE reads them. Inductor inlines such cheap-looking pointwise producers into each consumer,
so every layer's RoPE kernel, forward and backward, recomputes sin and cos per element of q and k
(a 350m step's profile shows them in every layer: `python -m tools.profile_step`). This pass routes
each ``aten.sin`` / ``aten.cos`` whose value reaches two or more consumers (through casts, scalings
and views) through ``elas::materialize``, a copy Inductor cannot inline: the table is computed once
per graph and read from memory (64 x 256 x 64 fp32: 4 MB).
"""
from __future__ import annotations

import torch
import torch.fx
from torch._dynamo.utils import counters

aten = torch.ops.aten

_TRIG = (aten.sin.default, aten.cos.default)
# ops a table passes through on its way to the consumers (one tensor input, cheap, no reduction)
_PASS_THROUGH = {
    aten.mul.Tensor, aten.mul.Scalar, aten.div.Tensor,
    torch.ops.prims.convert_element_type.default, aten._to_copy.default, aten.clone.default,
    aten.unsqueeze.default, aten.squeeze.dim, aten.view.default, aten.reshape.default,
    aten.expand.default, aten.slice.Tensor, aten.permute.default, aten.transpose.int,
}


@torch.library.custom_op("elas::materialize", mutates_args=())
def materialize(x: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` that Inductor computes as its own buffer (its producer is not inlined)."""
    return x.clone()


@materialize.register_fake
def _materialize_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _passes_through(user: torch.fx.Node, value: torch.fx.Node) -> bool:
    if user.op != "call_function" or user.target not in _PASS_THROUGH:
        return False
    tensors = [a for a in user.args if isinstance(a, torch.fx.Node)]
    return tensors == [value]  # a scalar operand only: still the table, transformed


def consumers(node: torch.fx.Node) -> int:
    """How many nodes read ``node``'s value, counted through pass-through ops."""
    total, todo = 0, [node]
    while todo:
        n = todo.pop()
        for user in n.users:
            if _passes_through(user, n):
                todo.append(user)
            else:
                total += 1
    return total


def materialize_trig_tables(graph: torch.fx.Graph) -> int:
    """Insert ``elas.materialize`` after every sin/cos read by two or more consumers."""
    done = 0
    for target in _TRIG:
        for node in list(graph.find_nodes(op="call_function", target=target)):
            users = list(node.users)
            if consumers(node) < 2 or any(u.target == torch.ops.elas.materialize.default for u in users):
                continue
            with graph.inserting_after(node):
                table = graph.call_function(torch.ops.elas.materialize.default, (node,))
            table.meta.update(node.meta)
            node.replace_all_uses_with(table, delete_user_cb=lambda u: u is not table)
            done += 1
    counters["elas"]["trig_table_materialized"] += done
    return done
