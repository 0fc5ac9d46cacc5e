#!/usr/bin/env bash
# Creates .venv with every pinned dependency when it is missing or requirements changed,
# then exports the networks that run on ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found. Install Python 3.11 or newer (or set PYTHON=/path/to/python3)." >&2
  exit 2
fi
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: Python 3.11 or newer is needed; $PY is $("$PY" --version 2>&1)." >&2
  exit 2
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
paths_stamp=.venv/.inference.sha256
paths_want=$(cat ferml/weights/inference.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  if [ -f "$paths_stamp" ] && [ "$(cat "$paths_stamp")" = "$paths_want" ]; then
    exit 0
  fi
  prepare_only=1
fi
if [ -n "${prepare_only:-}" ]; then
  :  # dependencies are current; the chosen inference paths changed
elif [ ! -x .venv/bin/python ]; then
  echo "Creating the virtual environment in .venv ..."
  "$PY" -m venv .venv || { echo "error: '$PY -m venv' failed; on Debian install python3-venv." >&2; exit 2; }
fi
if [ -z "${prepare_only:-}" ]; then
  echo "Installing dependencies (requirements.txt) ..."
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt; then
    echo "error: installing requirements.txt failed (see pip's message above)." >&2
    exit 2
  fi
  echo "$want" > "$stamp"
fi
# Networks measured fastest on ONNX Runtime (ferml/weights/inference.json) are exported
# once per machine; doing it here keeps the first report from waiting for it.
echo "Exporting the shipped networks that run on ONNX Runtime ..."
if .venv/bin/python -m ferml prepare | tail -n 1; then
  echo "$paths_want" > "$paths_stamp"
else
  echo "warning: the export failed; each network is exported on its first use instead." >&2
fi
