"""``elas::lowrank_relu2_sparse24_linear``: the fast ELAS FFN middle, one op with its own autograd.

    y   = h @ Uup^T                      (tokens x F)
    S   = sparsify24(relu(y) ** 2)       (written straight into the cuSPARSELt layout)
    out = S @ Vdown^T                    (cuSPARSELt sparse GEMM, sparse operand first)

Its ``backend`` argument (resolved by ``elas_compile.backends``) says which kernels compute it:

- ``triton``: y from cuBLAS, one Triton pass writes the compressed S. Backward: dS = g @ Vdown
  (cuBLAS); one Triton pass over dS and the compressed S writes dy = dS * 2 sqrt(S) at kept
  positions (masked) or 2 dS relu(y) (ste), and the dense S, transient, for dVdown = g^T @ S
  (cuBLAS: the reduction runs over tokens, along which S is not 2:4); dh = dy @ Uup, dUup = dy^T @ h.
- ``cutlass`` (Hopper, masked modes): the up GEMM's epilogue computes relu², the 2:4 selection
  and the compressed S (y never reaches memory); the dS GEMM's epilogue computes dy and S (dS never
  reaches memory); the rest as above.

- ``triton-sparse-dx`` (masked modes): ``triton`` whose backward pass also writes dy compressed
  (its kept values and S's metadata: dy is zero wherever S is pruned), so dh = dy @ Uup runs on
  cuSPARSELt with the sparse operand first; exact, one more M x F x 9/16 write.

``masked-tokens24`` computes the masked forward and dh; its two weight gradients take Sᵀ and dyᵀ
2:4 along tokens on cuSPARSELt, the ``dense_fraction`` densest feature columns dense
(``elas_compile.tokens24``).

Autograd saves the compressed S (values + metadata, 9/16 of a dense bf16 tensor) and the rank-r
tensors, never a dense tokens x F tensor in ``masked`` mode; ``ste`` must keep y (its gradient
reaches pruned positions).

The op is a ``triton_op`` so Inductor traces into it: the GEMMs, the Triton kernels and
``elas::cslt_mm`` all appear in the compiled graph. Token counts that are not a multiple of
``alignment.ROWS`` (64) are padded with zero rows (relu² of 0 is 0, so the padding never reaches
the result).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from elas_compile import cusparselt  # noqa: F401  (registers elas::cslt_mm)
from elas_compile.backends import FUSED_BACKENDS, SPARSE_DX
from elas_compile.kernels.cutlass import ops as cutlass_ext  # noqa: F401  (registers the CUTLASS ops)
from elas_compile.kernels.alignment import padded_rows
from elas_compile import tokens24
from elas_compile.modes import (DEFAULT_WGRAD_DENSE_FRACTION, MASKED_MODES, SPARSE_MODES, Mode, activation_grad_mode,
                                check_dense_fraction, check_mode)


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    return t if t.shape[0] == rows else F.pad(t, (0, 0, 0, rows - t.shape[0]))


def _check_args(backend: str, mode: str, dense_fraction: float) -> None:
    where = "elas.lowrank_relu2_sparse24_linear"
    check_mode(mode, SPARSE_MODES, where=where)
    check_dense_fraction(dense_fraction, where)
    if backend not in FUSED_BACKENDS:
        raise ValueError(f"{where}: backend must be one of {FUSED_BACKENDS}, got {backend!r}")
    if backend in ("cutlass", SPARSE_DX) and mode not in MASKED_MODES:
        raise ValueError(f"{where}: the {backend} backend computes the masked backward only (masked, "
                         f"masked-tokens24), got mode {mode!r}")


@torch.library.triton_op("elas::lowrank_relu2_sparse24_linear", mutates_args=())
def lowrank_relu2_sparse24_linear(h: torch.Tensor, w_up_u: torch.Tensor, w_down_v: torch.Tensor, mode: str,
                                  backend: str, dense_fraction: float = DEFAULT_WGRAD_DENSE_FRACTION
                                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (out, packed S, y-or-empty); only ``out`` is meant for the caller.
    ``dense_fraction``: the share of feature columns with dense weight gradients in
    ``masked-tokens24`` mode (``ELASConfig.wgrad_dense_fraction``); other modes ignore it."""
    _check_args(backend, mode, dense_fraction)
    r_in, f = w_up_u.shape[1], w_up_u.shape[0]
    h2 = h.reshape(-1, r_in)
    m = h2.shape[0]
    mp = padded_rows(m)
    if backend == "cutlass":
        packed = torch.ops.elas.cutlass_up_relu2_sparse24(_pad_rows(h2, mp), w_up_u)
        saved_y = h2.new_empty(0)
    else:
        y = _pad_rows(h2, mp) @ w_up_u.t()
        packed = torch.ops.elas.relu2_sparsify24_compress(y)
        saved_y = y if mode == "ste" else y.new_empty(0)
    out = torch.ops.elas.cslt_mm(packed, w_down_v.t(), mp, f)
    out = out[:m] if mp != m else out
    return out.reshape(*h.shape[:-1], w_down_v.shape[0]), packed, saved_y


