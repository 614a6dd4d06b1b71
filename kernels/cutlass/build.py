"""Build the CUTLASS kernels (``*.cu`` beside this file) into one shared library, once per machine.

    elas-compile build-kernels [--arch sm_90a] [--cutlass DIR] [--out FILE]
    python -m elas_compile.kernels.cutlass.build   (the same)

:mod:`elas_compile.kernels.cutlass.ops` calls :func:`build` on the first use of the kernels on a
GPU they support; the command does it ahead of time and reports what it found. The toolchain is
found by :mod:`toolchain` (CUTLASS headers from ``pip install "elas-compile[cuda]"`` or
``$CUTLASS_PATH``, nvcc). The library has C entry points and no torch headers, so one build serves
every torch version; it links the CUDA runtime statically. It is cached under a name that carries
a hash of the kernel sources, the CUTLASS and nvcc versions and the architecture
(:func:`default_library_path`), so none of them can change under a stale build. A file lock beside
it makes concurrent processes (torchrun's) build once: the others wait and load the result.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from elas_compile.kernels.cutlass import pingpong, toolchain as tc
from elas_compile.kernels.native import build_once, cache_dir

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("up_relu2_sparse24.cu", "grad_relu2_sparse24.cu")
ETA = "about a minute"  # 58 s on 2 cores, 34 s on 16: printed so that the wait is expected


class BuildError(RuntimeError):
    """nvcc failed; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


def source_hash() -> str:
    """Hash of the kernel sources, of the edits that derive the kernels' GEMM kernel and of this
    file (its nvcc flags)."""
    h = hashlib.sha256()
    for path in [*sorted(SOURCE_DIR.glob("*.cu*")), Path(pingpong.__file__), Path(__file__)]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def library_key(cutlass_version: str, nvcc_version: str, arch: str) -> str:
    parts = (source_hash(), cutlass_version, nvcc_version, arch)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def default_library_path(tools: tc.Toolchain, arch: str) -> Path:
    """Where the library built by ``tools`` for ``arch`` is cached."""
    return cache_dir() / f"libelas_cutlass-{arch}-{library_key(tools.headers.version, tools.nvcc.version, arch)}.so"


def nvcc_flags(tools: tc.Toolchain, arch: str, generated: Path) -> list[str]:
    compute = arch.replace("sm_", "compute_")
    return ["-std=c++20", "-O3", "-DNDEBUG", "--expt-relaxed-constexpr", "-diag-suppress", "20012,2908",
            f"-gencode=arch={compute},code={arch}", "-Xptxas=-warn-spills", "-Xcompiler", "-fPIC",
            *(f"-I{d}" for d in tools.headers.include_dirs), f"-I{SOURCE_DIR}", f"-I{generated}"]


