"""The training loop of ``elas-compile train``.

One step: LR from the step number, the sampler's batch for that step, forward under autocast,
cross-entropy, backward, gradient clipping, AdamW, then ``SparsitySchedule.step()``. Everything a
step depends on is a function of the step number or lives in the checkpoint, so a resumed run
reproduces the straight run's losses exactly.

With ``--parallel ddp|fsdp`` (under torchrun) every rank runs this loop on its share of the global
batch; the logged loss, gradient norm and validation loss are those of the global batch, and only
rank 0 writes files, logs and draws the progress bar.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from elas_compile.data import DataError, atomic_write_text
from elas_compile.train import distributed as D
from elas_compile.train.checkpoint import find_checkpoint
from elas_compile.train.dcp import load_checkpoint, save_checkpoint
from elas_compile.train.errors import TrainError
from elas_compile.train.metrics import MetricsLog
from elas_compile.train.optim import build_optimizer, lr_at, set_lr
from elas_compile.train.options import run_files
from elas_compile.train.parallel import grad_norm_, wrap_model
from elas_compile.train.runtime import Runtime
from elas_compile.train.setup import Data, prepare_data, prepare_model


class Diverged(TrainError):
    """The loss became NaN/inf (exit status 1, not a usage error)."""


def lm_loss(loss_fn, batch: torch.Tensor, runtime: Runtime, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy of a ``[B, T+1]`` batch (mean, or sum with ``reduction="sum"``);
    ``loss_fn`` is :func:`wrap_model`'s module (the model and its loss, compiled together)."""
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


def prepare_run_dir(o: Dict[str, Any], run_dir: Path) -> None:
    # a run that never finished a step (e.g. a crash at start-up) does not count
    metrics = run_dir / "metrics.csv"
    holds_run = find_checkpoint(run_dir) is not None or (
        metrics.is_file() and len(metrics.read_text(encoding="utf-8").splitlines()) > 1)
    if o.get("resume"):
        return
    if holds_run and not o.get("overwrite"):
        raise TrainError(f"{run_dir} already holds a run: pass --resume to continue it, "
                         f"--overwrite to start over, or choose another --out")
    if o.get("overwrite") or not holds_run:
        for p in run_files(run_dir):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _prepare_data(o: Dict[str, Any], run_dir: Path, resume: bool, rt: Runtime) -> Data:
    """Rank 0 builds the data first (trains and caches the tokenizer, checks the run folder); the
    others then use its tokenizer, so every rank tokenizes identically."""
    def on_main() -> Data:
        if not resume:
            prepare_run_dir(o, run_dir)
        return prepare_data(o, run_dir, resume, rt.rank, rt.world_size)

    data = D.main_first(rt, on_main, errors=(TrainError, DataError))
    tok_json = D.broadcast_object(data.tokenizer.backend.to_str() if rt.is_main and data.tokenizer.hf is None
                                  else None, rt)
    if not rt.is_main:
        tok = None
        if tok_json is not None:
            from tokenizers import Tokenizer as _Tok

            from elas_compile.data.tokenizer import Tokenizer

            tok = Tokenizer(_Tok.from_str(tok_json), source="rank 0")
        data = prepare_data(o, run_dir, resume, rt.rank, rt.world_size, tokenizer=tok)
    return data


def train(o: Dict[str, Any], runtime: Optional[Runtime] = None, log=print) -> Dict[str, Any]:
    """Run (or resume) the training described by the resolved options ``o``; returns the summary."""
    runtime = runtime or D.setup_runtime(o)
    try:
        return _train(o, runtime, log)
    finally:
        D.teardown(runtime)


