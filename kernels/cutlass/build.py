"""Build the optional CUTLASS kernels (``*.cu`` beside this file) into one shared library.

    python -m elas_compile.kernels.cutlass.build --cutlass /path/to/cutlass [--out FILE]

Needs nvcc (CUDA >= 12.3, for sm_90a) and the CUTLASS 3/4 headers (a checkout of
github.com/NVIDIA/cutlass: ``include/`` and ``tools/util/include/``; ``--cutlass`` or the
``CUTLASS_PATH`` environment variable). The library has a C entry point and no torch headers,
so one build serves every torch version; it links the CUDA runtime statically. Without ``--out``
it lands in the cache where :mod:`elas_compile.kernels.cutlass.ops` looks for it, under a name
that carries a hash of the sources (edited sources are never served by a stale build).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from elas_compile.kernels.cutlass import pingpong as cutlass_pingpong

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("up_relu2_sparse24.cu", "grad_relu2_sparse24.cu")


def source_hash() -> str:
    """Hash of the kernel sources and of the edits that derive the kernels' GEMM kernel."""
    h = hashlib.sha256()
    for path in [*sorted(SOURCE_DIR.glob("*.cu*")), Path(cutlass_pingpong.__file__)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "elas_compile"


def default_library_path() -> Path:
    return cache_dir() / f"libelas_cutlass-{source_hash()}.so"


def nvcc_flags(cutlass: Path, generated: Path) -> list[str]:
    return ["-std=c++20", "-O3", "-DNDEBUG", "--expt-relaxed-constexpr", "-diag-suppress", "20012,2908",
            "-gencode=arch=compute_90a,code=sm_90a", "-Xptxas=-warn-spills", "-Xcompiler", "-fPIC",
            f"-I{cutlass / 'include'}", f"-I{cutlass / 'tools' / 'util' / 'include'}", f"-I{SOURCE_DIR}",
            f"-I{generated}"]


def _compile_all(nvcc: str, cutlass: Path, out: Path) -> None:
    """One object per source, compiled in parallel (each takes minutes), then linked."""
    generated = out.parent / f"{out.stem}.gen"  # the derived ping-pong kernel (cutlass_pingpong)
    cutlass_pingpong.write(cutlass, generated)
    objs = [out.parent / f"{out.stem}.{Path(src).stem}.o" for src in SOURCES]
    procs = [subprocess.Popen([nvcc, *nvcc_flags(cutlass, generated), "-c", str(SOURCE_DIR / src), "-o", str(obj)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for src, obj in zip(SOURCES, objs)]
    errors = [p.communicate()[1] for p in procs]
    for src, err in zip(SOURCES, errors):
        for line in err.splitlines():
            if "spill" in line.lower():
                print(f"{src}: {line}", file=sys.stderr)
    failed = [f"{src}:\n{err[-3000:]}" for src, err, p in zip(SOURCES, errors, procs) if p.returncode != 0]
    if not failed:
        link = subprocess.run([nvcc, "-shared", *map(str, objs), "-o", str(out)], capture_output=True, text=True)
        if link.returncode != 0:
            failed.append("link:\n" + link.stderr[-3000:])
    for obj in objs:
        obj.unlink(missing_ok=True)
    shutil.rmtree(generated, ignore_errors=True)
    if failed:
        raise RuntimeError("nvcc failed:\n" + "\n".join(failed))


def build(cutlass: str | os.PathLike | None = None, out: str | os.PathLike | None = None) -> Path:
    """Compile the library; returns its path. Raises RuntimeError naming what is missing."""
    root = Path(cutlass or os.environ.get("CUTLASS_PATH", ""))
    if not str(root) or not (root / "include" / "cutlass" / "cutlass.h").is_file():
        raise RuntimeError("CUTLASS headers not found: pass --cutlass DIR (a checkout of "
                           "github.com/NVIDIA/cutlass) or set CUTLASS_PATH")
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise RuntimeError("nvcc not found on PATH: install the CUDA toolkit (>= 12.3) to build the CUTLASS kernels")
    target = Path(out) if out else default_library_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.so")
    _compile_all(nvcc, root, tmp)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elas_compile.kernels.cutlass.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutlass", help="CUTLASS checkout (default: $CUTLASS_PATH)")
    parser.add_argument("--out", help=f"library path (default: {default_library_path()})")
    args = parser.parse_args(argv)
    try:
        path = build(args.cutlass, args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
