"""Fused forward: ``relu(y) ** 2`` -> 2:4 selection -> cuSPARSELt compressed operand, one pass.

Each program reads a ``BLOCK_M x BLOCK_F`` tile of ``y`` as int64 words (one word = one group of 4
elements), computes relu² in float32 rounded back to the input dtype, ranks the four magnitudes
(``|x|`` descending, lower index wins ties: the rule of ``reference.sparsify24_mask``) and writes
the two kept values (int32 word per group) and the 16-bit metadata words (see ``cslt_layout``).
Bytes: reads ``2 * M * F``, writes ``M * F + M * F / 8``. Requires the shape constraints of
``cslt_layout.cslt_shape_ok`` (rows, cols multiples of 128).

``relu2_sparsify24_compress`` is a plain-Python launcher: CUDA tensors run the compiled kernel,
CPU tensors the same kernel under the Triton interpreter (used by the CPU test suite).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_compat import kernel_module
from .cslt_layout import check_cslt_shape, packed_shape, values_numel
from .triton_bits import group_halves, meta_word_offset, or_last4, relu2_bits

# (BLOCK_M, BLOCK_F, num_warps); BLOCK_M | 128, BLOCK_F | 128 so any valid shape is covered.
FWD_CONFIG = (32, 128, 4)  # on CUDA
INTERP_CONFIG = (128, 128, 4)  # fewer, larger programs under the interpreter


@triton.jit
def relu2_sparsify24_compress_kernel(
    y_ptr,  # bf16/fp16 [M, F], unit column stride, row stride stride_ym (multiple of 4)
    out_ptr,  # same dtype, flat compressed buffer (values then metadata)
    M,
    F,
    stride_ym,
    meta_start,  # = M * F // 2, element index where the metadata starts
    APPLY_RELU2: tl.constexpr,
    IS_BF16: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_F: tl.constexpr,
    USE_REDUCE: tl.constexpr = False,
):
    NC: tl.constexpr = BLOCK_F // 16  # 16-column chunks (one metadata word each) per row
    pid_m = tl.program_id(0)
    pid_f = tl.program_id(1)
    r = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # [BM]
    c = pid_f * NC + tl.arange(0, NC)  # [NC] chunk index
    k = tl.arange(0, 4)
    g = c[:, None] * 4 + k[None, :]  # [NC, 4] group index along the row

    w = tl.load(y_ptr.to(tl.pointer_type(tl.int64)) + (r * (stride_ym // 4))[:, None, None] + g[None, :, :])
    h0, h1, h2, h3 = group_halves(w)  # [BM, NC, 4] int32 bit patterns
    if APPLY_RELU2:
        v0 = relu2_bits(h0, IS_BF16)
        v1 = relu2_bits(h1, IS_BF16)
        v2 = relu2_bits(h2, IS_BF16)
        v3 = relu2_bits(h3, IS_BF16)
    else:
        v0 = h0
        v1 = h1
        v2 = h2
        v3 = h3
    # magnitudes as integers: for non-NaN half floats |x| orders like (bits & 0x7FFF)
    m0 = v0 & 0x7FFF
    m1 = v1 & 0x7FFF
    m2 = v2 & 0x7FFF
    m3 = v3 & 0x7FFF
    # a_ij (i < j): element i ranks before element j
    a01 = (m0 >= m1).to(tl.int32)
    a02 = (m0 >= m2).to(tl.int32)
    a03 = (m0 >= m3).to(tl.int32)
    a12 = (m1 >= m2).to(tl.int32)
    a13 = (m1 >= m3).to(tl.int32)
    a23 = (m2 >= m3).to(tl.int32)
    # rank_i = #elements ranked before i; keep rank < 2 (exactly two per group)
    keep0 = (a01 + a02 + a03) >= 2
    keep1 = (a12 + a13) > a01
    keep2 = (a02 + a12) <= a23
    keep3 = (a03 + a13 + a23) < 2
    idx0 = tl.where(keep0, 0, tl.where(keep1, 1, 2))
    idx1 = tl.where(keep3, 3, tl.where(keep2, 2, 1))
    val0 = tl.where(keep0, v0, tl.where(keep1, v1, v2))
    val1 = tl.where(keep3, v3, tl.where(keep2, v2, v1))

    vals = val0 | (val1 << 16)
    tl.store(out_ptr.to(tl.pointer_type(tl.int32)) + (r * (F // 4))[:, None, None] + g[None, :, :], vals)

    nib = idx0 | (idx1 << 2)
    word = or_last4(nib << (4 * k)[None, None, :], USE_REDUCE)  # [BM, NC]
    off = meta_word_offset(r[:, None], (c * 16)[None, :], M)
    tl.store(out_ptr.to(tl.pointer_type(tl.int16)) + meta_start + off, word.to(tl.int16))


def fit_config(config, rows: int, cols: int):
    """Halve BLOCK_M / BLOCK_F until they divide rows / cols (both are multiples of 128)."""
    bm, bf, nw = config
    while rows % bm:
        bm //= 2
    while cols % bf:
        bf //= 2
    return bm, bf, nw


def _aligned_rows(x: torch.Tensor) -> torch.Tensor:
    """2-D view usable by the int64-word kernels (unit column stride, row stride % 4 == 0,
    16-byte aligned start); copies only when needed."""
    x = x.reshape(-1, x.shape[-1])
    if x.stride(1) != 1 or x.stride(0) % 8 != 0 or (x.storage_offset() * x.element_size()) % 16 != 0:
        x = x.clone(memory_format=torch.contiguous_format)
    return x


def relu2_sparsify24_compress(
    y: torch.Tensor, *, apply_relu2: bool = True, config=None, wrap=None, use_reduce: bool = False
) -> torch.Tensor:
    """Compressed 2:4 operand of ``sparsify24(relu(y) ** 2)`` (or of ``sparsify24(y)`` when
    ``apply_relu2`` is false): shape ``(rows, 9 * cols // 16)``, dtype of ``y``, where
    ``rows = y.numel() // cols`` and ``cols = y.shape[-1]``. ``wrap`` (e.g.
    ``torch.library.wrap_triton``) is applied to the kernel before launching."""
    cols = y.shape[-1]
    rows = y.numel() // cols if cols else 0
    check_cslt_shape(rows, cols, y.dtype)
    y2 = _aligned_rows(y)
    out = torch.empty(packed_shape(rows, cols), dtype=y.dtype, device=y.device)
    interpret = y.device.type != "cuda"
    bm, bf, nw = fit_config(config or (INTERP_CONFIG if interpret else FWD_CONFIG), rows, cols)
    kern = kernel_module(__name__, interpret).relu2_sparsify24_compress_kernel
    if wrap is not None:
        kern = wrap(kern)
    kern[(rows // bm, cols // bf)](
        y2,
        out,
        rows,
        cols,
        y2.stride(0),
        values_numel(rows, cols),
        APPLY_RELU2=apply_relu2,
        IS_BF16=y.dtype == torch.bfloat16,
        BLOCK_M=bm,
        BLOCK_F=bf,
        USE_REDUCE=use_reduce,
        num_warps=nw,
    )
    return out
