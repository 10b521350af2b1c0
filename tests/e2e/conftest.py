"""End-to-end harness: a real `custody serve`, a real Envoy (ext_authz v3 gRPC filter) in front
of a small loopback upstream, certificates made at test time.

Binaries: `CUSTODY_BIN` (default `target/debug/custody`, built here with cargo), `CUSTODY_ENVOY`
(default `.venv/bin/envoy`, installed by `tests/e2e/setup.sh`). Under `CI=true` nothing is
skipped: a missing Envoy is a failure.

Two setups: `custody`/`envoy` (`--action-header x-custody-action`, set per route by Envoy, and an
mTLS listener) and `custody_default_action`/`envoy_default_action` (no `--action-header`: the
action is `METHOD:path`). Tokens beyond the fixture's are minted with `custody mint` (`mint`).
"""

import base64
import contextlib
import copy

import datetime
import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
ACTION_HEADER = "x-custody-action"
IN_CI = os.environ.get("CI", "").lower() == "true"
# the default `exp` of minted tokens (see `mint`): 30 minutes after the session starts
SESSION_EXP = int(time.time()) + 1800


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("custody-e2e")


@pytest.fixture(scope="session")
def binaries():
    custody = os.environ.get("CUSTODY_BIN")
    cmd = ["cargo", "build", "--quiet", "-p", "custody-sidecar", "--example", "e2e_fixture"]
    if not custody:
        cmd += ["-p", "custody"]
        custody = str(TARGET / "debug" / "custody")
    subprocess.run(cmd, cwd=ROOT, check=True)
    return {"custody": custody, "fixture": str(TARGET / "debug" / "examples" / "e2e_fixture")}


@pytest.fixture(scope="session")
def fx(binaries, workdir):
    """The test pack and tokens minted now (by crates/sidecar/examples/e2e_fixture.rs)."""
    subprocess.run([binaries["fixture"], str(workdir)], check=True, stdout=subprocess.DEVNULL)
    return json.loads((workdir / "fixture.json").read_text())


@pytest.fixture(scope="session")
def envoy_bin():
    path = os.environ.get("CUSTODY_ENVOY") or str(ROOT / ".venv" / "bin" / "envoy")
    if not os.path.exists(path):
        path = shutil.which("envoy")
    if not path:
        msg = "no Envoy binary: run tests/e2e/setup.sh or set CUSTODY_ENVOY"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def mint(binaries, fx, workdir):
    """`mint(domain, claims, typ="at+jwt")`: a token signed with `domain`'s key of the fixture pack
    by `custody mint`, `iss` filled in, `iat` now - 10 and `exp` now + 600 unless given.

    The pack's signing keys are not written out; they are the kit's deterministic ones
    (`tests/src/lib.rs`: seed `[n + 1; 32]` for the n-th domain, kid `<domain>-k1`), checked here
    against the pack's published key set before use."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    keydir = workdir / "mint-keys"
    keydir.mkdir(exist_ok=True)
    domains = ["a.example", "b.example", "c.example", "d.example"]
    counter = iter(range(1_000_000))

    def key_file(domain):
        path = keydir / f"{domain}.jwk"
        if path.exists():
            return path
        seed = bytes([domains.index(domain) + 1] * 32)
        x = b64(Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        published = json.loads((Path(fx["pack"]) / "keys" / f"{domain}.jwks").read_text())["keys"]
        match = [k for k in published if k.get("x") == x]
        assert match, f"the kit's key for {domain} is not the pack's: update the seed convention here"
        path.write_text(json.dumps({"kty": "OKP", "crv": "Ed25519", "kid": match[0]["kid"], "x": x, "d": b64(seed)}))
        return path

    def mint_token(domain, claims, typ="at+jwt"):
        now = int(time.time())
        # one `exp` for every token of the session unless a test gives its own: a hop minted a
        # second after its origin must not outlive it (`expiry_extended`)
        claims = {"iss": f"https://as.{domain}", "iat": now - 10, "exp": SESSION_EXP, **claims}
        path = keydir / f"claims-{next(counter)}.json"
        path.write_text(json.dumps(claims))
        out = subprocess.run([binaries["custody"], "mint", "--key", str(key_file(domain)), "--claims", str(path),
                              "--typ", typ], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    return mint_token


@contextlib.contextmanager
def serve(binaries, fx, workdir, name, extra):
    """`custody serve` on the fixture pack with `extra` arguments; stopped with SIGTERM."""
    port, metrics = free_port(), free_port()
    log = open(workdir / f"{name}.log", "w")
    proc = subprocess.Popen(
        [binaries["custody"], "serve", "--policies", fx["pack"], "--listen", f"127.0.0.1:{port}",
         "--audience", fx["audience"], *extra, "--metrics-listen", f"127.0.0.1:{metrics}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "custody serve")
        yield {"port": port, "metrics": metrics, "proc": proc, "log": workdir / f"{name}.log"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    assert proc.returncode == 0, f"custody serve exited {proc.returncode} on SIGTERM"


@pytest.fixture(scope="session")
def custody(binaries, fx, workdir):
    with serve(binaries, fx, workdir, "custody", ["--action-header", ACTION_HEADER]) as c:
        yield c


@pytest.fixture(scope="session")
def custody_default_action(binaries, fx, workdir):
    """A second sidecar without `--action-header`: Check's action is `METHOD:path`."""
    with serve(binaries, fx, workdir, "custody-default-action", []) as c:
        yield c


