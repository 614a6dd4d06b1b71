"""``memory``: training throughput at the memory limit. For each preset and sequence length, variant
and activation-checkpointing policy (``elas_compile.train.parallel``: none, block, selective), the
largest micro-batch that fits one GPU, found by real training steps (forward, backward, clip, AdamW
on random tokens, bf16 autocast, the loss compiled with the model: ``elas-compile bench``'s step);
tokens/s and peak memory of every point tried, and each variant's best configuration.

The search (``benchmarks/batch_search.py``) starts at ``--start-batch``, predicts the limit from
two fits' memory, and bisects where the prediction misses; an out-of-memory error is a data point.
The model is compiled once per variant and policy, in its own fresh compile cache, in the
``default`` mode (CUDA graphs keep their pools across batch sizes and hide the peak), with the
batch dimension dynamic so that every micro-batch reuses the compiled step. Variants: full rank,
dense low rank and ELAS masked, every linear low rank. ``--budget-s`` bounds the run: each
(variant, policy) search gets its share of the time left and stops starting points past it.
"""
from __future__ import annotations

import argparse
import gc
import time

import torch
from torch._dynamo.utils import counters

from benchmarks.batch_search import largest_fit, search_batch
from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.model_checks import model_refusal
from benchmarks.gpu_pool import run_jobs
from benchmarks.outputs import CPU_LABEL, SuiteResult
from benchmarks.search_plot import search_plot
from benchmarks.suites.step import lowrank_of, resolved

DESCRIPTION = ("training tokens/s at the memory limit: the largest micro-batch per variant and activation "
               "checkpointing policy, each variant's best vs dense low rank's and full rank's")
PRESETS = ["llama-1b", "llama-3b"]
SEQ_LENS = {"llama-1b": 4096, "llama-3b": 2048}  # else the preset's own
VARIANTS = ["full", "lowrank-attn", "elas-masked-attn"]
POLICIES = "none,block,selective"
COLUMNS = ["preset", "seq_len", "variant", "checkpointing", "batch", "tokens", "status", "step_ms", "tokens_per_s",
           "peak_mem_gb", "peak_reserved_gb", "search_s", "best", "vs_lowrank", "vs_full", "note"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", nargs="+", default=PRESETS, metavar="NAME",
                   help=f"model presets (default {' '.join(PRESETS)}; a CPU runs llama-tiny only)")
    p.add_argument("--seq-len", nargs="+", metavar="PRESET:T|T",
                   help="tokens per sequence, per preset (llama-1b:4096) or for all (2048); default "
                        + ", ".join(f"{k}:{v}" for k, v in SEQ_LENS.items()) + ", else the preset's")
    p.add_argument("--variants", nargs="+", default=VARIANTS, metavar="NAME",
                   help=f"elas-compile bench variants (default {' '.join(VARIANTS)})")
    p.add_argument("--checkpointing", default=POLICIES, metavar="LIST",
                   help=f"activation checkpointing policies, comma-separated (default {POLICIES})")
    p.add_argument("--max-batch", type=int, default=32, help="largest micro-batch tried (default 32)")
    p.add_argument("--start-batch", type=int, default=2, help="the first micro-batch tried (default 2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per point (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per point, compilation included (default 1)")
    p.add_argument("--budget-s", type=float, default=210.0,
                   help="seconds for the whole search: no point starts after it (a point in progress "
                        "finishes: compiling takes a minute or more); default 210")
    p.add_argument("--gpus", type=int, default=1,
                   help="run the (variant, policy) searches on this many GPUs of the host at once (default 1)")


