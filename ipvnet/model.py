"""The data model: networks, their subnets and the namespaces attached to them.

Pure: no I/O. Everything that reaches a path, a TOML key, a hosts file or
netlink is validated here first, so the shell never sees a hostile name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from ipvnet.errors import InvalidArgument
from ipvnet.record import dataclass, field, replace
from ipvnet.vocab import DRIVERS, OPTION_BY_KEY, option_keys

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

IFNAMSIZ = 15  # bytes, without the terminating NUL

# Names become file names under /etc/netns and /run/netns, TOML keys and
# hosts-file entries: keep them to what a hostname may hold, plus '_' and '.'.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*")
MAX_NAME = 64


def validate_name(value: str, what: str = "name", max_len: int = MAX_NAME) -> str:
    """Network, namespace and alias names: letters, digits, '_', '.', '-'."""
    if not value or len(value) > max_len or not _NAME_RE.fullmatch(value) or value.endswith("."):
        raise InvalidArgument(
            f"invalid {what} {value!r}",
            f"use 1-{max_len} letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    if ".." in value:
        raise InvalidArgument(f"invalid {what} {value!r}", "'..' is not allowed in names")
    return value


def validate_ifname(value: str, what: str = "interface name") -> str:
    """Kernel link names: at most 15 bytes, no '/', ':', whitespace or NUL."""
    if not value or len(value.encode()) > IFNAMSIZ or not _IFNAME_RE.fullmatch(value):
        raise InvalidArgument(
            f"invalid {what} {value!r}",
            f"link names are 1-{IFNAMSIZ} bytes of letters, digits, '_', '.', '-' or '@'",
        )
    return value


def parse_network(text: str, what: str = "subnet") -> IPNetwork:
    """A CIDR whose host bits are zero (Docker refuses 10.0.0.1/24 too)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}", "expected CIDR notation such as 192.168.20.0/24") from None
    if "/" not in text:
        raise InvalidArgument(f"invalid {what} {text!r}", "add a prefix length, such as /24")
    if net.network_address != ipaddress.ip_interface(text.strip()).ip:
        raise InvalidArgument(
            f"invalid {what} {text!r}: host bits are set", f"did you mean {net}?"
        )
    return net


def parse_address(text: str, what: str = "address") -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}", "expected an IPv4 or IPv6 address") from None


def parse_key_values(items: tuple[str, ...] | list[str], what: str) -> dict[str, str]:
    """KEY=VALUE pairs from repeated options; a key given twice is an error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidArgument(f"invalid {what} {item!r}", "expected KEY=VALUE")
        if key in out:
            raise InvalidArgument(f"{what} {key!r} given twice")
        if "\n" in value or "\x00" in value or "\n" in key or "\x00" in key:
            raise InvalidArgument(f"invalid {what} {item!r}", "no newlines or NUL bytes")
        out[key] = value
    return out


@dataclass(frozen=True)
class ParentSpec:
    """What `-o parent=` asks for: an existing link, or IF.VID to create."""

    name: str
    base: str | None = None  # set when name is IF.VID
    vlan_id: int | None = None


def parse_parent(value: str) -> ParentSpec:
    validate_ifname(value, "parent interface")
    if value == "lo":
        raise InvalidArgument("'lo' cannot be a parent", "name a real interface such as eth0 or eth0.20")
    base, dot, vid = value.rpartition(".")
    if dot and base and vid.isdigit():
        vlan_id = int(vid)
        if not 1 <= vlan_id <= 4094:
            raise InvalidArgument(f"invalid vlan id {vid} in parent {value!r}", "vlan ids are 1-4094")
        if base == "lo":
            raise InvalidArgument("'lo' cannot be a vlan base", "name a real interface")
        return ParentSpec(value, base, vlan_id)
    return ParentSpec(value)


def normalize_options(driver: str, raw: dict[str, str]) -> dict[str, str]:
    """Validate `-o` options and fill in the defaults Docker applies (ipvnet.vocab holds the table)."""
    if driver not in DRIVERS:
        raise InvalidArgument(f"unknown driver {driver!r}", f"use one of: {', '.join(DRIVERS)}")
    allowed = option_keys(driver)
    opts = {k: str(v) for k, v in raw.items()}
    for key in opts:
        if key not in allowed:
            raise InvalidArgument(
                f"unknown option {key!r} for driver {driver}", f"valid options: {', '.join(allowed)}"
            )
    for key in allowed:
        spec = OPTION_BY_KEY[key]
        if spec.default is not None:
            opts.setdefault(key, spec.default)
        if spec.choices and key in opts:
            value = opts[key] = opts[key].lower()
            if value not in spec.choices:
                raise InvalidArgument(f"invalid {key} {value!r}", f"use one of: {', '.join(spec.choices)}")
    if "parent" in opts:
        parse_parent(opts["parent"])
    if "host_access" in opts:
        opts["host_access"] = str(parse_address(opts["host_access"], "host_access address"))
    if "mtu" in opts:
        mtu = opts["mtu"]
        if not mtu.isdigit() or not 68 <= int(mtu) <= 65535:
            raise InvalidArgument(f"invalid mtu {mtu!r}", "use a number from 68 to 65535")
        opts["mtu"] = str(int(mtu))
    return opts


def _known(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Keys of D this version does not know: kept and written back, so a newer
    ipvnet's additions survive a save by this one."""
    return {k: v for k, v in d.items() if k not in keys}


