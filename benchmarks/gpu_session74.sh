#!/usr/bin/env bash
# GPU call: the grad kernel's cluster shape (Nsight Compute, session 73: DRAM 69%, L2 73% busy; the
# main loop re-reads g once per N tile and W once per M-tile pair from L2). lib_new2: 2 x 1
# (W multicast), lib_new3: 2 x 2 (g and W multicast), lib_new4: 1 x 2 (g multicast); lib_old: the
# previous library. Kernel tests of new3/new4, then kernel timings of all four, twice.
. benchmarks/gpu_common.sh
for v in new3 new4; do gpu_setup "$PWD/.probe/lib_$v.so" && gpu_cutlass_tests $v; done
for rep in 1 2; do
  for v in old new2 new3 new4; do
    ELAS_CUTLASS_LIB=$PWD/.probe/lib_$v.so gpu_bench_cutlass 16384x4096x256,16384x8192x512 ${v}_s74_$rep | tail -n 2
  done
done
