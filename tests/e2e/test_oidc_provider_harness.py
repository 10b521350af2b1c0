"""Tests of the OpenID provider harness itself (tests/e2e/oidc/provider.mjs, oidc_harness.py): no
custody involved. What later tests of custody's remote key sources rely on: the discovery
document, RFC 9068 JWT access tokens signed RS256 / ES256 / PS256 under the published keys, key
replacement in the running process, each broken-JWKS and discovery mode, and the fetch counters."""

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from oidc_harness import (CLIENTS, ORDERS, HttpError, OidcProvider, decode_jwt, ec_jwk, http,
                          public_jwk, rsa_jwk, verify_jwt)


@pytest.fixture(autouse=True)
def fresh(oidc):
    oidc.reset()
    yield
    oidc.reset()


def published(oidc):
    return {k["kid"]: k for k in oidc.jwks()["keys"]}


def test_discovery_names_issuer_and_jwks_uri(oidc):
    doc = oidc.discovery()
    assert doc["issuer"] == oidc.issuer
    assert oidc.issuer.startswith("http://127.0.0.1:")
    assert doc["jwks_uri"] == f"{oidc.issuer}/jwks"
    assert doc["token_endpoint"] == f"{oidc.issuer}/token"
    assert "client_credentials" in doc["grant_types_supported"]
    assert {"orders:read", "orders:write"} <= set(doc["scopes_supported"])


def test_jwks_publishes_exactly_the_public_keys(oidc):
    keys = published(oidc)
    assert set(keys) == {"rs-1", "es-1"}
    for jwk in oidc.initial_keys:
        assert keys[jwk["kid"]] == public_jwk(jwk)
    assert oidc.health()["kids"] == ["rs-1", "es-1"]
    assert raw_jwks(oidc)[1]["content-type"] == JWKS_TYPE


@pytest.mark.parametrize("client,alg,kid", [("rs-client", "RS256", "rs-1"), ("es-client", "ES256", "es-1")])
def test_client_credentials_jwt_access_token(oidc, client, alg, kid):
    before = int(time.time())
    token = oidc.token(client, ORDERS, "orders:read orders:write")
    header, claims = decode_jwt(token)
    assert header == {"alg": alg, "typ": "at+jwt", "kid": kid}
    keys = published(oidc)
    assert verify_jwt(token, keys[kid])
    assert not verify_jwt(token, keys["es-1" if kid == "rs-1" else "rs-1"])
    assert claims["iss"] == oidc.issuer
    assert claims["sub"] == client and claims["client_id"] == client
    assert claims["aud"] == ORDERS
    assert claims["scope"] == "orders:read orders:write"
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert before - 2 <= claims["iat"] <= time.time() + 2
    assert claims["exp"] - claims["iat"] == 600
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}
    assert CLIENTS[client][2] == alg


def test_token_requests_the_provider_refuses(oidc):
    status, out = oidc.token_response("rs-client", ORDERS, "orders:read")
    assert status == 200 and out["token_type"] == "Bearer" and out["scope"] == "orders:read"
    # no resource: the default one; no scope: no scope claim
    _, claims = decode_jwt(oidc.token("es-client", None, None))
    assert claims["aud"] == ORDERS and "scope" not in claims
    # a scope the provider does not know is dropped, not refused
    status, out = oidc.token_response("rs-client", ORDERS, "orders:read orders:delete")
    assert status == 200 and out["scope"] == "orders:read"
    assert decode_jwt(out["access_token"])[1]["scope"] == "orders:read"
    status, out = oidc.token_response("rs-client", "https://other.example", "orders:read")
    assert (status, out["error"]) == (400, "invalid_target")
    status, _, body = http("POST", f"{oidc.issuer}/token", b"grant_type=client_credentials&client_id=rs-client",
                           {"content-type": "application/x-www-form-urlencoded",
                            "authorization": "Basic cnMtY2xpZW50Ondyb25n"})  # rs-client:wrong
    assert (status, json.loads(body)["error"]) == (401, "invalid_client")


def test_ps256_client_needs_a_ps256_key(oidc):
    status, out = oidc.token_response("ps-client")
    assert (status, out["error"]) == (500, "server_error")  # no key fits PS256
    ps = rsa_jwk("ps-1", alg="PS256")
    oidc.rotate([*oidc.initial_keys, ps])
    token = oidc.token("ps-client")
    header, claims = decode_jwt(token)
    assert header == {"alg": "PS256", "typ": "at+jwt", "kid": "ps-1"}
    assert verify_jwt(token, published(oidc)["ps-1"]) and claims["sub"] == "ps-client"


