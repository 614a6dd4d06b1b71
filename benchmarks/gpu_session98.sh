#!/usr/bin/env bash
# GPU call (twelfth session): where the CUTLASS grad kernel's warps wait (gpu_session92.sh, whose
# results were lost with the eleventh session's machine), then 1b with today's code, full rank
# included (every linear low rank, CUDA graphs): ELAS vs full rank at the size where low rank
# alone gave CoLA's ratio (section 3 of docs/benchmarks.md; full rank last ran at 1b before the
# loss-in-graph and RoPE-table changes).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
timeout 150 bash benchmarks/gpu_session92.sh
gpu_bench_train llama-1b 400 full lowrank-attn elas-masked-attn
cd "$OUT" && tar czf s98.tgz --remove-files -- *