@dataclass(frozen=True)
class SubnetConfig:
    subnet: IPNetwork
    gateway: IPAddress | None = None
    ip_range: IPNetwork | None = None
    aux: tuple[tuple[str, IPAddress], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    KEYS = ("subnet", "gateway", "ip_range", "aux")

    @property
    def version(self) -> int:
        return self.subnet.version

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {**self.extra, "subnet": str(self.subnet)}
        if self.gateway is not None:
            d["gateway"] = str(self.gateway)
        if self.ip_range is not None:
            d["ip_range"] = str(self.ip_range)
        if self.aux:
            d["aux"] = {k: str(v) for k, v in self.aux}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubnetConfig:
        gw = d.get("gateway")
        rng = d.get("ip_range")
        return cls(
            subnet=ipaddress.ip_network(d["subnet"]),
            gateway=ipaddress.ip_address(gw) if gw else None,
            ip_range=ipaddress.ip_network(rng) if rng else None,
            aux=tuple((k, ipaddress.ip_address(v)) for k, v in d.get("aux", {}).items()),
            extra=_known(d, cls.KEYS),
        )


@dataclass(frozen=True)
class Endpoint:
    """A namespace attached to a network: one link in NS, up to one address per family."""

    ns: str
    ifname: str
    endpoint_id: str
    seq: int  # global attach order; ties in gw-priority go to the lower
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None
    mac: str = ""
    aliases: tuple[str, ...] = ()
    gw_priority: int = 0
    created_ns: bool = False  # ipvnet made the namespace (attach --create, run-ns)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    KEYS = ("ifname", "endpoint_id", "seq", "gw_priority", "ipv4", "ipv6", "mac", "aliases", "created_ns")

    def addresses(self) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [a for a in (self.ipv4, self.ipv6) if a is not None]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            **self.extra,
            "ifname": self.ifname,
            "endpoint_id": self.endpoint_id,
            "seq": self.seq,
            "gw_priority": self.gw_priority,
        }
        if self.ipv4 is not None:
            d["ipv4"] = str(self.ipv4)
        if self.ipv6 is not None:
            d["ipv6"] = str(self.ipv6)
        if self.mac:
            d["mac"] = self.mac
        if self.aliases:
            d["aliases"] = list(self.aliases)
        if self.created_ns:
            d["created_ns"] = True
        return d

    @classmethod
    def from_dict(cls, ns: str, d: dict[str, Any]) -> Endpoint:
        v4 = d.get("ipv4")
        v6 = d.get("ipv6")
        return cls(
            ns=ns,
            ifname=d.get("ifname", "eth0"),
            endpoint_id=d.get("endpoint_id", ""),
            seq=int(d.get("seq", 0)),
            ipv4=ipaddress.IPv4Interface(v4) if v4 else None,
            ipv6=ipaddress.IPv6Interface(v6) if v6 else None,
            mac=d.get("mac", ""),
            aliases=tuple(d.get("aliases", ())),
            gw_priority=int(d.get("gw_priority", 0)),
            created_ns=bool(d.get("created_ns", False)),
            extra=_known(d, cls.KEYS),
        )


