#!/usr/bin/env bash
# Train on one GPU through ferml's own train command, in about nine minutes, on FER2013
# Training with PublicTest validation:
#   - dense121 (42 px), then dense121_100 (100 px, grayscale: in_channels=1), each capped
#     by --time-limit;
#   - beside them on the same GPU, bkvgg12 from scratch for many epochs (this 2-core CPU
#     manages about 12 epochs an hour; the thesis' 68.2 % took hundreds).
# Mixed precision and channels-last switch on by themselves on a GPU.
#
# The lent GPU machine's image has torch, pandas, opencv and tqdm; only the data travels,
# and a call carries at most 64 MiB with the working tree. The Kaggle csv (85 MB) does not
# fit; python -m ferml.pack stores the same pixels as lossless WebP (54.5 MiB). Leave the
# shipped weights behind for that call (nothing here needs them):
#   .venv/bin/python -m ferml.pack        # once: runs/gpu-data/fer2013-trval.zip
#   git rm -q --cached 'ferml/weights/*.pt' && echo '/ferml/weights/*.pt' >> .git/info/exclude
#   run (carry runs/gpu-data): PY=python3 DATA=runs/gpu-data/fer2013-trval.zip OUT=$OUT scripts/train_deep_gpu.sh
#   git reset -q && sed -i '/^\/ferml\/weights\/\*\.pt$/d' .git/info/exclude
# CPU rehearsal (a few minutes):
#   DATA=tests/data/fer2013_sample.csv.gz EXTRA="--limit 32 --device cpu" EPOCHS_42=1 EPOCHS_100=1 EPOCHS_BK=1 scripts/train_deep_gpu.sh
#
# Checkpoints, logs and PublicTest scores land in $OUT (default runs/gpu); copy the
# checkpoints to ferml/weights/ to ship them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
OUT=${OUT:-runs/gpu}
EPOCHS_42=${EPOCHS_42:-40}
EPOCHS_100=${EPOCHS_100:-20}
EPOCHS_BK=${EPOCHS_BK:-150}
MINUTES_42=${MINUTES_42:-3.5}
MINUTES_100=${MINUTES_100:-4}
MINUTES_BK=${MINUTES_BK:-8}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"

# train_and_score NAME EPOCHS MINUTES [train options...]
train_and_score() {
  local name=$1 epochs=$2 minutes=$3
  shift 3
  echo "=== $name: up to $epochs epochs, $minutes min ($(date -u +%H:%M:%S))"
  # shellcheck disable=SC2086
  "$PY" -m ferml train --data "$DATA" --epochs "$epochs" --time-limit "$minutes" --optimizer adam --cosine \
    --half --no-progress --out "$OUT/$name.pt" "$@" $EXTRA > "$OUT/$name.log" 2>&1 || {
    echo "!!! $name failed:"; tail -20 "$OUT/$name.log"; return 1; }
  for labels in fer7 bin3; do
    "$PY" -m ferml score --model "$OUT/$name.pt" --data "$DATA" --split val --labels "$labels" \
      --json "$OUT/$name.$labels.json" > "$OUT/$name.$labels.txt"
  done
  echo "=== $name done ($(date -u +%H:%M:%S)):"
  tail -3 "$OUT/$name.log"
  for labels in fer7 bin3; do sed -n 1,2p "$OUT/$name.$labels.txt"; done
}

(
  train_and_score dense121 "$EPOCHS_42" "$MINUTES_42" --model dense121 --batch-size 256 --seed 0
  train_and_score dense121_100 "$EPOCHS_100" "$MINUTES_100" --model dense121_100 --batch-size 256 --seed 0
) &
dense=$!
train_and_score bkvgg12 "$EPOCHS_BK" "$MINUTES_BK" --model bkvgg12 --lr 2e-4 --seed 3 &
bk=$!
status=0
wait "$dense" || status=1
wait "$bk" || status=1
echo "=== all done ($(date -u +%H:%M:%S)), status $status"
exit "$status"
