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
$PY scripts/make_demo_study.py --per-label 0 --out "$tmp/study" >/dev/null
$PY manage.py migrate -v 0
$PY manage.py import_testset "$tmp/study/images" --name publictest >/dev/null
$PY manage.py import_votes "$tmp/study/votes.csv" --testset publictest >/dev/null
start=$(date +%s.%N)
$PY manage.py benchmark --testset publictest --model "$MODEL" --json "$tmp/report.json" >/dev/null
end=$(date +%s.%N)
$PY - "$tmp/report.json" "$start" "$end" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"benchmark of {r['models'][0]['name']} on {r['testset']['n_images']} images "
      f"({r['holdout']['n_images']} paired): {float(sys.argv[3]) - float(sys.argv[2]):.1f} s for the whole command, start-up included")
PYEOF
