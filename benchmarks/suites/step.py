"""``step``: training-step throughput of whole models, measured by ``elas-compile bench``'s own
functions (``elas_compile.train.bench.run_bench``: forward, backward, AdamW on random tokens, bf16
autocast, the loss compiled with the model, 2:4 on from the first step).

Variants (``elas_compile.train.bench.VARIANTS``; default: full rank, dense low rank and ELAS masked,
every linear low rank), each in its own fresh compile cache, the step passes on for all of them
(``elas_compile.enable_step_passes``, as ``elas-compile bench`` does). Compile mode
``reduce-overhead`` by default (CUDA graphs, which the sparse GEMMs need); CUDA graphs hide the peak
memory, so ``--memory`` runs every variant again in the ``default`` mode for it. Ratios: tokens/s
against full rank and against the dense low-rank variant of the same factorization (``lowrank``,
``lowrank-attn`` or ``lowrank-cola-attn``), within one preset and mode.
"""
from __future__ import annotations

import argparse

import torch
from torch._dynamo.utils import counters

from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.model_checks import add_model_arguments, model_refusal
from benchmarks.outputs import CPU_LABEL, SuiteResult
from benchmarks.plot import bar_plot

DESCRIPTION = "training step tokens/s of whole models (and peak memory with --memory) vs full rank and dense low rank"
PRESETS = ["llama-350m", "llama-1b"]
VARIANTS = ["full", "lowrank-attn", "elas-masked-attn"]
COLUMNS = ["preset", "variant", "mode", "batch", "seq_len", "params_m", "step_ms", "tokens_per_s", "vs_full",
           "vs_lowrank", "peak_mem_gb", "backend", "status", "note"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, PRESETS, VARIANTS)
    p.add_argument("--compile-mode", default="reduce-overhead",
                   choices=("reduce-overhead", "default", "max-autotune", "max-autotune-no-cudagraphs"))
    p.add_argument("--memory", action="store_true",
                   help="also run every variant in the default mode (no CUDA graphs) for its peak memory")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first, compilation included (default 3)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's, 64)")
    p.add_argument("--seq-len", type=int, help="tokens per sequence (default: the preset's, 256)")


def lowrank_of(variant: str) -> str:
    """The dense low-rank variant a variant's speed is compared with: the same factorization."""
    return "lowrank" + ("-cola" if "-cola" in variant else "") + ("-attn" if variant.endswith("-attn") else "")


def add_ratios(rows: list[dict]) -> None:
    ok = {(r["preset"], r["mode"], r["variant"]): r for r in rows if r.get("tokens_per_s")}
    for row in rows:
        if not row.get("tokens_per_s"):
            continue
        for column, base in (("vs_full", "full"), ("vs_lowrank", lowrank_of(row["variant"]))):
            ref = ok.get((row["preset"], row["mode"], base)) if row["variant"] != "full" or column == "vs_full" else None
            if ref:
                row[column] = row["tokens_per_s"] / ref["tokens_per_s"]


def resolved(preset: str, variant: str, device: torch.device) -> dict:
    """The kernels ``elas_compile.backends.resolve_backend`` picks for the variant's MLPs (bf16
    autocast on a GPU): the function the compiler pass calls when it compiles them."""
    from elas_compile.backends import resolve_backend
    from elas_compile.train.bench import bench_variant
    from elas_compile.train.presets import get_preset

    config = bench_variant(variant).elas_config()
    if config is None or not config.sparsity:
        return {}
    p = get_preset(preset)
    rank = config.rank_for(p.hidden)
    res = resolve_backend(config.kernels, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
                          width=config.ffn_width(p.intermediate), rank_in=rank, rank_out=rank, mode=config.backward)
    return {"requested": config.kernels, "resolved": res.backend, "reason": res.reason}


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    refusal = model_refusal(args.variants, args.preset, device)
    if refusal:
        return refusal
    if args.steps < 1 or args.warmup < 0:
        return "--steps must be >= 1 and --warmup >= 0"
    return None


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    import elas_compile
    from elas_compile.train import bench
    from elas_compile.train.runtime import make_runtime

    cuda = device.type == "cuda"
    elas_compile.enable_step_passes()
    modes = [args.compile_mode] + (["default"] if args.memory and args.compile_mode != "default" else [])
    if not cuda:
        modes = ["eager"]  # as elas-compile bench on a CPU: compiling there costs minutes and measures nothing
    rows, backends = [], {}
    for preset in args.preset:
        for mode in modes:
            rt = make_runtime(device.type, "auto", cuda, None, mode if cuda else None)
            print(f"step {preset} mode={mode}: {rt.describe()}", flush=True)
            for name in args.variants:
                before = dict(counters["elas"])
                with fresh_compile_cache(f"{preset}_{name}_{mode}") as cache_dir:
                    got = bench.run_bench([preset], [name], rt, batch=args.batch_size, seq=args.seq_len, vocab=None,
                                          steps=args.steps, warmup=args.warmup, log=lambda line: print(" ", line,
                                                                                                       flush=True))[0]
                info = resolved(preset, name, device)
                row = {k: got.get(k) for k in ("preset", "variant", "batch", "seq_len", "params_m", "step_ms",
                                               "tokens_per_s", "peak_mem_gb")}
                row.update(mode=mode, backend=info.get("resolved", "dense"),
                           status=f"error: {got['error']}" if got.get("error") else "ok")
                rows.append(row)
                if info:
                    fused = {k: n - before.get(k, 0) for k, n in counters["elas"].items() if n != before.get(k, 0)}
                    backends[f"{name} {preset} {mode}"] = dict(info, cache_dir=cache_dir, elas_rewrites_compiled=fused)
    if cuda:
        add_ratios(rows)
    else:
        for row in rows:
            row["note"] = CPU_LABEL
    return SuiteResult(
        rows=rows, columns=COLUMNS, baseline="full rank (vs_full) and dense low rank of the same factorization "
                                             "(vs_lowrank)",
        table_columns=[c for c in COLUMNS if c not in ("seq_len",) and (not cuda or c != "note")],
        summary=[f"{r['preset']} {r['mode']}: {r['variant']} {r['tokens_per_s']:,.0f} tok/s = {r['vs_full']:.3f}x full, "
                 f"{r['vs_lowrank']:.3f}x {lowrank_of(r['variant'])}" for r in rows
                 if r.get("vs_full") and r.get("vs_lowrank") and not r["variant"].startswith(("full", "lowrank"))],
        backends=backends,
        options={"presets": args.preset, "variants": args.variants, "modes": modes, "steps": args.steps,
                 "warmup": args.warmup, "batch_size": args.batch_size, "seq_len": args.seq_len},
        notes=["peak memory is read only without CUDA graphs (their pools hide the activations): --memory",
               "tokens/s of a step: forward, backward, clip, AdamW; random tokens"],
        plot=plot)


def plot(rows, path, subtitle) -> None:
    bar_plot(rows, path, "training step (higher tokens/s is faster)", subtitle, panel="preset", group="variant",
             bar="mode", metrics=[("tokens_per_s", "tokens / s"), ("peak_mem_gb", "peak memory (GB)")])
