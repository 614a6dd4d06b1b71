#!/usr/bin/env bash
# GPU call (eleventh session): the grad kernel with its loads one tile ahead (A: the derived
# ping-pong kernel fetches the next tile before the epilogue, which issues that tile's loads of
# the compressed S; the 16-bit metadata words two to a register), and B: A + the dense S stored
# row by row straight from the compressed form (two exchanges instead of the quad transpose's
# eight). Bit-identity against the current library, kernel tests, two timing rounds each.
. benchmarks/gpu_common.sh
gpu_setup "$PWD/.probe/lib_s93B.so" || exit 1
P=$PWD/.probe
gpu_compare_libs "$P/libelas_cutlass.so" "$P/lib_s93A.so" "$P/lib_s93B.so"
ELAS_CUTLASS_LIB=$P/lib_s93A.so gpu_cutlass_tests s93A
ELAS_CUTLASS_LIB=$P/lib_s93B.so gpu_cutlass_tests s93B
for round in 1 2; do
  for lib in libelas_cutlass lib_s93A lib_s93B; do
    ELAS_CUTLASS_LIB=$P/$lib.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 "${lib}_r$round" | tail -n 2
  done
done
cd "$OUT" && tar czf s93.tgz --remove-files -- *
