"""``dV = g^T @ S`` from the compressed S: the down projection's weight gradient without a dense S.

``g`` is tokens x r (row-major), ``S`` the tokens x F 2:4 matrix given as its cuSPARSELt buffer
(``packed``, kernels/cslt_layout.py). The reduction runs over tokens, along which S is not 2:4, so
the product is dense: each program expands its BLOCK_K x BLOCK_N tiles of S in registers (kept
pair + nibble -> the 4 elements of a group, integer selects) and multiplies them with the matching
tile of g. The token range is split SPLIT ways (r x F has few tiles at small ranks: 350m's 256 x
4096 is 64 tiles of 128 x 128 for 132 SMs); each split writes a float32 partial and the launcher
sums them (one rounding to the dtype at the end).

Replaces the first session's kernel (no split, int64 group words): 0.161 vs 0.555 ms at 350m's
16384 x 4096 x 256, 0.608 vs 0.904 at 1b's 16384 x 8192 x 512 (H100), still 2.4x / 3x cuBLAS on the
dense S (docs/kernels.md, "Tenth session"), so the FFN uses it only with ELAS_DV_KERNEL=1.
Under the Triton interpreter (CPU tensors) the kernel multiplies in float32.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_compat import kernel_module
from .cslt_layout import check_cslt_shape, values_numel
from .triton_bits import half_bits_to_f32, load_nibbles

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages, SPLIT): SPLIT 0 = as many as fill the GPU.
# H100 sweeps (benchmarks/bench_dv.py, docs/kernels.md): BLOCK_M 256 (the whole rank: each S tile
# expanded once) with 64 columns was the fastest at both FFN shapes.
CONFIG = (256, 64, 64, 8, 3, 0)
SWEEP_CONFIGS = [(256, 64, 64, 8, 3, 0), (256, 64, 32, 8, 4, 0), (128, 64, 64, 4, 4, 0), (256, 128, 64, 8, 3, 0),
                 (128, 128, 64, 4, 4, 0)]
INTERP_CONFIG = (32, 64, 64, 4, 1, 2)


@triton.jit
def _group_element(lo, hi, i0, i1, j: tl.constexpr):
    """Element j of a group (int32 bit pattern) from its kept pair (lo, hi) and their indices."""
    return tl.where(i0 == j, lo, 0) | tl.where(i1 == j, hi, 0)


@triton.jit
def _dense_tile(packed_ptr, rows, grps, F, meta_start, IS_BF16: tl.constexpr, HW: tl.constexpr,
                BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
    """Dense [BLOCK_K, BLOCK_N] tile (rows ``rows``, groups ``grps``) of S: the dtype on the GPU,
    float32 under the interpreter."""
    pv = tl.load(packed_ptr.to(tl.pointer_type(tl.int32)) + (rows * (F // 4))[:, None] + grps[None, :])
    nib = load_nibbles(packed_ptr, rows, grps, F, meta_start)
    lo, hi = pv & 0xFFFF, (pv >> 16) & 0xFFFF
    i0, i1 = nib & 3, nib >> 2
    e0 = _group_element(lo, hi, i0, i1, 0)
    e1 = _group_element(lo, hi, i0, i1, 1)
    e2 = _group_element(lo, hi, i0, i1, 2)
    e3 = _group_element(lo, hi, i0, i1, 3)
    t = tl.reshape(tl.join(tl.join(e0, e2), tl.join(e1, e3)), [BLOCK_K, BLOCK_N])  # element 4 g + j
    if HW:
        if IS_BF16:
            out = t.to(tl.int16).to(tl.bfloat16, bitcast=True)
        else:
            out = t.to(tl.int16).to(tl.float16, bitcast=True)
    else:
        out = half_bits_to_f32(t, IS_BF16)
    return out


@triton.jit
def dv_sparse24_kernel(
    g_ptr, packed_ptr, part_ptr, R, F, T, stride_gt, meta_start, k_per_split,
    IS_BF16: tl.constexpr, HW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """part[split, R, F] (float32) = g[tokens of split]^T @ S[tokens of split]."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    n_n = F // BLOCK_N
    pid_m, pid_n = pid // n_n, pid % n_n
    offs_m = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    G: tl.constexpr = BLOCK_N // 4
    grps = pid_n * G + tl.arange(0, G)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    k_lo = split * k_per_split
    for kb in range(0, k_per_split, BLOCK_K):  # (bounds from the program id break the interpreter's range)
        kk = (k_lo + kb + offs_k).to(tl.int64)
        g_off = kk[:, None] * stride_gt + offs_m[None, :]
        if HW:
            a = tl.load(g_ptr + g_off)
        else:
            a = half_bits_to_f32(tl.load(g_ptr.to(tl.pointer_type(tl.int16)) + g_off).to(tl.int32) & 0xFFFF, IS_BF16)
        b = _dense_tile(packed_ptr, kk, grps, F, meta_start, IS_BF16, HW, BLOCK_K, BLOCK_N)
        acc = tl.dot(tl.trans(a), b, acc)
    out = part_ptr + split.to(tl.int64) * R * F + offs_m[:, None] * F + offs_n[None, :]
    tl.store(out, acc)


def _fit(config, r: int, cols: int, rows: int, sms: int) -> tuple:
    bm, bn, bk, nw, ns, split = config
    while r % bm and bm > 16:
        bm //= 2
    while cols % bn:
        bn //= 2
    while rows % bk:
        bk //= 2
    if r % bm:
        raise ValueError(f"dv_sparse24: r = {r} must be a multiple of 16")
    tiles = (r // bm) * (cols // bn)
    if split == 0:  # the fewest splits that give every SM a program
        split = 1
        while tiles * split < sms and rows % (2 * split * bk) == 0:
            split *= 2
    if rows % (split * bk):
        raise ValueError(f"dv_sparse24: {rows} tokens do not split {split} ways into blocks of {bk}")
    return bm, bn, bk, nw, ns, split


def dv_sparse24(g: torch.Tensor, packed: torch.Tensor, rows: int, cols: int, *, config=None, wrap=None) -> torch.Tensor:
    """``g^T @ S`` (``g`` rows x r, ``S`` the rows x cols matrix of ``packed``), in g's dtype."""
    check_cslt_shape(rows, cols, packed.dtype)
    if g.dim() != 2 or g.shape[0] != rows or g.dtype != packed.dtype or g.stride(1) != 1:
        raise ValueError(f"g must be {rows} x r of dtype {packed.dtype} with unit column stride, "
                         f"got {tuple(g.shape)} {g.dtype} strides {g.stride()}")
    if packed.numel() != rows * cols * 9 // 16 or not packed.is_contiguous():
        raise ValueError(f"packed must be a contiguous buffer of {rows * cols * 9 // 16} elements")
    r = g.shape[1]
    interpret = g.device.type != "cuda"
    sms = 1 if interpret else torch.cuda.get_device_properties(g.device).multi_processor_count
    bm, bn, bk, nw, ns, split = _fit(config or (INTERP_CONFIG if interpret else CONFIG), r, cols, rows, sms)
    part = torch.empty((split, r, cols), dtype=torch.float32, device=g.device)
    kern = kernel_module(__name__, interpret).dv_sparse24_kernel
    if wrap is not None:
        kern = wrap(kern)
    kern[((r // bm) * (cols // bn), split)](
        g, packed, part, r, cols, rows, g.stride(0), values_numel(rows, cols), rows // split,
        IS_BF16=g.dtype == torch.bfloat16, HW=not interpret, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
        num_warps=nw, num_stages=ns,
    )
    return (part[0] if split == 1 else part.sum(0)).to(g.dtype)
