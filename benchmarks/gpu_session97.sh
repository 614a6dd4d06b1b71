#!/usr/bin/env bash
# GPU call (twelfth session): the library rebuilt from CUTLASS v4.7.0 checked (kernel tests), then
# every kernel of one 350m step, dense low rank vs ELAS masked (every linear low rank), default
# compile mode, with Inductor's generated code (TORCH_LOGS=output_code): which transpose/clone
# kernels ELAS runs that the dense low-rank model does not (s95, lost: 1.47 vs 1.15 ms a step).
. benchmarks/gpu_common.sh
gpu_setup || exit 1
gpu_cutlass_tests s97
TORCH_LOGS=output_code timeout 420 python3 benchmarks/profile_step.py --preset llama-350m \
  --variants lowrank-attn elas-masked-attn --steps 3 --profile-steps 2 --top 400 \
  --csv $OUT/profile_s97.csv > $OUT/profile_s97.log 2>&1
echo "profile rc=$?"
grep -v Warn $OUT/profile_s97.log | grep -E "^(lowrank|elas|variant)" | tail -n 4
python3 - $OUT/profile_s97_kernels.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
by = collections.defaultdict(dict)
for r in rows:
    by[r["kernel"]][r["variant"]] = float(r["ms"])
d = sorted(by.items(), key=lambda kv: -abs(kv[1].get("elas-masked-attn", 0) - kv[1].get("lowrank-attn", 0)))
for k, v in d[:25]:
    print(f"{v.get('lowrank-attn', 0):7.3f} {v.get('elas-masked-attn', 0):7.3f}  {k[:100]}")
PY
cd "$OUT" && tar czf s97.tgz --remove-files -- *
