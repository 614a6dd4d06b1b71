"""Pure-PyTorch reference of the cuSPARSELt compressed 2:4 operand (what ``torch._cslt_compress``
writes and ``torch._cslt_sparse_mm(packed, dense_B)`` reads), and reference ELAS 2:4 ops on it.

Layout, for a row-major ``rows x cols`` half-precision (bf16 / fp16) matrix A that is 2:4 sparse
along its rows (groups of 4 consecutive columns), as measured on an H100 (sm_90) with
torch 2.11.0+cu130 / cuSPARSELt 0.8.0 (``torch._cslt_compress`` dumps, see docs/kernels.md):

* one buffer of ``rows * cols * 9 // 16`` elements of A's dtype, with the 2-D shape
  ``(rows, 9 * cols // 16)`` that ``torch._cslt_compress`` returns (``_cslt_sparse_mm`` reads ``m``
  from ``packed.size(0)``); the 2-D shape is only a view of a flat buffer.
* values: the first ``rows * cols // 2`` elements, row-major ``rows x cols/2``: for each group of 4
  the two kept elements, lower column first.
* metadata: the next ``rows * cols // 16`` elements, read as 4-bit nibbles (nibble ``j`` of a 16-bit
  word = bits ``4j..4j+3``), one per group: ``idx0 | idx1 << 2``, ``idx0 < idx1`` the kept positions.
  Nibbles are ordered in tiles of 64 rows x 32 columns (8 groups), tiles row-major (tile (R, C) at
  nibble ``(R * cols/32 + C) * 512``); inside a tile the nibble of (row ``r``, group ``g``) sits at
  the index whose bits are, low to high: r3, g2, g0, g1, r0, r1, r2, r4, r5. So one 16-bit word holds
  rows r, r+8 x groups g, g+4 (``word = n(r,g) | n(r+8,g) << 4 | n(r,g+4) << 8 | n(r+8,g+4) << 12``)
  and is at ``tile * 128 + (g & 3) + 4 * (r & 7) + 32 * ((r >> 4) & 3)``.
  (PyTorch's ``MetadataCuSparseLt`` writer in aten/src/ATen/native/sparse/cuda/
  SparseSemiStructuredTile.cu, reverse-engineered on sm_80, writes another layout, available here as
  ``layout="sm80_pytorch"`` for diagnostics; on the H100 above it multiplies wrongly.)

Shape constraints (:func:`cslt_shape_ok`): 2-D, bf16 or fp16, ``rows % 64 == 0`` (metadata comes
in 64-row tiles; cuSPARSELt pads other row counts and the buffer is larger than 9/16) and
``cols % 64 == 0``. Callers pad, or fall back to the dense path otherwise. On a CUDA device the
layout is also checked once against ``torch._cslt_compress`` (:func:`cslt_layout_verified`), so
another GPU generation or cuSPARSELt version that writes a different layout makes
``cslt_shape_ok(..., device=...)`` false instead of producing wrong products.

Groups with fewer than two nonzeros: the reference (and the Triton kernels) pick the kept
positions with the ELAS rule of :mod:`elas_compile.kernels.reference` (rank by ``|x|``, lower index
wins ties), so an all-zero group is encoded as positions (0, 1) with zero values. cuSPARSELt may
encode such groups differently (it wrote (1, 3) for a group with only position 1 set); products
are the same.
"""
from __future__ import annotations

import torch

from elas_compile.modes import check_mode

from .alignment import ROWS, SPARSE_DTYPES, WIDTH
from .reference import relu2, sparsify24_mask

__all__ = [
    "SUPPORTED_DTYPES",
    "LAYOUTS",
    "cslt_shape_ok",
    "check_cslt_shape",
    "check_packed",
    "cslt_layout_verified",
    "packed_shape",
    "values_numel",
    "meta_numel",
    "meta_nibble_index",
    "compress24_reference",
    "decompress24_reference",
    "unpack24_reference",
    "relu2_sparsify24_compress_reference",
    "relu2_sparsify24_backward_reference",
]

SUPPORTED_DTYPES = SPARSE_DTYPES
LAYOUTS = ("sm90", "sm80_pytorch")
_ALIGN = {"sm90": (ROWS, WIDTH), "sm80_pytorch": (128, 128)}
_verified: dict = {}


