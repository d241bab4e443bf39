"""A recording fake of the engine protocol (ipvnet.kernel.Engine).

It keeps a small model of the kernel (namespaces, links, addresses, routes),
applies operations to it the way the kernel would for what ipvnet does, and
records every operation it runs as its iproute2 text, so service tests can
pin the exact list, as sqlite-utils pins its SQL with a tracer. It is for the
logic between CLI and kernel; the kernel tests remain the proof on a real one.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from ipvnet.errors import Conflict, KernelError, NotFound
from ipvnet.kernel import Check, Engine, LinkInfo, OpRunner, RouteInfo
from ipvnet.ops import AddrAdd, AddrDel, LinkAdd, LinkDel, LinkSet, NetnsAdd, NetnsDel, Op, RouteAdd, RouteDel, Sysctl


@dataclass
class FakeKernel:
    namespaces: set[str] = field(default_factory=set)
    links: dict[str | None, dict[str, LinkInfo]] = field(default_factory=lambda: {None: {}})
    addrs: dict[tuple[str | None, str], set[str]] = field(default_factory=dict)
    routes: dict[str | None, list[RouteInfo]] = field(default_factory=lambda: {None: []})
    sysctls: dict[tuple[str | None, str], str] = field(default_factory=dict)
    next_index: int = 2

    def add_link(self, ns: str | None, name: str, kind: str = "dummy", mac: str = "02:00:00:00:00:01") -> LinkInfo:
        li = LinkInfo(self.next_index, name, kind, None, mac, True)
        self.next_index += 1
        self.links.setdefault(ns, {})[name] = li
        return li

    def add_namespace(self, ns: str) -> None:
        self.namespaces.add(ns)
        self.links[ns] = {}
        self.add_link(ns, "lo", "", "00:00:00:00:00:00").up = False
        self.routes[ns] = []


class FakeEngine(OpRunner):
    def __init__(self, kernel: FakeKernel | None = None) -> None:
        self.k = kernel or FakeKernel()
        self.log: list[str] = []
        self.fail: Callable[[Op], BaseException | None] = lambda op: None

    # -- facts -----------------------------------------------------------

    def _ns_links(self, ns: str | None) -> dict[str, LinkInfo]:
        if ns is not None and ns not in self.k.namespaces:
            raise NotFound(f"network namespace {ns!r} does not exist")
        return self.k.links.setdefault(ns, {})

    def link(self, name: str, ns: str | None = None) -> LinkInfo | None:
        return self._ns_links(ns).get(name)

    def links(self, ns: str | None = None) -> list[LinkInfo]:
        return list(self._ns_links(ns).values())

    def link_names(self, ns: str | None = None) -> list[str]:
        return list(self._ns_links(ns))

    def link_index(self, name: str, ns: str | None = None) -> int | None:
        li = self._ns_links(ns).get(name)
        return li.index if li is not None else None

    def addresses(self, ns: str | None = None) -> list[tuple[str, str]]:
        return [(dev, a) for (n, dev), addrs in sorted(self.k.addrs.items(), key=str) if n == ns for a in sorted(addrs)]

    def routes(self, ns: str | None = None) -> list[RouteInfo]:
        return list(self.k.routes.get(ns, []))

    def ns_exists(self, name: str) -> bool:
        return name in self.k.namespaces

    def namespaces(self) -> list[str]:
        return sorted(self.k.namespaces)

    def ipv6_available(self) -> bool:
        return True

    # -- execution: the shared OpRunner logic over a fake apply -----------------

    def _sysctls(self, ops: list[Sysctl]) -> None:
        for op in ops:
            self.apply(op)

    def apply(self, op: Op) -> None:
        self.log.append(op.describe())
        err = self.fail(op)
        if err is not None:
            raise err
        getattr(self, f"_{op.action}")(op)

    def _netns_add(self, op: NetnsAdd) -> None:
        if op.name in self.k.namespaces:
            raise Conflict(f"network namespace {op.name!r} already exists")
        self.k.add_namespace(op.name)

    def _netns_del(self, op: NetnsDel) -> None:
        self.k.namespaces.discard(op.name)
        self.k.links.pop(op.name, None)
        self.k.routes.pop(op.name, None)
        self.k.addrs = {k: v for k, v in self.k.addrs.items() if k[0] != op.name}

    def _link_add(self, op: LinkAdd) -> None:
        where = op.target_ns if op.target_ns else op.ns
        links = self._ns_links(where)
        if op.name in links:
            raise KernelError(f"{op.what()}: {errno.errorcode[errno.EEXIST]}")
        parent = self._ns_links(op.ns).get(op.link) if op.link else None
        if op.link and parent is None:
            raise NotFound(f"link {op.link!r} does not exist")
        mac = op.address or (parent.mac if parent is not None and op.kind == "ipvlan" else "02:00:00:00:00:99")
        li = self.k.add_link(where, op.name, op.kind, mac)
        li.mode, li.flag, li.vlan_id, li.up = op.mode or "", op.flag or "", op.vlan_id, False

    def _link_del(self, op: LinkDel) -> None:
        links = self._ns_links(op.ns)
        if links.pop(op.name, None) is None:
            return
        self.k.addrs.pop((op.ns, op.name), None)
        self.k.routes[op.ns] = [r for r in self.k.routes.get(op.ns, []) if r.dev != op.name]

    def _link_set(self, op: LinkSet) -> None:
        links = self._ns_links(op.ns)
        li = links.get(op.name)
        if li is None:
            raise NotFound(f"link {op.name!r} does not exist")
        if op.new_name is not None:
            links[op.new_name] = links.pop(op.name)
            li.name = op.new_name
        if op.up is not None:
            li.up = op.up

    def _addr_add(self, op: AddrAdd) -> None:
        if op.ifname not in self._ns_links(op.ns):
            raise NotFound(f"link {op.ifname!r} does not exist")
        self.k.addrs.setdefault((op.ns, op.ifname), set()).add(op.address)

    def _addr_del(self, op: AddrDel) -> None:
        self.k.addrs.get((op.ns, op.ifname), set()).discard(op.address)

    def _route_add(self, op: RouteAdd) -> None:
        r = RouteInfo(op.family, op.dst, op.ifname, op.gateway, op.proto or 3, op.blackhole)
        routes = self.k.routes.setdefault(op.ns, [])
        if any(x.family == r.family and x.dst == r.dst for x in routes):
            raise KernelError(f"{op.what()}: File exists")
        routes.append(r)

    def _route_del(self, op: RouteDel) -> None:
        routes = self.k.routes.get(op.ns, [])
        self.k.routes[op.ns] = [x for x in routes if not (x.family == op.family and x.dst == op.dst
                                                          and x.dev == op.ifname)]

    def _sysctl(self, op: Sysctl) -> None:
        self.k.sysctls[(op.ns, op.key)] = op.value

    def forget(self, ns: str) -> None:
        pass

    def probe(self) -> list[Check]:
        return [Check("ipvlan", True, "fake")]

    def close(self) -> None:
        pass

    def take_log(self) -> list[str]:
        out, self.log = self.log, []
        return out


def conforms() -> bool:
    """The fake implements the protocol (checked at runtime here and by mypy in `make lint`)."""
    engine: Engine = FakeEngine()
    return isinstance(engine, Engine)