def test_rotation_replaces_signing_and_published_keys(oidc):
    old = published(oidc)
    pid = oidc.proc.pid
    rs2, es2, rs3 = rsa_jwk("rs-2"), ec_jwk("es-2"), rsa_jwk("rs-3")

    assert oidc.rotate([rs2, es2]) == ["rs-2", "es-2"]
    keys = published(oidc)
    assert set(keys) == {"rs-2", "es-2"}
    for client, kid, gone in [("rs-client", "rs-2", "rs-1"), ("es-client", "es-2", "es-1")]:
        token = oidc.token(client)
        assert decode_jwt(token)[0]["kid"] == kid
        assert verify_jwt(token, keys[kid]) and not verify_jwt(token, old[gone])

    # an overlapping set: the first key per alg signs, every key is published
    oidc.rotate([rs3, rs2, es2])
    assert set(published(oidc)) == {"rs-3", "rs-2", "es-2"}
    assert decode_jwt(oidc.token("rs-client"))[0]["kid"] == "rs-3"
    assert decode_jwt(oidc.token("es-client"))[0]["kid"] == "es-2"

    # a set oidc-provider refuses (a repeated kid) leaves the current one
    with pytest.raises(HttpError) as e:
        oidc.rotate([rs2, rsa_jwk("rs-2")])
    assert e.value.status == 400 and b"duplicate" in e.value.body
    assert set(published(oidc)) == {"rs-3", "rs-2", "es-2"}
    assert decode_jwt(oidc.token("rs-client"))[0]["kid"] == "rs-3"
    assert oidc.proc.pid == pid and oidc.proc.poll() is None  # the same process throughout


JWKS_TYPE = "application/jwk-set+json; charset=utf-8"  # oidc-provider's, kept by every mode


def raw_jwks(oidc, timeout=10.0):
    return http("GET", f"{oidc.issuer}/jwks", timeout=timeout)


def no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate member names {names}")
    return dict(pairs)


def test_jwks_mode_malformed(oidc):
    oidc.jwks_mode("malformed")
    status, headers, body = raw_jwks(oidc)
    assert status == 200 and headers["content-type"] == JWKS_TYPE and body.startswith(b'{"keys":[')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_jwks_mode_duplicate_members(oidc):
    oidc.jwks_mode("duplicate-members")
    status, _, body = raw_jwks(oidc)
    assert status == 200
    assert json.loads(body) == {"keys": []}  # a lenient parser keeps the last member
    with pytest.raises(ValueError, match="duplicate"):
        json.loads(body, object_pairs_hook=no_duplicates)


def test_jwks_mode_not_json_object(oidc):
    expected = oidc.jwks()["keys"]
    oidc.jwks_mode("not-json-object")
    status, headers, body = raw_jwks(oidc)
    assert status == 200 and headers["content-type"] == JWKS_TYPE and json.loads(body) == expected


@pytest.mark.parametrize("mode", ["oversized", "oversized-chunked"])
def test_jwks_mode_oversized(oidc, mode):
    expected = oidc.jwks()["keys"]
    oidc.jwks_mode(mode)
    status, headers, body = raw_jwks(oidc)
    assert status == 200 and headers["content-type"] == JWKS_TYPE and len(body) > 2 * 1024 * 1024
    doc = json.loads(body, object_pairs_hook=no_duplicates)  # valid JSON, the real keys first
    assert doc["keys"] == expected
    if mode == "oversized":
        assert int(headers["content-length"]) == len(body)
    else:
        assert headers["content-length"] is None and headers["transfer-encoding"] == "chunked"


def test_jwks_mode_error(oidc):
    oidc.jwks_mode("error")
    assert raw_jwks(oidc)[0] == 503


def test_jwks_mode_slow(oidc):
    oidc.jwks_mode("slow")  # default: 8 s, beyond custody's 5 s
    start = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        raw_jwks(oidc, timeout=2)
    assert time.monotonic() - start >= 1.9
    oidc.jwks_mode("slow", delay_ms=1000)
    start = time.monotonic()
    status, _, body = raw_jwks(oidc)
    assert status == 200 and time.monotonic() - start >= 0.95
    assert {k["kid"] for k in json.loads(body)["keys"]} == {"rs-1", "es-1"}


