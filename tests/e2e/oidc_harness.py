"""A real OpenID provider for the end-to-end tests: `tests/e2e/oidc/provider.mjs` (oidc-provider
from the npm registry, installed by `tests/e2e/setup.sh`) run by Node.js, and helpers to drive it.

    from oidc_harness import OidcProvider, rsa_jwk, ec_jwk
    with OidcProvider(workdir, [rsa_jwk("rs-1"), ec_jwk("es-1")]) as idp:
        token = idp.token("rs-client", ORDERS, "orders:read")   # RS256, kid rs-1
        idp.rotate([rsa_jwk("rs-2"), ec_jwk("es-2")])
        idp.jwks_mode("oversized")
        idp.stats()   # {"discovery": n, "oauth_metadata": n, "jwks": n, "token": n}

The issuer is `http://127.0.0.1:PORT` (custody allows plain http only to loopback); the provider
and control ports are chosen once and kept across `stop()`/`start()`, so a restarted provider is
the same issuer. Node.js comes from PATH (else the virtual environment's, which setup.sh installs
when the machine has none); without it, or without the npm packages, the test is skipped, and
under `CI=true` it fails. Every HTTP call is a real one (urllib).

The session fixture `oidc` (conftest.py) is one such provider on `default_keys()`;
`OidcProvider.reset()` puts it back as it started.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conftest import IN_CI, ROOT, free_port

OIDC_DIR = ROOT / "tests" / "e2e" / "oidc"
PROVIDER = OIDC_DIR / "provider.mjs"
ORDERS = "https://orders.c.example"
READY = "OIDC-PROVIDER-READY "

# client id -> (secret, token endpoint authentication, access token alg); as in provider.mjs
CLIENTS = {
    "rs-client": ("rs-secret", "client_secret_basic", "RS256"),
    "es-client": ("es-secret", "client_secret_post", "ES256"),
    "ps-client": ("ps-secret", "client_secret_basic", "PS256"),
}
JWKS_MODES = ("normal", "malformed", "duplicate-members", "oversized", "oversized-chunked",
              "not-json-object", "slow", "trickle", "error")
DISCOVERY_MODES = ("normal", "wrong-issuer", "rfc8414-only", "error")
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")


# ---- keys -------------------------------------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64int(n, size=None):
    return _b64(n.to_bytes(size or (n.bit_length() + 7) // 8, "big"))


def _unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int(s):
    return int.from_bytes(_unb64(s), "big")


def rsa_jwk(kid, alg="RS256", bits=2048):
    """A private RSA JWK (`alg` RS256, PS256, ...; `use: sig`)."""
    p = rsa.generate_private_key(65537, bits).private_numbers()
    pub = p.public_numbers
    return {"kty": "RSA", "kid": kid, "alg": alg, "use": "sig", "n": _b64int(pub.n), "e": _b64int(pub.e),
            "d": _b64int(p.d), "p": _b64int(p.p), "q": _b64int(p.q), "dp": _b64int(p.dmp1),
            "dq": _b64int(p.dmq1), "qi": _b64int(p.iqmp)}


def ec_jwk(kid, alg="ES256"):
    """A private EC P-256 JWK (`alg` ES256, `use: sig`)."""
    p = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "alg": alg, "use": "sig",
            "x": _b64int(p.public_numbers.x, 32), "y": _b64int(p.public_numbers.y, 32),
            "d": _b64int(p.private_value, 32)}


def public_jwk(jwk):
    return {k: v for k, v in jwk.items() if k not in PRIVATE_MEMBERS}


def default_keys():
    """RS256 `rs-1` and ES256 `es-1`."""
    return [rsa_jwk("rs-1"), ec_jwk("es-1")]


# ---- tokens -----------------------------------------------------------------------------------

def decode_jwt(token):
    """(header, claims) of a compact JWS, unverified."""
    h, p, _ = token.split(".")
    return json.loads(_unb64(h)), json.loads(_unb64(p))


_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def verify_jwt(token, jwk):
    """Whether `token`'s signature verifies under the public part of `jwk` (RS*, PS*, ES256/384)."""
    h, p, s = token.split(".")
    alg = json.loads(_unb64(h))["alg"]
    data, sig = f"{h}.{p}".encode(), _unb64(s)
    digest = _HASHES[alg[2:]]()
    try:
        if jwk["kty"] == "RSA" and alg[:2] in ("RS", "PS"):
            key = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
            pad = (padding.PKCS1v15() if alg.startswith("RS")
                   else padding.PSS(padding.MGF1(digest), digest.digest_size))
            key.verify(sig, data, pad, digest)
        elif jwk["kty"] == "EC" and alg in ("ES256", "ES384"):
            curve, size = (ec.SECP256R1(), 32) if alg == "ES256" else (ec.SECP384R1(), 48)
            key = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), curve).public_key()
            if len(sig) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            key.verify(der, data, ec.ECDSA(digest))
        else:
            return False
    except InvalidSignature:
        return False
    return True


# ---- the process ------------------------------------------------------------------------------

