"""The checkpoint folder: everything an exact resume needs, no pickle, checked when read back.

A checkpoint is the folder ``<run>/checkpoint/`` with

- ``dcp/``: model and optimizer state, sharded, written by every rank with
  ``torch.distributed.checkpoint`` (:mod:`.dcp`); loads on any world size;
- ``model.safetensors``: the full (unsharded, rewritten) weights, for inference and export;
- ``state.safetensors`` + ``state.json``: the sparsity schedule, every rank's RNG states (tensors
  in the first, the rest with references into it), the step and the token count; ``state.json``
  also records the format and the sha256 of every other file, and is written last.

It is written to ``checkpoint.tmp/``, every file and folder is fsync'ed, and only then is it
renamed into place: a crash or a power cut mid-save leaves the previous checkpoint intact. On
resume the recorded checksums are verified before anything is loaded, so a file damaged on disk
or in a copy stops the run with one line instead of resuming on corrupted weights. The format is
read from ``state.json``: 3 (checksums), 2 (before checksums; loads unverified), 1 (before DCP:
weights and optimizer in safetensors; one process only).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

import torch
import torch.nn as nn
from safetensors.torch import load_file, load_model, save_file

from elas_compile.data import fsync_path
from elas_compile.train.errors import TrainError, first_line

FORMAT = 3
READABLE_FORMATS = (1, 2, 3)


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


def seal(path: Path) -> str:
    """The sha256 of a file, after flushing it to the disk (the bytes hashed are the bytes kept)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
        os.fsync(f.fileno())
    return h.hexdigest()


def seal_files(folder: Path, paths: Iterable[Path]) -> Dict[str, str]:
    """``{path relative to folder: sha256}`` of ``paths`` (each fsync'ed)."""
    return {p.relative_to(folder).as_posix(): seal(p) for p in sorted(paths)}


def write_states(folder: Path, states: Dict[str, Any], meta: Dict[str, Any], files: Dict[str, str]) -> None:
    """``state.safetensors`` + ``state.json`` (the small, replicated states, ``meta`` and the
    checksums ``files`` of the other files, to which ``state.safetensors``' is added), fsync'ed."""
    tensors: Dict[str, torch.Tensor] = {}
    encoded = {name: encode(state, name, tensors) for name, state in states.items()}
    save_file(tensors, str(folder / "state.safetensors"))
    files = {**files, "state.safetensors": seal(folder / "state.safetensors")}
    doc = {"format": FORMAT, "meta": meta, "states": encoded, "files": files}
    with open(folder / "state.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1))
        f.flush()
        os.fsync(f.fileno())
    for d in sorted({p.parent for p in folder.rglob("*")} | {folder}, key=lambda d: -len(d.parts)):
        fsync_path(d)  # the folders' entries: the files are reachable after a power cut


def read_doc(ckpt: Path) -> Dict[str, Any]:
    """``state.json`` of a checkpoint, with its format checked."""
    try:
        doc = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        fmt = doc.get("format")
    except (OSError, ValueError, AttributeError) as e:
        raise TrainError(f"cannot read checkpoint {ckpt}: {first_line(e)}") from None
    if fmt not in READABLE_FORMATS:
        raise TrainError(f"checkpoint {ckpt} has format {fmt!r}; this version reads {READABLE_FORMATS} "
                         f"(upgrade elas-compile to resume it)")
    return doc


def verify(ckpt: Path) -> int:
    """Check a checkpoint before it is loaded: its files are there and (format 3) match the
    sha256 that ``state.json`` recorded. Returns the format."""
    doc = read_doc(ckpt)
    fmt = doc["format"]
    if fmt >= 2 and not (ckpt / "dcp" / ".metadata").is_file():
        raise TrainError(f"checkpoint {ckpt} is incomplete: dcp/.metadata is missing (was the folder copied "
                         f"in part?); restore it or start over")
    for rel, digest in (doc.get("files") or {}).items():
        path = ckpt / rel
        if not path.is_file():
            raise TrainError(f"checkpoint {ckpt} is incomplete: {rel} is missing; restore it or start over")
        try:
            ok = seal(path) == digest
        except OSError as e:
            raise TrainError(f"cannot read checkpoint file {path}: {e.strerror or e}") from None
        if not ok:
            raise TrainError(f"checkpoint {ckpt} is corrupt: {rel} does not match the sha256 recorded when it "
                             f"was saved; restore it from a copy or start over")
    return fmt


def read_states(ckpt: Path) -> Tuple[Dict[str, Any], Dict[str, Any], int]:
    """``(states, meta, format)`` of a checkpoint folder."""
    doc = read_doc(ckpt)
    try:
        tensors = load_file(str(ckpt / "state.safetensors"))
        states = {name: decode(state, tensors) for name, state in doc["states"].items()}
        return states, doc["meta"], doc["format"]
    except Exception as e:
        raise TrainError(f"cannot read checkpoint {ckpt}: {first_line(e)}") from None


def publish(tmp: Path, final: Path) -> Path:
    """Move a complete checkpoint folder ``tmp`` into place at ``final`` (keeping the previous one
    as ``checkpoint.old`` until the rename is done), and flush the renames to the disk."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_path(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path) -> Optional[Path]:
    """The run's last published checkpoint (``checkpoint.old`` if a save was interrupted between
    its two renames). Only a complete folder is ever renamed into place, and ``state.json`` says
    what it holds (:func:`verify`)."""
    for name in ("checkpoint", "checkpoint.old"):
        ckpt = run_dir / name
        if (ckpt / "state.json").is_file():
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
