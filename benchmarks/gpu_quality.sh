#!/usr/bin/env bash
# Quality comparison on the GPU machine (issue 5): ~60M LLaMA, gutenberg text (carried in
# .devshared/), same seed, data order and token budget; 4 variants run concurrently on the one GPU
# (timings are not read from these runs). Results: $OUT/quality.tgz (metrics, run.json, plots).
set -u
export PYTHONUNBUFFERED=1
DATA=.devshared/gutenberg_big.txt
STEPS=${STEPS:-400}
COMMON="--preset llama-60m --data $DATA --vocab-size 8192 --batch-size 32 --seq-len 256 --steps $STEPS --lr 1e-3 --eval-every 50 --eval-batches 20 --save-every 100000 --no-progress --seed 0"
Q=$OUT/quality; mkdir -p $Q
# build the tokenizer cache once, so the four runs do not race on it
elas-compile train --preset llama-tiny --data $DATA --vocab-size 8192 --steps 1 --no-compile --out /tmp/tokwarm --no-progress > $Q/tokwarm.log 2>&1
elas-compile train $COMMON --baseline full --out $Q/full > $Q/full.log 2>&1 &
elas-compile train $COMMON --baseline lowrank --out $Q/lowrank > $Q/lowrank.log 2>&1 &
elas-compile train $COMMON --backward masked --out $Q/elas-masked > $Q/masked.log 2>&1 &
elas-compile train $COMMON --backward ste --out $Q/elas-ste > $Q/ste.log 2>&1 &
wait
elas-compile plot $Q/full $Q/lowrank $Q/elas-masked $Q/elas-ste -o $OUT/quality_loss.png --title "llama-60m, gutenberg, $STEPS steps" > $Q/plot.log 2>&1
find $Q -name "*.safetensors" -delete
tar czf $OUT/quality.tgz -C $OUT quality
tail -n 3 $Q/*.log
