"""Optional Triton: detection, and a Triton-interpreter copy of a kernel module for CPU tensors.

Triton decides at ``@triton.jit`` time whether a kernel is compiled or interpreted (the
``TRITON_INTERPRET`` environment variable). The launchers in this package need both: compiled
kernels for CUDA tensors and interpreted ones for CPU tensors (tests in CI run the kernels under
the interpreter). :func:`kernel_module` therefore loads a private copy of a kernel module with
``TRITON_INTERPRET=1`` set while its decorators run, and hands that copy out for CPU tensors.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from types import ModuleType

try:  # pragma: no cover - depends on the environment
    import triton  # noqa: F401
    import triton.language as tl  # noqa: F401

    HAS_TRITON = True
except Exception:  # ImportError, or a broken install
    HAS_TRITON = False

_lock = threading.RLock()
_interp_copies: dict[str, ModuleType] = {}


def has_triton() -> bool:
    return HAS_TRITON


def kernel_module(name: str, interpret: bool) -> ModuleType:
    """The kernel module ``name`` (a full module name): itself when ``interpret`` is false, else a
    copy whose ``@triton.jit`` functions are interpreter functions."""
    mod = importlib.import_module(name)
    if not interpret:
        return mod
    with _lock:
        copy = _interp_copies.get(name)
        if copy is not None:
            return copy
        spec = importlib.util.spec_from_file_location(name + "__interpret", mod.__file__)
        copy = importlib.util.module_from_spec(spec)
        old = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
        try:
            sys.modules[spec.name] = copy
            spec.loader.exec_module(copy)
        finally:
            if old is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = old
        # Triton helpers imported from other kernel modules are compiled JITFunctions in the
        # copy: swap in interpreted versions (interpreted kernels look globals up at call time).
        from triton.runtime.jit import JITFunction

        for attr, val in list(vars(copy).items()):
            if isinstance(val, JITFunction):
                src = val.fn.__module__
                if src != copy.__name__ and not src.endswith("__interpret"):
                    setattr(copy, attr, getattr(kernel_module(src, True), val.fn.__name__))
        _interp_copies[name] = copy
        return copy
