"""Check's mapping through a real Envoy (security review findings 6, 7 and 8): `x-custody-*`
values are one percent-encoded item, the default action `METHOD:path` can match a scope, and a
Txn-Token is no bearer credential."""

import json
import urllib.parse

from conftest import ACTION_HEADER
from test_envoy import chain, mtls, reasons, send

# A b.example subject that, unencoded, reads as a list whose second item is an a.example user.
TRICKY_SUB = "user:x,a.example|user:root"


def hops(body):
    return [r["hop"] for r in json.loads(body)["reasons"]]


def test_origin_with_a_comma_reaches_upstream_as_one_encoded_item(envoy, fx, mint):
    # one b.example token: Alice (b.example) acting for a b.example user; b -> c carries orders:read
    token = mint("b.example", {"sub": TRICKY_SUB, "aud": fx["audience"], "scope": "orders:read",
                               "client_id": fx["alice"]})
    status, _, body = send(envoy["plain"], headers={"authorization": f"Bearer {token}"})
    assert status == 200, body
    seen = json.loads(body)["headers"]
    origin = seen["x-custody-origin"]
    assert origin == "b.example|user:x%2Ca.example|user:root"
    assert [item.strip() for item in origin.split(",")] == [origin]  # one list item
    assert not set(origin) & set(',;" \t')
    assert urllib.parse.unquote(origin) == f"b.example|{TRICKY_SUB}"
    assert seen["x-custody-actor"] == fx["alice"]
    assert seen["x-custody-depth"] == "1"


def test_encoded_values_decode_back(envoy, fx, mint):
    # spaces, quotes, semicolons, `%`, `+` and non-ASCII: all encoded, all decoded by unquote
    sub = 'user:"o\'brien"; role=admin 100%+é'
    token = mint("b.example", {"sub": sub, "aud": fx["audience"], "scope": "orders:read", "client_id": fx["alice"]})
    status, _, body = send(envoy["plain"], headers={"authorization": f"Bearer {token}"})
    assert status == 200, body
    origin = json.loads(body)["headers"]["x-custody-origin"]
    assert all(c.isascii() and c.isalnum() or c in "-._~:/@|%" for c in origin), origin
    assert urllib.parse.unquote(origin) == f"b.example|{sub}"
    assert urllib.parse.unquote_plus(origin) == f"b.example|{sub}"  # `+` is encoded too


def test_default_action_is_method_colon_path(envoy_default_action, fx, mint):
    # a local (c.example) token, no actor: no federation step, only the scope decides
    token = mint("c.example", {"sub": "user:carol", "aud": fx["audience"], "scope": "orders:read GET:/orders/7"})
    auth = {"authorization": f"Bearer {token}"}
    status, _, body = send(envoy_default_action["plain"], path="/orders/7?expand=items", headers=auth)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/orders/7?expand=items"
    assert ACTION_HEADER not in seen["headers"]
    assert seen["headers"]["x-custody-origin"] == "c.example|user:carol"
    for method, path in (("POST", "/orders/7"), ("GET", "/orders/8")):
        status, headers, body = send(envoy_default_action["plain"], method=method, path=path, headers=auth)
        assert status == 403, body
        assert reasons(body)[0] == "scope_missing"
        assert f"{method}:{path}" in json.loads(body)["reasons"][0]["message"]
        assert "insufficient_scope" in headers["www-authenticate"]


def test_default_action_denies_the_fixture_chain(envoy_default_action, fx):
    # the fixture's chain carries `orders:read`, not `GET:/orders/42`
    status, _, body = send(envoy_default_action["plain"], headers=chain(fx, "t1"))
    assert status == 403, body
    assert reasons(body)[0] == "scope_missing"


def txn_token(fx, mint, req_wl):
    """A local Txn-Token for the fixture's transaction (t0's `sub` and `txn`)."""
    return mint("c.example", {"sub": "user:alice", "aud": "c.example", "txn": "txn-1", "scope": "orders:read",
                              "req_wl": req_wl}, typ="txntoken+jwt")


def test_txn_token_as_bearer_is_401_wrong_token_type(envoy, fx, mint, certs):
    txn = txn_token(fx, mint, fx["alice"])
    # over Alice's mTLS connection (so sender binding is satisfied) and over plain HTTP
    for port, tls in ((envoy["tls"], mtls(certs, "alice")), (envoy["plain"], None)):
        status, headers, body = send(port, headers={"authorization": f"Bearer {txn}"}, tls=tls)
        assert status == 401, body
        assert reasons(body)[0] == "wrong_token_type"
        assert hops(body)[0] == 0
        assert 'error="invalid_token"' in headers["www-authenticate"]
        assert txn not in body.decode()
    # first in custody-chain, an access token presented
    status, _, body = send(envoy["tls"], headers={"authorization": f"Bearer {fx['t1']}", "custody-chain": txn},
                           tls=mtls(certs, "alice"))
    assert status == 401, body
    assert (reasons(body)[0], hops(body)[0]) == ("wrong_token_type", 0)
    # presented after an access token: refused at its own hop
    status, _, body = send(envoy["plain"], headers={"authorization": f"Bearer {txn}", "custody-chain": fx["t0"]})
    assert status == 401, body
    assert (reasons(body)[0], hops(body)[0]) == ("wrong_token_type", 1)


def test_txn_token_header_still_works(envoy, fx, mint, certs):
    txn = txn_token(fx, mint, fx["alice"])
    h = chain(fx, "t1")
    h["txn-token"] = txn
    status, _, body = send(envoy["plain"], headers=h)
    assert status == 200, body
    assert json.loads(body)["headers"]["x-custody-origin"] == "a.example|user:alice"
    # with mTLS the caller is the Txn-Token's last requesting workload: Alice here
    status, _, body = send(envoy["tls"], headers=h, tls=mtls(certs, "alice"))
    assert status == 200, body
