#!/usr/bin/env bash
# Installs everything huntgroup and its tests need on a fresh Debian machine:
# system packages (SIPp, baresip, redis-server, redis-sentinel, libsndfile, PostgreSQL,
# Chromium, Kamailio) with apt-get when missing,
# then a virtual environment in .venv holding exactly requirements.lock (every file
# checked against its sha256) and the package itself, editable, with no further
# resolution: a new release elsewhere never changes what the tests run on.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need_apt+=(baresip-core)  # headless softphone (tests)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || need_apt+=(redis-sentinel)  # failover test
ldconfig -p 2>/dev/null | grep -q 'libsndfile\.so' || need_apt+=(libsndfile1)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # test certificates
# PostgreSQL server binaries (call records tests: a private cluster per run)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# headless Chromium and its driver (the wallboard's browser test; never a browser download)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # verifies the unit file
# Kamailio in front of several nodes (contrib/kamailio; its dispatcher, path and rr
# modules are in the base package): the cluster test and benchmark run it
[ -x /usr/sbin/kamailio ] || command -v kamailio >/dev/null 2>&1 || need_apt+=(kamailio)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  # The machine's pip configuration files (extra indexes, constraints) do not apply:
  # the lock is the whole set.
  export PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= PIP_FIND_LINKS=
  .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  .venv/bin/python -m pip check >/dev/null
  rm -f .venv/.installed-*
  touch "$stamp"
fi
