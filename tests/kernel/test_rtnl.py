"""ipvnet.rtnl against the real kernel, checked independently with `ip -j`.

Tests marked `hostkernel` need only veth and macvlan, so they run on this
host's kernel (in the conftest sandbox) as well as in the UML guest; the
dummy/vlan/ipvlan ones at the end carry no marker and run in the guest only.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from ipvnet import netns
from ipvnet.rtnl import NLM_F_DUMP, NLM_F_REQUEST, RTM_GETLINK, NetlinkError, Rtnl
from tests.kernel.helpers import ip, link, link_names, netns_add

hostkernel = pytest.mark.hostkernel


@pytest.fixture
def rt() -> Iterator[Rtnl]:
    r = Rtnl()
    yield r
    r.close()


@pytest.fixture
def veth(rt: Rtnl) -> int:
    """A veth pair rt0/rt1, both up; returns rt0's index."""
    rt.link_add("rt0", "veth", peer="rt1")
    for name in ("rt0", "rt1"):
        rt.link_set(rt.link_get(name)["index"], up=True)
    return rt.link_get("rt0")["index"]


def _kernel_addrs(ifname: str, ns: str | None = None) -> dict[str, dict]:
    """'address/prefix' -> iproute2's addr_info entry, for global addresses."""
    infos = ip("addr", "show", "dev", ifname, ns=ns)[0]["addr_info"]
    return {f"{a['local']}/{a['prefixlen']}": a for a in infos if a["scope"] == "global"}


def _routes(family: int, *args: str) -> list[dict]:
    return ip(f"-{family}", "route", "show", *args)


# -- links ---------------------------------------------------------------


@hostkernel
def test_veth_add_get_dump_and_missing(rt: Rtnl) -> None:
    rt.link_add("rt0", "veth", peer="rt1", mtu=1400)
    msg = rt.link_get("rt0")
    assert msg is not None and msg.get_attr("IFLA_IFNAME") == "rt0"
    assert msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) == "veth"
    assert msg.get_attr("IFLA_MTU") == 1400
    assert msg["index"] == link("rt0")["ifindex"]
    assert link("rt0")["linkinfo"]["info_kind"] == "veth" and link("rt1") is not None
    assert rt.link_get("no-such-link") is None
    dumped = {m.get_attr("IFLA_IFNAME"): m["index"] for m in rt.link_dump()}
    assert dumped == {li["ifname"]: li["ifindex"] for li in ip("link", "show")}
    assert {"lo", "rt0", "rt1"} <= set(dumped)


@hostkernel
def test_link_set_rename_up_mtu_and_del(rt: Rtnl) -> None:
    rt.link_add("rt0", "veth", peer="rt1")
    index = rt.link_get("rt0")["index"]
    rt.link_set(index, ifname="rt2", mtu=1280, up=True)
    li = link("rt2")
    assert li is not None and li["ifindex"] == index and li["mtu"] == 1280 and "UP" in li["flags"]
    assert rt.link_get("rt0") is None and rt.link_get("rt2")["flags"] & 1
    rt.link_set(index, mtu=1500)  # `up` not given: the state is left alone
    assert "UP" in link("rt2")["flags"] and link("rt2")["mtu"] == 1500
    rt.link_set(index, up=False)
    assert "UP" not in link("rt2")["flags"] and not rt.link_get("rt2")["flags"] & 1
    rt.link_del(index)
    assert link_names() == {"lo"}


@hostkernel
@pytest.mark.parametrize(("mode", "name"), [(1, "private"), (2, "vepa"), (4, "bridge"), (8, "passthru")])
def test_macvlan_on_veth(rt: Rtnl, veth: int, mode: int, name: str) -> None:
    # A passthru macvlan takes its parent's MAC; the others take the one given.
    mac = link("rt0")["address"] if name == "passthru" else "02:00:00:00:00:ab"
    rt.link_add("mv0", "macvlan", link=veth, macvlan_mode=mode, address=None if name == "passthru" else mac.upper())
    msg = rt.link_get("mv0")
    assert msg.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) == "macvlan"
    assert msg.get_attr("IFLA_LINK") == veth
    assert msg.get_attr("IFLA_ADDRESS") == mac
    data = msg.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
    assert data.get_attr("IFLA_MACVLAN_MODE") == name  # pyroute2 decodes the number to its name
    li = ip("link", "show", "mv0")[0]
    assert li["linkinfo"]["info_data"]["mode"] == name and li["address"] == mac


