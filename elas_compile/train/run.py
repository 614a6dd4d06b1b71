"""One ``elas-compile train`` run from its resolved options: checks, data, model, folder, loop, summary.

Nothing is written to the run folder until everything that can fail on the user's input has
been checked or built: the options (:mod:`.validate`), the folder (:class:`~.rundir.RunFolder`),
the checkpoint to resume (its checksums), the tokenizer, the model (``--rank``), the token shards
and the split. Only then is the folder created and locked. A new run that fails before its first
step removes what it wrote.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from elas_compile.data import DataError, atomic_write_text
from elas_compile.train import distributed as D
from elas_compile.train.checkpoint import find_checkpoint, read_doc, verify
from elas_compile.train.errors import TrainError
from elas_compile.train.loop import Trainer
from elas_compile.train.metrics import MetricsLog
from elas_compile.train.optim import build_optimizer, lr_at
from elas_compile.train.options import read_saved_options
from elas_compile.train.parallel import wrap_model
from elas_compile.train.report import Reporter, check_extras
from elas_compile.train.rundir import RunFolder
from elas_compile.train.runtime import Runtime
from elas_compile.train.setup import epochs_report, prepare_model, prepare_tokenizer, prepare_tokens
from elas_compile.train.validate import check_options

USER_ERRORS = (TrainError, DataError)


def say(line: str) -> None:
    """The default ``log``: a line on stdout, flushed at once (a pipe or a batch system's log file
    would otherwise get the lines in 8 KB blocks, long after the steps they report)."""
    print(line, flush=True)


def train(o: Dict[str, Any], runtime: Optional[Runtime] = None, log=say) -> Dict[str, Any]:
    """Run (or resume) the training described by the resolved options ``o``; returns the summary
    (``summary["stopped_by"]``: the signal that stopped it, if one did)."""
    check_options(o)
    check_extras(o)
    runtime = runtime or D.setup_runtime(o)
    try:
        summary = _train(o, runtime, log)
        # every rank done (rank 0 writes the plot last) before any leaves the process group: a gloo
        # rank whose peer tore the group down first was seen to abort ("terminate called ...")
        D.barrier(runtime)
        return summary
    finally:
        D.teardown(runtime)


def _check_start(o: Dict[str, Any], folder: RunFolder) -> Dict[str, int]:
    """The folder, and on resume the checkpoint (verified) and what the options ask of it; returns
    the step the run starts from and the --steps it was started with."""
    resume = bool(o.get("resume"))
    folder.check(resume, bool(o.get("overwrite")))
    if not resume:
        return {"step": 0, "steps_before": o["steps"]}
    ckpt = find_checkpoint(folder.path)
    verify(ckpt)
    step = int(read_doc(ckpt)["meta"]["step"])
    if o["steps"] < step:
        raise TrainError(f"--steps {o['steps']} is below the checkpoint's step {step}; pass --steps >= {step}")
    if o.get("stop_at") is not None and o["stop_at"] <= step:
        raise TrainError(f"--stop-at {o['stop_at']} is not after the checkpoint's step {step}")
    saved = read_saved_options(folder.path) or {}
    return {"step": step, "steps_before": int(saved.get("steps", o["steps"]))}


def _tokenizer_everywhere(o: Dict[str, Any], run_dir: Path, resume: bool, rt: Runtime, log):
    """Rank 0 builds the tokenizer first (trains and caches the BPE); the others use its
    definition, so every rank tokenizes identically."""
    pair = D.main_first(rt, lambda: prepare_tokenizer(o, run_dir, resume, log), errors=USER_ERRORS)
    tok_json = D.broadcast_object(pair[1].backend.to_str() if rt.is_main and pair[1].hf is None else None, rt)
    if rt.is_main:
        return pair
    from elas_compile.data.sources import source_from_options

    if tok_json is None:  # a transformers tokenizer: every rank loads it the same way
        return prepare_tokenizer(o, run_dir, resume, log=lambda line: None)
    from tokenizers import Tokenizer as _Tok

    from elas_compile.data.tokenizer import Tokenizer

    return source_from_options(o), Tokenizer(_Tok.from_str(tok_json), source="rank 0")


def _train(o: Dict[str, Any], rt: Runtime, log) -> Dict[str, Any]:
    run_dir, resume = Path(o["out"]), bool(o.get("resume"))
    folder = RunFolder(run_dir)
    start = D.broadcast_object(D.main_first(rt, lambda: _check_start(o, folder), errors=USER_ERRORS), rt)
    source, tok = _tokenizer_everywhere(o, run_dir, resume, rt, log)
    # FSDP2 moves each rank's shards to its device; the full model stays on the CPU until then
    bundle = prepare_model(o, tok.vocab_size, torch.device("cpu") if rt.parallel == "fsdp" else rt.device)
    data = D.main_first(rt, lambda: prepare_tokens(o, source, tok, rt.rank, rt.world_size, log), errors=USER_ERRORS)
    if not rt.is_main:
        data = prepare_tokens(o, source, tok, rt.rank, rt.world_size, log=lambda line: None)
    D.main_first(rt, lambda: folder.open(resume, bool(o.get("overwrite"))), errors=USER_ERRORS)
    metrics = reporter = None
    try:
        loss_fn = wrap_model(bundle.model, rt, activation_checkpointing=o.get("activation_checkpointing"))
        optimizer = build_optimizer(bundle.model, lr=o["lr"], weight_decay=o["weight_decay"],
                                    betas=(o["beta1"], o["beta2"]))
        trainer = Trainer(o, rt, data, bundle.model, loss_fn, optimizer, bundle.schedule, run_dir)
        if resume:
            trainer.restore(find_checkpoint(run_dir))
        if rt.is_main:
            metrics, reporter = _open_outputs(o, run_dir, resume, trainer.step, data, bundle, log, rt)
            _start_lines(o, rt, data, bundle, start, run_dir, reporter)
        stop_at = min(o["steps"], o.get("stop_at") or o["steps"])
        bar = _progress_bar(o, trainer.step) if rt.is_main else None
        if bar is not None:
            reporter.emit = _above(bar, log)
        try:
            stopped_by = trainer.run(stop_at, metrics, reporter, bar)
        finally:
            if bar is not None:
                bar.close()
        return _finish(o, rt, trainer, bundle, metrics, reporter, stopped_by, log)
    except BaseException:
        if rt.is_main and not resume and (metrics is None or not metrics.rows):
            folder.discard()  # a failed start leaves no run folder behind
        raise
    finally:
        if reporter is not None:
            reporter.close()
        folder.close()


def _open_outputs(o, run_dir: Path, resume: bool, step: int, data, bundle, log, rt: Runtime):
    public = {k: v for k, v in o.items() if k not in ("resume", "overwrite", "stop_at")}
    atomic_write_text(run_dir / "run.json", json.dumps({"options": public}, indent=1))
    atomic_write_text(run_dir / "explain.txt", bundle.report + "\n")
    if not resume or not (run_dir / "tokenizer.json").exists():
        data.tokenizer.save(run_dir)
    metrics = MetricsLog.resume(run_dir, o, step) if resume else MetricsLog(run_dir, o)
    reporter = Reporter(run_dir, o, rt.device, log)
    try:
        reporter.start(step)
    except BaseException:
        reporter.close()
        raise
    return metrics, reporter


def _start_lines(o, rt: Runtime, data, bundle, start: Dict[str, int], run_dir: Path, reporter: Reporter) -> None:
    step, before, steps = start["step"], start["steps_before"], o["steps"]
    accum = f" in {o['grad_accum']} micro-batches" if o.get("grad_accum", 1) > 1 else ""
    reporter.line(f"{o['name']}: {bundle.params / 1e6:.2f}M params ({bundle.params_before / 1e6:.2f}M before the "
                  f"rewrite), vocab {data.tokenizer.vocab_size}, batch {o['batch_size']} x {o['seq_len']}{accum}, "
                  f"{rt.describe()}, {'resuming at step ' + str(step) if step else 'from scratch'} -> {run_dir}")
    for line in epochs_report(data, steps):
        reporter.line(line)
    if steps != before:
        lr = {n: lr_at(step, lr=o["lr"], warmup_steps=o["warmup_steps"], total_steps=n,
                       min_lr_ratio=o["min_lr_ratio"]) for n in (before, steps)}
        reporter.line(f"extending the run from {before} to {steps} steps: the cosine LR schedule now ends at step "
                      f"{steps} (LR at step {step}: {lr[before]:.3e} -> {lr[steps]:.3e})")
    elif step and step == steps:
        reporter.line(f"the run already finished its {steps} steps; pass a larger --steps to train on")


def _progress_bar(o: Dict[str, Any], step: int):
    show = o.get("progress")
    if not (sys.stderr.isatty() if show is None else show):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=o["steps"], initial=step, unit="step", dynamic_ncols=True, desc=o["name"])


def _above(bar, log):
    """Log lines printed above a progress bar, which is then redrawn below them."""
    def emit(line: str) -> None:
        with bar.external_write_mode():
            log(line)

    return emit


def _finish(o, rt: Runtime, trainer: Trainer, bundle, metrics, reporter, stopped_by: Optional[int],
            log) -> Dict[str, Any]:
    step, total, run_dir = trainer.step, o["steps"], trainer.run_dir
    summary = {"params": bundle.params, "params_before_rewrite": bundle.params_before,
               "train_tokens_per_s": trainer.tokens / trainer.elapsed if trainer.elapsed else None,
               "wall_s": trainer.elapsed, "finished": step >= total, "device": rt.describe(),
               "world_size": rt.world_size}
    if metrics is None:
        return {**summary, "stopped_by": stopped_by}
    metrics.flush(**summary)
    summary = dict(metrics.summary)
    _plot(run_dir, o.get("compare") or [], o["name"], log)
    ev = metrics.last_eval()
    val = f", val loss {ev['val_loss']:.4f} (ppl {ev['val_ppl']:.1f})" if ev else ""
    if stopped_by is not None:
        state = (f"stopped by {signal.Signals(stopped_by).name} at step {step}/{total}, checkpoint saved "
                 f"(continue with --resume)")
    else:
        state = "done" if step >= total else f"stopped at step {step}/{total} (continue with --resume)"
    last_loss = metrics.rows[-1]["loss"] if metrics.rows else float("nan")
    reporter.line(f"{o['name']}: {state}: loss {last_loss:.4f}{val}, {summary.get('train_tokens_per_s') or 0:,.0f} "
                  f"tok/s; {run_dir}/metrics.csv, train.log, loss.png, checkpoint/")
    return {**summary, "stopped_by": stopped_by}


def _plot(run_dir: Path, compare: List[str], name: str, log) -> None:
    from elas_compile.train.plot import plot_runs

    others = [Path(c) for c in compare if Path(c).resolve() != run_dir.resolve()]
    try:
        plot_runs([run_dir, *others], run_dir / "loss.png", title=name if not others else None)
    except TrainError as e:  # a bad --compare folder must not lose the run's results
        log(f"warning: loss.png not written: {e}")
