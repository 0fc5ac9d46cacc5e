# The two commands a fresh machine needs: `make demo` and `make test`.
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv demo serve serve-production test

venv:
	@scripts/ensure-venv.sh

## Set up, load the demo study, print the human-vs-AI report, serve the web app.
demo: venv
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py load_demo
	@$(PY) manage.py demo_video
	@$(PY) manage.py benchmark --testset demo --html var/demo-report.html --json var/demo-report.json
	@echo "HTML report: var/demo-report.html"
	@$(PY) manage.py demo_logins --url http://$(HOST):$(PORT)/
	@$(PY) manage.py runserver $(HOST):$(PORT) --noreload

serve: venv
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py runserver $(HOST):$(PORT)

## The production server (gunicorn, threaded workers): README "Production: serving a real study".
serve-production: venv
	@scripts/serve-production.sh

## Set up and run the whole test suite (SQLite, then PostgreSQL when TEST_DATABASE_URL is set).
test: venv
	@scripts/run-tests.sh
