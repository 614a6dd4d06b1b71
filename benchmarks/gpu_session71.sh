#!/usr/bin/env bash
# GPU call: the grad kernel's register-only epilogue (Relu2GradDirect, overlapping epilogues) in
# .probe/lib_new.so against the previous library (.probe/lib_old.so: collective epilogue, visitor
# node, TMA stores): its kernel tests, bit-identity of dy and S against the old kernel, kernel
# timings of both, then 350m dense low rank vs ELAS masked (every linear low rank, CUDA graphs).
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_new.so" || exit 1
gpu_cutlass_tests new
for lib in old new; do
  ELAS_CUTLASS_LIB=$PWD/.probe/lib_$lib.so python3 - "$lib" <<'PY' 2>&1 | tail -n 3
import sys, torch
from elas_compile.kernels import cutlass_ext as C
lib = sys.argv[1]
out = {}
for m, n, k in [(192, 320, 16), (16384, 4096, 256), (4096, 11008, 512)]:
    gen = torch.Generator(device="cuda").manual_seed(m + n + k)
    h = torch.randn(m, k, device="cuda", generator=gen).bfloat16()
    u = (torch.randn(n, k, device="cuda", generator=gen) / k**0.5).bfloat16()
    g = torch.randn(m, k, device="cuda", generator=gen).bfloat16()
    w = (torch.randn(k, n, device="cuda", generator=gen) / k**0.5).bfloat16()
    packed = C.up_relu2_sparse24_check(h, u)
    out[(m, n, k)] = (packed, *C.grad_relu2_sparse24_check(g, w, packed))
if lib == "old":
    torch.save({key: [t.cpu() for t in v] for key, v in out.items()}, "/tmp/old_outputs.pt")
    print("old outputs saved")
else:
    old = torch.load("/tmp/old_outputs.pt")
    for key, v in out.items():
        same = [torch.equal(a.cpu(), b) for a, b in zip(v, old[key])]
        print("bit-identical to the old library", key, "packed, dy, S:", same)
PY
done
ELAS_CUTLASS_LIB=$PWD/.probe/lib_old.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 old_s71
gpu_bench_cutlass 16384x4096x256,16384x8192x512 new_s71
gpu_bench_train llama-350m 330 lowrank-attn elas-masked-attn
