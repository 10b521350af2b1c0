"""A real OpenID provider (oidc-provider from the npm registry, `tests/e2e/idp/provider.mjs`)
behind which custody sits: the provider's discovery document and JWKS are fetched by
`custody serve`, client-credentials JWT access tokens signed RS256 and ES256 go through a real
Envoy, a DPoP-bound token from the provider is usable only with a proof of its key (RFC 9449),
and the provider rotates its keys, stops, restarts and serves a broken JWKS while custody keeps
serving (DESIGN.md "Remote key sources", "Proving the caller").

The tests run in file order: each leaves the provider as the next expects it."""

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import (ACTION_HEADER, IN_CI, ROOT, cluster, free_port, hcm, run_envoy, serve,
                      wait_port)

IDP_DIR = ROOT / "tests" / "e2e" / "idp"
ORDERS = "https://orders.c.example"
AGENTS = "https://agents.b.example"


def b64(n, size=None):
    return base64.urlsafe_b64encode(n.to_bytes(size or (n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def rsa_jwk(kid):
    k = rsa.generate_private_key(65537, 2048)
    p = k.private_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(p.public_numbers.n),
            "e": b64(p.public_numbers.e), "d": b64(p.d), "p": b64(p.p), "q": b64(p.q),
            "dp": b64(p.dmp1), "dq": b64(p.dmq1), "qi": b64(p.iqmp)}


def ec_jwk(kid):
    k = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": b64(k.public_numbers.x, 32), "y": b64(k.public_numbers.y, 32), "d": b64(k.private_value, 32)}


KEYS = {"rs-1": rsa_jwk("rs-1"), "es-1": ec_jwk("es-1"), "rs-2": rsa_jwk("rs-2")}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def dpop_jwk(key):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(n.x, 32), "y": b64(n.y, 32)}


def dpop_proof(key, htm, htu, token=None):
    """A DPoP proof (RFC 9449 §4.2) by `key` (EC P-256), ES256, a fresh `jti`."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_jwk(key)}
    claims = {"htm": htm, "htu": htu, "iat": int(time.time()), "jti": b64url(os.urandom(16))}
    if token is not None:
        claims["ath"] = b64url(hashlib.sha256(token.encode()).digest())
    enc = lambda o: b64url(json.dumps(o, separators=(",", ":")).encode())
    signing_input = f"{enc(header)}.{enc(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def decode(token):
    h, p, _ = token.split(".")
    d = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    return d(h), d(p)


class Idp:
    """The provider process and its test controls."""

    def __init__(self, workdir, fx):
        self.port, self.control = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "idp.json"
        self.log = workdir / "idp.log"
        self.audience = {"orders": fx["audience"], "agents": fx["alice"]}
        self.proc = None

    def start(self, keys):
        self.config.write_text(json.dumps({"port": self.port, "control_port": self.control,
                                           "keys": [KEYS[k] for k in keys], "audience": self.audience}))
        log = open(self.log, "a")
        self.proc = subprocess.Popen(["node", str(IDP_DIR / "provider.mjs"), str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=IDP_DIR)
        wait_port(self.port, self.proc, "oidc-provider")
        wait_port(self.control, self.proc, "oidc-provider control")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def _control(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.control, timeout=10)
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        r = conn.getresponse()
        out = json.loads(r.read())
        conn.close()
        assert r.status == 200, out
        return out

    def keys(self, kids):
        return self._control("POST", "/keys", {"keys": [KEYS[k] for k in kids]})

    def jwks_mode(self, mode):
        return self._control("POST", "/jwks-mode", {"mode": mode})

    def stats(self):
        return self._control("GET", "/stats")

    def token(self, client, resource=ORDERS, scope="orders:read", dpop_key=None):
        """A client-credentials access token, over real HTTP; with `dpop_key`, the request
        carries a DPoP proof of that key and the token is bound to it."""
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client,
                                       "client_secret": client.replace("client", "secret"),
                                       "resource": resource, "scope": scope})
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if dpop_key is not None:
            headers["dpop"] = dpop_proof(dpop_key, "POST", f"{self.issuer}/token")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/token", body=body, headers=headers)
        r = conn.getresponse()
        out = json.loads(r.read())
        conn.close()
        assert r.status == 200, out
        return out["access_token"]


@pytest.fixture(scope="module")
def idp(workdir, fx):
    if shutil.which("node") is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        if IN_CI:
            pytest.fail("node or tests/e2e/idp/node_modules missing (tests/e2e/setup.sh installs them)")
        pytest.skip("node or oidc-provider not installed (run tests/e2e/setup.sh)")
    p = Idp(workdir, fx)
    p.start(["rs-1", "es-1"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def idp_pack(idp, fx, workdir):
    """The fixture pack plus `idp.example`, whose keys come from the provider's discovery."""
    pack = workdir / "idp-pack"
    if pack.exists():
        shutil.rmtree(pack)
    shutil.copytree(fx["pack"], pack)
    with open(pack / "pack.trust", "a") as f:
        f.write(f'''
domain "idp.example" {{
  issuer "{idp.issuer}"
  discovery "{idp.issuer}"
  refresh 30s
}}
federate "idp.example" -> "c.example" {{ scopes ["orders:read", "orders:write"] }}
federate "idp.example" -> "b.example" {{ scopes ["orders:read", "orders:write"] }}
''')
    return pack


@pytest.fixture(scope="module")
def idp_custody(binaries, fx, workdir, idp_pack):
    with serve(binaries, {**fx, "pack": str(idp_pack)}, workdir, "custody-idp",
               ["--action-header", ACTION_HEADER, "--target-authority", ORDERS]) as c:
        yield c


@pytest.fixture(scope="module")
def idp_envoy(envoy_bin, idp_custody, upstream, workdir):
    plain, admin = free_port(), free_port()
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain}},
                           "filter_chains": [{"filters": [hcm()]}]}],
            "clusters": [cluster("custody", idp_custody["port"], True), cluster("upstream", upstream, False)],
        },
    }
    with run_envoy(envoy_bin, workdir, "envoy-idp", config, admin, os.getpid() % 10000 + 20000) as proc:
        wait_port(plain, proc, "envoy")
        yield plain