@hostkernel
def test_link_add_into_a_namespace(rt: Rtnl, veth: int) -> None:
    netns_add("rtns")
    fd = os.open("/run/netns/rtns", os.O_RDONLY)
    try:
        rt.link_add("mv0", "macvlan", link=veth, macvlan_mode=4, net_ns_fd=fd)
        rt.link_add("rt5", "veth", peer="rt6", net_ns_fd=fd)  # the peer stays here
    finally:
        os.close(fd)
    assert link_names("rtns") == {"lo", "mv0", "rt5"}
    assert rt.link_get("mv0") is None and rt.link_get("rt5") is None and rt.link_get("rt6") is not None
    with netns.entered("rtns"):
        inner = Rtnl()
    try:
        # The socket stays in rtns after the thread has switched back.
        assert inner.link_get("mv0") is not None and inner.link_get("rt6") is None
        assert {m.get_attr("IFLA_IFNAME") for m in inner.link_dump()} == {"lo", "mv0", "rt5"}
        inner.link_set(inner.link_get("mv0")["index"], up=True)
        assert "UP" in link("mv0", "rtns")["flags"]
    finally:
        inner.close()


# -- addresses -----------------------------------------------------------


@hostkernel
def test_addresses_v4_and_v6(rt: Rtnl, veth: int) -> None:
    rt.addr_add(veth, "10.9.0.2", 24)
    rt.addr_add(veth, "2001:db8:9::2", 64, nodad=True)
    rt.addr_add(veth, "2001:db8:9::3", 64)
    got = _kernel_addrs("rt0")
    assert set(got) == {"10.9.0.2/24", "2001:db8:9::2/64", "2001:db8:9::3/64"}
    assert got["2001:db8:9::2/64"].get("nodad") is True
    assert not got["2001:db8:9::3/64"].get("nodad")
    mine = {(m.get_attr("IFA_ADDRESS"), m["prefixlen"]): m for m in rt.addr_dump() if m["index"] == veth}
    assert {("10.9.0.2", 24), ("2001:db8:9::2", 64), ("2001:db8:9::3", 64)} <= set(mine)
    assert mine[("10.9.0.2", 24)].get_attr("IFA_LOCAL") == "10.9.0.2"
    assert mine[("2001:db8:9::2", 64)]["flags"] & 0x02  # IFA_F_NODAD
    rt.addr_del(veth, "10.9.0.2", 24)
    rt.addr_del(veth, "2001:db8:9::2", 64)
    assert set(_kernel_addrs("rt0")) == {"2001:db8:9::3/64"}


