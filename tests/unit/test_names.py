"""names.py: /etc/netns/NS/hosts and resolv.conf, without root (IPVNET_ETC_NETNS points to tmp)."""

from __future__ import annotations

import os

import pytest

from ipvnet import names as names_mod
from ipvnet.files import Files
from ipvnet.names import MARKER, Names, combined_hosts_text, host_nameservers, network_hosts_text, resolv_conf_text
from tests.unit.factories import endpoint, network, subnet

HOST_RESOLV = "# host\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n"


@pytest.fixture
def env(tmp_path, monkeypatch):
    etc = tmp_path / "etc-netns"
    state = tmp_path / "state"
    monkeypatch.setenv("IPVNET_ETC_NETNS", str(etc))
    monkeypatch.setattr(names_mod, "read_host_resolv", lambda: HOST_RESOLV)
    return Names(str(state)), etc, state


def blue(*eps):
    return network("blue", [subnet("10.0.0.0/24", "10.0.0.1")], endpoints=list(eps))


def red(*eps):
    return network("red", [subnet("10.9.0.0/24", "10.9.0.1")], endpoints=list(eps))


E1 = endpoint("ns1", "10.0.0.2/24", seq=1)
E2 = endpoint("ns2", "10.0.0.3/24", "fd00::3/64", seq=2, aliases=("web", "www"))
E3 = endpoint("ns3", "10.0.0.4/24", seq=3)
R1 = endpoint("ns1", "10.9.0.2/24", ifname="eth1", seq=4)


def lines(path) -> list[str]:
    return open(path).read().splitlines()


# --- pure text -----------------------------------------------------------------------------


def test_network_hosts_text():
    text = network_hosts_text(blue(E2, E1))
    assert text.startswith(MARKER)
    assert text.splitlines()[1:] == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "10.0.0.2\tns1",  # ordered by attach sequence
        "10.0.0.3\tns2 web www",
        "fd00::3\tns2 web www",
    ]


def test_combined_hosts_text():
    text = combined_hosts_text([blue(E1), red(R1)])
    assert text.startswith(MARKER)
    assert text.splitlines()[3:] == ["# network blue", "10.0.0.2\tns1", "# network red", "10.9.0.2\tns1"]


def test_resolv_conf_text_drops_loopback_nameservers():
    host = (
        "# comment\n"
        "nameserver 127.0.0.53\n"
        "nameserver 127.1.2.3\n"
        "nameserver ::1\n"
        "nameserver 0.0.0.0\n"
        "nameserver ::\n"
        "nameserver 192.0.2.1\n"
        "nameserver 2001:db8::53\n"
        "search example.org\n"
        "options edns0 trust-ad\n"
    )
    out = resolv_conf_text(host).splitlines()
    assert out[0].startswith(MARKER)
    assert out[1:] == [
        "# comment",
        "nameserver 192.0.2.1",
        "nameserver 2001:db8::53",
        "search example.org",
        "options edns0 trust-ad",
    ]


def test_resolv_conf_text_of_empty_host_file():
    out = resolv_conf_text("")
    assert out.startswith(MARKER) and out.count("\n") == 1 and "nameserver" not in out


def test_resolv_conf_text_drops_loopback_in_any_spelling():
    out = resolv_conf_text("nameserver 0:0:0:0:0:0:0:1\nnameserver ::0:1\nnameserver 192.0.2.1\n")
    assert out.splitlines()[1:] == ["nameserver 192.0.2.1"]


def test_host_nameservers():
    assert host_nameservers(HOST_RESOLV) == ["127.0.0.53", "192.0.2.53"]
    assert host_nameservers("nameserver\n#nameserver 1.1.1.1\n") == []


# --- attach ------------------------------------------------------------------------------------


def test_first_attach_links_hosts_to_the_network_file(env):
    names, etc, state = env
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    hosts = etc / "ns1" / "hosts"
    netfile = state / "hosts" / "blue"
    assert hosts.is_symlink()
    assert os.readlink(hosts) == str(netfile)
    assert names.network_file("blue") == str(netfile)
    assert hosts.read_text() == network_hosts_text(net)
    assert "10.0.0.2\tns1" in lines(hosts)
    resolv = etc / "ns1" / "resolv.conf"
    assert not resolv.is_symlink()
    assert resolv.read_text() == resolv_conf_text(HOST_RESOLV)
    assert "nameserver 127.0.0.53" not in lines(resolv)
    assert "nameserver 192.0.2.53" in lines(resolv)