def send(port, token, chain=(), method="GET", dpop=None):
    headers = {"authorization": f"{'DPoP' if dpop else 'Bearer'} {token}"}
    if chain:
        headers["custody-chain"] = ",".join(chain)
    if dpop:
        headers["dpop"] = dpop
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request(method, "/orders/42", headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    codes = []
    if r.status != 200:
        with contextlib.suppress(ValueError, KeyError):
            codes = [x["code"] for x in json.loads(body)["reasons"]]
    return r.status, codes


def metric(custody, name, source="discovery"):
    conn = http.client.HTTPConnection("127.0.0.1", custody["metrics"], timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(name + "{") and 'domain="idp.example"' in line and f'source="{source}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(what, check, timeout=50):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.5)


def test_rs256_and_es256_provider_tokens_are_accepted(idp, idp_custody, idp_envoy):
    rs, es = idp.token("rs-client"), idp.token("es-client")
    assert decode(rs)[0] == {"alg": "RS256", "typ": "at+jwt", "kid": "rs-1"}
    assert decode(es)[0] == {"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}
    assert send(idp_envoy, rs) == (200, [])
    assert send(idp_envoy, es) == (200, [])
    # the same rules as ever: a read token does not write
    assert send(idp_envoy, rs, method="POST") == (403, ["scope_missing"])
    assert metric(idp_custody, "custody_key_source_keys") == 2
    assert metric(idp_custody, "custody_key_source_up") == 1
    assert idp.stats()["discovery"] >= 1 and idp.stats()["jwks"] >= 1


def test_a_dpop_bound_provider_token_is_usable_only_with_its_proof(idp, idp_envoy):
    key = ec.generate_private_key(ec.SECP256R1())
    token = idp.token("es-client", dpop_key=key)
    jwk = dpop_jwk(key)
    thumbprint = b64url(hashlib.sha256(json.dumps(
        {"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}, separators=(",", ":")).encode()).digest())
    # the provider bound the token to the key (RFC 7638 thumbprint in `cnf.jkt`)
    assert decode(token)[1]["cnf"] == {"jkt": thumbprint}
    target = f"{ORDERS}/orders/42"
    proof = dpop_proof(key, "GET", target, token)
    assert send(idp_envoy, token, dpop=proof) == (200, [])
    # a proof is good once
    assert send(idp_envoy, token, dpop=proof) == (401, ["replayed"])
    # without a proof the bound token is no bearer token
    assert send(idp_envoy, token) == (401, ["peer_invalid"])
    # a proof for another method, another URI, or by another key
    assert send(idp_envoy, token, dpop=dpop_proof(key, "POST", target, token)) == (401, ["peer_invalid"])
    assert send(idp_envoy, token, dpop=dpop_proof(key, "GET", f"{ORDERS}/orders/43", token)) == (401, ["peer_invalid"])
    other = ec.generate_private_key(ec.SECP256R1())
    assert send(idp_envoy, token, dpop=dpop_proof(other, "GET", target, token)) == (401, ["peer_invalid"])
    # an unbound token from the same provider is still a bearer token
    assert send(idp_envoy, idp.token("es-client")) == (200, [])


def test_an_idp_rs256_origin_and_ed25519_agent_hop_form_one_chain(idp, idp_envoy, mint, fx):
    t0 = idp.token("rs-client", resource=AGENTS)
    h0, c0 = decode(t0)
    assert h0["alg"] == "RS256" and c0["aud"] == fx["alice"] and c0["txn"] == "txn-idp-1"
    hop = {"sub": c0["sub"], "aud": fx["audience"], "scope": "orders:read", "txn": c0["txn"],
           "act": {"sub": fx["alice"]}, "iat": c0["iat"], "exp": c0["exp"] - 1}
    t1 = mint("b.example", hop)
    assert send(idp_envoy, t1, chain=[t0]) == (200, [])
    # the chain rules hold across algorithms: the hop may not widen the IdP's scope
    wide = mint("b.example", {**hop, "scope": "orders:read orders:write"})
    assert send(idp_envoy, wide, chain=[t0]) == (403, ["scope_escalation"])
    # nor outlive it
    late = mint("b.example", {**hop, "exp": c0["exp"] + 60})
    assert send(idp_envoy, late, chain=[t0]) == (403, ["expiry_extended"])


def test_a_key_rotation_needs_no_restart_and_the_old_key_stops_verifying(idp, idp_custody, idp_envoy):
    old = idp.token("rs-client")
    assert send(idp_envoy, old) == (200, [])
    # 1. the new key is published beside the old one, which still signs
    idp.keys(["rs-1", "es-1", "rs-2"])
    assert decode(idp.token("rs-client"))[0]["kid"] == "rs-1"
    # 2. the new key signs: custody fetches it when a token first names it (no restart)
    idp.keys(["rs-2", "rs-1", "es-1"])
    new = idp.token("rs-client")
    assert decode(new)[0]["kid"] == "rs-2"
    before = idp.stats()["jwks"]
    assert send(idp_envoy, new) == (200, [])
    assert idp.stats()["jwks"] == before + 1, "one refetch for the unknown kid"
    assert send(idp_envoy, old) == (200, [])
    # 3. the old key leaves the provider's set: at the next refresh, tokens under it are refused,
    # although custody has verified (and cached) them before
    idp.keys(["rs-2", "es-1"])
    wait_for("the removal", lambda: send(idp_envoy, old) == (401, ["unknown_key"]))
    assert send(idp_envoy, new) == (200, [])
    assert metric(idp_custody, "custody_key_source_keys") == 2


def test_the_last_good_keys_serve_while_the_provider_is_down_and_after_it_restarts(idp, idp_custody, idp_envoy):
    token = idp.token("rs-client")
    failures = metric(idp_custody, "custody_key_source_failures_total")
    idp.stop()
    wait_for("a failed refresh", lambda: metric(idp_custody, "custody_key_source_failures_total") > failures)
    assert send(idp_envoy, token) == (200, [])
    assert metric(idp_custody, "custody_key_source_up") == 1
    idp.start(["rs-2", "es-1"])
    last = metric(idp_custody, "custody_key_source_last_success_timestamp_seconds")
    wait_for("a refresh after the restart",
             lambda: metric(idp_custody, "custody_key_source_last_success_timestamp_seconds") > last)
    assert send(idp_envoy, idp.token("rs-client")) == (200, [])
    assert send(idp_envoy, idp.token("es-client")) == (200, [])


@pytest.mark.parametrize("mode", ["malformed", "oversized"])
def test_a_broken_jwks_keeps_the_old_keys(idp, idp_custody, idp_envoy, mode):
    token = idp.token("es-client")
    failures = metric(idp_custody, "custody_key_source_failures_total")
    idp.jwks_mode(mode)
    try:
        wait_for(f"a refused {mode} set", lambda: metric(idp_custody, "custody_key_source_failures_total") > failures)
        assert send(idp_envoy, token) == (200, [])
        assert metric(idp_custody, "custody_key_source_keys") == 2
    finally:
        idp.jwks_mode("normal")
    log = [json.loads(l) for l in idp_custody["log"].read_text().splitlines() if l.startswith("{")]
    failed = [l for l in log if l.get("event") == "key_source_failed" and l.get("domain") == "idp.example"]
    assert failed and failed[-1]["kept_last_good"] is True
    expected = "larger than" if mode == "oversized" else "refused key set"
    assert any(expected in l["error"] for l in failed), failed[-3:]
