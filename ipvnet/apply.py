"""`ipvnet apply FILE.toml`: a declarative file of networks and attachments.

Pure: parse and validate the file, then diff it against the store into an
ordered list of actions. The service runs them in one process under one
lock. The file's shape (every key but the names is optional):

    [networks.vlan20]
    driver = "ipvlan"                      # or "macvlan"
    subnets = ["192.168.20.0/24"]
    gateways = ["192.168.20.1"]
    ip_ranges = []
    aux_addresses = { router = "192.168.20.2" }
    internal = false
    ipv4 = true                            # false: IPv6-only (needs ipv6 or an IPv6 subnet)
    cluster = "prod"                       # spans hosts (ipvlan l3/l3s, no subnets given)
    ipv6 = false
    options = { parent = "eth0.20", ipvlan_mode = "l2" }
    labels = { team = "net" }

    [networks.vlan20.namespaces.ns1]       # created if missing
    ip = "192.168.20.10"
    ip6 = "2001:db8::10"
    aliases = ["web"]
    gw_priority = 0
    ifname = "eth0"
"""

from __future__ import annotations

import ipaddress
import tomllib
from typing import Any

from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.model import (
    Network,
    normalize_options,
    parse_address,
    parse_network,
    validate_ifname,
    validate_name,
)
from ipvnet.record import dataclass
from ipvnet.requests import AttachSpec, NetworkSpec

NET_KEYS = {"driver", "subnets", "gateways", "ip_ranges", "aux_addresses", "internal", "ipv4", "ipv6", "options",
            "labels", "namespaces", "cluster"}
NS_KEYS = {"ip", "ip6", "aliases", "gw_priority", "ifname"}


@dataclass(frozen=True)
class FileNetwork:
    """One `[networks.NAME]` table: the network and the namespaces on it."""

    spec: NetworkSpec
    namespaces: tuple[AttachSpec, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Action:
    kind: str  # "create", "rm", "attach", "detach"
    network: str
    ns: str = ""
    why: str = ""

    def describe(self) -> str:
        sign = {"create": "+ network", "rm": "- network", "attach": "+ attach", "detach": "- detach"}[self.kind]
        who = f" {self.ns}" if self.ns else ""
        return f"{sign}{who} {self.network}" + (f"  ({self.why})" if self.why else "")


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind):
        raise InvalidArgument(f"{where}: {key} has the wrong type ({type(value).__name__})")
    return value


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    _typed(where, key, value, list)
    for v in value:
        _typed(where, key, v, str)
    return tuple(value)


def _known_keys(where: str, table: dict[str, Any], allowed: set[str]) -> None:
    bad = sorted(set(table) - allowed)
    if bad:
        raise InvalidArgument(f"{where}: unknown key {bad[0]!r}", f"valid keys: {', '.join(sorted(allowed))}")


def parse_spec(text: str, path: str) -> list[FileNetwork]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{path} is not valid TOML: {e}") from None
    unknown = set(data) - {"networks"}
    if unknown:
        raise InvalidArgument(f"{path}: unknown top-level key {sorted(unknown)[0]!r}", "only [networks.NAME] tables")
    return [_network(path, name, nd) for name, nd in _typed(path, "networks", data.get("networks", {}), dict).items()]


def _network(path: str, name: str, nd: Any) -> FileNetwork:
    where = f"{path}: network {name}"
    validate_name(name, "network name")
    _typed(where, "table", nd, dict)
    _known_keys(where, nd, NET_KEYS)
    driver = _typed(where, "driver", nd.get("driver", "ipvlan"), str)
    options = {k: str(_typed(where, f"options.{k}", v, (str, int))) for k, v in nd.get("options", {}).items()}
    normalize_options(driver, options)  # validate early, with the file named on error
    aux = _typed(where, "aux_addresses", nd.get("aux_addresses", {}), dict)
    labels = _typed(where, "labels", nd.get("labels", {}), dict)
    spec = NetworkSpec(
        name=name,
        driver=driver,
        subnets=_strings(where, "subnets", nd.get("subnets", [])),
        gateways=_strings(where, "gateways", nd.get("gateways", [])),
        ip_ranges=_strings(where, "ip_ranges", nd.get("ip_ranges", [])),
        aux_addresses={str(k): str(_typed(where, f"aux_addresses.{k}", v, str)) for k, v in aux.items()},
        internal=bool(_typed(where, "internal", nd.get("internal", False), bool)),
        ipv4=bool(_typed(where, "ipv4", nd.get("ipv4", True), bool)),
        ipv6=bool(_typed(where, "ipv6", nd.get("ipv6", False), bool)),
        options=options,
        labels={str(k): str(v) for k, v in labels.items()},
        cluster=_typed(where, "cluster", nd.get("cluster", ""), str),
    )
    spaces = _typed(where, "namespaces", nd.get("namespaces", {}), dict)
    return FileNetwork(spec, tuple(_namespace(f"{where} namespace {ns}", name, ns, sd) for ns, sd in spaces.items()))


