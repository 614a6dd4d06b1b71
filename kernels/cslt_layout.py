"""Pure-PyTorch reference of the cuSPARSELt compressed 2:4 operand (what ``torch._cslt_compress``
writes and ``torch._cslt_sparse_mm(packed, dense_B)`` reads), and reference ELAS 2:4 ops on it.

Layout, for a row-major ``rows x cols`` half-precision (bf16 / fp16) matrix A that is 2:4 sparse
along its rows (groups of 4 consecutive columns):

* one buffer of ``rows * cols * 9 // 16`` elements of A's dtype, returned with shape
  ``(rows, 9 * cols // 16)`` (the 2-D shape of ``torch._cslt_compress``; ``_cslt_sparse_mm`` reads
  ``m`` from ``packed.size(0)``). The 2-D shape is only a view of a flat buffer.
* values: the first ``rows * cols // 2`` elements, row-major ``rows x cols/2``: for each group of 4
  the two kept elements, lower column first.
* metadata: the next ``rows * cols // 16`` elements read as int16. Each int16 word describes one row
  and 16 consecutive columns (4 groups): group ``j`` is the nibble at bits ``4j..4j+3``, holding
  ``idx0 | idx1 << 2`` with ``idx0 < idx1`` the kept positions (0..3) in the group. The words are
  permuted (the layout PyTorch calls ``MetadataCuSparseLt`` in
  aten/src/ATen/native/sparse/cuda/SparseSemiStructuredTile.cu): the matrix is cut into 128 x 64
  super-tiles stored column-major (super-tile (R, C) at word ``(C * rows/128 + R) * 512``); each
  is four-by-two 32 x 32 tiles, tile (a, kc) at ``kc * 256 + a * 64``; inside a 32 x 32 tile the
  word of (row ``16 * rb + 8 * hi + q``, 16-column chunk ``cb``) is at ``2 * (4 * q + 2 * rb + cb) +
  hi``. See :func:`meta_word_offsets`.

Shape constraints (:func:`cslt_shape_ok`): 2-D, dtype bf16 or fp16, ``rows % 128 == 0`` and
``cols % 128 == 0`` (the permutation works in 128-row super-tiles; PyTorch's own writer of this
layout checks the same, and cuSPARSELt pads smaller matrices differently). Only these shapes are
produced or accepted here; callers pad or fall back to the dense path otherwise.

Groups with fewer than two nonzeros: the reference (and the Triton kernels) pick the kept
positions with the ELAS rule of :mod:`elas_compile.kernels.reference` (rank by ``|x|``, lower index
wins ties), so an all-zero group is encoded as positions (0, 1) with zero values. cuSPARSELt may
encode such groups differently; products are the same.
"""
from __future__ import annotations

import torch

from .reference import relu2, sparsify24_mask

__all__ = [
    "SUPPORTED_DTYPES",
    "ROW_ALIGN",
    "COL_ALIGN",
    "cslt_shape_ok",
    "check_cslt_shape",
    "packed_shape",
    "values_numel",
    "meta_numel",
    "meta_word_offsets",
    "compress24_reference",
    "decompress24_reference",
    "unpack24_reference",
    "relu2_sparsify24_compress_reference",
    "relu2_sparsify24_backward_reference",
    "relu2_sparsify24_backward_compressed_reference",
]

SUPPORTED_DTYPES = (torch.bfloat16, torch.float16)
ROW_ALIGN = 128
COL_ALIGN = 128


def cslt_shape_ok(rows: int, cols: int, dtype: torch.dtype) -> bool:
    """True when a ``rows x cols`` matrix of ``dtype`` can use the compressed layout of this module
    (and hence the ``elas::`` compressed ops and ``torch._cslt_sparse_mm``)."""
    return (
        dtype in SUPPORTED_DTYPES
        and rows > 0
        and cols > 0
        and rows % ROW_ALIGN == 0
        and cols % COL_ALIGN == 0
    )


def check_cslt_shape(rows: int, cols: int, dtype: torch.dtype) -> None:
    if not cslt_shape_ok(rows, cols, dtype):
        raise ValueError(
            f"cuSPARSELt 2:4 layout needs a bf16/fp16 matrix with rows % {ROW_ALIGN} == 0 and "
            f"cols % {COL_ALIGN} == 0, got {rows} x {cols} of {dtype}"
        )