def _checked_raw(ns: str, d: Any) -> dict[str, Any]:
    """A stored endpoint entry, checked cheaply (inet_pton, int) so that parsing it
    later cannot fail: a broken entry is still an error at load, naming the file."""
    if not isinstance(d, dict):
        raise ValueError(f"endpoint {ns} is not a table")
    entry: dict[str, Any] = d
    if not isinstance(entry.get("seq", 0), int):  # a hand-edited "5": max_seq compares integers
        entry = {**entry, "seq": int(entry["seq"])}
    int(d.get("gw_priority", 0))
    for key, family, bits in (("ipv4", socket.AF_INET, 32), ("ipv6", socket.AF_INET6, 128)):
        v = d.get(key)
        if v:
            addr, _, plen = str(v).partition("/")
            try:
                socket.inet_pton(family, addr)
            except OSError:
                raise ValueError(f"endpoint {ns}: invalid {key} {v!r}") from None
            if not plen.isdigit() or int(plen) > bits:
                raise ValueError(f"endpoint {ns}: invalid {key} {v!r}")
    return entry


AddressKey = tuple[int, int]  # (IP version, address as an integer)


def address_keys(entry: Endpoint | dict[str, Any]) -> list[AddressKey]:
    """The address keys of one member, from its stored text where it was not parsed."""
    if isinstance(entry, Endpoint):
        return [(a.version, int(a.ip)) for a in entry.addresses()]
    keys = []
    if a := entry.get("ipv4"):
        keys.append((4, int.from_bytes(socket.inet_pton(socket.AF_INET, a.partition("/")[0]), "big")))
    if a := entry.get("ipv6"):
        keys.append((6, int.from_bytes(socket.inet_pton(socket.AF_INET6, a.partition("/")[0]), "big")))
    return keys


