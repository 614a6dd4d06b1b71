"""``elas-compile bench``: training-step throughput and peak memory of the ELAS variants.

For each preset (default ``llama-130m`` and ``llama-350m`` at batch 64 x 256) and each variant
(full-rank SwiGLU, low-rank ReLU² dense, ELAS ste, ELAS masked; the last three with FFN-only
factorization and with attention factorized too; low rank and ELAS masked also in CoLA's form
U silu(V x), every linear), it times full training steps (forward,
backward, AdamW) on random tokens, compiled by default on GPU. Sparse variants run with 2:4
sparsity on from the first step. A variant that fails (out of memory, a compile error) gets an
error row; the others still run. Prints a table and writes ``bench.csv``, ``bench.json`` and a
bar chart ``bench.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import json
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from elas_compile.train.errors import TrainError, first_line
from elas_compile.train.lm_loss import next_token_loss
from elas_compile.train.optim import build_optimizer
from elas_compile.train.parallel import CHECKPOINT_POLICIES, checkpoint_activations, transformer_blocks, wrap_model
from elas_compile.train.presets import build_model, count_params, get_preset, preset_config
from elas_compile.train.runtime import Runtime, make_runtime
from elas_compile.train.variant import Variant, rewrite

VARIANTS: Dict[str, Variant] = {
    "full": Variant(baseline="full"),
    "lowrank": Variant(baseline="lowrank"),
    "lowrank-attn": Variant(baseline="lowrank", attention=True),
    "elas-ste": Variant(backward="ste"),
    "elas-ste-attn": Variant(backward="ste", attention=True),
    "elas-masked": Variant(backward="masked"),
    "elas-masked-attn": Variant(backward="masked", attention=True),
    "lowrank-cola-attn": Variant(baseline="lowrank", attention=True, lowrank_form="cola"),
    "elas-masked-cola-attn": Variant(backward="masked", attention=True, lowrank_form="cola"),
}
FIELDS = ["preset", "variant", "params_m", "batch", "seq_len", "step_ms", "tokens_per_s",
          "speedup_vs_full", "peak_mem_gb", "error"]


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", nargs="+", default=["llama-130m", "llama-350m"], metavar="NAME",
                   help="presets to measure (default llama-130m llama-350m)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                   help=f"variants (default all: {', '.join(VARIANTS)})")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's, 64 for the paper sizes)")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's, 256)")
    p.add_argument("--vocab-size", type=int, help="vocabulary size (default: the preset's, 32000)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, compilation included (default 3)")
    p.add_argument("--rank", help="rank (int or ratio; default ELASConfig's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile each variant (default: on with CUDA, off on CPU)")
    p.add_argument("--compile-mode", default=None, metavar="MODE",
                   help="torch.compile mode for every variant: default, reduce-overhead (CUDA graphs: no "
                        "per-kernel host cost, which cuSPARSELt calls have), max-autotune, ...")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's)")
    p.add_argument("--out", default="runs/bench", help="folder for bench.csv/json/png (default runs/bench)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss-in-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="compile the cross-entropy with the model (default; --no-loss-in-graph: eager loss "
                        "on fp32 logits)")
    p.add_argument("--activation-checkpointing", default="none", choices=CHECKPOINT_POLICIES,
                   help="recompute activations in the backward, as elas-compile train's option: block, selective "
                        "(each block's attention only) or none (default)")


def make_step(preset: str, variant: Variant, rt: Runtime, batch: int, seq: int, vocab: int, seed: int,
              batches: int = 4, loss_in_graph: bool = True, activation_checkpointing: str = "none"):
    """One variant's model, optimizer and training step on random tokens: ``(step(i), model)``.
    ``loss_in_graph``: compile the loss with the model (:func:`wrap_model`, as training does), else eager.
    ``activation_checkpointing``: a policy of :data:`elas_compile.train.parallel.CHECKPOINT_POLICIES`."""
    torch.manual_seed(seed)
    model = build_model(preset_config(preset, vocab, seq))
    model, schedule, _ = rewrite(model, variant)  # dense_warmup_steps=0: sparse from step 1
    model.to(rt.device).train()
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, vocab, (max(1, batches), batch, seq + 1), generator=g).to(rt.device)
    if loss_in_graph:  # what `elas-compile train` runs: the model and its loss compiled as one
        loss_fn = wrap_model(model, rt, activation_checkpointing=activation_checkpointing)
    else:
        checkpoint_activations(transformer_blocks(model), activation_checkpointing)
        fwd = rt.compile_model(model)

        def loss_fn(b):
            return next_token_loss(fwd(input_ids=b[:, :-1]).logits, b)

    def step(i: int) -> None:
        rt.step_begin()
        b = data[i % data.shape[0]]
        with rt.autocast():
            loss = loss_fn(b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if schedule is not None:
            schedule.step()

    return step, model


def time_steps(step, rt: Runtime, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` calls of ``step(i)`` after ``warmup`` untimed ones (compilation);
    the CUDA peak-memory counter restarts at the first timed step."""
    for i in range(warmup):
        step(i)
    rt.synchronize()
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(rt.device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    rt.synchronize()
    return time.perf_counter() - t0


def bench_one(preset: str, variant: Variant, rt: Runtime, batch: int, seq: int, vocab: int,
              steps: int, warmup: int, seed: int, loss_in_graph: bool = True,
              activation_checkpointing: str = "none") -> Dict:
    """Time ``steps`` training steps of one variant; raises on failure."""
    step, model = make_step(preset, variant, rt, batch, seq, vocab, seed, min(steps + warmup, 4), loss_in_graph,
                            activation_checkpointing)
    params = count_params(model)
    dt = time_steps(step, rt, steps, warmup)
    # CUDA graphs keep activations in pools allocated at capture, before the reset: the peak read
    # after it misses them, so it is reported only without graphs (--compile-mode default)
    peak = (torch.cuda.max_memory_allocated(rt.device) / 2**30
            if rt.device.type == "cuda" and not rt.cudagraphs else None)
    return {"params_m": params / 1e6, "step_ms": 1e3 * dt / steps,
            "tokens_per_s": batch * seq * steps / dt, "peak_mem_gb": peak}


def _cleanup(rt: Runtime) -> None:
    gc.collect()
    try:
        torch._dynamo.reset()
    except Exception:
        pass
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()


def bench_variant(name: str, rank=None) -> Variant:
    """The named variant of :data:`VARIANTS` with ``rank`` (not for full rank), sparse from step 1."""
    base = VARIANTS[name]
    return dataclasses.replace(base, rank=rank if base.baseline != "full" else None, dense_warmup_steps=0)


def run_bench(presets: List[str], variants: List[str], rt: Runtime, *, batch: Optional[int], seq: Optional[int],
              vocab: Optional[int], steps: int, warmup: int, rank=None, seed: int = 0, log=print,
              on_row=None, loss_in_graph: bool = True, activation_checkpointing: str = "none") -> List[Dict]:
    """Measure every (preset, variant); ``on_row(rows)`` is called after each (partial results
    survive a run cut short). Speed-ups against full rank are computed on a GPU only: a CPU runs
    other kernels (no 2:4 hardware, no cuSPARSELt) and its differences are noise for this question."""
    rows = []
    for preset in presets:
        p = get_preset(preset)
        b, s, v = batch or p.batch_size, seq or p.seq_len, vocab or p.vocab_size
        for name in variants:
            variant = bench_variant(name, rank)
            row = {"preset": preset, "variant": name, "batch": b, "seq_len": s, "error": ""}
            try:
                row.update(bench_one(preset, variant, rt, b, s, v, steps, warmup, seed, loss_in_graph,
                                     activation_checkpointing=activation_checkpointing))
            except Exception as e:  # one failing variant must not stop the others
                row["error"] = f"{type(e).__name__}: {first_line(e)}"[:300]
            finally:
                _cleanup(rt)
            rows.append(row)
            log(_format_row(row))
            if on_row is not None:
                on_row(rows)
        full = next((r for r in rows if r["preset"] == preset and r["variant"] == "full"
                     and r.get("tokens_per_s")), None) if rt.device.type == "cuda" else None
        for r in rows:
            if r["preset"] == preset and full and r.get("tokens_per_s"):
                r["speedup_vs_full"] = r["tokens_per_s"] / full["tokens_per_s"]
    return rows


def _format_row(r: Dict) -> str:
    if r.get("error"):
        return f"{r['preset']:<12} {r['variant']:<18} ERROR {r['error']}"
    mem = f"{r['peak_mem_gb']:.2f} GB" if r.get("peak_mem_gb") is not None else "n/a"
    return (f"{r['preset']:<12} {r['variant']:<18} {r['params_m']:>8.1f}M {r['step_ms']:>9.1f} ms "
            f"{r['tokens_per_s']:>12,.0f} tok/s  peak {mem}")


def table(rows: List[Dict]) -> str:
    head = f"{'preset':<12} {'variant':<18} {'params':>9} {'step':>12} {'throughput':>18} {'vs full':>8} {'peak mem':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['preset']:<12} {r['variant']:<18} ERROR: {r['error']}")
            continue
        sp = f"{r['speedup_vs_full']:.2f}x" if r.get("speedup_vs_full") else "-"
        mem = f"{r['peak_mem_gb']:.2f} GB" if r.get("peak_mem_gb") is not None else "n/a"
        lines.append(f"{r['preset']:<12} {r['variant']:<18} {r['params_m']:>8.1f}M {r['step_ms']:>9.1f} ms "
                     f"{r['tokens_per_s']:>12,.0f} tok/s {sp:>8} {mem:>10}")
    return "\n".join(lines)


