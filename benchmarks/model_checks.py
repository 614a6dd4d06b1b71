"""The model arguments of the suites that build whole models (step, prefill, memory), and their checks."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import torch

CPU_PRESETS = ("llama-tiny",)  # the only preset a CPU runs, as a smoke test


def add_model_arguments(p: argparse.ArgumentParser, presets: Sequence[str], variants: Sequence[str]) -> None:
    """``--preset`` and ``--variants`` (names of ``elas-compile bench``'s presets and variants)."""
    p.add_argument("--preset", nargs="+", default=list(presets), metavar="NAME",
                   help=f"model presets (default {' '.join(presets)}; a CPU runs llama-tiny only)")
    p.add_argument("--variants", nargs="+", default=list(variants), metavar="NAME",
                   help=f"elas-compile bench variants (default {' '.join(variants)})")


def model_refusal(variants: Sequence[str], presets: Sequence[str], device: torch.device, per: str = "step",
                  gpus: int = 1) -> Optional[str]:
    """Why these variants and presets cannot be measured here (None when they can): unknown names,
    a paper preset on a CPU (minutes a ``per``, nothing learned about GPUs), more GPUs than there are."""
    from elas_compile.train.bench import VARIANTS
    from elas_compile.train.presets import PRESETS

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        return f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        return f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}"
    paper = [p for p in presets if p not in CPU_PRESETS]
    if device.type != "cuda" and paper:
        return (f"{', '.join(paper)} on a CPU would take minutes a {per} and measure nothing about GPUs; "
                "run on a CUDA GPU, or pass --preset llama-tiny for a smoke run")
    if gpus < 1 or (gpus > 1 and (device.type != "cuda" or gpus > torch.cuda.device_count())):
        return f"--gpus {gpus}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
    return None
