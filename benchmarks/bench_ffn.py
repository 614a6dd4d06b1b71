"""One FFN block on the GPU: fwd+bwd time, forward time, saved-activation memory, per variant.

    python benchmarks/bench_ffn.py [--tokens 16384] [--csv benchmarks/results/ffn.csv]

Variants (benchmarks/ffn_variants.py): full-rank SwiGLU, low-rank ReLU² dense, low-rank ReLU² with
torch's 2:4 subclass, and ELAS (elas_compile.apply) in both backward modes; each compiled with
torch.compile in the default mode and in "reduce-overhead" (CUDA graphs: removes cuSPARSELt's host
cost). ``--modes graph``: compiled in the default mode, the whole fwd+bwd step (and the forward)
captured 20 times into one CUDA graph and replayed (_common.graph_ms): GPU time with no host work
between the forward's and the backward's graphs, which reduce-overhead's per-step replay leaves in
where the GPU finishes first (as a whole model's step under CUDA graphs would not). Saved-activation
memory is read in the default mode (CUDA graph pools blur it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from unittest import mock

import torch
import torch._inductor.config

sys.path.insert(0, os.path.dirname(__file__))
from _common import device_meta, graph_ms, write_csv  # noqa: E402
from ffn_variants import ENV, variants  # noqa: E402

SHAPES = [(2048, 5504, 512), (1024, 2752, 256)]  # (d, SwiGLU F, rank): 1B-like and 350M-like


def bench(fn):
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=200, return_mode="median")


def profile(step, fwd, path):
    """Per-kernel GPU time of 5 fwd+bwd steps and 5 forwards (torch.profiler), written to ``path``."""
    from torch.profiler import ProfilerActivity, profile as prof

    tables = []
    for what, fn in (("fwd+bwd", step), ("fwd", fwd)):
        with prof(activities=[ProfilerActivity.CUDA]) as p_:
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
        tables.append(f"== {what} (5 calls)\n" + p_.key_averages().table(sort_by="cuda_time_total", row_limit=14,
                                                                           max_name_column_width=70))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(tables))


def measure(name, make, x, gy, mode, profile_dir=None):
    torch.manual_seed(0)
    mod = make().to("cuda", torch.bfloat16)
    compiled_mode = "default" if mode == "graph" else mode
    m = torch.compile(mod, mode=compiled_mode) if compiled_mode != "default" else torch.compile(mod)
    mark = torch.compiler.cudagraph_mark_step_begin if mode != "graph" else (lambda: None)
    timer = graph_ms if mode == "graph" else bench
    params = list(mod.parameters())

    def step():  # grads set to None each step, as zero_grad() does: CUDA graphs reuse their outputs
        for p_ in params:
            p_.grad = None
        x.grad = None
        mark()
        m(x).backward(gy)

    def fwd():
        mark()
        with torch.no_grad():
            return m(x)

    row = {"variant": name, "mode": mode}
    with mock.patch.dict(os.environ, ENV.get(name, {})):  # read when the ELAS op is traced
        try:
            for _ in range(3):
                step()
                fwd()
            torch.cuda.synchronize()
            row["fwd_bwd_ms"] = round(timer(step), 4)
            row["fwd_ms"] = round(timer(fwd), 4)
            if profile_dir:
                profile(step, fwd, os.path.join(profile_dir, f"profile_{name}_{x.shape[1]}_{mode}.txt"))
            if mode == "default":
                x.grad = None
                torch.cuda.synchronize()
                base = torch.cuda.memory_allocated()
                out = m(x)
                row["saved_MiB"] = round((torch.cuda.memory_allocated() - base - out.numel() * out.element_size()) / 2**20, 1)
                del out
        except Exception as e:  # one failing variant is a row, not a crash
            row["error"] = repr(e)[:300]
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--modes", default="reduce-overhead,default",
                   help="compile modes to time (reduce-overhead: CUDA graphs, no cuSPARSELt host cost; "
                        "graph: the whole step in one captured CUDA graph, GPU time only)")
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--shapes", default="all", help="'all', or 'd' values, e.g. 2048")
    p.add_argument("--csv", default="benchmarks/results/ffn.csv")
    p.add_argument("--profile", default="", metavar="DIR", help="also write per-kernel GPU time tables to DIR")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_ffn needs a CUDA GPU")
    # variants differ in what the ELAS op traces to, not in the graph Dynamo sees: no cache reuse
    torch._inductor.config.force_disable_caches = True
    rows = []
    shapes = [s_ for s_ in SHAPES if args.shapes == "all" or str(s_[0]) in args.shapes.split(",")]
    for d, f_sw, r in shapes:
        x = torch.randn(args.tokens, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        gy = torch.randn(args.tokens, d, device="cuda", dtype=torch.bfloat16)
        for name, make in variants(d, f_sw, r).items():
            if args.only and name not in args.only.split(","):
                continue
            for mode in args.modes.split(","):
                rows.append(dict(measure(name, make, x, gy, mode, args.profile), d=d, f_swiglu=f_sw, rank=r,
                                 tokens=args.tokens))
                torch._dynamo.reset()
    write_csv(args.csv, rows, device_meta())
    print(f"\n{'d':>5} {'variant':<24} {'mode':<16} {'fwd+bwd ms':>10} {'fwd ms':>8} {'saved MiB':>10}")
    for r_ in rows:
        print(f"{r_['d']:>5} {r_['variant']:<24} {r_['mode']:<16} {r_.get('fwd_bwd_ms', 'ERR'):>10} "
              f"{r_.get('fwd_ms', ''):>8} {r_.get('saved_MiB', ''):>10}")


if __name__ == "__main__":
    main()
