"""The MCP Python SDK (PyPI `mcp` 2.3.0) on both ends, custody in between: an `MCPServer`
(streamable HTTP, tools `echo` and `delete_repo`, `tests/e2e/sdk/mcp_server.py`) behind a real
Envoy whose ext_authz is `custody serve --protocol mcp` (the request body forwarded), and the
SDK's `Client` calling tools through Envoy with tokens from a real OpenID provider
(oidc-provider, `tests/e2e/idp`), client-credentials JWTs whose `aud` is the MCP server's resource
identifier (RFC 8707) and whose scope names the tools.

- A token with `tools/call:echo` and not `tools/call:delete_repo` calls `echo`; `delete_repo` is
  an HTTP 403 (`scope_missing`) that the SDK reports as an error.
- The SDK's own OAuth client-credentials provider (`ClientCredentialsOAuthProvider`) starts with
  no token, meets custody's 401, follows `resource_metadata` to the protected-resource metadata
  (RFC 9728) that custody serves on its HTTP port (Envoy routes `/.well-known/oauth-protected-
  resource` there with ext_authz off), finds the provider, gets a token for the resource and
  retries. A 403 for a missing scope says `insufficient_scope`; the SDK's step-up asks the
  provider for the wider scope, which this client is not granted, so the call stays denied.
- A token minted for another MCP server (its `aud` another resource) is `audience_mismatch`.

The SDK client mostly speaks the 2025-11-25 handshake (`mode="legacy"`); its default
`mode="auto"` first sends the 2026-07-28 `server/discover`, which custody's MCP mode names as an
action like any other method (tested too).
"""

import asyncio
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from conftest import IN_CI, body_forwarding_config, cluster, free_port, run_envoy, serve, wait_port
from test_idp import IDP_DIR, KEYS

SDK_DIR = Path(__file__).resolve().parent / "sdk"
MAX_BODY = 4096
PRM_PATH = "/.well-known/oauth-protected-resource"
SESSION = ["initialize", "notifications/initialized", "tools/list", "server/discover"]
ALL_SCOPES = [*SESSION, "tools/call:echo", "tools/call:delete_repo"]
CLIENTS = {
    # may call echo, never delete_repo (the provider silently leaves out what it may not have)
    "mcp-client": {"secret": "mcp-secret", "scope": " ".join([*SESSION, "tools/call:echo"])},
    # may call both
    "mcp-admin": {"secret": "admin-secret", "scope": " ".join(ALL_SCOPES)},
}


def decode(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


@pytest.fixture(scope="module")
def ports():
    return {"envoy": free_port(), "admin": free_port(), "mcp": free_port(), "other": free_port()}


@pytest.fixture(scope="module")
def resource(ports):
    """The MCP server's resource identifier: its URL as clients reach it, through Envoy."""
    return f"http://127.0.0.1:{ports['envoy']}/mcp"


class Provider:
    """oidc-provider with the MCP resources and clients (`tests/e2e/idp/provider.mjs`, `mcp`)."""

    def __init__(self, workdir, resources):
        self.port, self.control = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "idp-sdk-mcp.json"
        self.log = workdir / "idp-sdk-mcp.log"
        self.resources = resources
        self.proc = None

    def start(self):
        self.config.write_text(json.dumps({
            "port": self.port, "control_port": self.control, "keys": [KEYS["es-1"], KEYS["rs-1"]],
            "audience": {"orders": "unused", "agents": "unused"},
            "mcp": {"resources": self.resources, "clients": CLIENTS}}))
        log = open(self.log, "a")
        self.proc = subprocess.Popen(["node", str(IDP_DIR / "provider.mjs"), str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=IDP_DIR)
        wait_port(self.port, self.proc, "oidc-provider")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def token(self, client, resource, scope=" ".join(ALL_SCOPES)):
        """A client-credentials access token for `resource`, asked for directly (not by the SDK)."""
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client,
                                       "client_secret": CLIENTS[client]["secret"], "resource": resource,
                                       "scope": scope})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/token", body=body, headers={"content-type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        out = json.loads(r.read())
        conn.close()
        assert r.status == 200, out
        return out["access_token"]


