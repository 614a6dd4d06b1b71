"""Optional CUTLASS kernels for Hopper (sm_90), loaded from the library :mod:`build` makes.

* ``elas::cutlass_up_relu2_sparse24(Tensor h, Tensor w) -> Tensor``: the cuSPARSELt-layout
  compression of ``sparsify24(relu(h @ w^T) ** 2)`` from one GEMM whose epilogue does the relu²,
  the 2:4 selection and the compressed store (``kernels/cutlass/up_relu2_sparse24.cu``): y never
  reaches memory. Same result as ``relu2_sparsify24_compress(h @ w^T)`` except that relu² is
  taken of the float32 accumulator (one rounding instead of two).
* ``elas::cutlass_grad_relu2_sparse24(Tensor g, Tensor w, Tensor packed) -> (Tensor, Tensor)``: the
  masked backward of that step from one GEMM dS = g @ w (w: K x N) whose epilogue reads the
  compressed S: ``dy = dS * 2 sqrt(S)`` where S keeps a value, else 0, and the dense ``S``
  (``kernels/cutlass/grad_relu2_sparse24.cu``): dS never reaches memory. Same result as
  ``relu2_sparsify24_backward_expand(g @ w, packed, None, "masked")`` up to the rounding of dS.

The library is ``$ELAS_CUTLASS_LIB`` if set, else the one :func:`build.build` caches for the
current sources and toolchain, built on the first use on an sm_90 GPU (about a minute, once per
machine; ``elas-compile build-kernels`` does it ahead of time). :func:`available` says whether a
device can run the op; where it cannot, ``elas_compile.backends`` chooses another backend (and
on an sm_90 GPU a warning says why). On other devices (CPU, fake tensors) the op runs the
pure-PyTorch reference, so graphs with it trace and run anywhere.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Optional

import torch

from elas_compile.diagnostics import warn_once

from ..alignment import CUTLASS_DTYPES, CUTLASS_K, ROWS, WIDTH
from ..cslt_layout import (
    check_cslt_shape,
    check_packed,
    compress24_reference,
    decompress24_reference,
    packed_shape,
    relu2_sparsify24_backward_reference,
)
from ..reference import relu2

ABI = 4
LIB_ENV = "ELAS_CUTLASS_LIB"  # a prebuilt library: used as is, nothing is built
CAPABILITY = (9, 0)


@functools.cache
def _load() -> tuple[Optional[ctypes.CDLL], Optional[str]]:
    """(the loaded library, None) or (None, why not). Builds it unless it is cached: called once per
    process, so a failed build is not tried again (its compiler output is printed once)."""
    from . import build, toolchain  # not at import: `python -m ...cutlass.build` would import it twice

    path = os.environ.get(LIB_ENV)
    if path and not os.path.isfile(path):
        return None, f"{LIB_ENV}={path} is not a file"
    if not path:
        tools, reason = toolchain.find_toolchain()
        if tools is None:
            return None, reason
        reason = toolchain.driver_problem(tools.nvcc, toolchain.driver_cuda_version())
        if reason:
            return None, reason
        try:
            path = str(build.build(tools, toolchain.ARCHS[CAPABILITY])[0])
        except build.BuildError as e:
            if e.output:
                print(f"elas_compile: {e}:\n{e.output[-3000:]}", file=sys.stderr, flush=True)
            return None, f"{e} (elas-compile build-kernels shows the toolchain it used)"
        except OSError as e:  # the cache folder cannot be written
            return None, f"cannot build the CUTLASS kernels into {build.cache_dir()}: {e}"
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        return None, f"{path} does not load: {e}"
    if lib.elas_cutlass_abi() != ABI:
        return None, (f"{path} was built for another elas_compile version (ABI {lib.elas_cutlass_abi()}, "
                      f"expected {ABI}); unset {LIB_ENV} to build the library on first use")
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    lib.elas_up_relu2_sparse24.restype = i32
    lib.elas_up_relu2_sparse24.argtypes = [ptr, ptr, ptr, i32, i32, i32, ptr, i32, i32, ptr]
    lib.elas_grad_relu2_sparse24.restype = i32
    lib.elas_grad_relu2_sparse24.argtypes = [ptr, ptr, ptr, ptr, ptr, i32, i32, i32, ptr, i32, i32, ptr]
    return lib, None


def library() -> Optional[ctypes.CDLL]:
    """The loaded library (built on first use), or None (the reason: :func:`unavailable_reason`)."""
    return _load()[0]


def unavailable_reason(device) -> Optional[str]:
    """Why the CUTLASS op cannot run on ``device`` (None when it can). On an sm_90 GPU the first
    call builds the library if needed; where it cannot be had, warns once why."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return "not a CUDA device"
    capability = torch.cuda.get_device_capability(device)
    if capability != CAPABILITY:
        return f"built for sm_90 (Hopper), this GPU is sm_{''.join(map(str, capability))}"
    reason = _load()[1]
    if reason:
        warn_once(f"the CUTLASS kernels cannot run on this sm_90 GPU, the FFN uses slower kernels: {reason}")
    return reason


def available(device) -> bool:
    return unavailable_reason(device) is None


