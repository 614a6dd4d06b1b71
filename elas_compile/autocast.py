"""Autocast rules for the ``torch.ops.elas`` ops that take weights.

Inside ``torch.autocast`` a bf16 activation meets an fp32 weight at these ops. Like aten's own
matmuls, they run in the autocast dtype of the moment (``torch.get_autocast_dtype``): float32
inputs are cast to it, then the op runs with autocast off. (``torch.library.register_autocast``
fixes one dtype at registration; these rules follow the user's choice of bf16 or fp16.)
"""
from __future__ import annotations

import torch

_LIB = torch.library.Library("elas", "IMPL")
OPS = ("sparse24_linear", "lowrank_relu2_sparse24_linear")


def _cast(args, dtype):
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a for a in args)


def _register(opname: str, device_type: str) -> None:
    op = getattr(torch.ops.elas, opname).default
    key_name = "Autocast" + torch._C._dispatch_key_for_device(device_type)
    key = getattr(torch._C.DispatchKey, key_name)

    def run(*args):
        dtype = torch.get_autocast_dtype(device_type)
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(key)):
            return op(*_cast(args, dtype))

    if op.has_kernel_for_dispatch_key(key):
        op.py_kernels.pop(key, None)
    op.py_impl(key)(run)  # the Python dispatcher's path (used while tracing)
    _LIB.impl(opname, lambda _keyset, *args: run(*args), key_name, with_keyset=True)


for _name in OPS:
    for _device in ("cuda", "cpu"):
        _register(_name, _device)
