"""Where a run reports as it goes: periodic log lines, ``train.log``, TensorBoard, W&B.

Every ``--log-every`` steps one line (step, mean loss over the interval, learning rate, tokens/s
over the interval, peak memory, elapsed time) goes to stdout, flushed, whether or not it is a
terminal (a progress bar is only drawn on a terminal), and to ``<run>/train.log``, with the run's
start and end lines and every validation. ``--tensorboard`` writes every step's scalars to
``<run>/tensorboard`` (``torch.utils.tensorboard``, needs the ``tensorboard`` package);
``--wandb`` logs them to Weights & Biases (needs ``wandb``; the W&B run id is kept in
``<run>/wandb.id`` so a resumed run continues the same W&B run). Only rank 0 reports.
"""
from __future__ import annotations

import resource
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict

import torch

from elas_compile.train.errors import TrainError, first_line


def check_extras(o: Dict[str, Any]) -> None:
    """``--tensorboard`` / ``--wandb`` need their packages: say so before anything starts."""
    if o.get("tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise TrainError("--tensorboard needs the tensorboard package: "
                             "pip install 'elas-compile[tensorboard]'") from None
    if o.get("wandb"):
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise TrainError("--wandb needs the wandb package: pip install 'elas-compile[wandb]'") from None


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def _duration(s: float) -> str:
    m, s = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Reporter:
    """Rank 0's reporting of one run (see the module docstring)."""

    def __init__(self, run_dir: Path, o: Dict[str, Any], device: torch.device, emit: Callable[[str], None]):
        self.run_dir, self.o, self.device, self.emit = run_dir, o, device, emit
        self.tokens_per_step = o["batch_size"] * o["seq_len"]
        self.every = int(o.get("log_every") or 0)
        self._file = open(run_dir / "train.log", "a", encoding="utf-8")
        self._tb = self._wandb = None
        self._interval: list = []
        self._interval_s = 0.0

    def start(self, step: int) -> None:
        """Open the optional sinks (a resumed run drops TensorBoard events past its checkpoint)."""
        if self.o.get("tensorboard"):
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=step + 1 if step else None)
        if self.o.get("wandb"):
            import wandb

            id_file = self.run_dir / "wandb.id"
            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
            id_file.write_text(run_id + "\n")
            try:
                self._wandb = wandb.init(project=self.o.get("wandb_project") or "elas-compile", name=self.o["name"],
                                         id=run_id, resume="allow", dir=str(self.run_dir), config=self.o)
            except Exception as e:  # not logged in, no network: the user's to fix, in one line
                raise TrainError(f"--wandb: cannot start a W&B run ({first_line(e)}); run `wandb login`, "
                                 f"or set WANDB_MODE=offline") from None

    def line(self, text: str) -> None:
        """A line for the user and for ``train.log``."""
        self.emit(text)
        self._file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self._file.flush()

    def step(self, row: Dict[str, Any], total: int, seconds: float) -> None:
        """Record one step's metrics row (``val_loss`` on evaluation steps) and its duration."""
        step = row["step"]
        self._interval.append(row)
        self._interval_s += seconds
        scalars = {"train/loss": row["loss"], "train/lr": row["lr"], "train/grad_norm": row["grad_norm"],
                   "train/tokens_per_s": row["tokens_per_s"]}
        if row.get("val_loss") is not None:
            scalars.update({"val/loss": row["val_loss"], "val/ppl": row["val_ppl"]})
            self.line(f"step {step}/{total} | val loss {row['val_loss']:.4f} | val ppl {row['val_ppl']:.2f}")
        if self.every and (step % self.every == 0 or step == total):
            self._emit_interval(total)
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def _emit_interval(self, total: int) -> None:
        rows, last = self._interval, self._interval[-1]
        loss = sum(r["loss"] for r in rows) / len(rows)
        rate = len(rows) * self.tokens_per_step / max(self._interval_s, 1e-9)
        self.line(f"step {last['step']}/{total} | loss {loss:.4f} | lr {last['lr']:.3e} | {rate:,.0f} tok/s | "
                  f"mem {peak_memory_gb(self.device):.2f} GB | {_duration(last['elapsed_s'])}")
        self._interval, self._interval_s = [], 0.0

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._file is not None:
            self._file.close()
            self._file = None

