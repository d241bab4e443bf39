"""Name resolution between peers: /etc/netns/NS/hosts and resolv.conf.

`ip netns exec` (and so `ipvnet exec` and `run-ns`) bind-mounts each file in
/etc/netns/NS over its twin in /etc. The design keeps an attach O(1) in files
written, however large the network:

* each network has one hosts file, `<state-dir>/hosts/<NET>`, holding every
  member; an attach appends its lines in place (same inode, so namespaces
  already running see the new peer at once);
* a namespace on one network gets `/etc/netns/NS/hosts` as a symlink to that
  file (the bind mount follows it), so no member's own file is rewritten;
* a namespace on several networks gets a combined regular file, rewritten
  only when one of its networks changes — a cost paid per multi-homed
  member, not per network member.

A detach rewrites its network's file once (in place). Files in /etc/netns
are replaced by rename, never written through, so a symlink planted there is
replaced, not followed.
"""

from __future__ import annotations

import ipaddress
import os
import stat

from ipvnet.files import Files
from ipvnet.model import Endpoint, Network

MARKER = "# managed by ipvnet"
HEADER = f"{MARKER}: peers resolve each other by namespace name and alias\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def etc_netns_dir() -> str:
    return os.environ.get("IPVNET_ETC_NETNS", "/etc/netns")


def endpoint_lines(ep: Endpoint) -> str:
    names = " ".join((ep.ns, *ep.aliases))
    return "".join(f"{a.ip}\t{names}\n" for a in ep.addresses())


def _member_lines(net: Network) -> str:
    """Every member's lines in attach order, from the stored entries (no address parsing:
    a detach from a large network rewrites this file)."""
    out: list[str] = []
    for ns, d in sorted(net.endpoints.raw(), key=lambda kv: int(kv[1].get("seq", 0))):
        names = " ".join((ns, *d.get("aliases", ())))
        out.extend(f"{d[k].partition('/')[0]}\t{names}\n" for k in ("ipv4", "ipv6") if d.get(k))
    return "".join(out)


def network_hosts_text(net: Network) -> str:
    return HEADER + _member_lines(net)


def combined_hosts_text(nets: list[Network]) -> str:
    return HEADER + "".join(f"# network {net.name}\n" + _member_lines(net) for net in nets)


def _nameserver_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A resolv.conf name server as an address (a `%zone` suffix dropped), or None if malformed."""
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


def resolv_conf_text(host_text: str) -> str:
    """The host's resolv.conf without loopback name servers (they would
    point into the namespace itself, where no resolver listens)."""
    out = [f"{MARKER}: the host's resolv.conf without loopback name servers\n"]
    for line in host_text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            addr = _nameserver_address(parts[1])
            if addr is not None and (addr.is_loopback or addr.is_unspecified):
                continue
        out.append(line + "\n")
    return "".join(out)


INTERNAL_RESOLV = (
    f"{MARKER}: internal networks only, so no outside name server\n"
    "# Peers resolve through /etc/hosts; any other lookup fails at once instead of timing out.\n"
)


def ns_resolv_text(nets: list[Network], host_text: str) -> str:
    """A namespace only on internal networks reaches no outside name server
    (Docker gives internal networks no external DNS); one that is also on a
    routed network keeps the host's servers."""
    if nets and all(n.internal for n in nets):
        return INTERNAL_RESOLV
    return resolv_conf_text(host_text)


def host_nameservers(text: str) -> list[str]:
    return [p[1] for p in (line.split() for line in text.splitlines()) if len(p) >= 2 and p[0] == "nameserver"]


def host_nameserver_addresses(text: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The well-formed name servers, for default-pool picking."""
    return [a for a in map(_nameserver_address, host_nameservers(text)) if a is not None]


def read_host_resolv() -> str:
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Names:
    """Hosts and resolv.conf files of networks and namespaces, written through
    FILES (the transaction's undoable writer, or a direct one for repair)."""

    def __init__(self, state_dir: str, files: Files | None = None) -> None:
        self.hosts_dir = os.path.join(os.path.abspath(state_dir), "hosts")
        self.etc = etc_netns_dir()
        self.files = files or Files()

    def network_file(self, net: str) -> str:
        return os.path.join(self.hosts_dir, net)

    def ns_dir(self, ns: str) -> str:
        return os.path.join(self.etc, ns)

    def _ensure_ns_dir(self, ns: str) -> str:
        self.files.makedirs(self.etc)
        d = self.ns_dir(ns)
        self.files.mkdir(d)
        return d

    def _ours(self, path: str) -> bool:
        """Only files ipvnet wrote (marker) or symlinks into our hosts dir may be replaced."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if stat.S_ISLNK(st.st_mode):
            return True  # never followed; replacing a link is always safe
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as f:
            return f.read(len(MARKER)) == MARKER.encode()

    # -- the operations the service calls --------------------------------

    def on_attach(
        self, net: Network, ep: Endpoint, networks_of_ns: list[Network], multi_homed: list[tuple[str, list[Network]]]
    ) -> None:
        """NET now includes EP. `networks_of_ns`: every network EP.ns is on.
        `multi_homed`: each other member of NET on several networks, with those networks."""
        path = self.network_file(net.name)
        if os.path.exists(path) and len(net.endpoints) > 1:
            self.files.write_in_place(path, endpoint_lines(ep), append=True)
        else:
            self.files.write_in_place(path, network_hosts_text(net))
        self.point_ns(ep.ns, networks_of_ns, resolv=True)
        for other_ns, nets in multi_homed:
            self.point_ns(other_ns, nets)

    def on_detach(
        self, net: Network, ns: str, networks_of_ns: list[Network], multi_homed: list[tuple[str, list[Network]]]
    ) -> None:
        """NET no longer includes NS; `networks_of_ns` is what NS is still on."""
        self.sync_network(net)
        self.settle_ns(ns, networks_of_ns)
        for other_ns, nets in multi_homed:
            self.point_ns(other_ns, nets)

    def sync_network(self, net: Network) -> None:
        if net.endpoints:
            self.files.write_in_place(self.network_file(net.name), network_hosts_text(net))
        else:
            self.files.unlink(self.network_file(net.name))

    def point_ns(self, ns: str, nets: list[Network], resolv: bool = False) -> None:
        """Point NS's hosts file at its networks; with RESOLV also (re)write its
        resolv.conf when what its networks call for changed."""
        d = self._ensure_ns_dir(ns)
        hosts = os.path.join(d, "hosts")
        if self._ours(hosts):
            if len(nets) == 1:
                target = self.network_file(nets[0].name)
                if _readlink(hosts) != target:
                    self.files.replace(hosts, link_to=target)
            else:
                self.files.replace(hosts, text=combined_hosts_text(sorted(nets, key=lambda n: n.name)))
        path = os.path.join(d, "resolv.conf")
        if resolv and self._ours(path):
            text = ns_resolv_text(nets, read_host_resolv())
            if _read(path) != text:
                self.files.replace(path, text=text)

    def settle_ns(self, ns: str, nets: list[Network]) -> None:
        """After NS left a network: point it at the networks it is still on, or remove its files."""
        if nets:
            self.point_ns(ns, nets, resolv=True)
        else:
            self.remove_ns(ns)

    def remove_ns(self, ns: str) -> None:
        d = self.ns_dir(ns)
        for name in ("hosts", "resolv.conf"):
            p = os.path.join(d, name)
            if os.path.lexists(p) and self._ours(p):
                self.files.unlink(p)
        self.files.rmdir(d)

    def remove_network(self, net: str) -> None:
        self.files.unlink(self.network_file(net))


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        return f.read()
