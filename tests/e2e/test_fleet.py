"""Revocation and replay across a fleet, through Redis (issue 17): one real `redis-server` and
three real `custody serve` nodes whose pack names it (`store "redis://…"`), called directly
over gRPC (Envoy ext_authz Check, grpcio), revocations issued with the real `custody revoke`.

- a revocation issued while the nodes are under load reaches every node (propagation measured
  and printed) and no node's decision cache keeps serving the old allow;
- a WPT accepted at one node is `replayed` at the others;
- Redis killed (SIGKILL) and restarted empty: revocations held stay in force, replay checks are
  `store_unavailable` (503) while it is down, the nodes reconnect and resync;
- a node started while Redis is down serves, then picks up a revocation issued before it
  connected.

`redis-server` must be on PATH (CI installs it); under `CI=true` its absence is a failure."""

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from urllib.parse import unquote

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from conftest import ACTION_HEADER, IN_CI, free_port, serve, wait_port

AUTHORITY = "https://orders.c.example"
PATH = "/orders/42"
BOB = "spiffe://a.example/agent/bob"
# the longest a revocation may take to reach every node, from the moment `custody revoke` returns
PROPAGATION_BOUND = 2.0


# --- Redis --------------------------------------------------------------------------------

def resp(port, *args, timeout=2.0):
    """One Redis command over a raw socket (RESP2); the reply's first line."""
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


class Redis:
    """`redis-server` on a loopback port, without persistence: a restart starts empty."""

    def __init__(self, binary, port, logdir, name):
        self.binary, self.port, self.log_path, self.proc = binary, port, logdir / f"{name}.log", None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self, *extra):
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", *extra], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, self.proc, "redis-server", timeout=10)
        deadline = time.time() + 10
        while True:
            try:
                reply = resp(self.port, "PING")
                if reply == "+PONG" or reply.startswith("-NOAUTH"):
                    return
            except OSError:
                pass
            assert time.time() < deadline, "redis-server does not answer PING"
            time.sleep(0.05)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def redis_bin():
    path = shutil.which("redis-server")
    if not path:
        msg = "no redis-server on PATH (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


# --- the nodes ------------------------------------------------------------------------------

class Node:
    """One `custody serve` (as `conftest.serve` yields it) and a Check stub on it."""

    def __init__(self, name, served):
        self.name, self.port, self.metrics_port = name, served["port"], served["metrics"]
        self.proc, self.log = served["proc"], served["log"]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = external_auth_pb2_grpc.AuthorizationStub(self.channel)

    def check(self, headers, path=PATH):
        """(HTTP status, reason codes, first reason's hop, allow headers) of one Check."""
        req = external_auth_pb2.CheckRequest()
        http = req.attributes.request.http
        http.method = "GET"
        http.path = path
        http.host = "orders.c.example"
        for k, v in {ACTION_HEADER: "orders:read", **headers}.items():
            http.headers[k] = v
        r = self.stub.Check(req, timeout=5)
        if r.status.code == 0:
            self.last = []
            return 200, [], None, {h.header.key: h.header.value for h in r.ok_response.headers}
        body = json.loads(r.denied_response.body)
        reasons = self.last = body["reasons"]
        return r.denied_response.status.code, [x["code"] for x in reasons], reasons[0].get("hop"), {}

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name):
        m = self.metrics()
        assert name in m, f"{self.name}: no {name} in /metrics"
        return m[name]

    def events(self, event):
        out = []
        for line in self.log.read_text().splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("event") == event:
                out.append(j)
        return out

    def close(self):
        self.channel.close()


