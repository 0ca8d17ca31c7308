#!/usr/bin/env bash
# Runs the huntgroup command on the compiled build (docs/native.md): the same command
# line as `.venv/bin/huntgroup`, e.g.
#
#     make native                                             # once, and after each change
#     scripts/native_run.sh simulate examples/scenarios/support-day.yaml --out /tmp/day --jobs 0
#
# It refuses a missing build or one older than the sources (it would run old code).
# HUNTGROUP_NATIVE_OUT names another build directory (default build/native).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${HUNTGROUP_NATIVE_OUT:-$here/build/native}")
"$here/scripts/build_native.sh" --check --out "$out" || {
    echo "native_run: build it with: scripts/build_native.sh --out $out --set all" >&2
    exit 1
}
PYTHONPATH="$out${PYTHONPATH:+:$PYTHONPATH}" exec "$here/.venv/bin/huntgroup" "$@"
