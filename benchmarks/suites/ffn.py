"""``ffn``: one FFN block of M tokens, bf16, every variant of ``benchmarks/ffn_models.py``.

Per variant and compile mode: forward (no grad) and forward+backward ms, and the saved
activations (unique storages the autograd graph keeps after a forward, parameters and the input
excluded, read with ``torch.autograd.graph.saved_tensors_hooks``). Modes: ``default`` and
``reduce-overhead`` are ``torch.compile`` modes (do_bench medians, host cost included);
``graph`` compiles in the default mode and captures 20 calls of the whole step (the forward and
the backward of the compiled module) in one CUDA graph (GPU time only); ``eager`` runs the module
uncompiled. Ratios: dense low rank's time / the variant's (above 1 is faster), the variant's
saved bytes / dense low rank's.
"""
from __future__ import annotations

import argparse

import torch
from torch._dynamo.utils import counters

from benchmarks import ffn_models, timing
from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.outputs import CPU_LABEL, SuiteResult
from benchmarks.plot import bar_plot

DESCRIPTION = "one FFN block: fwd and fwd+bwd ms per compile mode, saved activations, vs dense low rank"
BASELINE = "lowrank"
GPU_SHAPES = [(2048, 8192, 512), (1024, 4096, 256)]
GPU_TOKENS = 16384
CPU_SHAPES = [(128, 256, 32)]
CPU_TOKENS = 256
MODES = ("eager", "default", "reduce-overhead", "graph")
GPU_MODES = ("default", "reduce-overhead", "graph")
CUDA_MODES = ("reduce-overhead", "graph")
COLUMNS = ["d", "F", "r", "tokens", "variant", "mode", "fwd_ms", "fwd_bwd_ms", "saved_MiB", "fwd_vs_lowrank",
           "fwd_bwd_vs_lowrank", "saved_vs_lowrank", "backend", "status", "note"]


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        d, f, r = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape takes d,F,r (three ints), got {text!r}") from None
    if f % 128 or r % 16 or d % 16:
        raise argparse.ArgumentTypeError(f"--shape {text}: F must be a multiple of 128, d and r of 16")
    return d, f, r


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", type=parse_shape, metavar="d,F,r",
                   help="hidden size, ELAS FFN width, rank; repeatable (GPU default: 2048,8192,512 and "
                        "1024,4096,256; CPU: 128,256,32)")
    p.add_argument("--tokens", type=int, help=f"tokens M (GPU default {GPU_TOKENS}, CPU {CPU_TOKENS})")
    p.add_argument("--modes", nargs="+", choices=MODES,
                   help=f"compile modes (GPU default: {' '.join(GPU_MODES)}; CPU: default)")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants (default: all)")


def _storages(t: torch.Tensor):
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(t):  # torch's 2:4 subclass: its packed and metadata tensors
        for attr in t.__tensor_flatten__()[0]:
            yield from _storages(getattr(t, attr))
    else:
        yield t.untyped_storage()


def saved_mib(run_forward, module: torch.nn.Module, x: torch.Tensor) -> float:
    """MiB of the unique storages autograd saves in one forward, parameters and ``x`` excluded."""
    skip = {s.data_ptr() for p in [*module.parameters(), x] for s in _storages(p)}
    seen: dict[int, int] = {}

    def pack(t):
        for s in _storages(t):
            if s.data_ptr() not in skip:
                seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run_forward()
    del out
    return sum(seen.values()) / 2**20


def time_mode(module, mode: str, x, gy, repeats: int) -> dict:
    """fwd and fwd+bwd ms of ``module`` in ``mode`` (and the saved activations where the mode
    is one a training step without CUDA graphs runs)."""
    compiled = module if mode == "eager" else (
        torch.compile(module, mode="reduce-overhead") if mode == "reduce-overhead" else torch.compile(module))
    mark = torch.compiler.cudagraph_mark_step_begin if mode == "reduce-overhead" else (lambda: None)
    params = list(module.parameters())

    def fwd_bwd():  # grads dropped each step, as zero_grad() does: CUDA graphs reuse their outputs
        for p in params:
            p.grad = None
        x.grad = None
        mark()
        compiled(x).backward(gy)

    def fwd():
        mark()
        with torch.no_grad():
            return compiled(x)

    for _ in range(3):  # compilation, cuSPARSELt plan choice, CUDA graph recording
        fwd_bwd()
        fwd()
    cuda = x.is_cuda
    if cuda:
        torch.cuda.synchronize()
    timer = timing.graph_ms if mode == "graph" else (
        (lambda fn: timing.bench_ms(fn, repeats)) if cuda else (lambda fn: timing.host_ms(fn, repeats)))
    out = {"fwd_bwd_ms": timer(fwd_bwd), "fwd_ms": timer(fwd)}
    if mode in ("eager", "default"):
        out["saved_MiB"] = saved_mib(lambda: compiled(x), module, x)
    return out


