"""``elas::lowrank_relu2_sparse24_linear``: the fast ELAS FFN middle, one op with its own autograd.

    y   = h @ Uup^T                      (tokens x F)
    S   = sparsify24(relu(y) ** 2)       (written straight into the cuSPARSELt layout)
    out = S @ Vdown^T                    (cuSPARSELt sparse GEMM, sparse operand first)

y comes from cuBLAS and one Triton pass writes the compressed S. Autograd saves the compressed S
(values + metadata, 9/16 of a dense bf16 tensor) and the rank-r tensors, never a dense tokens x F
tensor in ``masked`` mode; ``ste`` must keep y (its gradient reaches pruned positions).
Backward: dS = g @ Vdown (cuBLAS); one Triton pass over dS and the compressed S writes
dy = dS * 2 sqrt(S) at kept positions (masked) or 2 dS relu(y) (ste), and the dense S, transient,
for dVdown = g^T @ S (cuBLAS: the reduction runs over tokens, along which S is not 2:4);
dh = dy @ Uup, dUup = dy^T @ h.

Experimental, off by default (measured slower on an H100, docs/benchmarks.md), read when the op
is traced: ``ELAS_FUSED_GEMM=up``, ``=grad`` or ``=1`` (both) computes y and/or dS with Triton GEMMs
that carry the 2:4 work in their epilogue (``elas::up_relu2_sparsify24_compress``,
``elas::grad_relu2_sparse24``: y and dS never reach memory);
``ELAS_DV_KERNEL=1`` computes dVdown with a Triton GEMM that expands S from
the compressed operand tile by tile (``elas::tn_sparse24_mm``), and the CUTLASS grad kernel then
writes dy alone (``elas::cutlass_grad_relu2_sparse24_dy``): 0.103 + 0.161 ms against 0.144 + 0.067
for the dense S and cuBLAS at 350m's FFN (H100, docs/kernels.md).

CUTLASS kernels (Hopper, optional library: ``kernels/cutlass_ext``): ``elas::cutlass_up_relu2_sparse24``
computes the compressed S in the up GEMM's epilogue (y never in memory), and in ``masked`` mode
``elas::cutlass_grad_relu2_sparse24`` computes dy and S in the dS GEMM's epilogue (dS never in
memory). ``ELAS_CUTLASS`` (read when the op is traced): ``auto`` (default) uses both kernels
wherever they can run (library built, sm_90, bf16, aligned shapes) and stays silent otherwise;
``up``, ``grad`` or ``1`` (both) ask for them and warn once why where they cannot run; ``0``
turns them off. Each measured faster than its split path (cuBLAS + Triton pass) on an H100
(docs/kernels.md).

The op is a ``triton_op`` so Inductor traces into it: the GEMMs, the Triton kernels and
``elas::cslt_mm`` all appear in the compiled graph. Token counts that are not a multiple of ROW_ALIGN (64)
are padded with zero rows (relu² of 0 is 0, so the padding never reaches the result).
"""
from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F

from elas_compile import cusparselt  # noqa: F401  (registers elas::cslt_mm)
from elas_compile.kernels import cutlass_ext
from elas_compile.kernels.cslt_layout import ROW_ALIGN

_SPARSE_MODES = ("masked", "ste")


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    return t if t.shape[0] == rows else F.pad(t, (0, 0, 0, rows - t.shape[0]))