class Echo(http.server.BaseHTTPRequestHandler):
    """The upstream: answers every request with the headers it received, as JSON."""

    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="session")
def certs(workdir, fx):
    """A CA, Envoy's server certificate, and client certificates whose URI SAN is a SPIFFE ID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    d = workdir / "certs"
    d.mkdir(exist_ok=True)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem, key, cert):
        (d / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (d / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return {"cert": str(d / f"{stem}.pem"), "key": str(d / f"{stem}.key")}

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("custody e2e CA")).issuer_name(name("custody e2e CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": write("ca", ca_key, ca)}

    def leaf(stem, sans, usage):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(stem)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[stem] = write(stem, key, cert)

    leaf("server", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
         ExtendedKeyUsageOID.SERVER_AUTH)
    leaf("alice", [x509.UniformResourceIdentifier(fx["alice"])], ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf("bob", [x509.UniformResourceIdentifier(fx["bob"])], ExtendedKeyUsageOID.CLIENT_AUTH)
    return out


def per_route_action(action):
    """The proxy sets the action header per route, overwriting anything a client sent."""
    if action is None:
        mutation = {"remove": ACTION_HEADER}
    else:
        mutation = {"append": {"header": {"key": ACTION_HEADER, "value": action},
                               "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
    return {"envoy.filters.http.header_mutation": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute",
        "mutations": {"request_mutations": [mutation]}}}


def hcm(action_header=True):
    """The HTTP connection manager: with `action_header`, routes that set the action header for
    `GET`/`POST /orders…` and remove it elsewhere; without, one route and no header mutation."""
    if not action_header:
        return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress_default_action",
            "route_config": {"virtual_hosts": [{"name": "orders", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
            "http_filters": [EXT_AUTHZ, ROUTER]}}
    routes = [
        {"match": {"prefix": "/orders", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
         "route": {"cluster": "upstream"}, "typed_per_filter_config": per_route_action("orders:read")},
        {"match": {"prefix": "/orders", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
         "route": {"cluster": "upstream"}, "typed_per_filter_config": per_route_action("orders:write")},
        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}, "typed_per_filter_config": per_route_action(None)},
    ]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {"virtual_hosts": [{"name": "orders", "domains": ["*"], "routes": routes}]},
        "http_filters": [
            {"name": "envoy.filters.http.header_mutation", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {}}},
            EXT_AUTHZ,
            ROUTER,
        ]}}


EXT_AUTHZ = {"name": "envoy.filters.http.ext_authz", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "transport_api_version": "V3",
    "failure_mode_allow": False,
    "grpc_service": {"envoy_grpc": {"cluster_name": "custody"}, "timeout": "2s"}}}
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def cluster(name, port, http2):
    c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
             "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


NO_AUTHZ = {"envoy.filters.http.ext_authz": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
    "disabled": True}}


def body_forwarding_config(listen, admin, stat_prefix, public_match, public_cluster, upstream, clusters,
                           max_body):
    """An Envoy for custody in a JSON-RPC protocol mode: ext_authz forwards the request body (up to
    `max_body`, partial bodies flagged) to the `custody` cluster; `public_match` (a route match) goes
    to `public_cluster` with ext_authz off (metadata, an Agent Card); the rest to `upstream`."""
    authz = copy.deepcopy(EXT_AUTHZ)
    authz["typed_config"]["with_request_body"] = {
        "max_request_bytes": max_body, "allow_partial_message": True, "pack_as_bytes": True}
    manager = {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "route_config": {"virtual_hosts": [{"name": stat_prefix, "domains": ["*"], "routes": [
            {"match": public_match, "route": {"cluster": public_cluster}, "typed_per_filter_config": NO_AUTHZ},
            {"match": {"prefix": "/"}, "route": {"cluster": upstream, "timeout": "30s"}}]}]},
        "http_filters": [authz, ROUTER]}}
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "plain", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": listen}}, "filter_chains": [{"filters": [manager]}]}],
            "clusters": clusters,
        },
    }


@contextlib.contextmanager
def run_envoy(envoy_bin, workdir, name, config, admin, base_id):
    """Envoy on `config` until its admin endpoint says LIVE; terminated afterwards."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    log = open(workdir / f"{name}.log", "w")
    proc = subprocess.Popen([envoy_bin, "-c", str(path), "--disable-hot-restart", "--log-level", "warn",
                             "--base-id", str(base_id)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"envoy exited {proc.returncode}: {(workdir / f'{name}.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.read().strip() == b"LIVE":
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("envoy not ready within 60s")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def envoy(envoy_bin, custody, upstream, certs, workdir):
    plain, tls, admin = free_port(), free_port(), free_port()
    tls_socket = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": certs["server"]["cert"]},
                                  "private_key": {"filename": certs["server"]["key"]}}],
            "validation_context": {"trusted_ca": {"filename": certs["ca"]["cert"]}}}}}
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain}},
                 "filter_chains": [{"filters": [hcm()]}]},
                {"name": "mtls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls}},
                 "filter_chains": [{"filters": [hcm()], "transport_socket": tls_socket}]},
            ],
            "clusters": [cluster("custody", custody["port"], True), cluster("upstream", upstream, False)],
        },
    }
    with run_envoy(envoy_bin, workdir, "envoy", config, admin, os.getpid() % 10000) as proc:
        wait_port(plain, proc, "envoy")
        wait_port(tls, proc, "envoy")
        yield {"plain": plain, "tls": tls, "admin": admin}


@pytest.fixture(scope="session")
def envoy_default_action(envoy_bin, custody_default_action, upstream, workdir):
    """A second Envoy, plain HTTP, whose ext_authz calls the sidecar without `--action-header`;
    it sets no action header."""
    plain, admin = free_port(), free_port()
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {"name": "plain", "address": {"socket_address": {"address": "127.0.0.1", "port_value": plain}},
                 "filter_chains": [{"filters": [hcm(action_header=False)]}]},
            ],
            "clusters": [cluster("custody", custody_default_action["port"], True), cluster("upstream", upstream, False)],
        },
    }
    with run_envoy(envoy_bin, workdir, "envoy-default-action", config, admin, os.getpid() % 10000 + 10000) as proc:
        wait_port(plain, proc, "envoy")
        yield {"plain": plain, "admin": admin}
