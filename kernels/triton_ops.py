"""``torch.ops.elas`` 2:4 ops on the cuSPARSELt compressed operand (layout: ``cslt_layout``).

Importing this module registers:

* ``elas::relu2_sparsify24_compress(Tensor y) -> Tensor``: compressed operand of
  ``sparsify24(relu(y) ** 2)``; ``y`` is ``[..., F]`` bf16/fp16, ``rows = numel // F``; result
  ``(rows, 9 * F // 16)`` of ``y``'s dtype, usable as ``torch._cslt_sparse_mm(packed, B)``.
* ``elas::sparsify24_compress(Tensor x) -> Tensor``: the same without relu² (top-2 of ``|x|``).
* ``elas::sparse24_decompress(Tensor packed, int rows, int cols) -> Tensor``: dense pruned matrix.
* ``elas::relu2_sparsify24_backward(Tensor grad, Tensor packed, Tensor? y, str mode, int rows,
  int cols) -> Tensor``: dense ``dy1``, shape of ``grad``; ``mode`` in masked / ste / dense (see
  ``triton_sparse24_backward``).
* ``elas::relu2_sparsify24_backward_expand(Tensor grad, Tensor packed, Tensor? y, str mode, int rows,
  int cols) -> (Tensor, Tensor)``: ``relu2_sparsify24_backward`` and ``sparse24_decompress`` from
  one pass (dy1, dense S).
* ``elas::relu2_sparsify24_backward_compressed(Tensor grad, Tensor packed, int rows, int cols)
  -> Tensor``: masked ``dy1`` in the compressed layout (metadata of ``packed``).
* ``elas::up_relu2_sparsify24_compress(Tensor h, Tensor w, bool write_y) -> (Tensor, Tensor)``:
  ``relu2_sparsify24_compress(h @ w^T)`` from one GEMM (``triton_lowrank_gemm``) and ``y = h @ w^T``
  (an empty tensor unless ``write_y``).
* ``elas::grad_relu2_sparse24(Tensor g, Tensor w, Tensor packed, Tensor? y, str mode) -> Tensor``:
  ``relu2_sparsify24_backward(g @ w, packed, y, mode)`` from one GEMM (masked / ste).
* ``elas::tn_sparse24_mm(Tensor a, Tensor packed, int rows, int cols) -> Tensor``: ``a^T @ S``
  (``S`` the rows x cols matrix of ``packed``) without a dense S in memory (``triton_dv_gemm``).

With Triton importable, each op is a ``torch.library.triton_op``: CUDA tensors launch the Triton
kernels through ``wrap_triton`` (Inductor sees the kernels under ``torch.compile``); other devices
run the pure-PyTorch reference of ``cslt_layout`` (the same function body, so the fake/meta
implementation is the op itself). Without Triton the same names are ``custom_op``s running the
reference on every device, with fake implementations.

Shapes must satisfy ``cslt_layout.cslt_shape_ok`` (rows and cols multiples of 64, bf16/fp16);
otherwise the ops raise ``ValueError``: callers check ``cslt_shape_ok(rows, cols, dtype, device)``
first (with the device, it also confirms that cuSPARSELt there reads this layout) and fall back.
"""
from __future__ import annotations

from typing import Optional

import torch

from ._triton_compat import HAS_TRITON
from .cslt_layout import (
    check_cslt_shape,
    compress24_reference,
    cslt_shape_ok,
    decompress24_reference,
    packed_shape,
    relu2_sparsify24_backward_compressed_reference,
    relu2_sparsify24_backward_reference,
    relu2_sparsify24_compress_reference,
)

__all__ = [
    "HAS_TRITON",
    "cslt_shape_ok",
    "relu2_sparsify24_compress",
    "sparsify24_compress",
    "sparse24_decompress",
    "relu2_sparsify24_backward",
    "relu2_sparsify24_backward_compressed",
    "relu2_sparsify24_backward_expand",
    "up_relu2_sparsify24_compress",
    "grad_relu2_sparse24",
    "tn_sparse24_mm",
]

_MODES = ("masked", "ste", "dense")


def _rows_cols(x: torch.Tensor) -> tuple[int, int]:
    if x.dim() < 2:
        raise ValueError(f"expected at least 2 dims, got shape {tuple(x.shape)}")
    cols = x.shape[-1]
    return x.numel() // cols, cols


def _check_bwd(grad: torch.Tensor, packed: torch.Tensor, mode: str, y, rows: int, cols: int) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode != "masked" and y is None:
        raise ValueError(f"mode {mode!r} needs y")
    check_cslt_shape(rows, cols, packed.dtype)


def _on_gpu(t: torch.Tensor) -> bool:
    return HAS_TRITON and t.device.type == "cuda"


if HAS_TRITON:
    from torch.library import triton_op, wrap_triton

    from . import triton_dv_gemm as _dv
    from . import triton_lowrank_gemm as _gemm
    from . import triton_relu2_sparsify as _fwd
    from . import triton_sparse24_backward as _bwd

    def _define(name):
        return triton_op(f"elas::{name}", mutates_args=())

else:

    def _define(name):
        return torch.library.custom_op(f"elas::{name}", mutates_args=())

    wrap_triton = None


@_define("relu2_sparsify24_compress")
def relu2_sparsify24_compress(y: torch.Tensor) -> torch.Tensor:
    rows, cols = _rows_cols(y)
    check_cslt_shape(rows, cols, y.dtype)
    if _on_gpu(y):
        return _fwd.relu2_sparsify24_compress(y, wrap=wrap_triton)
    return relu2_sparsify24_compress_reference(y)


