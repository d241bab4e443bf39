"""Static BGP daemon configurations for a cluster host: BIRD 2 and FRR (pure).

ipvnet never speaks BGP and never rewrites these files: it adds a
`blackhole BLOCK proto 250` route per owned block, and the daemon learns it
from the kernel (BIRD: `protocol kernel { learn; ... krt_source = 250 }`;
FRR: `redistribute kernel` through a prefix-list on the cluster CIDR), so a
block claimed later is announced with no reload. iBGP to every peer given
(a small mesh) or to route reflectors; a reflector takes any peer of a range
as a client (dynamic neighbours). Short hold time and BFD, and imports
limited to the cluster's CIDRs at exactly the block size.
"""

from __future__ import annotations

import ipaddress

from ipvnet.clusters import RT_PROTO, ClusterConfig
from ipvnet.errors import InvalidArgument
from ipvnet.record import dataclass, field


@dataclass(frozen=True)
class BgpParams:
    config: ClusterConfig
    host: str
    router_id: str
    asn: int = 64512
    peers: tuple[str, ...] = ()  # neighbours (mesh members, or this client's reflectors)
    reflect: tuple[str, ...] = ()  # this host reflects for peers in these ranges
    hold: int = 3
    bfd: bool = True
    families: tuple[int, ...] = field(default=(4, 6))

    def check(self) -> BgpParams:
        ipaddress.IPv4Address(self.router_id)
        for p in self.peers:
            ipaddress.ip_address(p)
        for r in self.reflect:
            ipaddress.ip_network(r)
        if not self.peers and not self.reflect:
            raise InvalidArgument("no BGP neighbour", "give --peer (repeatable) or --reflector-for CIDR")
        if not 3 <= self.hold <= 65535:
            raise InvalidArgument(f"hold time {self.hold} out of range", "BGP hold times are 3-65535 s")
        return self

    def peers_of(self, version: int) -> list[str]:
        return [p for p in self.peers if ipaddress.ip_address(p).version == version]

    def ranges_of(self, version: int) -> list[str]:
        return [r for r in self.reflect if ipaddress.ip_network(r).version == version]

    def cidr_families(self) -> list[int]:
        return [c.version for c in self.config.cidrs if c.version in self.families]

    def block_set(self, version: int) -> str:
        cidr = self.config.cidr(version)
        size = self.config.block_size(version)
        return f"{cidr}{{{size},{size}}}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def bird(p: BgpParams) -> str:
    """A complete bird.conf (BIRD 2) for this host."""
    keep = "keepalive time 1; " if p.hold <= 3 else ""
    out = [f"# BGP for ipvnet cluster {p.config.name} on host {p.host} (`ipvnet cluster bird-config`).",
           f"# Blocks reach BIRD as kernel routes of protocol {RT_PROTO}; nothing here changes when blocks do.",
           f"router id {p.router_id};", "", "protocol device { scan time 10; }", ""]
    for v in p.cidr_families():
        t = f"ipv{v}"
        out += [f"protocol kernel ipvnet_kernel{v} {{",
                f"  learn;  # the blackhole routes ipvnet adds for its blocks (proto {RT_PROTO})",
                f"  {t} {{ import where krt_source = {RT_PROTO} && net ~ [ {p.block_set(v)} ];",
                "         export where source = RTS_BGP; };", "}", ""]
    if p.bfd:
        out += ["protocol bfd { interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }",
                ""]
    for v in p.cidr_families():
        out += _bird_template(p, v, keep)
        for i, peer in enumerate(p.peers_of(v)):
            out.append(f"protocol bgp peer{v}_{i} from ipvnet{v} {{ neighbor {peer} as {p.asn}; }}")
        for i, rng in enumerate(p.ranges_of(v)):
            out += [f"protocol bgp clients{v}_{i} from ipvnet{v} {{",
                    f"  neighbor range {rng} internal; rr client;",
                    f"  {'ipv' + str(v)} {{ export where net ~ [ {p.block_set(v)} ] && "
                    "(source = RTS_INHERIT || source = RTS_BGP); next hop keep; };", "}"]
        out.append("")
    return "\n".join(out)


def _bird_template(p: BgpParams, v: int, keep: str) -> list[str]:
    nh = "next hop self" if not p.reflect else "next hop keep"
    return [f"template bgp ipvnet{v} {{",
            f"  local as {p.asn}; direct;",
            f"  hold time {p.hold}; {keep}connect delay time 1; connect retry time 1; error wait time 1, 2;",
            f"  {'bfd on;' if p.bfd else ''}",
            f"  ipv{v} {{ import where net ~ [ {p.block_set(v)} ];",
            f"         export where source = RTS_INHERIT && net ~ [ {p.block_set(v)} ]; {nh}; }};", "}"]


def frr(p: BgpParams) -> str:
    """An integrated frr.conf (FRR 8) for this host: zebra, bgpd, bfdd."""
    keep = 1 if p.hold <= 3 else max(1, p.hold // 3)
    out = [f"! BGP for ipvnet cluster {p.config.name} on host {p.host} (`ipvnet cluster frr-config`).",
           f"! Blocks reach zebra as kernel routes of protocol {RT_PROTO}; redistribute kernel picks them up.",
           "frr defaults datacenter", f"hostname {_safe(p.host)}", "!"]
    for v in p.cidr_families():
        cidr, size = p.config.cidr(v), p.config.block_size(v)
        pl = "ip" if v == 4 else "ipv6"
        out += [f"{pl} prefix-list IPVNET{v} seq 10 permit {cidr} ge {size} le {size}",
                f"route-map IPVNET{v} permit 10", f" match {pl} address prefix-list IPVNET{v}", "exit", "!"]
    if p.bfd:
        out += ["bfd", " profile ipvnet", "  receive-interval 100", "  transmit-interval 100",
                "  detect-multiplier 3", " exit", "exit", "!"]
    out += [f"router bgp {p.asn}", f" bgp router-id {p.router_id}", " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast", " bgp route-map delay-timer 0", f" timers bgp {keep} {p.hold}",
            " neighbor IPVNET peer-group", " neighbor IPVNET remote-as internal",
            " neighbor IPVNET timers connect 1"]
    if p.bfd:
        out += [" neighbor IPVNET bfd", " neighbor IPVNET bfd profile ipvnet"]
    out += [f" neighbor {peer} peer-group IPVNET" for peer in p.peers]
    out += [f" bgp listen range {rng} peer-group IPVNET" for rng in p.reflect]
    for v in p.cidr_families():
        out += [f" address-family ipv{v} unicast", f"  redistribute kernel route-map IPVNET{v}",
                "  neighbor IPVNET activate", f"  neighbor IPVNET route-map IPVNET{v} in"]
        if p.reflect:
            out.append("  neighbor IPVNET route-reflector-client")
        out.append(" exit-address-family")
    out += ["exit", "!"]
    return "\n".join(out) + "\n"
