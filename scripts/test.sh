#!/usr/bin/env bash
# The whole test suite: set-up, lint (ruff), types (mypy), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" && ruff check huntgroup tests benchmarks && ruff format --check huntgroup tests benchmarks
echo "== mypy" && mypy
# Two pytest runs side by side: the live tests (marked integration: real servers, SIPp,
# Kamailio, a browser) one after another in one, every other test in the other, so the
# suite takes about the live tests' time. The live run reports as it goes, the other's
# report follows it. When the whole suite runs (no argument), the other side then builds
# the mypyc-compiled copy and runs the compiled packages' tests against it
# (scripts/test_native.sh, docs/native.md). HUNTGROUP_TEST_SERIAL=1 runs everything in
# one pytest (and the compiled build's tests after it, when the whole suite runs).
echo "== pytest"
if [ "${HUNTGROUP_TEST_SERIAL:-0}" = 1 ]; then
  pytest "$@"
  [ "$#" -eq 0 ] && exec scripts/test_native.sh
  exit 0
fi
others_log=$(mktemp)
others_side() {
  local rc=0
  pytest -m "not integration" "$@" || rc=$?
  [ "$rc" -eq 5 ] && rc=0
  if [ "$#" -eq 0 ]; then
    scripts/test_native.sh || rc=$((rc == 0 ? $? : rc))
  fi
  return "$rc"
}
others_side "$@" >"$others_log" 2>&1 &
others=$!
trap 'kill "$others" 2>/dev/null || true; rm -f "$others_log"' EXIT
live_rc=0
pytest -m integration "$@" || live_rc=$?
others_rc=0
wait "$others" || others_rc=$?
echo "== pytest: the tests not marked integration, then the compiled build's (run beside the live ones)"
cat "$others_log"
# 5: no test selected on that side (a file or -k given to the command)
[ "$live_rc" -eq 5 ] && live_rc=0
[ "$others_rc" -eq 5 ] && others_rc=0
echo "== pytest: live run exit $live_rc, other run exit $others_rc"
[ "$live_rc" -eq 0 ] && [ "$others_rc" -eq 0 ]
