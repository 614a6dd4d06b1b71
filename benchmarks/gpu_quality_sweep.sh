#!/usr/bin/env bash
# Quality comparison with a learning-rate sweep (issue 5): llama-60m on the gutenberg text (carried
# in .devshared/), same seed, data order and token budget as gpu_quality.sh; every variant at each
# peak LR of $LRS, six runs at a time on the one GPU (timings are not read from these runs).
# Results: $OUT/sweep.tgz (metrics, plots) and a table of final validation perplexities.
set -u
export PYTHONUNBUFFERED=1
DATA=.devshared/gutenberg_big.txt
STEPS=${STEPS:-600}
LRS=${LRS:-"1e-3 2e-3 4e-3"}
COMMON="--preset ${PRESET:-llama-60m} ${EXTRA:-} --data $DATA --vocab-size 8192 --batch-size 32 --seq-len 256 --steps $STEPS --eval-every 50 --eval-batches 20 --save-every 100000 --no-progress --seed 0"
Q=$OUT/sweep; mkdir -p $Q
elas-compile train --preset llama-tiny --data $DATA --vocab-size 8192 --steps 1 --no-compile --out /tmp/tokwarm --no-progress > $Q/tokwarm.log 2>&1
launch() {  # name, lr, variant flags; at most $JOBS runs at a time
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-6}" ]; do wait -n; done
  elas-compile train $COMMON --lr $2 ${@:3} --out $Q/$1-lr$2 > $Q/$1-lr$2.log 2>&1 &
}
# RUNS: "name:flags;name:flags;..." (default: the four variants of the issue)
RUNS=${RUNS:-"full:--baseline full;lowrank:--baseline lowrank;elas-masked:--backward masked;elas-ste:--backward ste"}
for lr in $LRS; do
  IFS=';' read -ra specs <<< "$RUNS"
  for spec in "${specs[@]}"; do launch "${spec%%:*}" $lr ${spec#*:}; done
done
wait
python3 - "$Q" <<'PY'
import json, sys, pathlib
rows = []
for m in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json")):
    s = json.loads(m.read_text())["summary"]
    rows.append((m.parent.name, s.get("final_loss"), s.get("final_val_loss"), s.get("final_val_ppl")))
print(f"{'run':24s} {'train loss':>10} {'val loss':>9} {'val ppl':>8}")
for r in rows:
    print(f"{r[0]:24s} " + " ".join(f"{v:>9.3f}" if isinstance(v, float) else f"{str(v):>9}" for v in r[1:]))
PY
elas-compile plot $(ls -d $Q/*-lr*/ | sort) -o $OUT/sweep_loss.png --title "llama-60m, gutenberg, $STEPS steps, LR sweep" > $Q/plot.log 2>&1
find $Q -name "*.safetensors" -delete
tar czf $OUT/sweep.tgz -C $OUT sweep
