"""The ``torch.ops.elas`` operators and their autograd.

Each op has a pure-PyTorch reference implementation (``elas_compile.kernels.reference``) that runs
on any device, a fake implementation for tracing, and autograd for both backward modes.
Later layers register faster implementations (Triton, cuSPARSELt) behind the same ops.

``mode`` arguments take one of ``elas_compile.modes.MODES`` (dense warm-up, masked, ste,
masked-tokens24). The 2:4 step's gradient is the same in both masked modes; ``masked-tokens24``
changes the weight gradients of the linears on either side of it (``sparse24_linear`` and
``tokens24_up_linear``), which is why its graph routes the up projection's U factor through an op.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from elas_compile.kernels import reference
from elas_compile.kernels.triton import ops as triton_ops  # noqa: F401  (compressed-operand ops)
from elas_compile.modes import DEFAULT_WGRAD_DENSE_FRACTION, MASKED_MODES, Mode, check_dense_fraction
from elas_compile.modes import check_mode as _check_mode

_TOKENS24 = Mode.MASKED_TOKENS24.value


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
    ctx.save_for_backward(x if mode in MASKED_MODES else None)


def _sparsify24_backward(ctx, grad):
    if ctx.mode not in MASKED_MODES:
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
    ctx.save_for_backward(y, output if mode in MASKED_MODES else None)


def _relu2_sparsify24_backward(ctx, grad):
    y, out = ctx.saved_tensors
    return reference.relu2_sparsify24_backward(grad, y, out, ctx.mode), None


relu2_sparsify24.register_autograd(_relu2_sparsify24_backward, setup_context=_relu2_sparsify24_setup)


# ---------------------------------------------------------------------------------------------
# elas::sparse24_linear(x, weight, mode, kernels, dense_fraction): x @ weight.T where x is 2:4
# sparse along features (dense storage).
@torch.library.custom_op("elas::sparse24_linear", mutates_args=())
def sparse24_linear(x: torch.Tensor, weight: torch.Tensor, mode: str, kernels: str = "auto",
                    dense_fraction: float = DEFAULT_WGRAD_DENSE_FRACTION) -> torch.Tensor:
    """A linear layer (no bias) whose input is 2:4 sparse along its features (in sparse modes).
    ``kernels`` is the MLP's ``ELASConfig.kernels``: the compiler pass reads it to choose the
    backend of the fused FFN op (``elas_compile.backends``); this reference ignores it. In
    ``masked-tokens24`` mode the weight gradient gᵀ·x takes x 2:4 along tokens except its densest
    ``dense_fraction`` of columns (``reference.tokens24_weight_grad``)."""
    _check_mode(mode)
    check_dense_fraction(dense_fraction, "elas.sparse24_linear")
    return F.linear(x, weight)


@sparse24_linear.register_fake
def _sparse24_linear_fake(x: torch.Tensor, weight: torch.Tensor, mode: str, kernels: str = "auto",
                          dense_fraction: float = DEFAULT_WGRAD_DENSE_FRACTION) -> torch.Tensor:
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"elas.sparse24_linear: x has {x.shape[-1]} features, weight expects {weight.shape[1]}")
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _sparse24_linear_setup(ctx, inputs, output) -> None:
    x, weight, mode = inputs[:3]
    ctx.mode = mode
    ctx.dense_fraction = inputs[4] if len(inputs) > 4 else DEFAULT_WGRAD_DENSE_FRACTION
    ctx.save_for_backward(x, weight)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def _sparse24_linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = grad @ weight
    if ctx.needs_input_grad[1]:
        if ctx.mode == _TOKENS24:
            grad_w = reference.tokens24_weight_grad(_rows(x), _rows(grad), ctx.dense_fraction).t()
        else:
            grad_w = _rows(grad).t() @ _rows(x)
    return grad_x, grad_w, None, None, None


sparse24_linear.register_autograd(_sparse24_linear_backward, setup_context=_sparse24_linear_setup)


# ---------------------------------------------------------------------------------------------
# elas::tokens24_up_linear(h, weight, bias, mode, dense_fraction): linear(h, weight, bias), the up
# projection's U factor in graphs built for ``masked-tokens24``.
@torch.library.custom_op("elas::tokens24_up_linear", mutates_args=())
def tokens24_up_linear(h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], mode: str,
                       dense_fraction: float) -> torch.Tensor:
    """``linear(h, weight, bias)`` = y, the input of relu² and the 2:4 step. In
    ``masked-tokens24`` mode the weight gradient dyᵀ·h takes dy 2:4 along tokens except its
    densest ``dense_fraction`` of columns; the input and bias gradients are exact. Other modes:
    a plain linear."""
    _check_mode(mode)
    check_dense_fraction(dense_fraction, "elas.tokens24_up_linear")
    return F.linear(h, weight, bias)


@tokens24_up_linear.register_fake
def _tokens24_up_linear_fake(h, weight, bias, mode, dense_fraction):
    if h.shape[-1] != weight.shape[1]:
        raise ValueError(f"elas.tokens24_up_linear: h has {h.shape[-1]} features, weight expects {weight.shape[1]}")
    return h.new_empty((*h.shape[:-1], weight.shape[0]))


def _tokens24_up_linear_setup(ctx, inputs, output) -> None:
    h, weight, bias, mode, dense_fraction = inputs
    ctx.mode, ctx.dense_fraction = mode, dense_fraction
    ctx.save_for_backward(h, weight)


def _tokens24_up_linear_backward(ctx, grad):
    h, weight = ctx.saved_tensors
    grad_h = grad @ weight if ctx.needs_input_grad[0] else None
    grad_w = grad_b = None
    if ctx.needs_input_grad[1]:
        if ctx.mode == _TOKENS24:
            grad_w = reference.tokens24_weight_grad(_rows(grad), _rows(h), ctx.dense_fraction)
        else:
            grad_w = _rows(grad).t() @ _rows(h)
    if ctx.needs_input_grad[2]:
        grad_b = _rows(grad).sum(0)
    return grad_h, grad_w, grad_b, None, None


tokens24_up_linear.register_autograd(_tokens24_up_linear_backward, setup_context=_tokens24_up_linear_setup)
