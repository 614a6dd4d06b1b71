#!/usr/bin/env bash
# GPU call (eleventh session): Inductor's generated code for the 350m step, dense low rank and ELAS
# masked (every linear low rank), to see why ELAS's clone/transpose kernel takes 1.47 ms a step
# against 1.15 (gpu_session95's CUDA-graph profile). One compiled step per variant, default mode.
. benchmarks/gpu_common.sh
gpu_setup || exit 1
cat > /tmp/codegen.py <<'PY'
import sys, torch
from elas_compile.train.bench import bench_variant, make_step
from elas_compile.train.runtime import make_runtime
rt = make_runtime("cuda", "auto", True)
step, _ = make_step("llama-350m", bench_variant(sys.argv[1]), rt, 64, 256, 32000, 0)
step(0); torch.cuda.synchronize()
PY
for v in lowrank-attn elas-masked-attn; do
  TORCH_LOGS=output_code timeout 200 python3 /tmp/codegen.py $v > $OUT/code_$v.log 2>&1
  echo "$v rc=$? $(wc -c < $OUT/code_$v.log) bytes"
  grep -n "def triton_poi_fused__unsafe_view_clone_transpose_view" $OUT/code_$v.log | head
done
cd "$OUT" && tar czf s96.tgz --remove-files -- *
