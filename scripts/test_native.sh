#!/usr/bin/env bash
# The compiled build's tests: build the mypyc copy of huntgroup (docs/native.md) and run
# the sans-I/O tests of the compiled packages against it. scripts/test.sh runs this beside
# the live tests when the whole suite runs; arguments go to pytest.
#
# The tests import huntgroup from the build (PYTHONPATH, --import-mode=append: pytest's
# default mode would put the checkout first and silently test the .py files), and
# tests/conftest.py refuses to start unless every compiled module is the one imported.
# Tests marked native_incompatible (they patch a module function, which a compiled caller
# never looks up again) are left out here; they run interpreted in the other runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
out=${HUNTGROUP_NATIVE_OUT:-build/native}
set_name=${HUNTGROUP_NATIVE_SET:-all}
echo "== native: build ($set_name set, $out)"
scripts/build_native.sh --out "$out" --set "$set_name"
echo "== native: pytest against the compiled build"
build=$(realpath "$out")
export HUNTGROUP_NATIVE_BUILD="$build" PYTHONPATH="$build"
exec pytest -p no:cacheprovider --import-mode=append -m "not integration and not native_incompatible" \
  tests/queue tests/distribution tests/simulations tests/engine/sip tests/engine/b2bua tests/media \
  tests/test_quick_init.py tests/test_layers.py tests/test_sans_io.py "$@"
