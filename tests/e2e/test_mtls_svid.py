"""Proving the caller through a real Envoy (DESIGN.md "Proving the caller"): Envoy terminates
mTLS and, with `include_peer_certificate`, forwards whatever client certificate it got;
custody validates it itself against the `x509-svid` authorities of the SPIFFE bundles in its
pack (a test CA per trust domain, made here with `cryptography`). Envoy's own validation is set
to accept untrusted chains, so every verdict below is custody's. The same sidecar checks WIMSE
WIT + WPT proofs from their headers, against the target authority it was started with (never
`Host`).

Each case asserts the HTTP status and custody's reason code."""

import base64
import datetime
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import ACTION_HEADER, EXT_AUTHZ, cluster, free_port, hcm, run_envoy, serve, wait_port

AUTHORITY = "https://orders.c.example"
PATH = "/orders/42"
NOW = datetime.datetime.now(datetime.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def usage(**on):
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                 encipher_only=False, decipher_only=False)
    flags.update(on)
    return x509.KeyUsage(**flags)


class Ca:
    """A self-signed CA (EC P-256) that issues leaves."""

    def __init__(self, cn):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - datetime.timedelta(days=1))
                     .not_valid_after(NOW + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, sans, ca=False, not_after=None, key_usage=None, eku=ExtendedKeyUsageOID.CLIENT_AUTH):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name("workload")).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - datetime.timedelta(hours=2))
             .not_valid_after(not_after or NOW + datetime.timedelta(hours=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(key_usage or usage(digital_signature=True), critical=True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, b.sign(self.key, hashes.SHA256())

    def bundle_entry(self):
        """The SPIFFE bundle entry (`x509-svid`) naming this CA as an authority."""
        n = self.key.public_key().public_numbers()
        b64 = lambda i: base64.urlsafe_b64encode(i.to_bytes(32, "big")).rstrip(b"=").decode()
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {"use": "x509-svid", "kty": "EC", "crv": "P-256", "x": b64(n.x), "y": b64(n.y),
                "x5c": [base64.b64encode(der).decode()]}


def uri(text):
    return x509.UniformResourceIdentifier(text)


@pytest.fixture(scope="module")
def world(binaries, fx, workdir, envoy_bin, upstream):
    """The pack with bundles, the sidecar, an Envoy with an mTLS listener forwarding client
    certificates, and what the tests present."""
    d = workdir / "svid"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    pack = d / "pack"
    shutil.copytree(fx["pack"], pack)
    cas = {"a.example": Ca("a.example CA"), "b.example": Ca("b.example CA")}
    # b.example's WIT signing key: an ES256 key pair made by `custody keygen`
    subprocess.run([binaries["custody"], "keygen", "--kid", "b-wit", "--alg", "ES256",
                    "--private", str(d / "b-wit.jwk"), "--public", str(d / "b-wit.jwks")],
                   check=True, capture_output=True)
    wit_public = json.loads((d / "b-wit.jwks").read_text())["keys"][0]
    for domain, ca in cas.items():
        path = pack / "keys" / f"{domain}.jwks"
        keys = json.loads(path.read_text())["keys"]
        for k in keys:
            k["use"] = "jwt-svid"  # the domain's token key, in a SPIFFE bundle
        keys.append(ca.bundle_entry())
        if domain == "b.example":
            keys.append({**wit_public, "use": "wit-svid"})
        path.write_text(json.dumps({"spiffe_sequence": 1, "keys": keys}))
    with open(pack / "pack.trust", "a") as f:
        f.write("\nchain {\n  require_sender_binding true\n}\n")
    check = subprocess.run([binaries["custody"], "check", "--policies", str(pack)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "1 X.509-SVID authority" in check.stdout, check.stdout
    # Envoy's server certificate, from a CA of its own
    server_ca = Ca("envoy server CA")
    skey, scert = server_ca.issue([x509.DNSName("localhost")], eku=ExtendedKeyUsageOID.SERVER_AUTH)
    files = {}
    for stem, obj in {"server-ca.pem": server_ca.pem(), "server.pem": scert.public_bytes(serialization.Encoding.PEM),
                      "server.key": skey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()),
                      "clients-ca.pem": cas["a.example"].pem() + cas["b.example"].pem()}.items():
        (d / stem).write_bytes(obj)
        files[stem] = str(d / stem)
    extra = ["--action-header", ACTION_HEADER, "--target-authority", AUTHORITY]
    with serve(binaries, {**fx, "pack": str(pack)}, workdir, "custody-svid", extra) as custody:
        tls, admin = free_port(), free_port()
        ext_authz = json.loads(json.dumps(EXT_AUTHZ))
        ext_authz["typed_config"]["include_peer_certificate"] = True
        manager = hcm()
        manager["typed_config"]["http_filters"] = [
            ext_authz if f["name"] == "envoy.filters.http.ext_authz" else f
            for f in manager["typed_config"]["http_filters"]]
        tls_socket = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": False,
            "common_tls_context": {
                "tls_certificates": [{"certificate_chain": {"filename": files["server.pem"]},
                                      "private_key": {"filename": files["server.key"]}}],
                # custody judges the client certificate: Envoy passes on whatever it gets
                "validation_context": {"trusted_ca": {"filename": files["clients-ca.pem"]},
                                       "trust_chain_verification": "ACCEPT_UNTRUSTED"}}}}
        config = {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {
                "listeners": [{"name": "mtls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls}},
                               "filter_chains": [{"filters": [manager], "transport_socket": tls_socket}]}],
                "clusters": [cluster("custody", custody["port"], True), cluster("upstream", upstream, False)],
            },
        }
        with run_envoy(envoy_bin, workdir, "envoy-svid", config, admin, os.getpid() % 10000 + 30000) as proc:
            wait_port(tls, proc, "envoy")
            yield {"dir": d, "cas": cas, "port": tls, "server_ca": files["server-ca.pem"], "custody": custody}


def client(world, key=None, cert=None, stem="client"):
    ctx = ssl.create_default_context(cafile=world["server_ca"])
    ctx.check_hostname = False
    if cert is not None:
        d = world["dir"]
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
        ctx.load_cert_chain(str(d / f"{stem}.pem"), str(d / f"{stem}.key"))
    return ctx


def send(world, headers, tls, path=PATH):
    conn = http.client.HTTPSConnection("127.0.0.1", world["port"], timeout=15, context=tls)
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    codes = []
    if r.status != 200:
        codes = [x["code"] for x in json.loads(body)["reasons"]]
    return r.status, codes


def alice_chain(fx):
    return {"authorization": f"Bearer {fx['t1']}", "custody-chain": fx["t0"]}


def leaf_case(world, fx, domain, sans, stem, **kw):
    key, cert = world["cas"][domain].issue(sans, **kw)
    return send(world, alice_chain(fx), client(world, key, cert, stem))


def test_alices_own_svid_proves_her(world, fx):
    assert leaf_case(world, fx, "b.example", [uri(fx["alice"])], "alice") == (200, [])


def test_another_domains_ca_cannot_vouch_for_a_b_example_id(world, fx):
    assert leaf_case(world, fx, "a.example", [uri(fx["alice"])], "forged") == (401, ["peer_invalid"])


def test_an_expired_svid_is_refused(world, fx):
    expired = NOW - datetime.timedelta(hours=1)
    assert leaf_case(world, fx, "b.example", [uri(fx["alice"])], "expired", not_after=expired) == (401, ["peer_invalid"])


def test_a_ca_certificate_as_leaf_is_refused(world, fx):
    got = leaf_case(world, fx, "b.example", [uri(fx["alice"])], "ca-leaf", ca=True,
                    key_usage=usage(digital_signature=True, key_cert_sign=True))
    assert got == (401, ["peer_invalid"])


def test_two_uri_sans_are_refused(world, fx):
    sans = [uri(fx["alice"]), uri("spiffe://b.example/agent/other")]
    assert leaf_case(world, fx, "b.example", sans, "two-sans") == (401, ["peer_invalid"])


def test_no_client_certificate_leaves_sender_binding_unmet(world, fx):
    assert send(world, alice_chain(fx), client(world)) == (403, ["sender_binding_required"])


def test_a_stolen_token_over_the_thiefs_own_mtls_is_sender_mismatch(world, fx):
    # Bob holds a valid a.example X.509-SVID of his own and replays Alice-agent's chain
    assert leaf_case(world, fx, "a.example", [uri(fx["bob"])], "bob") == (403, ["sender_mismatch"])


# --- WIMSE WIT + WPT, over the TLS listener without a client certificate ---

def mint(binaries, *args):
    out = subprocess.run([binaries["custody"], *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def wimse(world, binaries, fx):
    d = world["dir"]
    for stem in ("workload", "intruder"):
        subprocess.run([binaries["custody"], "keygen", "--kid", stem, "--alg", "ES256", "--private", str(d / f"{stem}.jwk"),
                        "--public", str(d / f"{stem}.jwks")], check=True, capture_output=True)
    wit = mint(binaries, "mint-wit", "--key", str(d / "b-wit.jwk"), "--sub", fx["alice"],
               "--cnf-key", str(d / "workload.jwk"), "--ttl", "1200")

    def wpt(aud=AUTHORITY + PATH, token=None, key="workload", iat=None, ttl=60):
        args = ["mint-wpt", "--key", str(d / f"{key}.jwk"), "--wit", wit, "--aud", aud,
                "--token", token or fx["t1"], "--ttl", str(ttl)]
        if iat is not None:
            args += ["--iat", str(iat)]
        return mint(binaries, *args)

    def headers(proof):
        return {**alice_chain(fx), "workload-identity-token": wit, "workload-proof-token": proof}

    return wpt, headers


def test_a_wit_with_its_wpt_proves_the_caller_once(world, wimse):
    wpt, headers = wimse
    proof = wpt()
    assert send(world, headers(proof), client(world)) == (200, [])
    assert send(world, headers(proof), client(world)) == (401, ["replayed"])


def test_the_target_is_the_configured_authority_and_path_never_host_or_query(world, wimse):
    wpt, headers = wimse
    # the WPT names https://orders.c.example/orders/42: a Host of the caller's choosing and a
    # query string change nothing
    h = {**headers(wpt()), "host": "evil.example"}
    assert send(world, h, client(world), path=PATH + "?page=2") == (200, [])


def test_every_broken_wpt_is_peer_invalid(world, wimse, fx):
    wpt, headers = wimse
    now = int(time.time())
    for proof in [
        wpt(aud=AUTHORITY + "/orders/43"),   # another URI
        wpt(aud="https://evil.example" + PATH),  # the caller's idea of the host
        wpt(aud=f"https://127.0.0.1:{world['port']}" + PATH),  # the address it connected to
        wpt(token=fx["t0"]),                 # another access token (`ath`)
        wpt(iat=now - 600, ttl=60),          # expired
        wpt(key="intruder"),                 # not the WIT's `cnf` key
    ]:
        assert send(world, headers(proof), client(world)) == (401, ["peer_invalid"])


def test_a_wit_signed_with_the_domains_jwt_svid_key_is_peer_invalid(world, wimse, binaries, fx):
    # b.example's token key (the kit's seed [2; 32]) sits in its bundle as `jwt-svid`: it
    # verifies access tokens and JWT-SVIDs, never a WIT
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    seed = bytes([2] * 32)
    x = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    b64url = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    d = world["dir"]
    (d / "b-jwt.jwk").write_text(json.dumps({"kty": "OKP", "crv": "Ed25519", "kid": "b.example-k1",
                                              "x": b64url(x), "d": b64url(seed)}))
    wit = mint(binaries, "mint-wit", "--key", str(d / "b-jwt.jwk"), "--sub", fx["alice"],
               "--cnf-key", str(d / "workload.jwk"))
    wpt = mint(binaries, "mint-wpt", "--key", str(d / "workload.jwk"), "--wit", wit,
               "--aud", AUTHORITY + PATH, "--token", fx["t1"])
    h = {**alice_chain(fx), "workload-identity-token": wit, "workload-proof-token": wpt}
    assert send(world, h, client(world)) == (401, ["peer_invalid"])


def test_a_certificate_and_a_wit_proving_different_callers_are_sender_mismatch(world, wimse, fx):
    wpt, headers = wimse
    # Bob's valid a.example SVID on the connection, Alice-agent's WIT and WPT in the headers
    key, cert = world["cas"]["a.example"].issue([uri(fx["bob"])])
    assert send(world, headers(wpt()), client(world, key, cert, "bob-and-wit")) == (403, ["sender_mismatch"])


def test_two_wpt_headers_are_refused(world, wimse):
    wpt, headers = wimse
    h = headers(wpt())
    h["workload-proof-token"] = h["workload-proof-token"] + ", " + wpt()
    status, codes = send(world, h, client(world))
    assert status == 403 and codes == ["invalid_request"], (status, codes)
