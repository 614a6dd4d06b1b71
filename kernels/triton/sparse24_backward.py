"""Kernels that read the compressed 2:4 operand (layout: ``cslt_layout``): expansion to dense, and
the backward of ``relu2_sparsify24`` without a saved dense tensor.

* ``sparse24_decompress``: packed -> dense pruned ``S`` (rows x cols). For the down projection's
  weight gradient ``dW = dy^T @ S`` (reduction over tokens, so ``S`` must be dense there).
* ``relu2_sparsify24_backward``: dense ``dy1`` from ``dS`` (the gradient wrt ``S``):
  ``masked`` (``y`` absent): ``2 * dS * sqrt(v)`` at kept positions, ``v`` the kept value of
  ``packed`` (``sqrt(v)`` = ``relu(y)`` up to the rounding of ``v``); ``ste`` / ``dense``:
  ``2 * dS * relu(y)`` everywhere. With ``write_s`` the same pass also writes the dense S (for
  ``dW = dy^T @ S``): one read of ``packed`` instead of two, no separate decompress launch. With
  ``write_dy_packed`` (masked) it also writes dy compressed: dy is zero wherever S is pruned, so
  its kept values at S's positions and S's metadata words are dy in the compressed layout, the
  sparse operand of the exact sparse dh = dy @ Uup (``elas::cslt_mm``).

All compute in float32, rounded once to the dtype. Launchers run compiled on CUDA tensors and under
the Triton interpreter on CPU tensors.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from elas_compile.modes import check_mode

from .compat import kernel_module
from ..cslt_layout import check_packed, values_numel
from .bits import (
    f32_to_half_bits,
    half_bits_to_f32,
    load_groups,
    load_values,
    meta_word_index,
    quad_coords,
    store_groups,
    store_values,
)
from .relu2_sparsify import _aligned_rows, fit_config

# (BLOCK_M, BLOCK_F, num_warps) per kernel on CUDA (the H100 sweep of `python -m tools.triton_configs`)
CONFIGS = {"decompress": (32, 128, 8), "backward": (32, 128, 8)}
SWEEP_CONFIGS = [(16, 128, 4), (32, 64, 4), (32, 128, 4), (32, 128, 8), (64, 64, 4), (64, 128, 8)]
INTERP_CONFIG = (64, 128, 4)  # fewer, larger programs under the interpreter


@triton.jit
def _load_meta(packed_ptr, r0, t, F, meta_start):
    """Metadata words of the tile and the four quadrants' nibbles split into (idx0, idx1)."""
    off = meta_word_index(r0, t, F)
    word = tl.load(packed_ptr.to(tl.pointer_type(tl.int16)) + meta_start + off)
    w = word.to(tl.int32)
    n00 = w & 0xF
    n10 = (w >> 4) & 0xF
    n01 = (w >> 8) & 0xF
    n11 = (w >> 12) & 0xF
    return word, off, n00, n01, n10, n11


@triton.jit
def _expand(pv, nib):
    """int64 group word (4 elements) from a kept-value pair and its nibble."""
    i0 = (nib & 3).to(tl.int64) * 16
    i1 = (nib >> 2).to(tl.int64) * 16
    return ((pv & 0xFFFF).to(tl.int64) << i0) | (((pv >> 16) & 0xFFFF).to(tl.int64) << i1)


@triton.jit
def sparse24_decompress_kernel(
    packed_ptr, out_ptr, M, F, stride_om, meta_start, BLOCK_M: tl.constexpr, BLOCK_F: tl.constexpr
):
    r0, t, g0 = quad_coords(BLOCK_M, BLOCK_F)
    word, off, n00, n01, n10, n11 = _load_meta(packed_ptr, r0, t, F, meta_start)
    p00, p01, p10, p11 = load_values(packed_ptr, r0, g0, F)
    store_groups(out_ptr, r0, g0, stride_om, _expand(p00, n00), _expand(p01, n01), _expand(p10, n10), _expand(p11, n11))