class Endpoints(Mapping[str, Endpoint]):
    """NS -> Endpoint, each parsed on first use.

    Every attach reads and writes its whole network; with a thousand members,
    parsing every entry was most of that work. Entries stay in the form they
    were stored in (a dict from TOML, or the JSON text of one line of the
    store's cached copy) until someone looks at them, and the untouched ones
    are written back as they were read. What an entry became when looked at
    is remembered beside it, in a memo shared by the maps derived from one
    another, so that `_items` itself never changes and `changes` can tell
    untouched entries by identity. Immutable from outside: `with_` and
    `without` return new maps.

    Two facts every attach needs, which addresses are held (by whom) and the
    highest seq (after a detach, an upper bound), are derived from all
    members; each is computed once, carried from map to map, and may be
    handed in by the store (`prime`) so that an attach does not walk a
    thousand members.
    """

    __slots__ = ("_items", "_memo", "_held", "_top", "_root", "_touched", "_dropped")

    def __init__(self, items: dict[str, Endpoint | dict[str, Any] | str] | None = None,
                 memo: dict[str, list[Any]] | None = None) -> None:
        self._items: dict[str, Endpoint | dict[str, Any] | str] = dict(items or {})
        self._memo: dict[str, list[Any]] = {} if memo is None else memo  # ns -> [stored, dict, Endpoint | None]
        self._held: dict[AddressKey, str] | None = None
        self._top: int | None = None
        # Lineage, so that `changes` costs what changed, not what is there: the
        # map this one was derived from by with_/without, and the namespaces
        # added or replaced (in order) and removed since.
        self._root: Endpoints | None = None
        self._touched: dict[str, None] = {}
        self._dropped: frozenset[str] = frozenset()

    def _derive(self) -> Endpoints:
        out = Endpoints(self._items, self._memo)
        out._root = self._root or self
        out._touched, out._dropped = dict(self._touched), self._dropped
        return out

    @classmethod
    def from_raw(cls, raw: dict[str, Any], checked: bool = False) -> Endpoints:
        """CHECKED: the entries were checked when they were parsed from TOML (the
        store's cached copy), so they are taken as they are."""
        return cls(dict(raw) if checked else {ns: _checked_raw(ns, d) for ns, d in raw.items()})

    def prime(self, held: dict[AddressKey, str] | None, top: int | None) -> None:
        """Take the address index and highest seq as the store kept them for these entries."""
        self._held, self._top = held, top

    def _memo_of(self, ns: str) -> list[Any]:
        v = self._items[ns]
        m = self._memo.get(ns)
        if m is None or m[0] is not v:
            m = self._memo[ns] = [v, json.loads(v) if isinstance(v, str) else v, None]
        return m

    def _entry(self, ns: str) -> Endpoint | dict[str, Any]:
        """NS's entry, parsed if it was, else its stored dict."""
        v = self._items[ns]
        return v if isinstance(v, Endpoint) else self._memo_of(ns)[1]

    def _entries(self) -> dict[str, Endpoint | dict[str, Any]]:
        """Every entry as `_entry` gives it (for the walks over all members); the
        ones still JSON text are decoded together, in one call."""
        items, memo = self._items, self._memo
        texts = [ns for ns, v in items.items() if isinstance(v, str) and (ns not in memo or memo[ns][0] is not v)]
        if texts:
            decoded = json.loads("[" + ",".join([items[ns] for ns in texts]) + "]")  # type: ignore[misc]
            for ns, d in zip(texts, decoded, strict=True):
                memo[ns] = [items[ns], d, None]
        return {ns: v if isinstance(v, Endpoint) else self._memo_of(ns)[1] for ns, v in items.items()}

    def __getitem__(self, ns: str) -> Endpoint:
        v = self._items[ns]
        if isinstance(v, Endpoint):
            return v
        m = self._memo_of(ns)
        if m[2] is None:
            m[2] = Endpoint.from_dict(ns, m[1])
        return m[2]  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, ns: object) -> bool:
        return ns in self._items

    def __repr__(self) -> str:
        return f"Endpoints({sorted(self._items)})"

    def with_(self, ep: Endpoint) -> Endpoints:
        out = self._derive()
        out._items[ep.ns] = ep
        out._touched[ep.ns] = None  # a member already touched keeps its place, as in _items
        out._dropped = self._dropped - {ep.ns}
        if ep.ns not in self._items:  # a replaced member would leave stale keys: recompute then
            if self._held is not None:
                out._held = dict(self._held)
                for k in address_keys(ep):
                    out._held[k] = ep.ns
            if self._top is not None:
                out._top = max(self._top, ep.seq)
        return out

    def without(self, ns: str) -> Endpoints:
        if ns not in self._items:
            return self  # immutable: nothing to copy
        out = self._derive()
        del out._items[ns]
        out._touched.pop(ns, None)
        out._dropped = self._dropped | {ns}
        if self._held is not None:
            out._held = dict(self._held)
            for k in address_keys(self._entry(ns)):
                if out._held.get(k) == ns:
                    del out._held[k]
        out._top = self._top  # an upper bound from now on: seq orders members, it only has to grow
        return out

    def to_dict(self, ns: str) -> dict[str, Any]:
        v = self._entry(ns)
        return v.to_dict() if isinstance(v, Endpoint) else v

    def changes(self, new: Endpoints) -> tuple[list[str] | None, list[str]]:
        """(added, removed) namespaces from SELF to NEW, when the entries both hold are
        the very same (untouched); (None, []) when one of them changed."""
        mine, theirs = self._items, new._items
        if new is self:
            return [], []
        if new._root is self:  # NEW derives from SELF: walk only what changed
            if any(ns in mine for ns in new._touched):
                return None, []
            return list(new._touched), [ns for ns in new._dropped if ns in mine]
        for ns in mine.keys() & theirs.keys():
            if mine[ns] is not theirs[ns]:
                return None, []
        return [ns for ns in theirs if ns not in mine], [ns for ns in mine if ns not in theirs]

    def to_dicts(self) -> dict[str, dict[str, Any]]:
        return {ns: v.to_dict() if isinstance(v, Endpoint) else v for ns, v in self._entries().items()}

    def entries(self) -> Iterator[tuple[str, Endpoint | dict[str, Any]]]:
        """(ns, Endpoint or its stored dict), whichever is at hand: nothing is parsed."""
        return iter(self._entries().items())

    def raw(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(ns, stored form) of each entry, without parsing: for the hot paths (IPAM, hosts files)."""
        for ns, v in self._entries().items():
            yield ns, v.to_dict() if isinstance(v, Endpoint) else v

    def held(self) -> dict[AddressKey, str]:
        """Address key -> the namespace holding it. Shared: callers must not change it."""
        if self._held is None:
            # Walked only without the store's copy (which hands the index in) or
            # after a member was replaced.
            self._held = {k: ns for ns, e in self._entries().items() for k in address_keys(e)}
        return self._held

    def max_seq(self) -> int:
        if self._top is None:
            top = 0
            for v in self._entries().values():  # no generator, no conversion
                seq = v.seq if isinstance(v, Endpoint) else v.get("seq", 0)
                if seq > top:
                    top = seq
            self._top = int(top)
        return self._top

    def derived(self) -> tuple[dict[AddressKey, str] | None, int | None]:
        """The index and highest seq where already known (for the store to keep), else None."""
        return self._held, self._top


# How ipvnet came to own a parent link: "existing" links are never deleted.
PARENT_EXISTING = "existing"
PARENT_VLAN = "vlan"
PARENT_DUMMY = "dummy"


@dataclass(frozen=True)
class Network:
    name: str
    id: str
    created: str
    driver: str
    parent: str
    parent_kind: str  # PARENT_EXISTING, PARENT_VLAN (we made IF.VID) or PARENT_DUMMY
    subnets: tuple[SubnetConfig, ...]
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    enable_ipv6: bool = False
    endpoints: Endpoints = field(default_factory=Endpoints)
    enable_ipv4: bool = True  # False: IPv6-only by request (`--ipv4=false`, Docker 28)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    cluster: str = ""  # spans hosts: its subnets are the blocks this host claimed (ipvnet.clusters)

    KEYS = ("id", "created", "driver", "parent", "parent_kind", "internal", "enable_ipv6", "enable_ipv4", "options",
            "labels", "subnets", "endpoints", "cluster")

    @property
    def mode(self) -> str:
        """ipvlan_mode, or macvlan_mode for macvlan networks."""
        return self.options.get("ipvlan_mode") or self.options.get("macvlan_mode", "")

    @property
    def is_l3(self) -> bool:
        return self.driver == "ipvlan" and self.mode in ("l3", "l3s")

    @property
    def mtu(self) -> int | None:
        m = self.options.get("mtu")
        return int(m) if m else None

    def subnets_of(self, version: int) -> list[SubnetConfig]:
        return [s for s in self.subnets if s.version == version]

    def subnet_for(self, addr: IPAddress) -> SubnetConfig | None:
        for s in self.subnets:
            if s.version == addr.version and addr in s.subnet:
                return s
        return None

    def with_endpoint(self, ep: Endpoint) -> Network:
        return replace(self, endpoints=self.endpoints.with_(ep))

    def without_endpoint(self, ns: str) -> Network:
        return replace(self, endpoints=self.endpoints.without(ns))

    def to_dict(self, endpoints: bool = True) -> dict[str, Any]:
        """ENDPOINTS false: the namespaces left out (an empty table), for a store
        that writes them apart."""
        d = {
            **self.extra,
            "id": self.id,
            "created": self.created,
            "driver": self.driver,
            "parent": self.parent,
            "parent_kind": self.parent_kind,
            "internal": self.internal,
            "enable_ipv6": self.enable_ipv6,
            "enable_ipv4": self.enable_ipv4,
            "options": dict(self.options),
            "labels": dict(self.labels),
            "subnets": [s.to_dict() for s in self.subnets],
            "endpoints": self.endpoints.to_dicts() if endpoints else {},
        }
        if self.cluster:
            d["cluster"] = self.cluster
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any], checked: bool = False) -> Network:
        # Every key but the few that identify a network has a default, so a
        # store written by an older ipvnet loads instead of breaking.
        driver = d.get("driver", "ipvlan")
        options = dict(d.get("options", {}))
        if driver == "ipvlan":
            options.setdefault("ipvlan_mode", "l2")
            options.setdefault("ipvlan_flag", "bridge")
        else:
            options.setdefault("macvlan_mode", "bridge")
        return cls(
            name=name,
            id=d["id"],
            created=d.get("created", ""),
            driver=driver,
            parent=str(d.get("parent", options.get("parent", ""))),
            parent_kind=d.get("parent_kind", PARENT_EXISTING),
            subnets=tuple(SubnetConfig.from_dict(s) for s in d.get("subnets", [])),
            options=options,
            labels=dict(d.get("labels", {})),
            internal=bool(d.get("internal", False)),
            enable_ipv6=bool(d.get("enable_ipv6", False)),
            enable_ipv4=bool(d.get("enable_ipv4", True)),
            endpoints=Endpoints.from_raw(d.get("endpoints", {}), checked),
            extra=_known(d, cls.KEYS),
            cluster=str(d.get("cluster", "")),
        )


def random_hex(nbytes: int) -> str:
    """Random hex from the kernel's CSPRNG. (`secrets` would do the same, but
    importing it pulls in hmac and OpenSSL: ~0.1 s per command in a UML guest.)"""
    return os.urandom(nbytes).hex()


def dummy_parent_name(driver: str, net_id: str) -> str:
    """`di-<12 hex>` for ipvlan, `dm-<12 hex>` for macvlan: exactly 15 bytes."""
    return ("di-" if driver == "ipvlan" else "dm-") + net_id[:12]
