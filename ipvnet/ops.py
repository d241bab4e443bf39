"""Typed kernel operations: one small frozen dataclass per kind.

Each knows the iproute2 command it equals (for --dry-run, --debug and the
journal a human may read), its undo, and the context a failure is reported
in. The journal stores them in the previous release's shape
(`{"action", "ns", "args", "undo", "what"}`), so journals written by either
version can be read by the other.

`ns` None means the root (host) namespace.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ipvnet.record import asdict, dataclass, fields


@dataclass(frozen=True)
class Op:
    """Base of every operation."""

    action: ClassVar[str] = ""
    ns: str | None

    @property
    def where(self) -> str:
        return f"-n {self.ns} " if self.ns else ""

    def describe(self) -> str:
        raise NotImplementedError

    def undo(self) -> Op | None:
        """The operation that takes this one back, or None (it goes with a link's deletion, or cannot be undone)."""
        return None

    def what(self) -> str:
        """Context for an error: `create ipvlan link: File exists`."""
        return self.describe()

    def to_dict(self, with_undo: bool = True) -> dict[str, Any]:
        args = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ns"}
        d: dict[str, Any] = {"action": self.action, "ns": self.ns, "args": _legacy_args(self.action, args),
                             "what": self.what()}
        u = self.undo() if with_undo else None
        if u is not None:
            d["undo"] = u.to_dict(with_undo=False)
        return d


@dataclass(frozen=True)
class NetnsAdd(Op):
    action: ClassVar[str] = "netns_add"
    name: str = ""

    def describe(self) -> str:
        return f"ip netns add {self.name}"

    def undo(self) -> Op:
        return NetnsDel(None, self.name)

    def what(self) -> str:
        return f"create namespace {self.name}"


@dataclass(frozen=True)
class NetnsDel(Op):
    action: ClassVar[str] = "netns_del"
    name: str = ""

    def describe(self) -> str:
        return f"ip netns del {self.name}"


@dataclass(frozen=True)
class LinkAdd(Op):
    """A link of KIND; `target_ns` creates it directly in another namespace (IFLA_NET_NS_FD)."""

    action: ClassVar[str] = "link_add"
    name: str = ""
    kind: str = ""
    link: str | None = None  # parent link, in NS
    target_ns: str | None = None
    mtu: int | None = None
    address: str | None = None
    vlan_id: int | None = None
    mode: str | None = None  # ipvlan l2/l3/l3s, macvlan bridge/...
    flag: str | None = None  # ipvlan bridge/private/vepa

    def describe(self) -> str:
        s = f"ip {self.where}link add {self.name}"
        for key, value in (("link", self.link), ("netns", self.target_ns), ("mtu", self.mtu),
                           ("address", self.address)):
            if value:
                s += f" {key} {value}"
        s += f" type {self.kind}"
        if self.kind == "vlan":
            s += f" id {self.vlan_id}"
        elif self.kind == "ipvlan":
            s += f" mode {self.mode} {self.flag}"
        elif self.kind == "macvlan":
            s += f" mode {self.mode}"
        return s

    def undo(self) -> Op:
        return LinkDel(self.target_ns or self.ns, self.name)

    def what(self) -> str:
        if self.target_ns:  # born under a temporary name the user never sees
            return f"create {self.kind} link in namespace {self.target_ns}"
        return f"create {self.kind} link {self.name}"


@dataclass(frozen=True)
class LinkDel(Op):
    action: ClassVar[str] = "link_del"
    name: str = ""

    def describe(self) -> str:
        return f"ip {self.where}link del {self.name}"

    def what(self) -> str:
        return f"delete link {self.name}"


@dataclass(frozen=True)
class LinkSet(Op):
    action: ClassVar[str] = "link_set"
    name: str = ""
    new_name: str | None = None
    mtu: int | None = None
    up: bool | None = None

    def describe(self) -> str:
        s = f"ip {self.where}link set {self.name}"
        if self.new_name is not None:
            s += f" name {self.new_name}"
        if self.mtu is not None:
            s += f" mtu {self.mtu}"
        if self.up is not None:
            s += " up" if self.up else " down"
        return s

    def undo(self) -> Op | None:
        # Renaming back fails once the link is up (EBUSY): deleting it is the undo.
        return LinkDel(self.ns, self.new_name) if self.new_name is not None else None

    def what(self) -> str:
        if self.new_name is not None:
            return f"rename link {self.name} to {self.new_name}"
        return f"bring {self.name} {'up' if self.up else 'down'}" if self.up is not None else f"set link {self.name}"


@dataclass(frozen=True)
class AddrAdd(Op):
    action: ClassVar[str] = "addr_add"
    ifname: str = ""
    address: str = ""  # a/len
    nodad: bool = False

    def describe(self) -> str:
        return f"ip {self.where}addr add {self.address} dev {self.ifname}" + (" nodad" if self.nodad else "")

    def undo(self) -> Op:
        return AddrDel(self.ns, self.ifname, self.address)

    def what(self) -> str:
        return f"add address {self.address}"


@dataclass(frozen=True)
class AddrDel(Op):
    action: ClassVar[str] = "addr_del"
    ifname: str = ""
    address: str = ""

    def describe(self) -> str:
        return f"ip {self.where}addr del {self.address} dev {self.ifname}"

    def undo(self) -> Op:
        return AddrAdd(self.ns, self.ifname, self.address, ":" in self.address)


@dataclass(frozen=True)
class _Route(Op):
    """A route in the main table: `default`/DST, via GATEWAY or only `dev IFNAME`,
    or a blackhole (no device) with a protocol number of its own."""

    family: int = 4
    ifname: str | None = None
    gateway: str | None = None
    dst: str | None = None  # None: default
    blackhole: bool = False
    proto: int | None = None

    def _text(self, verb: str) -> str:
        fam = "-6 " if self.family == 6 else ""
        kind = "blackhole " if self.blackhole else ""
        s = f"ip {fam}{self.where}route {verb} {kind}{self.dst or 'default'}"
        if self.gateway:
            s += f" via {self.gateway}"
        if self.ifname:
            s += f" dev {self.ifname}"
        if self.proto is not None:
            s += f" proto {self.proto}"
        return s


@dataclass(frozen=True)
class RouteAdd(_Route):
    action: ClassVar[str] = "route_add"

    def describe(self) -> str:
        return self._text("add")

    def undo(self) -> Op:
        return RouteDel(**_route_fields(self))

    def what(self) -> str:
        if self.dst is None:
            return f"add IPv{self.family} default route"
        return f"add route {self.describe().split(' add ', 1)[1]}"


@dataclass(frozen=True)
class RouteDel(_Route):
    action: ClassVar[str] = "route_del"

    def describe(self) -> str:
        return self._text("del")

    def undo(self) -> Op:
        return RouteAdd(**_route_fields(self))

    def what(self) -> str:
        return f"delete IPv{self.family} route {self.dst or 'default'}"


@dataclass(frozen=True)
class Sysctl(Op):
    action: ClassVar[str] = "sysctl"
    key: str = ""  # below /proc/sys/net/
    value: str = ""

    def describe(self) -> str:
        pre = f"ip netns exec {self.ns} " if self.ns else ""
        # Slashes keep interface names with dots (eth0.20) unambiguous.
        return f"{pre}sysctl -w net/{self.key}={self.value}"

    def what(self) -> str:
        return f"set {self.key}"


def _route_fields(r: _Route) -> dict[str, Any]:
    return {f.name: getattr(r, f.name) for f in fields(r)}


OP_TYPES: dict[str, type[Op]] = {
    cls.action: cls for cls in (NetnsAdd, NetnsDel, LinkAdd, LinkDel, LinkSet, AddrAdd, AddrDel, RouteAdd, RouteDel,
                                Sysctl)
}


def _legacy_args(action: str, args: dict[str, Any]) -> dict[str, Any]:
    """The previous release's `args`: only the keys that are set."""
    return {k: v for k, v in args.items() if v is not None and not (v is False and k in ("blackhole",))}


def op_from_dict(d: dict[str, Any]) -> Op:
    """An operation from a journal entry (this release's or the previous one's).
    The stored `undo` is not needed: each type knows its own."""
    cls = OP_TYPES.get(d.get("action", ""))
    if cls is None:
        raise ValueError(f"unknown operation {d.get('action')!r}")
    names = {f.name for f in fields(cls)}
    args = {k: v for k, v in dict(d.get("args", {})).items() if k in names}
    return cls(ns=d.get("ns"), **args)


def undo_from_dict(d: dict[str, Any]) -> Op | None:
    """The undo a journal entry recorded (previous releases chose some undos by context)."""
    u = d.get("undo")
    return op_from_dict(u) if u else None


def as_plain(op: Op) -> dict[str, Any]:
    """All fields, for tests that compare operations structurally."""
    return {"action": op.action, **asdict(op)}
