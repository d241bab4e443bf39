"""The netlink executor: the one funnel through which every kernel change goes.

It runs a plan's operations in order and, when one fails, runs the undos of
the completed ones newest-first. Sockets into a namespace are opened by
switching one thread into it briefly (see netns.py): no helper processes.
pyroute2 is imported here only, and lazily, so read-only commands never pay
for it.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipvnet import fault, netns
from ipvnet.errors import Conflict, IpvnetError, KernelError, NotFound
from ipvnet.plan import IPVLAN_FLAG_NUM, IPVLAN_MODE_NUM, Op

IFA_F_NODAD = 0x02
MAX_SOCKETS = 32
_pyroute2_ready = False


def _import_iproute() -> Any:
    """Import pyroute2's IPRoute only, and teach its ipvlan attribute table
    the IFLA_IPVLAN_FLAGS attribute it lacks.

    pyroute2's package __init__ imports every API it has (NDB, IPDB,
    conntrack, nftables, ...): ~40% of its import time, which a command run
    from a shell loop pays every time. When nothing has imported pyroute2
    yet, we register a bare package object first, so that importing
    `pyroute2.iproute.linux` loads only the modules it needs itself.
    """
    global _pyroute2_ready
    if "pyroute2" not in sys.modules:
        import importlib.util
        import types

        spec = importlib.util.find_spec("pyroute2")
        if spec is not None and spec.submodule_search_locations is not None:
            pkg = types.ModuleType("pyroute2")
            pkg.__path__ = list(spec.submodule_search_locations)
            pkg.__spec__ = spec
            pkg.__file__ = spec.origin
            sys.modules["pyroute2"] = pkg
    from pyroute2.iproute.linux import IPRoute

    if not _pyroute2_ready:
        from pyroute2.netlink.rtnl.ifinfmsg.plugins.ipvlan import ipvlan

        names = [n[0] for n in ipvlan.nla_map]
        if "IFLA_IPVLAN_FLAGS" not in names:
            ipvlan.nla_map = tuple(ipvlan.nla_map) + (("IFLA_IPVLAN_FLAGS", "uint16"),)
        _pyroute2_ready = True
    return IPRoute


@dataclass
class LinkInfo:
    index: int
    name: str
    kind: str
    link: int | None  # parent index (same namespace unless link_netnsid)
    mac: str
    up: bool
    mode: str = ""  # ipvlan l2/l3/l3s, macvlan mode
    flag: str = ""  # ipvlan bridge/private/vepa
    vlan_id: int | None = None
    mtu: int = 0


_IPVLAN_MODE_NAME = {v: k for k, v in IPVLAN_MODE_NUM.items()}
_IPVLAN_FLAG_NAME = {v: k for k, v in IPVLAN_FLAG_NUM.items()}


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


def _errno_of(e: BaseException) -> int | None:
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return code
    return getattr(e, "errno", None)


class Engine:
    """Owns netlink sockets (one per namespace) for the life of one command."""

    def __init__(self, trace: Callable[[str], None] | None = None) -> None:
        self._sockets: dict[str | None, Any] = {}
        self._indexes: dict[tuple[str | None, str], int] = {}
        self.trace = trace

    # -- sockets ---------------------------------------------------------

    def ipr(self, ns: str | None = None) -> Any:
        sock = self._sockets.get(ns)
        if sock is None:
            # `rm --force`, `restore` and `apply` visit thousands of namespaces:
            # keep a bounded number of sockets open, not one per namespace.
            while len(self._sockets) >= MAX_SOCKETS:
                oldest = next(k for k in self._sockets if k is not None)
                self._sockets.pop(oldest).close()
            IPRoute = _import_iproute()
            if ns is None:
                sock = IPRoute()
            else:
                try:
                    with netns.entered(ns):
                        sock = IPRoute()
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
            try:
                sock.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._sockets.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- facts -----------------------------------------------------------

    def link(self, name: str, ns: str | None = None) -> LinkInfo | None:
        try:
            msgs = self.ipr(ns).link("get", ifname=name)
        except Exception as e:  # noqa: BLE001 - pyroute2 raises NetlinkError
            if _errno_of(e) in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _link_info(msgs[0]) if msgs else None

    def links(self, ns: str | None = None) -> list[LinkInfo]:
        return [_link_info(m) for m in self.ipr(ns).link("dump")]

    def addresses(self, ns: str | None = None) -> list[tuple[str, str]]:
        """(link name, address/prefix) for every address in NS."""
        names = {li.index: li.name for li in self.links(ns)}
        out = []
        for m in self.ipr(ns).addr("dump"):
            out.append((names.get(m["index"], "?"), f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}"))
        return out

    def routes(self, ns: str | None = None) -> list[tuple[int, str | None, str, str | None]]:
        """(family, destination or None for default, link name, gateway) of each
        unicast route in the main table."""
        names = {li.index: li.name for li in self.links(ns)}
        out = []
        for fam, family in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
            for m in self.ipr(ns).route("dump", family=fam, table=254):
                if m["type"] != 1:  # RTN_UNICAST
                    continue
                dst = m.get_attr("RTA_DST")
                dest = f"{dst}/{m['dst_len']}" if dst is not None and m["dst_len"] else None
                out.append((family, dest, names.get(m.get_attr("RTA_OIF"), "?"), m.get_attr("RTA_GATEWAY")))
        return out

    def default_routes(self, ns: str | None = None) -> list[tuple[int, str, str | None]]:
        """(family, link name, gateway) of each default route in the main table."""
        return [(fam, dev, gw) for fam, dst, dev, gw in self.routes(ns) if dst is None]

    def host_routes(self) -> list[str]:
        """Destinations of the root namespace's routes (for default-pool picking)."""
        out = []
        for fam in (socket.AF_INET, socket.AF_INET6):
            for m in self.ipr().route("dump", family=fam):
                dst = m.get_attr("RTA_DST")
                if dst and m["dst_len"] > 0:
                    out.append(f"{dst}/{m['dst_len']}")
        return out

    # -- execution -------------------------------------------------------

    def run(self, ops: list[Op], advance: Callable[[], None] | None = None) -> None:
        """Apply ops in order; on failure undo the completed ones and re-raise."""
        done: list[Op] = []
        try:
            i = 0
            while i < len(ops):
                op = ops[i]
                if op.action == "sysctl" and op.ns is not None:
                    # Consecutive sysctls in one namespace share one setns round trip.
                    group = [op]
                    while i + len(group) < len(ops) and ops[i + len(group)].action == "sysctl" and \
                            ops[i + len(group)].ns == op.ns:
                        group.append(ops[i + len(group)])
                    for g in group:
                        fault.point(g.action, g.describe())
                    self._sysctls(op.ns, group)
                else:
                    group = [op]
                    fault.point(op.action, op.describe())
                    self.apply(op)
                for g in group:
                    done.append(g)
                    if advance is not None:
                        advance()
                i += len(group)
        except BaseException as e:
            leftovers = self.rollback(done)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            err = e if isinstance(e, IpvnetError) else self._explain(op, e)
            if leftovers:
                err.hint = (err.hint + "; " if err.hint else "") + "rollback incomplete: " + "; ".join(leftovers)
            raise err from (None if err is e else e)

    def rollback(self, done: list[Op]) -> list[str]:
        """Undo newest-first, keep going past failures, return what failed."""
        failures = []
        for op in reversed(done):
            if op.undo is None:
                continue
            try:
                self.apply(op.undo)
            except Exception as e:  # noqa: BLE001 - we report and continue
                if _errno_of(e) in (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL):
                    continue
                failures.append(f"{op.undo.describe()}: {e}")
        return failures

    def _explain(self, op: Op, e: BaseException) -> IpvnetError:
        code = _errno_of(e)
        what = op.what or op.describe()
        if op.action == "link_add" and code == errno.EOPNOTSUPP:
            kind = op.args.get("kind")
            return KernelError(
                f"{what}: the kernel does not support {kind} links",
                f"load the module ({'8021q' if kind == 'vlan' else kind}) or run `ipvnet doctor`",
            )
        if code == errno.EADDRINUSE:
            return Conflict(
                f"{what}: the kernel reports the address is already assigned to another link on the same parent",
                "choose another --ip, or detach the namespace that holds it",
            )
        if code == errno.EEXIST:
            return Conflict(f"{what}: already exists in the kernel", "run `ipvnet check`")
        if code == errno.EBUSY and op.action == "link_add":
            return Conflict(
                f"{what}: the parent is busy (it may already carry links of another driver or mode)",
                "use another parent",
            )
        if code == errno.EPERM:
            return KernelError(f"{what}: operation not permitted", "run as root")
        msg = os.strerror(code) if isinstance(code, int) else str(e)
        return KernelError(f"{what}: {msg}")

    def apply(self, op: Op) -> None:
        if self.trace:
            self.trace(op.describe())
        getattr(self, f"_do_{op.action}")(op.ns, **op.args)

    def _index(self, ns: str | None, name: str) -> int:
        """Link index by name, cached for the life of this engine: only this
        process changes the links it looks up while it holds the store lock,
        and it keeps the cache right on rename and delete."""
        key = (ns, name)
        idx = self._indexes.get(key)
        if idx is not None:
            return idx
        found = self.ipr(ns).link_lookup(ifname=name)
        if not found:
            where = f" in namespace {ns}" if ns else ""
            raise NotFound(f"link {name!r} does not exist{where}")
        self._indexes[key] = found[0]
        return found[0]

    def _sysctls(self, ns: str, ops: list[Op]) -> None:
        if self.trace:
            for op in ops:
                self.trace(op.describe())
        with netns.entered(ns):
            for op in ops:
                _write_sysctl(f"/proc/sys/net/{op.args['key']}", op.args["value"])

    def _do_netns_add(self, _ns: None, name: str) -> None:
        try:
            netns.create(name)
        except FileExistsError:
            raise Conflict(f"network namespace {name!r} already exists") from None

    def _do_netns_del(self, _ns: None, name: str) -> None:
        self.forget(name)
        netns.remove(name)

    def _do_link_add(self, ns: str | None, name: str, kind: str, **a: Any) -> None:
        spec: dict[str, Any] = {"ifname": name, "kind": kind}
        if a.get("mtu"):
            spec["mtu"] = a["mtu"]
        if kind == "vlan":
            spec["link"] = self._index(ns, a["link"])
            spec["vlan_id"] = a["vlan_id"]
        elif kind == "ipvlan":
            spec["link"] = self._index(ns, a["link"])
            spec["ipvlan_mode"] = IPVLAN_MODE_NUM[a["mode"]]
            spec["ipvlan_flags"] = IPVLAN_FLAG_NUM[a["flag"]]
        elif kind == "macvlan":
            spec["link"] = self._index(ns, a["link"])
            spec["macvlan_mode"] = a["mode"]
            if a.get("address"):
                spec["address"] = a["address"]
        target = a.get("target_ns")
        fd = None
        if target:
            try:
                fd = netns.open_fd(target)
            except FileNotFoundError:
                raise NotFound(f"network namespace {target!r} does not exist") from None
            spec["net_ns_fd"] = fd
        try:
            self.ipr(ns).link("add", **spec)
        finally:
            if fd is not None:
                os.close(fd)

    def _do_link_del(self, ns: str | None, name: str) -> None:
        try:
            self.ipr(ns).link("del", index=self._index(ns, name))
        except NotFound:
            return  # already gone is done
        finally:
            self._indexes.pop((ns, name), None)

    def _do_link_set(self, ns: str | None, name: str, **a: Any) -> None:
        spec: dict[str, Any] = {"index": self._index(ns, name)}
        if "new_name" in a:
            spec["ifname"] = a["new_name"]
            self._indexes.pop((ns, name), None)  # re-learnt under the new name on next use
        if "mtu" in a:
            spec["mtu"] = a["mtu"]
        if "up" in a:
            spec["state"] = "up" if a["up"] else "down"
        self.ipr(ns).link("set", **spec)

    def _addr_spec(self, ns: str | None, ifname: str, address: str) -> dict[str, Any]:
        ip, _, plen = address.partition("/")
        return {"index": self._index(ns, ifname), "address": ip, "prefixlen": int(plen)}

    def _do_addr_add(self, ns: str | None, ifname: str, address: str, nodad: bool = False) -> None:
        spec = self._addr_spec(ns, ifname, address)
        if nodad:
            spec["flags"] = IFA_F_NODAD
        self.ipr(ns).addr("add", **spec)

    def _do_addr_del(self, ns: str | None, ifname: str, address: str, nodad: bool = False) -> None:
        try:
            self.ipr(ns).addr("del", **self._addr_spec(ns, ifname, address))
        except NotFound:
            return

    def _route_spec(
        self, ns: str | None, family: int, ifname: str, gateway: str | None, dst: str | None = None
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "family": socket.AF_INET if family == 4 else socket.AF_INET6,
            "dst": dst or ("0.0.0.0/0" if family == 4 else "::/0"),
            "oif": self._index(ns, ifname),
        }
        if gateway:
            spec["gateway"] = gateway
        return spec

    def _do_route_add(self, ns: str | None, **route: Any) -> None:
        self.ipr(ns).route("add", **self._route_spec(ns, **route))

    def _do_route_del(self, ns: str | None, **route: Any) -> None:
        try:
            self.ipr(ns).route("del", **self._route_spec(ns, **route))
        except NotFound:
            return
        except Exception as e:  # noqa: BLE001
            if _errno_of(e) != errno.ESRCH:  # no such route: already gone
                raise

    def _do_sysctl(self, ns: str | None, key: str, value: str) -> None:
        path = f"/proc/sys/net/{key}"
        # /proc/sys/net shows the namespace of the thread that opens it.
        if ns is None:
            _write_sysctl(path, value)
        else:
            with netns.entered(ns):
                _write_sysctl(path, value)


def _write_sysctl(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if "/ipv6/" in path:
            return  # IPv6 is disabled on this host: nothing to tune
        raise
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
