"""The A2A Python SDK (PyPI `a2a-sdk` 1.3.0) on both ends, custody in between: an echo agent
(`tests/e2e/sdk/a2a_agent.py`, the SDK's JSON-RPC server with its A2A 0.3 compatibility on)
behind a real Envoy whose ext_authz is `custody serve --protocol a2a` (the request body
forwarded), and the SDK's client resolving the agent's signed Agent Card through Envoy and
sending a message with a delegation chain (`authorization: Bearer <hop>`, `custody-chain:
<origin>`).

- The card is signed with the SDK's own signer (`a2a.utils.signing.create_agent_card_signer`,
  EdDSA, b.example's key and kid), served by the SDK, checked by the SDK's verifier on the client,
  and verified by `custody card verify` against the trust domain b.example; one changed member
  and custody refuses it.
- The SDK client sends `message/send` (A2A 0.3: the card's interface says `protocolVersion`
  0.3, since custody's `--protocol a2a` names the 0.3 methods) and the agent answers; the same
  with a hop that widens the origin's scope is a 403 `scope_escalation`, an error in the client.
"""

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import time
import sys
from pathlib import Path

import pytest

from conftest import body_forwarding_config, cluster, free_port, run_envoy, serve, wait_port

SDK_DIR = Path(__file__).resolve().parent / "sdk"
MAX_BODY = 8192
CARD_PATH = "/.well-known/agent-card.json"
SCOPES = ["message/send", "tasks/get"]


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def decode(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


@pytest.fixture(scope="module")
def ports():
    return {"envoy": free_port(), "admin": free_port(), "agent": free_port()}


@pytest.fixture(scope="module")
def pack(fx, workdir):
    """The fixture pack with the A2A methods federated along a.example -> b.example -> c.example."""
    pack = workdir / "sdk-a2a-pack"
    if pack.exists():
        shutil.rmtree(pack)
    shutil.copytree(fx["pack"], pack)
    trust = (pack / "pack.trust").read_text()
    wider = json.dumps(["orders:read", "orders:write", *SCOPES]).replace('","', '", "')
    trust, n = re.subn(r'scopes \["orders:read", "orders:write"\]', f"scopes {wider}", trust)
    assert n == 2, trust
    (pack / "pack.trust").write_text(trust)
    return pack


@pytest.fixture(scope="module")
def signing_key(pack):
    """b.example's signing key (the kit's deterministic seed, checked against the pack's JWKS)
    as the private and public JWKs PyJWT takes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    seed = bytes([2] * 32)
    x = b64(Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    [published] = [k for k in json.loads((pack / "keys" / "b.example.jwks").read_text())["keys"] if k.get("x") == x]
    public = {"kty": "OKP", "crv": "Ed25519", "kid": published["kid"], "x": x}
    return {"private": {**public, "d": b64(seed)}, "public": public}


def agent_card(url):
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill

    return AgentCard(
        name="echo", description="Echoes what it is sent", version="1.0.0",
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=url, protocol_version="0.3")],
        provider=AgentProvider(url="https://b.example", organization="B Example"),
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echo the text", tags=["echo"])])


@pytest.fixture(scope="module")
def signed_card(ports, signing_key, workdir):
    """The card signed by the SDK's signer, in the SDK's JSON form (what it hands a server)."""
    from google.protobuf.json_format import MessageToDict
    from jwt.api_jwk import PyJWK

    from a2a.utils.signing import create_agent_card_signer

    card = agent_card(f"http://127.0.0.1:{ports['envoy']}/")
    sign = create_agent_card_signer(PyJWK(signing_key["private"]),
                                    {"kid": signing_key["private"]["kid"], "alg": "EdDSA", "typ": "JOSE"})
    path = workdir / "sdk-a2a-card.json"
    path.write_text(json.dumps(MessageToDict(sign(card)), indent=1))
    return path


@pytest.fixture(scope="module")
def agent(workdir, ports, signed_card):
    log = open(workdir / "sdk-a2a-agent.log", "w")
    proc = subprocess.Popen([sys.executable, str(SDK_DIR / "a2a_agent.py"), str(ports["agent"]), str(signed_card)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(ports["agent"], proc, "A2A agent")
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
def custody_a2a(binaries, fx, workdir, pack):
    with serve(binaries, {**fx, "pack": str(pack)}, workdir, "custody-sdk-a2a",
               ["--protocol", "a2a", "--max-body-bytes", str(MAX_BODY)]) as c:
        yield c


@pytest.fixture(scope="module")
def envoy(envoy_bin, custody_a2a, agent, workdir, ports):
    """The Agent Card is public (ext_authz off on its route); everything else goes through custody."""
    config = body_forwarding_config(
        ports["envoy"], ports["admin"], "sdk_a2a", {"path": CARD_PATH}, "agent", "agent",
        [cluster("custody", custody_a2a["port"], True), cluster("agent", ports["agent"], False)],
        MAX_BODY)
    with run_envoy(envoy_bin, workdir, "envoy-sdk-a2a", config, ports["admin"], os.getpid() % 10000 + 40000) as proc:
        wait_port(ports["envoy"], proc, "envoy")
        yield ports["envoy"]


@pytest.fixture(scope="module")
def chain(fx, mint):
    """`chain(hop_scope)`: the fixture's two-hop chain (a.example origin for bob's agent, a
    b.example hop by alice's agent to this service) with `message/send tasks/get` at the origin
    and `hop_scope` at the hop: (presented, origin)."""
    t0, t1 = decode(fx["t0"]), decode(fx["t1"])
    drop = ("iss", "iat", "exp")
    # explicit times: a hop minted seconds after the origin must still expire before it
    # (a default `exp` from a later clock reading would be `expiry_extended`)
    now = int(time.time())
    origin_exp = now + 900
    origin = mint("a.example", {**{k: v for k, v in t0.items() if k not in drop}, "scope": " ".join(SCOPES),
                                "iat": now - 10, "exp": origin_exp})

    def make(hop_scope):
        hop = {**{k: v for k, v in t1.items() if k not in drop}, "scope": hop_scope,
               "iat": int(time.time()) - 5, "exp": origin_exp - 1}
        return mint("b.example", hop), origin

    return make


class Seen:
    """Every HTTP exchange of the SDK client's httpx client (a response hook)."""

    def __init__(self):
        self.exchanges = []

    async def __call__(self, response):
        body = await response.aread()
        self.exchanges.append({"method": response.request.method, "url": str(response.request.url),
                               "status": response.status_code, "request": response.request.content,
                               "body": body.decode(errors="replace")})


async def send(url, presented, origin, seen, verifier=None):
    """Resolve the card through Envoy with the SDK, check its signature with the SDK's verifier,
    send `hi` with the chain's headers; the agent's answer (text)."""
    import httpx

    from a2a.client import ClientConfig, ClientFactory
    from a2a.helpers import get_message_text, new_text_message
    from a2a.types import SendMessageRequest

    http = httpx.AsyncClient(timeout=20, headers={"authorization": f"Bearer {presented}", "custody-chain": origin},
                             event_hooks={"response": [seen]})
    async with http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False))
        client = await factory.create_from_url(url, signature_verifier=verifier)
        answers = [get_message_text(e.message) async for e in
                   client.send_message(SendMessageRequest(message=new_text_message("hi")))]
    return answers