@_define("sparsify24_compress")
def sparsify24_compress(x: torch.Tensor) -> torch.Tensor:
    rows, cols = _rows_cols(x)
    check_cslt_shape(rows, cols, x.dtype)
    if _on_gpu(x):
        return _fwd.relu2_sparsify24_compress(x, apply_relu2=False, wrap=wrap_triton)
    return compress24_reference(x.reshape(rows, cols))


@_define("sparse24_decompress")
def sparse24_decompress(packed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    check_cslt_shape(rows, cols, packed.dtype)
    if _on_gpu(packed):
        return _bwd.sparse24_decompress(packed.contiguous(), rows, cols, wrap=wrap_triton)
    return decompress24_reference(packed, rows, cols)


@_define("relu2_sparsify24_backward")
def relu2_sparsify24_backward(
    grad: torch.Tensor, packed: torch.Tensor, y: Optional[torch.Tensor], mode: str, rows: int, cols: int
) -> torch.Tensor:
    _check_bwd(grad, packed, mode, y, rows, cols)
    if _on_gpu(grad):
        return _bwd.relu2_sparsify24_backward(grad, packed.contiguous(), y, mode, rows, cols, wrap=wrap_triton)
    return relu2_sparsify24_backward_reference(grad, packed, y, mode, rows, cols)


@_define("relu2_sparsify24_backward_expand")
def relu2_sparsify24_backward_expand(
    grad: torch.Tensor, packed: torch.Tensor, y: Optional[torch.Tensor], mode: str, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_bwd(grad, packed, mode, y, rows, cols)
    if _on_gpu(grad):
        return _bwd.relu2_sparsify24_backward(grad, packed.contiguous(), y, mode, rows, cols, wrap=wrap_triton,
                                              write_s=True)
    return (relu2_sparsify24_backward_reference(grad, packed, y, mode, rows, cols),
            decompress24_reference(packed, rows, cols))


@_define("relu2_sparsify24_backward_compressed")
def relu2_sparsify24_backward_compressed(
    grad: torch.Tensor, packed: torch.Tensor, rows: int, cols: int
) -> torch.Tensor:
    check_cslt_shape(rows, cols, packed.dtype)
    if _on_gpu(grad):
        return _bwd.relu2_sparsify24_backward_compressed(grad, packed.contiguous(), rows, cols, wrap=wrap_triton)
    return relu2_sparsify24_backward_compressed_reference(grad, packed, rows, cols)


@_define("up_relu2_sparsify24_compress")
def up_relu2_sparsify24_compress(h: torch.Tensor, w: torch.Tensor, write_y: bool) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = h.shape[0], w.shape[0]
    check_cslt_shape(rows, cols, h.dtype)
    if _on_gpu(h):
        packed, y = _gemm.up_relu2_compress(h, w, write_y=write_y, wrap=wrap_triton)
    else:
        y = h @ w.t()
        packed = relu2_sparsify24_compress_reference(y)
    return packed, (y if write_y else h.new_empty(0))


@_define("grad_relu2_sparse24")
def grad_relu2_sparse24(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor, y: Optional[torch.Tensor],
                        mode: str) -> torch.Tensor:
    rows, cols = g.shape[0], w.shape[1]
    if mode not in ("masked", "ste"):
        raise ValueError(f"mode must be masked or ste, got {mode!r}")
    _check_bwd(g, packed, mode, y, rows, cols)
    if _on_gpu(g):
        return _gemm.grad_relu2_sparse24(g, w, packed.contiguous(), y, mode, wrap=wrap_triton)
    return relu2_sparsify24_backward_reference(g @ w, packed, y, mode, rows, cols)


@_define("tn_sparse24_mm")
def tn_sparse24_mm(a: torch.Tensor, packed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    check_cslt_shape(rows, cols, packed.dtype)
    if _on_gpu(a):
        return _dv.dv_sparse24(a, packed.contiguous(), rows, cols, wrap=wrap_triton)
    return a.t() @ decompress24_reference(packed, rows, cols)


if not HAS_TRITON:

    @relu2_sparsify24_backward_expand.register_fake
    def _(grad, packed, y, mode, rows, cols):
        return torch.empty_like(grad), packed.new_empty((rows, cols))

    @tn_sparse24_mm.register_fake
    def _(a, packed, rows, cols):
        return a.new_empty((a.shape[1], cols))

    @up_relu2_sparsify24_compress.register_fake
    def _(h, w, write_y):
        rows, cols = h.shape[0], w.shape[0]
        return h.new_empty(packed_shape(rows, cols)), (h.new_empty((rows, cols)) if write_y else h.new_empty(0))

    @grad_relu2_sparse24.register_fake
    def _(g, w, packed, y, mode):
        return g.new_empty((g.shape[0], w.shape[1]))

    @relu2_sparsify24_compress.register_fake
    def _(y):
        rows, cols = _rows_cols(y)
        return y.new_empty(packed_shape(rows, cols))

    @sparsify24_compress.register_fake
    def _(x):
        rows, cols = _rows_cols(x)
        return x.new_empty(packed_shape(rows, cols))

    @sparse24_decompress.register_fake
    def _(packed, rows, cols):
        return packed.new_empty((rows, cols))

    @relu2_sparsify24_backward.register_fake
    def _(grad, packed, y, mode, rows, cols):
        return torch.empty_like(grad)

    @relu2_sparsify24_backward_compressed.register_fake
    def _(grad, packed, rows, cols):
        return packed.new_empty(packed_shape(rows, cols))