def wait_for(what, predicate, timeout, interval=0.05):
    """Polls `predicate` until it is true; returns the seconds it took, fails after `timeout`."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(interval)


def run(binaries, *args):
    out = subprocess.run([binaries["custody"], *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"custody {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout.strip()


def make_pack(binaries, fx, d, store_url, wit_public):
    """The fixture pack in `d/pack`, b.example's key set a SPIFFE bundle with a WIT key, and
    the `store` line."""
    pack = d / "pack"
    if pack.exists():
        shutil.rmtree(pack)
    shutil.copytree(fx["pack"], pack)
    path = pack / "keys" / "b.example.jwks"
    keys = json.loads(path.read_text())["keys"]
    for k in keys:
        k["use"] = "jwt-svid"
    keys.append({**wit_public, "use": "wit-svid"})
    path.write_text(json.dumps({"spiffe_sequence": 1, "keys": keys}))
    with open(pack / "pack.trust", "a") as f:
        f.write(f'\nstore "{store_url}"\n')
    check = subprocess.run([binaries["custody"], "check", "--policies", str(pack)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return pack


@pytest.fixture(scope="module")
def keys(binaries, workdir):
    d = workdir / "fleet"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    for stem in ("b-wit", "workload"):
        subprocess.run([binaries["custody"], "keygen", "--kid", stem, "--alg", "ES256", "--private", str(d / f"{stem}.jwk"),
                        "--public", str(d / f"{stem}.jwks")], check=True, capture_output=True)
    return {"dir": d, "wit_public": json.loads((d / "b-wit.jwks").read_text())["keys"][0]}


NODE_ARGS = ["--action-header", ACTION_HEADER, "--target-authority", AUTHORITY]


@pytest.fixture(scope="module")
def fleet(binaries, fx, workdir, redis_bin, keys):
    d = keys["dir"]
    redis = Redis(redis_bin, free_port(), d, "redis")
    redis.start()
    try:
        (d / "fleet").mkdir()
        pack = make_pack(binaries, fx, d / "fleet", redis.url, keys["wit_public"])
        with contextlib.ExitStack() as stack:
            nodes = []
            for i in (1, 2, 3):
                served = stack.enter_context(serve(binaries, {**fx, "pack": str(pack)}, workdir, f"fleet-node{i}", NODE_ARGS))
                nodes.append(Node(f"node{i}", served))
                stack.callback(nodes[-1].close)
            for n in nodes:
                wait_for(f"{n.name} connected to the store", lambda n=n: n.metric("custody_store_up") == 1, 10)
            yield {"redis": redis, "nodes": nodes, "pack": pack}
            for n in nodes:
                assert n.proc.poll() is None, f"{n.name} died: {n.log.read_text()[-2000:]}"
    finally:
        redis.stop()


@pytest.fixture(scope="module")
def chains(mint, fx):
    """`chain(actor, sub)`: the standard two-hop chain (a.example's user, Bob, then `actor` in
    b.example, for the orders service) with another current actor and origin subject."""
    made = {}

    def chain(actor, sub):
        if (actor, sub) not in made:
            txn = f"txn-{sub}"
            # one clock reading for both: minted across a second boundary, a default `exp`
            # would outlive the earlier token's (`expiry_extended`)
            now = int(time.time())
            t0 = mint("a.example", {"sub": sub, "aud": [actor], "scope": "orders:read orders:write", "txn": txn,
                                    "act": {"sub": BOB}, "iat": now - 10, "exp": now + 600})
            t1 = mint("b.example", {"sub": sub, "aud": fx["audience"], "scope": "orders:read", "txn": txn,
                                    "act": {"sub": actor, "act": {"sub": BOB}}, "iat": now - 5, "exp": now + 500})
            made[(actor, sub)] = (t0, t1)
        return made[(actor, sub)]

    return chain


def headers_of(chain):
    t0, t1 = chain
    return {"authorization": f"Bearer {t1}", "custody-chain": t0}


@pytest.fixture(scope="module")
def wimse(binaries, keys):
    """`wit(sub)` and `wpt(wit, token)`: a WIT for `sub` bound to the workload key, and a fresh
    WPT for Check's target (`--target-authority` + path) over the presented token."""
    d = keys["dir"]
    wits = {}

    def wit(sub):
        if sub not in wits:
            wits[sub] = run(binaries, "mint-wit", "--key", str(d / "b-wit.jwk"), "--sub", sub,
                            "--cnf-key", str(d / "workload.jwk"), "--ttl", "1200")
        return wits[sub]

    def wpt(wit_token, token):
        return run(binaries, "mint-wpt", "--key", str(d / "workload.jwk"), "--wit", wit_token, "--aud", AUTHORITY + PATH,
                   "--token", token, "--ttl", "120")

    return wit, wpt


def proof_headers(chain, wit_token, wpt_token):
    return {**headers_of(chain), "workload-identity-token": wit_token, "workload-proof-token": wpt_token}


