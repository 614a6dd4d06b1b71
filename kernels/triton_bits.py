"""Triton helpers shared by the 2:4 kernels: 16-bit float <-> float32 through integer bits, and the
offset of a metadata word in the cuSPARSELt layout (see :mod:`elas_compile.kernels.cslt_layout`).

The kernels move half-precision data as raw 16-bit patterns packed into int32 / int64 words (four
elements of a 2:4 group are one int64), so every load and store is a plain integer access, and
convert to float32 only to compute. Conversions to bf16 round to nearest even in integer arithmetic
(identical under the Triton interpreter and on the GPU).
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def half_bits_to_f32(h, IS_BF16: tl.constexpr):
    """``h``: int32 with a bf16/fp16 bit pattern in its low 16 bits -> float32 value."""
    if IS_BF16:
        x = (h << 16).to(tl.float32, bitcast=True)
    else:
        x = h.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    return x


@triton.jit
def f32_to_half_bits(x, IS_BF16: tl.constexpr):
    """float32 -> int32 holding the bf16/fp16 pattern (round to nearest even) in its low 16 bits."""
    if IS_BF16:
        b = x.to(tl.int32, bitcast=True)
        rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
        is_nan = (b & 0x7FFFFFFF) > 0x7F800000
        h = tl.where(is_nan, ((b >> 16) | 0x40) & 0xFFFF, rounded)
    else:
        h = x.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    return h


@triton.jit
def relu2_bits(h, IS_BF16: tl.constexpr):
    """Bits of ``relu(x) ** 2`` rounded to the input dtype, for ``x`` given by its bits ``h``."""
    x = half_bits_to_f32(h, IS_BF16)
    r = tl.maximum(x, 0.0)
    return f32_to_half_bits(r * r, IS_BF16)


@triton.jit
def meta_word_offset(r, col, M):
    """Index (int16 words, inside the metadata region) of the word for row ``r`` and the 16
    columns starting at ``col`` (a multiple of 16) of an ``M``-row matrix. Mirrors
    ``cslt_layout._meta_offset_formula``."""
    rr = r % 128
    cc = col % 64
    off = ((col // 64) * (M // 128) + r // 128) * 512
    off += (cc // 32) * 256 + (rr // 32) * 64
    r16 = rr % 16
    off += 2 * ((r16 % 8) * 4 + ((rr % 32) // 16) * 2 + (cc % 32) // 16) + r16 // 8
    return off


@triton.jit
def _or_combine(a, b):
    return a | b


@triton.jit
def or_reduce(x, axis: tl.constexpr):
    """Bitwise-or reduction. (``tl.sum`` is itself a ``@triton.jit`` function of triton.language,
    which breaks under the interpreter unless TRITON_INTERPRET was set before importing triton;
    ``tl.reduce`` is a builtin.)"""
    return tl.reduce(x, axis, _or_combine)


@triton.jit
def or_last4(x, USE_REDUCE: tl.constexpr):
    """Bitwise-or over the last axis (size 4) of a 3-D tensor. Default: reshape + split (builtins;
    fast under the interpreter, where ``tl.reduce`` calls the combine function per element)."""
    if USE_REDUCE:
        out = or_reduce(x, 2)
    else:
        a, b = tl.split(tl.reshape(x, [x.shape[0], x.shape[1], 2, 2]))
        a0, a1 = tl.split(a)
        b0, b1 = tl.split(b)
        out = (a0 | a1) | (b0 | b1)
    return out


@triton.jit
def group_halves(w):
    """Split int64 words (4 packed 16-bit elements) into 4 int32 bit patterns."""
    h0 = (w & 0xFFFF).to(tl.int32)
    h1 = ((w >> 16) & 0xFFFF).to(tl.int32)
    h2 = ((w >> 32) & 0xFFFF).to(tl.int32)
    h3 = ((w >> 48) & 0xFFFF).to(tl.int32)
    return h0, h1, h2, h3
