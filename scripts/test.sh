#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff), types (mypy), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check huntgroup tests benchmarks && ruff format --check huntgroup tests benchmarks
echo "== mypy" && mypy
# Two workers (pytest-xdist), a test file per worker at a time: the integration tests
# mostly wait on peers and timers, so the suite takes about half the wall time.
echo "== pytest" && pytest -n "${HUNTGROUP_TEST_WORKERS:-2}" --dist loadfile "$@"