def shape_reason(m: int, n: int, k: int, dtype: torch.dtype) -> str | None:
    """Why the kernels cannot compute an M x N x K GEMM of ``dtype`` (None when they can)."""
    if dtype in CUTLASS_DTYPES and m % ROWS == 0 and n % WIDTH == 0 and k % CUTLASS_K == 0:
        return None
    return f"needs bf16 and M % {ROWS}, N % {WIDTH}, K % {CUTLASS_K} == 0 (got {m}x{n}x{k} {dtype})"


_ERRORS = {1: "shape not supported", 2: "CUTLASS initialize failed", 3: "kernel launch failed"}


def _call(name: str, fn, device: torch.device, m: int, n: int, k: int, *args, check: bool) -> None:
    """Calls a library entry point on ``device``'s current stream; raises on its error code and,
    with ``check``, on the layout self-check (which syncs the device)."""
    err = torch.zeros(1, dtype=torch.int32, device=device) if check else None  # no extra kernel otherwise
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    stream = torch.cuda.current_stream(device).cuda_stream
    with torch.cuda.device(device):
        code = fn(*args, m, n, k, err.data_ptr() if check else None, int(check), sms, stream)
    if code:
        raise RuntimeError(f"elas.{name} {m}x{n}x{k}: {_ERRORS.get(code, code)}")
    if check and int(err.item()):
        raise RuntimeError(f"elas.{name}: the epilogue's register layout is not the one the kernel assumes "
                           "(kernels/cutlass/sparse24_epilogue.cuh)")


def _launch_up(h: torch.Tensor, w: torch.Tensor, check: bool) -> torch.Tensor:
    (m, k), n = h.shape, w.shape[0]
    packed = torch.empty(packed_shape(m, n), dtype=h.dtype, device=h.device)
    fn = functools.partial(library().elas_up_relu2_sparse24, h.data_ptr(), w.data_ptr(), packed.data_ptr())
    _call("cutlass_up_relu2_sparse24", fn, h.device, m, n, k, check=check)
    return packed


def _launch_grad(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    (m, k), n = g.shape, w.shape[1]
    check_packed(packed, m, n)
    dy = torch.empty(m, n, dtype=g.dtype, device=g.device)
    s = torch.empty(m, n, dtype=g.dtype, device=g.device)
    fn = functools.partial(library().elas_grad_relu2_sparse24, g.data_ptr(), w.data_ptr(), packed.data_ptr(),
                           dy.data_ptr(), s.data_ptr())
    _call("cutlass_grad_relu2_sparse24", fn, g.device, m, n, k, check=check)
    return dy, s


def up_relu2_sparse24_check(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The CUDA kernel with its layout self-check on (syncs the device; for tests)."""
    return _launch_up(h.contiguous(), w.contiguous(), check=True)


def grad_relu2_sparse24_check(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor):
    """The CUDA backward kernel with its layout self-check on (syncs the device; for tests)."""
    return _launch_grad(g.contiguous(), w.contiguous(), packed, check=True)


def _require_gpu_kernel(name: str, t: torch.Tensor, m: int, n: int, k: int) -> None:
    reason = shape_reason(m, n, k, t.dtype)
    if reason:
        raise ValueError(f"elas.{name}: {reason}")
    reason = unavailable_reason(t.device)
    if reason:
        raise RuntimeError(f"elas.{name}: {reason}")


@torch.library.custom_op("elas::cutlass_up_relu2_sparse24", mutates_args=())
def cutlass_up_relu2_sparse24(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """compress24(sparsify24(relu(h @ w^T) ** 2)); h: M x K, w: N x K, bf16."""
    m, k = h.shape
    n = w.shape[0]
    check_cslt_shape(m, n, h.dtype)
    if h.device.type != "cuda":
        return compress24_reference(relu2(h.float() @ w.float().t()).to(h.dtype))
    _require_gpu_kernel("cutlass_up_relu2_sparse24", h, m, n, k)
    return _launch_up(h.contiguous(), w.contiguous(), check=False)


@cutlass_up_relu2_sparse24.register_fake
def _(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return h.new_empty(packed_shape(h.shape[0], w.shape[0]))


@torch.library.custom_op("elas::cutlass_grad_relu2_sparse24", mutates_args=())
def cutlass_grad_relu2_sparse24(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dy, S) of the masked backward: dy = (g @ w) * 2 sqrt(S) where S keeps a value; g: M x K, w: K x N."""
    m, k = g.shape
    n = w.shape[1]
    check_cslt_shape(m, n, g.dtype)
    if g.device.type != "cuda":
        ds = g.float() @ w.float()
        dy = relu2_sparsify24_backward_reference(ds, packed, None, "masked", m, n).to(g.dtype)
        return dy, decompress24_reference(packed, m, n)
    _require_gpu_kernel("cutlass_grad_relu2_sparse24", g, m, n, k)
    return _launch_grad(g.contiguous(), w.contiguous(), packed, check=False)


@cutlass_grad_relu2_sparse24.register_fake
def _(g: torch.Tensor, w: torch.Tensor, packed: torch.Tensor):
    return g.new_empty(g.shape[0], w.shape[1]), g.new_empty(g.shape[0], w.shape[1])
