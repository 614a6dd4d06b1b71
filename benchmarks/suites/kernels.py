"""``kernels``: the 2:4 kernels of an ELAS FFN (d, F, r; M tokens), each beside what it replaces.

- ``relu2_sparsify24``: elas's Triton pass (relu², 2:4 selection, cuSPARSELt-layout compress, one
  read of y) against torch's path (a compiled relu², then
  ``SparseSemiStructuredTensorCUSPARSELT.prune_dense_static_sort``, i.e.
  ``torch._sparse_semi_structured_tile``) and the prune alone.
- ``backward_expand``: the backward pass over dS and the compressed S that writes dy and the dense
  S (masked; ste also reads y).
- ``down_gemm``: ``elas::cslt_mm`` (cuSPARSELt, the compressed S first) against the dense product
  S @ Vdown^T, in CUDA graphs and with do_bench (host cost included: cuSPARSELt's per-call cost).
- ``dx_gemm`` / ``dw_gemm``: what a 2:4 backward could gain (issue: sparse dX, token-wise 2:4
  weight gradients): dh = dy @ Uup with dy compressed along F (exact: dy has S's pattern) and
  dUup^T = dy^T @ h with dy^T compressed along tokens, each against its cuBLAS product.
- ``down_gemm_tokens``: elas::cslt_mm against the dense product at small token counts (where the
  sparse GEMM stops paying: ``elas_compile.backends.SPARSE_MIN_TOKENS``).
- ``up_gemm`` / ``grad_gemm`` (where ``kernels/cutlass/ops.py`` says the CUTLASS library runs): the
  CUTLASS GEMMs with the 2:4 work in their epilogue against the split path (cuBLAS, then the
  Triton pass) and against the cuBLAS GEMM alone.

Memory floor: the bytes a kernel must read and write over the bandwidth of a device copy measured
in the same run. Times: medians of CUDA-graph replays unless ``timing`` says do_bench.
"""
from __future__ import annotations

import argparse

import torch

from benchmarks import timing
from benchmarks.compile_cache import fresh_compile_cache
from benchmarks.outputs import SuiteResult
from benchmarks.plot import row_bars
from benchmarks.suites.ffn import GPU_SHAPES, GPU_TOKENS, parse_shape

DESCRIPTION = "the 2:4 kernels (sparsify, backward, cuSPARSELt, CUTLASS) vs torch's path, dense GEMMs, the memory floor"
COLUMNS = ["d", "F", "r", "tokens", "op", "impl", "timing", "ms", "floor_ms", "x_floor", "tflops", "baseline",
           "vs_baseline", "status"]
GRAPH, DO_BENCH = "cuda graph", "do_bench"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", action="append", type=parse_shape, metavar="d,F,r",
                   help="hidden size, FFN width, rank; repeatable (default 2048,8192,512 and 1024,4096,256)")
    p.add_argument("--tokens", type=int, default=GPU_TOKENS, help=f"tokens M (default {GPU_TOKENS})")


def _sparsify_ops(m: int, f: int):
    from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as CSLT

    y = torch.randn(m, f, device="cuda", dtype=torch.bfloat16)
    relu2 = torch.compile(lambda t: torch.relu(t) ** 2)
    r2 = relu2(y)
    packed = torch.ops.elas.relu2_sparsify24_compress(y)
    ds = torch.randn_like(y)
    expand = torch.ops.elas.relu2_sparsify24_backward_expand
    return [
        ("relu2_sparsify24", "elas triton", lambda: torch.ops.elas.relu2_sparsify24_compress(y), (2 + 9 / 8) * m * f),
        ("relu2_sparsify24", "torch relu2 + prune_dense_static_sort",
         lambda: CSLT.prune_dense_static_sort(relu2(y)), None),
        ("relu2_sparsify24", "torch prune_dense_static_sort alone", lambda: CSLT.prune_dense_static_sort(r2), None),
        ("backward_expand", "elas triton masked", lambda: expand(ds, packed, None, "masked", m, f),
         (2 + 9 / 8 + 4) * m * f),
        ("backward_expand", "elas triton ste", lambda: expand(ds, packed, y, "ste", m, f), (2 + 2 + 9 / 8 + 4) * m * f),
    ]


