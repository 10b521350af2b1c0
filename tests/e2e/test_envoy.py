"""HTTP requests through a real Envoy whose ext_authz gRPC filter calls `custody serve`."""

import http.client
import json
import ssl

from conftest import ACTION_HEADER


def send(port, path="/orders/42", method="GET", headers=None, tls=None, body=None):
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    conn.close()
    return out


def chain(fx, presented, upstream=("t0",)):
    h = {"authorization": f"Bearer {fx[presented]}"}
    if upstream:
        h["custody-chain"] = ",".join(fx[t] for t in upstream)
    return h


def reasons(body):
    return [r["code"] for r in json.loads(body)["reasons"]]


def test_allowed_two_domain_chain_reaches_upstream(envoy, fx):
    status, _, body = send(envoy["plain"], headers=chain(fx, "t1"))
    assert status == 200, body
    seen = json.loads(body)["headers"]
    assert seen["x-custody-origin"] == "a.example|user:alice"
    assert seen["x-custody-actor"] == fx["alice"]
    assert seen["x-custody-depth"] == "2"
    assert seen[ACTION_HEADER] == "orders:read"


def test_client_cannot_forge_custody_headers_or_action(envoy, fx):
    h = chain(fx, "t1")
    h.update({"x-custody-origin": "a.example|user:root", "x-custody-actor": "spiffe://x/y", ACTION_HEADER: "orders:admin"})
    status, _, body = send(envoy["plain"], headers=h)
    assert status == 200, body
    seen = json.loads(body)["headers"]
    assert seen["x-custody-origin"] == "a.example|user:alice"
    assert seen["x-custody-actor"] == fx["alice"]
    assert seen[ACTION_HEADER] == "orders:read"


def test_widened_scope_is_403(envoy, fx):
    status, headers, body = send(envoy["plain"], headers=chain(fx, "t1_wide"))
    assert status == 403, body
    assert reasons(body)[0] == "scope_escalation"
    assert headers["content-type"] == "application/json"


def test_foreign_audience_is_401(envoy, fx):
    status, headers, body = send(envoy["plain"], headers=chain(fx, "t1_foreign"))
    assert status == 401, body
    assert reasons(body)[0] == "audience_mismatch"
    assert 'error="invalid_token"' in headers["www-authenticate"]


def test_missing_token_is_401_with_challenge(envoy, fx):
    status, headers, body = send(envoy["plain"])
    assert status == 401, body
    assert reasons(body) == ["invalid_request"]
    assert headers["www-authenticate"].startswith("Bearer")


def test_expired_token_is_401(envoy, fx):
    status, _, body = send(envoy["plain"], headers=chain(fx, "t1_expired"))
    assert status == 401, body
    assert reasons(body)[0] == "expired"


def test_write_needs_a_write_scope(envoy, fx):
    # POST /orders is `orders:write`; the presented token only carries orders:read
    status, headers, body = send(envoy["plain"], method="POST", headers=chain(fx, "t1"))
    assert status == 403, body
    assert reasons(body)[0] == "scope_missing"
    assert "insufficient_scope" in headers["www-authenticate"]


def test_unfederated_domain_is_403(envoy, fx):
    status, _, body = send(envoy["plain"], headers=chain(fx, "mallory_t1", ("mallory_t0",)))
    assert status == 403, body
    assert reasons(body)[0] == "domain_not_federated"


def test_route_without_action_is_refused(envoy, fx):
    status, _, body = send(envoy["plain"], path="/admin", headers=chain(fx, "t1"))
    assert status == 403, body
    assert reasons(body) == ["invalid_request"]


def mtls(certs, who):
    ctx = ssl.create_default_context(cafile=certs["ca"]["cert"])
    ctx.check_hostname = False  # connecting by IP; the server certificate also names 127.0.0.1
    ctx.load_cert_chain(certs[who]["cert"], certs[who]["key"])
    return ctx


def test_mtls_peer_is_the_current_actor(envoy, fx, certs):
    # Alice's client certificate: attributes.source.principal = Alice's SPIFFE ID = the caller
    status, _, body = send(envoy["tls"], headers=chain(fx, "t1"), tls=mtls(certs, "alice"))
    assert status == 200, body
    assert json.loads(body)["headers"]["x-custody-actor"] == fx["alice"]


def test_mtls_peer_mismatch_is_403(envoy, fx, certs):
    # Bob presents Alice's token over his own connection: sender binding catches it
    status, _, body = send(envoy["tls"], headers=chain(fx, "t1"), tls=mtls(certs, "bob"))
    assert status == 403, body
    assert reasons(body)[0] == "sender_mismatch"


def test_metrics_count_the_decisions(envoy, custody, fx):
    send(envoy["plain"], headers=chain(fx, "t1"))
    conn = http.client.HTTPConnection("127.0.0.1", custody["metrics"], timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    assert 'custody_decisions_total{rpc="check",result="allow",code=""}' in text
    assert 'custody_decisions_total{rpc="check",result="deny",code="scope_escalation"}' in text
    assert "custody_decision_cache_hits_total" in text
    assert "custody_pack_info{version=" in text


def test_decision_log_has_no_tokens(envoy, custody, fx):
    send(envoy["plain"], headers=chain(fx, "t1"))
    log = custody["log"].read_text()
    lines = [json.loads(l) for l in log.splitlines() if l.startswith("{")]
    decisions = [l for l in lines if l.get("event") == "decision"]
    assert decisions and all({"origin", "actors", "action", "decision", "codes", "latency_us"} <= d.keys() for d in decisions)
    for t in ("t0", "t1", "t1_wide"):
        assert fx[t] not in log
        assert fx[t].split(".")[2] not in log  # not even the signature
