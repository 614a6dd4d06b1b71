"""Persistent TMA GEMMs of the ELAS FFN with the 2:4 work in their epilogue.

The same products and epilogues as ``triton_lowrank_gemm`` (``y = a @ b^T`` then relu², top-2 of
every 4 and the compressed cuSPARSELt operand; ``dS = a @ b`` then ``dy1`` by the rule of
``relu2_sparsify24_backward``), built the way GEMMs reach cuBLAS speed on Hopper: operands read
by TMA (host-side ``TensorDescriptor``), one program per SM looping over output tiles
(``tl.range(..., flatten=True)`` lets the next tile's loads run under this tile's epilogue), tiles
grouped along M so that neighbours share ``b`` in L2.

* ``up_relu2_compress_tma(a, b)``: (packed, y or None); ``write_y`` also stores y (``ste``),
  ``compress=False`` stores only y (the plain GEMM: a benchmark of the main loop).
* ``grad_relu2_tma(a, b, packed, y, mode, write_s)``: dense ``dy1`` and, with ``write_s``, the
  dense S expanded from ``packed`` in the same epilogue (for ``dV = g^T @ S``, cuBLAS).

Rows and F multiples of 64 (``cslt_shape_ok``), r a multiple of 8 (TMA: 16-byte row strides).
CPU tensors run the same kernels under the Triton interpreter, with the operands read as raw
16-bit words and widened to float32 (its bf16 arithmetic is unreliable).

A measured experiment, not an op (benchmarks/bench_tma_gemm.py, docs/kernels.md): on the H100 the
plain TMA main loop reaches 450 TFLOP/s at 16384 x 8192 x 512 against cuBLAS's 620, and the 2:4
epilogue adds 0.23 ms (more than the stand-alone compress kernel's 0.15 ms), so neither GEMM beats
cuBLAS + the separate kernel. Not registered as ``torch.ops.elas``: torch 2.11's ``wrap_triton``
fails on ``TensorDescriptor`` arguments under Inductor ("'<=' not supported between instances of
'TensorDescriptor' and 'int'") and in ``opcheck``'s AOT test.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from ._triton_compat import kernel_module
from .cslt_layout import packed_shape, values_numel
from .triton_bits import half_bits_to_f32
from .triton_lowrank_gemm import check_operands, fit, grad_epilogue, tile_of, up_epilogue
from .triton_sparse24_backward import _MODES

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages, flatten) on CUDA
CONFIGS = {"up": (128, 128, 64, 8, 3, True), "grad": (128, 128, 64, 8, 3, True)}
SWEEP_CONFIGS = [(128, 128, 64, 8, 3, True), (128, 128, 64, 4, 3, True), (128, 128, 64, 8, 4, True),
                 (128, 256, 64, 8, 3, True), (128, 256, 64, 8, 3, False), (128, 128, 64, 8, 3, False),
                 (64, 256, 64, 4, 3, True), (128, 64, 64, 4, 4, True), (256, 128, 64, 8, 3, True)]
INTERP_CONFIG = (64, 64, 32, 4, 1, True)
INTERP_PROGRAMS = 3  # "SMs" under the interpreter: more than one tile per program is exercised


@triton.jit
def _tile_dot(a_desc, b_desc, off_m, off_n, K, B_NK: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """float32 tile a[off_m:, :] @ b; ``b`` stored N x K (``B_NK``, used transposed) or K x N.
    Under the interpreter the descriptors hold raw 16-bit words, widened to float32 here (one
    assignment per constexpr branch: Triton 3.6 types both returns of a helper alike)."""
    acc = tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if B_NK:
            b_raw = tl.trans(b_desc.load([off_n, k0]))
        else:
            b_raw = b_desc.load([k0, off_n])
        if HW:
            a = a_desc.load([off_m, k0])
            b = b_raw
        else:
            a = half_bits_to_f32(a_desc.load([off_m, k0]).to(tl.int32) & 0xFFFF, IS_BF16)
            b = half_bits_to_f32(b_raw.to(tl.int32) & 0xFFFF, IS_BF16)
        acc = tl.dot(a, b, acc)
    return acc


@triton.jit
def up_relu2_compress_tma_kernel(
    a_desc, b_desc, out_ptr, y_ptr, M, N, K, meta_start, n_programs,
    COMPRESS: tl.constexpr, WRITE_Y: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    FLATTEN: tl.constexpr,
):
    n_m = M // BLOCK_M
    n_n = N // BLOCK_N
    for tile in tl.range(tl.program_id(0), n_m * n_n, n_programs, flatten=FLATTEN):
        pid_m, pid_n = tile_of(tile, n_m, n_n, GROUP_M)
        acc = _tile_dot(a_desc, b_desc, pid_m * BLOCK_M, pid_n * BLOCK_N, K, True, IS_BF16, HW,
                        BLOCK_M, BLOCK_N, BLOCK_K)
        up_epilogue(acc, out_ptr, y_ptr, pid_m, pid_n, N, meta_start, COMPRESS, WRITE_Y, IS_BF16, HW,
                    BLOCK_M, BLOCK_N)


@triton.jit
def grad_relu2_tma_kernel(
    a_desc, b_desc, packed_ptr, y_ptr, out_ptr, s_ptr, M, N, K, meta_start, n_programs,
    MODE: tl.constexpr, WRITE_S: tl.constexpr, IS_BF16: tl.constexpr, HW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    FLATTEN: tl.constexpr,
):
    n_m = M // BLOCK_M
    n_n = N // BLOCK_N
    for tile in tl.range(tl.program_id(0), n_m * n_n, n_programs, flatten=FLATTEN):
        pid_m, pid_n = tile_of(tile, n_m, n_n, GROUP_M)
        acc = _tile_dot(a_desc, b_desc, pid_m * BLOCK_M, pid_n * BLOCK_N, K, False, IS_BF16, HW,
                        BLOCK_M, BLOCK_N, BLOCK_K)
        grad_epilogue(acc, packed_ptr, y_ptr, out_ptr, s_ptr, pid_m, pid_n, N, meta_start, MODE, WRITE_S, IS_BF16,
                      HW, BLOCK_M, BLOCK_N)


def _desc(t: torch.Tensor, block, interpret: bool) -> TensorDescriptor:
    """TMA descriptor of a 2-D operand (raw 16-bit words under the interpreter)."""
    t = t.contiguous()
    return TensorDescriptor.from_tensor(t.view(torch.int16) if interpret else t, list(block))


def _launch(kernel_name, a, b, b_nk: bool, m, n, k, config, wrap, name, *ptrs, **consts):
    interpret = a.device.type != "cuda"
    bm, bn, bk, nw, ns, flat = fit(config or (INTERP_CONFIG if interpret else CONFIGS[name]), m, n)
    kern = getattr(kernel_module(__name__, interpret), kernel_name)
    if wrap is not None:
        kern = wrap(kern)
    sms = INTERP_PROGRAMS if interpret else torch.cuda.get_device_properties(a.device).multi_processor_count
    programs = min(sms, (m // bm) * (n // bn))
    a_desc = _desc(a, (bm, bk), interpret)
    b_desc = _desc(b, (bn, bk) if b_nk else (bk, bn), interpret)
    kern[(programs,)](
        a_desc, b_desc, *ptrs, m, n, k, values_numel(m, n), programs,
        IS_BF16=a.dtype == torch.bfloat16, HW=not interpret, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8,
        FLATTEN=flat, num_warps=nw, num_stages=ns, **consts,
    )


def _check(a: torch.Tensor, b: torch.Tensor, m: int, n: int, k: int) -> None:
    check_operands(a, b, m, n)
    if k % 8:
        raise ValueError(f"the rank (inner dimension) must be a multiple of 8 for TMA, got {k}")


def up_relu2_compress_tma(a: torch.Tensor, b: torch.Tensor, *, write_y: bool = False, compress: bool = True,
                          config=None, wrap=None):
    """(compressed ``relu2_sparsify24(a @ b^T)`` or None, ``y = a @ b^T`` or None); ``a`` rows x r,
    ``b`` F x r."""
    m, k = a.shape
    n = b.shape[0]
    _check(a, b, m, n, k)
    if b.shape[1] != k:
        raise ValueError(f"a is {m} x {k} but b is {tuple(b.shape)} (expected F x {k})")
    if not (compress or write_y):
        raise ValueError("nothing to write: compress or write_y")
    out = torch.empty(packed_shape(m, n), dtype=a.dtype, device=a.device) if compress else None
    y = torch.empty((m, n), dtype=a.dtype, device=a.device) if write_y else None
    _launch("up_relu2_compress_tma_kernel", a, b, True, m, n, k, config, wrap, "up",
            out if compress else y, y if write_y else out, COMPRESS=compress, WRITE_Y=write_y)
    return out, y


def grad_relu2_tma(a: torch.Tensor, b: torch.Tensor, packed: torch.Tensor, y, mode: str, *, write_s: bool = False,
                   config=None, wrap=None):
    """(dense ``dy1`` from ``dS = a @ b`` by ``mode``, dense S or None); ``a`` rows x r, ``b`` r x F,
    ``packed`` the saved compressed operand, ``y`` the pre-activation (``ste``)."""
    m, k = a.shape
    n = b.shape[1]
    _check(a, b, m, n, k)
    if b.shape[0] != k:
        raise ValueError(f"a is {m} x {k} but b is {tuple(b.shape)} (expected {k} x F)")
    kmode = _MODES[mode]
    if kmode == 2 and (y is None or y.shape != (m, n) or not y.is_contiguous()):
        raise ValueError(f"mode {mode!r} needs y, contiguous {m} x {n}")
    if packed.numel() != m * n * 9 // 16 or not packed.is_contiguous():
        raise ValueError(f"packed must be a contiguous buffer of {m * n * 9 // 16} elements")
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    s = torch.empty((m, n), dtype=a.dtype, device=a.device) if write_s else None
    _launch("grad_relu2_tma_kernel", a, b, False, m, n, k, config, wrap, "grad",
            packed, packed if y is None else y, out, out if s is None else s, MODE=kmode, WRITE_S=write_s)
    return out, s
