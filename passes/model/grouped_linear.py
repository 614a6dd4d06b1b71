"""``elas::grouped_linear``: one linear per expert over rows grouped by expert (the reference path
of ELAS experts).

``x`` (S, in) holds the rows of expert 0, then expert 1, ... (``counts[e]`` rows each);
``weight`` (E, out, in); row s of the result is ``x[s] @ weight[e(s)].T``. The reference loops
over the experts in Python inside the op, so ``torch.compile(fullgraph=True)`` sees one opaque op
of static output shape (S, out) whatever the routing; no sparse GEMM runs here (the fast path of
ELAS experts is not built: docs/sharp_edges.md).
"""
from __future__ import annotations

import torch


def _segments(counts: torch.Tensor, rows: int):
    start = 0
    for e, n in enumerate(counts.tolist()):
        if n:
            yield e, start, start + n
        start += n
    if start != rows:
        raise ValueError(f"elas.grouped_linear: counts sum to {start} rows, x has {rows}")


@torch.library.custom_op("elas::grouped_linear", mutates_args=())
def grouped_linear(x: torch.Tensor, weight: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` grouped by expert times each expert's ``weight`` (E, out, in), transposed."""
    out = x.new_empty(x.shape[0], weight.shape[1])
    for e, a, b in _segments(counts, x.shape[0]):
        torch.mm(x[a:b], weight[e].t(), out=out[a:b])
    return out


@grouped_linear.register_fake
def _grouped_linear_fake(x: torch.Tensor, weight: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] != weight.shape[-1] or counts.shape[0] != weight.shape[0]:
        raise ValueError(f"elas.grouped_linear: x {tuple(x.shape)}, weight {tuple(weight.shape)} and "
                         f"counts {tuple(counts.shape)} do not fit")
    return x.new_empty(x.shape[0], weight.shape[1])


@torch.library.custom_op("elas::grouped_linear_weight_grad", mutates_args=())
def grouped_linear_weight_grad(grad: torch.Tensor, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """d(loss)/d(weight) of :func:`grouped_linear`: per expert, its rows' grad.T @ x."""
    out = grad.new_zeros(counts.shape[0], grad.shape[1], x.shape[1])
    for e, a, b in _segments(counts, x.shape[0]):
        torch.mm(grad[a:b].t(), x[a:b], out=out[e])
    return out


@grouped_linear_weight_grad.register_fake
def _weight_grad_fake(grad: torch.Tensor, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return grad.new_empty(counts.shape[0], grad.shape[1], x.shape[1])


def _setup(ctx, inputs, output) -> None:
    x, weight, counts = inputs
    ctx.save_for_backward(x, weight, counts)


def _backward(ctx, grad):
    x, weight, counts = ctx.saved_tensors
    grad = grad.contiguous()
    grad_x = grouped_linear(grad, weight.transpose(1, 2), counts) if ctx.needs_input_grad[0] else None
    grad_w = grouped_linear_weight_grad(grad, x, counts) if ctx.needs_input_grad[1] else None
    return grad_x, grad_w, None


grouped_linear.register_autograd(_backward, setup_context=_setup)
