#!/usr/bin/env bash
# The whole suite on SQLite; the database-bound part again on PostgreSQL when
# TEST_DATABASE_URL points at one (.ci/run starts a local server and sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset DATABASE_URL
.venv/bin/python -m pytest -q "$@"
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  echo "--- database-bound tests again on $(echo "$TEST_DATABASE_URL" | sed 's#//[^@]*@#//***@#')"
  DATABASE_URL="$TEST_DATABASE_URL" .venv/bin/python -m pytest -q -m "django_db or not ferml" tests/annotator tests/evaluation
fi