def node_binary():
    """Node.js from PATH (else the virtual environment's) with the npm packages installed; skips,
    or fails under CI=true, when either is missing."""
    node = shutil.which("node") or next(
        (str(p) for p in [ROOT / ".venv" / "bin" / "node"] if os.access(p, os.X_OK)), None)
    missing = None
    if node is None:
        missing = "no node on PATH"
    elif not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        missing = "tests/e2e/oidc/node_modules has no oidc-provider"
    if missing:
        msg = f"{missing}: run tests/e2e/setup.sh"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return node


class HttpError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body[:500]!r}")
        self.status, self.body = status, body


def http(method, url, body=None, headers=None, timeout=10.0):
    """(status, headers, body bytes); non-2xx answers are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class OidcProvider:
    """One provider process (`start()`ed by the constructor) and its test controls."""

    def __init__(self, workdir, keys, resources=None, name="oidc", start=True):
        self.node = node_binary()
        self.workdir = Path(workdir)
        self.name = name
        self.port, self.control_port = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.control = f"http://127.0.0.1:{self.control_port}"
        self.initial_keys = list(keys)
        self.keys_file = self.workdir / f"{name}-keys.json"
        self.keys_file.write_text(json.dumps({"keys": self.initial_keys}))
        self.resources_file = None
        if resources is not None:
            self.resources_file = self.workdir / f"{name}-resources.json"
            self.resources_file.write_text(json.dumps(resources))
        self.log = self.workdir / f"{name}.log"
        self.proc = None
        if start:
            self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=30.0):
        """Starts the process (on the initial keys) and waits for its readiness line."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [self.node, str(PROVIDER), "--port", str(self.port), "--control-port", str(self.control_port),
               "--keys", str(self.keys_file)]
        if self.resources_file:
            cmd += ["--resources", str(self.resources_file)]
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=OIDC_DIR)
        deadline = time.time() + timeout
        while True:
            with open(self.log, "rb") as f:
                f.seek(offset)
                for line in f.read().decode(errors="replace").splitlines():
                    if line.startswith(READY):
                        ready = json.loads(line[len(READY):])
                        assert ready["issuer"] == self.issuer, ready
                        return ready
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc provider exited {self.proc.returncode}: {self.log_tail()}")
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError(f"oidc provider not ready within {timeout}s: {self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        """SIGTERM; returns the exit status (0 when it shut down cleanly)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart(self):
        """Stops and starts the process (same ports and issuer, the initial keys and modes)."""
        self.stop()
        return self.start()

    def log_tail(self, n=3000):
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    # ---- the provider, as a client sees it ----

    @property
    def discovery_url(self):
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self):
        """The OpenID Connect discovery document (a counted fetch)."""
        status, _, body = http("GET", self.discovery_url)
        if status != 200:
            raise HttpError(status, body)
        return json.loads(body)

    def jwks(self):
        """The JWK Set at the jwks_uri, parsed (a counted fetch; normal mode only)."""
        status, _, body = http("GET", f"{self.issuer}/jwks")
        if status != 200:
            raise HttpError(status, body)
        return json.loads(body)

    def token_response(self, client, resource=ORDERS, scope="orders:read"):
        """(status, JSON) of a client-credentials request at the token endpoint; `resource` or
        `scope` None leaves the parameter out."""
        secret, method, _ = CLIENTS[client]
        form = {"grant_type": "client_credentials"}
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if method == "client_secret_basic":
            cred = f"{urllib.parse.quote(client, safe='')}:{urllib.parse.quote(secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        else:
            form.update(client_id=client, client_secret=secret)
        status, _, body = http("POST", f"{self.issuer}/token", urllib.parse.urlencode(form).encode(), headers)
        return status, json.loads(body)

    def token(self, client, resource=ORDERS, scope="orders:read"):
        """A client-credentials JWT access token of `client` for `resource`."""
        status, out = self.token_response(client, resource, scope)
        if status != 200:
            raise HttpError(status, json.dumps(out).encode())
        return out["access_token"]

    # ---- the control surface ----

    def _control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        status, _, out = http(method, f"{self.control}{path}", data, {"content-type": "application/json"})
        if status != 200:
            raise HttpError(status, out)
        return json.loads(out)

    def health(self):
        return self._control("GET", "/health")

    def rotate(self, keys):
        """Replaces the key set (private JWKs) in the running process; returns the kids."""
        return self._control("POST", "/keys", {"keys": list(keys)})["kids"]

    def jwks_mode(self, mode, delay_ms=None):
        body = {"mode": mode}
        if delay_ms is not None:
            body["delay_ms"] = delay_ms
        return self._control("POST", "/jwks-mode", body)

    def discovery_mode(self, mode):
        return self._control("POST", "/discovery-mode", {"mode": mode})

    def stats(self):
        """Requests received so far: {"discovery", "oauth_metadata", "jwks", "token"}."""
        return self._control("GET", "/stats")

    def reset_stats(self):
        return self._control("POST", "/stats/reset")

    def reset(self):
        """Back to the initial keys, normal modes, zero counters (without a restart)."""
        self.rotate(self.initial_keys)
        self.jwks_mode("normal")
        self.discovery_mode("normal")
        self.reset_stats()
