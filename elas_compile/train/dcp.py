"""Sharded checkpoints with ``torch.distributed.checkpoint`` (DCP): save on W ranks, load on any.

The model and optimizer states go through ``torch.distributed.checkpoint.state_dict``, which keys
both by parameter name (FQN) whatever the wrapping (FSDP2 DTensors, DDP, checkpoint wrappers,
compiled blocks), and DCP writes each rank's shards in parallel into ``checkpoint.tmp/dcp/``.
Loading reshards: a checkpoint saved by 8 FSDP ranks loads on 2, or in one process without a
process group (plain tensors). Each rank hashes and fsyncs the shard files it wrote; rank 0 also
writes the full weights (``model.safetensors``) and the small replicated states with every file's
checksum (:func:`elas_compile.train.checkpoint.write_states`), then renames the folder into place.
A save that fails (disk full, read-only folder) removes ``checkpoint.tmp`` and stops the run with
one line; the previous checkpoint stands. Every rank must see the run folder (one shared file
system for multi-node).
"""
from __future__ import annotations

import contextlib
import shutil
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed.checkpoint as dcp
import torch.nn as nn
from safetensors.torch import save_file
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from elas_compile.checkpoint import write_configs
from elas_compile.train.checkpoint import load_legacy_checkpoint, publish, read_states, seal_files, write_states
from elas_compile.train.distributed import barrier, distributed, gather_objects, main_first
from elas_compile.train.errors import TrainError, first_line
from elas_compile.train.runtime import Runtime, rng_state, set_rng_state


@contextlib.contextmanager
def _quiet():
    """No 'torch.distributed is ... uninitialized, assuming ... a single process' warning: one
    process without a process group is a supported case here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _sharded_state(model: nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> Dict[str, Any]:
    if optimizer is None:
        return {"model": get_model_state_dict(model)}
    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd}


def full_weights(model: nn.Module, rt: Runtime) -> Dict[str, torch.Tensor]:
    """The unsharded weights on rank 0, on the CPU (``{}`` on the other ranks); one collective
    per parameter under FSDP2."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True) if distributed(rt) else StateDictOptions()
    sd = get_model_state_dict(model, options=opts)
    # clones: tied weights must not share storage in a safetensors file
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()} if rt.is_main else {}


def cause(e: BaseException) -> BaseException:
    """The exception behind a DCP ``CheckpointException`` (the first failing rank's), else ``e``."""
    if isinstance(e, CheckpointException) and e.failures:
        return next(iter(e.failures.values()))[0]
    return e


def _save_failed(run_dir: Path, e: BaseException) -> TrainError:
    inner = cause(e)
    reason = (inner.strerror or str(inner)) if isinstance(inner, OSError) else first_line(inner)
    shutil.rmtree(run_dir / "checkpoint.tmp", ignore_errors=True)  # a partial save must not fill the disk
    return TrainError(f"cannot save a checkpoint in {run_dir}: {reason} (the partial checkpoint.tmp was removed; "
                      f"the last complete checkpoint stands; fix that and --resume)")


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    states: Dict[str, Any], meta: Dict[str, Any], rt: Runtime) -> Path:
    """Collective: every rank calls it. ``states`` are replicated (rank 0's are written) apart from
    the RNG states, which are gathered from every rank."""
    final, tmp = run_dir / "checkpoint", run_dir / "checkpoint.tmp"

    def make_tmp() -> None:
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        except OSError as e:
            raise _save_failed(run_dir, e) from None

    main_first(rt, make_tmp)
    try:
        with _quiet():
            dcp.save(_sharded_state(model, optimizer), checkpoint_id=str(tmp / "dcp"))
        mine = seal_files(tmp, (tmp / "dcp").glob(f"__{rt.rank}_*.distcp"))
    except (OSError, CheckpointException) as e:
        raise _save_failed(run_dir, e) from None
    weights = full_weights(model, rt)
    rngs = gather_objects(rng_state(), rt)
    sums = {k: v for part in gather_objects(mine, rt) for k, v in part.items()}

    def finish() -> None:
        try:
            save_file(weights, str(tmp / "model.safetensors"))
            write_configs(tmp, getattr(model, "module", model))  # loads with elas_compile.from_pretrained
            rest = [p for p in tmp.rglob("*") if p.is_file() and p.relative_to(tmp).as_posix() not in sums]
            files = {**sums, **seal_files(tmp, rest)}
            write_states(tmp, {**states, "rng": rngs}, {**meta, "world_size": rt.world_size}, files)
            publish(tmp, final)
        except OSError as e:
            raise _save_failed(run_dir, e) from None

    main_first(rt, finish)
    barrier(rt)
    return final


def _dcp_load(state: Dict[str, Any], ckpt: Path) -> None:
    try:
        with _quiet():
            dcp.load(state, checkpoint_id=str(ckpt / "dcp"))
    except (Exception, CheckpointException) as e:  # DCP wraps per-rank failures in a BaseException
        raise TrainError(f"checkpoint {ckpt} does not match the model or cannot be read "
                         f"({first_line(cause(e))}); was the run started with other options?") from None


def load_checkpoint(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    rt: Runtime) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Collective: load model and optimizer state (resharded to this world size) and this rank's
    RNG states; returns ``(states, meta)`` (``states`` holds the sparsity schedule's). The
    checkpoint was verified first (:func:`elas_compile.train.checkpoint.verify`); its format comes
    from ``state.json``."""
    states, meta, fmt = read_states(ckpt)
    if fmt == 1:  # weights and optimizer in safetensors: single-process only
        if distributed(rt):
            raise TrainError(f"{ckpt} is a checkpoint of the previous format; resume it without --parallel")
        states, meta = load_legacy_checkpoint(ckpt, model)
        optimizer.load_state_dict(states["optimizer"])
        set_rng_state(states["rng"])
        return states, meta
    state = _sharded_state(model, optimizer)
    _dcp_load(state, ckpt)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    set_rng_state(pick_rng(states["rng"], rt.rank))
    return states, meta


def pick_rng(rngs: List[Any], rank: int) -> Any:
    """This rank's saved RNG states; on another world size, those of ``rank mod saved ranks``."""
    return rngs[rank % len(rngs)]


def load_weights(ckpt: Path, model: nn.Module) -> nn.Module:
    """Load only the model weights of a (DCP) checkpoint into ``model``: any world size, with or
    without a process group (e.g. a plain model in one process, for inference or evaluation)."""
    state = _sharded_state(model, None)
    _dcp_load(state, ckpt)
    set_model_state_dict(model, state["model"])
    return model
