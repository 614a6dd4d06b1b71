"""Kernels that read the compressed 2:4 operand (layout: ``cslt_layout``): expansion to dense, and
the backward of ``relu2_sparsify24`` without a saved dense tensor.

* ``sparse24_decompress``: packed -> dense pruned ``S`` (rows x cols). For the down projection's
  weight gradient ``dW = dy^T @ S`` (reduction over tokens, so ``S`` must be dense there).
* ``relu2_sparsify24_backward``: dense ``dy1`` from ``dS`` (the gradient wrt ``S``):
  ``masked`` (``y`` absent): ``2 * dS * sqrt(v)`` at kept positions, ``v`` the kept value of
  ``packed`` (``sqrt(v)`` = ``relu(y)`` up to the rounding of ``v``); ``masked`` with ``y``:
  ``2 * dS * relu(y)`` where kept and ``v != 0`` (bit-exact with ``reference``); ``ste`` /
  ``dense``: ``2 * dS * relu(y)`` everywhere (``packed`` unused).
* ``relu2_sparsify24_backward_compressed``: masked ``dy1`` written in the compressed layout with
  the metadata of ``packed`` (it has the same 2:4 pattern), so ``dx = dy1 @ W_up`` can be a sparse
  GEMM. Reads ``dS`` and ``packed``, writes ``9/16`` of a dense tensor.

All compute in float32, rounded once to the dtype. Launchers run compiled on CUDA tensors and under
the Triton interpreter on CPU tensors.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_compat import kernel_module
from .cslt_layout import check_cslt_shape, packed_shape, values_numel
from .triton_bits import f32_to_half_bits, group_halves, half_bits_to_f32, meta_word_offset
from .triton_relu2_sparsify import _aligned_rows, fit_config

BWD_CONFIG = (32, 128, 4)  # (BLOCK_M, BLOCK_F, num_warps) on CUDA
INTERP_CONFIG = (128, 128, 4)  # fewer, larger programs under the interpreter

_MODES = {"masked": 0, "ste": 2, "dense": 2}


@triton.jit
def _load_pattern(packed_ptr, r, c, g, k, M, F, meta_start):
    """Kept values (bits) and positions of the groups ``g`` of rows ``r``; also the metadata
    words (for copying) and their offsets."""
    pv = tl.load(packed_ptr.to(tl.pointer_type(tl.int32)) + (r * (F // 4))[:, None, None] + g[None, :, :])
    off = meta_word_offset(r[:, None], (c * 16)[None, :], M)
    word = tl.load(packed_ptr.to(tl.pointer_type(tl.int16)) + meta_start + off)
    nib = ((word.to(tl.int32) & 0xFFFF)[:, :, None] >> (4 * k)[None, None, :]) & 0xF
    lo = pv & 0xFFFF
    hi = (pv >> 16) & 0xFFFF
    return lo, hi, nib & 3, nib >> 2, word, off


@triton.jit
def sparse24_decompress_kernel(
    packed_ptr, out_ptr, M, F, stride_om, meta_start, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr
):
    NC: tl.constexpr = BLOCK_F // 16
    r = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.program_id(1) * NC + tl.arange(0, NC)
    k = tl.arange(0, 4)
    g = c[:, None] * 4 + k[None, :]
    lo, hi, i0, i1, word, off = _load_pattern(packed_ptr, r, c, g, k, M, F, meta_start)
    w = (lo.to(tl.int64) << (16 * i0).to(tl.int64)) | (hi.to(tl.int64) << (16 * i1).to(tl.int64))
    tl.store(out_ptr.to(tl.pointer_type(tl.int64)) + (r * (stride_om // 4))[:, None, None] + g[None, :, :], w)


@triton.jit
def relu2_sparsify24_backward_kernel(
    grad_ptr,
    packed_ptr,
    y_ptr,
    out_ptr,
    M,
    F,
    stride_gm,
    stride_ym,
    meta_start,
    MODE: tl.constexpr,  # 0 masked from packed, 1 masked with y, 2 ste
    IS_BF16: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    NC: tl.constexpr = BLOCK_F // 16
    r = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.program_id(1) * NC + tl.arange(0, NC)
    k = tl.arange(0, 4)
    g = c[:, None] * 4 + k[None, :]
    gw = tl.load(grad_ptr.to(tl.pointer_type(tl.int64)) + (r * (stride_gm // 4))[:, None, None] + g[None, :, :])
    if MODE != 0:
        yw = tl.load(y_ptr.to(tl.pointer_type(tl.int64)) + (r * (stride_ym // 4))[:, None, None] + g[None, :, :])
    if MODE != 2:
        lo, hi, i0, i1, word, off = _load_pattern(packed_ptr, r, c, g, k, M, F, meta_start)
    res = gw & 0  # int64 zeros (tl.zeros is a @jit function: avoided for the interpreter)
    for j in tl.static_range(4):
        gj = half_bits_to_f32(((gw >> (16 * j)) & 0xFFFF).to(tl.int32), IS_BF16)
        if MODE != 0:
            yj = tl.maximum(half_bits_to_f32(((yw >> (16 * j)) & 0xFFFF).to(tl.int32), IS_BF16), 0.0)
        if MODE == 2:
            d = 2.0 * gj * yj
        else:
            kept = (i0 == j) | (i1 == j)
            v = half_bits_to_f32(tl.where(i0 == j, lo, tl.where(i1 == j, hi, 0)), IS_BF16)
            if MODE == 0:
                d = tl.where(kept, 2.0 * gj * tl.sqrt(v), 0.0)
            else:
                d = tl.where(kept & (v != 0.0), 2.0 * gj * yj, 0.0)
        res = res | (f32_to_half_bits(d, IS_BF16).to(tl.int64) << (16 * j))
    tl.store(out_ptr.to(tl.pointer_type(tl.int64)) + (r * (F // 4))[:, None, None] + g[None, :, :], res)


@triton.jit
def relu2_sparsify24_backward_compressed_kernel(
    grad_ptr,
    packed_ptr,
    out_ptr,
    M,
    F,
    stride_gm,
    meta_start,
    IS_BF16: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    NC: tl.constexpr = BLOCK_F // 16
    r = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.program_id(1) * NC + tl.arange(0, NC)
    k = tl.arange(0, 4)
    g = c[:, None] * 4 + k[None, :]
    gw = tl.load(grad_ptr.to(tl.pointer_type(tl.int64)) + (r * (stride_gm // 4))[:, None, None] + g[None, :, :])
    lo, hi, i0, i1, word, off = _load_pattern(packed_ptr, r, c, g, k, M, F, meta_start)
    g0 = half_bits_to_f32(((gw >> (16 * i0).to(tl.int64)) & 0xFFFF).to(tl.int32), IS_BF16)
    g1 = half_bits_to_f32(((gw >> (16 * i1).to(tl.int64)) & 0xFFFF).to(tl.int32), IS_BF16)
    d0 = f32_to_half_bits(2.0 * g0 * tl.sqrt(half_bits_to_f32(lo, IS_BF16)), IS_BF16)
    d1 = f32_to_half_bits(2.0 * g1 * tl.sqrt(half_bits_to_f32(hi, IS_BF16)), IS_BF16)
    tl.store(out_ptr.to(tl.pointer_type(tl.int32)) + (r * (F // 4))[:, None, None] + g[None, :, :], d0 | (d1 << 16))
    tl.store(out_ptr.to(tl.pointer_type(tl.int16)) + meta_start + off, word)


def _setup(packed: torch.Tensor, rows: int, cols: int, config):
    check_cslt_shape(rows, cols, packed.dtype)
    if packed.numel() != rows * cols * 9 // 16 or not packed.is_contiguous():
        raise ValueError(f"packed must be a contiguous buffer of {rows * cols * 9 // 16} elements")
    interpret = packed.device.type != "cuda"
    bm, bf, nw = fit_config(config or (INTERP_CONFIG if interpret else BWD_CONFIG), rows, cols)
    return kernel_module(__name__, interpret), (rows // bm, cols // bf), dict(BLOCK_M=bm, BLOCK_F=bf, num_warps=nw)


def _maybe_wrap(kern, wrap):
    return kern if wrap is None else wrap(kern)


def sparse24_decompress(packed: torch.Tensor, rows: int, cols: int, *, config=None, wrap=None) -> torch.Tensor:
    """Dense ``rows x cols`` tensor (dtype of ``packed``) represented by ``packed``."""
    mod, grid, meta = _setup(packed, rows, cols, config)
    out = torch.empty((rows, cols), dtype=packed.dtype, device=packed.device)
    _maybe_wrap(mod.sparse24_decompress_kernel, wrap)[grid](
        packed, out, rows, cols, out.stride(0), values_numel(rows, cols), **meta
    )
    return out


def relu2_sparsify24_backward(
    grad: torch.Tensor,
    packed: torch.Tensor,
    y: torch.Tensor | None,
    mode: str,
    rows: int,
    cols: int,
    *,
    config=None,
    wrap=None,
) -> torch.Tensor:
    """Dense ``dy1`` (shape and dtype of ``grad``); see the module docstring for the modes."""
    if mode not in _MODES:
        raise ValueError(f"unknown mode {mode!r}")
    kmode = _MODES[mode]
    if kmode == 0 and y is not None:
        kmode = 1
    if kmode == 2 and y is None:
        raise ValueError(f"mode {mode!r} needs y")
    if grad.numel() != rows * cols or grad.shape[-1] != cols or grad.dtype != packed.dtype:
        raise ValueError("grad must have rows * cols elements, last dim cols, and packed's dtype")
    mod, grid, meta = _setup(packed, rows, cols, config)
    g2 = _aligned_rows(grad)
    y2 = _aligned_rows(y) if y is not None else g2  # dummy pointer when unused
    out = torch.empty((rows, cols), dtype=grad.dtype, device=grad.device)
    _maybe_wrap(mod.relu2_sparsify24_backward_kernel, wrap)[grid](
        g2,
        packed,
        y2,
        out,
        rows,
        cols,
        g2.stride(0),
        y2.stride(0),
        values_numel(rows, cols),
        MODE=kmode,
        IS_BF16=grad.dtype == torch.bfloat16,
        **meta,
    )
    return out.view(grad.shape)


def relu2_sparsify24_backward_compressed(
    grad: torch.Tensor, packed: torch.Tensor, rows: int, cols: int, *, config=None, wrap=None
) -> torch.Tensor:
    """Masked ``dy1`` in the compressed layout (same shape as ``packed``, same metadata)."""
    if grad.numel() != rows * cols or grad.shape[-1] != cols or grad.dtype != packed.dtype:
        raise ValueError("grad must have rows * cols elements, last dim cols, and packed's dtype")
    mod, grid, meta = _setup(packed, rows, cols, config)
    g2 = _aligned_rows(grad)
    out = torch.empty(packed_shape(rows, cols), dtype=packed.dtype, device=packed.device)
    _maybe_wrap(mod.relu2_sparsify24_backward_compressed_kernel, wrap)[grid](
        g2, packed, out, rows, cols, g2.stride(0), values_numel(rows, cols),
        IS_BF16=grad.dtype == torch.bfloat16, **meta,
    )
    return out
