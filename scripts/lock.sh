#!/usr/bin/env bash
# Refreshes requirements.lock: the exact environment (runtime, sim and dev extras,
# and the build tools for the editable install), every file pinned by its sha256.
# Run it on purpose, then run `make test` on the new lock before committing it.
#   scripts/lock.sh                 # newest releases inside pyproject.toml's ranges
#   scripts/lock.sh --upgrade-package redis   # move one package only
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools/venv"
# No machine-local pip configuration (extra indexes, constraints) leaks into the lock.
export PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= PIP_FIND_LINKS=
"$tools/venv/bin/python" -m pip install -q --upgrade pip pip-tools
upgrade=(--upgrade)
[ $# -gt 0 ] && upgrade=()
"$tools/venv/bin/pip-compile" -q "${upgrade[@]}" "$@" \
  --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --extra sim --extra dev \
  --output-file requirements.lock pyproject.toml build-requirements.in
# The lock names the pyproject.toml it was made from (tests/test_lock.py checks it), so a
# change of pyproject.toml without a refreshed lock fails the suite.
sed -i "1i # made from pyproject.toml sha256 $(sha256sum pyproject.toml | cut -c1-64)" requirements.lock
echo "lock: requirements.lock refreshed; now run: make test" >&2