def packed_shape(rows: int, cols: int) -> tuple[int, int]:
    """Shape of the compressed buffer (as ``torch._cslt_compress`` returns it)."""
    return rows, cols * 9 // 16


def values_numel(rows: int, cols: int) -> int:
    return rows * cols // 2


def meta_numel(rows: int, cols: int) -> int:
    return rows * cols // 16


def meta_word_offsets(rows: int, cols: int, device=None) -> torch.Tensor:
    """int64 ``[rows, cols // 16]``: index, inside the metadata region (in int16 words), of the word
    that holds row ``r`` and columns ``16 * c .. 16 * c + 15``."""
    r = torch.arange(rows, device=device).view(-1, 1)
    col = 16 * torch.arange(cols // 16, device=device).view(1, -1)
    return _meta_offset_formula(r, col, rows)


def _meta_offset_formula(r, col, rows):
    """Offset formula shared (textually) with the Triton kernels; works on tensors of any shape."""
    rr = r % 128
    cc = col % 64
    off = ((col // 64) * (rows // 128) + r // 128) * 512
    off = off + (cc // 32) * 256 + (rr // 32) * 64
    r16 = rr % 16
    off = off + 2 * ((r16 % 8) * 4 + ((rr % 32) // 16) * 2 + (cc % 32) // 16) + r16 // 8
    return off


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        raise ValueError(f"expected a matrix, got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-1])


def compress24_reference(x: torch.Tensor) -> torch.Tensor:
    """Compress ``x`` (rows x cols, bf16/fp16) into the cuSPARSELt layout, keeping in every group
    of 4 the two entries that :func:`reference.sparsify24_mask` keeps. For an already 2:4-sparse
    ``x`` (e.g. ``reference.sparsify24(y)``) that is exactly its nonzeros."""
    x = _as_2d(x)
    rows, cols = x.shape
    check_cslt_shape(rows, cols, x.dtype)
    keep = sparsify24_mask(x).view(rows, cols // 4, 4)
    pos = torch.arange(4, device=x.device)
    # keep has exactly two True per group: idx0 = first kept, idx1 = last kept.
    idx0 = torch.where(keep, pos, 4).amin(-1)
    idx1 = torch.where(keep, pos, -1).amax(-1)
    g = x.reshape(rows, cols // 4, 4)
    vals = torch.stack(
        [g.gather(-1, idx0.unsqueeze(-1)).squeeze(-1), g.gather(-1, idx1.unsqueeze(-1)).squeeze(-1)],
        dim=-1,
    ).reshape(-1)
    nib = (idx0 | (idx1 << 2)).to(torch.int32).view(rows, cols // 16, 4)
    word = (nib << torch.tensor([0, 4, 8, 12], device=x.device, dtype=torch.int32)).sum(-1)
    word = torch.where(word >= 32768, word - 65536, word).to(torch.int16)  # two's complement
    meta = torch.empty(rows * cols // 16, dtype=torch.int16, device=x.device)
    meta[meta_word_offsets(rows, cols, x.device).reshape(-1)] = word.reshape(-1)
    flat = torch.cat([vals, meta.view(x.dtype)])
    return flat.view(packed_shape(rows, cols))


def unpack24_reference(packed: torch.Tensor, rows: int, cols: int):
    """Split a compressed buffer into ``(values [rows, cols/4, 2], idx0, idx1 [rows, cols/4])``."""
    check_cslt_shape(rows, cols, packed.dtype)
    flat = packed.reshape(-1)
    nv, nm = values_numel(rows, cols), meta_numel(rows, cols)
    if flat.numel() < nv + nm:
        raise ValueError(f"packed buffer has {flat.numel()} elements, needs {nv + nm}")
    vals = flat[:nv].view(rows, cols // 4, 2)
    meta = flat[nv : nv + nm].view(torch.int16)
    word = meta[meta_word_offsets(rows, cols, packed.device)].to(torch.int32) & 0xFFFF
    shifts = torch.tensor([0, 4, 8, 12], device=packed.device, dtype=torch.int32)
    nib = ((word.unsqueeze(-1) >> shifts) & 0xF).reshape(rows, cols // 4)
    return vals, (nib & 3).long(), (nib >> 2).long()


def decompress24_reference(packed: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Dense ``rows x cols`` matrix represented by a compressed buffer."""
    vals, idx0, idx1 = unpack24_reference(packed, rows, cols)
    pos = torch.arange(4, device=packed.device)
    zero = torch.zeros((), dtype=packed.dtype, device=packed.device)
    dense = torch.where(
        pos == idx0.unsqueeze(-1),
        vals[..., 0:1],
        torch.where(pos == idx1.unsqueeze(-1), vals[..., 1:2], zero),
    )
    return dense.reshape(rows, cols)


def relu2_sparsify24_compress_reference(y: torch.Tensor) -> torch.Tensor:
    """``compress24(sparsify24(relu(y) ** 2))`` for ``y`` of shape ``[..., F]``."""
    return compress24_reference(relu2(_as_2d(y)))


def _kept_dense(packed: torch.Tensor, rows: int, cols: int):
    """(dense kept values, kept mask) from a compressed buffer."""
    vals, idx0, idx1 = unpack24_reference(packed, rows, cols)
    pos = torch.arange(4, device=packed.device)
    kept = ((pos == idx0.unsqueeze(-1)) | (pos == idx1.unsqueeze(-1))).reshape(rows, cols)
    return decompress24_reference(packed, rows, cols), kept


def relu2_sparsify24_backward_reference(
    grad: torch.Tensor, packed: torch.Tensor, y: torch.Tensor | None, mode: str, rows: int, cols: int
) -> torch.Tensor:
    """Gradient wrt ``y`` of ``relu2_sparsify24`` (see ``reference.relu2_sparsify24_backward``).

    ``masked`` without ``y``: ``2 * grad * sqrt(v)`` at kept positions, ``v`` the kept value read
    from ``packed`` (sqrt(v) equals relu(y) up to the rounding of v: relative 2^-9 in bf16).
    ``masked`` with ``y``: exactly the reference, ``2 * grad * relu(y)`` where kept and ``v != 0``.
    ``ste`` / ``dense``: ``2 * grad * relu(y)`` (needs ``y``; ``packed`` unused).
    Computed in float32, rounded once to ``grad.dtype``."""
    shape = grad.shape
    g = _as_2d(grad).float()
    if mode in ("ste", "dense"):
        if y is None:
            raise ValueError(f"mode {mode!r} needs y")
        return (2 * g * torch.relu(_as_2d(y).float())).to(grad.dtype).view(shape)
    if mode != "masked":
        raise ValueError(f"unknown mode {mode!r}")
    v, kept = _kept_dense(packed, rows, cols)
    v = v.float()
    if y is None:
        d = torch.where(kept, 2 * g * torch.sqrt(v), torch.zeros((), device=g.device))
    else:
        d = torch.where(kept & (v != 0), 2 * g * torch.relu(_as_2d(y).float()), torch.zeros((), device=g.device))
    return d.to(grad.dtype).view(shape)


def relu2_sparsify24_backward_compressed_reference(
    grad: torch.Tensor, packed: torch.Tensor, rows: int, cols: int
) -> torch.Tensor:
    """Masked-mode ``dy1`` (``2 * grad * sqrt(v)`` at kept positions) written in the compressed
    layout, with the same metadata (sparsity pattern) as ``packed``."""
    vals, idx0, idx1 = unpack24_reference(packed, rows, cols)
    g = _as_2d(grad).reshape(rows, cols // 4, 4).float()
    g0 = g.gather(-1, idx0.unsqueeze(-1)).squeeze(-1)
    g1 = g.gather(-1, idx1.unsqueeze(-1)).squeeze(-1)
    v = vals.float()
    d = torch.stack([2 * g0 * torch.sqrt(v[..., 0]), 2 * g1 * torch.sqrt(v[..., 1])], dim=-1)
    out = packed.reshape(-1).clone()
    out[: values_numel(rows, cols)] = d.to(packed.dtype).reshape(-1)
    return out.view(packed_shape(rows, cols))