@pytest.fixture(scope="module")
def provider(workdir, ports, resource):
    if shutil.which("node") is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        if IN_CI:
            pytest.fail("node or tests/e2e/idp/node_modules missing (tests/e2e/setup.sh installs them)")
        pytest.skip("node or oidc-provider not installed (run tests/e2e/setup.sh)")
    p = Provider(workdir, [resource, f"http://127.0.0.1:{ports['other']}/mcp"])
    p.start()
    yield p
    p.stop()


def resource_item(resource, issuer):
    return f'''
resource "{resource}" {{
  authorization_servers ["{issuer}"]
  scopes {json.dumps(ALL_SCOPES)}
}}
'''


@pytest.fixture(scope="module")
def pack(binaries, fx, workdir, provider, resource):
    """The fixture pack plus `idp.example` (keys by the provider's discovery), federated into the
    local c.example for the MCP methods, and the MCP server's protected-resource metadata (the
    `resource` item); `custody check` must load it."""
    pack = workdir / "sdk-mcp-pack"
    if pack.exists():
        shutil.rmtree(pack)
    shutil.copytree(fx["pack"], pack)
    base = (pack / "pack.trust").read_text() + f'''
domain "idp.example" {{
  issuer "{provider.issuer}"
  discovery "{provider.issuer}"
  refresh 30s
}}
federate "idp.example" -> "c.example" {{ scopes {json.dumps(ALL_SCOPES)} }}
'''
    (pack / "pack.trust").write_text(base + resource_item(resource, provider.issuer))
    check = subprocess.run([binaries["custody"], "check", "--policies", str(pack)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return {"dir": pack, "prm": True, "check": check.stdout + check.stderr}


@pytest.fixture(scope="module")
def mcp_server(workdir, ports):
    log = open(workdir / "sdk-mcp-server.log", "w")
    proc = subprocess.Popen([sys.executable, str(SDK_DIR / "mcp_server.py"), str(ports["mcp"])],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(ports["mcp"], proc, "MCP server")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def custody_mcp(binaries, fx, workdir, pack, resource):
    with serve(binaries, {**fx, "pack": str(pack["dir"]), "audience": resource}, workdir, "custody-sdk-mcp",
               ["--protocol", "mcp", "--max-body-bytes", str(MAX_BODY)]) as c:
        yield c


@pytest.fixture(scope="module")
def envoy(envoy_bin, custody_mcp, mcp_server, workdir, ports):
    config = body_forwarding_config(
        ports["envoy"], ports["admin"], "sdk_mcp", {"prefix": PRM_PATH}, "custody_http", "mcp",
        [cluster("custody", custody_mcp["port"], True),
         cluster("custody_http", custody_mcp["metrics"], False),
         cluster("mcp", ports["mcp"], False)],
        MAX_BODY)
    with run_envoy(envoy_bin, workdir, "envoy-sdk-mcp", config, ports["admin"], os.getpid() % 10000 + 50000) as proc:
        wait_port(ports["envoy"], proc, "envoy")
        yield ports["envoy"]


# --- the SDK client -------------------------------------------------------------------------

class Seen:
    """Every HTTP exchange the SDK's HTTP client made (an httpx2 response hook): method, URL,
    status, the `www-authenticate` header and the body."""

    def __init__(self):
        self.exchanges = []

    async def __call__(self, response):
        body = await response.aread()
        self.exchanges.append({"method": response.request.method, "url": str(response.request.url),
                               "status": response.status_code,
                               "www": response.headers.get("www-authenticate"),
                               "request": response.request.content.decode(errors="replace"),
                               "body": body.decode(errors="replace")})

    def denials(self):
        return [e for e in self.exchanges if e["status"] in (401, 403)]

    def reasons(self, exchange):
        return [r["code"] for r in json.loads(exchange["body"])["reasons"]]


class Memory:
    """`mcp.client.auth.TokenStorage` in memory."""

    def __init__(self):
        self.tokens = self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def session(url, seen, *, token=None, auth=None):
    """The SDK's `Client` over its streamable HTTP transport, on an httpx2 client from the SDK's
    own factory with `token` as a bearer header or `auth` (an SDK OAuth provider)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = {"authorization": f"Bearer {token}"} if token else None
    http = create_mcp_http_client(headers=headers, auth=auth)
    http.event_hooks["response"].append(seen)
    return http, Client(streamable_http_client(url, http_client=http), mode="legacy", read_timeout_seconds=20)


def text(result):
    assert not result.is_error, result
    return result.content[0].text


async def call_both(url, seen, **kw):
    """echo, then delete_repo: (echo's text, delete_repo's text or the MCPError it raised)."""
    from mcp.shared.exceptions import MCPError

    http, client = session(url, seen, **kw)
    async with http:
        async with client:
            echoed = text(await client.call_tool("echo", {"text": "hi"}))
            try:
                deleted = text(await client.call_tool("delete_repo", {"name": "r1"}))
            except MCPError as e:
                deleted = e
    return echoed, deleted


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 40))


def fails(coro):
    """The exceptions `coro` fails with, out of anyio's exception groups."""
    try:
        run(coro)
    except BaseException as e:  # noqa: BLE001 (an ExceptionGroup is a BaseException)
        out, todo = [], [e]
        while todo:
            x = todo.pop()
            if isinstance(x, BaseExceptionGroup):
                todo.extend(x.exceptions)
            else:
                out.append(x)
        return out
    raise AssertionError("the client did not fail")


# --- tests ----------------------------------------------------------------------------------

def test_a_token_for_echo_calls_echo_and_delete_repo_is_a_403(envoy, provider, resource):
    from mcp.shared.exceptions import MCPError

    token = provider.token("mcp-client", resource)
    claims = decode(token)
    assert claims["aud"] == resource and "tools/call:delete_repo" not in claims["scope"].split(), claims
    seen = Seen()
    echoed, deleted = run(call_both(resource, seen, token=token))
    assert echoed == "echo: hi (origin idp.example|mcp-client)"
    assert isinstance(deleted, MCPError), deleted
    [denied] = seen.denials()
    assert denied["status"] == 403 and '"delete_repo"' in denied["request"], denied
    assert seen.reasons(denied) == ["scope_missing"]
    assert "tools/call:delete_repo" in denied["body"]
    # every method the SDK sent went through custody as its own action, and was allowed
    methods = [json.loads(e["request"])["method"] for e in seen.exchanges if e["status"] < 300]
    assert methods[:3] == ["initialize", "notifications/initialized", "tools/call"], methods


def test_a_token_with_delete_repo_deletes(envoy, provider, resource):
    seen = Seen()
    echoed, deleted = run(call_both(resource, seen, token=provider.token("mcp-admin", resource)))
    assert echoed == "echo: hi (origin idp.example|mcp-admin)"
    assert deleted == "deleted r1"
    assert seen.denials() == []


def test_the_sdk_default_mode_starts_with_server_discover(envoy, provider, resource):
    """`Client(mode="auto")`, the SDK's default, first sends the 2026-07-28 `server/discover`
    probe: custody's MCP mode takes it as the action `server/discover`, which the token's scope
    carries, and the tool call goes on. A token without it is refused that method (a clear
    `scope_missing`), and the SDK falls back to the `initialize` handshake."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    seen = Seen()

    async def go():
        http = create_mcp_http_client(headers={"authorization": f"Bearer {provider.token('mcp-admin', resource)}"})
        http.event_hooks["response"].append(seen)
        async with http:
            async with Client(streamable_http_client(resource, http_client=http), read_timeout_seconds=20) as client:
                return text(await client.call_tool("echo", {"text": "auto"}))

    assert run(go()) == "echo: auto (origin idp.example|mcp-admin)"
    assert seen.denials() == []
    methods = [json.loads(e["request"])["method"] for e in seen.exchanges]
    assert methods[0] == "server/discover" and "tools/call" in methods, methods


def test_a_token_for_another_mcp_server_is_audience_mismatch(envoy, provider, resource, ports):
    from mcp.shared.exceptions import MCPError

    other = f"http://127.0.0.1:{ports['other']}/mcp"
    token = provider.token("mcp-admin", other)
    assert decode(token)["aud"] == other
    seen = Seen()
    errors = fails(call_both(resource, seen, token=token))
    assert any(isinstance(e, MCPError) for e in errors), errors
    [denied] = seen.denials()
    assert json.loads(denied["request"])["method"] == "initialize"
    assert seen.reasons(denied) == ["audience_mismatch"], denied
    assert denied["status"] == 401, denied


def prm_expected(resource, provider):
    return {"resource": resource, "authorization_servers": [provider.issuer], "scopes_supported": ALL_SCOPES,
            "bearer_methods_supported": ["header"]}


def get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def require_prm(pack):
    assert pack["prm"], ("this custody does not load the `resource` trust item (protected-resource metadata, "
                         f"RFC 9728): {pack['check'][-500:]}")


def test_the_protected_resource_metadata_is_served_through_envoy(envoy, provider, resource, pack):
    require_prm(pack)
    for path in (PRM_PATH + "/mcp", PRM_PATH):
        status, headers, body = get(envoy, path)
        assert status == 200, (path, body)
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == prm_expected(resource, provider), path


def test_401_and_403_point_at_the_metadata(envoy, provider, resource, pack, ports):
    require_prm(pack)
    metadata = f"http://127.0.0.1:{envoy}{PRM_PATH}/mcp"
    seen = Seen()
    fails(call_both(resource, seen))
    first = seen.exchanges[0]
    assert first["status"] == 401 and first["www"] == f'Bearer realm="custody", resource_metadata="{metadata}"', first
    seen = Seen()
    run(call_both(resource, seen, token=provider.token("mcp-client", resource)))
    [denied] = seen.denials()
    assert denied["www"] == (f'Bearer realm="custody", error="insufficient_scope", scope="tools/call:delete_repo", '
                             f'resource_metadata="{metadata}"'), denied
    # a token for another MCP server: a 401 that points at this server's metadata too
    seen = Seen()
    fails(call_both(resource, seen, token=provider.token("mcp-admin", f"http://127.0.0.1:{ports['other']}/mcp")))
    [denied] = seen.denials()
    assert seen.reasons(denied) == ["audience_mismatch"]
    assert denied["www"] == (f'Bearer realm="custody", error="invalid_token", error_description="audience_mismatch", '
                             f'resource_metadata="{metadata}"'), denied


def test_the_sdk_oauth_client_discovers_the_provider_from_the_401(envoy, provider, resource, pack):
    """`ClientCredentialsOAuthProvider` with no token: 401 → metadata → provider → token → retry."""
    from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
    from mcp.shared.exceptions import MCPError

    require_prm(pack)
    storage = Memory()
    auth = ClientCredentialsOAuthProvider(server_url=resource, storage=storage, client_id="mcp-client",
                                          client_secret=CLIENTS["mcp-client"]["secret"],
                                          token_endpoint_auth_method="client_secret_post", issuer=provider.issuer)
    seen = Seen()
    echoed, deleted = run(call_both(resource, seen, auth=auth))
    assert echoed == "echo: hi (origin idp.example|mcp-client)"
    flow = [(e["method"], e["url"], e["status"]) for e in seen.exchanges]
    metadata = f"http://127.0.0.1:{envoy}{PRM_PATH}/mcp"
    assert flow[0] == ("POST", resource, 401), flow
    assert flow[1] == ("GET", metadata, 200), flow
    assert ("POST", f"{provider.issuer}/token", 200) in flow, flow
    token = storage.tokens.access_token
    assert decode(token)["aud"] == resource
    assert "tools/call:delete_repo" not in decode(token)["scope"].split()
    # delete_repo: custody's 403 says insufficient_scope; the SDK steps up (asks the provider for
    # the union of scopes), the provider does not grant delete_repo to this client, and the
    # retried call is denied again
    assert isinstance(deleted, MCPError), deleted
    denials = [e for e in seen.denials() if '"delete_repo"' in e["request"]]
    assert [d["status"] for d in denials] == [403, 403], flow
    assert all(seen.reasons(d) == ["scope_missing"] for d in denials)
    assert sum(1 for f in flow if f[1] == f"{provider.issuer}/token") == 2, flow
