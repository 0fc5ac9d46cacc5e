#!/usr/bin/env bash
# The whole suite on SQLite; then the database-bound part (tests/core, tests/annotator,
# tests/evaluation, tests/live, tests/reliability) again on PostgreSQL when TEST_DATABASE_URL points
# at one (.ci/run starts a local server and sets it). Arguments go to the SQLite run.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset DATABASE_URL
echo "--- the whole suite on SQLite"
.venv/bin/python -m pytest -q "$@"
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  shown=$(echo "$TEST_DATABASE_URL" | sed 's#//[^@]*@#//***@#')
  check='import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=5).close()
except psycopg.Error as error:
    sys.exit(" ".join(str(error).split()))'
  if ! problem=$(.venv/bin/python -c "$check" "$TEST_DATABASE_URL" 2>&1); then
    echo "error: TEST_DATABASE_URL is set, but PostgreSQL at $shown does not answer: $problem" >&2
    exit 1
  fi
  echo "--- the database-bound tests again on PostgreSQL ($shown)"
  DATABASE_URL="$TEST_DATABASE_URL" .venv/bin/python -m pytest -q tests/core tests/annotator tests/evaluation tests/live tests/reliability
fi
