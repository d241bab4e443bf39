"""A plain synchronous rtnetlink client: one NETLINK_ROUTE socket, no asyncio.

pyroute2's IPRoute costs a cold `ipvnet attach` more than all of its netlink
work: `pyroute2.iproute.linux` imports asyncio and ssl (~50 ms on a fast host,
~0.3 s in a UML guest), while the requests themselves take a few ms. Here
pyroute2 is only the codec (its message classes encode requests and decode
replies); requests go out and replies come back on one ordinary blocking
socket, with no event loop, no threads and no helper processes.

Like iproute2, every request asks for an ACK, carries its own sequence number
and is answered before the next one is sent, so errors surface at the call
that caused them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any


def _bare_pyroute2() -> None:
    """Register pyroute2 as a bare package so its `__init__` never runs.

    The package `__init__` imports every API pyroute2 has (IPRoute with
    asyncio and ssl, NDB, IPDB, nftables, ...). With a bare package object in
    sys.modules, importing a submodule loads only what that submodule needs.
    Does nothing when pyroute2 (bare or real) is already imported.
    """
    if "pyroute2" in sys.modules:
        return
    import importlib.util
    import types

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the imports below raise the usual ImportError
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    sys.modules["pyroute2"] = pkg


_bare_pyroute2()

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg.plugins.ipvlan import ipvlan as _ipvlan_data  # noqa: E402

if TYPE_CHECKING:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg


def _rtmsg_class() -> type[rtmsg]:
    """pyroute2's route message class, imported on the first route request or
    dump (a detach sends none, and the import is ~2 ms of a cold one)."""
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    _DECODERS[RTM_NEWROUTE] = rtmsg
    return rtmsg  # type: ignore[no-any-return]


def _teach_ipvlan_flags() -> None:
    """pyroute2's ipvlan attribute table stops at IFLA_IPVLAN_MODE; add
    IFLA_IPVLAN_FLAGS (u16, attribute 2) so it is encoded and decoded by name.

    pyroute2 compiles an attribute table once per class, on first use; reset
    that mark so a table compiled before this patch is rebuilt.
    """
    if any(entry[0] == "IFLA_IPVLAN_FLAGS" for entry in _ipvlan_data.nla_map):
        return
    _ipvlan_data.nla_map = (*tuple(_ipvlan_data.nla_map), ("IFLA_IPVLAN_FLAGS", "uint16"))
    _ipvlan_data._nlmsg_base__compiled_nla = False


_teach_ipvlan_flags()

# netlink header flags and message types (linux/netlink.h, linux/rtnetlink.h)
NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request echo is its header only
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR/DONE: extended-ack attributes follow
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RTEXT_FILTER_SKIP_STATS = 1 << 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RT_TABLE_UNSPEC = 0
RTN_TYPES = {"unicast": 1, "blackhole": 6}

RCVBUF = 1 << 20  # what iproute2 asks for; the kernel caps it at net.core.rmem_max
RECV_SIZE = 64 * 1024  # a dump datagram is at most 32 KiB once the kernel sees we take that much
DUMP_ATTEMPTS = 5

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid
_ERRNO = struct.Struct("=i")
_IFINDEX = struct.Struct("=xxxxi")  # struct ifinfomsg: family, pad, type, then the index
_IFINFO_SIZE = 16
IFLA_IFNAME = 3
_ATTR = struct.Struct("=HH")
_DECODERS: dict[int, type] = {RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg}  # routes: _rtmsg_class
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}

# link_add keyword -> IFLA_INFO_DATA attribute, and which kinds accept each one.
_INFO_DATA_ATTRS = {
    "vlan_id": "IFLA_VLAN_ID",
    "ipvlan_mode": "IFLA_IPVLAN_MODE",
    "ipvlan_flags": "IFLA_IPVLAN_FLAGS",
    "macvlan_mode": "IFLA_MACVLAN_MODE",
}
_KIND_OPTIONS = {
    "vlan": {"vlan_id"},
    "ipvlan": {"ipvlan_mode", "ipvlan_flags"},
    "macvlan": {"macvlan_mode"},
    "veth": {"peer"},
}


class NetlinkError(OSError):
    """The kernel refused a request: errno is its (positive) error code, and
    strerror adds the kernel's extended-ack message when it sent one."""


