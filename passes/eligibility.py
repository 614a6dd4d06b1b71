"""When the fast ELAS FFN (Triton + cuSPARSELt) can run, and a one-time warning when it cannot."""
from __future__ import annotations

import os
import warnings
from typing import Optional

import torch

from elas_compile.kernels.cslt_layout import COL_ALIGN, SUPPORTED_DTYPES, cslt_layout_verified

_warned: set[str] = set()


def _cusparselt_available() -> bool:
    try:
        return bool(torch.backends.cusparselt.is_available())
    except Exception:
        return False


def fast_path_blocker(y: torch.Tensor, w_up_u: torch.Tensor, w_down_v: torch.Tensor) -> Optional[str]:
    """Why the fused sparse path cannot run on these (fake) tensors, or None if it can.

    ``ELAS_FORCE_FUSED=1`` skips the device checks (used by CPU tests: the fused op then runs its
    pure-PyTorch reference, exercising the same graph as on a GPU)."""
    if y.dtype not in SUPPORTED_DTYPES:
        return f"dtype {y.dtype} (the 2:4 sparse GEMM needs bfloat16 or float16: use autocast or .to(torch.bfloat16))"
    if y.shape[-1] % COL_ALIGN or w_down_v.shape[0] % 16 or w_up_u.shape[1] % 16:
        return (f"shape: intermediate width {y.shape[-1]} must be a multiple of {COL_ALIGN} and ranks multiples of 16 "
                f"(ELASConfig.ffn_width_multiple=128 and an int rank give that)")
    if os.environ.get("ELAS_FORCE_FUSED") == "1":
        return None
    if y.device.type != "cuda":
        return f"device {y.device.type} (sparse tensor cores need an NVIDIA GPU)"
    major, minor = torch.cuda.get_device_capability(y.device)
    if major < 8:
        return f"GPU compute capability {major}.{minor} (cuSPARSELt needs sm80 or newer)"
    if not _cusparselt_available():
        return "this PyTorch build has no cuSPARSELt"
    if not cslt_layout_verified(y.device):
        return ("cuSPARSELt on this GPU writes a compressed layout elas_compile's kernels do not write "
                "(checked against torch._cslt_compress; measured layout: kernels/cslt_layout.py)")
    return None


def warn_fallback_once(reason: str) -> None:
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(f"elas_compile: 2:4 FFN runs the reference path (no sparse GEMM) because of {reason}.",
                  stacklevel=3)
