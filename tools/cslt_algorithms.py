"""cuSPARSELt at the ELAS FFN's shapes, under CUDA graphs: every (algorithm, B layout, transposed
result) that ``torch._cslt_sparse_mm`` accepts, against the dense product and the plan
``elas_compile.cusparselt`` chooses (split-K 2/4/8 in modes 0/1 is refused for every id on an
H100 with torch 2.11, so it is not tried).

    python -m tools.cslt_algorithms [--shapes 16384x8192x512,16384x4096x256] [--csv PATH]

Shape M x K x N: the 2:4 operand is M x K (tokens x F), B is K x N (the down projection's V
factor, N = rank). ``b=t`` passes B as ``W.t()`` of a contiguous N x K weight (what the FFN does),
``b=c`` as a contiguous K x N matrix. Each time is the median of CUDA-graph replays of 20 calls
(no host cost: cuSPARSELt plans are built at capture). ``search`` is the id
``torch._cslt_sparse_mm_search`` picks. Prints the 12 fastest and a summary, writes every row to
the CSV.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from benchmarks.outputs import write_csv
from benchmarks.timing import graph_ms
from elas_compile import cusparselt as C
from elas_compile.kernels.triton.relu2_sparsify import relu2_sparsify24_compress


def one_shape(m, k, n):
    packed = relu2_sparsify24_compress(torch.randn(m, k, device="cuda", dtype=torch.bfloat16))
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
    bs = {"t": w.t(), "c": w.t().contiguous()}
    dense = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    rows = [{"M": m, "K": k, "N": n, "what": "dense", "ms": graph_ms(lambda: dense @ w.t())}]
    ref = torch._cslt_sparse_mm(packed, bs["t"], alg_id=0).float()
    search = {name: int(torch._cslt_sparse_mm_search(packed, b)) for name, b in bs.items()}
    for (bname, b), tr in itertools.product(bs.items(), (False, True)):
        for alg in C.valid_algorithms(packed, b):
            call = lambda: torch._cslt_sparse_mm(packed, b, transpose_result=tr, alg_id=alg)  # noqa: E731
            try:
                out = call()
                torch.cuda.synchronize()
            except RuntimeError:
                continue
            got = out.t() if tr else out
            err = ((got.float() - ref).norm() / ref.norm()).item()
            rows.append({"M": m, "K": k, "N": n, "what": f"cslt b={bname} tr={int(tr)} alg={alg}",
                         "ms": graph_ms(call), "rel_err": f"{err:.1e}", "search": search[bname]})
    plan = C.plan_for(packed, bs["t"], m, k)
    rows.append({"M": m, "K": k, "N": n, "what": f"elas plan for W.t(): {plan}",
                 "ms": graph_ms(lambda: C.cslt_mm(packed, bs["t"], m, k)), "search": search["t"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="16384x8192x512,16384x4096x256")
    ap.add_argument("--csv", default="cslt_algorithms.csv")
    args = ap.parse_args()
    torch.manual_seed(0)
    allrows = []
    for s in args.shapes.split(","):
        m, k, n = (int(v) for v in s.split("x"))
        rows = one_shape(m, k, n)
        allrows += rows
        dense = rows[0]["ms"]
        sparse = sorted(rows[1:], key=lambda r: r["ms"])
        at_search = [r for r in sparse if r["what"].endswith(f"tr=0 alg={r['search']}") or "plan" in r["what"]]
        print(f"{m}x{k}x{n}: dense {dense:.4f} ms; {len(sparse)} accepted cuSPARSELt configs; fastest:")
        for r in sparse[:12]:
            print(f"  {r['what']:42s} {r['ms']:.4f} ms  {dense / r['ms']:.2f}x dense  err {r.get('rel_err', '')}")
        for r in at_search:
            print(f"  searched id / elas plan: {r['what']:42s} {r['ms']:.4f} ms  {dense / r['ms']:.2f}x")
    write_csv(Path(args.csv), allrows, [])
    print(f"wrote {args.csv} ({torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"cuSPARSELt {torch.backends.cusparselt.version()})")


if __name__ == "__main__":
    main()
