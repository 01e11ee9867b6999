#!/usr/bin/env bash
# Set up .venv with the test tools, then lint, type-check and run the test suite.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k loader).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --dev
echo "[test] ruff"
.venv/bin/ruff check .
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