def _padded(m: int) -> int:
    return -(-m // ROW_ALIGN) * ROW_ALIGN


def fused_gemms(which: str) -> bool:
    """Whether the ``up`` GEMM or the ``grad`` (dS) GEMM carries the 2:4 work in its epilogue."""
    value = os.environ.get("ELAS_FUSED_GEMM", "0")
    return value == "1" or which in value.split(",")


_cutlass_warned: set = set()


def use_cutlass(which: str, t: torch.Tensor, m: int, n: int, k: int) -> bool:
    """Whether the CUTLASS ``up`` or ``grad`` kernel computes this GEMM (see the module docstring)."""
    setting = os.environ.get("ELAS_CUTLASS", "auto")
    asked = setting == "1" or which in setting.split(",")
    if not asked and setting != "auto":
        return False
    reason = cutlass_ext.unavailable_reason(t.device) or cutlass_ext.shape_reason(m, n, k, t.dtype)
    if asked and reason is not None and reason not in _cutlass_warned:
        _cutlass_warned.add(reason)
        warnings.warn(f"ELAS_CUTLASS={setting} but the CUTLASS {which} kernel cannot run: {reason}; "
                      "using the Triton path", stacklevel=3)
    return reason is None


def dv_kernel() -> bool:
    """Whether dVdown = g^T @ S reads S compressed (else: expanded, then cuBLAS)."""
    return os.environ.get("ELAS_DV_KERNEL", "0") == "1"


@torch.library.triton_op("elas::lowrank_relu2_sparse24_linear", mutates_args=())
def lowrank_relu2_sparse24_linear(h: torch.Tensor, w_up_u: torch.Tensor, w_down_v: torch.Tensor,
                                  mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (out, packed S, y-or-empty); only ``out`` is meant for the caller."""
    if mode not in _SPARSE_MODES:
        raise ValueError(f"elas.lowrank_relu2_sparse24_linear: mode must be one of {_SPARSE_MODES}, got {mode!r}")
    r_in, f = w_up_u.shape[1], w_up_u.shape[0]
    h2 = h.reshape(-1, r_in)
    m = h2.shape[0]
    mp = _padded(m)
    if mode == "masked" and use_cutlass("up", h2, mp, f, r_in):
        packed = torch.ops.elas.cutlass_up_relu2_sparse24(_pad_rows(h2, mp), w_up_u)
        saved_y = h2.new_empty(0)
    elif fused_gemms("up"):
        packed, saved_y = torch.ops.elas.up_relu2_sparsify24_compress(_pad_rows(h2, mp), w_up_u, mode == "ste")
    else:
        y = _pad_rows(h2, mp) @ w_up_u.t()
        packed = torch.ops.elas.relu2_sparsify24_compress(y)
        saved_y = y if mode == "ste" else y.new_empty(0)
    out = torch.ops.elas.cslt_mm(packed, w_down_v.t(), mp, f)
    out = out[:m] if mp != m else out
    return out.reshape(*h.shape[:-1], w_down_v.shape[0]), packed, saved_y


def _setup(ctx, inputs, output) -> None:
    h, w_up_u, w_down_v, mode = inputs
    _, packed, saved_y = output
    ctx.mode = mode
    ctx.save_for_backward(h, w_up_u, w_down_v, packed, saved_y)


def _backward(ctx, grad_out, _grad_packed, _grad_y):
    h, w_up_u, w_down_v, packed, saved_y = ctx.saved_tensors
    r_in, f = w_up_u.shape[1], w_up_u.shape[0]
    h2 = h.reshape(-1, r_in)
    m = h2.shape[0]
    mp = _padded(m)
    g = _pad_rows(grad_out.reshape(-1, w_down_v.shape[0]), mp)
    y = saved_y if ctx.mode == "ste" else None
    use_dv_kernel = dv_kernel() and g.shape[1] % 16 == 0
    s = None  # the dense S, when the dy pass wrote it
    if ctx.mode == "masked" and use_cutlass("grad", g, mp, f, g.shape[1]):
        if use_dv_kernel:  # dy alone: dVdown reads the compressed S
            grad_y = torch.ops.elas.cutlass_grad_relu2_sparse24_dy(g, w_down_v, packed)
        else:
            grad_y, s = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w_down_v, packed)
    elif fused_gemms("grad"):  # experimental kernels (see the module docstring)
        grad_y = torch.ops.elas.grad_relu2_sparse24(g, w_down_v, packed, y, ctx.mode)
    elif use_dv_kernel:
        grad_y = torch.ops.elas.relu2_sparsify24_backward(g @ w_down_v, packed, y, ctx.mode, mp, f)
    else:  # dy and the transient dense S from one pass over dS and packed
        grad_y, s = torch.ops.elas.relu2_sparsify24_backward_expand(g @ w_down_v, packed, y, ctx.mode, mp, f)
    if use_dv_kernel:
        grad_w_down_v = torch.ops.elas.tn_sparse24_mm(g, packed, mp, f)
    else:
        grad_w_down_v = g.t() @ (s if s is not None else torch.ops.elas.sparse24_decompress(packed, mp, f))
    grad_h = (grad_y @ w_up_u)[:m].reshape(h.shape)
    grad_w_up_u = grad_y[:m].t() @ h2
    return grad_h, grad_w_up_u, grad_w_down_v, None


lowrank_relu2_sparse24_linear.register_autograd(_backward, setup_context=_setup)


def lowrank_relu2_sparse24(h: torch.Tensor, w_up_u: torch.Tensor, w_down_v: torch.Tensor, mode: str) -> torch.Tensor:
    """sparse24_linear(sparsify24(relu(h @ w_up_u^T) ** 2), w_down_v): the caller-facing output."""
    return torch.ops.elas.lowrank_relu2_sparse24_linear(h, w_up_u, w_down_v, mode)[0]
