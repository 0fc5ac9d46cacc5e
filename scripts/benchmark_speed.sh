#!/usr/bin/env bash
# Speed of the benchmark: one model on every FER2013 PublicTest face (about 3,600 images,
# real FER+ votes) in a throwaway SQLite database. Needs ../shared/data.
#   scripts/benchmark_speed.sh [MODEL]      (default bkvgg12)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-bkvgg12}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DATABASE_URL="sqlite:///$tmp/db.sqlite3" MEDIA_ROOT="$tmp/media" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=.venv/bin/python
$PY -m scripts.fixtures.make_demo_study --per-label 0 --out "$tmp/study" >/dev/null
$PY manage.py migrate -v 0
$PY manage.py import_testset "$tmp/study/images" --name publictest >/dev/null
$PY manage.py import_votes "$tmp/study/votes.csv" --testset publictest >/dev/null
start=$(date +%s.%N)
$PY manage.py benchmark --testset publictest --model "$MODEL" --json "$tmp/report.json" >/dev/null
end=$(date +%s.%N)
$PY - "$tmp/report.json" "$start" "$end" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
a, h, m = r["agreement"], r["holdout"], r["models"][0]
print(f"{r['testset']['n_images']} images, {r['testset']['n_votes']} votes: agreement {100 * a['accuracy']:.1f} %, "
      f"leave-one-out {100 * a['loo_accuracy']:.1f} %, Fleiss kappa {a['fleiss_kappa']:.3f}, "
      f"Krippendorff alpha {a['krippendorff_alpha']:.3f}")
print(f"held-out {h['annotator']}: {100 * h['accuracy']:.1f} % on {h['n_images']} images; "
      f"{m['name']}: {100 * m['accuracy']:.1f} %")
print(f"benchmark of {m['name']} on {r['testset']['n_images']} images ({h['n_images']} paired): "
      f"{float(sys.argv[3]) - float(sys.argv[2]):.1f} s for the whole command, start-up included")
PYEOF
