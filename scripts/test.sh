#!/usr/bin/env bash
# Set up .venv with the test tools, then lint, type-check and run the test suite.
#   bash scripts/test.sh           everything (what CI runs)
#   bash scripts/test.sh --fast    lint, type check and the tests that start no Ray and train
#                                  nothing (under 3 minutes on 2 cores): for your edit loop
# Other arguments go to pytest (e.g. bash scripts/test.sh --fast -k loader). pytest ends
# with the 25 slowest test phases (--durations=25), so every CI log shows where the time goes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
lane=()
if [[ "${1:-}" == "--fast" ]]; then
    shift
    lane=(-m "not ray and not train and not slow")
fi
bash scripts/setup.sh --dev
echo "[test] ruff"
.venv/bin/ruff check .
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest${lane:+ (fast lane)}"
.venv/bin/python -m pytest --durations=25 "${lane[@]}" "$@"