def revoke(binaries, url, kind, value, *extra):
    """`custody revoke`; returns (its output, monotonic time it returned, seconds it took)."""
    started = time.monotonic()
    out = subprocess.run([binaries["custody"], "revoke", "--store", url, kind, value, *extra],
                         capture_output=True, text=True, timeout=30)
    returned = time.monotonic()
    assert out.returncode == 0, f"custody revoke {kind} {value}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr, returned, returned - started


# --- 1. revocation during load ---------------------------------------------------------------

class Load(threading.Thread):
    """Sends the same allowed Check round-robin to the nodes as fast as it can; records
    (node index, monotonic start, monotonic end, status, codes, hop) per request."""

    def __init__(self, nodes, headers):
        super().__init__(daemon=True)
        self.nodes, self.headers = nodes, headers
        self.records, self.errors = [], []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            k = i % len(self.nodes)
            i += 1
            t0 = time.monotonic()
            try:
                status, codes, hop, _ = self.nodes[k].check(self.headers)
            except Exception as e:  # noqa: BLE001 - every failure is reported by the test
                self.errors.append((k, repr(e)))
                continue
            self.records.append((k, t0, time.monotonic(), status, codes, hop))


def test_a_revocation_under_load_reaches_every_node_and_the_cache_keeps_no_old_allow(fleet, fx, binaries, chains):
    nodes, redis = fleet["nodes"], fleet["redis"]
    chain = (fx["t0"], fx["t1"])
    status, codes, _, allow = nodes[0].check(headers_of(chain))
    assert (status, codes) == (200, []), "the standard chain is not allowed before any revocation"
    actor = allow["x-custody-actor"]
    assert actor == fx["alice"]
    hits_before = [n.metric("custody_decision_cache_hits_total") for n in nodes]

    load = Load(nodes, headers_of(chain))
    load.start()
    try:
        time.sleep(1.0)
        warm = len(load.records)
        out, returned, took = revoke(binaries, redis.url, "actor", actor, "--for", "10m")
        # past the propagation bound, and a second more of load after it
        time.sleep(max(0.0, returned + PROPAGATION_BOUND + 1.0 - time.monotonic()))
    finally:
        load.stop.set()
        load.join(timeout=10)
    records = load.records
    assert not load.errors, f"gRPC errors under load: {load.errors[:5]}"
    before = records[:warm]
    assert before and all(r[3] == 200 for r in before), "requests before the revocation were not all allowed"
    hits_after = [n.metric("custody_decision_cache_hits_total") for n in nodes]
    assert all(a - b > 10 for a, b in zip(hits_after, hits_before)), \
        f"the decision cache did not answer the load (hits {hits_before} -> {hits_after})"

    propagation, lags = {}, {}
    for k, n in enumerate(nodes):
        mine = [r for r in records if r[0] == k]
        first = next((r for r in mine if r[4] == ["revoked"]), None)
        assert first is not None, f"{n.name} never denied `revoked` ({len(mine)} requests)"
        # the revocation was in force once the first denied request ended at the latest
        propagation[n.name] = first[2] - returned
        # and not before its last allow started (when that was after `revoke` returned, the lag is real)
        allowed_late = [r for r in mine if r[3] == 200 and r[1] >= returned]
        lags[n.name] = (max((r[1] for r in allowed_late), default=returned) - returned, len(allowed_late))
        after = [r for r in mine if r[1] >= first[1]]
        wrong = [r for r in after if (r[3], r[4]) != (403, ["revoked"])]
        assert not wrong, f"{n.name} answered otherwise after its first `revoked`: {wrong[:3]}"
        assert {r[5] for r in after} == {1}, f"{n.name}: hop {sorted({r[5] for r in after})}, want 1 (the token naming the actor)"
        # between the start and the first denial only allows
        assert all(r[3] == 200 for r in mine if r[1] < first[1])
        late = [r for r in mine if r[1] >= returned + PROPAGATION_BOUND]
        assert late, f"{n.name}: no request after the propagation bound to check"
    # every request started after the bound, at any node, was denied `revoked`
    assert all(r[4] == ["revoked"] for r in records if r[1] >= returned + PROPAGATION_BOUND)
    worst = max(propagation.values())
    per = ", ".join(f"{k} <= {v * 1000:+.1f} ms ({lags[k][1]} allows after `revoke` returned, the last at "
                    f"{lags[k][0] * 1000:+.1f} ms)" for k, v in propagation.items())
    print(f"\nfleet revocation propagation (from `custody revoke` returning; `revoke` took {took * 1000:.1f} ms; "
          f"{len(records)} requests, {len(records) / max(records[-1][2] - records[0][1], 1e-9):.0f}/s): "
          f"{per}; max {worst * 1000:+.1f} ms")
    assert worst <= PROPAGATION_BOUND, f"propagation {propagation}"
    for n in nodes:
        got = [e for e in n.events("revocation") if e.get("kind") == "actor" and e.get("value") == actor]
        assert got, f"{n.name} logged no `revocation` event for the actor"
        assert n.metric("custody_revocations_applied_total") >= 1
        assert n.metric("custody_revocations_held") >= 1


