"""The ``quality`` suite's training runs: one ``python -m elas_compile train`` process per (preset,
variant), the command a user types, each writing its own run folder.

Processes rather than ``benchmarks.gpu_pool``'s in-process jobs: a run is then exactly the CLI's
(its checks, seeding, data order, compile mode, SIGTERM handling and run folder), in its own CUDA
context, so an out-of-memory or a crash of one variant loses no other and every run gives its GPU
memory back; running several at once (``--gpus N``, ``--concurrent K`` on one GPU) is a matter of
slots. Each process gets a fresh, empty Inductor and Triton cache (its own temporary directory).

The data (tokenizer and token shards, cached under ``~/.cache/elas_compile``) is prepared once,
before any run starts, by the CLI's own functions: the runs then only map the shards, and a large
source (``--data-preset python-sources``) is not tokenized by several processes at the same time.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from benchmarks.environment import REPO

# elas-compile train's flags for each variant (docs/train.md, "Variants")
BASE_VARIANTS = {
    "full": ["--baseline", "full"],
    "lowrank": ["--baseline", "lowrank"],
    "elas-masked": ["--backward", "masked"],
    "elas-ste": ["--backward", "ste"],
    "elas-masked-tokens24": ["--backward", "masked-tokens24"],
}
VARIANT_FLAGS = {**BASE_VARIANTS, **{f"{name}-attn": flags + ["--attention"]
                                     for name, flags in BASE_VARIANTS.items() if name != "full"}}
CHECKPOINT_FOLDERS = ("checkpoint", "checkpoint.old", "checkpoint.tmp")
TERM_GRACE_S = 300  # after SIGTERM a run saves its checkpoint (seconds at 130m) and exits


@dataclass
class Run:
    """One training run: what is launched, and how it ended."""

    preset: str
    variant: str
    args: list  # elas-compile train's arguments
    out: Path  # its run folder
    steps: int
    gpu: Optional[int] = None  # the GPU index its process saw as its only one (--gpus > 1)
    returncode: Optional[int] = None
    stopped: bool = False  # by --budget-s
    earlier: bool = False  # finished by an earlier invocation (--resume): read, not run
    skipped: bool = False  # --budget-s was spent before it started
    wall_s: Optional[float] = None

    @property
    def command(self) -> list:
        return [sys.executable, "-m", "elas_compile", "train", *self.args]

    @property
    def output(self) -> Path:
        """The process's stdout and stderr (beside the run folder: a run that fails before its first
        step removes its folder)."""
        return self.out.parent / f"{self.out.name}.out"

    def last_line(self) -> str:
        try:
            lines = [ln for ln in self.output.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip()[:300] if lines else ""


def train_args(preset: str, variant: str, out: Path, *, tokens: int, batch: int, seq: int, seed: int, evals: int,
               eval_batches: int, device: str, data_preset: Optional[str], lr: Optional[float],
               threads: Optional[int]) -> tuple[list, int]:
    """``elas-compile train``'s arguments for a run of ``tokens`` training tokens, and its steps
    (the token budget rounded up to whole steps of ``batch`` x ``seq``)."""
    steps = max(1, math.ceil(tokens / (batch * seq)))
    args = ["--preset", preset, *VARIANT_FLAGS[variant], "--steps", str(steps), "--batch-size", str(batch),
            "--seq-len", str(seq), "--seed", str(seed), "--eval-every", str(max(1, steps // evals)),
            "--eval-batches", str(eval_batches), "--save-every", "0", "--device", device, "--no-progress",
            "--out", str(out)]
    if data_preset:
        args += ["--data-preset", data_preset]
    if lr is not None:
        args += ["--lr", repr(lr)]
    if threads is not None:
        args += ["--threads", str(threads)]
    return args, steps


def continue_in(run: Run) -> None:
    """For ``--resume``: how ``run`` goes on from what its folder holds. A finished run is only read; a
    stopped one (``--budget-s``, SIGTERM) continues from its checkpoint with the CLI's ``--resume``,
    exactly as if it had not stopped; one that never got to a checkpoint starts over."""
    import json

    if not (run.out / "run.json").is_file():
        return
    try:
        summary = json.loads((run.out / "metrics.json").read_text(encoding="utf-8"))["summary"]
    except (OSError, ValueError, KeyError):
        summary = {}
    if summary.get("finished") and summary.get("steps") == run.steps:
        run.earlier, run.returncode = True, 0
    elif (run.out / "checkpoint").is_dir():
        run.args = run.args + ["--resume"]
    else:
        run.args = run.args + ["--overwrite"]


def prepare_data(args: list, log: Callable[[str], None]) -> list:
    """The data of a run with these arguments, built now if not cached, as ``elas-compile train``
    builds it (its options resolved and checked, its tokenizer, its token shards and split); returns
    the lines saying how much data there is and how many epochs the run makes."""
    from elas_compile.cli import build_parser
    from elas_compile.train.options import resolve
    from elas_compile.train.setup import epochs_report, prepare_tokenizer, prepare_tokens

    ns = build_parser().parse_args(["train", *args])
    o = resolve({k: v for k, v in vars(ns).items() if k != "command"})
    source, tok = prepare_tokenizer(o, Path(o["out"]), False, log)
    return epochs_report(prepare_tokens(o, source, tok, log=log), o["steps"])


def visible_device(gpu: int) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of a process that owns GPU ``gpu`` of those this one sees."""
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    return seen.split(",")[gpu].strip() if seen else str(gpu)


