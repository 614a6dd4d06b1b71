"""Which kernels compute an ELAS FFN middle: the one selection point.

``ELASConfig.kernels`` asks for a backend; :func:`resolve_backend` turns that request, the device,
the dtype and the shapes into the backend that can run here, with the reason. The compiler pass
calls it once per MLP it compiles and passes the result to the fused op as an argument, so the
choice is part of the graph and of every compile-cache key; :func:`elas_compile.explain` calls
the same function to show it.

| backend     | forward                                  | backward (masked)                    | needs |
|-------------|------------------------------------------|--------------------------------------|-------|
| ``cutlass`` | up GEMM with relu² + 2:4 + compress in its epilogue; cuSPARSELt down GEMM | dS GEMM with dy and S in its epilogue | sm_90, bf16, the CUTLASS library, ``masked`` |
| ``triton``  | cuBLAS up GEMM, one Triton pass to the compressed S; cuSPARSELt down GEMM | cuBLAS dS, one Triton pass to dy and S | CUDA sm_80+, cuSPARSELt, Triton, bf16/fp16 |
| ``reference`` | the readable ops (pure PyTorch, dense 2:4 mask) | autograd of the same | anything |

``triton-sparse-dx`` is ``triton`` whose backward pass also writes dy compressed (S's pattern) and
computes dh = dy @ Uup on cuSPARSELt (exact; masked modes). It is chosen by name only: ``auto``
takes it once the ``ffn`` suite measures elas-masked-triton-sparse-dx faster than elas-masked-triton.

``auto`` takes the first of cutlass, triton, reference that can run. A backend asked for by name
that cannot run falls back the same way, with one warning naming why. All backends compute the
same function (shapes aligned as ``kernels/alignment.py`` says).
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

import torch

from elas_compile.kernels.alignment import shape_blocker
from elas_compile.modes import MASKED_MODES, SPARSE_MODES, check_mode

KERNEL_CHOICES = ("auto", "cutlass", "triton", "triton-sparse-dx", "reference")
BACKENDS = ("cutlass", "triton", "triton-sparse-dx", "reference")
FUSED_BACKENDS = ("cutlass", "triton", "triton-sparse-dx")  # the backends of elas::lowrank_relu2_sparse24_linear
SPARSE_DX = "triton-sparse-dx"

# Below this many tokens a sparse GEMM does not pay (cuSPARSELt vs cuBLAS at the FFN shapes:
# the `kernels` benchmark suite's token sweep): token counts fixed by the graph under it, as in
# decoding, run the reference path.
SPARSE_MIN_TOKENS = 1024

# Debug knob (tests): resolve ``triton`` and ``cutlass`` on a CPU too, where their ops run the
# pure-PyTorch references of their kernels, so CPU tests exercise the fused graph.
FUSED_ON_CPU_ENV = "ELAS_FUSED_ON_CPU"


class Resolution(NamedTuple):
    backend: str  # one of BACKENDS
    reason: str  # why this backend: what the faster ones lacked, or that it was asked for


def _device_blocker(device: torch.device) -> Optional[str]:
    """Why the sparse-GEMM backends cannot run on ``device`` (None when they can)."""
    if device.type != "cuda":
        if os.environ.get(FUSED_ON_CPU_ENV) == "1":
            return None
        return f"device {device.type} (sparse tensor cores need an NVIDIA GPU)"
    from elas_compile.kernels.cslt_layout import cslt_layout_verified
    from elas_compile.kernels.triton.ops import HAS_TRITON

    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"GPU compute capability {major}.{minor} (cuSPARSELt needs sm_80 or newer)"
    if not torch.backends.cusparselt.is_available():
        return "this PyTorch build has no cuSPARSELt"
    if not HAS_TRITON:
        return "Triton is not installed (pip install triton)"
    if not cslt_layout_verified(device):
        return ("cuSPARSELt on this GPU writes a compressed layout elas_compile's kernels do not write "
                "(checked against torch._cslt_compress; kernels/cslt_layout.py)")
    return None


def _cutlass_blocker(device: torch.device, mode: str) -> Optional[str]:
    if mode not in MASKED_MODES:
        return f"the CUTLASS kernels compute the masked backward only (this MLP's backward is {mode!r})"
    if device.type != "cuda":
        return None  # FUSED_ON_CPU: the CUTLASS ops' CPU references
    from elas_compile.kernels.cutlass import ops as cutlass_ext

    return cutlass_ext.unavailable_reason(device)


def resolve_backend(kernels: str, *, device, dtype: torch.dtype, width: int, rank_in: int, rank_out: int,
                    mode: str, tokens: Optional[int] = None) -> Resolution:
    """The backend that computes an FFN middle ``h (rank_in) -> y (width) -> S -> (rank_out)`` of
    ``dtype`` on ``device`` in sparsity ``mode``, for the request ``kernels`` (``ELASConfig.kernels``).
    ``tokens``: the rows of ``h`` when the graph fixes them; with ``auto``, fewer than
    :data:`SPARSE_MIN_TOKENS` (decoding) take the reference path, where the dense GEMM is faster."""
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels={kernels!r}: choose one of {KERNEL_CHOICES}")
    check_mode(mode, SPARSE_MODES, where="resolve_backend")
    device = torch.device(device)
    if kernels == "reference":
        return Resolution("reference", "asked for (ELASConfig(kernels='reference'))")
    lacks = []  # why the faster backends cannot run, fastest first
    blocker = _device_blocker(device) or shape_blocker(width, rank_in, rank_out, dtype)
    if blocker is None and kernels == "auto" and tokens is not None and tokens < SPARSE_MIN_TOKENS:
        return Resolution("reference", f"{tokens} tokens, fewer than SPARSE_MIN_TOKENS={SPARSE_MIN_TOKENS}: the sparse "
                                       "GEMM does not pay at so few rows")
    if blocker is None and kernels in ("auto", "cutlass"):
        cutlass = shape_blocker(width, rank_in, rank_out, dtype, cutlass=True) or _cutlass_blocker(device, mode)
        if cutlass is None:
            return Resolution("cutlass", "asked for" if kernels == "cutlass" else "the fastest that runs here")
        lacks.append(f"cutlass: {cutlass}")
    if blocker is None and mode in MASKED_MODES and kernels == SPARSE_DX:
        return Resolution(SPARSE_DX, "asked for")
    if blocker is None:
        if kernels == SPARSE_DX:
            lacks.append(f"{SPARSE_DX}: dy is 2:4 in masked modes only (this MLP's backward is {mode!r})")
        return Resolution("triton", "asked for" if kernels == "triton" else "; ".join(lacks))
    lacks.append(f"{'triton' if lacks or kernels == 'triton' else 'cutlass and triton'}: {blocker}")
    return Resolution("reference", "; ".join(lacks))


def fallback_warning(kernels: str, resolution: Resolution) -> Optional[str]:
    """The one-time warning a resolution deserves: a named backend that could not run, or ``auto``
    on a GPU that cannot use the sparse kernels (on a CPU the reference path is expected)."""
    if kernels in FUSED_BACKENDS and resolution.backend != kernels:
        return f"ELASConfig(kernels={kernels!r}) cannot run here ({resolution.reason}); using {resolution.backend!r}"
    if (kernels == "auto" and resolution.backend == "reference" and "device cpu" not in resolution.reason
            and "SPARSE_MIN_TOKENS" not in resolution.reason):
        return f"the 2:4 FFN runs the reference path (no sparse GEMM) because of {resolution.reason}"
    return None