def test_an_origin_revocation_from_the_chain_summary_is_denied_at_hop_0(fleet, binaries, chains):
    nodes, redis = fleet["nodes"], fleet["redis"]
    chain = chains("spiffe://b.example/agent/fleet-origin", "user:fleet-carol")
    node = nodes[1]
    results = [node.check(headers_of(chain)) for _ in range(3)]
    assert all(r[:2] == (200, []) for r in results), results
    origin = unquote(results[0][3]["x-custody-origin"])
    assert origin == "a.example|user:fleet-carol"
    hits = node.metric("custody_decision_cache_hits_total")
    assert node.check(headers_of(chain))[:2] == (200, [])
    assert node.metric("custody_decision_cache_hits_total") > hits, "the allow was not cached"
    _, returned, _ = revoke(binaries, redis.url, "origin", origin, "--for", "10m")
    took = wait_for("origin revocation at node2", lambda: node.check(headers_of(chain))[1] == ["revoked"],
                    PROPAGATION_BOUND, interval=0.002)
    print(f"\norigin revocation at node2 after {took * 1000:.1f} ms")
    for n in nodes:
        wait_for(f"origin revocation at {n.name}", lambda n=n: n.check(headers_of(chain))[1] == ["revoked"],
                 PROPAGATION_BOUND)
        assert n.check(headers_of(chain))[:3] == (403, ["revoked"], 0)
    listed = run(binaries, "revocations", "--store", redis.url)
    assert origin in listed and "spiffe://b.example/agent/alice" in listed, listed


# --- 2. WPT replay across nodes ---------------------------------------------------------------

def test_a_wpt_accepted_at_one_node_is_replayed_at_the_others(fleet, chains, wimse):
    nodes = fleet["nodes"]
    wit, wpt = wimse
    actor = "spiffe://b.example/agent/fleet-wimse"
    chain = chains(actor, "user:fleet-dave")
    w = wit(actor)
    proof = wpt(w, chain[1])
    checks = [n.metric("custody_replay_store_checks_total") for n in nodes]
    assert nodes[0].check(proof_headers(chain, w, proof))[:2] == (200, [])
    for n in nodes[1:]:
        assert n.check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"]), n.name
    # and at the node that accepted it
    assert nodes[0].check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"])
    after = [n.metric("custody_replay_store_checks_total") for n in nodes]
    assert all(a > b for a, b in zip(after, checks)), f"replay checks not asked of the store: {checks} -> {after}"
    # a fresh proof is accepted once again, at another node
    again = wpt(w, chain[1])
    assert nodes[2].check(proof_headers(chain, w, again))[:2] == (200, [])
    assert nodes[1].check(proof_headers(chain, w, again))[:2] == (401, ["replayed"])


# --- 3. Redis killed and restarted ----------------------------------------------------------------