def test_attach_appends_in_place(env):
    names, etc, state = env
    net1 = blue(E1)
    names.on_attach(net1, E1, [net1], [])
    netfile = state / "hosts" / "blue"
    inode = os.stat(netfile).st_ino
    ns1_hosts_inode = os.lstat(etc / "ns1" / "hosts").st_ino

    net2 = net1.with_endpoint(E2)
    names.on_attach(net2, E2, [net2], [])
    net3 = net2.with_endpoint(E3)
    names.on_attach(net3, E3, [net3], [])

    assert os.stat(netfile).st_ino == inode  # appended, same inode: running namespaces see it
    assert netfile.read_text() == network_hosts_text(net3)
    # ns1's own file was not touched, yet it resolves the new peers through the link
    assert os.lstat(etc / "ns1" / "hosts").st_ino == ns1_hosts_inode
    assert "10.0.0.4\tns3" in lines(etc / "ns1" / "hosts")
    for ns in ("ns2", "ns3"):
        assert os.readlink(etc / ns / "hosts") == str(netfile)


def test_attach_writes_only_the_new_members_lines(env, monkeypatch):
    """O(1) per attach: the network file gets the new lines appended; no other file is rewritten."""
    names, etc, state = env
    net1 = blue(E1)
    names.on_attach(net1, E1, [net1], [])
    writes = []
    real = Files.write_in_place

    def spy(self, path, text, append=False):
        writes.append((path, text, append))
        real(self, path, text, append)

    monkeypatch.setattr(Files, "write_in_place", spy)
    net2 = net1.with_endpoint(E2)
    names.on_attach(net2, E2, [net2], [])
    assert writes == [(str(state / "hosts" / "blue"), "10.0.0.3\tns2 web www\nfd00::3\tns2 web www\n", True)]


def test_attach_rewrites_a_missing_network_file(env):
    names, etc, state = env
    net = blue(E1, E2)
    names.on_attach(net, E2, [net], [])  # network file absent: full text, not just E2's lines
    assert (state / "hosts" / "blue").read_text() == network_hosts_text(net)


def test_multi_homed_namespace_gets_a_combined_regular_file(env):
    names, etc, state = env
    b = blue(E1)
    names.on_attach(b, E1, [b], [])
    r = red(R1)
    names.on_attach(r, R1, [b, r], [])
    hosts = etc / "ns1" / "hosts"
    assert hosts.is_file() and not hosts.is_symlink()
    assert hosts.read_text() == combined_hosts_text([b, r])
    assert "# network blue" in lines(hosts) and "# network red" in lines(hosts)

    # a new member of blue: ns1 (multi-homed) gets its combined file rewritten
    b2 = b.with_endpoint(E3)
    names.on_attach(b2, E3, [b2], [("ns1", [b2, r])])
    assert "10.0.0.4\tns3" in lines(hosts)
    assert not hosts.is_symlink()
    assert os.readlink(etc / "ns3" / "hosts") == str(state / "hosts" / "blue")


def test_combined_file_sorted_by_network_name(env):
    names, etc, _ = env
    b, r = blue(E1), red(R1)
    names.on_attach(r, R1, [r, b], [])
    assert (etc / "ns1" / "hosts").read_text() == combined_hosts_text([b, r])


# --- detach -------------------------------------------------------------------------------------


def test_detach_rewrites_network_file_in_place_and_cleans_ns(env):
    names, etc, state = env
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    net = net.with_endpoint(E2)
    names.on_attach(net, E2, [net], [])
    netfile = state / "hosts" / "blue"
    inode = os.stat(netfile).st_ino

    after = net.without_endpoint("ns2")
    names.on_detach(after, "ns2", [], [])
    assert os.stat(netfile).st_ino == inode
    assert netfile.read_text() == network_hosts_text(after)
    assert "ns2" not in netfile.read_text()
    assert not (etc / "ns2").exists()  # hosts, resolv.conf and the directory are gone
    assert "ns2" not in (etc / "ns1" / "hosts").read_text()

    names.on_detach(after.without_endpoint("ns1"), "ns1", [], [])
    assert not netfile.exists()
    assert not (etc / "ns1").exists()


def test_detach_of_multi_homed_namespace_falls_back_to_a_link(env):
    names, etc, state = env
    b, r = blue(E1), red(R1)
    names.on_attach(b, E1, [b], [])
    names.on_attach(r, R1, [b, r], [])
    assert not (etc / "ns1" / "hosts").is_symlink()
    names.on_detach(r.without_endpoint("ns1"), "ns1", [b], [])
    hosts = etc / "ns1" / "hosts"
    assert hosts.is_symlink() and os.readlink(hosts) == str(state / "hosts" / "blue")
    assert not (state / "hosts" / "red").exists()
    assert (etc / "ns1" / "resolv.conf").exists()


def test_detach_updates_other_multi_homed_members(env):
    names, etc, _ = env
    b = blue(E1, E2)
    r = red(R1)
    names.on_attach(b, E2, [b], [])
    names.on_attach(r, R1, [b, r], [])
    assert "10.0.0.3\tns2 web www" in lines(etc / "ns1" / "hosts")
    b2 = b.without_endpoint("ns2")
    names.on_detach(b2, "ns2", [], [("ns1", [b2, r])])
    assert "ns2" not in (etc / "ns1" / "hosts").read_text()


