"""Checkpoints in safetensors (no pickle): everything an exact resume needs.

A checkpoint is the folder ``<run>/checkpoint/`` with

- ``model.safetensors``: the (uncompiled, rewritten) model's weights;
- ``state.safetensors``: every tensor of the optimizer, sparsity-schedule and RNG states;
- ``state.json``: the rest of those states (with references into ``state.safetensors``), the
  step and the token count.

It is written to ``checkpoint.tmp/`` and renamed into place, so a crash mid-save leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
from safetensors.torch import load_file, load_model, save_file, save_model

from elas_compile.train.errors import TrainError, first_line

FORMAT = 1


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


def save_checkpoint(run_dir: Path, model: nn.Module, states: Dict[str, Any], meta: Dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoint`` atomically. ``states`` maps names (``optimizer``,
    ``sparsity``, ``rng``) to state objects; ``meta`` holds plain JSON (step, tokens...)."""
    final = run_dir / "checkpoint"
    tmp = run_dir / "checkpoint.tmp"
    old = run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    tensors: Dict[str, torch.Tensor] = {}
    encoded = {name: encode(state, name, tensors) for name, state in states.items()}
    save_file(tensors, str(tmp / "state.safetensors"))
    doc = {"format": FORMAT, "meta": meta, "states": encoded}
    (tmp / "state.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
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
        if (ckpt / "state.json").is_file() and (ckpt / "model.safetensors").is_file():
            return ckpt
    return None


def load_checkpoint(ckpt: Path, model: nn.Module) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Load the weights into ``model`` (strictly) and return ``(states, meta)``."""
    try:
        doc = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        missing, unexpected = load_model(model, str(ckpt / "model.safetensors"), strict=False)
        tensors = load_file(str(ckpt / "state.safetensors"))
    except Exception as e:
        raise TrainError(f"cannot read checkpoint {ckpt}: {first_line(e)}") from None
    if missing or unexpected:
        raise TrainError(
            f"checkpoint {ckpt} does not match the model (missing {len(missing)}, "
            f"unexpected {len(unexpected)} weights); was the run started with other options?"
        )
    if doc.get("format") != FORMAT:
        raise TrainError(f"checkpoint {ckpt} has format {doc.get('format')}, expected {FORMAT}")
    states = {name: decode(state, tensors) for name, state in doc["states"].items()}
    return states, doc["meta"]
