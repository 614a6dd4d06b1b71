"""The token-wise 2:4 operand of the ``masked-tokens24`` weight gradients, in one pass.

A weight gradient that reduces over tokens is aᵀ·b with a = S or dy (``M x F``, row-major). The
sparse GEMM wants aᵀ (``F x M``) 2:4 along its rows, i.e. along tokens, in cuSPARSELt's compressed
layout (``cslt_layout``). This kernel reads a tile of ``a`` (``BLOCK_T`` tokens x ``BLOCK_R``
features, four loads of one token each per group, coalesced along features), ranks each group of
4 consecutive tokens of every feature (``bits.pick24``: the two largest |values|, lower token
winning ties), transposes the kept pairs and nibbles in registers and stores them as the
compressed aᵀ: no dense ``F x M`` transpose reaches memory. The same pass adds up, per feature,
the nonzeros the 2:4 step drops (the sum over groups of max(nonzeros - 2, 0)), from which the
caller picks the columns that stay dense.

Bytes: reads ``2 M F``, writes ``M F + M F / 8`` and ``4 F``. Shapes: M and F multiples of 64,
bf16/fp16 (``cslt_layout.cslt_shape_ok(F, M)``). CUDA tensors run the compiled kernel, CPU
tensors the same kernel under the Triton interpreter.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .bits import _add, pick24, store_compressed_tile
from .compat import kernel_module
from .relu2_sparsify import _aligned_rows, fit_config
from ..cslt_layout import check_cslt_shape, packed_shape, values_numel

# (BLOCK_R features, BLOCK_T tokens, num_warps): BLOCK_R a multiple of 16 (a metadata word spans
# rows r, r+8 of the compressed aᵀ), BLOCK_T of 32 (groups g, g+4 of a 32-column tile).
CONFIG = (128, 64, 4)  # on CUDA; not swept yet
INTERP_CONFIG = (64, 64, 4)


@triton.jit
def tokens24_compress_kernel(
    a_ptr,  # bf16/fp16 [M, F], unit column stride
    out_ptr,  # same dtype, flat compressed buffer of aᵀ (F x M): values then metadata
    dropped_ptr,  # int32 [F], zeroed by the caller: nonzeros dropped per feature (atomic adds)
    M,
    F,
    stride_am,
    meta_start,  # = F * M // 2
    BLOCK_R: tl.constexpr,
    BLOCK_T: tl.constexpr,
):
    G: tl.constexpr = BLOCK_T // 4
    f_start = tl.program_id(0) * BLOCK_R
    grp_start = tl.program_id(1) * G
    feats = f_start + tl.arange(0, BLOCK_R)
    tok = ((grp_start + tl.arange(0, G)) * 4).to(tl.int64)
    p = a_ptr.to(tl.pointer_type(tl.int16)) + (tok * stride_am)[:, None] + feats[None, :]
    v0 = tl.load(p).to(tl.int32) & 0xFFFF  # [G, BLOCK_R]: token 4g + j of each feature
    v1 = tl.load(p + stride_am).to(tl.int32) & 0xFFFF
    v2 = tl.load(p + 2 * stride_am).to(tl.int32) & 0xFFFF
    v3 = tl.load(p + 3 * stride_am).to(tl.int32) & 0xFFFF
    m0 = v0 & 0x7FFF  # |x| orders like the bits without the sign (non-NaN)
    m1 = v1 & 0x7FFF
    m2 = v2 & 0x7FFF
    m3 = v3 & 0x7FFF
    val, nib = pick24(v0, v1, v2, v3, m0, m1, m2, m3)
    nnz = (m0 != 0).to(tl.int32) + (m1 != 0).to(tl.int32) + (m2 != 0).to(tl.int32) + (m3 != 0).to(tl.int32)
    dropped = tl.reduce(tl.maximum(nnz - 2, 0), 0, _add)
    tl.atomic_add(dropped_ptr + feats, dropped)
    store_compressed_tile(out_ptr, f_start, grp_start, M, meta_start, tl.trans(val), tl.trans(nib), BLOCK_R, G)


def tokens24_compress(a: torch.Tensor, *, config=None, wrap=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(packed, dropped)``: the compressed aᵀ (``F x M``, 2:4 along tokens; what
    ``cslt_layout.compress24_reference(a.t())`` writes) and int32 ``[F]`` nonzeros dropped per
    feature, for ``a`` of shape ``[M, F]``. ``wrap`` (``torch.library.wrap_triton``) is applied
    to the kernel before launching."""
    m, f = a.shape
    check_cslt_shape(f, m, a.dtype)
    a2 = _aligned_rows(a)
    out = torch.empty(packed_shape(f, m), dtype=a.dtype, device=a.device)
    dropped = torch.zeros(f, dtype=torch.int32, device=a.device)
    interpret = a.device.type != "cuda"
    br, bt, nw = fit_config(config or (INTERP_CONFIG if interpret else CONFIG), f, m)
    kern = kernel_module(__name__, interpret).tokens24_compress_kernel
    if wrap is not None:
        kern = wrap(kern)
    kern[(f // br, m // bt)](a2, out, dropped, m, f, a2.stride(0), values_numel(f, m), BLOCK_R=br, BLOCK_T=bt,
                             num_warps=nw)
    return out, dropped
