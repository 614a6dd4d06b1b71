"""Dense GEMMs of the ELAS FFN with the 2:4 work in their epilogue (one pass, no dense y or dS in
memory).

* ``up_relu2_compress``: ``y = a @ b^T`` (``a`` tokens x r, ``b`` F x r: the up projection's U
  factor) rounded to the dtype, then relu², top-2 of every 4 and the compressed cuSPARSELt operand,
  from the accumulator tile (``select24`` + ``store_compressed_tile``: the same code as the
  stand-alone forward kernel). ``write_y`` also stores ``y`` (the ``ste`` backward needs it).
* ``grad_relu2_sparse24``: ``dS = a @ b`` (``a`` = the gradient wrt the FFN output projected on
  the down projection's V factor input, tokens x r; ``b`` that factor, r x F) rounded to the dtype,
  then ``dy1`` from dS and the saved compressed operand (``masked``) or ``y`` (``ste``) with the
  rule of ``relu2_sparsify24_backward``. Written dense: the up projection's weight gradient
  reduces over tokens.

Results equal the unfused ops applied to the rounded product (``relu2_sparsify24_compress(y)``,
``relu2_sparsify24_backward(dS, ...)``); only the product's accumulation order differs from
cuBLAS. Shapes: rows and F multiples of 64 (``cslt_shape_ok``), any r. CPU tensors run the same
kernels under the Triton interpreter, with float32 operands (its bf16 arithmetic is unreliable).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_compat import kernel_module
from .cslt_layout import check_cslt_shape, packed_shape, values_numel
from .triton_bits import f32_to_half_bits, half_bits_to_f32, load_nibbles, select24, store_compressed_tile
from .triton_sparse24_backward import _MODES, _dense_grad, _expand

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages) on CUDA (benchmarks/bench_sparsify.py --sweep)
CONFIGS = {"up": (128, 128, 64, 4, 3), "grad": (64, 128, 64, 4, 4)}  # H100 sweep
SWEEP_CONFIGS = [(128, 128, 64, 8, 3), (128, 128, 64, 4, 3), (128, 128, 64, 8, 4), (128, 256, 64, 8, 3),
                 (64, 128, 64, 4, 4), (128, 64, 64, 4, 4), (128, 128, 32, 8, 4), (64, 256, 64, 8, 3)]
INTERP_CONFIG = (64, 64, 32, 4, 1)


@triton.jit
def tile_of(tile, n_m, n_n, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of output tile ``tile``, grouped along M so that neighbours share b tiles
    in L2."""
    per_group = GROUP_M * n_n
    first_m = (tile // per_group) * GROUP_M
    size_m = tl.minimum(n_m - first_m, GROUP_M)
    return first_m + (tile % per_group) % size_m, (tile % per_group) // size_m


@triton.jit
def _tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(pid_m, pid_n) of this program (one output tile per program)."""
    return tile_of(tl.program_id(0), M // BLOCK_M, N // BLOCK_N, GROUP_M)


@triton.jit
def _mma(a_ptr, b_ptr, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, IS_BF16: tl.constexpr,
         HW: tl.constexpr):
    """float32 tile ``a[pid_m] @ b[:, pid_n]`` (b indexed [k, n] through its strides)."""
    offs_m = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_n = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + offs_k
        a_off = offs_m[:, None] * stride_am + kk[None, :] * stride_ak
        b_off = kk[:, None] * stride_bk + offs_n[None, :] * stride_bn
        if HW:
            a = tl.load(a_ptr + a_off, mask=kk[None, :] < K, other=0.0)
            b = tl.load(b_ptr + b_off, mask=kk[:, None] < K, other=0.0)
        else:  # interpreter: raw bits -> float32
            a16 = a_ptr.to(tl.pointer_type(tl.int16))
            b16 = b_ptr.to(tl.pointer_type(tl.int16))
            a = half_bits_to_f32(tl.load(a16 + a_off, mask=kk[None, :] < K, other=0).to(tl.int32) & 0xFFFF, IS_BF16)
            b = half_bits_to_f32(tl.load(b16 + b_off, mask=kk[:, None] < K, other=0).to(tl.int32) & 0xFFFF, IS_BF16)
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def _group_words(acc, IS_BF16: tl.constexpr, HW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """float32 tile -> int64 words [BLOCK_M, BLOCK_N/4] of its values rounded to the dtype."""
    bits = f32_to_half_bits(acc, IS_BF16, HW).to(tl.int64)
    shift = ((tl.arange(0, BLOCK_N) % 4) * 16).to(tl.int64)
    w = tl.reshape(bits << shift[None, :], [BLOCK_M, BLOCK_N // 4, 4])
    return tl.reduce(w, 2, _or)


@triton.jit
def _or(a, b):
    return a | b


@triton.jit
def up_epilogue(acc, out_ptr, y_ptr, pid_m, pid_n, N, meta_start, COMPRESS: tl.constexpr, WRITE_Y: tl.constexpr,
                IS_BF16: tl.constexpr, HW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Store tile (pid_m, pid_n) of y = acc rounded to the dtype (``WRITE_Y``) and/or its
    relu² + 2:4 selection in the compressed layout (``COMPRESS``)."""
    G: tl.constexpr = BLOCK_N // 4
    words = _group_words(acc, IS_BF16, HW, BLOCK_M, BLOCK_N)
    if WRITE_Y:
        rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
        grps = pid_n * G + tl.arange(0, G)
        tl.store(y_ptr.to(tl.pointer_type(tl.int64)) + (rows * (N // 4))[:, None] + grps[None, :], words)
    if COMPRESS:
        val, nib = select24(words, True, IS_BF16, HW)
        store_compressed_tile(out_ptr, pid_m * BLOCK_M, pid_n * G, N, meta_start, val, nib, BLOCK_M, G)


@triton.jit
def grad_epilogue(acc, packed_ptr, y_ptr, out_ptr, s_ptr, pid_m, pid_n, N, meta_start, MODE: tl.constexpr,
                  WRITE_S: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Store tile (pid_m, pid_n) of dy1 from dS = acc (rounded to the dtype) by MODE (0 masked
    from ``packed``, 2 ste from ``y``) and, with ``WRITE_S``, of the dense S of ``packed``."""
    G: tl.constexpr = BLOCK_N // 4
    gw = _group_words(acc, IS_BF16, HW, BLOCK_M, BLOCK_N)
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    grps = pid_n * G + tl.arange(0, G)
    off = (rows * (N // 4))[:, None] + grps[None, :]
    if MODE != 2 or WRITE_S:
        pv = tl.load(packed_ptr.to(tl.pointer_type(tl.int32)) + off)
        nib = load_nibbles(packed_ptr, rows, grps, N, meta_start)
    else:
        pv = gw.to(tl.int32)  # unused
        nib = pv
    if MODE == 2:
        yw = tl.load(y_ptr.to(tl.pointer_type(tl.int64)) + off)
    else:
        yw = gw  # unused
    tl.store(out_ptr.to(tl.pointer_type(tl.int64)) + off, _dense_grad(gw, yw, pv, nib, MODE, IS_BF16, HW))
    if WRITE_S:
        tl.store(s_ptr.to(tl.pointer_type(tl.int64)) + off, _expand(pv, nib))


@triton.jit
def up_relu2_compress_kernel(
    a_ptr, b_ptr, out_ptr, y_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, meta_start,
    WRITE_Y: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = _mma(a_ptr, b_ptr, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
               BLOCK_M, BLOCK_N, BLOCK_K, IS_BF16, HW)
    up_epilogue(acc, out_ptr, y_ptr, pid_m, pid_n, N, meta_start, True, WRITE_Y, IS_BF16, HW, BLOCK_M, BLOCK_N)


@triton.jit
def grad_relu2_sparse24_kernel(
    a_ptr, b_ptr, packed_ptr, y_ptr, out_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, meta_start,
    MODE: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = _mma(a_ptr, b_ptr, K, stride_am, stride_ak, stride_bk, stride_bn, pid_m, pid_n,
               BLOCK_M, BLOCK_N, BLOCK_K, IS_BF16, HW)
    grad_epilogue(acc, packed_ptr, y_ptr, out_ptr, out_ptr, pid_m, pid_n, N, meta_start, MODE, False, IS_BF16, HW,
                  BLOCK_M, BLOCK_N)


def fit(config, m: int, n: int) -> tuple:
    """``config`` with BLOCK_M / BLOCK_N (its first two entries) halved until they divide m / n."""
    bm, bn, *rest = config
    while m % bm:
        bm //= 2
    while n % bn:
        bn //= 2
    return (bm, bn, *rest)


def _launch(kernel_name, a, b_strides, m, n, k, config, wrap, name, *ptrs, **consts):
    interpret = a.device.type != "cuda"
    bm, bn, bk, nw, ns = fit(config or (INTERP_CONFIG if interpret else CONFIGS[name]), m, n)
    kern = getattr(kernel_module(__name__, interpret), kernel_name)
    if wrap is not None:
        kern = wrap(kern)
    hw = not interpret
    kern[((m // bm) * (n // bn),)](
        *ptrs, m, n, k, a.stride(0), a.stride(1), *b_strides, values_numel(m, n),
        IS_BF16=a.dtype == torch.bfloat16, HW=hw, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8,
        num_warps=nw, num_stages=ns, **consts,
    )


def check_operands(a: torch.Tensor, b: torch.Tensor, m: int, n: int) -> None:
    check_cslt_shape(m, n, a.dtype)
    if a.dim() != 2 or b.dim() != 2 or a.dtype != b.dtype or a.device != b.device:
        raise ValueError("expected 2-D operands of one dtype on one device")


def up_relu2_compress(a: torch.Tensor, b: torch.Tensor, *, write_y: bool = False, config=None, wrap=None):
    """(compressed ``relu2_sparsify24(a @ b^T)``, ``y = a @ b^T`` or None); ``a`` rows x r,
    ``b`` F x r."""
    m, k = a.shape
    n = b.shape[0]
    check_operands(a, b, m, n)
    if b.shape[1] != k:
        raise ValueError(f"a is {m} x {k} but b is {tuple(b.shape)} (expected F x {k})")
    out = torch.empty(packed_shape(m, n), dtype=a.dtype, device=a.device)
    y = torch.empty((m, n), dtype=a.dtype, device=a.device) if write_y else None
    _launch("up_relu2_compress_kernel", a, (b.stride(1), b.stride(0)), m, n, k, config, wrap, "up",
            a, b, out, out if y is None else y, WRITE_Y=write_y)
    return out, y


def grad_relu2_sparse24(a: torch.Tensor, b: torch.Tensor, packed: torch.Tensor, y, mode: str, *,
                        config=None, wrap=None) -> torch.Tensor:
    """Dense ``dy1`` from ``dS = a @ b`` (``a`` rows x r, ``b`` r x F) by ``mode`` (masked: from
    ``packed``; ste: from ``y``)."""
    m, k = a.shape
    n = b.shape[1]
    check_operands(a, b, m, n)
    if b.shape[0] != k:
        raise ValueError(f"a is {m} x {k} but b is {tuple(b.shape)} (expected {k} x F)")
    kmode = _MODES[mode]
    if kmode == 2 and (y is None or y.shape != (m, n) or not y.is_contiguous()):
        raise ValueError(f"mode {mode!r} needs y, contiguous {m} x {n}")
    if kmode != 2 and (packed.numel() != m * n * 9 // 16 or not packed.is_contiguous()):
        raise ValueError(f"packed must be a contiguous buffer of {m * n * 9 // 16} elements")
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    _launch("grad_relu2_sparse24_kernel", a, (b.stride(0), b.stride(1)), m, n, k, config, wrap, "grad",
            a, b, packed, packed if y is None else y, out, MODE=kmode)
    return out