def policies(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def seq_lens(presets: list[str], specs: list[str] | None) -> dict[str, int]:
    """Each preset's sequence length from ``--seq-len`` (``PRESET:T`` or ``T``); ValueError if bad."""
    from elas_compile.train.presets import get_preset

    out = {p: SEQ_LENS.get(p) or get_preset(p).seq_len for p in presets}
    for spec in specs or []:
        name, _, value = spec.rpartition(":")
        if name and name not in out:
            raise ValueError(f"--seq-len {spec}: {name} is not one of the presets asked for ({', '.join(presets)})")
        if not value.isdigit() or int(value) < 2:
            raise ValueError(f"--seq-len {spec}: the length must be an integer >= 2")
        for p in [name] if name else presets:
            out[p] = int(value)
    return out


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    from elas_compile.train.parallel import CHECKPOINT_POLICIES

    refusal = model_refusal(args.variants, args.preset, device, gpus=args.gpus)
    if refusal:
        return refusal
    bad = [p for p in policies(args.checkpointing) if p not in CHECKPOINT_POLICIES] or not policies(args.checkpointing)
    if bad:
        return f"--checkpointing {args.checkpointing!r}: a comma-separated list of {', '.join(CHECKPOINT_POLICIES)}"
    try:
        seq_lens(args.preset, args.seq_len)
    except ValueError as e:
        return str(e)
    if args.steps < 1 or args.warmup < 0 or args.max_batch < 1 or not 1 <= args.start_batch <= args.max_batch:
        return "--steps and --max-batch must be >= 1, --warmup >= 0, and 1 <= --start-batch <= --max-batch"
    if args.budget_s <= 0:
        return "--budget-s must be > 0"
    return None


def is_oom(e: BaseException) -> bool:
    """An out-of-memory error: torch's own, or a library's allocation failure (cuBLAS, cuSPARSELt)."""
    text = str(e)
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in text.lower() or "ALLOC_FAILED" in text


def build_step(job: dict, rt):
    """The training step of ``job``'s variant and policy: ``(step(tokens), optimizer)``."""
    from elas_compile.train.bench import bench_variant
    from elas_compile.train.optim import build_optimizer
    from elas_compile.train.parallel import wrap_model
    from elas_compile.train.presets import build_model, get_preset, preset_config
    from elas_compile.train.variant import rewrite

    torch.manual_seed(job["seed"])
    config = preset_config(job["preset"], get_preset(job["preset"]).vocab_size, job["seq_len"])
    with torch.device(rt.device):  # built where it trains: initialising 3b parameters on a CPU takes minutes
        model = build_model(config)
    model, _, _ = rewrite(model, bench_variant(job["variant"]))  # 2:4 from the first step
    model.train()
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.0)
    loss_fn = wrap_model(model, rt, activation_checkpointing=job["checkpointing"])

    def step(tokens: torch.Tensor) -> None:
        rt.step_begin()
        with rt.autocast():
            loss = loss_fn(tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, opt, config.vocab_size


def measure(step, opt, rt, batch: int, seq: int, vocab: int, steps: int, warmup: int) -> dict:
    """One point of the search: ``warmup`` then ``steps`` timed steps at micro-batch ``batch``."""
    cuda = rt.device.type == "cuda"
    row, status, tokens = {}, "ok", None
    try:
        tokens = torch.randint(0, vocab, (batch, seq + 1), device=rt.device)
        if batch > 1:  # one compiled step for every micro-batch (1 is specialised by Dynamo)
            torch._dynamo.mark_dynamic(tokens, 0)
        for _ in range(warmup):
            step(tokens)
        rt.synchronize()
        if cuda:
            torch.cuda.reset_peak_memory_stats(rt.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step(tokens)
        rt.synchronize()
        dt = time.perf_counter() - t0
        row = {"step_ms": 1e3 * dt / steps, "tokens_per_s": batch * seq * steps / dt}
        if cuda:
            row.update(peak_mem_gb=torch.cuda.max_memory_allocated(rt.device) / 2**30,
                       peak_reserved_gb=torch.cuda.max_memory_reserved(rt.device) / 2**30)
    except Exception as e:  # noqa: BLE001 - an OOM is a data point; another error ends this search
        from elas_compile.train.errors import first_line

        status = "oom" if is_oom(e) else f"error: {type(e).__name__}: {first_line(e)}"[:300]
    del tokens  # the exception and its frames are gone: free what the failed step held
    opt.zero_grad(set_to_none=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return dict(row, status=status)


def capacity_gb(device: torch.device) -> float:
    """What the caching allocator may hold on ``device``: free memory plus what it holds already."""
    free, _ = torch.cuda.mem_get_info(device)
    return (free + torch.cuda.memory_reserved(device)) / 2**30


def _search(job: dict, rt, deadline: float | None) -> list[dict]:
    step, opt, vocab = build_step(job, rt)
    return search_batch(lambda b: measure(step, opt, rt, b, job["seq_len"], vocab, job["steps"], job["warmup"]),
                        max_batch=job["max_batch"], start=job["start_batch"], deadline=deadline, clock=time.time,
                        capacity_gb=capacity_gb(rt.device) if rt.device.type == "cuda" else None)


def run_job(job: dict, deadline: float | None) -> list[dict]:
    """The search of one (preset, variant, policy); ``deadline`` is this search's (a time.time())."""
    import elas_compile
    from elas_compile.train.runtime import make_runtime

    elas_compile.enable_step_passes()  # for every variant, as the step suite; here: the job's process may be new
    cuda = job["device"] == "cuda"
    rt = make_runtime(job["device"], "auto", cuda, None, "default")  # eager on a CPU, as elas-compile bench
    base = {k: job[k] for k in ("preset", "seq_len", "variant", "checkpointing")}
    before = dict(counters["elas"])
    with fresh_compile_cache(f"{job['preset']}_{job['variant']}_{job['checkpointing']}"):
        points = _search(job, rt, deadline)
    base["fused_ops"] = {k: n - before.get(k, 0) for k, n in counters["elas"].items() if n != before.get(k, 0)}
    gc.collect()  # the model and its optimizer, gone with _search's frame and Dynamo's cache
    if cuda:
        torch.cuda.empty_cache()
    if not points:
        return skipped_rows(job, "skipped: the time budget (--budget-s) was spent building the model")
    return [dict(base, tokens=p["batch"] * job["seq_len"], **p) for p in points]


def skipped_rows(job: dict, why: str) -> list[dict]:
    return [{**{k: job[k] for k in ("preset", "seq_len", "variant", "checkpointing")}, "status": why}]


def mark_best(rows: list[dict], ratios: bool) -> list[dict]:
    """Flags each (preset, seq_len, variant)'s fastest fitting point ``best``; with ``ratios``, gives
    those rows ``vs_lowrank`` and ``vs_full``: tokens/s against the matching baselines' best."""
    best: dict[tuple, dict] = {}
    for row in rows:
        key = (row["preset"], row["seq_len"], row["variant"])
        if row["status"] == "ok" and row.get("tokens_per_s") and (
                key not in best or row["tokens_per_s"] > best[key]["tokens_per_s"]):
            best[key] = row
    for (preset, seq, variant), row in best.items():
        row["best"] = "yes"
        if not ratios:
            continue
        for column, base in (("vs_lowrank", lowrank_of(variant)), ("vs_full", "full")):
            ref = best.get((preset, seq, base))
            if ref is not None and base != variant and not (column == "vs_lowrank" and variant == "full"):
                row[column] = row["tokens_per_s"] / ref["tokens_per_s"]
    return list(best.values())


def summary(best: list[dict]) -> list[str]:
    """A line per variant's best configuration, with its ratios."""
    lines = []
    for row in best:
        ratios = [f"{row[c]:.3f}x {name}'s best" for c, name in
                  (("vs_lowrank", lowrank_of(row["variant"])), ("vs_full", "full")) if row.get(c)]
        lines.append(f"{row['preset']} seq {row['seq_len']}: {row['variant']} best {row['tokens_per_s']:,.0f} tok/s "
                     f"at micro-batch {row['batch']}, checkpointing {row['checkpointing']}"
                     + (f" = {', '.join(ratios)}" if ratios else ""))
    return lines


def limits(rows: list[dict], variants: list[str], pols: list[str]) -> list[str]:
    """A line per (preset, variant): the largest micro-batch that fit under each policy."""
    lines = []
    for preset, seq in dict.fromkeys((r["preset"], r["seq_len"]) for r in rows):
        for variant in variants:
            found = []
            for policy in pols:
                mine = [r for r in rows if (r["preset"], r["seq_len"], r["variant"], r["checkpointing"]) ==
                        (preset, seq, variant, policy) and r.get("batch")]
                found.append(f"{policy} {largest_fit(mine)}")
            lines.append(f"{preset} seq {seq}, {variant}: largest micro-batch that fits: {'; '.join(found)}")
    return lines


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    cuda = device.type == "cuda"
    seqs, pols = seq_lens(args.preset, args.seq_len), policies(args.checkpointing)
    settings = {"max_batch": args.max_batch, "start_batch": args.start_batch, "steps": args.steps,
                "warmup": args.warmup, "device": device.type, "seed": 0}
    jobs = [dict(settings, preset=preset, seq_len=seqs[preset], variant=variant, checkpointing=policy)
            for preset in args.preset for policy in pols for variant in args.variants]
    where = f"{args.gpus} GPUs at once" if args.gpus > 1 else "one after the other"
    print(f"memory: {len(jobs)} searches, {where}, budget {args.budget_s:.0f} s", flush=True)
    rows = run_jobs(run_job, jobs, skipped=skipped_rows, gpus=args.gpus, deadline=time.time() + args.budget_s)
    best = mark_best(rows, ratios=cuda)
    if not cuda:
        for row in rows:
            row["note"] = CPU_LABEL
    notes = ["compiled in the default mode: CUDA graphs' memory pools hide the peak and grow with every batch "
             "size captured; the batch dimension is dynamic (one compilation per variant and policy)" if cuda else
             "eager on a CPU (as elas-compile bench): compiling there costs minutes and measures nothing",
             "peak_mem_gb: the allocator's peak of the timed steps (weights, gradients and AdamW state included); "
             "peak_reserved_gb: what it held, which is what runs out",
             "tokens/s of a step: forward, backward, clip, AdamW; random tokens; 2:4 from the first step",
             *limits(rows, args.variants, pols)]
    backends = {f"{r['variant']} {r['preset']} {r['checkpointing']}":
                dict(resolved(r["preset"], r["variant"], device), elas_rewrites_compiled=r.get("fused_ops", {}))
                for r in rows if r["variant"].startswith("elas")}
    return SuiteResult(
        rows=rows, columns=COLUMNS, baseline="the best configuration of dense low rank of the same factorization "
                                             "(vs_lowrank) and of full rank (vs_full)",
        table_columns=[c for c in COLUMNS if c not in ("tokens", "peak_reserved_gb") and (not cuda or c != "note")],
        summary=summary(best), notes=notes, backends=backends,
        options={"presets": args.preset, "seq_lens": seqs, "variants": args.variants, "checkpointing": pols,
                 "max_batch": args.max_batch, "start_batch": args.start_batch, "steps": args.steps,
                 "warmup": args.warmup, "budget_s": args.budget_s, "gpus": args.gpus},
        plot=lambda measured, path, subtitle: search_plot(rows, path, subtitle))  # OOM rows too, not only the measured

