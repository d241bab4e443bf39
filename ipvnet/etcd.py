"""A small etcd v3 client for the cluster IPAM, speaking etcd's JSON gateway.

Why the gateway and not gRPC: the Python gRPC clients either fail to import with
current protobuf or pull in half a dozen packages, while the gateway needs only the
standard library and gives the same claim latency (etcd's commit dominates).

Why HTTP/1.1 by hand instead of `http.client`: `http.client` imports `ssl` as a side
effect, and `ssl` is the most expensive import in this module's reach. Here `ssl` is
imported only when an https endpoint is first contacted. Owning the socket also lets
one deadline cover a whole exchange (connect, send, full reply), which a per-recv
timeout cannot.

Semantics callers should know:
- Keys and values are `str`, sent as UTF-8; bytes that are not UTF-8 come back as
  surrogate escapes, so whatever etcd holds round-trips through put().
- `timeout` bounds each attempt on one endpoint; with several endpoints the worst
  case is len(endpoints) * timeout.
- A request that timed out may still have been applied; failover then repeats it on
  the next endpoint. The compare-and-swap helpers stay safe (a repeated create() finds
  its own value as the holder), but a repeated lease_grant() can leave a spare lease,
  which expires on its own.
"""

from __future__ import annotations

import _thread  # threading's Lock without importing threading (a few ms): import cost matters for a CLI
import binascii
import sys
import time
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from typing import Any, TypeVar

    Json = dict[str, Any]
    _T = TypeVar("_T")

_GRPC_NOT_FOUND = 5
_GRPC_UNAVAILABLE = 14
_GRPC_UNAUTHENTICATED = 16
# "user name is empty" is what etcd answers when an auth-enabled cluster gets no token.
_TOKEN_ERRORS = ("invalid auth token", "user name is empty")
_MAX_HEAD_LINE = 64 * 1024
_MAX_IDLE_PER_ENDPOINT = 8


class EtcdError(Exception):
    """etcd refused a request or could not be used; the message is one line naming the endpoint(s).

    `code` is etcd's gRPC status code when etcd itself answered, so callers can react to
    specific refusals without parsing the text.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint answered (refused, timed out, unresolvable, or no leader).

    Separate from EtcdError so that a caller can tell "the cluster is down, retry later"
    from "the cluster said no", which needs a different reaction.
    """


@dataclass(frozen=True, slots=True)
class KV:
    """One key as etcd stores it; the revisions let callers detect a changed holder."""

    key: str
    value: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int


# --- encoding -------------------------------------------------------------------------------


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _unb64(text: str) -> bytes:
    return binascii.a2b_base64(text)


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of the range holding every key that starts with `prefix`.

    etcd ranges are half-open [key, range_end). The smallest key above all keys with the
    prefix is the prefix with trailing 0xff bytes dropped and the last byte incremented;
    when nothing is left (empty or all-0xff prefix), b"\\0" tells etcd "to the end".
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _kv(raw: Json) -> KV:
    """etcd omits zero and empty fields, so every field needs a default."""
    return KV(
        key=_dec(_unb64(raw.get("key", ""))),
        value=_dec(_unb64(raw.get("value", ""))),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        version=int(raw.get("version", 0)),
        lease=int(raw.get("lease", 0)),
    )


_BYTES_FIELDS = ("key", "range_end", "value")


def _encode_fields(body: Json) -> Json:
    """Base64 the byte fields and send int64s as strings, as the gateway's protobuf JSON expects."""
    out: Json = {}
    for name, val in body.items():
        if name in _BYTES_FIELDS and isinstance(val, str):
            out[name] = _b64(_enc(val))
        elif isinstance(val, int) and not isinstance(val, bool):
            out[name] = str(val)
        else:
            out[name] = val
    return out


