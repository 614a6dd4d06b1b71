#!/usr/bin/env bash
# GPU call: the training loop with the model and its loss compiled together (first GPU run of that
# path): llama-60m ELAS masked, CoLA form, LR 1.5e-3, 600 steps on the gutenberg text, the command of
# gpu_session61.sh (val ppl 103.2 there); beside it, the GPU tests of the FFN op and the RoPE pass,
# each file on its own (together they ran past 270 s in session 63).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
( gpu_pytest ffn 300 tests/test_fused_ffn_gpu.py; gpu_pytest trig 200 tests/test_trig_tables.py ) > $OUT/tests.txt 2>&1 &
LRS="1.5e-3" JOBS=1 RUNS="elas-masked-cola:--backward masked --lowrank-form cola" timeout 420 bash benchmarks/gpu_quality_sweep.sh
wait
cat $OUT/tests.txt
grep -h "done:" $OUT/sweep/*.log
