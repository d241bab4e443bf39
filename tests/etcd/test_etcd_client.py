"""ipvnet.etcd against a real etcd 3.4 on 127.0.0.1 (no mocks of etcd).

Each server is started on free ports in a private temp dir, stopped by the PID we
started, and its directory removed. Plain, TLS and auth servers are module-scoped,
so the whole file runs in seconds; tests keep to their own key prefix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvnet.etcd import KV, EtcdClient, EtcdError, EtcdUnavailable, prefix_range_end

ETCD = shutil.which("etcd")
ETCDCTL = shutil.which("etcdctl")
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(ETCD is None or ETCDCTL is None, reason="needs etcd and etcdctl")


# --- servers --------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """Hold all n sockets open while choosing, so the kernel cannot hand out one port twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Etcd:
    """One etcd process we own; `client_args` are what a client needs to talk to it."""

    workdir: str
    url: str
    peer: str
    extra: list[str]
    client_args: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(os.path.join(self.workdir, "etcd.log"), "ab") as log:
            self.proc = subprocess.Popen(
                [ETCD, "--name", "default", "--data-dir", os.path.join(self.workdir, "data"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", self.peer, "--initial-advertise-peer-urls", self.peer,
                 "--initial-cluster", f"default={self.peer}", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        with EtcdClient([self.url], timeout=0.5, **self.client_args) as probe:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    probe.get("/ready-probe")
                    return
                except EtcdError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"etcd did not answer within 20 s:\n{self.log()}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        """By our own PID only: terminate, then kill if it lingers."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        with open(os.path.join(self.workdir, "etcd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def client(self, **kwargs: object) -> EtcdClient:
        return EtcdClient([self.url], **{**self.client_args, **kwargs})  # type: ignore[arg-type]

    def etcdctl(self, *args: str) -> None:
        subprocess.run([ETCDCTL, f"--endpoints={self.url}", *args], check=True, capture_output=True, timeout=15)


def launch(scheme: str = "http", extra: tuple[str, ...] = (), tls_dir: str | None = None) -> Etcd:
    workdir = tempfile.mkdtemp(prefix="ipvnet-etcd-test-")
    cport, pport = free_ports(2)
    args = list(extra)
    client_args: dict[str, str] = {}
    if tls_dir is not None:
        pem = lambda name: os.path.join(tls_dir, name)  # noqa: E731
        args += ["--cert-file", pem("server.crt"), "--key-file", pem("server.key"),
                 "--client-cert-auth", "--trusted-ca-file", pem("ca.crt")]  # fmt: skip
        client_args = {"cacert": pem("ca.crt"), "cert": pem("client.crt"), "key": pem("client.key")}
    server = Etcd(workdir, f"{scheme}://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}", args, client_args)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="module")
def etcd() -> Iterator[Etcd]:
    server = launch()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def client(etcd: Etcd) -> Iterator[EtcdClient]:
    with etcd.client() as c:
        yield c


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A key prefix of this test's own, so tests sharing one etcd never collide."""
    return f"/test/{request.node.name}/"


def make_certs(d: str) -> None:
    """A throwaway CA, a server cert for IP 127.0.0.1 and a client cert (EC keys: fast).

    The server cert also needs clientAuth: etcd 3.4's JSON gateway dials etcd's own gRPC
    port presenting the server cert, and --client-cert-auth rejects it without that usage.
    """

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=d, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=ipvnet-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "keyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=ipvnet-test-{name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def tls_etcd() -> Iterator[Etcd]:
    if OPENSSL is None:
        pytest.skip("needs openssl")
    certs = tempfile.mkdtemp(prefix="ipvnet-etcd-certs-")
    try:
        make_certs(certs)
        server = launch("https", tls_dir=certs)
        yield server
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    finally:
        shutil.rmtree(certs, ignore_errors=True)


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[Etcd]:
    """Auth enabled, simple tokens that expire after 1 s idle (to exercise re-authentication)."""
    server = launch(extra=("--auth-token-ttl", "1"))
    try:
        server.etcdctl("user", "add", "root:s3cret")
        server.etcdctl("auth", "enable")
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


# --- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/ipvnet/", b"/ipvnet0"), (b"a", b"b"), (b"a\xff", b"b"), (b"a\xfe\xff\xff", b"a\xff"), (b"\xff", b"\x00"),
     (b"", b"\x00")],
)  # fmt: skip
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