def _encode_op(op: Json) -> Json:
    """Encode one request_* op; a nested request_txn recurses, like etcd's own."""
    out: Json = {}
    for kind, body in op.items():
        if kind == "request_txn":
            out[kind] = _encode_txn(body.get("compare", []), body.get("success", []), body.get("failure", []))
        else:
            out[kind] = _encode_fields(body)
    return out


def _encode_txn(compare: list[Json], success: list[Json], failure: list[Json]) -> Json:
    return {
        "compare": [_encode_fields(c) for c in compare],
        "success": [_encode_op(o) for o in success],
        "failure": [_encode_op(o) for o in failure],
    }


# etcd drops false, zero and empty fields; restore them so callers can index safely.
_RESPONSE_DEFAULTS: dict[str, Json] = {
    "response_range": {"kvs": [], "count": 0, "more": False},
    "response_put": {},
    "response_delete_range": {"deleted": 0},
    "response_txn": {"succeeded": False, "responses": []},
}


def _decode_response(resp: Json) -> Json:
    """Turn one txn op response into plain Python: KV objects, ints, no header."""
    out: Json = {}
    for kind, body in resp.items():
        decoded: Json = dict(_RESPONSE_DEFAULTS.get(kind, {}))
        for name, val in body.items():
            if name in ("kvs", "prev_kvs"):
                decoded[name] = [_kv(kv) for kv in val]
            elif name == "prev_kv":
                decoded[name] = _kv(val)
            elif name in ("count", "deleted"):
                decoded[name] = int(val)
            elif name == "responses":
                decoded[name] = [_decode_response(r) for r in val]
            elif name != "header":
                decoded[name] = val
        out[kind] = decoded
    return out


# --- HTTP/1.1 transport -----------------------------------------------------------------------


class _PeerClosed(ConnectionError):
    """The server closed the connection; an OSError so it counts as "unreachable"."""


class _BadReply(Exception):
    """Bytes that are not HTTP: something else listens there, or the stream was cut."""


class _StaleConnection(Exception):
    """An idle kept-alive connection the server had already closed: retry on a fresh one."""


