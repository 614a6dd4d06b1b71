"""``elas::cslt_mm``: the 2:4 compressed operand times a dense matrix, on cuSPARSELt.

The algorithm is chosen once per (shape, dtype, layout) with ``torch._cslt_sparse_mm_search``
and cached (with the default algorithm cuSPARSELt is no faster than dense: ../docs/benchmarks.md).
The search runs on the first real call, which under ``mode="reduce-overhead"`` is CUDA graphs'
warm-up run, never inside a capture. Other devices decompress and multiply (reference).
"""
from __future__ import annotations

import os

import torch

from elas_compile.kernels import triton_ops  # noqa: F401  (registers the compress/decompress ops)

_ALG_CACHE: dict[tuple, int] = {}


def _key(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> tuple:
    return (rows, cols, b.shape[1], b.dtype, b.stride(), packed.device.index)


def algorithm_for(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> int:
    """The cached cuSPARSELt algorithm id for this product (searched on first use).

    ``ELAS_CSLT_ALG=<id>`` forces an algorithm (for benchmarks and bisecting)."""
    forced = os.environ.get("ELAS_CSLT_ALG")
    if forced is not None:
        return int(forced)
    key = _key(packed, b, rows, cols)
    if key not in _ALG_CACHE:
        _ALG_CACHE[key] = int(torch._cslt_sparse_mm_search(packed, b))
    return _ALG_CACHE[key]


def valid_algorithms(packed: torch.Tensor, b: torch.Tensor, limit: int = 64) -> list[int]:
    """The cuSPARSELt algorithm ids ``torch._cslt_sparse_mm(packed, b, alg_id=...)`` accepts here
    (ids are consecutive from 0; the set depends on dtype and on b's layout)."""
    ids = []
    for alg in range(limit):
        try:
            torch._cslt_sparse_mm(packed, b, alg_id=alg)
            torch.cuda.synchronize()
        except RuntimeError:
            break
        ids.append(alg)
    return ids


@torch.library.custom_op("elas::cslt_mm", mutates_args=())
def cslt_mm(packed: torch.Tensor, b: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A @ b where A (rows x cols, 2:4 sparse) is given compressed (``packed``); b is cols x N."""
    if packed.is_cuda:
        return torch._cslt_sparse_mm(packed, b, alg_id=algorithm_for(packed, b, rows, cols))
    dense = torch.ops.elas.sparse24_decompress(packed, rows, cols)
    return dense @ b


@cslt_mm.register_fake
def _cslt_mm_fake(packed, b, rows, cols):
    if b.shape[0] != cols:
        raise ValueError(f"elas.cslt_mm: A has {cols} columns but b has {b.shape[0]} rows")
    return b.new_empty((rows, b.shape[1]))
