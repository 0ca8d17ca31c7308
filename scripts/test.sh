#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff), types (mypy), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check huntgroup tests benchmarks && ruff format --check huntgroup tests benchmarks
echo "== mypy" && mypy
# Two pytest-xdist workers: the live tests (marked integration: real servers, SIPp,
# Kamailio, browsers) one after another on one worker, the rest on the other, so the
# suite takes about the live tests' time. HUNTGROUP_TEST_WORKERS=0 runs it in one process.
echo "== pytest" && pytest -n "${HUNTGROUP_TEST_WORKERS:-2}" --dist loadgroup "$@"
