"""The checkpoint folder: everything an exact resume needs, no pickle.

A checkpoint is the folder ``<run>/checkpoint/`` with

- ``dcp/``: model and optimizer state, sharded, written by every rank with
  ``torch.distributed.checkpoint`` (:mod:`.dcp`); loads on any world size;
- ``model.safetensors``: the full (unsharded, rewritten) weights, for inference and export;
- ``state.safetensors`` + ``state.json``: the sparsity schedule, every rank's RNG states (tensors
  in the first, the rest with references into it), the step and the token count.

It is written to ``checkpoint.tmp/`` and renamed into place, so a crash mid-save leaves the
previous checkpoint intact. Format-1 checkpoints (before DCP) still load in one process.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from safetensors.torch import load_file, load_model, save_file

from elas_compile.train.errors import TrainError, first_line

FORMAT = 2  # 1: weights and optimizer in safetensors (no dcp/); read by load_legacy_checkpoint


def encode(obj: Any, prefix: str, tensors: Dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with its tensors moved into ``tensors`` (by name)."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, encode(v, f"{prefix}.{i}", tensors)] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def decode(obj: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: decode(v, tensors) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        return {k: decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


def write_states(folder: Path, states: Dict[str, Any], meta: Dict[str, Any], fmt: int = FORMAT) -> None:
    """``state.safetensors`` + ``state.json``: the small, replicated states and ``meta``."""
    tensors: Dict[str, torch.Tensor] = {}
    encoded = {name: encode(state, name, tensors) for name, state in states.items()}
    save_file(tensors, str(folder / "state.safetensors"))
    doc = {"format": fmt, "meta": meta, "states": encoded}
    (folder / "state.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")


def read_states(ckpt: Path) -> Tuple[Dict[str, Any], Dict[str, Any], int]:
    """``(states, meta, format)`` of a checkpoint folder."""
    try:
        doc = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        tensors = load_file(str(ckpt / "state.safetensors"))
    except Exception as e:
        raise TrainError(f"cannot read checkpoint {ckpt}: {first_line(e)}") from None
    states = {name: decode(state, tensors) for name, state in doc["states"].items()}
    return states, doc["meta"], doc.get("format")


def publish(tmp: Path, final: Path) -> Path:
    """Move a complete checkpoint folder ``tmp`` into place at ``final`` (keeping the previous one
    as ``checkpoint.old`` until the rename is done)."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The run's last complete checkpoint (``checkpoint.old`` if a save was interrupted)."""
    for name in ("checkpoint", "checkpoint.old"):
        ckpt = run_dir / name
        if (ckpt / "state.json").is_file() and ((ckpt / "dcp" / ".metadata").is_file()
                                                 or (ckpt / "model.safetensors").is_file()):
            return ckpt
    return None


def load_legacy_checkpoint(ckpt: Path, model: nn.Module) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """A format-1 checkpoint (before DCP: weights only in ``model.safetensors``, the optimizer
    state keyed by parameter index): load the weights strictly, return ``(states, meta)``."""
    try:
        missing, unexpected = load_model(model, str(ckpt / "model.safetensors"), strict=False)
    except Exception as e:
        raise TrainError(f"cannot read checkpoint {ckpt}: {first_line(e)}") from None
    if missing or unexpected:
        raise TrainError(
            f"checkpoint {ckpt} does not match the model (missing {len(missing)}, "
            f"unexpected {len(unexpected)} weights); was the run started with other options?"
        )
    states, meta, _ = read_states(ckpt)
    return states, meta
