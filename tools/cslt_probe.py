"""Discovery probe for the cuSPARSELt compressed layout on a CUDA machine (not a test).

Checks that ``torch._cslt_compress`` writes the layout of ``elas_compile.kernels.cslt_layout``
(values and metadata) for several shapes and both half dtypes, lists the cuSPARSELt algorithm ids
``torch._cslt_sparse_mm`` accepts, checks products of our compressed buffers for each id, and dumps
raw buffers (``--out DIR``) for offline analysis when something disagrees.

    python -m tools.cslt_probe --out /tmp/probe
"""
from __future__ import annotations

import argparse
import json
import os

import torch

from elas_compile.cusparselt import valid_algorithms as valid_alg_ids
from elas_compile.kernels.cslt_layout import compress24_reference, decompress24_reference, meta_numel, values_numel
from elas_compile.kernels.reference import sparsify24


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report: dict = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(),
        "cusparselt": getattr(torch.backends.cusparselt, "version", lambda: None)(),
        "cusparselt_attrs": [a for a in dir(torch.backends.cusparselt) if not a.startswith("_")],
    }
    try:
        import triton

        report["triton"] = triton.__version__
    except Exception as e:  # pragma: no cover
        report["triton"] = repr(e)
    print(json.dumps(report, indent=1), flush=True)
    gen = torch.Generator(device="cuda").manual_seed(0)
    dumps = {}
    shapes = [(128, 128), (256, 512), (384, 256), (128, 64), (64, 128), (64, 64), (192, 320), (32, 32), (128, 192), (1024, 2048)]
    for dtype in (torch.bfloat16, torch.float16):
        for rows, cols in shapes:
            x = sparsify24(torch.randn(rows, cols, device="cuda", dtype=dtype, generator=gen))
            try:
                c = torch._cslt_compress(x)
            except RuntimeError as e:
                print(f"{dtype} {rows}x{cols}: _cslt_compress failed: {str(e)[:120]}", flush=True)
                continue
            line = f"{str(dtype):15s} {rows:5d}x{cols:<5d} cslt shape {tuple(c.shape)} numel {c.numel()} (9/16: {rows * cols * 9 // 16})"
            if rows % 64 == 0 and cols % 64 == 0:
                mine = compress24_reference(x).reshape(-1)
                cf = c.reshape(-1)
                nv, nm = values_numel(rows, cols), meta_numel(rows, cols)
                ok_v = torch.equal(cf[:nv].view(torch.int16), mine[:nv].view(torch.int16))
                ok_m = torch.equal(cf[nv : nv + nm].view(torch.int16), mine[nv:].view(torch.int16))
                frac_m = (cf[nv : nv + nm].view(torch.int16) == mine[nv:].view(torch.int16)).float().mean().item()
                line += f" values_equal={ok_v} meta_equal={ok_m} meta_frac={frac_m:.4f}"
                b = torch.randn(cols, 256, device="cuda", dtype=dtype, generator=gen)
                ids = valid_alg_ids(c, b)
                ref = x.double() @ b.double()
                errs_t = [rel_err(torch._cslt_sparse_mm(c, b, alg_id=a), ref) for a in ids]
                errs_m = [rel_err(torch._cslt_sparse_mm(mine.view(c.shape), b, alg_id=a), ref) for a in ids]
                line += f" alg_ids={ids} max_err_torch={max(errs_t):.2e} max_err_mine={max(errs_m):.2e}"
                try:
                    best = torch._cslt_sparse_mm_search(c, b)
                    line += f" search={best}"
                except RuntimeError as e:
                    line += f" search_failed={str(e)[:60]}"
            print(line, flush=True)
            if rows * cols <= 256 * 512:
                dumps[f"{dtype}_{rows}x{cols}"] = (x.cpu(), c.cpu())
    # torch's own path: prune_dense_static_sort writes PyTorch's MetadataCuSparseLt layout
    # ("sm80_pytorch" here). Does cuSPARSELt on this GPU read it as intended?
    try:
        from torch.sparse import SparseSemiStructuredTensorCUSPARSELT as CSLT

        x = torch.randn(256, 512, device="cuda", dtype=torch.bfloat16, generator=gen)
        b = torch.randn(512, 256, device="cuda", dtype=torch.bfloat16, generator=gen)
        packed = CSLT.prune_dense_static_sort(x).packed.reshape(256, -1)
        as80 = decompress24_reference(packed, 256, 512, layout="sm80_pytorch")  # what torch meant
        as90 = decompress24_reference(packed, 256, 512)  # what cuSPARSELt here reads
        out = torch._cslt_sparse_mm(packed, b)
        print(
            "prune_dense_static_sort: rel err vs its intended pruned matrix",
            f"{rel_err(out, as80.double() @ b.double()):.3e}; vs sm90 decoding {rel_err(out, as90.double() @ b.double()):.3e};",
            "intended pruned keeps the largest entries:", bool((as80 != 0).sum() == x.numel() // 2),
            flush=True,
        )
    except Exception as e:  # pragma: no cover
        print("prune_dense_static_sort diagnostic failed:", repr(e)[:200], flush=True)
    # groups with fewer than two nonzeros: how does cuSPARSELt encode them?
    x = torch.zeros(128, 128, device="cuda", dtype=torch.bfloat16)
    x[:, 1::4] = 1.0
    c = torch._cslt_compress(x).reshape(-1)
    nv = values_numel(128, 128)
    print("one-nonzero groups: first meta words", c[nv : nv + 8].view(torch.int16).tolist(), "values", c[:8].tolist())
    dumps["one_nonzero"] = (x.cpu(), c.cpu())
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        torch.save(dumps, os.path.join(args.out, "cslt_dumps.pt"))
        with open(os.path.join(args.out, "probe.json"), "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
