#!/usr/bin/env bash
# The production server in one command (make serve-production): checks the settings,
# applies the migrations, collects the static files and starts gunicorn with threaded
# workers (config/gunicorn.py) and the background jobs' worker (manage.py run_worker). Needs SECRET_KEY, ALLOWED_HOSTS and DATABASE_URL; README
# "Production: serving a real study" lists the rest. Arguments go to gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.production}
PY=.venv/bin/python
check='import importlib, os, sys
from django.core.exceptions import ImproperlyConfigured
try:
    importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])
except ImproperlyConfigured as error:
    sys.exit(str(error))'
if ! problem=$("$PY" -c "$check" 2>&1); then
  echo "error: $problem" >&2
  exit 2
fi
"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py collectstatic --noinput -v 0
# The background jobs' worker beside the web server (README "Background jobs"); when either
# ends, the other is stopped too, so a service manager sees the server end and restarts it.
"$PY" manage.py run_worker -v 0 &
worker=$!
.venv/bin/gunicorn --config config/gunicorn.py "$@" &
server=$!
trap 'kill -TERM "$server" "$worker" 2>/dev/null || true' INT TERM
status=0
wait -n "$server" "$worker" || status=$?
kill -TERM "$server" "$worker" 2>/dev/null || true
wait "$server" "$worker" 2>/dev/null || true
exit "$status"