def cslt_layout_verified(device) -> bool:
    """Whether ``torch._cslt_compress`` on CUDA ``device`` writes the ``sm90`` layout of this
    module (checked once per device on a random 128 x 128 bf16 matrix; false without cuSPARSELt)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device not in _verified:
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        try:
            with unset_fake_temporarily(), torch.no_grad():
                g = torch.Generator(device=device).manual_seed(1234)
                x = torch.randn(128, 128, device=device, generator=g).to(torch.bfloat16)
                x = torch.where(sparsify24_mask(x), x, torch.zeros((), dtype=x.dtype, device=device))
                ok = torch.equal(
                    torch._cslt_compress(x).reshape(-1).view(torch.int16),
                    compress24_reference(x).reshape(-1).view(torch.int16),
                )
        except Exception:  # no cuSPARSELt, unsupported GPU, ...
            ok = False
        _verified[device] = ok
    return _verified[device]


def cslt_shape_ok(rows: int, cols: int, dtype: torch.dtype, device=None) -> bool:
    """True when a ``rows x cols`` matrix of ``dtype`` can use the compressed layout (the
    ``elas::`` compressed ops and ``torch._cslt_sparse_mm``). With a CUDA ``device``, also requires
    that cuSPARSELt on that device writes this layout (:func:`cslt_layout_verified`)."""
    ok = (
        dtype in SUPPORTED_DTYPES
        and rows > 0
        and cols > 0
        and rows % ROWS == 0
        and cols % WIDTH == 0
    )
    if ok and device is not None and torch.device(device).type == "cuda":
        ok = cslt_layout_verified(device)
    return ok


def check_cslt_shape(rows: int, cols: int, dtype: torch.dtype, layout: str = "sm90") -> None:
    ra, ca = _ALIGN[layout]
    if not (dtype in SUPPORTED_DTYPES and rows > 0 and cols > 0 and rows % ra == 0 and cols % ca == 0):
        raise ValueError(
            f"cuSPARSELt 2:4 layout needs a bf16/fp16 matrix with rows % {ra} == 0 and "
            f"cols % {ca} == 0, got {rows} x {cols} of {dtype}"
        )


def check_packed(packed: torch.Tensor, rows: int, cols: int) -> None:
    """Raise ValueError unless ``packed`` is a contiguous compressed buffer of a ``rows x cols``
    matrix: ``packed_shape(rows, cols)``, bf16/fp16 (what every reader of the layout assumes)."""
    check_cslt_shape(rows, cols, packed.dtype)
    if tuple(packed.shape) != packed_shape(rows, cols) or not packed.is_contiguous():
        raise ValueError(f"a compressed 2:4 buffer of a {rows} x {cols} matrix is a contiguous "
                         f"{packed_shape(rows, cols)} tensor, got {tuple(packed.shape)} (contiguous: "
                         f"{packed.is_contiguous()})")


def packed_shape(rows: int, cols: int) -> tuple[int, int]:
    """Shape of the compressed buffer (as ``torch._cslt_compress`` returns it)."""
    return rows, cols * 9 // 16


def values_numel(rows: int, cols: int) -> int:
    return rows * cols // 2


def meta_numel(rows: int, cols: int) -> int:
    return rows * cols // 16


def meta_nibble_index(rows: int, cols: int, device=None, layout: str = "sm90") -> torch.Tensor:
    """int64 ``[rows, cols // 4]``: index of the metadata nibble of (row, group) in the metadata
    region read as ``rows * cols // 4`` nibbles (word ``i // 4``, bits ``4 * (i % 4)``)."""
    r = torch.arange(rows, device=device).view(-1, 1)
    g = torch.arange(cols // 4, device=device).view(1, -1)
    if layout == "sm90":
        rr, gg = r % 64, g % 8
        inner = ((rr >> 3) & 1) | (((gg >> 2) & 1) << 1) | ((gg & 3) << 2) | ((rr & 7) << 4) | (((rr >> 4) & 3) << 7)
        return ((r // 64) * (cols // 32) + g // 8) * 512 + inner
    if layout == "sm80_pytorch":
        # PyTorch's MetadataCuSparseLt: one word per (row, 16 columns), 128 x 64 super-tiles
        # column-major, 32 x 32 tiles, then a warp-shuffle order inside the tile.
        col = 16 * (g // 4)
        rr, cc = r % 128, col % 64
        word = ((col // 64) * (rows // 128) + r // 128) * 512 + (cc // 32) * 256 + (rr // 32) * 64
        r16 = rr % 16
        word = word + 2 * ((r16 % 8) * 4 + ((rr % 32) // 16) * 2 + (cc % 32) // 16) + r16 // 8
        return word * 4 + g % 4
    raise ValueError(f"unknown layout {layout!r}")


def _as_2d(x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2:
        raise ValueError(f"expected a matrix, got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[-1])


_SHIFTS = (0, 4, 8, 12)


def compress24_reference(x: torch.Tensor, layout: str = "sm90") -> torch.Tensor:
    """Compress ``x`` (rows x cols, bf16/fp16) into the cuSPARSELt layout, keeping in every group
    of 4 the two entries that :func:`reference.sparsify24_mask` keeps. For an already 2:4-sparse
    ``x`` (e.g. ``reference.sparsify24(y)``) that is exactly its nonzeros."""
    x = _as_2d(x)
    rows, cols = x.shape
    check_cslt_shape(rows, cols, x.dtype, layout)
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
    nib = torch.empty(rows * cols // 4, dtype=torch.int32, device=x.device)
    nib[meta_nibble_index(rows, cols, x.device, layout).reshape(-1)] = (idx0 | (idx1 << 2)).to(torch.int32).reshape(-1)
    shifts = torch.tensor(_SHIFTS, device=x.device, dtype=torch.int32)
    word = (nib.view(-1, 4) << shifts).sum(-1)
    word = torch.where(word >= 32768, word - 65536, word).to(torch.int16)  # two's complement
    flat = torch.cat([vals, word.view(x.dtype)])
    return flat.view(packed_shape(rows, cols))


def unpack24_reference(packed: torch.Tensor, rows: int, cols: int, layout: str = "sm90"):
    """Split a compressed buffer into ``(values [rows, cols/4, 2], idx0, idx1 [rows, cols/4])``."""
    check_cslt_shape(rows, cols, packed.dtype, layout)
    flat = packed.reshape(-1)
    nv, nm = values_numel(rows, cols), meta_numel(rows, cols)
    if flat.numel() < nv + nm:
        raise ValueError(f"packed buffer has {flat.numel()} elements, needs {nv + nm}")
    vals = flat[:nv].view(rows, cols // 4, 2)
    word = flat[nv : nv + nm].view(torch.int16).to(torch.int32) & 0xFFFF
    shifts = torch.tensor(_SHIFTS, device=packed.device, dtype=torch.int32)
    nibs = ((word.unsqueeze(-1) >> shifts) & 0xF).reshape(-1)
    nib = nibs[meta_nibble_index(rows, cols, packed.device, layout)]
    return vals, (nib & 3).long(), (nib >> 2).long()


def decompress24_reference(packed: torch.Tensor, rows: int, cols: int, layout: str = "sm90") -> torch.Tensor:
    """Dense ``rows x cols`` matrix represented by a compressed buffer."""
    vals, idx0, idx1 = unpack24_reference(packed, rows, cols, layout)
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

    ``masked`` (no ``y``): ``2 * grad * sqrt(v)`` at kept positions, ``v`` the kept value read
    from ``packed`` (sqrt(v) equals relu(y) up to the rounding of v: relative 2^-9 in bf16).
    ``ste`` / ``dense``: ``2 * grad * relu(y)`` (needs ``y``; ``packed`` unused).
    Computed in float32, rounded once to ``grad.dtype``."""
    shape = grad.shape
    g = _as_2d(grad).float()
    if mode in ("ste", "dense"):
        if y is None:
            raise ValueError(f"mode {mode!r} needs y")
        return (2 * g * torch.relu(_as_2d(y).float())).to(grad.dtype).view(shape)
    check_mode(mode, where="relu2_sparsify24_backward_reference")
    if y is not None:
        raise ValueError("masked mode reads relu(y) from the kept values of packed: pass y=None")
    v, kept = _kept_dense(packed, rows, cols)
    d = torch.where(kept, 2 * g * torch.sqrt(v.float()), torch.zeros((), device=g.device))
    return d.to(grad.dtype).view(shape)
