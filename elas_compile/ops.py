"""The ``torch.ops.elas`` operators and their autograd.

Each op has a pure-PyTorch reference implementation (``elas_compile.kernels.reference``) that runs
on any device, a fake implementation for tracing, and autograd for both backward modes.
Later layers register faster implementations (Triton, cuSPARSELt) behind the same ops.

``mode`` arguments take one of ``elas_compile.modes.MODES`` (dense warm-up, masked, ste).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from elas_compile.kernels import reference
from elas_compile.kernels.triton import ops as triton_ops  # noqa: F401  (compressed-operand ops)
from elas_compile.modes import check_mode as _check_mode


# ---------------------------------------------------------------------------------------------
# elas::sparsify24(x, mode): 2:4 sparsify along the last dimension.
@torch.library.custom_op("elas::sparsify24", mutates_args=())
def sparsify24(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Keep the 2 largest-magnitude of every 4 consecutive features (identity in ``dense`` mode)."""
    _check_mode(mode)
    if mode == "dense":
        return x.clone()
    return reference.sparsify24(x)


@sparsify24.register_fake
def _sparsify24_fake(x: torch.Tensor, mode: str) -> torch.Tensor:
    if x.dim() == 0 or x.shape[-1] % 4 != 0:
        raise ValueError(f"elas.sparsify24 needs the last dimension to be a multiple of 4, got {tuple(x.shape)}")
    return torch.empty_like(x)


def _sparsify24_setup(ctx, inputs, output) -> None:
    x, mode = inputs
    ctx.mode = mode
    ctx.save_for_backward(x if mode == "masked" else None)


def _sparsify24_backward(ctx, grad):
    if ctx.mode != "masked":
        return grad, None
    (x,) = ctx.saved_tensors
    return torch.where(reference.sparsify24_mask(x), grad, torch.zeros_like(grad)), None


sparsify24.register_autograd(_sparsify24_backward, setup_context=_sparsify24_setup)


# ---------------------------------------------------------------------------------------------
# elas::relu2_sparsify24(y, mode): sparsify24(relu(y) ** 2), fused.
@torch.library.custom_op("elas::relu2_sparsify24", mutates_args=())
def relu2_sparsify24(y: torch.Tensor, mode: str) -> torch.Tensor:
    """Squared ReLU followed by the 2:4 step, in one op (what the fusion pass produces)."""
    _check_mode(mode)
    if mode == "dense":
        return reference.relu2(y)
    return reference.relu2_sparsify24(y)


@relu2_sparsify24.register_fake
def _relu2_sparsify24_fake(y: torch.Tensor, mode: str) -> torch.Tensor:
    return _sparsify24_fake(y, mode)


def _relu2_sparsify24_setup(ctx, inputs, output) -> None:
    y, mode = inputs
    ctx.mode = mode
    ctx.save_for_backward(y, output if mode == "masked" else None)


def _relu2_sparsify24_backward(ctx, grad):
    y, out = ctx.saved_tensors
    return reference.relu2_sparsify24_backward(grad, y, out, ctx.mode), None


relu2_sparsify24.register_autograd(_relu2_sparsify24_backward, setup_context=_relu2_sparsify24_setup)


# ---------------------------------------------------------------------------------------------
# elas::sparse24_linear(x, weight, mode, kernels): x @ weight.T where x is 2:4 sparse (dense storage).
@torch.library.custom_op("elas::sparse24_linear", mutates_args=())
def sparse24_linear(x: torch.Tensor, weight: torch.Tensor, mode: str, kernels: str = "auto") -> torch.Tensor:
    """A linear layer (no bias) whose input is 2:4 sparse along its features (in sparse modes).
    ``kernels`` is the MLP's ``ELASConfig.kernels``: the compiler pass reads it to choose the
    backend of the fused FFN op (``elas_compile.backends``); this reference ignores it."""
    _check_mode(mode)
    return F.linear(x, weight)


@sparse24_linear.register_fake
def _sparse24_linear_fake(x: torch.Tensor, weight: torch.Tensor, mode: str, kernels: str = "auto") -> torch.Tensor:
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"elas.sparse24_linear: x has {x.shape[-1]} features, weight expects {weight.shape[1]}")
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _sparse24_linear_setup(ctx, inputs, output) -> None:
    x, weight = inputs[:2]
    ctx.save_for_backward(x, weight)


def _sparse24_linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = grad @ weight
    if ctx.needs_input_grad[1]:
        grad_w = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
    return grad_x, grad_w, None, None


sparse24_linear.register_autograd(_sparse24_linear_backward, setup_context=_sparse24_linear_setup)
