"""Data-parallel runs under torchrun: the process group, each rank's device, the few collectives.

    torchrun --nproc-per-node 4 -m elas_compile train --parallel fsdp

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup_runtime` reads them, initialises the process group (NCCL on CUDA, gloo on CPU) and
puts rank ``r`` on ``cuda:LOCAL_RANK``. ``--parallel ddp|fsdp`` without torchrun runs as one
process with a one-member process group (FSDP2 needs one).

Batch rule: ``--batch-size`` is the *global* batch; each of the ``W`` ranks takes
``batch_size / W`` consecutive sequences of it (``BatchSampler``), so the mean loss and the averaged
gradient equal those of one process on the whole batch.
"""
from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.distributed as dist

from elas_compile.train.errors import TrainError
from elas_compile.train.runtime import Runtime, make_runtime

PARALLEL = ("none", "ddp", "fsdp")


def env_rank() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (``(0, 1, 0)`` without)."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise TrainError(f"bad torchrun environment: {e}") from None


def _device_for_rank(device: str, local_rank: int, world_size: int) -> str:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return f"cuda:{local_rank}"
    if device.startswith("cuda:") and world_size > 1:
        raise TrainError(f"--device {device} with {world_size} processes: each rank uses cuda:LOCAL_RANK; "
                         f"pass --device cuda (or auto)")
    return device


def setup_runtime(o: dict) -> Runtime:
    """The :class:`Runtime` of a run: single-process, or one rank of a DDP/FSDP job."""
    parallel = o.get("parallel") or "none"
    if parallel not in PARALLEL:
        raise TrainError(f"unknown --parallel {parallel!r}; use {', '.join(PARALLEL)}")
    rank, world, local = env_rank()
    args = (o.get("precision", "auto"), o.get("compile"), o.get("threads"), o.get("compile_mode"), parallel)
    if parallel == "none":
        if world > 1:
            raise TrainError(f"started as {world} processes (WORLD_SIZE={world}) but --parallel is none: "
                             f"pass --parallel ddp or --parallel fsdp")
        return make_runtime(o.get("device", "auto"), *args)
    device = _device_for_rank(o.get("device", "auto"), local, world)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda was asked for but no CUDA GPU is available")
        if local >= torch.cuda.device_count():
            raise TrainError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) on this node")
        torch.cuda.set_device(local)
    rt = make_runtime(device, *args)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if rt.device.type == "cuda" else "gloo"
        if "MASTER_ADDR" in os.environ:  # torchrun (or a hand-made env://)
            dist.init_process_group(backend, device_id=rt.device if rt.device.type == "cuda" else None)
        else:  # one process, no launcher
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        owns = True
    rt.rank, rt.world_size, rt.parallel, rt.owns_process_group = dist.get_rank(), dist.get_world_size(), parallel, owns
    return rt


def teardown(rt: Runtime) -> None:
    if rt.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()
        rt.owns_process_group = False


def distributed(rt: Runtime) -> bool:
    return rt.parallel != "none" and dist.is_initialized()


def local_batch_size(global_batch: int, world_size: int, grad_accum: int = 1) -> int:
    """This rank's share of ``--batch-size`` (which must split evenly, into ``grad_accum`` equal
    micro-batches on every rank)."""
    if global_batch % (world_size * grad_accum):
        accum = f" x --grad-accum {grad_accum}" if grad_accum > 1 else ""
        raise TrainError(f"--batch-size {global_batch} is the global batch and must be a multiple of the "
                         f"{world_size} processes{accum} (each takes batch_size / {world_size} sequences)")
    return global_batch // world_size


def barrier(rt: Runtime) -> None:
    if distributed(rt) and rt.world_size > 1:
        dist.barrier()


def all_sum(values: List[float], rt: Runtime) -> List[float]:
    """Element-wise sum of ``values`` over the ranks (one collective)."""
    if not distributed(rt) or rt.world_size == 1:
        return list(values)
    dev = rt.device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_mean(value: float, rt: Runtime) -> float:
    return all_sum([value], rt)[0] / rt.world_size


def gather_objects(obj: Any, rt: Runtime) -> List[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled; small objects only)."""
    if not distributed(rt) or rt.world_size == 1:
        return [obj]
    out: List[Any] = [None] * rt.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, rt: Runtime) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not distributed(rt) or rt.world_size == 1:
        return obj
    box = [obj if rt.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class PeerError(TrainError):
    """Raised on the other ranks when rank 0 failed; rank 0 has already said why."""


def main_first(rt: Runtime, fn: Callable[[], Any], errors: tuple = (TrainError,)) -> Optional[Any]:
    """Run ``fn`` on rank 0; if it raises one of ``errors``, raise on every rank (no rank is left
    waiting in a collective). Returns ``fn()``'s result on rank 0, None elsewhere."""
    result, message = None, None
    if rt.is_main:
        try:
            result = fn()
        except errors as e:
            message = str(e) or type(e).__name__
            if not distributed(rt) or rt.world_size == 1:
                raise
            broadcast_object(message, rt)
            raise
    message = broadcast_object(message, rt)
    if message is not None:
        raise PeerError(message)
    return result
