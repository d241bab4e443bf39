"""The netlink engine: the one funnel through which every kernel read and
change goes (ipvnet.kernel.Engine is its protocol).

It runs a plan's operations in order and, when one fails, runs the undos of
the completed ones newest-first. Netlink goes over ipvnet.rtnl's plain
synchronous socket, pyroute2 being only the codec; a socket into a namespace
is opened by switching one thread into it briefly (ipvnet.netns): no helper
processes, no asyncio. This module is imported lazily, so read-only commands
never pay for netlink.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from ipvnet import netns, nspath
from ipvnet.errors import Conflict, KernelError, NotFound
from ipvnet.fault import Faults
from ipvnet.kernel import Check, LinkInfo, OpRunner, RouteInfo
from ipvnet.ops import (
    AddrAdd,
    AddrDel,
    LinkAdd,
    LinkDel,
    LinkSet,
    NetnsAdd,
    NetnsDel,
    Op,
    RouteAdd,
    RouteDel,
    Sysctl,
)
from ipvnet.rtnl import NetlinkError, Rtnl
from ipvnet.vocab import IPVLAN_FLAGS, IPVLAN_MODES, MACVLAN_MODES

MAX_SOCKETS = 32
RTN_UNICAST, RTN_BLACKHOLE = 1, 6
_IPVLAN_MODE_NAME = {v: k for k, v in IPVLAN_MODES.items()}
_IPVLAN_FLAG_NAME = {v: k for k, v in IPVLAN_FLAGS.items()}


def _link_info(msg: Any) -> LinkInfo:
    kind = msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) or ""
    data = msg.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
    mode = flag = ""
    vid = None
    if data is not None and not isinstance(data, (str, bytes)):
        if kind == "ipvlan":
            mode = _IPVLAN_MODE_NAME.get(data.get_attr("IFLA_IPVLAN_MODE"), "")
            flag = _IPVLAN_FLAG_NAME.get(data.get_attr("IFLA_IPVLAN_FLAGS") or 0, "")
        elif kind == "macvlan":
            mode = str(data.get_attr("IFLA_MACVLAN_MODE") or "")
        elif kind == "vlan":
            vid = data.get_attr("IFLA_VLAN_ID")
    return LinkInfo(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=kind,
        link=msg.get_attr("IFLA_LINK"),
        mac=msg.get_attr("IFLA_ADDRESS") or "",
        up=bool(msg["flags"] & 1),
        mode=mode,
        flag=flag,
        vlan_id=vid,
        mtu=msg.get_attr("IFLA_MTU") or 0,
    )


class NetlinkEngine(OpRunner):
    """Owns netlink sockets (one per namespace, at most MAX_SOCKETS) for the life of one command."""

    def __init__(self, trace: Callable[[str], None] | None = None, faults: Faults | None = None) -> None:
        self._sockets: dict[str | None, Rtnl] = {}
        self._indexes: dict[tuple[str | None, str], int] = {}
        self.trace = trace
        self.faults = faults
        self._do: dict[type, Callable[[Any], None]] = {
            NetnsAdd: self._netns_add, NetnsDel: self._netns_del, LinkAdd: self._link_add, LinkDel: self._link_del,
            LinkSet: self._link_set, AddrAdd: self._addr_add, AddrDel: self._addr_del, RouteAdd: self._route_add,
            RouteDel: self._route_del, Sysctl: self._sysctl,
        }

    # -- sockets ---------------------------------------------------------

    def sock(self, ns: str | None = None) -> Rtnl:
        sock = self._sockets.get(ns)
        if sock is None:
            # `rm --force`, `restore` and `apply` visit thousands of namespaces:
            # keep a bounded number of sockets open, not one per namespace.
            while len(self._sockets) >= MAX_SOCKETS:
                oldest = next(k for k in self._sockets if k is not None)
                self._sockets.pop(oldest).close()
            if ns is None:
                sock = Rtnl()
            else:
                try:
                    with netns.entered(ns):
                        sock = Rtnl()
                except FileNotFoundError:
                    raise NotFound(f"network namespace {ns!r} does not exist") from None
            self._sockets[ns] = sock
        return sock

    def forget(self, ns: str) -> None:
        self._indexes = {k: v for k, v in self._indexes.items() if k[0] != ns}
        sock = self._sockets.pop(ns, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> NetlinkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -----------------------------------------------------------

    def link(self, name: str, ns: str | None = None) -> LinkInfo | None:
        msg = self.sock(ns).link_get(name)
        return _link_info(msg) if msg is not None else None

    def links(self, ns: str | None = None) -> list[LinkInfo]:
        return [_link_info(m) for m in self.sock(ns).link_dump()]

    def link_names(self, ns: str | None = None) -> list[str]:
        return self.sock(ns).link_names()

    def link_index(self, name: str, ns: str | None = None) -> int | None:
        """Whether link NAME exists, cheaply (its index, remembered for the operations that follow)."""
        try:
            return self._index(ns, name)
        except NotFound:
            return None

    def addresses(self, ns: str | None = None) -> list[tuple[str, str]]:
        """(link name, address/prefix) for every address in NS."""
        names = {li.index: li.name for li in self.links(ns)}
        return [(names.get(m["index"], "?"), f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}")
                for m in self.sock(ns).addr_dump()]

    def routes(self, ns: str | None = None) -> list[RouteInfo]:
        """Unicast and blackhole routes of the main table, both families."""
        names = {li.index: li.name for li in self.links(ns)}
        out = []
        for family in (4, 6):
            for m in self.sock(ns).route_dump(family, table=254):
                if m["type"] not in (RTN_UNICAST, RTN_BLACKHOLE):
                    continue
                dst = m.get_attr("RTA_DST")
                oif = m.get_attr("RTA_OIF")
                out.append(RouteInfo(family, f"{dst}/{m['dst_len']}" if dst is not None and m["dst_len"] else None,
                                     names.get(oif, "?") if oif is not None else None, m.get_attr("RTA_GATEWAY"),
                                     m["proto"], m["type"] == RTN_BLACKHOLE))
        return out

    def ns_exists(self, name: str) -> bool:
        return nspath.exists(name)

    def namespaces(self) -> list[str]:
        return nspath.list_names()

    def ipv6_available(self) -> bool:
        return os.path.exists("/proc/sys/net/ipv6")

    # -- execution -------------------------------------------------------

    def apply(self, op: Op) -> None:
        if self.trace:
            self.trace(op.describe())
        self._do[type(op)](op)

    def _index(self, ns: str | None, name: str) -> int:
        """Link index by name, cached for the life of this engine: only this
        process changes the links it looks up while it holds the store lock,
        and it keeps the cache right on rename and delete."""
        key = (ns, name)
        idx = self._indexes.get(key)
        if idx is None:
            idx = self.sock(ns).link_index(name)
            if idx is None:
                where = f" in namespace {ns}" if ns else ""
                raise NotFound(f"link {name!r} does not exist{where}")
            self._indexes[key] = idx
        return idx

    def _sysctls(self, ops: list[Sysctl]) -> None:
        if self.trace:
            for op in ops:
                self.trace(op.describe())
        _write_sysctls(ops)

    def _sysctl(self, op: Sysctl) -> None:
        _write_sysctls([op])  # apply() traced it

    def _netns_add(self, op: NetnsAdd) -> None:
        try:
            netns.create(op.name)
        except FileExistsError:
            raise Conflict(f"network namespace {op.name!r} already exists") from None
        except netns.PrivateMountNamespace as e:
            raise KernelError(f"cannot create namespace {op.name}: {e.strerror}",
                              "run ipvnet under `nsenter --net=/run/netns/HOST` instead of `ip netns exec`") from None

    def _netns_del(self, op: NetnsDel) -> None:
        self.forget(op.name)
        netns.remove(op.name)

    def _link_add(self, op: LinkAdd) -> None:
        kw: dict[str, Any] = {"mtu": op.mtu}
        if op.link:
            kw["link"] = self._index(op.ns, op.link)
        if op.kind == "vlan":
            kw["vlan_id"] = op.vlan_id
        elif op.kind == "ipvlan":
            kw["ipvlan_mode"] = IPVLAN_MODES[op.mode or "l2"]
            kw["ipvlan_flags"] = IPVLAN_FLAGS[op.flag or "bridge"]
        elif op.kind == "macvlan":
            kw["macvlan_mode"] = MACVLAN_MODES[op.mode or "bridge"]
            kw["address"] = op.address
        fd = None
        if op.target_ns:
            try:
                fd = netns.open_fd(op.target_ns)
            except FileNotFoundError:
                raise NotFound(f"network namespace {op.target_ns!r} does not exist") from None
            kw["net_ns_fd"] = fd
        try:
            self.sock(op.ns).link_add(op.name, op.kind, **kw)
        finally:
            if fd is not None:
                os.close(fd)

    def _link_del(self, op: LinkDel) -> None:
        try:
            self.sock(op.ns).link_del(self._index(op.ns, op.name))
        except NotFound:
            return  # already gone is done
        finally:
            self._indexes.pop((op.ns, op.name), None)

    def _link_set(self, op: LinkSet) -> None:
        index = self._index(op.ns, op.name)
        if op.new_name is not None:
            self._indexes.pop((op.ns, op.name), None)  # re-learnt under the new name on next use
        self.sock(op.ns).link_set(index, ifname=op.new_name, mtu=op.mtu, up=op.up)

    def _addr_add(self, op: AddrAdd) -> None:
        ip, _, plen = op.address.partition("/")
        self.sock(op.ns).addr_add(self._index(op.ns, op.ifname), ip, int(plen), nodad=op.nodad)

    def _addr_del(self, op: AddrDel) -> None:
        ip, _, plen = op.address.partition("/")
        try:
            self.sock(op.ns).addr_del(self._index(op.ns, op.ifname), ip, int(plen))
        except NotFound:
            return

    def _route_args(self, op: RouteAdd | RouteDel) -> tuple[tuple[Any, ...], dict[str, Any]]:
        dst, dst_len = None, 0
        if op.dst:
            net = ipaddress.ip_network(op.dst)
            dst, dst_len = str(net.network_address), net.prefixlen
        kw: dict[str, Any] = {"gateway": op.gateway, "rtype": "blackhole" if op.blackhole else "unicast"}
        if op.ifname:
            kw["oif"] = self._index(op.ns, op.ifname)
        if op.proto is not None:
            kw["proto"] = op.proto
        return (op.family, dst, dst_len), kw

    def _route_add(self, op: RouteAdd) -> None:
        args, kw = self._route_args(op)
        self.sock(op.ns).route_add(*args, **kw)

    def _route_del(self, op: RouteDel) -> None:
        try:
            args, kw = self._route_args(op)
            self.sock(op.ns).route_del(*args, **kw)
        except NotFound:
            return
        except NetlinkError as e:
            if e.errno != errno.ESRCH:  # no such route: already gone
                raise

    # -- doctor ----------------------------------------------------------

    def probe(self) -> list[Check]:
        """Create each link kind in a throwaway namespace (modules load on
        demand, so /proc/modules would say "no" for things that work)."""
        from ipvnet.model import random_hex

        checks: list[Check] = []
        ns = f"ipvnet-doctor-{random_hex(3)}"
        try:
            netns.create(ns)
        except OSError as e:
            return [Check("netns-create", False, str(e))]
        try:
            sock = self.sock(ns)
            # A parent carries ipvlan or macvlan links, never both: each gets its own.
            # Without dummy support, a veth end stands in as the ipvlan/vlan parent.
            if _attempt(sock, checks, "dummy", "probe0", "dummy") or \
                    _attempt(sock, checks, "veth", "probe0", "veth", peer="probe0p"):
                parent = self._index(ns, "probe0")
                _attempt(sock, checks, "ipvlan", "probe-ipv", "ipvlan", link=parent, ipvlan_mode=0)
                _attempt(sock, checks, "8021q", "probe.5", "vlan", link=parent, vlan_id=5)
            if _attempt(sock, [], "veth", "probe1", "veth", peer="probe1p") or \
                    _attempt(sock, checks, "veth", "probe1", "veth", peer="probe1p"):
                parent = self._index(ns, "probe1")
                _attempt(sock, checks, "macvlan", "probe-mv", "macvlan", link=parent, macvlan_mode=4)
        finally:
            self.forget(ns)
            netns.remove(ns)
        return checks


def _attempt(sock: Rtnl, checks: list[Check], label: str, name: str, kind: str, **kw: Any) -> bool:
    try:
        sock.link_add(name, kind, **kw)
    except (OSError, ValueError) as e:
        checks.append(Check(label, False, f"cannot create {kind} links: {e}"))
        return False
    checks.append(Check(label, True, f"{kind} links"))
    return True


def _write_sysctls(ops: list[Sysctl]) -> None:
    """Sysctls of one namespace; /proc/sys/net shows the namespace of the thread that opens it."""
    ns = ops[0].ns
    if ns is None:
        for op in ops:
            _write_sysctl(op.key, op.value)
        return
    with netns.entered(ns):
        for op in ops:
            _write_sysctl(op.key, op.value)


def _write_sysctl(key: str, value: str) -> None:
    try:
        fd = os.open(f"/proc/sys/net/{key}", os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if key.startswith("ipv6/"):
            return  # IPv6 is disabled on this host: nothing to tune
        raise
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
