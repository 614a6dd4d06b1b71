"""``prefill``: inference of whole models in bf16 under ``torch.inference_mode()``.

- prefill: one forward of ``--batch-size`` x ``--seq-len`` tokens (default 8 x 2048) that keeps
  the last position's logits (``logits_to_keep=1``, as ``generate`` does), compiled in the
  ``reduce-overhead`` mode (CUDA graphs) and timed with ``triton.testing.do_bench``; CUDA graphs
  hide the peak memory, so (unless ``--no-memory``) the forward is compiled again in the
  ``default`` mode, timed and its peak memory read.
- decode: greedy tokens/s at each of ``--decode-batches`` (default 1 and 32): a
  ``--prompt-len`` prompt (default 128) fills a ``transformers.StaticCache`` (an eager forward),
  then ``--new-tokens - 1`` steps of ``model.forward`` compiled in ``reduce-overhead`` with fixed
  shapes, one token each, argmax between them (host time counts, as in a real decode loop).

Variants (``elas_compile.train.bench.VARIANTS``): full rank, dense low rank and ELAS masked (2:4
active), every linear low rank; each variant in its own fresh compile caches. Ratios: tokens/s
against dense low rank of the same factorization and against full rank, per phase, batch and
mode. The kernels of each ELAS row are the ones ``elas_compile.backends.resolve_backend`` picks for
its token count (the compiler pass does the same where the graph fixes the count: decoding's few
tokens, under ``SPARSE_MIN_TOKENS``, take the reference path), with the fused ops its compilation
produced.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch
from torch._dynamo.utils import counters

from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.model_checks import add_model_arguments, model_refusal
from benchmarks.gpu_pool import run_jobs
from benchmarks.outputs import CPU_LABEL, SuiteResult
from benchmarks.plot import row_bars
from benchmarks.suites.step import lowrank_of
from benchmarks.timing import bench_ms, host_ms

DESCRIPTION = ("inference: prefill tokens/s and peak memory (8 x 2048 tokens), greedy decode tokens/s at batch "
               "1 and 32 with a static KV cache, vs dense low rank and full rank")
PRESETS = ["llama-350m", "llama-1b"]
VARIANTS = ["full", "lowrank-attn", "elas-masked-attn"]
MODE = "reduce-overhead"
COLUMNS = ["preset", "variant", "phase", "batch", "tokens", "mode", "ms", "tokens_per_s", "vs_lowrank", "vs_full",
           "peak_mem_gb", "backend", "graphs", "status", "note"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, PRESETS, VARIANTS)
    p.add_argument("--batch-size", type=int, default=8, help="prefill sequences (default 8)")
    p.add_argument("--seq-len", type=int, default=2048, help="prefill tokens per sequence (default 2048)")
    p.add_argument("--decode-batches", type=int, nargs="*", default=[1, 32], metavar="B",
                   help="decode batch sizes (default 1 32; none: no decode)")
    p.add_argument("--prompt-len", type=int, default=128, help="decode prompt tokens (default 128)")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens generated per sequence (default 128)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="compile the prefill again in the default mode for its peak memory (default on)")
    p.add_argument("--phases", nargs="+", choices=("prefill", "decode"), default=["prefill", "decode"],
                   help="what to measure (default both): one phase a run keeps each GPU call short")
    p.add_argument("--gpus", type=int, default=1, help="run the (preset, variant) jobs on this many GPUs at once")


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    refusal = model_refusal(args.variants, args.preset, device, per="forward", gpus=args.gpus)
    if refusal:
        return refusal
    if min([args.batch_size, args.seq_len, args.prompt_len, *args.decode_batches]) < 1 or args.new_tokens < 2:
        return "--batch-size, --seq-len, --prompt-len and --decode-batches must be >= 1, --new-tokens >= 2"
    return None


def build(job: dict, device: torch.device):
    """The variant's model in bf16, eval mode, on ``device`` (2:4 on for ELAS)."""
    from elas_compile.train.bench import bench_variant
    from elas_compile.train.presets import build_model, get_preset, preset_config
    from elas_compile.train.variant import rewrite

    torch.manual_seed(job["seed"])
    longest = max(job["seq_len"], job["prompt_len"] + job["new_tokens"])
    with torch.device(device):  # initialised where it runs: a 1b model's init on a CPU takes a while
        model = build_model(preset_config(job["preset"], get_preset(job["preset"]).vocab_size, longest))
    model, _, _ = rewrite(model, bench_variant(job["variant"]))
    return model.to(torch.bfloat16).eval()


