#!/usr/bin/env bash
# GPU call (eleventh session): the grad kernel's dense S stored row by row straight from the
# compressed form (store_dense_row: two exchanges instead of the quad transpose's eight), on the
# current loads (before each tile's MMA). Bit-identity, kernel tests, timing rounds against the
# current library; the 350m step with it when its grad kernel is faster at 350m's shape.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_s94B.so" || exit 1
P=$PWD/.probe
gpu_compare_libs "$P/libelas_cutlass.so" "$P/lib_s94B.so"
gpu_cutlass_tests s94B
for round in 1 2 3; do
  for lib in libelas_cutlass lib_s94B; do
    ELAS_CUTLASS_LIB=$P/$lib.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 "${lib}_r$round" | tail -n 2
  done
done
faster=$(python3 - "$OUT" <<'PY'
import csv, glob, statistics, sys
def grad(lib):
    return statistics.median(float(r["grad_cutlass"]) for f in glob.glob(f"{sys.argv[1]}/bench_cutlass_{lib}_r*.csv")
                             for r in csv.DictReader(l for l in open(f) if not l.startswith("#")) if r["n"] == "4096")
old, new = grad("libelas_cutlass"), grad("lib_s94B")
print(f"grad 350m median {old:.4f} -> {new:.4f}", file=sys.stderr)
print(int(new < old - 0.002))
PY
)
if [ "$faster" = 1 ]; then gpu_bench_train llama-350m 280 lowrank-attn elas-masked-attn; fi
cd "$OUT" && tar czf s94.tgz --remove-files -- *
