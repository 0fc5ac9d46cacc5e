#!/usr/bin/env bash
# Training recipes compared on bkvgg12 (42 px), FER+ bin3: every variant trains the same
# number of epochs from the same seed on FER2013 Training minus a seeded tenth, which
# validates (--val-split holdout); PublicTest is only scored, never used to choose.
# Each row adds one change to the row above it, except where the name says otherwise.
#   scripts/recipe_comparison.sh            (about an hour on 2 cores; needs ../shared/data)
#   EPOCHS=1 LIMIT=2000 scripts/recipe_comparison.sh    (a quick rehearsal)
# Prints a table: recipe, holdout accuracy (best epoch, no TTA), PublicTest accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
FERPLUS=${FERPLUS:-../shared/data/ferplus/fer2013new.csv}
OUT=${OUT:-runs/recipes}
EPOCHS=${EPOCHS:-10}
LIMIT=${LIMIT:-}
ONLY=${ONLY:-}
mkdir -p "$OUT"
common=(--model bkvgg12 --data "$DATA" --ferplus "$FERPLUS" --ferplus-mode bins --epochs "$EPOCHS" --seed 0
        --val-split holdout --batch-size 128 --no-progress)
[ -n "$LIMIT" ] && common+=(--limit "$LIMIT")
onecycle=(--optimizer adamw --lr 2e-3 --schedule onecycle --weight-decay 0.01)

run() {  # run NAME LABELS [train options...]
  local name=$1 labels=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  echo "=== $name ($(date -u +%H:%M:%S))"
  "$PY" -m ferml train "${common[@]}" --labels "$labels" --out "$OUT/$name.pt" "$@" > "$OUT/$name.log" 2>&1 || {
    echo "!!! $name failed:"; tail -5 "$OUT/$name.log"; return 1; }
  for split in holdout val; do
    "$PY" -m ferml score --model "$OUT/$name.pt" --data "$DATA" --ferplus "$FERPLUS" --ferplus-mode bins \
      --labels bin3 --split "$split" --json "$OUT/$name.$split.json" > /dev/null
  done
  grep "^best epoch" "$OUT/$name.log"
}

run 1-thesis bin3 --optimizer adadelta
run 2-onecycle bin3 "${onecycle[@]}"
run 3-soft bin3 "${onecycle[@]}" --soft-targets
run 4-smoothing bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1
run 5-mixup bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --mixup 0.2
run 6-fp32 bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --precision fp32
run 7-emotions affect8 "${onecycle[@]}" --soft-targets --label-smoothing 0.1

# test-time augmentation, on the checkpoint of the full recipe without mixup (row 4)
if [ -f "$OUT/4-smoothing.pt" ]; then
  for tta in none flip crops; do
    for split in holdout val; do
      "$PY" -m ferml score --model "$OUT/4-smoothing.pt" --data "$DATA" --ferplus "$FERPLUS" --ferplus-mode bins \
        --labels bin3 --split "$split" --tta "$tta" --json "$OUT/tta-$tta.$split.json" > /dev/null
    done
  done
fi

"$PY" - "$OUT" <<'PYEOF'
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])

def scores(stem):
    try:
        return [json.loads((out / f"{stem}.{s}.json").read_text())["accuracy"] for s in ("holdout", "val")]
    except FileNotFoundError:
        return None

print(f"{'recipe':<22}{'holdout bin3':>14}{'PublicTest bin3':>17}{'s/epoch':>9}")
for log in sorted(out.glob("*.log")):
    got = scores(log.stem)
    if got:
        rows = list(csv.DictReader(open(out / f"{log.stem}.metrics.csv")))
        secs = sum(float(r["seconds"]) for r in rows) / len(rows)
        print(f"{log.stem:<22}{100 * got[0]:>13.2f}%{100 * got[1]:>16.2f}%{secs:>9.0f}")
for tta in ("none", "flip", "crops"):
    got = scores(f"tta-{tta}")
    if got:
        print(f"{'4-smoothing, TTA ' + tta:<22}{100 * got[0]:>13.2f}%{100 * got[1]:>16.2f}%")
PYEOF