def sdk_verifier(signing_key):
    from jwt.api_jwk import PyJWK

    from a2a.utils.signing import create_signature_verifier

    key = PyJWK(signing_key["public"])
    asked = []

    def key_for(kid, jku):
        asked.append(kid)
        return key if kid == signing_key["public"]["kid"] else None

    verifier = create_signature_verifier(key_for, ["EdDSA"])
    verifier.asked = asked
    return verifier


def test_message_send_with_a_delegation_chain_is_answered(envoy, chain, signing_key):
    presented, origin = chain("message/send")
    seen = Seen()
    verifier = sdk_verifier(signing_key)
    answers = asyncio.run(asyncio.wait_for(send(f"http://127.0.0.1:{envoy}/", presented, origin, seen, verifier), 30))
    assert verifier.asked == [signing_key["public"]["kid"]], "the SDK checked the card's signature"
    assert answers == ["echo: hi (origin a.example|user:alice)"]
    [rpc] = [e for e in seen.exchanges if e["method"] == "POST"]
    assert rpc["status"] == 200
    assert json.loads(rpc["request"])["method"] == "message/send", rpc["request"]


def test_a_hop_that_widens_the_scope_is_denied(envoy, chain):
    from a2a.client.errors import A2AClientError

    presented, origin = chain("message/send tasks/get tasks/cancel")
    seen = Seen()
    with pytest.raises(A2AClientError) as e:
        asyncio.run(asyncio.wait_for(send(f"http://127.0.0.1:{envoy}/", presented, origin, seen), 30))
    assert "403" in str(e.value), e.value
    [rpc] = [x for x in seen.exchanges if x["method"] == "POST"]
    assert rpc["status"] == 403 and json.loads(rpc["request"])["method"] == "message/send"
    assert [r["code"] for r in json.loads(rpc["body"])["reasons"]] == ["scope_escalation"], rpc["body"]


