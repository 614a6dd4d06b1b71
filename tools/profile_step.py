"""Where a training step's GPU time goes: kernel time per category, per variant (GPU only).

Builds each variant as ``elas-compile bench`` does (same model, optimizer, step, step passes), in
its own fresh compile cache, compiles it in the default mode (no CUDA graphs, so the profiler sees
every kernel; ``--compile-mode`` takes another mode: whether the profiler lists the kernels of
CUDA graphs' replays is not checked), runs warm-up steps, times
``--steps`` steps with CUDA events, then profiles ``--profile-steps`` steps with torch.profiler and
sums the kernels' device time per category (GEMM, cuSPARSELt, attention, Inductor's fused kernels,
optimizer, loss, ...). Prints a table (ms per step) and the top kernels of each variant, writes CSV.

    python -m tools.profile_step --preset llama-350m --variants full lowrank-attn elas-masked-attn \\
        --loss graph eager --csv step_profile.csv
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import torch

from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.outputs import write_csv

# first match wins; names are CUDA kernel names as the profiler reports them
CATEGORIES = [
    ("elas_cutlass", r"elas::|4elas"),  # the package's CUTLASS kernels (namespace elas; 4elas when mangled)
    ("elas_triton", r"^(up_relu2|grad_relu2|tn_sparse|relu2_sparsify|sparse24_)\w*kernel"),  # its Triton kernels
    ("sparse_gemm", r"sparse|cusparselt"),  # cuSPARSELt
    ("attention", r"flash|fmha|attention|attn"),
    ("optimizer", r"adam|multi_tensor|foreach"),
    ("loss", r"softmax|nll|cross_entropy"),
    ("gemm", r"gemm|nvjet|xmma|cutlass|cublas|triton_tem_|sm90_"),
    ("inductor", r"^triton_"),  # Inductor's fused kernels (elementwise, norms, reductions)
    ("embedding", r"embedding|index"),
]


def category(name: str) -> str:
    for cat, pat in CATEGORIES:
        if re.search(pat, name, re.IGNORECASE):
            return cat
    return "other"


def kernel_times(prof, steps: int) -> dict[str, float]:
    """ms per step of each CUDA kernel name in a finished profile."""
    out: dict[str, float] = defaultdict(float)
    for e in prof.events():
        # GPU user annotations (e.g. "Optimizer.step#AdamW.step") span kernels counted on their own
        if e.device_type == torch.autograd.DeviceType.CUDA and e.device_time_total > 0 and not e.is_user_annotation:
            out[e.name] += e.device_time_total / 1e3 / steps
    return out


def profile_variant(preset, name, loss, rt, args, top):
    from elas_compile.train.bench import bench_variant, make_step, time_steps
    from elas_compile.train.presets import count_params, get_preset

    p = get_preset(preset)
    b, s, v = args.batch_size or p.batch_size, p.seq_len, p.vocab_size
    step, model = make_step(preset, bench_variant(name), rt, b, s, v, 0, loss_in_graph=loss == "graph")
    params = count_params(model)
    step_ms = 1e3 * time_steps(step, rt, args.steps, args.warmup) / args.steps
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for i in range(args.profile_steps):
            step(i)
        torch.cuda.synchronize()
    per_kernel = kernel_times(prof, args.profile_steps)
    cats: dict[str, float] = defaultdict(float)
    for k, ms in per_kernel.items():
        cats[category(k)] += ms
    row = {"preset": preset, "variant": name, "loss_in": loss, "params_m": params / 1e6, "step_ms": step_ms,
           "kernel_ms": sum(per_kernel.values())}
    row.update({c: cats.get(c, 0.0) for c, _ in CATEGORIES + [("other", "")]})
    print(f"\n{name} loss={loss}: top kernels (ms per step)")
    for k, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {ms:8.3f}  {category(k):<12} {k[:120]}")
        top.append({"variant": name, "loss_in": loss, "kernel": k[:200], "category": category(k), "ms": ms})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-350m")
    ap.add_argument("--variants", nargs="+", default=["full", "lowrank-attn", "elas-masked-attn"])
    ap.add_argument("--loss", nargs="+", default=["graph"], choices=("graph", "eager"),
                    help="the loss compiled with the model (graph) or eager on fp32 logits")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--profile-steps", type=int, default=2)
    ap.add_argument("--top", type=int, default=25, help="kernels listed per variant")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode (default: Inductor's default)")
    ap.add_argument("--csv", default="step_profile.csv")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("profile_step.py needs a CUDA GPU")
    from elas_compile.train.bench import _cleanup
    from elas_compile.train.runtime import make_runtime

    rt = make_runtime("cuda", "auto", True, compile_mode=args.compile_mode)
    rows, top = [], []
    cols = ["step_ms", "kernel_ms"] + [c for c, _ in CATEGORIES] + ["other"]
    csv_path = Path(args.csv)
    for loss in args.loss:
        for name in args.variants:
            with fresh_compile_cache(f"{name}_{loss}"):
                rows.append(profile_variant(args.preset, name, loss, rt, args, top))
                _cleanup(rt)
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
            write_csv(csv_path, rows, list(rows[0]))  # partial results survive a timeout
    write_csv(csv_path.with_name(csv_path.stem + "_kernels.csv"), top, ["variant", "loss_in", "kernel", "category", "ms"])
    print(f"\n{'variant':<18} {'loss in':<8}" + "".join(f"{c[:11]:>12}" for c in cols))
    for r in rows:
        print(f"{r['variant']:<18} {r['loss_in']:<8}" + "".join(f"{r[c]:>12.2f}" for c in cols))


if __name__ == "__main__":
    main()