def _namespace(where: str, network: str, ns: str, sd: Any) -> AttachSpec:
    validate_name(ns, "namespace name")
    _typed(where, "table", sd, dict)
    _known_keys(where, sd, NS_KEYS)
    aliases = _strings(where, "aliases", sd.get("aliases", []))
    for a in aliases:
        validate_name(a, "alias")
    if "ifname" in sd:
        validate_ifname(_typed(where, "ifname", sd["ifname"], str))
    return AttachSpec(
        ns, network,
        _typed(where, "ip", sd["ip"], str) if "ip" in sd else None,
        _typed(where, "ip6", sd["ip6"], str) if "ip6" in sd else None,
        sd.get("ifname"), aliases, _typed(where, "gw_priority", sd.get("gw_priority", 0), int), create=True,
    )


def network_matches(spec: NetworkSpec, net: Network) -> str | None:
    """Why the existing network differs from the file (None when it matches).
    Defaults the store filled in (a picked pool, a gateway) count as matching."""
    if spec.driver != net.driver:
        return f"driver {net.driver}, file says {spec.driver}"
    if spec.cluster != net.cluster:
        return f"cluster {net.cluster or '(none)'}, file says {spec.cluster or '(none)'}"
    if spec.cluster:
        return None  # its subnets are the blocks this host claimed
    if spec.ipv4 != net.enable_ipv4:
        return f"ipv4 {str(net.enable_ipv4).lower()}, file says {str(spec.ipv4).lower()}"
    want = normalize_options(spec.driver, dict(spec.options))
    have = dict(net.options)
    if "parent" not in want:
        have.pop("parent", None)
    if want != have:
        return f"options {have}, file says {want}"
    stored = {str(s.subnet) for s in net.subnets}
    given = {str(parse_network(s)) for s in spec.subnets}
    if not given <= stored:
        return f"subnets {sorted(stored)}, file says {sorted(given)}"
    for version in (4, 6):
        g = {s for s in given if ipaddress.ip_network(s).version == version}
        st = {s for s in stored if ipaddress.ip_network(s).version == version}
        if g and g != st:
            return f"IPv{version} subnets {sorted(st)}, file says {sorted(g)}"
    return None


def endpoint_matches(spec: AttachSpec, net: Network) -> bool:
    ep = net.endpoints.get(spec.ns)
    if ep is None:
        return False
    if spec.ip is not None and (ep.ipv4 is None or ep.ipv4.ip != parse_address(spec.ip)):
        return False
    if spec.ip6 is not None and (ep.ipv6 is None or ep.ipv6.ip != parse_address(spec.ip6)):
        return False
    return (
        tuple(spec.aliases) == ep.aliases
        and spec.gw_priority == ep.gw_priority
        and (spec.ifname is None or spec.ifname == ep.ifname)
    )


def diff(files: list[FileNetwork], networks: dict[str, Network], prune: bool) -> list[Action]:
    """Ordered actions: detaches and removals first (they free addresses), then creations and attaches."""
    names = {f.name for f in files}
    removals: list[Action] = []
    adds: list[Action] = []
    for f in files:
        spec = f.spec
        net = networks.get(spec.name)
        if net is None:
            adds.append(Action("create", spec.name))
            adds.extend(Action("attach", spec.name, n.ns) for n in f.namespaces)
            continue
        why = network_matches(spec, net)
        if why:
            raise Conflict(
                f"network {spec.name} exists and differs from the file: {why}",
                "ipvnet does not change a network in place; remove it or rename it in the file",
            )
        listed = {n.ns for n in f.namespaces}
        for n in f.namespaces:
            if n.ns in net.endpoints and not endpoint_matches(n, net):
                removals.append(Action("detach", spec.name, n.ns, "changed"))
                adds.append(Action("attach", spec.name, n.ns, "changed"))
            elif n.ns not in net.endpoints:
                adds.append(Action("attach", spec.name, n.ns))
        if prune:
            removals.extend(
                Action("detach", spec.name, ns, "not in the file") for ns in sorted(net.endpoints) if ns not in listed
            )
    if prune:
        removals.extend(Action("rm", name, why="not in the file") for name in sorted(networks) if name not in names)
    return removals + adds
