#!/usr/bin/env bash
# GPU call (tenth session): the final library (ABI 4, rebuilt from the committed sources): kernel
# tests, bit-identity against the measured build (lib_s82C), and the two kernel benchmarks after
# their command lines were shared (_common.cutlass_shapes_cli).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_cutlass_tests final
ELAS_CUTLASS_LIB=$PWD/.probe/lib_s82C.so python3 -c "
from elas_compile.kernels import cutlass_ext as C; C.ABI = 3  # the measured build predates ABI 4
import runpy, sys; sys.argv = ['x', 'save', '/tmp/ref.pt']; runpy.run_path('benchmarks/compare_cutlass_libs.py', run_name='__main__')" 2>&1 | tail -n 1
python3 benchmarks/compare_cutlass_libs.py compare /tmp/ref.pt 2>&1 | tail -n 3
gpu_bench_cutlass 16384x4096x256 final
timeout 200 python3 benchmarks/bench_dv.py --shapes 16384x4096x256 --csv "$OUT/bench_dv_s85.csv" > "$OUT/bench_dv_s85.log" 2>&1
echo "bench_dv rc=$?"; tail -n 9 "$OUT/bench_dv_s85.log"
cd "$OUT" && tar czf s85.tgz --remove-files -- * && ls
