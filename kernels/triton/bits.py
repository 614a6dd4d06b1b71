"""Triton helpers shared by the 2:4 kernels.

The kernels move half-precision data as raw 16-bit patterns packed into integers (the four
elements of a 2:4 group are one int64, the two kept values one int32), so every load and store is
a plain integer access; they convert to float32 only to compute.

Tiling follows the metadata layout (see :mod:`elas_compile.kernels.cslt_layout`): one 16-bit
metadata word covers rows r, r+8 and groups g, g+4 (g % 8 < 4) of a 64 x 32 tile, so a program
handles its ``BLOCK_M x BLOCK_F`` tile as four "quadrant" tensors ``[BLOCK_M/2, BLOCK_F/32, 4]``:
(rows with bit 3 clear | set) x (groups 0-3 | 4-7 of each 32-column tile). Every metadata word is
then assembled (or read) elementwise.

Conversions float32 -> bf16 round to nearest even: with the hardware instruction on the GPU
(``HW_CVT``), in integer arithmetic under the Triton interpreter (whose bf16 conversion truncates).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def quad_coords(BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr):
    """Rows ``r0`` ([BLOCK_M/2], int64: the rows with bit 3 clear; the others are r0 + 8), 32-column
    tile indices ``t`` ([BLOCK_F/32]) and left-half group ids ``g0`` ([BLOCK_F/32, 4]; the right
    half is g0 + 4) of this program's tile."""
    i = tl.arange(0, BLOCK_M // 2)
    r0 = (tl.program_id(0) * BLOCK_M + (i // 8) * 16 + (i % 8)).to(tl.int64)
    t = tl.program_id(1) * (BLOCK_F // 32) + tl.arange(0, BLOCK_F // 32)
    g0 = t[:, None] * 8 + tl.arange(0, 4)[None, :]
    return r0, t, g0


@triton.jit
def meta_word_index(r0, t, F):
    """Index (in 16-bit words) in the metadata region of the word for rows r0, r0+8 and groups
    8t + k, 8t + k + 4 (k = 0..3 along the last axis); r0 [R], t [T] -> [R, T, 4]."""
    rr = r0 % 64
    k = tl.arange(0, 4)
    base = ((r0 // 64) * (F // 32))[:, None] + t[None, :]  # 64 x 32 tile index
    return (base * 128 + (4 * (rr & 7) + 32 * ((rr >> 4) & 3))[:, None])[:, :, None] + k[None, None, :]


@triton.jit
def load_groups(ptr, r0, g0, stride_m):
    """The four quadrants of int64 group words of a bf16/fp16 matrix (row stride ``stride_m``
    elements): (r0, g0), (r0, g0+4), (r0+8, g0), (r0+8, g0+4)."""
    p = ptr.to(tl.pointer_type(tl.int64)) + (r0 * (stride_m // 4))[:, None, None] + g0[None, :, :]
    s8 = 8 * (stride_m // 4)
    return tl.load(p), tl.load(p + 4), tl.load(p + s8), tl.load(p + s8 + 4)


@triton.jit
def store_groups(ptr, r0, g0, stride_m, w00, w01, w10, w11):
    p = ptr.to(tl.pointer_type(tl.int64)) + (r0 * (stride_m // 4))[:, None, None] + g0[None, :, :]
    s8 = 8 * (stride_m // 4)
    tl.store(p, w00)
    tl.store(p + 4, w01)
    tl.store(p + s8, w10)
    tl.store(p + s8 + 4, w11)


@triton.jit
def load_values(packed_ptr, r0, g0, F):
    """Kept-value pairs (int32: first kept | second kept << 16) of the four quadrants."""
    p = packed_ptr.to(tl.pointer_type(tl.int32)) + (r0 * (F // 4))[:, None, None] + g0[None, :, :]
    s8 = 8 * (F // 4)
    return tl.load(p), tl.load(p + 4), tl.load(p + s8), tl.load(p + s8 + 4)


@triton.jit
def store_values(packed_ptr, r0, g0, F, p00, p01, p10, p11):
    """Store kept-value pairs of the four quadrants (the layout :func:`load_values` reads)."""
    p = packed_ptr.to(tl.pointer_type(tl.int32)) + (r0 * (F // 4))[:, None, None] + g0[None, :, :]
    s8 = 8 * (F // 4)
    tl.store(p, p00)
    tl.store(p + 4, p01)
    tl.store(p + s8, p10)
    tl.store(p + s8 + 4, p11)


@triton.jit
def half_bits_to_f32(h, IS_BF16: tl.constexpr):
    """``h``: int32 with a bf16/fp16 bit pattern in its low 16 bits -> float32 value."""
    if IS_BF16:
        x = (h << 16).to(tl.float32, bitcast=True)
    else:
        x = h.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return x


@triton.jit
def f32_to_half_bits(x, IS_BF16: tl.constexpr, HW_CVT: tl.constexpr):
    """float32 -> int32 holding the bf16/fp16 pattern (round to nearest even) in its low 16 bits."""
    if IS_BF16:
        if HW_CVT:
            h = x.to(tl.bfloat16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
        else:
            b = x.to(tl.int32, bitcast=True)
            rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
            is_nan = (b & 0x7FFFFFFF) > 0x7F800000
            h = tl.where(is_nan, ((b >> 16) | 0x40) & 0xFFFF, rounded)
    else:
        h = x.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    return h


@triton.jit
def _relu2_half(x, IS_BF16: tl.constexpr, HW_CVT: tl.constexpr):
    """Bits (int32, < 0x8000) of relu(x)**2 rounded to the dtype; x float32. No NaN can occur
    (maximum(NaN, 0) is 0 on the GPU), so the integer rounding needs no NaN case."""
    r = tl.maximum(x, 0.0)
    s = r * r
    if IS_BF16:
        if HW_CVT:
            h = s.to(tl.bfloat16).to(tl.int16, bitcast=True).to(tl.int32)
        else:
            b = s.to(tl.int32, bitcast=True)
            h = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    else:
        h = s.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32)
    return h


@triton.jit
def _add(a, b):  # combine function (tl.sum is a @jit function the interpreter copies cannot call)
    return a + b


@triton.jit
def _maj(a, b, c):
    return (a & b) | (a & c) | (b & c)


@triton.jit
def pick24(v0, v1, v2, v3, m0, m1, m2, m3):
    """Top-2 of four values by the magnitudes ``m0..m3`` (lower index wins ties): the kept-value
    pair (int32, lower position in the low half) and the nibble ``idx0 | idx1 << 2``."""
    # a_ij (i < j): element i ranks before element j. rank_i = #elements ranked before i; keep
    # rank < 2, i.e. at most one of the three comparisons that could rank another element first.
    a01 = m0 >= m1
    a02 = m0 >= m2
    a03 = m0 >= m3
    a12 = m1 >= m2
    a13 = m1 >= m3
    a23 = m2 >= m3
    keep0 = _maj(a01, a02, a03)
    keep1 = ~_maj(a01, ~a12, ~a13)
    keep2 = ~_maj(a02, a12, ~a23)
    keep3 = ~_maj(a03, a13, a23)
    idx0 = tl.where(keep0, 0, tl.where(keep1, 1, 2))
    idx1 = tl.where(keep3, 3, tl.where(keep2, 2, 1))
    val0 = tl.where(keep0, v0, tl.where(keep1, v1, v2))
    val1 = tl.where(keep3, v3, tl.where(keep2, v2, v1))
    return val0 | (val1 << 16), idx0 | (idx1 << 2)


@triton.jit
def select24(w, APPLY_RELU2: tl.constexpr, IS_BF16: tl.constexpr, HW_CVT: tl.constexpr):
    """For int64 group words ``w`` (4 raw elements): the kept-value pair (int32, lower position in
    the low half) and the metadata nibble ``idx0 | idx1 << 2`` of the top-2 of the four values by
    magnitude, lower index winning ties; values are relu(x)**2 when ``APPLY_RELU2``."""
    lo = w.to(tl.int32)  # elements 0 (low 16 bits) and 1
    hi = (w >> 32).to(tl.int32)  # elements 2 and 3
    if APPLY_RELU2:
        if IS_BF16:
            x0 = (lo << 16).to(tl.float32, bitcast=True)
            x1 = (lo & -65536).to(tl.float32, bitcast=True)
            x2 = (hi << 16).to(tl.float32, bitcast=True)
            x3 = (hi & -65536).to(tl.float32, bitcast=True)
        else:
            x0 = half_bits_to_f32(lo & 0xFFFF, IS_BF16)
            x1 = half_bits_to_f32((lo >> 16) & 0xFFFF, IS_BF16)
            x2 = half_bits_to_f32(hi & 0xFFFF, IS_BF16)
            x3 = half_bits_to_f32((hi >> 16) & 0xFFFF, IS_BF16)
        v0 = _relu2_half(x0, IS_BF16, HW_CVT)
        v1 = _relu2_half(x1, IS_BF16, HW_CVT)
        v2 = _relu2_half(x2, IS_BF16, HW_CVT)
        v3 = _relu2_half(x3, IS_BF16, HW_CVT)
        # non-negative: the bits order like the magnitudes
        return pick24(v0, v1, v2, v3, v0, v1, v2, v3)
    else:
        v0 = lo & 0xFFFF
        v1 = (lo >> 16) & 0xFFFF
        v2 = hi & 0xFFFF
        v3 = (hi >> 16) & 0xFFFF
        # |x| orders like the bits without the sign (non-NaN)
        return pick24(v0, v1, v2, v3, v0 & 0x7FFF, v1 & 0x7FFF, v2 & 0x7FFF, v3 & 0x7FFF)


@triton.jit
def store_compressed_tile(out_ptr, row_start, grp_start, F, meta_start, val, nib,
                          BLOCK_M: tl.constexpr, G: tl.constexpr):
    """Store the kept pairs ``val`` and nibbles ``nib`` ([BLOCK_M, G] int32: rows ``row_start``
    (a multiple of 16) on, groups of 4 columns ``grp_start`` (a multiple of 8) on) in the
    compressed layout: values row-major (coalesced), and the 16-bit metadata words, each
    assembled from rows r, r+8 x groups g, g+4 by a shift and a sum over those two axes."""
    i = tl.arange(0, BLOCK_M)
    j = tl.arange(0, G)
    rows = row_start.to(tl.int64) + i
    p = out_ptr.to(tl.pointer_type(tl.int32)) + (rows * (F // 4))[:, None] + (grp_start + j)[None, :]
    tl.store(p, val)
    shifted = nib << (4 * ((i >> 3) & 1)[:, None] + 8 * ((j >> 2) & 1)[None, :])
    s = tl.reshape(shifted, [BLOCK_M // 16, 2, 8, G // 8, 2, 4])
    s = tl.reduce(tl.reduce(s, 4, _add), 1, _add)  # disjoint bits: sum == or
    words = tl.reshape(s, [BLOCK_M // 2, G // 8, 4])
    ii = tl.arange(0, BLOCK_M // 2)
    r0 = row_start.to(tl.int64) + (ii // 8) * 16 + (ii % 8)  # the rows with bit 3 clear
    t = grp_start // 8 + tl.arange(0, G // 8)
    meta = out_ptr.to(tl.pointer_type(tl.int16)) + meta_start
    tl.store(meta + meta_word_index(r0, t, F), words.to(tl.int16))
