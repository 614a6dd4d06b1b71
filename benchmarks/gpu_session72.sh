#!/usr/bin/env bash
# GPU call: the grad kernel's register-only epilogue (Relu2GradDirect, overlapping epilogues), now
# with its compressed-S loads issued before the tile's MMA (the derived kernel's prefetch call), in
# .probe/lib_new2.so against the previous library (.probe/lib_old.so: collective epilogue, visitor
# node, TMA stores): its kernel tests, bit-identity of dy and S against the old kernel, kernel
# timings of both, then (only if the grad kernel got faster) 350m dense low rank vs ELAS masked.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_new2.so" || exit 1
gpu_cutlass_tests new
# (the comparison ran inline here; it now lives in compare_cutlass_libs.py, same code)
gpu_compare_libs "$PWD/.probe/lib_old.so" "$PWD/.probe/lib_new2.so"
ELAS_CUTLASS_LIB=$PWD/.probe/lib_old.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 old_s72
gpu_bench_cutlass 16384x4096x256,16384x8192x512 new2_s72
faster=$(python3 - "$OUT" <<'PY'
import csv, sys
grad = {tag: float(next(csv.DictReader(l for l in open(f"{sys.argv[1]}/bench_cutlass_{tag}_s72.csv") if l[0] != "#"))["grad_cutlass"])
        for tag in ("old", "new2")}
print(int(grad["new2"] < grad["old"]))
PY
)
if [ "$faster" = 1 ]; then gpu_bench_train llama-350m 330 lowrank-attn elas-masked-attn; else echo "grad kernel not faster: no train bench"; fi
