#!/usr/bin/env bash
# GPU call: the CUTLASS up kernel's epilogue at the 350m FFN shape (16384 x 4096 x 256, where it is
# 0.121 ms against cuBLAS's 0.068 without the 2:4 work): three builds of the same sources,
#   A  the tested kernel: ping-pong 128 x 128 tiles, 64 x 64 epilogue subtiles
#   B  64 x 128 subtiles (fewer, longer epilogue steps)
#   C  cooperative 256 x 128 tiles, 128 x 64 subtiles (both warpgroups run the epilogue at once)
# each: the CUTLASS kernel tests and bench_cutlass; then Nsight Compute on A's kernels at that
# shape; then the GPU tests of the FFN op and the RoPE pass (re-run after last session's refactors).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
for v in A:libelas_cutlass B:lib_B C:lib_C; do
  export ELAS_CUTLASS_LIB=$PWD/.probe/${v#*:}.so
  gpu_cutlass_tests "${v%%:*}"
  gpu_bench_cutlass 16384x4096x256,16384x8192x512 "${v%%:*}"
done
export ELAS_CUTLASS_LIB=$PWD/.probe/libelas_cutlass.so
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 150 $NCU --profile-from-start off --clock-control none --set full --import-source no -k regex:device_kernel \
  -o $OUT/prof python3 benchmarks/profile_cutlass.py --shape 16384x4096x256 > $OUT/ncu_run.log 2>&1
echo "ncu rc=$?"
$NCU -i $OUT/prof.ncu-rep --page details > $OUT/details.txt 2>&1
$NCU -i $OUT/prof.ncu-rep --page raw --csv > $OUT/raw.csv 2>&1
gpu_pytest ffn_trig 200 tests/test_fused_ffn_gpu.py tests/test_trig_tables.py tests/test_train_loss.py
grep -E "Duration|Registers Per|Issue Slots Busy|No Eligible|Warp Cycles Per Issued" $OUT/details.txt | head -n 14
for v in A B C; do tail -n 3 $OUT/bench_cutlass_$v.log; done