def _setup(ctx, inputs, output) -> None:
    h, w_up_u, w_down_v, mode, backend = inputs[:5]
    _, packed, saved_y = output
    ctx.mode, ctx.backend = mode, backend
    ctx.dense_fraction = inputs[5] if len(inputs) > 5 else DEFAULT_WGRAD_DENSE_FRACTION
    ctx.save_for_backward(h, w_up_u, w_down_v, packed, saved_y)


def _backward(ctx, grad_out, _grad_packed, _grad_y):
    h, w_up_u, w_down_v, packed, saved_y = ctx.saved_tensors
    r_in, f = w_up_u.shape[1], w_up_u.shape[0]
    h2 = h.reshape(-1, r_in)
    m = h2.shape[0]
    mp = padded_rows(m)
    g = _pad_rows(grad_out.reshape(-1, w_down_v.shape[0]), mp)
    if ctx.backend == "cutlass":  # dy and S from the dS GEMM's epilogue
        grad_y, s = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w_down_v, packed)
    elif ctx.backend == SPARSE_DX:  # the same pass also writes dy compressed: dh on cuSPARSELt
        grad_y, s, grad_y_packed = torch.ops.elas.relu2_sparsify24_backward_expand_packed(g @ w_down_v, packed, mp, f)
    else:  # dy and the transient dense S from one pass over dS and packed
        y = saved_y if ctx.mode == "ste" else None
        grad_y, s = torch.ops.elas.relu2_sparsify24_backward_expand(g @ w_down_v, packed, y,
                                                                    activation_grad_mode(ctx.mode), mp, f)
    if ctx.backend == SPARSE_DX:
        grad_h = torch.ops.elas.cslt_mm(grad_y_packed, w_up_u, mp, f)[:m].reshape(h.shape)
    else:
        grad_h = (grad_y @ w_up_u)[:m].reshape(h.shape)
    if ctx.mode == Mode.MASKED_TOKENS24.value:  # padded tokens are zero rows of S and dy: exact groups
        grad_w_down_v = tokens24.weight_grad(s, g, ctx.dense_fraction).t()
        grad_w_up_u = tokens24.weight_grad(grad_y, _pad_rows(h2, mp), ctx.dense_fraction)
    else:
        grad_w_down_v = g.t() @ s
        grad_w_up_u = grad_y[:m].t() @ h2
    return grad_h, grad_w_up_u, grad_w_down_v, None, None, None


lowrank_relu2_sparse24_linear.register_autograd(_backward, setup_context=_setup)


def lowrank_relu2_sparse24(h: torch.Tensor, w_up_u: torch.Tensor, w_down_v: torch.Tensor, mode: str,
                           backend: str = "triton", dense_fraction: float = DEFAULT_WGRAD_DENSE_FRACTION) -> torch.Tensor:
    """sparse24_linear(sparsify24(relu(h @ w_up_u^T) ** 2), w_down_v): the caller-facing output."""
    return torch.ops.elas.lowrank_relu2_sparse24_linear(h, w_up_u, w_down_v, mode, backend, dense_fraction)[0]