@pytest.mark.parametrize(
    "url", ["127.0.0.1:2379", "ftp://h:1", "http://", "http://h:port", "http://h:1/v3", "http://h:99999"]
)
def test_bad_endpoint_is_etcd_error(url: str) -> None:
    with pytest.raises(EtcdError, match="invalid etcd endpoint"):
        EtcdClient([url])


def test_no_endpoint() -> None:
    with pytest.raises(EtcdError):
        EtcdClient([])


# --- key/value ------------------------------------------------------------------------------


def test_put_get_delete(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    assert client.get(key) is None
    rev1 = client.put(key, "v1")
    kv = client.get(key)
    assert kv == KV(key, "v1", rev1, rev1, 1, 0)
    rev2 = client.put(key, "v2")
    assert rev2 > rev1
    kv = client.get(key)
    assert kv is not None and (kv.value, kv.version, kv.create_revision, kv.mod_revision) == ("v2", 2, rev1, rev2)
    client.put(key, "")
    assert client.get(key) == KV(key, "", rev1, rev2 + 1, 3, 0)  # an empty value is still a value
    assert client.delete(key) == 1
    assert client.get(key) is None
    assert client.delete(key) == 0


def test_get_prefix(client: EtcdClient, ns: str) -> None:
    for k in ("p/b", "p/a", "p/c", "p", "p0", "q/a"):
        client.put(ns + k, k.upper())
    got = client.get_prefix(ns + "p/")
    assert [(kv.key, kv.value) for kv in got] == [(ns + "p/a", "P/A"), (ns + "p/b", "P/B"), (ns + "p/c", "P/C")]
    assert client.get_prefix(ns + "none/") == []
    assert len(client.get_prefix(ns)) == 6


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
    | st.binary(max_size=50).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
def test_any_text_round_trips(client: EtcdClient, key: str, value: str) -> None:
    """Keys and values are bytes to etcd; any str (and non-UTF-8 bytes, as escapes) must survive."""
    full = "/test/roundtrip/" + key
    client.put(full, value)
    kv = client.get(full)
    assert kv is not None and kv.key == full and kv.value == value
    assert any(k.key == full for k in client.get_prefix(full))
    assert client.delete(full) == 1


# --- compare-and-swap -----------------------------------------------------------------------


def race_create(clients: list[EtcdClient], key: str) -> list[tuple[bool, KV | None]]:
    """Every client calls create() at the same instant (one per thread, released together)."""
    barrier = threading.Barrier(len(clients))
    results: list[tuple[bool, KV | None] | BaseException] = [None] * len(clients)  # type: ignore[list-item]

    def claim(i: int) -> None:
        barrier.wait()
        try:
            results[i] = clients[i].create(key, f"host-{i}")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            results[i] = exc

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert all(isinstance(r, tuple) for r in results), results
    return results  # type: ignore[return-value]


def check_one_winner(results: list[tuple[bool, KV | None]]) -> None:
    winners = [i for i, (ok, _) in enumerate(results) if ok]
    assert len(winners) == 1, results
    won = results[winners[0]][1]
    assert won is not None and won.value == f"host-{winners[0]}"
    for ok, holder in results:
        if not ok:
            assert holder == won  # losers learn the winner's value and revisions


def test_create_race_separate_clients(etcd: Etcd, ns: str) -> None:
    clients = [etcd.client() for _ in range(24)]
    try:
        for round_ in range(3):
            check_one_winner(race_create(clients, f"{ns}block-{round_}"))
    finally:
        for c in clients:
            c.close()


def test_create_race_one_shared_client(client: EtcdClient, ns: str) -> None:
    """The client is shared by threads: pooled connections must not be handed to two at once."""
    check_one_winner(race_create([client] * 16, ns + "block"))


def test_create_semantics(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    ok, mine = client.create(key, "a")
    assert ok and mine == client.get(key)
    assert client.create(key, "b") == (False, mine)
    client.delete(key)
    ok, again = client.create(key, "b")
    assert ok and again is not None and again.create_revision > mine.create_revision  # type: ignore[union-attr]


def test_delete_if_value(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    client.put(key, "mine")
    assert client.delete_if_value(key, "theirs") is False
    assert client.get(key) is not None
    assert client.delete_if_value(key, "mine") is True
    assert client.get(key) is None
    assert client.delete_if_value(key, "mine") is False  # gone: nothing to release


def test_put_if_value_rebinds_lease(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    old, _ = client.lease_grant(30)
    new, _ = client.lease_grant(30)
    try:
        assert client.create(key, "host-a", lease=old)[0]
        assert client.put_if_value(key, "host-b", "host-a", lease=new) is False
        assert client.put_if_value(key, "host-a", "host-a", lease=new) is True
        client.lease_revoke(old)
        kv = client.get(key)
        assert kv is not None and kv.lease == new and kv.value == "host-a"
    finally:
        client.lease_revoke(old)
        client.lease_revoke(new)
    assert client.get(key) is None


def test_generic_txn(client: EtcdClient, ns: str) -> None:
    a, b = ns + "a", ns + "b"
    rev = client.put(a, "1")
    ok, responses = client.txn(
        [{"key": a, "target": "MOD", "result": "EQUAL", "mod_revision": rev},
         {"key": a, "target": "VERSION", "result": "GREATER", "version": 0}],
        [{"request_put": {"key": b, "value": "2"}}, {"request_range": {"key": a}},
         {"request_delete_range": {"key": a, "prev_kv": True}}],
        [],
    )  # fmt: skip
    assert ok
    assert responses[0] == {"response_put": {}}
    assert responses[1]["response_range"]["kvs"] == [KV(a, "1", rev, rev, 1, 0)]
    assert responses[1]["response_range"]["count"] == 1
    assert responses[2]["response_delete_range"] == {"deleted": 1, "prev_kvs": [KV(a, "1", rev, rev, 1, 0)]}
    ok, responses = client.txn(
        [{"key": a, "target": "VALUE", "result": "EQUAL", "value": "1"}],
        [],
        [{"request_range": {"key": a}}, {"request_txn": {"compare": [], "success": [{"request_range": {"key": b}}]}}],
    )
    assert not ok
    assert responses[0]["response_range"] == {"kvs": [], "count": 0, "more": False}
    inner = responses[1]["response_txn"]
    assert inner["succeeded"] is True and inner["responses"][0]["response_range"]["kvs"][0].value == "2"


# --- leases ---------------------------------------------------------------------------------


def test_lease_lifecycle(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    lease, ttl = client.lease_grant(30)
    assert lease > 0 and ttl == 30
    client.put(key, "v", lease=lease)
    kv = client.get(key)
    assert kv is not None and kv.lease == lease
    assert 0 < client.lease_keepalive(lease) <= 30
    assert 0 < client.lease_keepalive(lease) <= 30  # the streaming call works repeatedly
    assert 0 < client.lease_ttl(lease) <= 30
    client.lease_revoke(lease)
    assert client.get(key) is None
    assert client.lease_ttl(lease) == -1
    assert client.lease_keepalive(lease) == 0
    client.lease_revoke(lease)  # already gone: not an error


def test_lease_expiry(client: EtcdClient, ns: str) -> None:
    key = ns + "k"
    start = time.monotonic()
    lease, ttl = client.lease_grant(2)
    assert ttl == 2
    assert client.create(key, "host", lease=lease)[0]
    while client.get(key) is not None:
        assert time.monotonic() - start < 4.5, "leased key outlived its 2 s lease"
        time.sleep(0.1)
    assert time.monotonic() - start >= 1.5
    assert client.lease_keepalive(lease) == 0
    assert client.lease_ttl(lease) == -1


# --- failures -------------------------------------------------------------------------------


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts TCP connections (into the backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def test_failover_to_second_endpoint(etcd: Etcd, ns: str) -> None:
    dead = closed_port_url()
    with EtcdClient([dead, etcd.url], timeout=1) as c:
        c.put(ns + "k", "v")
        assert c.endpoint == etcd.url  # remembered: later calls go straight there
        assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]


def test_failover_past_a_silent_endpoint(etcd: Etcd, blackhole: str, ns: str) -> None:
    with EtcdClient([blackhole, etcd.url], timeout=0.3) as c:
        start = time.monotonic()
        c.put(ns + "k", "v")
        assert 0.3 <= time.monotonic() - start < 1.5
        start = time.monotonic()
        c.get(ns + "k")
        assert time.monotonic() - start < 0.25  # the silent endpoint is not retried first


def test_all_endpoints_down(ns: str) -> None:
    a, b = closed_port_url(), closed_port_url()
    start = time.monotonic()
    with pytest.raises(EtcdUnavailable) as info:
        EtcdClient([a, b], timeout=1).put(ns + "k", "v")
    assert time.monotonic() - start < 1
    msg = str(info.value)
    assert a in msg and b in msg and "Connection refused" in msg and "\n" not in msg


def test_one_endpoint_down_message(ns: str) -> None:
    url = closed_port_url()
    with pytest.raises(EtcdUnavailable, match=f"^etcd at {url} unreachable: Connection refused$"):
        EtcdClient([url]).get(ns + "k")


def test_silent_endpoint_times_out(blackhole: str, ns: str) -> None:
    start = time.monotonic()
    with pytest.raises(EtcdUnavailable, match=r"no answer within 0\.3 s"):
        EtcdClient([blackhole], timeout=0.3).lease_keepalive(1)
    assert 0.3 <= time.monotonic() - start < 1.5


def test_unresolvable_host(ns: str) -> None:
    with pytest.raises(EtcdUnavailable, match="cannot resolve"):
        EtcdClient(["http://no-such-host.invalid:2379"], timeout=1).get(ns + "k")


def test_refused_request_is_not_unavailable(client: EtcdClient, etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError) as info:
        client.put(ns + "k", "v", lease=0x1234ABCD)
    assert type(info.value) is EtcdError
    assert str(info.value) == f"etcd at {etcd.url} refused put {ns}k: etcdserver: requested lease not found"
    assert info.value.code == 5
    with pytest.raises(EtcdError, match="refused create .*lease not found"):
        client.create(ns + "k", "v", lease=0x1234ABCD)


def test_refusal_does_not_fail_over(etcd: Etcd, ns: str) -> None:
    """A clean refusal is final: the next endpoint would say the same (and must not be tried)."""
    with EtcdClient([etcd.url, closed_port_url()]) as c:
        with pytest.raises(EtcdError) as info:
            c.put(ns + "k", "v", lease=0x1234ABCD)
    assert type(info.value) is EtcdError and "unreachable" not in str(info.value)


def test_not_etcd_is_error_not_unavailable(ns: str) -> None:
    """Something that is not HTTP on the port: a clear error, not "cluster down"."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(EtcdError, match="malformed HTTP reply") as info:
            EtcdClient([f"http://127.0.0.1:{srv.getsockname()[1]}"]).get(ns + "k")
        assert type(info.value) is EtcdError
    finally:
        t.join(5)
        srv.close()


def test_reconnects_after_etcd_restart(ns: str) -> None:
    """A kept-alive connection dies with the server; the next call must quietly use a new one."""
    server = launch()
    try:
        with server.client() as c:
            c.put(ns + "k", "v")
            server.stop()
            with pytest.raises(EtcdUnavailable):
                c.get(ns + "k")
            server.start()
            assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]
            server.stop()
            server.start()
            assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def test_plain_client_never_imports_ssl(etcd: Etcd) -> None:
    code = (
        "import sys, ipvnet.etcd as e; c = e.EtcdClient([sys.argv[1]]); c.put('/test/nossl', 'x');"
        "assert c.get('/test/nossl').value == 'x'; print('ssl' in sys.modules, 'http.client' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, etcd.url], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout.split() == ["False", "False"]


# --- TLS ------------------------------------------------------------------------------------


def test_tls_with_client_cert(tls_etcd: Etcd, ns: str) -> None:
    with tls_etcd.client() as c:
        assert c.create(ns + "k", "v")[0]
        assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]
        lease, _ = c.lease_grant(10)
        assert c.lease_keepalive(lease) > 0
        c.lease_revoke(lease)


def test_tls_without_client_cert_fails(tls_etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError) as info:
        tls_etcd.client(cert=None, key=None).get(ns + "k")
    assert type(info.value) is EtcdError  # the server said no; the cluster is not down
    assert str(info.value).startswith(f"TLS with etcd at {tls_etcd.url} failed: ")
    assert "client certificate" in str(info.value)


def test_tls_untrusted_server(tls_etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError, match="certificate verify failed|server certificate"):
        tls_etcd.client(cacert=None).get(ns + "k")


def test_tls_missing_files(tls_etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError, match="cannot load etcd TLS files"):
        tls_etcd.client(cert="/nonexistent/client.crt").get(ns + "k")


def test_http_to_https_server_hints_at_scheme(tls_etcd: Etcd, ns: str) -> None:
    """etcd's TLS port just closes a plain-HTTP connection; the message says what is likely wrong."""
    url = tls_etcd.url.replace("https://", "http://")
    with pytest.raises(EtcdUnavailable, match=r"without a reply \(is it an https endpoint\?\)"):
        EtcdClient([url]).get(ns + "k")


def test_https_to_http_server(etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError, match="^TLS with etcd at https://.* failed: ") as info:
        EtcdClient([etcd.url.replace("http://", "https://")]).get(ns + "k")
    assert type(info.value) is EtcdError


# --- auth -----------------------------------------------------------------------------------


def test_auth_user_password(auth_etcd: Etcd, ns: str) -> None:
    with auth_etcd.client(user="root", password="s3cret") as c:
        assert c.create(ns + "k", "v")[0]
        assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]
        lease, _ = c.lease_grant(10)
        c.put(ns + "k", "w", lease=lease)
        assert c.lease_keepalive(lease) > 0
        c.lease_revoke(lease)
        assert c.get(ns + "k") is None


def test_auth_token_expiry_reauthenticates(auth_etcd: Etcd, ns: str) -> None:
    with auth_etcd.client(user="root", password="s3cret") as c:
        c.put(ns + "k", "v")
        old = c._token
        time.sleep(2.5)  # --auth-token-ttl 1: etcd forgets the idle token
        assert c.get(ns + "k").value == "v"  # type: ignore[union-attr]
        assert c._token is not None and c._token != old


def test_auth_wrong_password(auth_etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError) as info:
        auth_etcd.client(user="root", password="wrong").get(ns + "k")
    assert type(info.value) is EtcdError
    assert str(info.value) == (
        f"etcd at {auth_etcd.url} refused authentication as user 'root': "
        "etcdserver: authentication failed, invalid user ID or password"
    )


def test_auth_missing_credentials(auth_etcd: Etcd, ns: str) -> None:
    with pytest.raises(EtcdError, match=f"refused get {ns}k: etcdserver: user name is empty"):
        auth_etcd.client().get(ns + "k")
