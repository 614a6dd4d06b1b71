"""``torch.ops.elas`` 2:4 ops on the cuSPARSELt compressed operand (layout: ``cslt_layout``).

Importing this module registers:

* ``elas::relu2_sparsify24_compress(Tensor y) -> Tensor``: compressed operand of
  ``sparsify24(relu(y) ** 2)``; ``y`` is ``[..., F]`` bf16/fp16, ``rows = numel // F``; result
  ``(rows, 9 * F // 16)`` of ``y``'s dtype, usable as ``torch._cslt_sparse_mm(packed, B)``.
* ``elas::sparsify24_compress(Tensor x) -> Tensor``: the same without relu² (top-2 of ``|x|``).
* ``elas::sparse24_decompress(Tensor packed, int rows, int cols) -> Tensor``: dense pruned matrix.
* ``elas::relu2_sparsify24_backward_expand(Tensor grad, Tensor packed, Tensor? y, str mode, int rows,
  int cols) -> (Tensor, Tensor)``: from one pass over ``grad`` (dS) and ``packed``, ``dy`` (the
  gradient wrt ``y``; ``mode`` masked reads relu(y) from ``packed``, ste / dense need ``y``) and
  the dense S (see ``triton_sparse24_backward``).
* ``elas::relu2_sparsify24_backward_expand_packed(Tensor grad, Tensor packed, int rows, int cols) ->
  (Tensor, Tensor, Tensor)``: masked only: the same ``dy`` and S, and dy compressed (S's pattern:
  the kept values of dy and S's metadata), the sparse operand of the exact sparse dh = dy @ Uup.
* ``elas::tokens24_compress(Tensor a) -> (Tensor, Tensor)``: for ``a`` ``[M, F]``, the compressed
  aᵀ (``F x M``, 2:4 along tokens) and int32 ``[F]`` nonzeros that step drops per feature
  (``tokens24``; the ``masked-tokens24`` weight gradients).

With Triton importable, each op is a ``torch.library.triton_op``: CUDA tensors launch the Triton
kernels through ``wrap_triton`` (Inductor sees the kernels under ``torch.compile``); other devices
run the pure-PyTorch reference of ``cslt_layout`` (the same function body, so the fake/meta
implementation is the op itself). Without Triton the same names are ``custom_op``s running the
reference on every device, with fake implementations.

Shapes must satisfy ``cslt_layout.cslt_shape_ok`` (rows and cols multiples of 64, bf16/fp16),
otherwise the ops raise ``ValueError``; compressed inputs must pass ``cslt_layout.check_packed``.
"""
from __future__ import annotations

from typing import Optional

import torch

from elas_compile.modes import check_mode

from elas_compile.kernels import reference

from .compat import HAS_TRITON
from ..cslt_layout import (
    check_cslt_shape,
    check_packed,
    compress24_reference,
    decompress24_reference,
    packed_shape,
    relu2_sparsify24_backward_reference,
    relu2_sparsify24_compress_reference,
    unpack24_reference,
    values_numel,
)

__all__ = ["HAS_TRITON", "relu2_sparsify24_compress", "sparsify24_compress", "sparse24_decompress",
           "relu2_sparsify24_backward_expand", "relu2_sparsify24_backward_expand_packed", "tokens24_compress"]


def _rows_cols(x: torch.Tensor) -> tuple[int, int]:
    if x.dim() < 2:
        raise ValueError(f"expected at least 2 dims, got shape {tuple(x.shape)}")
    cols = x.shape[-1]
    return x.numel() // cols, cols


def _on_gpu(t: torch.Tensor) -> bool:
    return HAS_TRITON and t.device.type == "cuda"


if HAS_TRITON:
    from torch.library import triton_op, wrap_triton

    from . import relu2_sparsify as _fwd
    from . import sparse24_backward as _bwd
    from . import tokens24 as _tokens24

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
    check_packed(packed, rows, cols)
    if _on_gpu(packed):
        return _bwd.sparse24_decompress(packed, rows, cols, wrap=wrap_triton)
    return decompress24_reference(packed, rows, cols)


@_define("relu2_sparsify24_backward_expand")
def relu2_sparsify24_backward_expand(
    grad: torch.Tensor, packed: torch.Tensor, y: Optional[torch.Tensor], mode: str, rows: int, cols: int
) -> tuple[torch.Tensor, torch.Tensor]:
    check_mode(mode, where="elas.relu2_sparsify24_backward_expand")
    check_packed(packed, rows, cols)
    if _on_gpu(grad):
        return _bwd.relu2_sparsify24_backward(grad, packed, y, mode, rows, cols, wrap=wrap_triton, write_s=True)
    return (relu2_sparsify24_backward_reference(grad, packed, y, mode, rows, cols),
            decompress24_reference(packed, rows, cols))


def compress_at_pattern_reference(x: torch.Tensor, packed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``x`` (zero wherever ``packed``'s matrix is pruned) compressed with ``packed``'s pattern:
    x's values at the kept positions, then ``packed``'s metadata."""
    _, idx0, idx1 = unpack24_reference(packed, rows, cols)
    groups = x.reshape(rows, cols // 4, 4)
    vals = torch.stack([groups.gather(-1, idx0.unsqueeze(-1)), groups.gather(-1, idx1.unsqueeze(-1))], -1)
    nv = values_numel(rows, cols)
    return torch.cat([vals.reshape(-1), packed.reshape(-1)[nv:]]).view(packed.shape)


@_define("relu2_sparsify24_backward_expand_packed")
def relu2_sparsify24_backward_expand_packed(grad: torch.Tensor, packed: torch.Tensor, rows: int,
                                            cols: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_packed(packed, rows, cols)
    if _on_gpu(grad):
        return _bwd.relu2_sparsify24_backward(grad, packed, None, "masked", rows, cols, wrap=wrap_triton, write_s=True,
                                              write_dy_packed=True)
    dy = relu2_sparsify24_backward_reference(grad, packed, None, "masked", rows, cols)
    return dy, decompress24_reference(packed, rows, cols), compress_at_pattern_reference(dy, packed, rows, cols)


@_define("tokens24_compress")
def tokens24_compress(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.dim() != 2:
        raise ValueError(f"elas.tokens24_compress: expected a tokens x features matrix, got shape {tuple(a.shape)}")
    check_cslt_shape(a.shape[1], a.shape[0], a.dtype)
    if _on_gpu(a):
        return _tokens24.tokens24_compress(a, wrap=wrap_triton)
    return compress24_reference(a.t()), reference.tokens24_dropped(a)


if not HAS_TRITON:

    @relu2_sparsify24_backward_expand_packed.register_fake
    def _(grad, packed, rows, cols):
        return torch.empty_like(grad), packed.new_empty((rows, cols)), torch.empty_like(packed)

    @tokens24_compress.register_fake
    def _(a):
        return a.new_empty(packed_shape(a.shape[1], a.shape[0])), a.new_empty(a.shape[1], dtype=torch.int32)

    @relu2_sparsify24_backward_expand.register_fake
    def _(grad, packed, y, mode, rows, cols):
        return torch.empty_like(grad), packed.new_empty((rows, cols))

    @relu2_sparsify24_compress.register_fake
    def _(y):
        return y.new_empty(packed_shape(*_rows_cols(y)))

    @sparsify24_compress.register_fake
    def _(x):
        return x.new_empty(packed_shape(*_rows_cols(x)))

    @sparse24_decompress.register_fake
    def _(packed, rows, cols):
        return packed.new_empty((rows, cols))