@hostkernel
def test_big_dump_comes_in_several_datagrams_and_is_read_whole(rt: Rtnl, veth: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = {f"10.{20 + i // 250}.{i % 250}.1" for i in range(600)}
    for address in wanted:
        rt.addr_add(veth, address, 32)
    datagrams = []
    real_recv = rt._recv

    def counting_recv() -> bytes:
        datagrams.append(real_recv())
        return datagrams[-1]

    monkeypatch.setattr(rt, "_recv", counting_recv)
    got = {m.get_attr("IFA_ADDRESS") for m in rt.addr_dump() if m["index"] == veth and m["family"] == socket.AF_INET}
    assert got == wanted
    assert len(datagrams) > 1
    assert len(_kernel_addrs("rt0")) == 600


# -- routes --------------------------------------------------------------


@hostkernel
def test_default_routes_via_a_gateway(rt: Rtnl, veth: int) -> None:
    rt.addr_add(veth, "10.9.0.2", 24)
    rt.route_add(4, None, 0, oif=veth, gateway="10.9.0.1")
    rt.route_add(6, None, 0, oif=veth, gateway="fe80::1")
    (v4,) = ip("-d", "-4", "route", "show", "default")
    assert v4["gateway"] == "10.9.0.1" and v4["dev"] == "rt0" and v4["protocol"] == "boot"
    (v6,) = _routes(6, "default")
    assert v6["gateway"] == "fe80::1" and v6["dev"] == "rt0"
    defaults = [m for m in rt.route_dump(4, table=254) if m["dst_len"] == 0]
    assert [(m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_OIF"), m["proto"]) for m in defaults] == [("10.9.0.1", veth, 3)]
    assert [m.get_attr("RTA_GATEWAY") for m in rt.route_dump(6) if m["dst_len"] == 0] == ["fe80::1"]
    rt.route_del(4, None, 0, oif=veth, gateway="10.9.0.1")
    rt.route_del(6, None, 0, oif=veth, gateway="fe80::1")
    assert _routes(4, "default") == [] and _routes(6, "default") == []


@hostkernel
def test_device_route_blackhole_and_a_big_table(rt: Rtnl, veth: int) -> None:
    rt.route_add(4, "10.77.0.0", 16, oif=veth)
    rt.route_add(6, "2001:db8:77::", 48, oif=veth)
    rt.route_add(4, "192.0.2.0", 24, rtype="blackhole", proto=250)
    rt.route_add(6, "2001:db8:66::", 48, rtype="blackhole", proto=250)
    rt.route_add(4, "198.51.100.0", 24, oif=veth, table=1000)
    (dev,) = _routes(4, "10.77.0.0/16")
    assert dev["dev"] == "rt0" and dev["scope"] == "link" and "gateway" not in dev
    assert _routes(6, "2001:db8:77::/48")[0]["dev"] == "rt0"
    for family, dst in ((4, "192.0.2.0/24"), (6, "2001:db8:66::/48")):
        (hole,) = _routes(family, dst)
        assert hole["type"] == "blackhole" and hole["protocol"] == "250"
    assert _routes(4, "table", "1000")[0]["dst"] == "198.51.100.0/24"
    holes = [m for m in rt.route_dump(4) if m["type"] == 6]
    assert [(m.get_attr("RTA_DST"), m["dst_len"], m["proto"]) for m in holes] == [("192.0.2.0", 24, 250)]
    assert [m.get_attr("RTA_DST") for m in rt.route_dump(4, table=1000)] == ["198.51.100.0"]
    assert "198.51.100.0" not in {m.get_attr("RTA_DST") for m in rt.route_dump(4, table=254)}
    assert "10.77.0.0" in {m.get_attr("RTA_DST") for m in rt.route_dump(4, table=254)}
    rt.route_del(4, "10.77.0.0", 16, oif=veth)
    rt.route_del(6, "2001:db8:77::", 48, oif=veth)
    rt.route_del(4, "192.0.2.0", 24, rtype="blackhole", proto=250)
    rt.route_del(6, "2001:db8:66::", 48, rtype="blackhole")
    rt.route_del(4, "198.51.100.0", 24, table=1000)
    assert _routes(4, "10.77.0.0/16") == [] and _routes(4, "192.0.2.0/24") == []
    assert _routes(6, "2001:db8:66::/48") == [] and _routes(6, "2001:db8:77::/48") == []
    assert _routes(4, "table", "1000") == []


@hostkernel
def test_route_replace(rt: Rtnl, veth: int) -> None:
    rt.addr_add(veth, "10.9.0.2", 24)
    rt.route_add(4, None, 0, oif=veth, gateway="10.9.0.1")
    with pytest.raises(NetlinkError) as exc:
        rt.route_add(4, None, 0, oif=veth, gateway="10.9.0.254")
    assert exc.value.errno == errno.EEXIST
    rt.route_add(4, None, 0, oif=veth, gateway="10.9.0.254", replace=True)
    assert [r["gateway"] for r in _routes(4, "default")] == ["10.9.0.254"]


# -- errors and the exchange ----------------------------------------------


@hostkernel
def test_kernel_errors_carry_errno(rt: Rtnl, veth: int) -> None:
    with pytest.raises(NetlinkError) as exc:
        rt.link_add("rt0", "veth", peer="rt9")
    assert exc.value.errno == errno.EEXIST and isinstance(exc.value, OSError)
    assert exc.value.strerror.startswith(os.strerror(errno.EEXIST))
    with pytest.raises(NetlinkError) as exc:
        rt.link_del(999_999)
    assert exc.value.errno == errno.ENODEV
    rt.addr_add(veth, "10.9.0.2", 24)
    with pytest.raises(NetlinkError) as exc:
        rt.addr_add(veth, "10.9.0.2", 24)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(NetlinkError) as exc:
        rt.route_del(4, "203.0.113.0", 24, oif=veth)
    assert exc.value.errno == errno.ESRCH
    with pytest.raises(NetlinkError) as exc:
        rt.route_add(4, None, 0, gateway="10.99.0.1")  # no route to the gateway
    assert exc.value.errno == errno.ENETUNREACH
    assert "gateway" in exc.value.strerror  # the kernel's extended-ack text
    # The socket is still in step after errors.
    assert rt.link_get("rt0")["index"] == veth


@hostkernel
def test_stale_replies_are_skipped(rt: Rtnl, veth: int) -> None:
    """Replies to a request nobody waits for any more (say, a dump abandoned
    on an exception) must not be taken for the answer to the next one."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    stale = ifinfmsg()
    stale["header"] = {"type": RTM_GETLINK, "flags": NLM_F_REQUEST | NLM_F_DUMP, "sequence_number": 0xABCDEF, "pid": 0}
    stale.encode()
    rt._sock.send(stale.data)
    assert rt.link_get("rt0")["index"] == veth
    assert {m.get_attr("IFLA_IFNAME") for m in rt.link_dump()} == {"lo", "rt0", "rt1"}


@hostkernel
def test_bad_arguments_are_refused_before_the_kernel(rt: Rtnl) -> None:
    with pytest.raises(ValueError, match="vlan_id"):
        rt.link_add("rt0", "macvlan", link=1, vlan_id=5)
    with pytest.raises(ValueError, match="family"):
        rt.route_dump(5)
    with pytest.raises(ValueError, match="route type"):
        rt.route_add(4, "10.0.0.0", 8, rtype="prohibit")
    with pytest.raises(ValueError, match="not an IP address"):
        rt.addr_add(1, "10.0.0.300", 24)
    assert link_names() == {"lo"}


# -- kinds this host's kernel lacks: UML guest only ------------------------


def test_dummy_vlan_and_ipvlan(rt: Rtnl) -> None:
    rt.link_add("rtd0", "dummy", mtu=9000)
    parent = rt.link_get("rtd0")
    assert parent.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) == "dummy" and parent.get_attr("IFLA_MTU") == 9000
    rt.link_add("rtd0.9", "vlan", link=parent["index"], vlan_id=9)
    vlan = rt.link_get("rtd0.9")
    assert vlan.get(("IFLA_LINKINFO", "IFLA_INFO_DATA")).get_attr("IFLA_VLAN_ID") == 9
    assert ip("link", "show", "rtd0.9")[0]["linkinfo"]["info_data"]["id"] == 9
    rt.link_add("rtiv0", "ipvlan", link=parent["index"], ipvlan_mode=1, ipvlan_flags=1)  # l3, private
    data = rt.link_get("rtiv0").get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
    assert data.get_attr("IFLA_IPVLAN_MODE") == 1 and data.get_attr("IFLA_IPVLAN_FLAGS") == 1
    info = ip("link", "show", "rtiv0")[0]["linkinfo"]["info_data"]
    assert info["mode"] == "l3" and info.get("private") is True


def test_ipvlan_into_a_namespace(rt: Rtnl) -> None:
    rt.link_add("rtd0", "dummy")
    netns_add("rtns")
    fd = os.open("/run/netns/rtns", os.O_RDONLY)
    try:
        rt.link_add("rtiv0", "ipvlan", link=rt.link_get("rtd0")["index"], ipvlan_mode=0, ipvlan_flags=2,
                    net_ns_fd=fd)
    finally:
        os.close(fd)
    with netns.entered("rtns"):
        inner = Rtnl()
    try:
        data = inner.link_get("rtiv0").get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
        assert data.get_attr("IFLA_IPVLAN_MODE") == 0 and data.get_attr("IFLA_IPVLAN_FLAGS") == 2
    finally:
        inner.close()
    assert link("rtiv0", "rtns")["linkinfo"]["info_kind"] == "ipvlan"
    subprocess.run(["ip", "-n", "rtns", "link", "del", "rtiv0"], check=True)
