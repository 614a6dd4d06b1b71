"""The training loop of ``elas-compile train``: one :class:`Trainer` step after another.

One step: LR from the step number, the sampler's batch for that step (split into ``--grad-accum``
micro-batches whose gradients add up to the whole batch's), forward under autocast, cross-entropy,
backward, gradient clipping, AdamW, then ``SparsitySchedule.step()``. Everything a step depends on
is a function of the step number or lives in the checkpoint, so a resumed run reproduces the
straight run's losses exactly.

With ``--parallel ddp|fsdp`` (under torchrun) every rank runs this loop on its share of the global
batch; the logged loss, gradient norm and validation loss are those of the global batch, and only
rank 0 writes files, logs and draws the progress bar.
"""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from elas_compile.train import distributed as D
from elas_compile.train.dcp import load_checkpoint, save_checkpoint
from elas_compile.train.errors import TrainError
from elas_compile.train.optim import lr_at, set_lr
from elas_compile.train.parallel import grad_norm_
from elas_compile.train.runtime import Runtime
from elas_compile.train.signals import Interrupted, StopSignals


class Diverged(TrainError):
    """The loss became NaN/inf (exit status 1, not a usage error)."""

    exit_status = 1


def lm_loss(loss_fn, batch: torch.Tensor, runtime: Runtime, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy of a ``[B, T+1]`` batch (mean, or sum with ``reduction="sum"``);
    ``loss_fn`` is :func:`wrap_model`'s module (the model and its loss, compiled together)."""
    runtime.step_begin()  # under CUDA graphs: the previous call's output buffers may be reused
    with runtime.autocast():
        return loss_fn(batch, reduction)


@torch.no_grad()
def evaluate(loss_fn, batches: List[torch.Tensor], runtime: Runtime) -> float:
    """Token-weighted mean validation loss (``loss_fn`` as in :func:`lm_loss`) over the global
    validation batches; each rank takes its rows of every batch. A rank with no row of a (small,
    last) batch still runs it, weighted 0, so that FSDP's collectives stay in step."""
    was_training = loss_fn.training
    loss_fn.eval()
    total, count = 0.0, 0
    for b in batches:
        rows = b.tensor_split(runtime.world_size)[runtime.rank]
        weight = 1.0 if rows.shape[0] else 0.0
        rows = (rows if rows.shape[0] else b[:1]).to(runtime.device, non_blocking=True)
        total += lm_loss(loss_fn, rows, runtime, reduction="sum").item() * weight
        count += rows[:, 1:].numel() * int(weight)
    loss_fn.train(was_training)
    total, count = D.all_sum([total, float(count)], runtime)
    return total / max(count, 1)


def accumulate_gradients(loss_fn, batch: torch.Tensor, runtime: Runtime, micro_batches: int) -> torch.Tensor:
    """Forward and backward ``batch`` in ``micro_batches`` equal parts; the gradients (and the
    returned, detached loss) are those of the whole batch's mean loss."""
    total = torch.zeros((), device=runtime.device)
    for part in batch.chunk(micro_batches):
        loss = lm_loss(loss_fn, part, runtime) / micro_batches
        loss.backward()
        total = total + loss.detach()  # a new tensor: a CUDA graph's output buffer is reused next call
    return total


class Trainer:
    """The state of a run between steps (step, tokens, time) and what a step needs."""

    def __init__(self, o: Dict[str, Any], rt: Runtime, data, model, loss_fn, optimizer, schedule, run_dir: Path):
        self.o, self.rt, self.data, self.run_dir = o, rt, data, run_dir
        self.model, self.loss_fn, self.optimizer, self.schedule = model, loss_fn, optimizer, schedule
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.step, self.tokens, self.elapsed, self.last_save = 0, 0, 0.0, 0
        self.tokens_per_step = o["batch_size"] * o["seq_len"]  # the global batch

    def restore(self, ckpt: Path) -> None:
        states, meta = load_checkpoint(ckpt, self.model, self.optimizer, self.rt)
        if self.schedule is not None and "sparsity" in states:
            self.schedule.load_state_dict(states["sparsity"])
        self.step, self.tokens, self.elapsed = meta["step"], meta["tokens"], meta.get("elapsed_s", 0.0)
        self.last_save = self.step

    def save(self) -> None:
        states = {"sparsity": self.schedule.state_dict()} if self.schedule is not None else {}
        save_checkpoint(self.run_dir, self.model, self.optimizer, states,
                        {"step": self.step, "tokens": self.tokens, "elapsed_s": self.elapsed}, self.rt)
        self.last_save = self.step

    def train_step(self, stop_requested: bool) -> Tuple[Dict[str, Any], float, bool]:
        """One optimizer step: ``(metrics row, seconds, whether any rank was asked to stop)``."""
        o, rt = self.o, self.rt
        lr = lr_at(self.step, lr=o["lr"], warmup_steps=o["warmup_steps"], total_steps=o["steps"],
                   min_lr_ratio=o["min_lr_ratio"])
        set_lr(self.optimizer, lr)
        batch = self.data.sampler.batch(self.data.split.train, self.step).to(rt.device, non_blocking=True)
        sparse = bool(self.schedule is not None and self.schedule.sparse_active)  # this step's mode
        t0 = time.perf_counter()
        loss = accumulate_gradients(self.loss_fn, batch, rt, o.get("grad_accum", 1))
        gnorm = grad_norm_(self.params, o["grad_clip"])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.schedule is not None:
            self.schedule.step()
        # one collective: the global batch's mean loss, and whether any rank got a stop signal
        loss_sum, stops = D.all_sum([loss.item(), float(stop_requested)], rt)
        loss_v = loss_sum / rt.world_size
        rt.synchronize()
        dt = time.perf_counter() - t0
        self.elapsed += dt
        self.step += 1
        self.tokens += self.tokens_per_step
        if not math.isfinite(loss_v):
            raise Diverged(f"training diverged at step {self.step} (loss {loss_v}); try a lower --lr "
                           f"or a longer --dense-warmup-steps")
        row = {"step": self.step, "tokens": self.tokens, "lr": lr, "loss": loss_v, "grad_norm": gnorm,
               "tokens_per_s": self.tokens_per_step / max(dt, 1e-9), "sparse_active": sparse,
               "elapsed_s": self.elapsed}
        return row, dt, stops > 0

    def run(self, stop_at: int, metrics, reporter, bar) -> Optional[int]:
        """Train until ``stop_at``, or until a stop signal: then save and return its number."""
        o, total = self.o, self.o["steps"]
        try:
            with StopSignals() as signals:
                while self.step < stop_at:
                    row, dt, stopping = self.train_step(signals.requested)
                    if (o["eval_every"] and self.step % o["eval_every"] == 0) or self.step == total:
                        row["val_loss"] = evaluate(self.loss_fn, self.data.eval, self.rt)
                    if metrics is not None:
                        metrics.log(row)
                    if reporter is not None:
                        reporter.step(row, total, dt)
                    if bar is not None:
                        bar.set_postfix({"loss": f"{row['loss']:.3f}", "tok/s": f"{row['tokens_per_s']:,.0f}"},
                                        refresh=False)
                        bar.update(1)
                    if (o["save_every"] and self.step % o["save_every"] == 0) or self.step == stop_at or stopping:
                        self.save()
                    if stopping:
                        return signals.signum or signal.SIGTERM  # another rank got it
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted at step {self.step}; the checkpoint of step {self.last_save} in "
                              f"{self.run_dir} stands, continue with --resume") from None
        return None