@triton.jit
def _dense_grad(gw, yw, pv, nib, FROM_Y: tl.constexpr, IS_BF16: tl.constexpr, HW_CVT: tl.constexpr):
    """dy1 group word (int64) from the grad group word ``gw`` and either the y group word
    (``FROM_Y``: ste / dense, 2 * g * relu(y) everywhere) or the kept pair + nibble (masked:
    2 * g * sqrt(v) at the kept positions)."""
    if not FROM_Y:
        i0 = nib & 3
        i1 = nib >> 2
        lo = pv & 0xFFFF
        hi = (pv >> 16) & 0xFFFF
    res = gw & 0  # int64 zeros (tl.zeros is a @jit function: avoided for the interpreter)
    for j in tl.static_range(4):
        gj = half_bits_to_f32(((gw >> (16 * j)) & 0xFFFF).to(tl.int32), IS_BF16)
        if FROM_Y:
            d = 2.0 * gj * tl.maximum(half_bits_to_f32(((yw >> (16 * j)) & 0xFFFF).to(tl.int32), IS_BF16), 0.0)
        else:
            kept = (i0 == j) | (i1 == j)
            v = half_bits_to_f32(tl.where(i0 == j, lo, tl.where(i1 == j, hi, 0)), IS_BF16)
            d = tl.where(kept, 2.0 * gj * tl.sqrt(v), 0.0)
        res = res | (f32_to_half_bits(d, IS_BF16, HW_CVT).to(tl.int64) << (16 * j))
    return res


@triton.jit
def _kept_grad_pair(gw, pv, nib, IS_BF16: tl.constexpr, HW_CVT: tl.constexpr):
    """The masked dy of the two kept positions as a kept-value pair (int32): the values
    :func:`_dense_grad` writes there, bit for bit."""
    i0 = (nib & 3).to(tl.int64)
    i1 = (nib >> 2).to(tl.int64)
    g0 = half_bits_to_f32(((gw >> (16 * i0)) & 0xFFFF).to(tl.int32), IS_BF16)
    g1 = half_bits_to_f32(((gw >> (16 * i1)) & 0xFFFF).to(tl.int32), IS_BF16)
    d0 = 2.0 * g0 * tl.sqrt(half_bits_to_f32(pv & 0xFFFF, IS_BF16))
    d1 = 2.0 * g1 * tl.sqrt(half_bits_to_f32((pv >> 16) & 0xFFFF, IS_BF16))
    return f32_to_half_bits(d0, IS_BF16, HW_CVT) | (f32_to_half_bits(d1, IS_BF16, HW_CVT) << 16)


