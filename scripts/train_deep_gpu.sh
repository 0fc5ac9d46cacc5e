#!/usr/bin/env bash
# Train the thesis' deep models, dense121 (42 px) and dense121_100 (100 px), on FER2013
# Training with PublicTest validation through ferml's own train command. Sized for about
# ten minutes on one modern GPU (mixed precision and channels-last are automatic there).
#
#   scripts/train_deep_gpu.sh                         # on the GPU machine
#   EXTRA="--limit 64 --device cpu" EPOCHS_42=1 EPOCHS_100=1 scripts/train_deep_gpu.sh   # CPU rehearsal
#
# Checkpoints land in $OUT (default runs/gpu); copy them to ferml/weights/ to ship them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
OUT=${OUT:-runs/gpu}
EPOCHS_42=${EPOCHS_42:-40}
EPOCHS_100=${EPOCHS_100:-20}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
for spec in "dense121 $EPOCHS_42" "dense121_100 $EPOCHS_100"; do
  set -- $spec
  echo "=== $1: $2 epochs ($(date -u +%H:%M:%S))"
  # shellcheck disable=SC2086
  "$PY" -m ferml train --model "$1" --data "$DATA" --epochs "$2" --batch-size 256 \
    --optimizer adam --cosine --seed 0 --half --no-progress --out "$OUT/$1.pt" $EXTRA \
    2>&1 | tee "$OUT/$1.log"
  for labels in fer7 bin3; do
    "$PY" -m ferml score --model "$OUT/$1.pt" --data "$DATA" --split val --labels "$labels" \
      --json "$OUT/$1.$labels.json" > "$OUT/$1.$labels.txt"
    sed -n 1,2p "$OUT/$1.$labels.txt"
  done
done
echo "=== done ($(date -u +%H:%M:%S))"