class _DumpInterrupted(Exception):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): the table
    changed while it was being read. The dump has been read to its end."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def _family(version: int) -> int:
    try:
        return _FAMILIES[version]
    except KeyError:
        raise ValueError(f"family must be 4 or 6, not {version!r}") from None


def _address_family(address: str) -> int:
    """AF_INET or AF_INET6 from the text of an address (ValueError if neither)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        socket.inet_pton(family, address)
    except OSError:
        raise ValueError(f"not an IP address: {address!r}") from None
    return family


def _extack_message(data: bytes, start: int, end: int) -> str:
    """The NLMSGERR_ATTR_MSG text among the attributes in data[start:end]."""
    while start + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(data, start)
        if length < _ATTR.size:
            break
        if kind & 0x3FFF == NLMSGERR_ATTR_MSG:
            return data[start + _ATTR.size : start + length].split(b"\0", 1)[0].decode(errors="replace")
        start += _align(length)
    return ""


def _check_status(data: bytes, offset: int, length: int, mtype: int, flags: int) -> None:
    """Raise NetlinkError if an NLMSG_ERROR or NLMSG_DONE carries an error.

    NLMSG_ERROR: a negative errno, then the echoed request (only its header
    when NLM_F_CAPPED), then extended-ack attributes when NLM_F_ACK_TLVS.
    NLMSG_DONE: a negative errno when the dump failed part way, then the same
    attributes.
    """
    if length < _HEADER.size + _ERRNO.size:
        return
    body = offset + _HEADER.size
    (code,) = _ERRNO.unpack_from(data, body)
    if code == 0:
        return
    code = -code
    text = os.strerror(code)
    if flags & NLM_F_ACK_TLVS:
        tlvs = body + _ERRNO.size
        if mtype == NLMSG_ERROR:
            echoed = _HEADER.size if flags & NLM_F_CAPPED else _HEADER.unpack_from(data, tlvs)[0]
            tlvs += _align(echoed)
        detail = _extack_message(data, tlvs, offset + length)
        if detail:
            text = f"{text} ({detail})"
    raise NetlinkError(code, text)


class Rtnl:
    """One NETLINK_ROUTE socket bound in the network namespace of the calling
    thread at creation (open it inside `netns.entered(name)` to work there)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            # Extended acks add the kernel's reason to an error; capped acks
            # keep it from echoing our whole request back. Both are optional.
            for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(SOL_NETLINK, option, 1)
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._buf = bytearray(RECV_SIZE)
        self._peek = bytearray(0)

    def close(self) -> None:
        """Close the socket (again is harmless)."""
        self._sock.close()

    # -- the exchange ----------------------------------------------------

    def _recv(self) -> bytes:
        """One datagram, never cut short: peek at its real size first (an empty
        MSG_PEEK|MSG_TRUNC read, as iproute2 does) and grow the buffer if
        needed. Decoded messages read their bytes lazily, so each datagram
        gets its own immutable copy rather than sharing the reusable buffer."""
        size = self._sock.recv_into(self._peek, 0, socket.MSG_PEEK | socket.MSG_TRUNC)
        if size > len(self._buf):
            self._buf = bytearray(size)
        n = self._sock.recv_into(self._buf)
        return bytes(memoryview(self._buf)[:n])

    def _parse(self, data: bytes, seq: int, out: list[Any], raw: bool = False) -> tuple[bool, bool]:
        """Decode the messages of one datagram that answer request SEQ into
        OUT (with RAW, their bytes, undecoded); returns (finished,
        interrupted). Others (stale replies to an abandoned request) are
        skipped."""
        offset, interrupted = 0, False
        while offset + _HEADER.size <= len(data):
            length, mtype, flags, mseq, _pid = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size or offset + length > len(data):
                raise NetlinkError(errno.EBADMSG, "malformed netlink message from the kernel")
            if mseq == seq:
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if mtype in (NLMSG_ERROR, NLMSG_DONE):
                    _check_status(data, offset, length, mtype, flags)
                    return True, interrupted
                decoder = _DECODERS.get(mtype)
                if raw:
                    out.append(data[offset:offset + length])
                elif decoder is not None:
                    msg = decoder(data, offset=offset)
                    msg.decode()
                    out.append(msg)
            offset += _align(length)
        return False, interrupted

    def _call(self, mtype: int, msg: Any, flags: int = 0, raw: bool = False) -> list[Any]:
        """Send one request and read the replies up to its ACK (or NLMSG_DONE
        for a dump). Raises NetlinkError for a kernel error and
        _DumpInterrupted, after the last part, for an inconsistent dump."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        seq = self._seq
        msg["header"] = {"type": mtype, "flags": NLM_F_REQUEST | NLM_F_ACK | flags, "sequence_number": seq, "pid": 0}
        msg.encode()
        self._sock.send(msg.data)
        replies: list[Any] = []
        interrupted = finished = False
        while not finished:
            finished, intr = self._parse(self._recv(), seq, replies, raw)
            interrupted |= intr
        if interrupted:
            raise _DumpInterrupted
        return replies

    def _dump(self, mtype: int, make: Callable[[], Any], raw: bool = False) -> list[Any]:
        """A dump, restarted while the kernel says a concurrent change made it
        inconsistent (MAKE builds a fresh request each time)."""
        for _ in range(DUMP_ATTEMPTS):
            with contextlib.suppress(_DumpInterrupted):
                return self._call(mtype, make(), NLM_F_DUMP, raw)
        raise NetlinkError(errno.EAGAIN, f"dump still inconsistent after {DUMP_ATTEMPTS} attempts")

    # -- links -----------------------------------------------------------

    @staticmethod
    def _ifinfmsg(index: int = 0, attrs: list[list[Any]] | None = None, flags: int = 0, change: int = 0) -> ifinfmsg:
        msg = ifinfmsg()
        msg["family"] = socket.AF_UNSPEC
        msg["index"] = index
        msg["flags"] = flags
        msg["change"] = change
        msg["attrs"] = attrs or []
        return msg

    def link_get(self, name: str) -> ifinfmsg | None:
        """The link called NAME, or None when there is none (ENODEV)."""
        attrs: list[list[Any]] = [["IFLA_IFNAME", name], ["IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS]]
        try:
            replies = self._call(RTM_GETLINK, self._ifinfmsg(attrs=attrs))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return replies[0] if replies else None

    def link_index(self, name: str) -> int | None:
        """The index of link NAME (None if there is none), read from the reply's
        header without decoding its attributes (that decoding is most of the
        cost of a lookup, and the engine looks links up often)."""
        attrs: list[list[Any]] = [["IFLA_IFNAME", name], ["IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS]]
        try:
            replies = self._call(RTM_GETLINK, self._ifinfmsg(attrs=attrs), raw=True)
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return _IFINDEX.unpack_from(replies[0], _HEADER.size)[0] if replies else None

    def link_names(self) -> list[str]:
        """The names of all links, from the raw dump (IFLA_IFNAME only, nothing decoded)."""
        names = []
        for m in self._dump(RTM_GETLINK, lambda: self._ifinfmsg(attrs=[["IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS]]),
                            raw=True):
            pos = _HEADER.size + _IFINFO_SIZE
            while pos + _ATTR.size <= len(m):
                length, kind = _ATTR.unpack_from(m, pos)
                if length < _ATTR.size:
                    break
                if kind == IFLA_IFNAME:
                    names.append(m[pos + _ATTR.size:pos + length].split(b"\0", 1)[0].decode())
                    break
                pos += _align(length)
        return names

    def link_dump(self) -> list[ifinfmsg]:
        """Every link. Counters are left out (RTEXT_FILTER_SKIP_STATS): nobody
        here reads them and they are a large part of each message to decode."""
        return self._dump(RTM_GETLINK, lambda: self._ifinfmsg(attrs=[["IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS]]))

    def link_add(
        self,
        ifname: str,
        kind: str,
        *,
        link: int | None = None,
        mtu: int | None = None,
        address: str | None = None,
        net_ns_fd: int | None = None,
        vlan_id: int | None = None,
        ipvlan_mode: int | None = None,
        ipvlan_flags: int | None = None,
        macvlan_mode: int | None = None,
        peer: str | None = None,
    ) -> None:
        """Create link IFNAME of KIND (dummy, vlan, ipvlan, macvlan, veth, ...)
        on parent index LINK; with NET_NS_FD it is born in that namespace (a
        veth's peer stays here). Options that do not belong to KIND raise
        ValueError rather than being silently dropped."""
        options = {"vlan_id": vlan_id, "ipvlan_mode": ipvlan_mode, "ipvlan_flags": ipvlan_flags,
                   "macvlan_mode": macvlan_mode, "peer": peer}
        options = {k: v for k, v in options.items() if v is not None}
        stray = sorted(set(options) - _KIND_OPTIONS.get(kind, set()))
        if stray:
            raise ValueError(f"{', '.join(stray)} do not apply to {kind} links")
        data: list[list[Any]] = [[_INFO_DATA_ATTRS[k], v] for k, v in options.items() if k != "peer"]
        if peer is not None:
            data.append(["VETH_INFO_PEER", {"attrs": [["IFLA_IFNAME", peer]]}])
        linkinfo: list[list[Any]] = [["IFLA_INFO_KIND", kind]]
        if data:
            linkinfo.append(["IFLA_INFO_DATA", {"attrs": data}])
        attrs: list[list[Any]] = [["IFLA_IFNAME", ifname]]
        for name, value in (("IFLA_LINK", link), ("IFLA_MTU", mtu), ("IFLA_NET_NS_FD", net_ns_fd)):
            if value is not None:
                attrs.append([name, value])
        if address is not None:
            attrs.append(["IFLA_ADDRESS", address.lower()])
        attrs.append(["IFLA_LINKINFO", {"attrs": linkinfo}])
        self._call(RTM_NEWLINK, self._ifinfmsg(attrs=attrs), NLM_F_CREATE | NLM_F_EXCL)

    def link_set(self, index: int, *, ifname: str | None = None, mtu: int | None = None, up: bool | None = None) -> None:
        """Rename, resize or bring up/down link INDEX; what is None is left alone
        (the `change` mask names IFF_UP only when UP is given)."""
        attrs: list[list[Any]] = []
        if ifname is not None:
            attrs.append(["IFLA_IFNAME", ifname])
        if mtu is not None:
            attrs.append(["IFLA_MTU", mtu])
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        self._call(RTM_NEWLINK, self._ifinfmsg(index, attrs, flags, change))

    def link_del(self, index: int) -> None:
        """Delete link INDEX (a veth takes its peer with it)."""
        self._call(RTM_DELLINK, self._ifinfmsg(index))

    # -- addresses -------------------------------------------------------

    @staticmethod
    def _ifaddrmsg(index: int, address: str, prefixlen: int, flags: int = 0) -> ifaddrmsg:
        """IPv4 carries IFA_LOCAL (the address) and IFA_ADDRESS (the peer, the
        same on a non point-to-point link), as `ip addr add` sends them."""
        family = _address_family(address)
        msg = ifaddrmsg()
        msg["family"] = family
        msg["prefixlen"] = prefixlen
        msg["flags"] = flags
        msg["scope"] = 0
        msg["index"] = index
        msg["attrs"] = [["IFA_ADDRESS", address]]
        if family == socket.AF_INET:
            msg["attrs"].insert(0, ["IFA_LOCAL", address])
        return msg

    def addr_add(self, index: int, address: str, prefixlen: int, *, nodad: bool = False) -> None:
        """Add ADDRESS/PREFIXLEN to link INDEX; NODAD skips IPv6 duplicate
        address detection, so the address is usable at once."""
        msg = self._ifaddrmsg(index, address, prefixlen, IFA_F_NODAD if nodad else 0)
        self._call(RTM_NEWADDR, msg, NLM_F_CREATE | NLM_F_EXCL)

    def addr_del(self, index: int, address: str, prefixlen: int) -> None:
        """Remove ADDRESS/PREFIXLEN from link INDEX (EADDRNOTAVAIL if absent)."""
        self._call(RTM_DELADDR, self._ifaddrmsg(index, address, prefixlen))

    def addr_dump(self) -> list[ifaddrmsg]:
        """Every address of every link, both families."""

        def request() -> ifaddrmsg:
            msg = ifaddrmsg()
            msg["family"] = socket.AF_UNSPEC
            return msg

        return self._dump(RTM_GETADDR, request)

    # -- routes ----------------------------------------------------------

    @staticmethod
    def _rtmsg(
        family: int, dst: str | None, dst_len: int, oif: int | None, gateway: str | None,
        rtype: str, proto: int, table: int, scope: int,
    ) -> rtmsg:
        """A route message. Tables above 255 do not fit rtm_table: as iproute2
        does, the field then says RT_TABLE_UNSPEC and RTA_TABLE carries it."""
        if rtype not in RTN_TYPES:
            raise ValueError(f"route type must be one of {', '.join(RTN_TYPES)}, not {rtype!r}")
        msg = _rtmsg_class()()
        msg["family"] = _family(family)
        msg["dst_len"] = dst_len
        msg["table"] = table if table < 256 else RT_TABLE_UNSPEC
        msg["proto"] = proto
        msg["scope"] = scope
        msg["type"] = RTN_TYPES[rtype]
        msg["flags"] = 0
        attrs: list[list[Any]] = [["RTA_TABLE", table]]
        for name, value in (("RTA_DST", dst), ("RTA_OIF", oif), ("RTA_GATEWAY", gateway)):
            if value is not None:
                attrs.append([name, value])
        msg["attrs"] = attrs
        return msg

    def route_add(
        self, family: int, dst: str | None, dst_len: int, *, oif: int | None = None, gateway: str | None = None,
        rtype: str = "unicast", proto: int = 3, table: int = 254, replace: bool = False,
    ) -> None:
        """Add a route (DST None with DST_LEN 0: the default route). Scope as
        `ip route add` picks it: link for an IPv4 unicast route with no gateway
        (on-link), universe otherwise. REPLACE overwrites an existing route."""
        # IPv6 routes are always universe scope, as iproute2 sends them.
        scope = RT_SCOPE_LINK if rtype == "unicast" and gateway is None and family == 4 else RT_SCOPE_UNIVERSE
        msg = self._rtmsg(family, dst, dst_len, oif, gateway, rtype, proto, table, scope)
        self._call(RTM_NEWROUTE, msg, NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL))

    def route_del(
        self, family: int, dst: str | None, dst_len: int, *, oif: int | None = None, gateway: str | None = None,
        rtype: str = "unicast", proto: int | None = None, table: int = 254,
    ) -> None:
        """Delete the first route matching what is given. Scope NOWHERE and
        proto 0 (when None) are the kernel's wildcards, as with `ip route del`."""
        msg = self._rtmsg(family, dst, dst_len, oif, gateway, rtype, proto or 0, table, RT_SCOPE_NOWHERE)
        self._call(RTM_DELROUTE, msg)

    def route_dump(self, family: int, table: int | None = None) -> list[rtmsg]:
        """Routes of FAMILY (4 or 6) in TABLE, or in every table when None.
        The kernel dumps all tables; the filter is applied here."""
        af = _family(family)
        cls = _rtmsg_class()

        def request() -> rtmsg:
            msg = cls()
            msg["family"] = af
            return msg

        routes = self._dump(RTM_GETROUTE, request)
        if table is None:
            return routes
        return [r for r in routes if r.get_attr("RTA_TABLE", r["table"]) == table]
