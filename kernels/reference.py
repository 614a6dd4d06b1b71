"""Pure-PyTorch reference implementations of the ELAS ops.

These define the semantics every fast kernel is tested against.

2:4 selection rule (used by every implementation): split the last dimension into groups of 4
consecutive features; in each group keep the 2 elements of largest magnitude ``|x|``. Ties are
broken by position: of two elements with equal magnitude the one with the lower index in the
group wins (so ``-0.0`` and ``0.0`` tie, and an all-zero group keeps positions 0 and 1).
Exactly two positions are kept in every group; a group with fewer than two nonzeros therefore
has fewer than two nonzero outputs.
"""
from __future__ import annotations

import torch

from elas_compile.modes import MASKED_MODES


def _check_groups(x: torch.Tensor) -> None:
    if x.dim() == 0 or x.shape[-1] % 4 != 0:
        raise ValueError(
            f"2:4 sparsity needs the last dimension to be a multiple of 4, got shape {tuple(x.shape)}"
        )


def sparsify24_mask(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the kept positions (2 of every 4 along the last dim)."""
    _check_groups(x)
    groups = x.abs().reshape(*x.shape[:-1], x.shape[-1] // 4, 4)
    # rank_i = #{j: |x_j| > |x_i|} + #{j < i: |x_j| == |x_i|}; keep rank < 2.
    a = groups.unsqueeze(-1)  # [..., 4(i), 1]
    b = groups.unsqueeze(-2)  # [..., 1, 4(j)]
    j_before_i = torch.ones(4, 4, dtype=torch.bool, device=x.device).tril(-1)
    beats = (b > a) | ((b == a) & j_before_i)
    rank = beats.sum(-1)
    return (rank < 2).reshape(x.shape)


def sparsify24(x: torch.Tensor) -> torch.Tensor:
    """2:4-sparse copy of ``x`` (pruned positions set to zero)."""
    return torch.where(sparsify24_mask(x), x, torch.zeros((), dtype=x.dtype, device=x.device))


def relu2(y: torch.Tensor) -> torch.Tensor:
    """Squared ReLU."""
    r = torch.relu(y)
    return r * r


def relu2_sparsify24(y: torch.Tensor) -> torch.Tensor:
    """sparsify24(relu(y) ** 2)."""
    return sparsify24(relu2(y))


def relu2_sparsify24_backward(grad: torch.Tensor, y: torch.Tensor, out: torch.Tensor, mode: str) -> torch.Tensor:
    """Gradient wrt ``y`` of ``relu2_sparsify24`` given the gradient wrt its output ``out``.

    ``masked`` (and ``masked-tokens24``): exact gradient of the sparsified function: 2 * relu(y) at kept positions, 0 at
    pruned ones (a kept position with out == 0 has relu(y) == 0, so ``out != 0`` is the mask).
    ``ste`` / ``dense``: the sparsify step passes the gradient straight through: 2 * relu(y).
    """
    g = grad * 2 * torch.relu(y)
    if mode in MASKED_MODES:
        g = g * (out != 0)
    return g


# ---------------------------------------------------------------------------------------------
# Weight gradients with 2:4 along tokens (backward mode ``masked-tokens24``).
#
# A weight gradient that reduces over tokens is aᵀ·b with a = S or dy (tokens x F) and b = g or h
# (tokens x r). Each feature column of a is made 2:4 along tokens (the rule above applied to aᵀ:
# groups of 4 consecutive tokens, zero-padded at the end), except the k columns where that would
# drop the most nonzeros, which stay dense.


def _pad_tokens(a: torch.Tensor) -> torch.Tensor:
    """``a`` (tokens x F) with zero rows appended up to a multiple of 4 tokens."""
    pad = -a.shape[0] % 4
    return a if not pad else torch.cat([a, a.new_zeros(pad, a.shape[1])])


def sparsify24_tokens(a: torch.Tensor) -> torch.Tensor:
    """``a`` (tokens x F) with every feature column 2:4 along tokens (same shape as ``a``)."""
    m = a.shape[0]
    return sparsify24(_pad_tokens(a).t()).t()[:m]


def tokens24_dropped(a: torch.Tensor) -> torch.Tensor:
    """int32 ``[F]``: per feature column, the nonzeros the 2:4 step along tokens drops (the sum over
    groups of 4 tokens of max(nonzeros - 2, 0)); 0 where every group is exact."""
    nnz = (_pad_tokens(a) != 0).reshape(-1, 4, a.shape[1]).sum(1)
    return (nnz - 2).clamp_min(0).sum(0).to(torch.int32)


def tokens24_exact_fraction(a: torch.Tensor) -> float:
    """Share of the (group of 4 tokens, feature) pairs of ``a`` with at most 2 nonzeros."""
    nnz = (_pad_tokens(a) != 0).reshape(-1, 4, a.shape[1]).sum(1)
    return (nnz <= 2).float().mean().item()


def dense_columns(dropped: torch.Tensor, fraction: float) -> torch.Tensor:
    """int64 indices of the ``round(fraction * F)`` columns with the most dropped nonzeros (lower
    index first among equals), the columns whose weight gradients stay dense."""
    k = int(round(fraction * dropped.numel()))
    order = torch.sort(dropped.to(torch.int64), descending=True, stable=True).indices
    return order[:k]


def tokens24_weight_grad(a: torch.Tensor, b: torch.Tensor, dense_fraction: float) -> torch.Tensor:
    """``aᵀ·b`` (F x r) with ``a`` 2:4 along tokens except its :func:`dense_columns`, whose rows of
    the result are the exact product."""
    out = sparsify24_tokens(a).t() @ b
    dense = dense_columns(tokens24_dropped(a), dense_fraction)
    if dense.numel():
        out = out.index_copy(0, dense, a.index_select(1, dense).t() @ b)
    return out