class _AttemptFailed(Exception):
    """One endpoint could not be used; `unavailable` is False for TLS and protocol failures."""

    def __init__(self, message: str, unavailable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    tls: bool
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _parse_endpoint(url: str) -> _Endpoint:
    """Parse by hand: urllib.parse is another import, and we accept only scheme://host[:port]."""
    scheme, sep, rest = url.partition("://")
    rest = rest.rstrip("/")
    bad = EtcdError(f"invalid etcd endpoint {url!r}: expected http://HOST:PORT or https://HOST:PORT")
    if not sep or scheme.lower() not in ("http", "https") or not rest or "/" in rest:
        raise bad
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ("" if not tail else "x")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or not (port_text.isdigit() or port_text == "") or int(port_text or 2379) > 65535:
        raise bad
    return _Endpoint(url.rstrip("/"), scheme.lower() == "https", host, int(port_text or 2379))


class _Conn:
    """One HTTP/1.1 connection whose every read is bounded by the caller's deadline."""

    __slots__ = ("sock", "buf", "got_reply_bytes")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.got_reply_bytes = False

    def _arm(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(left)

    def send(self, data: bytes, deadline: float) -> None:
        self.got_reply_bytes = False  # per exchange: tells a stale idle connection from a cut reply
        self._arm(deadline)
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        self._arm(deadline)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _PeerClosed(
                "connection closed mid-reply" if self.got_reply_bytes else "connection closed without a reply"
            )
        self.got_reply_bytes = True
        self.buf += chunk

    def readline(self, deadline: float) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > _MAX_HEAD_LINE:
                raise _BadReply("header line too long")
            self._fill(deadline)
        line = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return line

    def read(self, size: int, deadline: float) -> bytes:
        while len(self.buf) < size:
            self._fill(deadline)
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def read_to_eof(self, deadline: float) -> bytes:
        try:
            while True:
                self._fill(deadline)
        except _PeerClosed:
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _read_head(conn: _Conn, deadline: float) -> tuple[int, bool, dict[str, str]]:
    """Status, whether the server speaks HTTP/1.1, and lower-cased headers; 1xx are skipped."""
    while True:
        parts = conn.readline(deadline).decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise _BadReply("not an HTTP status line")
        status, http11 = int(parts[1]), parts[0] == "HTTP/1.1"
        headers: dict[str, str] = {}
        while (line := conn.readline(deadline).decode("latin-1").strip()) != "":
            name, _, val = line.partition(":")
            headers[name.strip().lower()] = val.strip()
        if status >= 200:
            return status, http11, headers


def _read_chunked(conn: _Conn, deadline: float, first_line: bool) -> tuple[bytes, bool]:
    """Chunked body; with first_line, stop at the first newline (one streamed message)."""
    body = bytearray()
    while True:
        size_text = conn.readline(deadline).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _BadReply("bad chunk size") from None
        if size == 0:
            while conn.readline(deadline).strip():  # trailers, e.g. Grpc-Trailer-Content-Type
                pass
            return bytes(body), True
        body += conn.read(size, deadline)
        conn.read(2, deadline)
        if first_line and b"\n" in body:
            return bytes(body.split(b"\n", 1)[0]), False


def _read_response(conn: _Conn, deadline: float, first_line: bool) -> tuple[int, bytes, bool]:
    """Status, body, and whether the connection may be reused."""
    status, http11, headers = _read_head(conn, deadline)
    keep = http11 and "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, complete = _read_chunked(conn, deadline, first_line)
        return status, body, keep and complete
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _BadReply("bad Content-Length")
        return status, conn.read(int(length), deadline), keep
    return status, conn.read_to_eof(deadline), False


def _reason(exc: BaseException) -> str:
    ssl_reason = getattr(exc, "reason", None)  # ssl.SSLError: e.g. "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    if isinstance(ssl_reason, str) and ssl_reason:
        return ssl_reason.lower().replace("_", " ")
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _tls_hint(reason: str) -> str:
    if "alert" in reason and "certificate" in reason:
        return " (etcd did not accept our client certificate, or we sent none)"
    if any(s in reason for s in ("wrong version number", "unexpected eof", "reset by peer", "http request")):
        return " (is it a plain http endpoint?)"
    return ""


def _describe_failure(exc: BaseException, ep: _Endpoint, timeout: float, *, handshake: bool = False) -> _AttemptFailed:
    """One line for one endpoint's failure, and whether it means "unreachable".

    A TLS handshake cut short (rather than timed out) counts as a refusal, not an outage:
    something accepted the TCP connection but will not speak TLS with us, and retrying
    later will not change that.
    """
    ssl_mod = sys.modules.get("ssl")
    if ssl_mod is not None and isinstance(exc, ssl_mod.SSLCertVerificationError):
        return _AttemptFailed(f"TLS with etcd at {ep.url} failed: server certificate: {exc.verify_message}", False)
    is_ssl_error = ssl_mod is not None and isinstance(exc, ssl_mod.SSLError)
    if is_ssl_error or (handshake and not isinstance(exc, TimeoutError)):
        reason = _reason(exc)
        return _AttemptFailed(f"TLS with etcd at {ep.url} failed: {reason}{_tls_hint(reason)}", False)
    if isinstance(exc, _BadReply):
        return _AttemptFailed(f"etcd at {ep.url} sent a malformed HTTP reply: {exc}", False)
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {timeout:g} s"
    elif type(exc).__name__ == "gaierror":
        reason = f"cannot resolve {ep.host}: {_reason(exc)}"
    else:
        reason = _reason(exc)
    if isinstance(exc, _PeerClosed) and not ep.tls and "without a reply" in reason:
        reason += " (is it an https endpoint?)"  # etcd's TLS port drops plain HTTP silently
    return _AttemptFailed(f"etcd at {ep.url} unreachable: {reason}", True)


def _error_of(reply: Json) -> tuple[str, int | None] | None:
    """etcd's error, in either shape: unary calls put it at the top, streams nest it."""
    err = reply.get("error")
    if isinstance(err, dict):
        code = err.get("grpc_code", err.get("code"))
        return str(err.get("message") or err), code if isinstance(code, int) else None
    if isinstance(err, str) and err:
        code = reply.get("code")
        return str(reply.get("message") or err), code if isinstance(code, int) else None
    return None


def _interpret(ep: _Endpoint, status: int, data: bytes, what: str) -> Json:
    """The reply as a dict, or EtcdError for a refusal (EtcdUnavailable when etcd cannot serve)."""
    import json

    try:
        reply = json.loads(data) if data.strip() else {}
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        text = data.decode("utf-8", "replace").strip().replace("\n", " ")[:200]
        if status == 200:
            raise EtcdError(f"etcd at {ep.url} sent a malformed reply to {what}: {text!r}", endpoint=ep.url)
        raise EtcdError(f"etcd at {ep.url} refused {what}: HTTP {status}: {text}", endpoint=ep.url)
    err = _error_of(reply)
    if err is None and status == 200:
        return reply
    message, code = err or (f"HTTP {status}", None)
    if code == _GRPC_UNAVAILABLE:
        raise EtcdUnavailable(f"etcd at {ep.url} cannot serve {what}: {message}", endpoint=ep.url, code=code)
    raise EtcdError(f"etcd at {ep.url} refused {what}: {message}", endpoint=ep.url, code=code)


def _combine(failures: list[_AttemptFailed], endpoints: list[_Endpoint]) -> EtcdError:
    """One exception for "every endpoint failed"; unavailable only if every failure was."""
    cls = EtcdUnavailable if all(f.unavailable for f in failures) else EtcdError
    urls = ", ".join(ep.url for ep in endpoints)
    if len(failures) == 1:
        return cls(failures[0].message, endpoint=urls)
    return cls("no etcd endpoint answered: " + "; ".join(f.message for f in failures), endpoint=urls)


# --- client -----------------------------------------------------------------------------------


class EtcdClient:
    """A thread-safe etcd v3 client: failover across endpoints, TLS, user/password auth.

    Connections are kept alive per endpoint because a claim is one round trip and a new
    TCP (or TLS) connection per request would dominate it. Nothing touches the network
    until the first call, so constructing a client is free.
    """

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout: float = 2.0,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        if not endpoints:
            raise EtcdError("no etcd endpoint given")
        if not timeout > 0:
            raise EtcdError(f"etcd timeout must be positive, not {timeout!r}")
        self._endpoints = [_parse_endpoint(u) for u in endpoints]
        self._timeout = float(timeout)
        self._tls_files = (cacert, cert, key)
        self._tls_context: ssl.SSLContext | None = None
        self._user = user
        self._password = password or ""
        self._token: str | None = None
        self._preferred = 0
        self._idle: dict[int, list[_Conn]] = {}
        self._lock = _thread.allocate_lock()  # guards _idle and _tls_context
        self._auth_lock = _thread.allocate_lock()  # one authentication at a time; never held with _lock

    @property
    def endpoint(self) -> str:
        """The endpoint tried first: the last one that answered."""
        return self._endpoints[self._preferred].url

    def close(self) -> None:
        """Drop kept-alive connections; the client stays usable and reconnects on demand."""
        with self._lock:
            conns = [c for lst in self._idle.values() for c in lst]
            self._idle.clear()
        for conn in conns:
            conn.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- key/value ---

    def get(self, key: str) -> KV | None:
        """The key, or None when it does not exist."""
        reply = self._call("/v3/kv/range", {"key": _b64(_enc(key))}, f"get {key}")
        kvs = self._field(reply, "kvs", [], f"get {key}")
        return self._decode(lambda: _kv(kvs[0]), f"get {key}") if kvs else None

    def get_prefix(self, prefix: str) -> list[KV]:
        """Every key starting with `prefix`, in key order (etcd's default sort)."""
        raw = _enc(prefix)
        payload = {"key": _b64(raw or b"\x00"), "range_end": _b64(prefix_range_end(raw))}
        reply = self._call("/v3/kv/range", payload, f"get prefix {prefix}")
        kvs = self._field(reply, "kvs", [], f"get prefix {prefix}")
        return self._decode(lambda: [_kv(kv) for kv in kvs], f"get prefix {prefix}")

    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Unconditional write; returns the new revision. A lease ties the key's life to it."""
        payload: Json = {"key": _b64(_enc(key)), "value": _b64(_enc(value))}
        if lease:
            payload["lease"] = str(lease)
        reply = self._call("/v3/kv/put", payload, f"put {key}")
        return self._revision(reply, f"put {key}")

    def delete(self, key: str) -> int:
        """Returns how many keys went away (0 or 1), so callers can tell "already gone"."""
        reply = self._call("/v3/kv/deleterange", {"key": _b64(_enc(key))}, f"delete {key}")
        return self._decode(lambda: int(reply.get("deleted", 0)), f"delete {key}")

    # --- transactions ---

    def txn(self, compare: list[Json], success: list[Json], failure: list[Json]) -> tuple[bool, list[Json]]:
        """etcd's atomic if/then/else, with str keys and values instead of base64.

        Dicts take etcd's JSON shape: compare {"key", "target": "VALUE"|"CREATE"|"MOD"|
        "VERSION"|"LEASE", "result": "EQUAL"|..., "value"|"create_revision"|...}; ops
        {"request_put"|"request_range"|"request_delete_range"|"request_txn": {...}}.
        Responses come back per op with KV objects and ints, and omitted fields restored.
        """
        reply = self._txn_raw(compare, success, failure, "txn")
        responses = self._field(reply, "responses", [], "txn")
        return bool(reply.get("succeeded")), self._decode(lambda: [_decode_response(r) for r in responses], "txn")

    def create(self, key: str, value: str, lease: int = 0) -> tuple[bool, KV | None]:
        """Claim `key` only if nobody holds it, in one round trip.

        Returns (True, the KV just written) or (False, the current holder's KV), so a
        loser learns who won without a second read that could race.
        """
        put: Json = {"key": key, "value": value}
        if lease:
            put["lease"] = lease
        reply = self._txn_raw(
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
            [{"request_put": put}],
            [{"request_range": {"key": key}}],
            f"create {key}",
        )
        if reply.get("succeeded"):
            rev = self._revision(reply, f"create {key}")
            return True, KV(key, value, rev, rev, 1, lease)
        responses = self._field(reply, "responses", [], f"create {key}")
        kvs = self._decode(lambda: responses[0]["response_range"].get("kvs", []), f"create {key}")
        return False, self._decode(lambda: _kv(kvs[0]), f"create {key}") if kvs else None

    def delete_if_value(self, key: str, value: str) -> bool:
        """Release only what we hold: a key someone else re-claimed is left alone."""
        reply = self._txn_raw(
            [{"key": key, "target": "VALUE", "result": "EQUAL", "value": value}],
            [{"request_delete_range": {"key": key}}],
            [],
            f"delete {key} if value matches",
        )
        return bool(reply.get("succeeded"))

    def put_if_value(self, key: str, expected: str, value: str, lease: int = 0) -> bool:
        """Rewrite (e.g. rebind to a new lease) only while the key still holds `expected`."""
        put: Json = {"key": key, "value": value}
        if lease:
            put["lease"] = lease
        reply = self._txn_raw(
            [{"key": key, "target": "VALUE", "result": "EQUAL", "value": expected}],
            [{"request_put": put}],
            [],
            f"put {key} if value matches",
        )
        return bool(reply.get("succeeded"))

    def _txn_raw(self, compare: list[Json], success: list[Json], failure: list[Json], what: str) -> Json:
        try:
            payload = _encode_txn(compare, success, failure)
        except (AttributeError, TypeError, ValueError) as exc:
            raise EtcdError(f"cannot encode {what}: {exc}") from None
        return self._call("/v3/kv/txn", payload, what)

    # --- leases ---

    def lease_grant(self, ttl: int) -> tuple[int, int]:
        """A new lease; etcd may raise a short TTL to its minimum, so the granted TTL is returned."""
        what = f"lease grant (ttl {ttl})"
        reply = self._call("/v3/lease/grant", {"TTL": str(int(ttl))}, what)
        return self._decode(lambda: (int(reply["ID"]), int(reply["TTL"])), what)

    def lease_keepalive(self, lease_id: int) -> int:
        """Refresh the lease; returns its remaining TTL, 0 when it has already expired or was revoked."""
        what = f"lease keepalive {lease_id:x}"
        reply = self._call("/v3/lease/keepalive", {"ID": str(lease_id)}, what, stream=True)
        return self._decode(lambda: int(reply.get("result", reply).get("TTL", 0)), what)

    def lease_revoke(self, lease_id: int) -> None:
        """Drop the lease and its keys now; a lease already gone is what we wanted anyway."""
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)}, f"lease revoke {lease_id:x}")
        except EtcdError as exc:
            if exc.code != _GRPC_NOT_FOUND or "lease not found" not in exc.message:
                raise

    def lease_ttl(self, lease_id: int) -> int:
        """Remaining TTL without refreshing it; -1 when the lease does not exist."""
        what = f"lease ttl {lease_id:x}"
        try:
            reply = self._call("/v3/lease/timetolive", {"ID": str(lease_id)}, what)
        except EtcdError as exc:
            if exc.code == _GRPC_NOT_FOUND and "lease not found" in exc.message:
                return -1
            raise
        return self._decode(lambda: int(reply.get("TTL", 0)), what)

    # --- reply helpers ---

    def _decode(self, extract: Callable[[], _T], what: str) -> _T:
        """Run `extract` on a reply; a reply of the wrong shape becomes EtcdError, not KeyError."""
        try:
            return extract()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise EtcdError(
                f"etcd at {self.endpoint} sent a malformed reply to {what}: {type(exc).__name__}: {exc}",
                endpoint=self.endpoint,
            ) from None

    def _field(self, reply: Json, name: str, default: Any, what: str) -> Any:
        return self._decode(lambda: reply.get(name, default), what)

    def _revision(self, reply: Json, what: str) -> int:
        return self._decode(lambda: int(reply["header"]["revision"]), what)

    # --- request machinery ---

    def _call(self, path: str, payload: Json, what: str, *, stream: bool = False) -> Json:
        """One request with auth: re-authenticate once if etcd dropped our token (expiry, or a
        failover to a member that never issued it, since simple tokens are per member)."""
        token = self._current_token()
        try:
            return self._request(path, payload, what, token, stream)
        except EtcdError as exc:
            if token is None or not any(t in exc.message for t in _TOKEN_ERRORS):
                raise
        return self._request(path, payload, what, self._current_token(stale=token), stream)

    def _current_token(self, stale: str | None = None) -> str | None:
        if self._user is None:
            return None
        token = self._token
        if token is not None and token != stale:
            return token
        with self._auth_lock:
            if self._token is None or self._token == stale:
                self._token = self._authenticate()
            return self._token

    def _authenticate(self) -> str:
        what = f"authentication as user {self._user!r}"
        reply = self._request("/v3/auth/authenticate", {"name": self._user, "password": self._password}, what, None)
        token = reply.get("token")
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise EtcdError(f"etcd at {self.endpoint} sent no usable token for {what}", endpoint=self.endpoint)
        return token

    def _request(self, path: str, payload: Json, what: str, token: str | None, stream: bool = False) -> Json:
        """Try endpoints from the last good one on; fail over only when one could not be used."""
        import json

        body = json.dumps(payload, separators=(",", ":")).encode()
        failures: list[_AttemptFailed] = []
        order = [self._preferred] + [i for i in range(len(self._endpoints)) if i != self._preferred]
        for idx in order:
            ep = self._endpoints[idx]
            try:
                status, data = self._exchange(idx, ep, _http_request(ep, path, body, token), stream)
                reply = _interpret(ep, status, data, what)
            except _AttemptFailed as failed:
                failures.append(failed)
                continue
            except EtcdUnavailable as exc:  # etcd answered but cannot serve (no leader): try another member
                failures.append(_AttemptFailed(exc.message, True))
                continue
            self._preferred = idx
            return reply
        raise _combine(failures, self._endpoints)

    def _exchange(self, idx: int, ep: _Endpoint, request: bytes, stream: bool) -> tuple[int, bytes]:
        """One HTTP exchange under one deadline, reusing a kept-alive connection when there is one."""
        deadline = time.monotonic() + self._timeout
        conn = self._checkout(idx)
        if conn is not None:
            try:
                return self._roundtrip(idx, ep, conn, request, deadline, stream, reused=True)
            except _StaleConnection:
                pass
        return self._roundtrip(idx, ep, self._connect(ep, deadline), request, deadline, stream, reused=False)

    def _roundtrip(
        self, idx: int, ep: _Endpoint, conn: _Conn, request: bytes, deadline: float, stream: bool, *, reused: bool
    ) -> tuple[int, bytes]:
        try:
            conn.send(request, deadline)
            status, data, keep = _read_response(conn, deadline, first_line=stream)
        except (OSError, _BadReply) as exc:
            conn.close()
            if reused and not conn.got_reply_bytes and not isinstance(exc, TimeoutError):
                raise _StaleConnection from None
            raise _describe_failure(exc, ep, self._timeout) from None
        if keep and not stream:
            self._checkin(idx, conn)
        else:
            conn.close()
        return status, data

    def _connect(self, ep: _Endpoint, deadline: float) -> _Conn:
        import socket

        context = self._ssl_context() if ep.tls else None
        sock = None
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=max(deadline - time.monotonic(), 0.001))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise _describe_failure(exc, ep, self._timeout) from None
        if context is None:
            return _Conn(sock)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return _Conn(context.wrap_socket(sock, server_hostname=ep.host))
        except OSError as exc:
            sock.close()
            raise _describe_failure(exc, ep, self._timeout, handshake=True) from None

    def _ssl_context(self) -> ssl.SSLContext:
        """Built on first https use, so plain-http users never import ssl."""
        with self._lock:
            if self._tls_context is None:
                import ssl

                cacert, cert, key = self._tls_files
                try:
                    context = ssl.create_default_context(cafile=cacert)
                    if cert:
                        context.load_cert_chain(cert, key)
                except (OSError, ValueError) as exc:
                    raise EtcdError(
                        f"cannot load etcd TLS files (cacert={cacert}, cert={cert}, key={key}): "
                        f"{getattr(exc, 'strerror', None) or exc}"
                    ) from None
                self._tls_context = context
            return self._tls_context

    def _checkout(self, idx: int) -> _Conn | None:
        with self._lock:
            idle = self._idle.get(idx)
            return idle.pop() if idle else None

    def _checkin(self, idx: int, conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(idx, [])
            if len(idle) < _MAX_IDLE_PER_ENDPOINT:
                idle.append(conn)
                return
        conn.close()


def _http_request(ep: _Endpoint, path: str, body: bytes, token: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {ep.hostport}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        lines.append(f"Authorization: {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
