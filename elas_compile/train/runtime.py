"""Where and how a run executes: device, precision, compile, process rank, RNG state.

Everything rank-dependent goes through :class:`Runtime`: logging, plots, metrics and progress bars
happen on ``is_main`` only, the sampler shards the global batch by rank. ``--parallel ddp|fsdp``
runs get theirs from :func:`elas_compile.train.distributed.setup_runtime` (torchrun's env).
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Dict, Optional

import torch

from elas_compile.train.errors import TrainError


@dataclass
class Runtime:
    device: torch.device
    amp_dtype: Optional[torch.dtype]  # bf16 autocast on GPU, None = fp32
    compile: bool
    rank: int = 0
    world_size: int = 1
    parallel: str = "none"  # none | ddp | fsdp
    owns_process_group: bool = False  # destroy it at the end of the run
    compile_mode: Optional[str] = None  # torch.compile's mode (None: its default)
    threads: Optional[int] = None  # torch's CPU threads

    @property
    def cudagraphs(self) -> bool:
        return self.compile and self.compile_mode in CUDAGRAPH_MODES

    def compile_model(self, model, backend: str = "inductor"):
        """``torch.compile(model)`` in ``compile_mode``, or ``model`` when not compiling. Every
        compiled variant, baselines included, gets the passes any LLaMA-like model gains from
        (``elas_compile.passes.compile.trig_tables``, ``elas_compile.passes.compile.layout_copies``)."""
        if not self.compile:
            return model
        from elas_compile.passes.compile import inductor

        inductor.enable_step_passes()
        return torch.compile(model, mode=self.compile_mode, backend=backend)

    def step_begin(self) -> None:
        """Call before each training step: CUDA graphs may then reuse the last step's buffers."""
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> str:
        prec = "bf16 autocast" if self.amp_dtype == torch.bfloat16 else "fp32"
        comp = (f"torch.compile mode={self.compile_mode}" if self.compile_mode else "torch.compile") if self.compile else "eager"
        par = f", {self.parallel} x{self.world_size}" if self.parallel != "none" else ""
        cpu = f", {self.threads} CPU thread{'s' if self.threads != 1 else ''}" if self.device.type == "cpu" else ""
        return f"{self.device} ({prec}, {comp}{par}{cpu})"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
MAX_DEFAULT_THREADS = 4  # the presets' matrices on a CPU stop gaining from more threads around here


def default_threads() -> int:
    """CPU threads for torch when ``--threads`` is not given: ``min(4, cores - busy cores)``, at
    least 1, where ``busy`` is the 1-minute load average rounded. On a 2-core machine with one
    other busy process, torch's default (2 threads) made the default run 3.5-4x slower than one
    thread (its threads wait on each other while one of them is descheduled); on an idle one, 2
    threads are ~1.4x faster than 1 (docs/train.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = int(os.getloadavg()[0] + 0.5) if hasattr(os, "getloadavg") else 0
    return max(1, min(MAX_DEFAULT_THREADS, cores - busy))


def set_threads(threads: Optional[int]) -> int:
    """Apply ``--threads``, or the default: :func:`default_threads`, unless ``OMP_NUM_THREADS``
    chose already (torchrun sets it to 1 per process)."""
    if threads is not None:
        if threads < 1:
            raise TrainError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_threads())
    return torch.get_num_threads()


def resolve_compile_mode(compile_mode: Optional[str], compile: bool, dev: torch.device,
                         parallel: str) -> Optional[str]:
    """``--compile-mode``, checked; unset: CUDA graphs (``reduce-overhead``) for one process on CUDA,
    torch.compile's default otherwise. ``None`` stands for torch.compile's default mode."""
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise TrainError(f"unknown --compile-mode {compile_mode!r}; use one of {', '.join(COMPILE_MODES)}")
    if compile_mode in CUDAGRAPH_MODES and dev.type != "cuda":
        raise TrainError(f"--compile-mode {compile_mode} uses CUDA graphs and needs a CUDA device")
    if compile_mode in CUDAGRAPH_MODES and parallel == "fsdp":
        raise TrainError(f"--compile-mode {compile_mode} (CUDA graphs) cannot capture FSDP2's per-block "
                         f"collectives; use --compile-mode default with --parallel fsdp")
    if compile_mode is None and compile and dev.type == "cuda" and parallel == "none":
        compile_mode = "reduce-overhead"  # without CUDA graphs cuSPARSELt's host cost makes ELAS slower
    return None if compile_mode == "default" or not compile else compile_mode


def make_runtime(device: str = "auto", precision: str = "auto", compile: Optional[bool] = None,
                 threads: Optional[int] = None, compile_mode: Optional[str] = None,
                 parallel: str = "none") -> Runtime:
    """Resolve the ``--device`` / ``--precision`` / ``--compile`` / ``--compile-mode`` /
    ``--threads`` options.

    Defaults: CUDA when available; bf16 autocast on CUDA, fp32 on CPU; ``torch.compile`` on CUDA
    (with CUDA graphs for one process) and off on CPU (compiling the tiny model on a 2-core CPU
    costs over a minute and gains nothing); CPU threads as :func:`default_threads` says.
    """
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise TrainError(f"unknown --device {device!r}; use auto, cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise TrainError("--device cuda was asked for but no CUDA GPU is available")
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    if precision not in ("bf16", "fp32"):
        raise TrainError(f"unknown --precision {precision!r}; use auto, bf16 or fp32")
    if compile is None:
        compile = dev.type == "cuda"
    mode = resolve_compile_mode(compile_mode, compile, dev, parallel)
    n_threads = set_threads(threads)
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")  # fp32 matmuls outside autocast on tensor cores
    return Runtime(device=dev, amp_dtype=torch.bfloat16 if precision == "bf16" else None, compile=compile,
                   compile_mode=mode, threads=n_threads)


def rng_state() -> Dict[str, object]:
    """Every RNG a training step may touch (dropout, sampling), for an exact resume."""
    state: Dict[str, object] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, object]) -> None:
    torch.set_rng_state(state["torch"])
    py = state.get("python")
    if py is not None:
        random.setstate(_to_tuple(py))
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