def write_outputs(rows: List[Dict], out: Path, meta: Dict, plot: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    if plot:
        plot_bench(rows, out / "bench.png", device_label(meta))


def device_label(meta: Dict) -> str:
    """The plot's device line: GPU name, runtime, torch version ('cuda' alone said too little)."""
    torch_v = f"torch {meta['torch']}" if meta.get("torch") else ""
    cpu = "CPU smoke test, not a measurement" if meta.get("note") else ""
    return ", ".join(x for x in (meta.get("gpu"), meta.get("device"), torch_v, cpu) if x)


def _short(x: float) -> str:
    """A bar's value as a label: 256,175 -> '256.2k', 35.2 -> '35.2'."""
    return f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:.1f}"


def plot_bench(rows: List[Dict], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    presets = list(dict.fromkeys(r["preset"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    has_mem = any(r.get("peak_mem_gb") for r in rows)
    fig, axes = plt.subplots(1, 2 if has_mem else 1, figsize=(12 if has_mem else 7, 4.5), squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, key, label in zip(axes[0], ("tokens_per_s", "peak_mem_gb"), ("tokens / s", "peak memory (GB)")):
        for j, v in enumerate(variants):
            vals = [next((r.get(key) or 0 for r in rows if r["preset"] == p and r["variant"] == v), 0)
                    for p in presets]
            bars = ax.bar([i + j * width for i in range(len(presets))], vals, width, label=v)
            ax.bar_label(bars, labels=[_short(x) if x else "" for x in vals], fontsize=7)
        ax.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(presets))], presets)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    # the device string can be long (dtype, compile mode): a line of its own, wrapped to the figure
    lines = ["training step throughput (failed variants show no bar)", *textwrap.wrap(device, 90)]
    fig.suptitle("\n".join(lines), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


CPU_PRESETS = ("llama-tiny",)  # a paper size takes minutes a step on a CPU and measures nothing
CPU_NOTE = ("CPU: a smoke test of the variants, not a measurement (no 2:4 hardware, no cuSPARSELt): "
            "no speed-ups are reported; measure on an NVIDIA GPU")


def cmd_bench(ns: argparse.Namespace) -> int:
    unknown = [v for v in ns.variants if v not in VARIANTS]
    if unknown:
        raise TrainError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    for p in ns.preset:
        get_preset(p)
    if ns.steps < 1 or ns.warmup < 0:
        raise TrainError("--steps must be >= 1 and --warmup >= 0")
    from elas_compile.train.variant import parse_rank

    # torch.compile's default mode unless asked: CUDA graphs would hide the peak memory column
    rt = make_runtime(ns.device, ns.precision, ns.compile, ns.threads, ns.compile_mode or "default")
    paper = [p for p in ns.preset if p not in CPU_PRESETS]
    if rt.device.type == "cpu" and paper:
        raise TrainError(f"{', '.join(paper)} on a CPU would take minutes a step and measure nothing about GPUs; "
                         f"run on a CUDA GPU, or pass --preset llama-tiny for a smoke test")
    print(f"bench on {rt.describe()}: {ns.steps} timed steps after {ns.warmup} warm-up steps, "
          f"activation checkpointing {ns.activation_checkpointing}")
    if rt.device.type == "cpu":
        print(CPU_NOTE)
    if rt.cudagraphs:
        print("peak memory is not reported under CUDA graphs (their pools hide the activations): "
              "measure it with --compile-mode default")
    out = Path(ns.out)
    meta = {"device": rt.describe(), "torch": torch.__version__, "steps": ns.steps, "warmup": ns.warmup,
            "loss_in_graph": ns.loss_in_graph, "activation_checkpointing": ns.activation_checkpointing,
            "note": CPU_NOTE if rt.device.type == "cpu" else ""}
    if rt.device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(rt.device)
    rows = run_bench(ns.preset, ns.variants, rt, batch=ns.batch_size, seq=ns.seq_len, vocab=ns.vocab_size,
                     steps=ns.steps, warmup=ns.warmup, rank=parse_rank(ns.rank), seed=ns.seed,
                     loss_in_graph=ns.loss_in_graph, activation_checkpointing=ns.activation_checkpointing,
                     on_row=lambda rows: write_outputs(rows, out, meta, plot=False))
    print(table(rows))
    write_outputs(rows, out, meta)
    print(f"wrote {out}/bench.csv, bench.json, bench.png")
    return 0
