"""Optional CUTLASS kernels for Hopper (sm_90), loaded from the library ``cutlass_build`` makes.

* ``elas::cutlass_up_relu2_sparse24(Tensor h, Tensor w) -> Tensor``: the cuSPARSELt-layout
  compression of ``sparsify24(relu(h @ w^T) ** 2)`` from one GEMM whose epilogue does the relu²,
  the 2:4 selection and the compressed store (``kernels/cutlass/up_relu2_sparse24.cu``): y never
  reaches memory. Same result as ``relu2_sparsify24_compress(h @ w^T)`` except that relu² is
  taken of the float32 accumulator (one rounding instead of two).

The library is found at ``$ELAS_CUTLASS_LIB`` or at the cache path of the current sources
(:func:`cutlass_build.default_library_path`). :func:`available` says whether a device can run the
op; where it cannot, callers use the Triton / reference path (``fused_ffn`` warns once why). On
other devices (CPU, fake tensors) the op runs the pure-PyTorch reference, so graphs with it
trace and run anywhere.
"""
from __future__ import annotations

import ctypes
import functools
import os
import warnings

import torch

from . import cutlass_build
from .cslt_layout import check_cslt_shape, compress24_reference, packed_shape
from .reference import relu2

ABI = 1


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded library, or None (with the reason in :func:`unavailable_reason`)."""
    path = os.environ.get("ELAS_CUTLASS_LIB") or str(cutlass_build.default_library_path())
    if not os.path.isfile(path):
        return None
    lib = ctypes.CDLL(path)
    if lib.elas_cutlass_abi() != ABI:
        warnings.warn(f"{path}: built for another elas_compile version (ABI {lib.elas_cutlass_abi()}, "
                      f"expected {ABI}); rebuild with python -m elas_compile.kernels.cutlass_build", stacklevel=2)
        return None
    fn = lib.elas_up_relu2_sparse24
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return lib


def unavailable_reason(device) -> str | None:
    """Why the CUTLASS op cannot run on ``device`` (None when it can)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return "not a CUDA device"
    if torch.cuda.get_device_capability(device) != (9, 0):
        return f"built for sm_90 (Hopper), this GPU is sm_{''.join(map(str, torch.cuda.get_device_capability(device)))}"
    if library() is None:
        return ("the CUTLASS library is not built (python -m elas_compile.kernels.cutlass_build "
                "--cutlass DIR, or set ELAS_CUTLASS_LIB)")
    return None


def available(device) -> bool:
    return unavailable_reason(device) is None


def shape_ok(m: int, n: int, k: int, dtype: torch.dtype) -> bool:
    return dtype == torch.bfloat16 and m % 64 == 0 and n % 64 == 0 and k % 8 == 0


_ERRORS = {1: "shape not supported", 2: "CUTLASS initialize failed", 3: "kernel launch failed"}


def _launch(h: torch.Tensor, w: torch.Tensor, check: bool) -> torch.Tensor:
    m, k = h.shape
    n = w.shape[0]
    packed = torch.empty(packed_shape(m, n), dtype=h.dtype, device=h.device)
    err = torch.zeros(1, dtype=torch.int32, device=h.device)
    sms = torch.cuda.get_device_properties(h.device).multi_processor_count
    stream = torch.cuda.current_stream(h.device).cuda_stream
    with torch.cuda.device(h.device):
        code = library().elas_up_relu2_sparse24(h.data_ptr(), w.data_ptr(), packed.data_ptr(), m, n, k,
                                                 err.data_ptr(), int(check), sms, stream)
    if code:
        raise RuntimeError(f"elas.cutlass_up_relu2_sparse24 {m}x{n}x{k}: {_ERRORS.get(code, code)}")
    if check and int(err.item()):
        raise RuntimeError("elas.cutlass_up_relu2_sparse24: the epilogue's register layout is not the one "
                           "the kernel assumes (kernels/cutlass/up_relu2_sparse24.cu)")
    return packed


def up_relu2_sparse24_check(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The CUDA kernel with its layout self-check on (syncs the device; for tests)."""
    return _launch(h.contiguous(), w.contiguous(), check=True)


@torch.library.custom_op("elas::cutlass_up_relu2_sparse24", mutates_args=())
def cutlass_up_relu2_sparse24(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """compress24(sparsify24(relu(h @ w^T) ** 2)); h: M x K, w: N x K, bf16."""
    m, k = h.shape
    n = w.shape[0]
    check_cslt_shape(m, n, h.dtype)
    if h.device.type != "cuda":
        return compress24_reference(relu2(h.float() @ w.float().t()).to(h.dtype))
    if not shape_ok(m, n, k, h.dtype):
        raise ValueError(f"elas.cutlass_up_relu2_sparse24: needs bf16 and M, N % 64 == 0, K % 8 == 0; got "
                         f"{m}x{n}x{k} {h.dtype}")
    reason = unavailable_reason(h.device)
    if reason:
        raise RuntimeError(f"elas.cutlass_up_relu2_sparse24: {reason}")
    return _launch(h.contiguous(), w.contiguous(), check=False)


@cutlass_up_relu2_sparse24.register_fake
def _(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return h.new_empty(packed_shape(h.shape[0], w.shape[0]))
