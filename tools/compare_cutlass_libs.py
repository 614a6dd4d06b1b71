"""Whether two builds of the CUTLASS library compute bit-identical outputs (a kernel rewrite that
must not change results). Run once per library, the reference first:

    ELAS_CUTLASS_LIB=old.so python -m tools.compare_cutlass_libs save /tmp/ref.pt
    ELAS_CUTLASS_LIB=new.so python -m tools.compare_cutlass_libs compare /tmp/ref.pt

For each shape (M x N x K, seeded random bf16 inputs): the up kernel's packed S, then the grad
kernel's dy and dense S from that packed S; `compare` prints one line per shape with three booleans.
"""
from __future__ import annotations

import sys

import torch

from elas_compile.kernels.cutlass import ops as C

SHAPES = [(192, 320, 16), (16384, 4096, 256), (4096, 11008, 512)]


def outputs() -> dict:
    out = {}
    for m, n, k in SHAPES:
        gen = torch.Generator(device="cuda").manual_seed(m + n + k)
        h = torch.randn(m, k, device="cuda", generator=gen).bfloat16()
        u = (torch.randn(n, k, device="cuda", generator=gen) / k**0.5).bfloat16()
        g = torch.randn(m, k, device="cuda", generator=gen).bfloat16()
        w = (torch.randn(k, n, device="cuda", generator=gen) / k**0.5).bfloat16()
        packed = C.up_relu2_sparse24_check(h, u)
        out[(m, n, k)] = [t.cpu() for t in (packed, *C.grad_relu2_sparse24_check(g, w, packed))]
    return out


def main(argv: list[str]) -> None:
    action, path = argv
    if action == "save":
        torch.save(outputs(), path)
        print("reference outputs saved")
        return
    ref = torch.load(path)
    for key, got in outputs().items():
        print("bit-identical to the reference library", key, "packed, dy, S:",
              [torch.equal(a, b) for a, b in zip(got, ref[key])])


if __name__ == "__main__":
    main(sys.argv[1:])
