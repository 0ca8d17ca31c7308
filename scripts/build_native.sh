#!/usr/bin/env bash
# Build an opt-in native (mypyc-compiled) copy of huntgroup, out of the source tree.
#
# The sources are never touched: huntgroup/ and pyproject.toml are copied into
# OUT (default build/native), the chosen modules are compiled there in place
# (each compiled module's .so sits next to its .py in the copy, and shadows it),
# and the rest of the package stays interpreted. Use the build by putting OUT
# first on the path:
#
#     scripts/build_native.sh                    # core set into build/native
#     PYTHONPATH=build/native python benchmarks/bench_simulate.py --no-write
#     PYTHONPATH=build/native pytest -q tests/queue tests/distribution -p no:cacheprovider
#
# Sets (docs/native.md explains the choice):
#   core  huntgroup/queue/** and huntgroup/distribution/**
#   sim   core + huntgroup/simulations/virtual/** and simulations/model/ (not scenario.py)
#   sip   huntgroup/engine/sip/** (not registrar, digest) + huntgroup/engine/b2bua/** + media's
#         sdp and planner (offer_answer, planner_base, hold_media, direct_media, call_media,
#         hold, nat, ports, commands)
#   all   sim + sip
# or give module paths (relative to the repository root) after --.
#
# NATIVE_MULTI_FILE=0: one C file for all modules, compiled by one compiler (slower to
# build, about as fast to run: scripts/native_setup.py). PYTHON: the interpreter (default .venv/bin/python).
# Options: --out DIR, --patch FILE (applied to the copy before compiling, e.g. the
# edits some modules need to compile: see docs/native.md), --src DIR (another tree,
# e.g. a frozen baseline).  Needs mypy (mypyc) in that interpreter, gcc and the Python headers.
# The build stamps OUT/NATIVE_STAMP with the source hash; `--check` exits 1 when the
# sources changed since (a stale native copy would silently run old code).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
src=$here
out=$here/build/native
set_name=core
patch=
check=0
modules=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) out=$(realpath -m "$2"); shift 2 ;;
        --src) src=$(realpath "$2"); shift 2 ;;
        --patch) patch=$(realpath "$2"); shift 2 ;;
        --set) set_name=$2; shift 2 ;;
        --check) check=1; shift ;;
        --) shift; modules=("$@"); set_name=custom; break ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "build_native: unknown argument $1" >&2; exit 2 ;;
    esac
done

stamp() {
    # The hash of every source file that goes into the build, and of the patch.
    (cd "$src" && find huntgroup -name '*.py' -print0 | sort -z | xargs -0 sha1sum
     sha1sum pyproject.toml
     [[ -n $patch ]] && sha1sum "$patch" || true) | sha1sum | cut -d' ' -f1
}

if [[ $check == 1 ]]; then
    [[ -f $out/NATIVE_STAMP ]] || { echo "build_native: no build in $out" >&2; exit 1; }
    want=$(stamp)
    have=$(head -1 "$out/NATIVE_STAMP")
    [[ $want == "$have" ]] || { echo "build_native: $out is stale (sources changed)" >&2; exit 1; }
    exit 0
fi

core=(huntgroup/queue huntgroup/distribution)
# simulations/model/scenario.py stays interpreted: its pydantic models make mypyc emit C
# that does not compile (an undeclared CPyModule_pydantic___main)
sim=("${core[@]}" huntgroup/simulations/virtual huntgroup/simulations/model/distributions.py
     huntgroup/simulations/model/numbers.py huntgroup/simulations/model/splitmix.py)
sip_files() {
    # registrar and digest are left out: not on the per-call path of a plain call.
    find huntgroup/engine/sip -name '*.py' ! -name registrar.py ! -name digest.py | sort
    echo huntgroup/engine/b2bua
    # media: the SDP code and the planner the B2BUA calls on every call (not the relay,
    # the audio, g711 or the music: sockets and numpy, outside the sans-I/O core)
    printf 'huntgroup/media/%s.py\n' sdp offer_answer planner_base hold_media direct_media \
        call_media hold nat ports commands
}
case $set_name in
    core) modules=("${core[@]}") ;;
    sim) modules=("${sim[@]}") ;;
    sip) mapfile -t modules < <(cd "$src" && sip_files) ;;
    all) mapfile -t modules < <(cd "$src" && printf '%s\n' "${sim[@]}" && sip_files) ;;
    custom) ;;
    *) echo "build_native: unknown set $set_name" >&2; exit 2 ;;
esac

rm -rf "$out"
mkdir -p "$out"
(cd "$src" && tar --exclude='__pycache__' --exclude='*.so' -cf - huntgroup pyproject.toml) \
    | tar -xf - -C "$out"
if [[ -n $patch ]]; then
    (cd "$out" && patch -s -p1 < "$patch")
fi
start=$(date +%s)
# mypyc reads [tool.mypy] of the copied pyproject.toml (strict, the pydantic plugin).
py=${PYTHON:-$here/.venv/bin/python}
[[ -x $py ]] || py=python
(cd "$out" && "$py" "$here/scripts/native_setup.py" "${modules[@]}" -- build_ext --inplace \
    > mypyc.log 2>&1) || {
    tail -40 "$out/mypyc.log" >&2
    echo "build_native: mypyc failed (log: $out/mypyc.log)" >&2
    exit 1
}
rm -rf "$out/build" "$out/.mypy_cache"
{ stamp; echo "set=$set_name"; printf '%s\n' "${modules[@]}"; } > "$out/NATIVE_STAMP"
echo "build_native: $(find "$out/huntgroup" -name '*.so' | wc -l) extension modules in $out" \
    "($(( $(date +%s) - start )) s)"
