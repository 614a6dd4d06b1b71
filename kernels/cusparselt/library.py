"""Build and load ``plan_cache.cpp``: cuSPARSELt sparse GEMMs with plans built once per shape.

The library is compiled on first use with the machine's C++ compiler against the cuSPARSELt that
torch ships (the ``nvidia-cusparselt`` wheel: header and ``libcusparseLt.so.0``) and the CUDA
headers (the toolkit's, or the ``nvidia`` wheels'). It takes about two seconds; the result is
cached under ``~/.cache/elas_compile`` by a hash of the source, the cuSPARSELt version and the
compiler, and a file lock makes concurrent processes (torchrun) build it once.
:func:`unavailable_reason` says why it cannot be had; callers then use ``torch._cslt_sparse_mm``,
whose plan set-up on every call costs host time (harmless under CUDA graphs).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from elas_compile.kernels.native import build_once, cache_dir

ABI = 1
SOURCE = Path(__file__).resolve().parent / "plan_cache.cpp"
_failure: dict[str, str] = {}


def _nvidia_dirs(sub: str) -> list[Path]:
    """``nvidia/<package>/<sub>`` folders of the installed NVIDIA wheels (cusparselt, cu13, cu12...)."""
    spec = importlib.util.find_spec("nvidia")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return [d for root in roots for d in sorted(root.glob(f"*/{sub}")) if d.is_dir()]


def _toolkit_include() -> list[Path]:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        homes.append(str(Path(os.path.realpath(nvcc)).parent.parent))
    homes.append("/usr/local/cuda")
    return [Path(h) / "include" for h in homes if h and (Path(h) / "include").is_dir()]


def find_toolchain() -> tuple[Optional[dict], Optional[str]]:
    """(what the build needs, None) or (None, why it cannot be built here)."""
    header = next((d / "cusparseLt.h" for d in _nvidia_dirs("include") if (d / "cusparseLt.h").is_file()), None)
    lib = next((d / "libcusparseLt.so.0" for d in _nvidia_dirs("lib") if (d / "libcusparseLt.so.0").is_file()), None)
    if header is None or lib is None:
        return None, "the nvidia-cusparselt wheel's header or library is not installed"
    includes = [header.parent] + [d for d in _nvidia_dirs("include") + _toolkit_include()
                                  if (d / "cusparse.h").is_file() or (d / "cuda_runtime_api.h").is_file()]
    if not any((d / "cusparse.h").is_file() for d in includes):
        return None, "no CUDA headers with cusparse.h (install the CUDA toolkit or set CUDA_HOME)"
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        return None, "no C++ compiler (set CXX or install g++)"
    version = re.search(r"CUSPARSELT_VER_MINOR\s+(\d+)", header.read_text())
    return {"cxx": cxx, "includes": includes, "lib": lib, "cusparselt": version.group(1) if version else "?"}, None


def library_path(tools: dict) -> Path:
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(f"{tools['cusparselt']}|{tools['cxx']}|{ABI}".encode())
    return cache_dir() / f"libelas_cslt-{h.hexdigest()[:16]}.so"


def _compile(tools: dict, out: Path) -> None:
    cmd = [tools["cxx"], "-std=c++17", "-O2", "-shared", "-fPIC", str(SOURCE), "-o", str(out),
           *(f"-I{d}" for d in tools["includes"]), f"-L{tools['lib'].parent}", "-l:libcusparseLt.so.0",
           f"-Wl,-rpath,{tools['lib'].parent}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{done.stderr[-3000:]}")


@functools.cache
def library() -> Optional[ctypes.CDLL]:
    """The loaded library, built first if needed; None (reason in :func:`unavailable_reason`)."""
    tools, reason = find_toolchain()
    if tools is None:
        _failure["reason"] = reason
        return None
    path = library_path(tools)
    try:
        start = time.perf_counter()
        built = build_once(path, lambda tmp: _compile(tools, tmp))
        if built:
            print(f"elas_compile: built the cuSPARSELt plan cache in {time.perf_counter() - start:.1f} s ({path})",
                  file=sys.stderr)
        lib = ctypes.CDLL(str(path))
    except (RuntimeError, OSError) as e:
        _failure["reason"] = f"building it failed: {str(e).splitlines()[-1][:300]}"
        return None
    if lib.elas_cslt_abi() != ABI:
        _failure["reason"] = f"{path} has ABI {lib.elas_cslt_abi()}, expected {ABI}"
        return None
    i32, i64, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    lib.elas_cslt_max_alg.argtypes = [i32, i64, i64, i64, i32, i32, ctypes.POINTER(i32)]
    lib.elas_cslt_plan.argtypes = [i32, i64, i64, i64, i32, i32, i32, ctypes.POINTER(ctypes.c_size_t)]
    lib.elas_cslt_mm.argtypes = [i32, ptr, ptr, ptr, i64, i64, i64, i32, i32, i32, ptr, ptr]
    lib.elas_cslt_error.restype = ctypes.c_char_p
    return lib


def unavailable_reason() -> Optional[str]:
    """Why the plan cache cannot be used here (None when it can)."""
    return None if library() is not None else _failure.get("reason", "unknown")


def check(status: int, what: str) -> None:
    if status:
        raise RuntimeError(f"elas.cslt_mm: {what}: {library().elas_cslt_error(status).decode()} (cuSPARSELt {status})")
