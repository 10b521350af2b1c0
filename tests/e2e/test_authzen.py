"""The AuthZEN Authorization API 1.0 endpoints of `custody serve`, called from outside with a plain
HTTP client (urllib): the HTTP port is `--metrics-listen` (alias `--http-listen`), the PDP metadata
needs `--authzen-base-url`. The tokens are the fixture's (crates/sidecar/examples/e2e_fixture.rs):
Bob (a.example) for user Alice, then Alice-agent (b.example) for the orders service."""

import json
import urllib.error
import urllib.request

import pytest

from conftest import serve

BASE_URL = "https://pdp.c.example"


@pytest.fixture(scope="module")
def pdp(binaries, fx, workdir):
    with serve(binaries, fx, workdir, "custody-authzen", ["--authzen-base-url", BASE_URL]) as c:
        yield c


def call(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one HTTP call; error statuses are answers too."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def evaluation(fx, subject, action, tokens):
    return {"subject": {"type": "agent", "id": subject},
            "action": {"name": action},
            "resource": {"type": "Order", "id": "42"},
            "context": {"tokens": tokens, "time": "1985-10-26T01:22-07:00"}}


def test_evaluation_allows_a_valid_chain(pdp, fx):
    status, headers, body = call(pdp["metrics"], "POST", "/access/v1/evaluation",
                                 evaluation(fx, fx["alice"], "orders:read", [fx["t0"], fx["t1"]]),
                                 {"X-Request-ID": "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"})
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"] == "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    answer = json.loads(body)
    assert answer["decision"] is True, answer
    ctx = answer["context"]
    assert ctx["reason_codes"] == [] and ctx["reasons"] == []
    assert ctx["chain"] == {"origin": "a.example|user:alice", "actors": [fx["bob"], fx["alice"]],
                            "depth": 2, "domains": ["a.example", "b.example", "c.example"]}
    assert len(ctx["pack_version"]) == 64


def test_evaluation_denies_with_reasons(pdp, fx):
    for tokens, action, subject, code in [
        ([fx["t0"], fx["t1_wide"]], "orders:read", fx["alice"], "scope_escalation"),
        ([fx["t0"], fx["t1"]], "orders:write", fx["alice"], "scope_missing"),
        ([fx["t0"], fx["t1_expired"]], "orders:read", fx["alice"], "expired"),
        ([fx["t0"], fx["t1"]], "orders:read", fx["bob"], "subject_mismatch"),
    ]:
        status, _, body = call(pdp["metrics"], "POST", "/access/v1/evaluation",
                               evaluation(fx, subject, action, tokens))
        assert status == 200, body
        answer = json.loads(body)
        assert answer["decision"] is False, (code, answer)
        assert answer["context"]["reason_codes"][0] == code, answer
        assert "chain" not in answer["context"]


def test_batch_with_defaults_and_short_circuit(pdp, fx):
    request = {"subject": {"type": "agent", "id": fx["alice"]},
               "resource": {"type": "Order", "id": "42"},
               "context": {"tokens": [fx["t0"], fx["t1"]]},
               "evaluations": [{"action": {"name": "orders:read"}},
                               {"action": {"name": "orders:write"}},
                               {"action": {"name": "orders:read"},
                                "resource": {"type": "Order", "id": "7"}}]}
    expected = {"execute_all": [True, False, True], "deny_on_first_deny": [True, False],
                "permit_on_first_permit": [True]}
    for semantic, want in expected.items():
        request["options"] = {"evaluations_semantic": semantic}
        status, _, body = call(pdp["metrics"], "POST", "/access/v1/evaluations", request)
        assert status == 200, body
        got = [e["decision"] for e in json.loads(body)["evaluations"]]
        assert got == want, semantic


def test_refusals(pdp, fx):
    port = pdp["metrics"]
    good = json.dumps(evaluation(fx, fx["alice"], "orders:read", [fx["t0"], fx["t1"]])).encode()
    # 415 without application/json
    req = urllib.request.Request(f"http://127.0.0.1:{port}/access/v1/evaluation", data=good, method="POST",
                                 headers={"content-type": "text/plain", "x-request-id": "r1"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 415
    assert e.value.headers["x-request-id"] == "r1"
    assert json.loads(e.value.read())["error"]["status"] == 415
    # 400: not JSON, a duplicate key, no subject
    for bad in [b"{", b'{"subject": {"type": "a", "type": "b"}}',
                json.dumps({"action": {"name": "a"}, "resource": {"type": "t", "id": "i"}}).encode()]:
        status, _, body = call(port, "POST", "/access/v1/evaluation", bad)
        assert status == 400, bad
        assert json.loads(body)["error"]["status"] == 400
    # 413 over the 256 KiB request limit
    big = evaluation(fx, fx["alice"], "orders:read", [fx["t0"], fx["t1"]])
    big["context"]["pad"] = " " * (256 * 1024)
    status, _, _ = call(port, "POST", "/access/v1/evaluation", big)
    assert status == 413
    # 404, 405
    assert call(port, "GET", "/access/v1/nothing")[0] == 404
    assert call(port, "GET", "/access/v1/evaluation")[0] == 405
    # the metrics are still served on the same port, and count the evaluations
    assert call(port, "POST", "/access/v1/evaluation", good)[0] == 200
    status, headers, body = call(port, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert 'custody_decisions_total{rpc="authzen",result="allow",code=""}' in body.decode()


def test_metadata(pdp):
    status, headers, body = call(pdp["metrics"], "GET", "/.well-known/authzen-configuration",
                                 headers={"Host": "attacker.example"})
    assert status == 200
    assert json.loads(body) == {
        "policy_decision_point": BASE_URL,
        "access_evaluation_endpoint": f"{BASE_URL}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{BASE_URL}/access/v1/evaluations",
    }


def test_no_metadata_without_a_base_url(custody):
    """The session's sidecar runs without --authzen-base-url: no metadata (never from Host)."""
    status, _, body = call(custody["metrics"], "GET", "/.well-known/authzen-configuration")
    assert status == 404
    assert "--authzen-base-url" in json.loads(body)["error"]["message"]