def test_detach_keeps_users_own_files_and_directory(env):
    names, etc, _ = env
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    own = etc / "ns1" / "nsswitch.conf"
    own.write_text("hosts: files\n")
    names.on_detach(net.without_endpoint("ns1"), "ns1", [], [])
    assert not (etc / "ns1" / "hosts").exists() and not (etc / "ns1" / "resolv.conf").exists()
    assert own.read_text() == "hosts: files\n"


def test_sync_and_remove_network(env):
    names, _, state = env
    net = blue(E1, E2)
    names.sync_network(net)
    netfile = state / "hosts" / "blue"
    assert netfile.read_text() == network_hosts_text(net)
    names.sync_network(blue())
    assert not netfile.exists()
    names.sync_network(net)
    names.remove_network("blue")
    assert not netfile.exists()
    names.remove_network("blue")  # twice is fine


# --- hostile or foreign files --------------------------------------------------------------------


def test_planted_symlink_at_hosts_is_replaced_not_followed(env, tmp_path):
    names, etc, state = env
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch\n")
    (etc / "ns1").mkdir(parents=True)
    os.symlink(victim, etc / "ns1" / "hosts")
    os.symlink(victim, etc / "ns1" / "resolv.conf")
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    assert victim.read_bytes() == b"do not touch\n"
    assert os.readlink(etc / "ns1" / "hosts") == str(state / "hosts" / "blue")
    assert not (etc / "ns1" / "resolv.conf").is_symlink()
    assert (etc / "ns1" / "resolv.conf").read_text().startswith(MARKER)


def test_planted_symlink_is_not_followed_for_combined_file(env, tmp_path):
    names, etc, _ = env
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch\n")
    b, r = blue(E1), red(R1)
    names.on_attach(b, E1, [b], [])
    os.unlink(etc / "ns1" / "hosts")
    os.symlink(victim, etc / "ns1" / "hosts")
    names.on_attach(r, R1, [b, r], [])
    assert victim.read_bytes() == b"do not touch\n"
    hosts = etc / "ns1" / "hosts"
    assert not hosts.is_symlink() and hosts.read_text() == combined_hosts_text([b, r])


def test_users_own_hosts_file_is_not_overwritten(env):
    names, etc, _ = env
    (etc / "ns1").mkdir(parents=True)
    own = b"10.1.1.1\tmy-own-host\n"
    (etc / "ns1" / "hosts").write_bytes(own)
    (etc / "ns1" / "resolv.conf").write_bytes(b"nameserver 10.1.1.53\n")
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    assert (etc / "ns1" / "hosts").read_bytes() == own
    assert (etc / "ns1" / "resolv.conf").read_bytes() == b"nameserver 10.1.1.53\n"
    names.on_detach(net.without_endpoint("ns1"), "ns1", [], [])
    assert (etc / "ns1" / "hosts").read_bytes() == own  # not removed either
    assert (etc / "ns1" / "resolv.conf").read_bytes() == b"nameserver 10.1.1.53\n"


def test_our_regular_file_is_replaced(env):
    names, etc, _ = env
    (etc / "ns1").mkdir(parents=True)
    (etc / "ns1" / "hosts").write_text(MARKER + ": stale\n1.2.3.4\told\n")
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    assert (etc / "ns1" / "hosts").is_symlink()


def test_directory_at_hosts_path_is_left_alone(env):
    names, etc, _ = env
    (etc / "ns1" / "hosts").mkdir(parents=True)
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    assert (etc / "ns1" / "hosts").is_dir()


def test_planted_symlink_as_namespace_directory_is_refused(env, tmp_path):
    names, etc, state = env
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    etc.mkdir()
    os.symlink(elsewhere, etc / "ns1")
    net = blue(E1)
    with pytest.raises(OSError):
        names.on_attach(net, E1, [net], [])
    assert os.listdir(elsewhere) == []


def test_no_temp_files_left(env):
    names, etc, state = env
    b, r = blue(E1), red(R1)
    names.on_attach(b, E1, [b], [])
    names.on_attach(r, R1, [b, r], [])
    assert sorted(os.listdir(etc / "ns1")) == ["hosts", "resolv.conf"]
    assert sorted(os.listdir(state / "hosts")) == ["blue", "red"]


def test_relative_state_dir_gives_a_working_link(tmp_path, monkeypatch):
    etc = tmp_path / "etc-netns"
    monkeypatch.setenv("IPVNET_ETC_NETNS", str(etc))
    monkeypatch.setattr(names_mod, "read_host_resolv", lambda: "")
    monkeypatch.chdir(tmp_path)
    names = Names("state")
    net = blue(E1)
    names.on_attach(net, E1, [net], [])
    assert (etc / "ns1" / "hosts").read_text() == network_hosts_text(net)


def test_etc_netns_default(monkeypatch):
    monkeypatch.delenv("IPVNET_ETC_NETNS", raising=False)
    assert names_mod.etc_netns_dir() == "/etc/netns"
    assert Names("/x").ns_dir("ns1") == "/etc/netns/ns1"
