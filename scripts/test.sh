#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff), types (mypy), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check huntgroup tests benchmarks && ruff format --check huntgroup tests benchmarks
echo "== mypy" && mypy
echo "== pytest" && pytest "$@"
