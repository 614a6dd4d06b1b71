"""``quality``: validation perplexity of the variants trained on the same data, seed and data order
for a token budget, with the training CLI itself (``python -m elas_compile train``, one process per
preset and variant, ``benchmarks/quality_runs.py``).

Variants (``elas-compile train`` flags): ``full`` (``--baseline full``: full-rank SwiGLU),
``lowrank`` (``--baseline lowrank``: dense low-rank ReLU²), ``elas-masked`` and ``elas-ste``
(``--backward masked|ste``), ``elas-masked-tokens24`` (``--backward masked-tokens24``), each also
with ``-attn`` (``--attention``). Every run gets the same ``--seed``, so the same initial model
before its rewrite and the same batches (the sampler's batch is a function of seed and step), the
budget ``--tokens`` rounded up to whole steps of the preset's batch, ``--evals`` validations spread
over it (and one at the end), and the CLI's defaults for everything else (LR schedule, dense
warm-up, compile mode). The data is prepared once before the runs start.

Rows: per run, the tokens and steps trained, the final and the best validation loss and perplexity
(the CLI's ``--eval-batches`` held-out batches, the same for every variant), their ratios to the
dense low-rank run of the same factorization and to the full-rank run, the training tokens/s
(meaningless between runs that shared a GPU) and the run folder, ``<root>/runs/<run name>/``, whose
metrics.csv and train.log hold every step. On a GPU the report states the targets of issue 24 (ELAS
within 1% of dense low rank; at 130m within 5% of full rank) and issue 21 (``masked-tokens24``
within 0.5% of ``masked``), whether each was met, and which backward the numbers favour.
"""
from __future__ import annotations

import argparse
import datetime
import os
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks import quality_runs
from benchmarks.environment import gpu_slug
from benchmarks.outputs import CPU_LABEL, SuiteResult, run_name
from benchmarks.quality_report import lowrank_of, plot_curves, verdicts

DESCRIPTION = ("validation perplexity of the variants trained by elas-compile train on the same data and seed for a "
               "token budget; curves; the quality targets of issues 21 and 24")
VARIANTS = ["full", "lowrank", "elas-masked", "elas-ste"]
COLUMNS = ["preset", "variant", "tokens", "steps", "final_val_loss", "final_val_ppl", "best_val_loss", "best_val_ppl",
           "ppl_vs_lowrank", "ppl_vs_full", "tokens_per_s", "wall_s", "params_m", "gpu", "run_dir", "status", "note"]
TABLE = ["preset", "variant", "tokens", "final_val_ppl", "best_val_ppl", "ppl_vs_lowrank", "ppl_vs_full",
         "tokens_per_s", "status"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", nargs="+", default=["llama-tiny"], metavar="NAME",
                   help="model presets (default llama-tiny, a CPU smoke run; on a GPU llama-60m llama-130m)")
    p.add_argument("--variants", nargs="+", default=VARIANTS, metavar="NAME",
                   help=f"default {' '.join(VARIANTS)}; also: "
                        f"{', '.join(v for v in quality_runs.VARIANT_FLAGS if v not in VARIANTS)}")
    p.add_argument("--tokens", type=int, default=200_000,
                   help="training tokens per run, rounded up to whole steps (default 200000: a CPU smoke run; "
                        "issues 21 and 24 ask for 100000000)")
    p.add_argument("--data-preset", choices=("python-sources",),
                   help="the CLI's data preset (default: its embedded corpus; python-sources for a GPU run)")
    p.add_argument("--seed", type=int, default=0, help="every run's seed: initial model and batches (default 0)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's)")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--evals", type=int, default=20, help="validations over the run, the points of the curves "
                   "(default 20)")
    p.add_argument("--eval-batches", type=int, default=8, help="held-out batches per validation (default 8)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs of this host to spread the runs over, one process each")
    p.add_argument("--concurrent", type=int, default=1, help="runs sharing each GPU at once (default 1)")
    p.add_argument("--budget-s", type=float, help="stop everything after this many seconds: runs still going save "
                   "a checkpoint and stop (status 'stopped'; --resume continues them), runs not started are skipped")
    p.add_argument("--resume", metavar="RUNS_DIR", type=Path,
                   help="go on with the runs of an earlier invocation with the same options, in its runs folder "
                        "(<root>/runs/<name>): finished runs are read, stopped ones (--budget-s) continue exactly "
                        "from their checkpoints, the others start")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep each run's checkpoint/ (removed by default: the suite reads metrics; 130m with its "
                        "AdamW state is about 2 GB)")


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    from benchmarks.model_checks import model_refusal

    unknown = [v for v in args.variants if v not in quality_runs.VARIANT_FLAGS]
    if unknown:
        return f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(quality_runs.VARIANT_FLAGS)}"
    refusal = model_refusal([], args.preset, device, per="step", gpus=args.gpus)
    if refusal:
        return refusal
    if args.tokens < 1 or args.evals < 1 or args.eval_batches < 1 or args.concurrent < 1:
        return "--tokens, --evals, --eval-batches and --concurrent must be >= 1"
    if args.budget_s is not None and args.budget_s < 0:
        return "--budget-s must be >= 0"
    if args.resume and not args.resume.is_dir():
        return f"--resume {args.resume}: no such folder (pass the runs folder of the earlier invocation)"
    return None