def gemm_ops(m: int, f: int, r: int):
    """(op, impl, fn) of the GEMM rows at M x F x r, operands made once on the GPU, and why the
    CUTLASS kernels are missing (None when they are there); tools/profile_cutlass.py runs them too."""
    h = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    u = (torch.randn(f, r, device="cuda") / r**0.5).bfloat16()  # Uup: F x r
    v = (torch.randn(r, f, device="cuda") / f**0.5).bfloat16()  # Vdown: r x F
    packed = torch.ops.elas.relu2_sparsify24_compress(h @ u.t())
    s = torch.ops.elas.sparse24_decompress(packed, m, f)
    g = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    expand = torch.ops.elas.relu2_sparsify24_backward_expand
    ops = [
        ("down_gemm", "cuBLAS dense S @ Vdown^T", lambda: s @ v.t()),
        ("down_gemm", "elas::cslt_mm", lambda: torch.ops.elas.cslt_mm(packed, v.t(), m, f)),
        ("up_gemm", "cuBLAS h @ Uup^T alone", lambda: h @ u.t()),
        ("up_gemm", "split: cuBLAS + triton relu2_sparsify24", lambda: torch.ops.elas.relu2_sparsify24_compress(h @ u.t())),
        ("grad_gemm", "cuBLAS g @ Vdown alone", lambda: g @ v),
        ("grad_gemm", "split: cuBLAS + triton backward_expand", lambda: expand(g @ v, packed, None, "masked", m, f)),
    ]
    from elas_compile.kernels.cutlass import ops as cutlass

    reason = cutlass.unavailable_reason("cuda") or cutlass.shape_reason(m, f, r, torch.bfloat16)
    if reason is None:
        ops += [("up_gemm", "cutlass fused epilogue", lambda: torch.ops.elas.cutlass_up_relu2_sparse24(h, u)),
                ("grad_gemm", "cutlass fused epilogue", lambda: torch.ops.elas.cutlass_grad_relu2_sparse24(g, v, packed))]
    return ops, reason


def backward_gemm_ops(m: int, f: int, r: int):
    """(op, impl, fn) of the backward products a 2:4 backward would make sparse, at M x F x r."""
    u = (torch.randn(f, r, device="cuda") / r**0.5).bfloat16()  # Uup: F x r
    h = torch.randn(m, r, device="cuda", dtype=torch.bfloat16)
    dy = torch.ops.elas.sparse24_decompress(torch.ops.elas.sparsify24_compress(
        torch.randn(m, f, device="cuda", dtype=torch.bfloat16)), m, f)
    dy_c = torch.ops.elas.sparsify24_compress(dy)  # along F: dy's own pattern
    dyt = dy.t().contiguous()
    dyt_c = torch.ops.elas.sparsify24_compress(dyt)  # along tokens (approximate)
    return [
        ("dx_gemm", "cuBLAS dy @ Uup", lambda: dy @ u),
        ("dx_gemm", "elas::cslt_mm dy (2:4 along F)", lambda: torch.ops.elas.cslt_mm(dy_c, u, m, f)),
        ("dw_gemm", "cuBLAS dy^T @ h", lambda: dyt @ h),
        ("dw_gemm", "elas::cslt_mm dy^T (2:4 along tokens)", lambda: torch.ops.elas.cslt_mm(dyt_c, h, f, m)),
    ]


def token_sweep_ops(f: int, r: int, counts=(64, 256, 1024, 4096)):
    """(tokens, impl, fn) of the down GEMM at small token counts."""
    v = (torch.randn(r, f, device="cuda") / f**0.5).bfloat16()
    ops = []
    for m in counts:
        packed = torch.ops.elas.relu2_sparsify24_compress(torch.randn(m, f, device="cuda", dtype=torch.bfloat16))
        s = torch.ops.elas.sparse24_decompress(packed, m, f)
        ops += [(m, "cuBLAS dense S @ Vdown^T", lambda s=s: s @ v.t()),
                (m, "elas::cslt_mm", lambda p=packed, m=m: torch.ops.elas.cslt_mm(p, v.t(), m, f))]
    return ops


BASELINES = {"relu2_sparsify24": "torch relu2 + prune_dense_static_sort", "down_gemm": "cuBLAS dense S @ Vdown^T",
             "down_gemm_tokens": "cuBLAS dense S @ Vdown^T", "dx_gemm": "cuBLAS dy @ Uup",
             "dw_gemm": "cuBLAS dy^T @ h",
             "up_gemm": "split: cuBLAS + triton relu2_sparsify24",
             "grad_gemm": "split: cuBLAS + triton backward_expand"}