def resolution(model, tokens: int) -> dict:
    """The kernels of the model's 2:4 MLPs for ``tokens`` rows (``elas_compile.backends``)."""
    import elas_compile
    from elas_compile.backends import resolve_backend

    sparse = [m for _, m in elas_compile.elas_mlps(model) if m.elas_info["sparsity"]]
    if not sparse:
        return {"backend": "dense"}
    mlp = sparse[0]
    info = mlp.elas_info
    res = resolve_backend(mlp.kernels, device=mlp.up_proj.u.device, dtype=mlp.up_proj.u.dtype,
                          width=info["new_intermediate"], rank_in=info["rank"], rank_out=info["rank"],
                          mode=mlp.elas_backward, tokens=tokens)
    return {"backend": res.backend, "backend_reason": res.reason}


class Compiled:
    """Counts what the compilations inside the block produced: graphs and ELAS's fused ops."""

    def __enter__(self):
        self.graphs, self.elas = counters["stats"]["unique_graphs"], dict(counters["elas"])
        return self

    def __exit__(self, *exc):
        self.row = {"graphs": counters["stats"]["unique_graphs"] - self.graphs,
                    "fused_ops": {k: n - self.elas.get(k, 0) for k, n in counters["elas"].items()
                                  if n != self.elas.get(k, 0)}}


def prefill(model, job: dict, mode: str, device: torch.device) -> dict:
    """ms and tokens/s of one prefill forward in ``mode`` (``eager`` on a CPU); peak memory in
    the ``default`` mode."""
    ids = torch.randint(0, model.config.vocab_size, (job["batch_size"], job["seq_len"]), device=device)
    fwd = model if mode == "eager" else torch.compile(model, mode=None if mode == "default" else mode, dynamic=False)

    def call():
        if mode == MODE:
            torch.compiler.cudagraph_mark_step_begin()
        return fwd(input_ids=ids, use_cache=False, logits_to_keep=1).logits

    with Compiled() as compiled:
        for _ in range(3):  # compiles, then CUDA graphs' warm-up and recording
            call()
    row = dict(compiled.row)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        if mode == "default":
            torch.cuda.reset_peak_memory_stats(device)
            call()
            torch.cuda.synchronize(device)
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        row["ms"] = bench_ms(call, job["repeats"])
    else:
        row["ms"] = host_ms(call, job["repeats"], calls=1)
    tokens = job["batch_size"] * job["seq_len"]
    return dict(row, phase="prefill", batch=job["batch_size"], tokens=tokens, mode=mode,
                tokens_per_s=tokens / (row["ms"] * 1e-3), **resolution(model, tokens))


def static_cache(model, prompt_len: int, new_tokens: int):
    """A ``transformers.StaticCache`` for a prompt and its new tokens. Make it once and reuse it:
    its tensors' addresses are static inputs of the compiled step, and new ones re-record its
    CUDA graph."""
    from transformers import StaticCache

    return StaticCache(config=model.config, max_cache_len=prompt_len + new_tokens)


def greedy_decode(model, prompt: torch.Tensor, new_tokens: int, step, cudagraphs: bool, cache):
    """``new_tokens`` greedy tokens after ``prompt`` in ``cache`` (:func:`static_cache`, emptied
    first): the prompt's forward eager (it fills the cache; the first time it also marks the
    cache's tensors static), then one ``step`` (``model.forward``, compiled or not) per token.
    Returns ``(tokens [B, new_tokens], seconds of the steps)``."""
    cache.reset()
    logits = model(input_ids=prompt, cache=cache, use_cache=True, logits_to_keep=1).logits
    out = [logits[:, -1:].argmax(-1)]
    sync = torch.cuda.synchronize if prompt.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(new_tokens - 1):
        if cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        logits = step(input_ids=out[-1], cache=cache, use_cache=True, logits_to_keep=1).logits
        out.append(logits[:, -1:].argmax(-1))
    sync()
    return torch.cat(out, dim=1), time.perf_counter() - t0


def decode(model, job: dict, batch: int, mode: str, device: torch.device) -> dict:
    prompt = torch.randint(0, model.config.vocab_size, (batch, job["prompt_len"]), device=device)
    step = model.forward if mode == "eager" else torch.compile(model.forward, mode=mode, dynamic=False)
    cache = static_cache(model, job["prompt_len"], job["new_tokens"])
    with Compiled() as compiled:
        greedy_decode(model, prompt, job["new_tokens"], step, mode == MODE, cache)  # compiles, records the graphs
    seconds = statistics.median(greedy_decode(model, prompt, job["new_tokens"], step, mode == MODE, cache)[1]
                                for _ in range(job["repeats"]))
    steps = job["new_tokens"] - 1
    return dict(compiled.row, phase="decode", batch=batch, tokens=batch, mode=mode, ms=1e3 * seconds / steps,
                tokens_per_s=batch * steps / seconds, **resolution(model, batch))


def run_job(job: dict, deadline: float | None) -> list[dict]:
    """Every measurement of one (preset, variant): prefill (default mode for memory, then CUDA
    graphs) and decode per batch, each mode in a fresh compile cache."""
    import elas_compile

    elas_compile.enable_step_passes()  # for every variant, as the step suite; here: the job's process may be new
    device = torch.device(job["device"])
    rows = _measure(job, device)
    gc.collect()  # the model, gone with _measure's frame and Dynamo's caches
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return [dict(r, preset=job["preset"], variant=job["variant"]) for r in rows]