def compile_library(tools: tc.Toolchain, arch: str, out: Path) -> None:
    """One object per source, compiled in parallel, then linked into ``out``. Raises BuildError."""
    generated = out.parent / f"{out.name}.gen"  # the derived ping-pong kernel (pingpong.py)
    objs = [out.parent / f"{out.name}.{Path(src).stem}.o" for src in SOURCES]
    nvcc = str(tools.nvcc.path)
    try:
        pingpong.write(tools.headers.root, generated)
        procs = [subprocess.Popen([nvcc, *nvcc_flags(tools, arch, generated), "-c", str(SOURCE_DIR / src), "-o", str(obj)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for src, obj in zip(SOURCES, objs)]
        outputs = [p.communicate()[0] for p in procs]
        for src, output in zip(SOURCES, outputs):
            for line in output.splitlines():
                if "spill" in line.lower():  # a kernel that spills is slower than measured: say so
                    print(f"{src}: {line}", file=sys.stderr)
        failed = [f"{src}:\n{output}" for src, output, p in zip(SOURCES, outputs, procs) if p.returncode != 0]
        if not failed:
            link = subprocess.run([nvcc, "-shared", *map(str, objs), "-o", str(out)], capture_output=True, text=True)
            if link.returncode != 0:
                failed.append("link:\n" + link.stdout + link.stderr)
    except (RuntimeError, OSError) as e:  # pingpong: the header is not the text it edits; nvcc did not start
        raise BuildError(str(e)) from None
    finally:
        for obj in objs:
            obj.unlink(missing_ok=True)
        shutil.rmtree(generated, ignore_errors=True)
    if failed:
        raise BuildError(f"nvcc {tools.nvcc.version} failed to build the CUTLASS kernels", "\n".join(failed))


def build(tools: tc.Toolchain, arch: str, out: Optional[Path] = None) -> tuple[Path, Optional[float]]:
    """The library at ``out`` (default: :func:`default_library_path`), built unless it exists;
    returns its path and the build's seconds (None when it existed). A process that waited for
    another one's build which failed raises that failure instead of compiling again."""
    target = Path(out) if out else default_library_path(tools, arch)
    failure_log = target.with_name(target.name + ".failed")  # the compiler's output of the last failed build
    seen = _read(failure_log)

    def compile_to(tmp: Path) -> None:
        if _read(failure_log) != seen:
            raise BuildError(f"another process failed to build {target.name} while this one waited; "
                             f"its compiler output: {failure_log}")
        print(f"elas_compile: building the CUTLASS kernels for {arch} ({ETA}, once)...", file=sys.stderr, flush=True)
        try:
            compile_library(tools, arch, tmp)
        except BuildError as e:
            failure_log.write_text(f"# pid {os.getpid()} at {time.time_ns()}\n{e}\n{e.output}")
            raise

    start = time.perf_counter()
    if not build_once(target, compile_to):
        return target, None
    seconds = time.perf_counter() - start
    print(f"elas_compile: built the CUTLASS kernels in {seconds:.0f} s: {target}", file=sys.stderr, flush=True)
    return target, seconds


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=sorted(set(tc.ARCHS.values())),
                        help="the GPU architecture to build for (default: this machine's GPU; sm_90a without one)")
    parser.add_argument("--cutlass", metavar="DIR", help="a CUTLASS source tree (default: $CUTLASS_PATH, "
                        "else the nvidia-cutlass package's headers)")
    parser.add_argument("--out", metavar="FILE", help="where to write the library (default: the cache, "
                        "where elas_compile looks for it)")


def _gpu_arch() -> tuple[str, Optional[str]]:
    """(what this machine's GPU is, the arch to build for or None if the kernels do not support it)."""
    import torch

    if not torch.cuda.is_available():
        return "no GPU", None
    cap = torch.cuda.get_device_capability()
    return f"{torch.cuda.get_device_name()} (sm_{cap[0]}{cap[1]})", tc.ARCHS.get(cap)


def cmd_build_kernels(ns: argparse.Namespace) -> int:
    """``elas-compile build-kernels``: build the library now and say what was used."""
    found_headers, found_nvcc = tc.find_headers(ns.cutlass), tc.find_nvcc()
    headers, nvcc = found_headers[0], found_nvcc[0]
    gpu, gpu_arch = _gpu_arch()
    arch = ns.arch or gpu_arch or (next(iter(tc.ARCHS.values())) if gpu == "no GPU" else None)
    print(f"CUTLASS headers: {f'{headers.root} ({headers.version}, {headers.origin})' if headers else 'not found'}")
    print(f"nvcc:            {f'{nvcc.path} ({nvcc.version})' if nvcc else 'not found'}")
    print(f"GPU:             {gpu}", flush=True)
    tools, reason = tc.toolchain_of(found_headers, found_nvcc)
    if arch is None:
        reason = f"the CUTLASS kernels need sm_90 (Hopper), this GPU is {gpu}; pass --arch to build for another machine"
    if reason:
        print(f"elas_compile: cannot build the CUTLASS kernels: {reason}", file=sys.stderr)
        return 1
    print(f"arch:            {arch}", flush=True)
    try:
        path, seconds = build(tools, arch, Path(ns.out) if ns.out else None)
    except BuildError as e:
        print(f"elas_compile: {e}:\n{e.output[-3000:]}", file=sys.stderr)
        return 1
    print(f"library:         {path} ({'already built' if seconds is None else f'built in {seconds:.1f} s'})")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elas_compile.kernels.cutlass.build",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return cmd_build_kernels(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