def _row(base: dict, op: str, impl: str, timing_kind: str, fn, nbytes=None, flops=None, bandwidth=None) -> dict:
    row = dict(base, op=op, impl=impl, timing=timing_kind, baseline=BASELINES.get(op), status="ok")
    try:
        fn()
        torch.cuda.synchronize()
        row["ms"] = timing.graph_ms(fn) if timing_kind == GRAPH else timing.bench_ms(fn, base["_repeats"])
    except Exception as e:  # a kernel that cannot run this shape is a row, not the end of the run
        row["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return row
    if nbytes:
        row["floor_ms"] = nbytes / bandwidth * 1e3
        row["x_floor"] = row["ms"] / row["floor_ms"]
    if flops:
        row["tflops"] = flops / (row["ms"] * 1e-3) / 1e12
    print(f"  {op:<18} {impl:<42} {timing_kind:<10} {row['ms']:.4f} ms", flush=True)
    return row


def shape_rows(d: int, f: int, r: int, m: int, repeats: int, bandwidth: float) -> list[dict]:
    base = {"d": d, "F": f, "r": r, "tokens": m, "_repeats": repeats}
    rows = []
    with fresh_compile_cache(f"sparsify_{f}"):
        for op, impl, fn, nbytes in _sparsify_ops(m, f):
            rows.append(_row(base, op, impl, GRAPH, fn, nbytes=nbytes, bandwidth=bandwidth))
    rows.append(dict(base, op="relu2_sparsify24", impl="memory floor (device copy)", timing=GRAPH, status="ok",
                     ms=(2 + 9 / 8) * m * f / bandwidth * 1e3, x_floor=1.0))
    with fresh_compile_cache(f"gemms_{f}_{r}"):
        ops, cutlass_reason = gemm_ops(m, f, r)
        for op, impl, fn in ops:
            rows.append(_row(base, op, impl, GRAPH, fn, flops=2 * m * f * r))
            if op == "down_gemm":  # cuSPARSELt's host cost shows without graphs
                rows.append(_row(base, op, impl, DO_BENCH, fn, flops=2 * m * f * r))
        for op, impl, fn in backward_gemm_ops(m, f, r):
            rows.append(_row(base, op, impl, GRAPH, fn, flops=2 * m * f * r))
        for tokens, impl, fn in token_sweep_ops(f, r):
            rows.append(_row(dict(base, tokens=tokens), "down_gemm_tokens", impl, GRAPH, fn, flops=2 * tokens * f * r))
    if cutlass_reason:
        for op in ("up_gemm", "grad_gemm"):
            rows.append(dict(base, op=op, impl="cutlass fused epilogue", status=f"skipped: {cutlass_reason}"))
    for row in rows:
        row.pop("_repeats")
        ref = next((x for x in rows if x["op"] == row["op"] and x["impl"] == BASELINES.get(row["op"])
                    and x.get("timing") == row.get("timing") and x["tokens"] == row["tokens"] and x.get("ms")), None)
        if ref and row.get("ms"):
            row["vs_baseline"] = ref["ms"] / row["ms"]
    return rows


def summary(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        if row.get("vs_baseline") and row["impl"] != row.get("baseline") and row["impl"].startswith(("elas", "cutlass")):
            lines.append(f"d={row['d']} F={row['F']} r={row['r']} {row['op']} ({row['timing']}): {row['impl']} "
                         f"{row['ms']:.4f} ms = {row['vs_baseline']:.2f}x {row['baseline']}")
    return lines


def plot(rows, path, subtitle) -> None:
    for r in rows:
        r["_panel"] = f"d={r['d']} F={r['F']} r={r['r']}, {r['tokens']} tokens"
        r["_label"] = f"{r['op']}: {r['impl']}" + (f" ({r['timing']})" if r.get("timing") == DO_BENCH else "")
    row_bars(rows, path, "ELAS 2:4 kernels (lower is faster)", subtitle, panel="_panel", label="_label", value="ms",
             color="op", xlabel="ms")


def refuse(args: argparse.Namespace, device: torch.device) -> str | None:
    if device.type != "cuda":
        return "needs a CUDA GPU (its Triton kernels, cuSPARSELt and CUTLASS run only there); the ffn suite has a CPU smoke run"
    return None


def run(args: argparse.Namespace, device: torch.device) -> SuiteResult:
    import elas_compile  # noqa: F401  (registers torch.ops.elas)

    shapes = args.shape or GPU_SHAPES
    bandwidth = timing.copy_bandwidth()
    print(f"device copy: {bandwidth / 1e12:.2f} TB/s (read + write)", flush=True)
    rows = []
    for d, f, r in shapes:
        print(f"kernels d,F,r={(d, f, r)} tokens={args.tokens}", flush=True)
        rows += shape_rows(d, f, r, args.tokens, args.repeats, bandwidth)
        torch.cuda.empty_cache()
    return SuiteResult(
        rows=rows, columns=COLUMNS, baseline="the baseline named on each row",
        table_columns=["d", "F", "r", "op", "impl", "timing", "ms", "x_floor", "tflops", "vs_baseline", "status"],
        summary=summary(rows),
        options={"shapes": [list(s) for s in shapes], "tokens": args.tokens, "repeats": args.repeats,
                 "copy_TBps": round(bandwidth / 1e12, 3)},
        notes=[f"memory floor: bytes read + written at the device copy's {bandwidth / 1e12:.2f} TB/s",
               "x_floor: time over the floor (1.0 is the floor); vs_baseline: baseline ms / this row's ms"],
        plot=plot)