@triton.jit
def relu2_sparsify24_backward_kernel(
    grad_ptr,
    packed_ptr,
    y_ptr,
    out_ptr,
    s_ptr,  # dense S (rows x F) when WRITE_S
    dyp_ptr,  # compressed dy (packed's shape) when WRITE_DY_PACKED
    M,
    F,
    stride_gm,
    stride_ym,
    meta_start,
    FROM_Y: tl.constexpr,  # ste / dense: from y; masked: from the kept values of packed
    WRITE_S: tl.constexpr,
    WRITE_DY_PACKED: tl.constexpr,  # masked only
    IS_BF16: tl.constexpr,
    HW_CVT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    r0, t, g0 = quad_coords(BLOCK_M, BLOCK_F)
    g00, g01, g10, g11 = load_groups(grad_ptr, r0, g0, stride_gm)
    if FROM_Y:
        y00, y01, y10, y11 = load_groups(y_ptr, r0, g0, stride_ym)
    else:
        y00 = g00
        y01 = g01
        y10 = g10
        y11 = g11
    if not FROM_Y or WRITE_S:
        word, off, n00, n01, n10, n11 = _load_meta(packed_ptr, r0, t, F, meta_start)
        p00, p01, p10, p11 = load_values(packed_ptr, r0, g0, F)
    else:
        n00 = g00.to(tl.int32)
        n01 = n00
        n10 = n00
        n11 = n00
        p00 = n00
        p01 = n00
        p10 = n00
        p11 = n00
    store_groups(
        out_ptr,
        r0,
        g0,
        F,
        _dense_grad(g00, y00, p00, n00, FROM_Y, IS_BF16, HW_CVT),
        _dense_grad(g01, y01, p01, n01, FROM_Y, IS_BF16, HW_CVT),
        _dense_grad(g10, y10, p10, n10, FROM_Y, IS_BF16, HW_CVT),
        _dense_grad(g11, y11, p11, n11, FROM_Y, IS_BF16, HW_CVT),
    )
    if WRITE_S:  # the dense S for the down projection's weight gradient, from the same reads
        store_groups(s_ptr, r0, g0, F, _expand(p00, n00), _expand(p01, n01), _expand(p10, n10), _expand(p11, n11))
    if WRITE_DY_PACKED:  # dy's kept values and S's metadata words: dy compressed
        store_values(dyp_ptr, r0, g0, F, _kept_grad_pair(g00, p00, n00, IS_BF16, HW_CVT),
                     _kept_grad_pair(g01, p01, n01, IS_BF16, HW_CVT), _kept_grad_pair(g10, p10, n10, IS_BF16, HW_CVT),
                     _kept_grad_pair(g11, p11, n11, IS_BF16, HW_CVT))
        tl.store(dyp_ptr.to(tl.pointer_type(tl.int16)) + meta_start + off, word)


def _setup(packed: torch.Tensor, rows: int, cols: int, config, name: str):
    check_packed(packed, rows, cols)
    interpret = packed.device.type != "cuda"
    bm, bf, nw = fit_config(config or (INTERP_CONFIG if interpret else CONFIGS[name]), rows, cols)
    return kernel_module(__name__, interpret), (rows // bm, cols // bf), dict(BLOCK_M=bm, BLOCK_F=bf, num_warps=nw), not interpret


def _maybe_wrap(kern, wrap):
    return kern if wrap is None else wrap(kern)


def sparse24_decompress(packed: torch.Tensor, rows: int, cols: int, *, config=None, wrap=None) -> torch.Tensor:
    """Dense ``rows x cols`` tensor (dtype of ``packed``) represented by ``packed``."""
    mod, grid, meta, _ = _setup(packed, rows, cols, config, "decompress")
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
    write_s: bool = False,
    write_dy_packed: bool = False,
):
    """Dense ``dy1`` (shape and dtype of ``grad``); see the module docstring for the modes. With
    ``write_s``: ``(dy1, S)``, S the dense ``rows x cols`` matrix of ``packed`` (what
    ``sparse24_decompress`` returns) written by the same pass. With ``write_dy_packed`` (masked):
    also dy compressed (``packed``'s shape), appended to the result tuple."""
    from_y = check_mode(mode, where="relu2_sparsify24_backward") != "masked"
    if from_y != (y is not None):
        raise ValueError(f"mode {mode!r}: " + ("needs y" if from_y else "reads relu(y) from packed: pass y=None"))
    if write_dy_packed and from_y:
        raise ValueError(f"mode {mode!r}: dy is 2:4 (S's pattern) in masked mode only; write_dy_packed needs it")
    if grad.numel() != rows * cols or grad.shape[-1] != cols or grad.dtype != packed.dtype:
        raise ValueError("grad must have rows * cols elements, last dim cols, and packed's dtype")
    mod, grid, meta, hw = _setup(packed, rows, cols, config, "backward")
    g2 = _aligned_rows(grad)
    y2 = _aligned_rows(y) if y is not None else g2  # dummy pointer when unused
    out = torch.empty((rows, cols), dtype=grad.dtype, device=grad.device)
    s = torch.empty((rows, cols), dtype=grad.dtype, device=grad.device) if write_s else out
    dy_packed = torch.empty_like(packed) if write_dy_packed else out
    _maybe_wrap(mod.relu2_sparsify24_backward_kernel, wrap)[grid](
        g2,
        packed,
        y2,
        out,
        s,
        dy_packed,
        rows,
        cols,
        g2.stride(0),
        y2.stride(0),
        values_numel(rows, cols),
        FROM_Y=from_y,
        WRITE_S=write_s,
        WRITE_DY_PACKED=write_dy_packed,
        IS_BF16=grad.dtype == torch.bfloat16,
        HW_CVT=hw,
        **meta,
    )
    result = (out.view(grad.shape),) + ((s,) if write_s else ()) + ((dy_packed,) if write_dy_packed else ())
    return result if len(result) > 1 else result[0]
