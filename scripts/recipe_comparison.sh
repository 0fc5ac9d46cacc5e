#!/usr/bin/env bash
# Training recipes compared on bkvgg12 (42 px), FER+ bin3: every variant trains the same
# number of epochs on FER2013 Training minus a seeded tenth, which validates (--val-split
# holdout, always the tenth picked by seed 0); PublicTest is only scored, never used to choose.
# Each row adds one change to the row above it, except where the name says otherwise.
#   scripts/recipe_comparison.sh            (about an hour on 2 cores; needs ../shared/data)
#   PRECISION_SEEDS="1 2 3" scripts/recipe_comparison.sh
#       also trains rows 4 (bf16) and 6 (float32) with these seeds and prints bf16 minus
#       float32 seed by seed and on average (about 30 minutes a seed)
#   EPOCHS=1 LIMIT=2000 scripts/recipe_comparison.sh    (a quick rehearsal)
# Finished runs are kept in $OUT and not trained again. Prints the holdout accuracy (best
# epoch) and the PublicTest accuracy of each run, bin3 against the FER+ majority.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
FERPLUS=${FERPLUS:-../shared/data/ferplus/fer2013new.csv}
OUT=${OUT:-runs/recipes}
EPOCHS=${EPOCHS:-10}
LIMIT=${LIMIT:-}
ONLY=${ONLY:-}
PRECISION_SEEDS=${PRECISION_SEEDS:-}
mkdir -p "$OUT"
common=(--model bkvgg12 --data "$DATA" --ferplus "$FERPLUS" --ferplus-mode bins --epochs "$EPOCHS"
        --val-split drawn --draw-seed 0 --batch-size 128 --no-progress)
[ -n "$LIMIT" ] && common+=(--limit "$LIMIT")
onecycle=(--optimizer adamw --lr 2e-3 --schedule onecycle --weight-decay 0.01)

score() {  # score CHECKPOINT STEM [score options...]: holdout and PublicTest, bin3, FER+ majority
  local model=$1 stem=$2
  shift 2
  for split in drawn val; do
    "$PY" -m ferml score --model "$model" --data "$DATA" --ferplus "$FERPLUS" --ferplus-mode bins \
      --labels bin3 --split "$split" --json "$stem.$split.json" "$@" > /dev/null
  done
}

run() {  # run NAME LABELS [train options...]
  local name=$1 labels=$2
  shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  [ -f "$OUT/$name.val.json" ] && return
  echo "=== $name ($(date -u +%H:%M:%S))"
  "$PY" -m ferml train "${common[@]}" --labels "$labels" --out "$OUT/$name.pt" "$@" > "$OUT/$name.log" 2>&1 || {
    echo "!!! $name failed:"; tail -5 "$OUT/$name.log"; return 1; }
  score "$OUT/$name.pt" "$OUT/$name"
  grep "^best epoch" "$OUT/$name.log"
}

run 1-thesis bin3 --optimizer adadelta --seed 0
run 2-onecycle bin3 "${onecycle[@]}" --seed 0
run 3-soft bin3 "${onecycle[@]}" --soft-targets --seed 0
run 4-smoothing bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --seed 0
run 5-mixup bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --mixup 0.2 --seed 0
run 6-fp32 bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --precision fp32 --seed 0
run 7-emotions affect8 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --seed 0
for seed in $PRECISION_SEEDS; do
  run "4-smoothing-seed$seed" bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --seed "$seed"
  run "6-fp32-seed$seed" bin3 "${onecycle[@]}" --soft-targets --label-smoothing 0.1 --precision fp32 --seed "$seed"
done

# test-time augmentation, on the checkpoint of the full recipe without mixup (row 4)
if [ -f "$OUT/4-smoothing.pt" ]; then
  for tta in none flip crops; do
    [ -f "$OUT/tta-$tta.val.json" ] || score "$OUT/4-smoothing.pt" "$OUT/tta-$tta" --tta "$tta"
  done
fi

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
from statistics import mean, stdev

from scipy.stats import ttest_1samp
out = Path(sys.argv[1])

def scores(stem):
    try:
        return [json.loads((out / f"{stem}.{s}.json").read_text())["accuracy"] for s in ("drawn", "val")]
    except FileNotFoundError:
        return None

def line(name, got):
    return f"{name:<26}{100 * got[0]:>13.2f}%{100 * got[1]:>16.2f}%"

print(f"{'run':<26}{'holdout bin3':>14}{'PublicTest bin3':>17}")
for log in sorted(out.glob("*.log")):
    got = scores(log.stem)
    if got:
        print(line(log.stem, got))
for tta in ("none", "flip", "crops"):
    got = scores(f"tta-{tta}")
    if got:
        print(line(f"4-smoothing, TTA {tta}", got))
# bf16 (row 4) against float32 (row 6), paired by seed: the same initialization, holdout and data order
pairs = []
for seed in [0] + sorted(int(p.name.split(".")[0].removeprefix("4-smoothing-seed")) for p in out.glob("4-smoothing-seed*.val.json")):
    suffix = f"-seed{seed}" if seed else ""
    bf16, fp32 = scores(f"4-smoothing{suffix}"), scores(f"6-fp32{suffix}")
    if bf16 and fp32:
        pairs.append((str(seed), bf16, fp32))
if len(pairs) > 1:
    print(f"\n{'bf16 - float32, points':<26}{'holdout':>14}{'PublicTest':>17}")
    for seed, bf16, fp32 in pairs:
        print(f"{'seed ' + seed:<26}" + "".join(f"{100 * (b - f):>+{w}.2f}" for b, f, w in zip(bf16, fp32, (14, 17))))
    for name, at in (("mean bf16", 1), ("mean float32", 2)):
        print(line(f"{name}, {len(pairs)} seeds", [mean(p[at][i] for p in pairs) for i in (0, 1)]))
    gaps = [[100 * (p[1][i] - p[2][i]) for p in pairs] for i in (0, 1)]
    print(f"{'mean difference':<26}" + "".join(f"{f'{mean(g):+.2f} (sd {stdev(g):.2f})':>{w}}" for g, w in zip(gaps, (14, 17))))
    intervals = [ttest_1samp(g, 0.0).confidence_interval(0.95) for g in gaps]
    print(f"{'95 % interval (t)':<26}" + "".join(f"{f'{c.low:+.2f} to {c.high:+.2f}':>{w}}" for c, w in zip(intervals, (14, 17))))
PYEOF