def _measure(job: dict, device: torch.device) -> list[dict]:
    model = build(job, device)
    memory = device.type == "cuda" and job["memory"] and "prefill" in job["phases"]
    rows = []
    with torch.inference_mode():
        for mode in (["default"] if memory else []) + [MODE if device.type == "cuda" else "eager"]:
            with fresh_compile_cache(f"{job['preset']}_{job['variant']}_{mode}"):
                parts = []
                if "prefill" in job["phases"]:
                    parts.append(("prefill", job["batch_size"], lambda: prefill(model, job, mode, device)))
                if mode != "default" and "decode" in job["phases"]:  # the default mode is for memory
                    parts += [("decode", b, lambda b=b: decode(model, job, b, mode, device))
                              for b in job["decode_batches"]]
                for phase, batch, measure in parts:
                    try:
                        rows.append(dict(measure(), status="ok"))
                    except Exception as e:  # noqa: BLE001 - one failing measurement keeps the others
                        from elas_compile.train.errors import first_line

                        rows.append({"phase": phase, "batch": batch, "mode": mode,
                                     "status": f"error: {type(e).__name__}: {first_line(e)}"[:300]})
                    gc.collect()
    return rows


def skipped_rows(job: dict, why: str) -> list[dict]:
    return [{"preset": job["preset"], "variant": job["variant"], "status": why}]


def add_ratios(rows: list[dict]) -> None:
    """vs_lowrank and vs_full: tokens/s against the baselines' at the same preset, phase, batch, mode."""
    ok = {(r["preset"], r["phase"], r["batch"], r["mode"], r["variant"]): r for r in rows if r.get("tokens_per_s")}
    for (preset, phase, batch, mode, variant), row in ok.items():
        for column, base in (("vs_lowrank", lowrank_of(variant)), ("vs_full", "full")):
            ref = ok.get((preset, phase, batch, mode, base))
            if ref is not None and variant != base and not (variant == "full" and column == "vs_lowrank"):
                row[column] = row["tokens_per_s"] / ref["tokens_per_s"]


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    cuda = device.type == "cuda"
    settings = {k: getattr(args, k) for k in ("batch_size", "seq_len", "decode_batches", "prompt_len", "new_tokens",
                                              "memory", "repeats", "phases")}
    jobs = [dict(settings, preset=preset, variant=variant, device=device.type, seed=0)
            for preset in args.preset for variant in args.variants]
    rows = run_jobs(run_job, jobs, skipped=skipped_rows, gpus=args.gpus)
    if cuda:
        add_ratios(rows)
    else:
        for row in rows:
            row["note"] = CPU_LABEL
    backends = {f"{r['variant']} {r['preset']} {r['phase']} b={r['batch']} {r['mode']}":
                {"resolved": r["backend"], "reason": r["backend_reason"], "tokens": r["tokens"],
                 "elas_rewrites_compiled": r.get("fused_ops", {})} for r in rows if r.get("backend_reason")}
    return SuiteResult(
        rows=rows, columns=COLUMNS, baseline="dense low rank of the same factorization (vs_lowrank) and full rank "
                                             "(vs_full), same phase, batch and mode",
        table_columns=[c for c in COLUMNS if c not in ("tokens",) and (not cuda or c != "note")],
        summary=[f"{r['preset']} {r['phase']} b={r['batch']} {r['mode']}: {r['variant']} {r['tokens_per_s']:,.0f} "
                 f"tok/s = {r['vs_lowrank']:.3f}x {lowrank_of(r['variant'])}, {r['vs_full']:.3f}x full"
                 for r in rows if r.get("vs_lowrank") and r.get("vs_full")],
        backends=backends,
        options={"presets": args.preset, "variants": args.variants, **settings, "gpus": args.gpus},
        notes=[f"prefill: {args.batch_size} x {args.seq_len} tokens, one forward keeping the last position's logits; "
               "peak memory from the default-mode pass (CUDA graphs hide it), weights included",
               f"decode: greedy, {args.new_tokens - 1} steps of one token after a {args.prompt_len}-token prompt, "
               "static KV cache, the host's time between steps included",
               "graphs: graphs Dynamo compiled for the row (more than one: a graph break)"],
        plot=plot)


def plot(rows, path, subtitle) -> None:
    """A panel per (preset, phase, batch): their tokens/s differ by orders of magnitude."""
    for row in rows:
        row["what"] = f"{row['preset']} {row['phase']} batch {row['batch']}"
        row["label"] = f"{row['variant']} ({row['mode']})"
    row_bars(rows, path, "inference tokens/s (higher is faster); peak memory: see the table", subtitle, panel="what",
             label="label", value="tokens_per_s", color="variant", xlabel="tokens / s")