def test_redis_killed_and_restarted_keeps_revocations_and_fails_replay_checks_closed(fleet, binaries, chains, wimse):
    nodes, redis = fleet["nodes"], fleet["redis"]
    wit, wpt = wimse
    revoked_actor = "spiffe://b.example/agent/fleet-down"
    revoked = chains(revoked_actor, "user:fleet-erin")
    actor = "spiffe://b.example/agent/fleet-wimse"
    chain = chains(actor, "user:fleet-dave")
    w = wit(actor)
    for n in nodes:
        assert n.check(headers_of(revoked))[:2] == (200, [])
    revoke(binaries, redis.url, "actor", revoked_actor, "--for", "10m")
    for n in nodes:
        wait_for(f"{n.name} denies the revoked actor", lambda n=n: n.check(headers_of(revoked))[1] == ["revoked"],
                 PROPAGATION_BOUND)
    # every node's replay store has been used (node 3's connection is the one checked below)
    proof = wpt(w, chain[1])
    assert nodes[2].check(proof_headers(chain, w, proof))[:2] == (200, [])
    for n in nodes[:2]:
        assert n.check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"])
    resyncs = [n.metric("custody_store_resyncs_total") for n in nodes]
    failures = [n.metric("custody_store_failures_total") for n in nodes]

    redis.kill()
    for n in nodes:
        took = wait_for(f"{n.name} sees the store down", lambda n=n: n.metric("custody_store_up") == 0, 5)
        print(f"\n{n.name}: custody_store_up 0 after {took * 1000:.0f} ms")
        assert n.metric("custody_store_failures_total") > failures[nodes.index(n)]
    for n in nodes:
        # held locally
        assert n.check(headers_of(revoked))[:3] == (403, ["revoked"], 1), n.name
        # a plain request (no proof) needs no replay check
        assert n.check(headers_of(chain))[:2] == (200, []), n.name
    # a fresh WPT needs one: store_unavailable (nodes 1 and 2; node 3 gets none while Redis is
    # down, so its first check after the restart goes over whatever connection it kept)
    errors = [n.metric("custody_replay_store_errors_total") for n in nodes]
    for n in nodes[:2]:
        status, codes, _, _ = n.check(proof_headers(chain, w, wpt(w, chain[1])))
        assert (status, codes) == (503, ["store_unavailable"]), (n.name, status, codes)
    assert all(nodes[i].metric("custody_replay_store_errors_total") > errors[i] for i in (0, 1))
    # the operator is told, promptly, that a revocation could not be issued
    started = time.monotonic()
    out = subprocess.run([binaries["custody"], "revoke", "--store", redis.url, "actor", "spiffe://b.example/agent/x",
                          "--for", "1m"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0, f"`custody revoke` succeeded with Redis down: {out.stdout}"
    assert time.monotonic() - started < 5

    redis.start()
    for i, n in enumerate(nodes):
        took = wait_for(f"{n.name} reconnects", lambda n=n: n.metric("custody_store_up") == 1, 12)
        print(f"{n.name}: custody_store_up 1 after {took * 1000:.0f} ms")
        assert n.metric("custody_store_resyncs_total") > resyncs[i]
    listed = run(binaries, "revocations", "--store", redis.url)
    assert revoked_actor not in listed, f"the restarted Redis is not empty: {listed}"
    for n in nodes:
        # a store that lost its data lifts nothing
        assert n.check(headers_of(revoked))[:3] == (403, ["revoked"], 1), n.name
        assert n.check(headers_of(chain))[:2] == (200, []), n.name
    # node 3's first replay check since the restart (it made one before the kill and none while
    # Redis was down), then node 1 (which failed one meanwhile)
    first = wpt(w, chain[1])
    node3_first = nodes[2].check(proof_headers(chain, w, first))[:2], nodes[2].last
    proof = wpt(w, chain[1])
    assert nodes[0].check(proof_headers(chain, w, proof))[:2] == (200, []), nodes[0].last
    assert nodes[1].check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"])
    assert nodes[2].check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"])
    proof = wpt(w, chain[1])
    assert nodes[2].check(proof_headers(chain, w, proof))[:2] == (200, []), nodes[2].last
    assert nodes[0].check(proof_headers(chain, w, proof))[:2] == (401, ["replayed"])
    assert node3_first[0] == (200, []), f"node3's first WPT after Redis came back and it resynced: {node3_first}"


# --- 4. a node started while Redis is down ---------------------------------------------------------

def test_a_node_started_while_redis_is_down_serves_then_resyncs_what_was_revoked_before(
        binaries, fx, workdir, redis_bin, keys, chains, wimse):
    d = keys["dir"] / "late"
    d.mkdir()
    redis = Redis(redis_bin, free_port(), d, "redis-late")
    pack = make_pack(binaries, fx, d, redis.url, keys["wit_public"])
    wit, wpt = wimse
    actor = "spiffe://b.example/agent/fleet-late"
    chain = chains(actor, "user:fleet-frank")
    other = chains("spiffe://b.example/agent/fleet-late-other", "user:fleet-grace")
    password = "fleet-e2e"
    try:
        with serve(binaries, {**fx, "pack": str(pack)}, workdir, "fleet-node4", NODE_ARGS) as served:
            node = Node("node4", served)
            try:
                assert node.metric("custody_store_up") == 0
                assert node.check(headers_of(chain))[:2] == (200, [])
                assert node.check(headers_of(other))[:2] == (200, [])
                w = wit(actor)
                assert node.check(proof_headers(chain, w, wpt(w, chain[1])))[:2] == (503, ["store_unavailable"])
                assert node.metric("custody_store_up") == 0
                assert node.metric("custody_store_resyncs_total") == 0
                # Redis comes up refusing the node (a password only the operator has) until the
                # revocation is in: the node can only learn it by its resync
                redis.start("--requirepass", password)
                revoke(binaries, f"redis://:{password}@127.0.0.1:{redis.port}", "actor", actor, "--for", "10m")
                assert node.metric("custody_store_up") == 0
                assert node.check(headers_of(chain))[:2] == (200, []), "revoked before the node could know"
                reply = _config_set_no_password(redis.port, password)
                assert reply == "+OK", reply
                took = wait_for("node4 connects", lambda: node.metric("custody_store_up") == 1, 12)
                print(f"\nnode4: connected {took * 1000:.0f} ms after Redis let it in")
                assert node.metric("custody_store_resyncs_total") >= 1
                assert node.check(headers_of(chain))[:3] == (403, ["revoked"], 1)
                assert node.check(headers_of(other))[:2] == (200, [])
                assert node.metric("custody_revocations_applied_total") == 0, "learnt by a message, not the resync"
                connected = node.events("store_connected")
                assert connected and connected[-1].get("revocations") == 1, connected
                assert node.events("store_failed"), "no store_failed event while Redis was down"
                # and replay checks work now
                other_w = wit("spiffe://b.example/agent/fleet-late-other")
                proof = wpt(other_w, other[1])
                assert node.check(proof_headers(other, other_w, proof))[:2] == (200, [])
                assert node.check(proof_headers(other, other_w, proof))[:2] == (401, ["replayed"])
                # and it still stops cleanly on SIGTERM (`serve` asserts exit 0) with Redis gone
                redis.kill()
                wait_for("node4 sees the store down", lambda: node.metric("custody_store_up") == 0, 5)
            finally:
                node.close()
    finally:
        redis.stop()


def _config_set_no_password(port, password):
    """AUTH then `CONFIG SET requirepass ""` on one connection."""
    cmds = b""
    for args in (("AUTH", password), ("CONFIG", "SET", "requirepass", "")):
        cmds += f"*{len(args)}\r\n".encode()
        for a in args:
            b = a.encode()
            cmds += b"$%d\r\n%s\r\n" % (len(b), b)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(cmds)
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    lines = data.split(b"\r\n")
    assert lines[0] == b"+OK", lines
    return lines[1].decode()


# --- 5. a revocation that ends ------------------------------------------------------------------

def test_a_revocation_that_ends_is_lifted_at_every_node_cache_or_not(fleet, binaries, chains):
    nodes, redis = fleet["nodes"], fleet["redis"]
    actor = "spiffe://b.example/agent/fleet-brief"
    chain = chains(actor, "user:fleet-heidi")
    for n in nodes:
        assert n.check(headers_of(chain))[:2] == (200, [])
    revoke(binaries, redis.url, "actor", actor, "--for", "2s")
    until = int(time.time()) + 2
    for n in nodes:
        wait_for(f"{n.name} denies the briefly revoked actor",
                 lambda n=n: n.check(headers_of(chain))[1] == ["revoked"], PROPAGATION_BOUND)
        # asked again: the denial as the decision cache may hold it
        assert n.check(headers_of(chain))[:2] == (403, ["revoked"])
    # `until` is the last second it holds
    time.sleep(max(0.0, until + 1.2 - time.time()))
    got = {n.name: (n.check(headers_of(chain))[:2], n.last) for n in nodes}
    assert all(g[0] == (200, []) for g in got.values()), f"still denied after the revocation ended: {got}"
