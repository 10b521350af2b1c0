"""custody in `--protocol mcp` behind a real Envoy that forwards the request body to ext_authz
(`with_request_body`): the JSON-RPC method, and for `tools/call` the tool name, is the action, so
a token's scope (or a Cedar policy) can allow one tool and not another; malformed protocol input
is a denial with a clear message, never a guess."""

import copy
import json
import os

import pytest

from conftest import EXT_AUTHZ, ROUTER, cluster, free_port, run_envoy, serve, wait_port
from test_envoy import reasons, send

MAX_BODY = 4096


@pytest.fixture(scope="module")
def custody_mcp(binaries, fx, workdir):
    with serve(binaries, fx, workdir, "custody-mcp", ["--protocol", "mcp", "--max-body-bytes", str(MAX_BODY)]) as c:
        yield c


@pytest.fixture(scope="module")
def envoy_mcp(envoy_bin, custody_mcp, upstream, workdir):
    plain, admin = free_port(), free_port()
    authz = copy.deepcopy(EXT_AUTHZ)
    authz["typed_config"]["with_request_body"] = {
        "max_request_bytes": MAX_BODY, "allow_partial_message": True, "pack_as_bytes": True}
    hcm = {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mcp",
        "route_config": {"virtual_hosts": [{"name": "mcp", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
        "http_filters": [authz, ROUTER]}}
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain}},
                           "filter_chains": [{"filters": [hcm]}]}],
            "clusters": [cluster("custody", custody_mcp["port"], True), cluster("upstream", upstream, False)],
        },
    }
    with run_envoy(envoy_bin, workdir, "envoy-mcp", config, admin, os.getpid() % 10000 + 20000) as proc:
        wait_port(plain, proc, "envoy")
        yield {"plain": plain}


def rpc(method, params=None, id_=1):
    body = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body)


def post(port, body, token, extra=None):
    h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token:
        h["authorization"] = f"Bearer {token}"
    h.update(extra or {})
    return send(port, path="/mcp", method="POST", headers=h, body=body)


def test_a_tool_the_token_allows_passes_and_another_is_denied(envoy_mcp, fx, mint):
    token = mint("c.example", {"sub": "user:carol", "aud": fx["audience"],
                               "scope": "initialize tools/list tools/call:get_weather"})
    for body in (rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "t", "version": "1"}}),
                 rpc("tools/list"),
                 rpc("tools/call", {"name": "get_weather", "arguments": {"city": "Oslo"}})):
        status, _, out = post(envoy_mcp["plain"], body, token)
        assert status == 200, (body, out)
        assert json.loads(out)["headers"]["x-custody-origin"] == "c.example|user:carol"
    status, _, out = post(envoy_mcp["plain"], rpc("tools/call", {"name": "delete_repo", "arguments": {}}), token)
    assert status == 403, out
    assert reasons(out)[0] == "scope_missing"
    assert "tools/call:delete_repo" in json.loads(out)["reasons"][0]["message"]


def test_no_token_is_401_before_the_body_is_read(envoy_mcp):
    status, headers, out = post(envoy_mcp["plain"], "[not json", None)
    assert status == 401, out
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("body,why", [
    ('[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]', "batch"),
    ('{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}', "twice"),
    ('{"jsonrpc":"2.0","id":1,"method":"tools/list"', "strict"),
    ('{"jsonrpc":"2.0","id":1,"method":"tools/destroy"}', "not a method"),
    ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}', "params.name"),
    ('{"jsonrpc":"2.0","id":1,"result":{}}', "no `method`"),
    ("", "no JSON-RPC body"),
])
def test_malformed_protocol_input_is_a_clear_denial(envoy_mcp, fx, mint, body, why):
    token = mint("c.example", {"sub": "user:carol", "aud": fx["audience"], "scope": "tools/list tools/call:x"})
    status, _, out = post(envoy_mcp["plain"], body, token)
    assert status == 403, out
    r = json.loads(out)["reasons"][0]
    assert r["code"] == "invalid_request" and why in r["message"], r


def test_a_body_over_the_limit_is_denied_not_truncated(envoy_mcp, fx, mint):
    token = mint("c.example", {"sub": "user:carol", "aud": fx["audience"], "scope": "tools/call:get_weather"})
    big = rpc("tools/call", {"name": "get_weather", "arguments": {"pad": "x" * (MAX_BODY * 2)}})
    status, _, out = post(envoy_mcp["plain"], big, token)
    assert status == 403, out
    assert "over the limit" in json.loads(out)["reasons"][0]["message"]
