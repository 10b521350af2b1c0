"""A second outside client: Python grpcio with the ext_authz stubs from `xds-protos`, calling
custody's Check directly (no Envoy)."""

import json

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from conftest import ACTION_HEADER


@pytest.fixture(scope="module")
def stub(custody):
    channel = grpc.insecure_channel(f"127.0.0.1:{custody['port']}")
    grpc.channel_ready_future(channel).result(timeout=10)
    yield external_auth_pb2_grpc.AuthorizationStub(channel)
    channel.close()


def check_request(headers, principal=""):
    req = external_auth_pb2.CheckRequest()
    http = req.attributes.request.http
    http.method = "GET"
    http.path = "/orders/42"
    http.host = "orders.c.example"
    for k, v in headers.items():
        http.headers[k] = v
    req.attributes.source.principal = principal
    return req


def test_check_allows(stub, fx):
    headers = {"authorization": f"Bearer {fx['t1']}", "custody-chain": fx["t0"], ACTION_HEADER: "orders:read"}
    resp = stub.Check(check_request(headers, fx["alice"]), timeout=5)
    assert resp.status.code == 0
    got = {h.header.key: h.header.value for h in resp.ok_response.headers}
    assert got["x-custody-origin"] == "a.example|user:alice"
    assert got["x-custody-actor"] == fx["alice"]
    assert got["x-custody-depth"] == "2"
    meta = resp.dynamic_metadata
    assert list(meta["actors"]) == [fx["bob"], fx["alice"]]
    assert meta["cross_domain"] is True


def test_check_denies(stub, fx):
    headers = {"authorization": f"Bearer {fx['t1_wide']}", "custody-chain": fx["t0"], ACTION_HEADER: "orders:read"}
    resp = stub.Check(check_request(headers), timeout=5)
    assert resp.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert resp.denied_response.status.code == 403
    body = json.loads(resp.denied_response.body)
    assert body["reasons"][0]["code"] == "scope_escalation"
    assert body["reasons"][0]["hop"] == 1


def test_check_refuses_request_time(stub, fx):
    headers = {"authorization": f"Bearer {fx['t1']}", "custody-chain": fx["t0"], ACTION_HEADER: "orders:read",
               "custody-now": "1767225600"}
    resp = stub.Check(check_request(headers), timeout=5)
    assert resp.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert json.loads(resp.denied_response.body)["reasons"][0]["code"] == "invalid_request"


def test_malformed_message_gets_a_clean_status(custody):
    channel = grpc.insecure_channel(f"127.0.0.1:{custody['port']}")
    call = channel.unary_unary("/envoy.service.auth.v3.Authorization/Check",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        call(b"\x0a\x05\xff\xff\xff\xff\xff", timeout=5)
    assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    channel.close()
