"""The shape rules of the fast ELAS kernels, in one table.

The FFN middle ``h (M x r_in) -> y (M x F) -> S (2:4, compressed) -> S @ Vdown^T (M x r_out)``
runs on the compressed 2:4 operand of cuSPARSELt's layout (``cslt_layout``) and, on Hopper, on
the CUTLASS GEMMs. Their constraints:

- ``ROWS`` (tokens M): the layout's metadata comes in tiles of 64 rows. The FFN op pads M with
  zero rows (relu² of 0 is 0), so any token count works; the compressed ops themselves refuse
  other row counts.
- ``WIDTH`` (F): the layout's metadata tiles are 32 columns, the Triton and CUTLASS tiles 64.
- ``RANK`` (r_in, r_out): 16-byte-aligned bf16 rows for cuSPARSELt's dense operand and the
  CUTLASS GEMMs' K dimension.
- dtypes: bf16 or fp16 for cuSPARSELt and Triton; bf16 for the CUTLASS kernels.

``ELASConfig(ffn_width_multiple=128)`` and an int rank that is a multiple of 16 give these shapes.
"""
from __future__ import annotations

from typing import Optional

import torch

ROWS = 64
WIDTH = 64
RANK = 16
CUTLASS_K = 8  # the CUTLASS GEMMs' K (r_in of the up GEMM, r_out of the grad GEMM): 16-byte rows
SPARSE_DTYPES = (torch.bfloat16, torch.float16)
CUTLASS_DTYPES = (torch.bfloat16,)


def padded_rows(m: int) -> int:
    """``m`` rounded up to a multiple of :data:`ROWS`."""
    return -(-m // ROWS) * ROWS


def shape_blocker(width: int, rank_in: int, rank_out: int, dtype: torch.dtype, cutlass: bool = False) -> Optional[str]:
    """Why an FFN middle of these sizes cannot run on the sparse kernels (None when it can)."""
    dtypes = CUTLASS_DTYPES if cutlass else SPARSE_DTYPES
    if dtype not in dtypes:
        names = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        return f"dtype {dtype} (the kernels need {names}: use torch.autocast or .to(torch.bfloat16))"
    if width % WIDTH or rank_in % RANK or rank_out % RANK:
        return (f"shape: FFN width {width} must be a multiple of {WIDTH} and ranks {rank_in}, {rank_out} multiples "
                f"of {RANK} (ELASConfig(ffn_width_multiple=128) and an int rank that is a multiple of 16 give that)")
    return None
