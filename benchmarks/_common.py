"""What the GPU benchmark scripts share: CUDA-graph timing and the CSV with its ``# meta`` line."""
from __future__ import annotations

import csv
import datetime
import os

import torch

GRAPH_CALLS = 20


def graph_ms(fn, calls: int = GRAPH_CALLS, repeats: int = 7) -> float:
    """Median ms per call of ``fn`` replayed from a CUDA graph of ``calls`` calls (no host cost)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / calls)
    return sorted(times)[len(times) // 2]


def device_meta(**extra) -> dict:
    """date, device, torch version (and whatever the caller adds) for the CSV's first line."""
    meta = {"date": datetime.date.today().isoformat(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__}
    meta.update(extra)
    return meta


def write_csv(path: str, rows: list[dict], meta: dict | None = None, digits: int = 4) -> None:
    """Rows to ``path`` (every column, in first-seen order; floats rounded), after a ``# k=v`` line."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        if meta:
            fh.write("# " + " ".join(f"{k}={str(v).replace(' ', '_')}" for k, v in meta.items()) + "\n")
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows([{k: (round(v, digits) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])


def cutlass_shapes_cli(name: str, doc: str, default_shapes, argv=None) -> tuple:
    """``--csv`` and ``--shapes`` (M x N x K list) of a CUTLASS kernel benchmark, after checking that
    the library can run here; returns (csv path, [(m, n, k), ...])."""
    import argparse

    from elas_compile.kernels import cutlass_ext

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--csv", default=f"benchmarks/results/{name}.csv")
    p.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in default_shapes))
    args = p.parse_args(argv)
    reason = cutlass_ext.unavailable_reason("cuda")
    if reason:
        raise SystemExit(f"{name}: {reason}")
    return args.csv, [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]


def ffn_operands(m: int, n: int, k: int) -> tuple:
    """The ELAS FFN's CUTLASS kernel operands at M x N x K (bf16, on the GPU): h (M x K), U (N x K),
    the compressed S of relu(h U^T)² from the up kernel, g (M x K) and W = U^T (K x N, contiguous)."""
    h = torch.randn(m, k, device="cuda").bfloat16()
    u = (torch.randn(n, k, device="cuda") / k**0.5).bfloat16()
    packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
    g = torch.randn(m, k, device="cuda").bfloat16()
    return h, u, packed, g, u.t().contiguous()