def _start(run: Run, gpu: Optional[int]):
    cache = tempfile.mkdtemp(prefix=f"elas_quality_{run.out.name}_")
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible_device(gpu)
    run.gpu = gpu
    run.out.parent.mkdir(parents=True, exist_ok=True)
    with open(run.output, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(run.command, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, cache, time.time()


def launch(runs: list, *, gpus: int = 1, concurrent: int = 1, deadline: Optional[float] = None,
           keep_checkpoints: bool = False, log: Callable[[str], None] = print) -> None:
    """Runs ``runs`` in ``gpus`` x ``concurrent`` processes at a time (with ``gpus > 1`` each process
    sees one GPU), recording how each ended. At ``deadline`` (a ``time.time()``) the runs still going
    get SIGTERM (they save a checkpoint and exit; ``--resume`` continues them) and those not started
    are skipped. Each finished run's checkpoints are removed unless ``keep_checkpoints``: the suite
    reads the metrics."""
    # round robin: with fewer runs than slots, every GPU gets one before any gets a second
    slots = [g if gpus > 1 else None for _ in range(concurrent) for g in range(gpus)]
    pending, running = [r for r in runs if not r.earlier], {}  # slot index -> (run, process, cache, start)
    for run in runs:
        if run.earlier:
            log(f"quality: {run.out.name} finished in an earlier invocation: read, not run")
    while pending or running:
        late = deadline is not None and time.time() >= deadline
        for slot, gpu in enumerate(slots):
            if slot not in running and pending and not late:
                run = pending.pop(0)
                running[slot] = (run, *_start(run, gpu))
                log(f"quality: started {run.out.name}{'' if gpu is None else f' on GPU {gpu}'} "
                    f"({run.steps} steps; output: {run.output})")
        if late:
            for run in pending:
                run.skipped = True
            pending = []
            for run, proc, _, _ in running.values():
                if not run.stopped and proc.poll() is None:
                    run.stopped = True
                    proc.send_signal(signal.SIGTERM)
                    log(f"quality: --budget-s spent: SIGTERM to {run.out.name}")
        for slot, (run, proc, cache, start) in list(running.items()):
            if proc.poll() is None and not (run.stopped and time.time() > deadline + TERM_GRACE_S):
                continue
            if proc.poll() is None:
                proc.kill()  # it did not finish saving within the grace period
            run.returncode, run.wall_s = proc.wait(), time.time() - start
            shutil.rmtree(cache, ignore_errors=True)
            if not keep_checkpoints and run.returncode == 0 and not run.stopped:  # a stopped run may go on
                for name in CHECKPOINT_FOLDERS:
                    shutil.rmtree(run.out / name, ignore_errors=True)
            del running[slot]
            log(f"quality: {run.out.name} ended (exit {run.returncode}, {run.wall_s:.0f} s): {run.last_line()}")
        if running:
            time.sleep(0.5)


def read_run(out: Path) -> dict:
    """What a run folder says: its per-step rows (metrics.csv) and its summary (metrics.json, written
    when the run ends; empty if it did not)."""
    import json

    from elas_compile.train.metrics import read_csv

    rows = read_csv(out / "metrics.csv") if (out / "metrics.csv").is_file() else []
    try:
        summary = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["summary"]
    except (OSError, ValueError, KeyError):
        summary = {}
    return {"rows": rows, "summary": summary}