def _train(o: Dict[str, Any], runtime: Runtime, log) -> Dict[str, Any]:
    run_dir = Path(o["out"])
    resume = bool(o.get("resume"))
    ckpt = find_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise TrainError(f"nothing to resume in {run_dir}: no checkpoint there")

    data = _prepare_data(o, run_dir, resume, runtime)
    # FSDP2 moves each rank's shards to its device; the full model stays on the CPU until then
    where = torch.device("cpu") if runtime.parallel == "fsdp" else runtime.device
    bundle = prepare_model(o, data.tokenizer.vocab_size, where)
    model, schedule = bundle.model, bundle.schedule
    loss_fn = wrap_model(model, runtime, activation_checkpointing=bool(o.get("activation_checkpointing")))
    optimizer = build_optimizer(model, lr=o["lr"], weight_decay=o["weight_decay"], betas=(o["beta1"], o["beta2"]))

    step, tokens, elapsed = 0, 0, 0.0
    if ckpt is not None:
        states, meta = load_checkpoint(ckpt, model, optimizer, runtime)
        if schedule is not None and "sparsity" in states:
            schedule.load_state_dict(states["sparsity"])
        step, tokens, elapsed = meta["step"], meta["tokens"], meta.get("elapsed_s", 0.0)
    if runtime.is_main:
        public = {k: v for k, v in o.items() if k not in ("resume", "overwrite", "stop_at")}
        atomic_write_text(run_dir / "run.json", json.dumps({"options": public}, indent=1))
        atomic_write_text(run_dir / "explain.txt", bundle.report + "\n")
        if not resume or not (run_dir / "tokenizer.json").exists():
            data.tokenizer.save(run_dir)
    metrics = (MetricsLog.resume(run_dir, o, step) if resume else MetricsLog(run_dir, o)) if runtime.is_main else None

    total = o["steps"]
    stop = min(total, o.get("stop_at") or total)
    tok_per_step = o["batch_size"] * o["seq_len"]  # the global batch
    if runtime.is_main:
        log(f"{o['name']}: {bundle.params / 1e6:.2f}M params ({bundle.params_before / 1e6:.2f}M before the "
            f"rewrite), {data.source}: {data.split.n_train:,} train / {data.split.n_val:,} val tokens, "
            f"vocab {data.tokenizer.vocab_size}, {runtime.describe()}, "
            f"{'resuming at step ' + str(step) if step else 'from scratch'} -> {run_dir}")

    bar = None
    if runtime.is_main and o.get("progress", True):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, desc=o["name"])
    model.train()
    rate = None
    last_save = step
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def save() -> None:
        states = {"sparsity": schedule.state_dict()} if schedule is not None else {}
        save_checkpoint(run_dir, model, optimizer, states,
                        {"step": step, "tokens": tokens, "elapsed_s": elapsed}, runtime)

    try:
        while step < stop:
            lr = lr_at(step, lr=o["lr"], warmup_steps=o["warmup_steps"], total_steps=total,
                       min_lr_ratio=o["min_lr_ratio"])
            set_lr(optimizer, lr)
            batch = data.sampler.batch(data.split.train, step).to(runtime.device, non_blocking=True)
            sparse = bool(schedule is not None and schedule.sparse_active)  # this step's mode
            t0 = time.perf_counter()
            loss = lm_loss(loss_fn, batch, runtime)
            loss.backward()
            gnorm = grad_norm_(params, o["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if schedule is not None:
                schedule.step()
            loss_v = D.all_mean(loss.item(), runtime)  # equal shares: the global batch's mean
            runtime.synchronize()
            dt = time.perf_counter() - t0
            elapsed += dt
            step += 1
            tokens += tok_per_step
            if not math.isfinite(loss_v):
                raise Diverged(f"training diverged at step {step} (loss {loss_v}); try a lower --lr "
                               f"or a longer --dense-warmup-steps")
            inst = tok_per_step / max(dt, 1e-9)
            rate = inst if rate is None else 0.9 * rate + 0.1 * inst
            row = {"step": step, "tokens": tokens, "lr": lr, "loss": loss_v, "grad_norm": gnorm,
                   "tokens_per_s": inst, "sparse_active": sparse,
                   "elapsed_s": elapsed}
            if (o["eval_every"] and step % o["eval_every"] == 0) or step == total:
                row["val_loss"] = evaluate(loss_fn, data.eval, runtime)
            if metrics is not None:
                metrics.log(row)
            if bar is not None:
                post = {"loss": f"{loss_v:.3f}", "tok/s": f"{rate:,.0f}"}
                if row.get("val_loss") is not None:
                    post["val"] = f"{row['val_loss']:.3f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if (o["save_every"] and step % o["save_every"] == 0) or step == stop:
                save()
                last_save = step
    except KeyboardInterrupt:
        # one process: save what we have. Several: the ranks stop at different points, and a
        # collective save could hang; the last periodic checkpoint stands.
        if step > last_save and runtime.world_size == 1:
            save()
            last_save = step
        raise TrainError(f"interrupted at step {step}; checkpoint of step {last_save} in {run_dir}, "
                         f"continue with --resume") from None
    finally:
        if bar is not None:
            bar.close()

    summary = {"params": bundle.params, "params_before_rewrite": bundle.params_before,
               "train_tokens_per_s": tokens / elapsed if elapsed else None, "wall_s": elapsed,
               "finished": step >= total, "device": runtime.describe(), "world_size": runtime.world_size}
    if metrics is not None:
        metrics.flush(**summary)
        summary = dict(metrics.summary)
        _plot(run_dir, o.get("compare") or [], o["name"], log)
        ev = metrics.last_eval()
        val = f", val loss {ev['val_loss']:.4f} (ppl {ev['val_ppl']:.1f})" if ev else ""
        state = "done" if step >= total else f"stopped at step {step}/{total} (continue with --resume)"
        last_loss = metrics.rows[-1]["loss"] if metrics.rows else float("nan")
        log(f"{o['name']}: {state}: loss {last_loss:.4f}{val}, "
            f"{summary.get('train_tokens_per_s') or 0:,.0f} tok/s; {run_dir}/metrics.csv, loss.png, checkpoint/")
    return summary


def _plot(run_dir: Path, compare: List[str], name: str, log) -> None:
    from elas_compile.train.plot import plot_runs

    others = [Path(c) for c in compare if Path(c).resolve() != run_dir.resolve()]
    try:
        plot_runs([run_dir, *others], run_dir / "loss.png", title=name if not others else None)
    except TrainError as e:  # a bad --compare folder must not lose the run's results
        log(f"warning: loss.png not written: {e}")