def runs_folder(args: argparse.Namespace, device: torch.device) -> Path:
    """``<root>/runs/<the results folder's name>``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    meta = {"suite": "quality", "gpu_slug": gpu_slug(name),
            "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat()}
    return Path(args.root) / "runs" / run_name(meta, args.tag)


def plan(args: argparse.Namespace, device: torch.device) -> list:
    from elas_compile.train.presets import get_preset

    folder = args.resume or runs_folder(args, device)
    threads = max(1, (os.cpu_count() or 1) // args.concurrent) if device.type == "cpu" and args.concurrent > 1 else None
    runs = []
    for preset in args.preset:
        p = get_preset(preset)
        for variant in args.variants:
            out = folder / f"{preset}-{variant}"
            cli, steps = quality_runs.train_args(
                preset, variant, out.resolve(), tokens=args.tokens, batch=args.batch_size or p.batch_size,
                seq=args.seq_len or p.seq_len, seed=args.seed, evals=args.evals, eval_batches=args.eval_batches,
                device=device.type, data_preset=args.data_preset, lr=args.lr, threads=threads)
            runs.append(quality_runs.Run(preset, variant, cli, out, steps))
            if args.resume:
                quality_runs.continue_in(runs[-1])
    return runs


def row_of(run: quality_runs.Run, root: Path) -> dict:
    got = quality_runs.read_run(run.out)
    evals = [r for r in got["rows"] if r.get("val_loss") is not None]
    last, best = (evals[-1], min(evals, key=lambda r: r["val_loss"])) if evals else ({}, {})
    done = got["rows"][-1]["step"] if got["rows"] else 0
    if run.skipped:
        status = "skipped: --budget-s was spent before it started"
    elif run.stopped:
        status = f"stopped by --budget-s at step {done}/{run.steps}"
    elif run.returncode != 0:
        status = f"error (exit {run.returncode}): {run.last_line()}"
    else:
        status = "ok" if done == run.steps and evals and last["step"] == run.steps else "error: the run ended early"
    params = got["summary"].get("params")
    return {"preset": run.preset, "variant": run.variant, "tokens": got["rows"][-1]["tokens"] if got["rows"] else 0,
            "steps": done, "final_val_loss": last.get("val_loss"), "final_val_ppl": last.get("val_ppl"),
            "best_val_loss": best.get("val_loss"), "best_val_ppl": best.get("val_ppl"),
            "tokens_per_s": got["summary"].get("train_tokens_per_s"), "wall_s": run.wall_s,
            "params_m": params / 1e6 if params else None, "gpu": run.gpu,
            "run_dir": os.path.relpath(run.out, root), "status": status}


def add_ratios(rows: list) -> None:
    ok = {(r["preset"], r["variant"]): r["final_val_ppl"] for r in rows if r["status"] == "ok"}
    for row in rows:
        if row["status"] != "ok":
            continue
        for column, base in (("ppl_vs_lowrank", lowrank_of(row["variant"])), ("ppl_vs_full", "full")):
            if (row["preset"], base) in ok:
                row[column] = row["final_val_ppl"] / ok[(row["preset"], base)]


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    cuda, root = device.type == "cuda", Path(args.root)
    runs = plan(args, device)
    start = time.time()
    data_lines = quality_runs.prepare_data(runs[0].args, log=lambda line: print(f"  {line}", flush=True))
    for line in data_lines:
        print(f"quality: {line}", flush=True)
    deadline = None if args.budget_s is None else start + args.budget_s
    quality_runs.launch(runs, gpus=args.gpus, concurrent=args.concurrent, deadline=deadline,
                        keep_checkpoints=args.keep_checkpoints, log=lambda line: print(line, flush=True))
    rows = [row_of(r, root) for r in runs]
    if cuda:  # a CPU smoke run states no ratios (the report's label says so), as the other suites
        add_ratios(rows)
    judged = verdicts(rows) if cuda else []
    notes = list(data_lines)
    notes += [f"same seed ({args.seed}) and batches for every run; ratios: final validation perplexity over that of "
              "the dense low-rank run of the same factorization (ppl_vs_lowrank) and of the full-rank run "
              "(ppl_vs_full), one seed each",
              f"every step of every run: {os.path.relpath(runs[0].out.parent, root)}/<preset>-<variant>/ "
              "(metrics.csv, train.log, loss.png); the process's output beside it (.out)"]
    if any(r.stopped for r in runs) or any(r.skipped for r in runs):
        notes.append(f"to go on where the runs stopped: the same command with --resume {runs[0].out.parent}")
    if args.gpus > 1 or args.concurrent > 1:
        notes.append(f"{args.gpus} GPU(s) x {args.concurrent} run(s) at a time: tokens/s of runs that shared a GPU "
                     "or the host's CPU are not speeds of the variants")
    if not cuda:
        for row in rows:
            row["note"] = CPU_LABEL
        notes.append("targets (issue 24: ELAS within 1% of dense low rank, at llama-130m within 5% of full rank; "
                     "issue 21: masked-tokens24 within 0.5% of masked; at 100M tokens) are not judged on a CPU "
                     "smoke run: its perplexities are real numbers of a tiny model trained on few tokens")
    return SuiteResult(
        rows=rows, columns=COLUMNS, table_columns=TABLE,
        baseline="dense low rank and full rank (final validation perplexity); the targets of issues 24 and 21",
        summary=judged, notes=notes,
        options={"presets": args.preset, "variants": args.variants, "tokens": args.tokens, "seed": args.seed,
                 "data_preset": args.data_preset or "embedded", "batch_size": args.batch_size, "seq_len": args.seq_len,
                 "lr": args.lr, "evals": args.evals, "eval_batches": args.eval_batches, "gpus": args.gpus,
                 "concurrent": args.concurrent, "budget_s": args.budget_s,
                 "train_args": {f"{r.preset}-{r.variant}": r.args for r in runs}},
        plot=partial(plot_curves, root=root))
