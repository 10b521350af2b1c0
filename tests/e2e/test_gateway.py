"""A real HTTP reverse proxy built on custody's tower Layer (crates/tower/examples/gateway.rs):
hyper in front of the loopback upstream, every request decided in process. Allowed requests reach
the upstream with the `x-custody-*` headers; denied ones are answered by the proxy with the same
status codes and JSON body as the Envoy sidecar; a pack reload under a stream of requests loses
none of them, and a broken pack keeps the old one serving."""

import http.client
import json
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, TARGET, free_port, wait_port
from test_envoy import chain, reasons, send


@pytest.fixture(scope="session")
def gateway_bin():
    subprocess.run(["cargo", "build", "--quiet", "-p", "custody-tower", "--example", "gateway"],
                   cwd=ROOT, check=True)
    return str(TARGET / "debug" / "examples" / "gateway")


class Gateway:
    def __init__(self, binary, pack, audience, upstream, log_path, extra=()):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--policies", str(pack), "--audience", audience, "--listen", f"127.0.0.1:{self.port}",
             "--upstream", f"127.0.0.1:{upstream}", *extra],
            stdout=subprocess.DEVNULL, stderr=self.log)
        wait_port(self.port, self.proc, "gateway")

    def events(self):
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_event(self, name, after, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            seen = [e for e in self.events() if e["event"] in ("reload", "reload_failed")][after:]
            if seen:
                assert seen[0]["event"] == name, seen[0]
                return seen[0]
            time.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout}s: {self.events()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def gateway(gateway_bin, fx, upstream, workdir):
    g = Gateway(gateway_bin, fx["pack"], fx["audience"], upstream, workdir / "gateway.log")
    yield g
    g.stop()
    assert g.proc.returncode == 0


def carol(mint, fx, scope="GET:/orders/7"):
    token = mint("c.example", {"sub": "user:carol", "aud": fx["audience"], "scope": scope})
    return {"authorization": f"Bearer {token}"}


def test_an_allowed_request_reaches_the_upstream_with_custody_headers(gateway, fx, mint):
    h = carol(mint, fx)
    h.update({"x-custody-origin": "a.example|user:root", "x-custody-actor": "spiffe://x/y", "x-custody-depth": "9"})
    status, _, body = send(gateway.port, path="/orders/7?expand=items", headers=h)
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/orders/7?expand=items"
    assert seen["headers"]["x-custody-origin"] == "c.example|user:carol"
    assert seen["headers"]["x-custody-depth"] == "0"
    assert "x-custody-actor" not in seen["headers"]  # no actor in a one-token chain without act
    assert "authorization" in seen["headers"]  # the credential goes on, as through Envoy


def test_the_default_action_must_be_in_the_chains_scope(gateway, fx, mint):
    # the fixture's chain carries orders:read; the default action is METHOD:path
    status, _, body = send(gateway.port, path="/orders/42", headers=chain(fx, "t1"))
    assert status == 403, body
    assert reasons(body)[0] == "scope_missing"


def test_denials_are_answered_by_the_proxy(gateway, fx, mint):
    status, headers, body = send(gateway.port, path="/orders/7")
    assert status == 401, body
    assert headers["www-authenticate"] == 'Bearer realm="custody"'
    assert headers["content-type"] == "application/json"
    assert reasons(body) == ["invalid_request"]

    status, headers, body = send(gateway.port, path="/orders/7", headers=chain(fx, "t1_expired"))
    assert status == 401, body
    assert "error=\"invalid_token\"" in headers["www-authenticate"]
    assert reasons(body)[0] == "expired"

    status, _, body = send(gateway.port, path="/orders/7", headers=chain(fx, "t1_wide"))
    assert status == 403, body
    assert reasons(body)[0] == "scope_escalation"

    status, _, body = send(gateway.port, path="/orders/7", headers=chain(fx, "t1_foreign"))
    assert status == 401, body
    assert reasons(body)[0] == "audience_mismatch"

    # another path than the token's scope names
    status, _, body = send(gateway.port, method="POST", path="/orders/7", headers=carol(mint, fx))
    assert status == 403, body
    assert reasons(body)[0] == "scope_missing"


def test_a_reload_under_requests_loses_none_and_a_broken_pack_keeps_the_old(gateway_bin, fx, mint, upstream, workdir):
    pack = workdir / "gateway-pack"
    shutil.copytree(fx["pack"], pack, dirs_exist_ok=True)
    g = Gateway(gateway_bin, pack, fx["audience"], upstream, workdir / "gateway-reload.log")
    try:
        h = carol(mint, fx)
        results, stop = [], threading.Event()

        def load():
            conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
            while not stop.is_set():
                try:
                    conn.request("GET", "/orders/7", headers=h)
                    r = conn.getresponse()
                    r.read()
                    results.append((time.monotonic(), r.status))
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    results.append((time.monotonic(), repr(e)))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10)
            conn.close()

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        (pack / "zz-lockdown.cedar").write_text("forbid(principal, action, resource);\n")
        g.proc.send_signal(signal.SIGHUP)
        ev = g.wait_event("reload", 0)
        assert ev["changed"] is True
        reloaded = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join()
        assert results, "no request was sent"
        odd = [r for r in results if r[1] not in (200, 403)]
        assert not odd, f"requests lost or failed around the reload: {odd[:5]}"
        before = [s for t, s in results if t < reloaded - 0.05]
        after = [s for t, s in results if t > reloaded + 0.05]
        assert 200 in before and after and set(after) == {403}, (before[-5:], after[:5])

        # a pack that does not load: reported, the old one keeps serving
        (pack / "zz-lockdown.cedar").write_text("forbid(principal, action resource);\n")
        g.proc.send_signal(signal.SIGHUP)
        ev = g.wait_event("reload_failed", 1)
        assert "zz-lockdown.cedar" in ev["error"]
        assert send(g.port, path="/orders/7", headers=h)[0] == 403

        (pack / "zz-lockdown.cedar").unlink()
        g.proc.send_signal(signal.SIGHUP)
        assert g.wait_event("reload", 2)["changed"] is True
        assert send(g.port, path="/orders/7", headers=h)[0] == 200
    finally:
        g.stop()
    assert g.proc.returncode == 0
