"""Fused forward: ``relu(y) ** 2`` -> 2:4 selection -> cuSPARSELt compressed operand, one pass.

Each program reads a ``BLOCK_M x BLOCK_F`` tile of ``y`` row by row as int64 words (one word = one
group of 4 elements), computes relu² in float32 rounded back to
the input dtype, ranks the four magnitudes (``|x|`` descending, lower index wins ties: the rule of
``reference.sparsify24_mask``) and writes the two kept values (int32 per group) and the 16-bit
metadata words of the cuSPARSELt layout (``cslt_layout``). Bytes: reads ``2 * M * F``, writes
``M * F + M * F / 8``. Requires ``cslt_layout.cslt_shape_ok`` shapes (rows, cols multiples of 64).

``relu2_sparsify24_compress`` is a plain-Python launcher: CUDA tensors run the compiled kernel,
CPU tensors the same kernel under the Triton interpreter (used by the CPU test suite).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .compat import kernel_module
from ..cslt_layout import check_cslt_shape, packed_shape, values_numel
from .bits import select24, store_compressed_tile

# (BLOCK_M, BLOCK_F, num_warps): BLOCK_M a multiple of 16, BLOCK_F a multiple of 32 (halved until
# they divide rows / cols, multiples of 64), so every valid shape is covered. The tile is loaded
# and stored row-contiguously (coalesced); the metadata words are assembled by a small reduction.
FWD_CONFIG = (32, 256, 8)  # on CUDA (H100 sweep over SWEEP_CONFIGS)
SWEEP_CONFIGS = [(16, 128, 4), (32, 64, 4), (32, 128, 4), (32, 128, 8), (64, 128, 4), (64, 128, 8), (32, 256, 8),
                 (64, 256, 8)]
INTERP_CONFIG = (64, 128, 4)  # fewer, larger programs under the interpreter


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
    HW_CVT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    G: tl.constexpr = BLOCK_F // 4
    row_start = tl.program_id(0) * BLOCK_M
    grp_start = tl.program_id(1) * G
    rows = (row_start + tl.arange(0, BLOCK_M)).to(tl.int64)
    p = y_ptr.to(tl.pointer_type(tl.int64)) + (rows * (stride_ym // 4))[:, None] + (grp_start + tl.arange(0, G))[None, :]
    val, nib = select24(tl.load(p), APPLY_RELU2, IS_BF16, HW_CVT)
    store_compressed_tile(out_ptr, row_start, grp_start, F, meta_start, val, nib, BLOCK_M, G)


def fit_config(config, rows: int, cols: int):
    """Halve BLOCK_M / BLOCK_F until they divide rows / cols (multiples of 64)."""
    bm, bf, nw = config
    if bm % 16 or bf % 32:
        raise ValueError(f"BLOCK_M must be a multiple of 16 and BLOCK_F of 32, got {config}")
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
    y: torch.Tensor, *, apply_relu2: bool = True, config=None, wrap=None, hw_cvt=None
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
        HW_CVT=(not interpret) if hw_cvt is None else hw_cvt,
        BLOCK_M=bm,
        BLOCK_F=bf,
        num_warps=nw,
    )
    return out