def card_verify(binaries, pack, card):
    return subprocess.run([binaries["custody"], "card", "verify", str(card), "--policies", str(pack), "--json"],
                          capture_output=True, text=True)


def test_the_sdk_signed_card_verifies_with_custody(binaries, pack, signed_card, signing_key):
    out = card_verify(binaries, pack, signed_card)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["verified"] and report["domain"] == "b.example", report
    assert report["signatures"] == [{"alg": "EdDSA", "kid": signing_key["public"]["kid"], "verified": True}]
    assert {"name", "skills", "supportedInterfaces", "provider"} <= set(report["covered"])


@pytest.mark.parametrize("change", ["skill", "endpoint", "signature"])
def test_a_tampered_card_is_refused(binaries, pack, signed_card, workdir, change):
    card = json.loads(signed_card.read_text())
    if change == "skill":
        card["skills"][0]["description"] = "delete every repository"
    elif change == "endpoint":
        card["supportedInterfaces"][0]["url"] = "https://evil.example/"
    else:
        sig = card["signatures"][0]["signature"]
        card["signatures"][0]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    path = workdir / f"sdk-a2a-card-{change}.json"
    path.write_text(json.dumps(card))
    out = card_verify(binaries, pack, path)
    assert out.returncode == 1, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert not report["verified"]
    assert "does not verify" in report["signatures"][0]["error"], report
    text = subprocess.run([binaries["custody"], "card", "verify", str(path), "--policies", str(pack)],
                          capture_output=True, text=True)
    assert text.returncode == 1 and "NOT verified" in text.stdout, text.stdout + text.stderr


def test_the_card_the_sdk_serves_carries_members_its_signature_does_not_cover(envoy, binaries, pack, signing_key,
                                                                              workdir):
    """The SDK's card route adds A2A 0.3 members (`url`, `protocolVersion`, `preferredTransport`)
    to the signed card it serves. The SDK's verifier parses the card back into its 1.0 form,
    drops them and accepts; custody verifies the JSON as served and refuses it."""
    import urllib.request

    from google.protobuf.json_format import ParseDict

    from a2a.types import AgentCard

    with urllib.request.urlopen(f"http://127.0.0.1:{envoy}{CARD_PATH}", timeout=10) as r:
        served = json.loads(r.read())
    assert {"url", "protocolVersion", "preferredTransport"} <= set(served), served
    sdk_verifier(signing_key)(ParseDict(served, AgentCard(), ignore_unknown_fields=True))
    path = workdir / "sdk-a2a-card-served.json"
    path.write_text(json.dumps(served))
    out = card_verify(binaries, pack, path)
    assert out.returncode == 1, out.stdout
    report = json.loads(out.stdout)
    assert not report["verified"] and {"url", "protocolVersion", "preferredTransport"} <= set(report["covered"])
