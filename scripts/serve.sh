#!/usr/bin/env bash
# Runs the SIP server on the example config (in-memory state, no Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/huntgroup serve --config examples/huntgroup.yaml "$@"