def test_jwks_mode_trickle(oidc):
    oidc.jwks_mode("trickle", delay_ms=2000)
    start = time.monotonic()
    with urllib.request.urlopen(f"{oidc.issuer}/jwks", timeout=10) as r:
        first = time.monotonic() - start  # status and headers at once
        body = r.read()
    total = time.monotonic() - start
    assert first < 1.0 and total >= 1.8, (first, total)
    assert {k["kid"] for k in json.loads(body)["keys"]} == {"rs-1", "es-1"}


def test_discovery_modes(oidc):
    real = oidc.discovery()
    oauth_metadata = f"{oidc.issuer}/.well-known/oauth-authorization-server"
    status, _, body = http("GET", oauth_metadata)  # oidc-provider serves both locations
    assert status == 200 and json.loads(body) == real

    oidc.discovery_mode("wrong-issuer")
    assert oidc.discovery() == {**real, "issuer": f"{oidc.issuer}/other"}
    assert json.loads(http("GET", oauth_metadata)[2])["issuer"] == f"{oidc.issuer}/other"

    oidc.discovery_mode("rfc8414-only")
    assert http("GET", oidc.discovery_url)[0] == 404
    status, _, body = http("GET", oauth_metadata)
    assert status == 200 and json.loads(body) == real

    oidc.discovery_mode("error")
    assert http("GET", oidc.discovery_url)[0] == 503
    assert http("GET", oauth_metadata)[0] == 503

    oidc.discovery_mode("normal")
    assert oidc.discovery() == real


def test_unknown_modes_are_refused(oidc):
    for call in (lambda: oidc.jwks_mode("sideways"), lambda: oidc.discovery_mode("sideways")):
        with pytest.raises(HttpError) as e:
            call()
        assert e.value.status == 400
    assert oidc.health()["jwks_mode"] == "normal"


def test_stats_count_every_fetch(oidc):
    assert oidc.stats() == {"discovery": 0, "oauth_metadata": 0, "jwks": 0, "token": 0}
    for _ in range(2):
        oidc.discovery()
    for _ in range(3):
        oidc.jwks()
    oidc.token("rs-client")
    oidc.jwks_mode("error")  # failed fetches count too
    raw_jwks(oidc)
    http("GET", f"{oidc.issuer}/.well-known/oauth-authorization-server")
    assert oidc.stats() == {"discovery": 2, "oauth_metadata": 1, "jwks": 4, "token": 1}
    oidc.reset_stats()
    assert oidc.stats() == {"discovery": 0, "oauth_metadata": 0, "jwks": 0, "token": 0}


def test_resources_restart_and_sigterm(workdir):
    """A second provider with its own resources (audience and extra claims), restarted on the
    same issuer; SIGTERM ends it with status 0."""
    resources = {
        ORDERS: {"audience": "spiffe://c.example/orders", "scope": "orders:read", "ttl": 120},
        "https://agents.b.example": {"claims": {"txn": "txn-1"}},
    }
    with OidcProvider(workdir, [rsa_jwk("r-1"), ec_jwk("e-1")], resources, name="oidc-resources") as idp:
        _, claims = decode_jwt(idp.token("rs-client", ORDERS, "orders:read orders:write"))
        assert claims["aud"] == "spiffe://c.example/orders"
        assert claims["scope"] == "orders:read"  # the resource's scope bounds the grant
        assert claims["exp"] - claims["iat"] == 120 and "txn" not in claims
        _, claims = decode_jwt(idp.token("es-client", "https://agents.b.example", "orders:write"))
        assert claims["aud"] == "https://agents.b.example" and claims["txn"] == "txn-1"

        issuer, pid = idp.issuer, idp.proc.pid
        idp.rotate([rsa_jwk("r-2")])
        assert idp.stop() == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(idp.discovery_url, timeout=2)
        idp.start()  # same ports, the initial keys again
        assert idp.proc.pid != pid and idp.discovery()["issuer"] == issuer
        assert set(published(idp)) == {"r-1", "e-1"}
        assert idp.stats()["discovery"] == 1  # counters start over with the process
    assert idp.proc.returncode == 0
