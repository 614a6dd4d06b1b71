#!/usr/bin/env bash
# What the GPU calls (benchmarks/gpu_session*.sh, from session 62 on) share: source it, then call
# the steps. Each step writes its log under $OUT and prints a short summary line.
#   . benchmarks/gpu_common.sh && gpu_setup [LIB] && gpu_cutlass_tests && gpu_bench_cutlass SHAPES
# LIB: the CUTLASS library (default .probe/libelas_cutlass.so, carried with the call).
export PYTHONUNBUFFERED=1

gpu_setup() {
  export ELAS_CUTLASS_LIB=${1:-$PWD/.probe/libelas_cutlass.so}
  python3 -m pip install -q --no-deps --no-build-isolation -e . > /dev/null 2>&1 || { echo "install failed"; return 1; }
}

# gpu_pytest NAME TIMEOUT TEST_PATH...: one pytest run, its log $OUT/t_NAME.log
gpu_pytest() {
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m pytest -q --tb=short -p no:cacheprovider "$@" > "$OUT/t_$name.log" 2>&1
  echo "$name tests rc=$?"; grep -E "passed|failed|FAILED|^E " "$OUT/t_$name.log" | tail -n 6
}

gpu_cutlass_tests() { gpu_pytest "cutlass${1:+_$1}" 120 tests/kernels/test_cutlass_gpu.py; }

# gpu_bench_cutlass SHAPES [TAG]: the CUTLASS kernels against cuBLAS + Triton, $OUT/bench_cutlass_TAG.csv
gpu_bench_cutlass() {
  local tag=${2:-run}
  timeout 90 python3 benchmarks/bench_cutlass.py --shapes "$1" --csv "$OUT/bench_cutlass_$tag.csv" > "$OUT/bench_cutlass_$tag.log" 2>&1
  echo "bench_cutlass $tag rc=$?"; tail -n 4 "$OUT/bench_cutlass_$tag.log"
}

# gpu_bench_train PRESET LIMIT VARIANT...: `elas-compile bench` under CUDA graphs, $OUT/bench_PRESET/
gpu_bench_train() {
  local preset=$1 limit=$2; shift 2
  timeout "$limit" elas-compile bench --preset "$preset" --compile-mode reduce-overhead --variants "$@" \
    --steps 10 --warmup 3 --out "$OUT/bench_$preset" > "$OUT/train_bench_$preset.log" 2>&1
  echo "train bench $preset rc=$?"; grep -v -i "warn" "$OUT/train_bench_$preset.log" | tail -n $(( $# + 4 ))
}

# gpu_compare_libs REF_LIB LIB...: whether each LIB computes outputs bit-identical to REF_LIB's
# (benchmarks/compare_cutlass_libs.py: packed S, dy, S at three shapes)
gpu_compare_libs() {
  local ref=$1; shift
  ELAS_CUTLASS_LIB=$ref python3 benchmarks/compare_cutlass_libs.py save /tmp/ref_outputs.pt 2>&1 | tail -n 1
  for lib in "$@"; do
    echo "$(basename "$lib") vs $(basename "$ref"):"
    ELAS_CUTLASS_LIB=$lib python3 benchmarks/compare_cutlass_libs.py compare /tmp/ref_outputs.pt 2>&1 | tail -n 3
  done
}
