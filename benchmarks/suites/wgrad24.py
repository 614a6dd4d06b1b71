"""``wgrad24``: how close the ``masked-tokens24`` weight gradients are to the exact masked ones, on
real activations of a model trained past its dense warm-up, and how that changes over training.

Trains a preset (``llama-tiny`` by default; ``--preset llama-60m`` on a GPU) with
``elas_compile.apply`` in the exact ``masked`` mode on the embedded corpus (the training CLI's
default data, its tokenizer and sampler), AdamW with a linear warm-up of the learning rate, the
first ``--warmup`` steps dense. At ``--points`` steps spread over the 2:4 phase it runs one
measurement batch (held-out tokens) forward and backward and, for every ELAS MLP, recomputes its
FFN middle from its input, its weights and the gradient at its output (the masked backward:
S, g = dL/d(S Vdownᵀ), dy, h), then records

- ``exact_S`` / ``exact_dy``: the share of (group of 4 consecutive tokens, feature) pairs of S and
  dy with at most 2 nonzeros (where 2:4 along tokens is exact);
- ``err_dVdown`` / ``err_dUup``: ‖approx - exact‖_F / ‖exact‖_F of the ``masked-tokens24`` weight
  gradients (``kernels.reference.tokens24_weight_grad``, the function every backend computes)
  against gᵀS and dyᵀh, for each dense fraction of ``--dense-fractions``;

averaged over the MLPs (``mean``) and for the worst MLP (``worst``). Rows are also written per
MLP (``mlp`` column). On a CPU the model runs eagerly in float32: the statistics are meaningful,
the timings are not (none are reported); on a GPU, bf16 autocast.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.outputs import SuiteResult

DESCRIPTION = ("masked-tokens24 weight gradients vs the exact masked ones on a model in training: exact-group "
               "share and relative error over training")
COLUMNS = ["preset", "step", "mlp", "dense_fraction", "exact_S", "exact_dy", "err_dVdown", "err_dUup", "loss",
           "tokens", "status"]
TABLE = ["step", "mlp", "dense_fraction", "exact_S", "exact_dy", "err_dVdown", "err_dUup", "loss"]


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dense-fractions takes numbers, e.g. 0,0.05,0.1, got {text!r}") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"--dense-fractions: each must be in [0, 1], got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="llama-tiny", help="model preset (default llama-tiny; llama-60m on a GPU)")
    p.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    p.add_argument("--warmup", type=int, default=100, help="dense warm-up steps before 2:4 (default 100)")
    p.add_argument("--points", type=int, default=5, help="measurement points over the 2:4 phase (default 5)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's)")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--dense-fractions", type=_fractions, default=[0.0, 0.05, 0.1], metavar="F,F,...",
                   help="wgrad_dense_fraction values to measure (default 0,0.05,0.1)")
    p.add_argument("--seed", type=int, default=0)


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    from elas_compile.train.presets import PRESETS

    if args.preset not in PRESETS:
        return f"unknown --preset {args.preset!r}; choose one of {', '.join(PRESETS)}"
    if args.steps < 1 or not 0 <= args.warmup < args.steps or args.points < 1:
        return "--steps must be >= 1, --warmup in [0, steps) and --points >= 1"
    return None


def measure_steps(steps: int, warmup: int, points: int) -> list[int]:
    """``points`` steps spread over the 2:4 phase, the first right after the warm-up, the last at the end."""
    span = steps - warmup
    return sorted({warmup + 1 + round(i * (span - 1) / max(points - 1, 1)) for i in range(points)})


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    from benchmarks import wgrad24_probe as probe

    cuda = device.type == "cuda"
    data = probe.corpus(args, args.preset)
    model = probe.model(args.preset, data.vocab, args.warmup, device)
    opt = torch.optim.AdamW(model.parameters(), lr=data.lr, weight_decay=0.0)
    lr_warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / lr_warmup))
    import elas_compile

    schedule = elas_compile.SparsitySchedule(model)
    at = set(measure_steps(args.steps, args.warmup, args.points))
    rows, start = [], time.time()
    for step in range(1, args.steps + 1):
        batch = data.train_batch(step).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = probe.lm_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        schedule.step()  # after this step the next one runs 2:4 once past the warm-up
        if step in at:
            got = probe.measure(model, data.measure_batch.to(device), args.dense_fractions, cuda)
            for row in got:
                row.update(preset=args.preset, step=step, loss=loss.item(), status="ok")
            rows += got
            print(f"  step {step}: loss {loss.item():.3f}, " + ", ".join(
                f"f={r['dense_fraction']}: err dV {r['err_dVdown']:.4f} dU {r['err_dUup']:.4f}"
                for r in got if r["mlp"] == "mean") + f" ({time.time() - start:.0f} s)", flush=True)
    tokens = data.batch_size * data.seq_len
    for row in rows:
        row["tokens"] = tokens
    mean = [r for r in rows if r["mlp"] == "mean"]
    return SuiteResult(
        rows=rows, columns=COLUMNS, table_columns=TABLE, baseline="the exact masked backward",
        summary=[f"step {r['step']}, dense fraction {r['dense_fraction']}: err dVdown {r['err_dVdown']:.4f}, err dUup "
                 f"{r['err_dUup']:.4f} (exact groups: S {r['exact_S']:.3f}, dy {r['exact_dy']:.3f})" for r in mean],
        options={"preset": args.preset, "steps": args.steps, "warmup": args.warmup, "points": sorted(at),
                 "batch_size": data.batch_size, "seq_len": data.seq_len, "lr": data.lr,
                 "dense_fractions": args.dense_fractions, "seed": args.seed, "measurement_tokens": tokens,
                 "dtype": "bf16 autocast" if cuda else "float32"},
        notes=["statistics of real activations; the model trains in the exact masked mode (the approximation is "
               "measured, not trained with)",
               "exact_*: share of (4-token group, feature) pairs with at most 2 nonzeros; err_*: relative Frobenius "
               "error of the masked-tokens24 weight gradient; 'mean' averages the MLPs, 'worst' takes the worst one",
               "no timings: this suite measures gradient quality, which does not depend on the device (a CPU run "
               "computes in float32, a GPU run under bf16 autocast); the report's CPU label is about timings"],
        plot=probe.plot)
