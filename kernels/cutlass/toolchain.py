"""What building the CUTLASS kernels needs, as found on this machine: the CUTLASS C++ headers and
their version, nvcc and its version, and the GPU architecture to build for.

Headers, in this order: ``$CUTLASS_PATH`` (a CUTLASS source tree), else the sources that PyPI's
``nvidia-cutlass`` package bundles (``cutlass_library/source``; ``pip install "elas-compile[cuda]"``
installs it). nvcc: ``$CUDA_HOME`` or ``$CUDA_PATH``, ``nvcc`` on ``PATH``, ``/usr/local/cuda``, else
the ``nvidia-cuda-nvcc`` wheel (CUDA 13: ``nvidia/cu13/bin/nvcc``). Nothing here imports CUTLASS's
Python package or runs more than ``nvcc --version``.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from elas_compile.kernels.cutlass.pingpong import CHECKED_CUTLASS

INSTALL_HINT = 'pip install "elas-compile[cuda]"'
ARCHS = {(9, 0): "sm_90a"}  # compute capability -> the nvcc target the kernels are written for (wgmma, TMA)


@dataclass(frozen=True)
class Headers:
    root: Path  # holds include/cutlass/ and tools/util/include/cutlass/
    version: str  # "4.2.0", or "unknown" without a readable include/cutlass/version.h
    origin: str  # where it was found: "$CUTLASS_PATH" or "the nvidia-cutlass package"

    @property
    def include_dirs(self) -> list[Path]:
        return [self.root / "include", self.root / "tools" / "util" / "include"]


@dataclass(frozen=True)
class Nvcc:
    path: Path
    version: str  # "13.0.88"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@dataclass(frozen=True)
class Toolchain:
    headers: Headers
    nvcc: Nvcc


def headers_version(root: Path) -> str:
    """``MAJOR.MINOR.PATCH`` from ``include/cutlass/version.h`` under ``root``, or ``"unknown"``."""
    try:
        text = (Path(root) / "include" / "cutlass" / "version.h").read_text()
    except OSError:
        return "unknown"
    parts = [re.search(rf"#define\s+CUTLASS_{name}\s+(\d+)", text) for name in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) for m in parts) if all(parts) else "unknown"


def _is_source_tree(root: Path) -> bool:
    return (root / "include" / "cutlass" / "cutlass.h").is_file() and \
        (root / "tools" / "util" / "include" / "cutlass" / "util").is_dir()


def find_headers(cutlass_path: Optional[str] = None) -> tuple[Optional[Headers], Optional[str]]:
    """(the CUTLASS headers, None) or (None, why none were found); ``cutlass_path`` overrides
    ``$CUTLASS_PATH``."""
    given = cutlass_path or os.environ.get("CUTLASS_PATH")
    if given:
        root, origin = Path(given), "--cutlass" if cutlass_path else "$CUTLASS_PATH"
        if not _is_source_tree(root):
            return None, (f"{given} ({origin}) holds no CUTLASS source tree (include/cutlass/cutlass.h and "
                          "tools/util/include/); unset CUTLASS_PATH to use the nvidia-cutlass package's headers")
        return Headers(root, headers_version(root), origin), None
    spec = importlib.util.find_spec("cutlass_library")  # finds the package without importing it
    for location in (spec.submodule_search_locations or []) if spec else []:
        root = Path(location) / "source"
        if _is_source_tree(root):
            return Headers(root, headers_version(root), "the nvidia-cutlass package"), None
    return None, f"the CUTLASS headers are not installed ({INSTALL_HINT}, or set CUTLASS_PATH to a CUTLASS source tree)"


def version_problem(headers: Headers) -> Optional[str]:
    """Why these headers' version cannot build the kernels (None when it can)."""
    if headers.version in CHECKED_CUTLASS:
        return None
    return (f"CUTLASS {headers.version} at {headers.root} ({headers.origin}): the kernels' ping-pong GEMM is "
            f"derived from CUTLASS's own header by edits checked against CUTLASS {' and '.join(CHECKED_CUTLASS)} "
            f"only (kernels/cutlass/pingpong.py); {INSTALL_HINT} installs a checked version")


def nvcc_version(path: Path) -> Optional[str]:
    """``13.0.88`` from ``nvcc --version`` (None if it does not run)."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\bV(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


def _nvcc_candidates() -> list[Path]:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    found = [Path(h) / "bin" / "nvcc" for h in homes if h]
    on_path = shutil.which("nvcc")
    found += [Path(on_path)] if on_path else []
    found.append(Path("/usr/local/cuda/bin/nvcc"))
    spec = importlib.util.find_spec("nvidia")  # the namespace package of NVIDIA's wheels
    for root in (spec.submodule_search_locations or []) if spec else []:
        found += sorted(Path(root).glob("cu[0-9]*/bin/nvcc"))
    return found


def find_nvcc() -> tuple[Optional[Nvcc], Optional[str]]:
    """(the first nvcc that runs, None) or (None, why none was found)."""
    for path in _nvcc_candidates():
        if path.is_file() and os.access(path, os.X_OK):
            version = nvcc_version(path)
            if version:
                return Nvcc(path, version), None
    return None, ("nvcc is not installed (install the CUDA toolkit and set CUDA_HOME, or on a CUDA 13 driver "
                  "pip install nvidia-cuda-nvcc)")


def find_toolchain(cutlass_path: Optional[str] = None) -> tuple[Optional[Toolchain], Optional[str]]:
    """(what the build needs, None) or (None, why the kernels cannot be built here)."""
    return toolchain_of(find_headers(cutlass_path), find_nvcc())


def toolchain_of(found_headers: tuple[Optional[Headers], Optional[str]],
                 found_nvcc: tuple[Optional[Nvcc], Optional[str]]) -> tuple[Optional[Toolchain], Optional[str]]:
    """:func:`find_toolchain` from what :func:`find_headers` and :func:`find_nvcc` returned."""
    (headers, headers_reason), (nvcc, nvcc_reason) = found_headers, found_nvcc
    headers_reason = headers_reason or version_problem(headers)
    if headers_reason or nvcc_reason:
        return None, "; ".join(r for r in (headers_reason, nvcc_reason) if r)
    return Toolchain(headers, nvcc), None


def driver_cuda_version() -> Optional[tuple[int, int]]:
    """The CUDA version the installed driver supports, e.g. (13, 0); None without a driver."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    v = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(v)) != 0:
        return None
    return v.value // 1000, v.value % 1000 // 10


def driver_problem(nvcc: Nvcc, driver: Optional[tuple[int, int]]) -> Optional[str]:
    """Why a library built by ``nvcc`` cannot run on this driver: it links the CUDA runtime of its
    nvcc, which needs a driver of the same major CUDA version or newer."""
    if driver is None or driver[0] >= nvcc.major:
        return None
    return (f"nvcc {nvcc.version} ({nvcc.path}) builds for CUDA {nvcc.major}, this driver supports CUDA "
            f"{driver[0]}.{driver[1]}: set CUDA_HOME to a CUDA {driver[0]} toolkit")