def measure_variant(v: ffn_models.Variant, shape, x, gy, modes, repeats) -> tuple[list[dict], dict]:
    """One variant in every mode, in its own fresh compile cache: its rows and its kernels."""
    d, f, r = shape
    base = {"d": d, "F": f, "r": r, "tokens": x.shape[0], "variant": v.name}
    if v.blocker:
        return [dict(base, mode="-", status=f"skipped: {v.blocker}")], {}
    rows, before = [], dict(counters["elas"])
    with fresh_compile_cache(f"{v.name}_{d}_{f}_{r}") as cache_dir:
        torch.manual_seed(0)
        module = v.build().to(x.device, ffn_models.DTYPE)
        kernels = ffn_models.resolved_kernels(module)
        backend = kernels[0]["backend"] if kernels else v.backend
        for mode in modes:
            eager_elas = mode == "eager" and kernels  # uncompiled, an ELAS MLP runs its readable reference ops
            row = dict(base, mode=mode, backend="reference (eager)" if eager_elas else backend, status="ok")
            try:
                row.update(time_mode(module, mode, x, gy, repeats))
            except Exception as e:  # one failing variant or mode is a row, not the end of the run
                row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            torch._dynamo.reset()
            rows.append(row)
            print(f"  {v.name:<22} {mode:<16} " + " ".join(
                f"{k}={row[k]:.4g}" for k in ("fwd_ms", "fwd_bwd_ms", "saved_MiB") if k in row)
                + ("" if row["status"] == "ok" else f" {row['status']}"), flush=True)
        del module
    fused = {k: n - before.get(k, 0) for k, n in counters["elas"].items() if n != before.get(k, 0)}
    info = {"cache_dir": cache_dir, "mlps": kernels, "elas_rewrites_compiled": fused}
    if kernels:
        info.update(requested=v.kernels, resolved=backend, reason=kernels[0]["reason"])
    if x.is_cuda:
        torch.cuda.empty_cache()
    return rows, info


def add_ratios(rows: list[dict]) -> None:
    """Ratio columns against dense low rank at the same shape and mode."""
    base = {(r["d"], r["F"], r["r"], r["mode"]): r for r in rows if r["variant"] == BASELINE and r["status"] == "ok"}
    for row in rows:
        b = base.get((row["d"], row["F"], row["r"], row["mode"]))
        if b is None or row["status"] != "ok":
            continue
        for key in ("fwd", "fwd_bwd"):
            row[f"{key}_vs_lowrank"] = b[f"{key}_ms"] / row[f"{key}_ms"]
        if row.get("saved_MiB") is not None and b.get("saved_MiB"):
            row["saved_vs_lowrank"] = row["saved_MiB"] / b["saved_MiB"]


def summary(rows: list[dict]) -> list[str]:
    lines = []
    keys = dict.fromkeys((r["d"], r["F"], r["r"], r["mode"]) for r in rows if r["mode"] != "-")
    for d, f, r, mode in keys:
        mine = [x for x in rows if (x["d"], x["F"], x["r"], x["mode"]) == (d, f, r, mode)
                and x.get("fwd_bwd_vs_lowrank") and x["variant"] != BASELINE]
        if mine:
            cells = ", ".join(f"{x['variant']} {x['fwd_bwd_vs_lowrank']:.2f}x (fwd {x['fwd_vs_lowrank']:.2f}x)"
                              for x in mine)
            lines.append(f"d={d} F={f} r={r}, {mode}: fwd+bwd {cells}")
    return lines


def plot(rows, path, subtitle) -> None:
    for r in rows:
        r["_panel"] = f"d={r['d']} F={r['F']} r={r['r']}, {r['tokens']} tokens"
    bar_plot(rows, path, "one FFN block, bf16 (lower is faster)", subtitle, panel="_panel", group="variant",
                 bar="mode", metrics=[("fwd_bwd_ms", "fwd+bwd ms"), ("fwd_ms", "fwd ms (no grad)")])


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    cuda_modes = sorted(set(args.modes or ()) & set(CUDA_MODES))
    if device.type != "cuda" and cuda_modes:
        return f"modes {', '.join(cuda_modes)} need a CUDA GPU (a CPU runs eager and default)"
    known = set(ffn_models.VARIANT_NAMES)
    unknown = sorted(set(args.variants or ()) - known)
    if unknown:
        return f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ffn_models.VARIANT_NAMES)}"
    return None


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    cpu = device.type != "cuda"
    shapes = args.shape or (CPU_SHAPES if cpu else GPU_SHAPES)
    tokens = args.tokens or (CPU_TOKENS if cpu else GPU_TOKENS)
    modes = args.modes or (("default",) if cpu else GPU_MODES)
    rows, backends = [], {}
    for shape in shapes:
        print(f"ffn d,F,r={shape} tokens={tokens} modes={','.join(modes)}", flush=True)
        torch.manual_seed(0)
        x = torch.randn(tokens, shape[0], device=device, dtype=ffn_models.DTYPE, requires_grad=True)
        gy = torch.randn(tokens, shape[0], device=device, dtype=ffn_models.DTYPE)
        for v in ffn_models.variants(*shape, device):
            if args.variants and v.name not in args.variants:
                continue
            new_rows, info = measure_variant(v, shape, x, gy, modes, args.repeats)
            rows += new_rows
            if info.get("mlps"):
                backends[f"{v.name} d={shape[0]}"] = info
    if cpu:
        for row in rows:
            row["note"] = CPU_LABEL
    else:
        add_ratios(rows)
    return SuiteResult(
        rows=rows, columns=COLUMNS, baseline="lowrank (dense low-rank ReLU², ELASConfig(sparsity=False))",
        table_columns=[c for c in COLUMNS if c not in ("tokens",) and (cpu or c != "note")],
        summary=[] if cpu else summary(rows), backends=backends,
        options={"shapes": [list(s) for s in shapes], "tokens": tokens, "modes": list(modes),
                 "variants": args.variants, "repeats": args.repeats},
        notes=["fwd_ms is the forward under torch.no_grad(); saved_MiB is read in the eager and default modes "
               "(CUDA graph pools hide it)", "times are medians: do_bench (default, reduce-overhead), CUDA-graph "
               "replays of 20 steps (graph), wall clock (CPU)"],
        plot=plot)
