#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it into a fresh venv outside the
# checkout, and run the demo from there (package data, entry points, no checkout on the path).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pip wheel --quiet --no-deps --wheel-dir "$tmp/dist" . 2>&1 | grep -v "^$" || true
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$tmp"/dist/*.whl
cd "$tmp"
"$tmp/venv/bin/crm-pulse" --version
"$tmp/venv/bin/crm-pulse" demo --no-live --seconds 5
