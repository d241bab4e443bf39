"""The local store: one TOML file per network, host file, schema, corruption,
symlinks, atomic save, only-what-changed writes, migration from schema 1,
unknown keys, the parsed-copy cache, locking and the TOML writer."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvnet.errors import LockTimeout, StoreError
from ipvnet.model import PARENT_DUMMY, PARENT_VLAN, Endpoints
from ipvnet.store import SCHEMA_VERSION, State, lock_timeout_from_env, state_dir_from_env
from ipvnet.store import local as local_mod
from ipvnet.store.local import LocalStore
from ipvnet.store.migrate import migrate_if_needed
from ipvnet.store.tomlw import dumps
from tests.unit.factories import endpoint, network, subnet

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "state-schema1")


def sample_state() -> State:
    a = network(
        "vlan20",
        [
            subnet("192.168.20.0/24", "192.168.20.1", "192.168.20.128/25", {"router": "192.168.20.2"}),
            subnet("fd00:20::/64", "fd00:20::1"),
        ],
        parent="eth0.20",
        parent_kind=PARENT_VLAN,
        enable_ipv6=True,
        mtu=1400,
        labels={"owner": "ops", "quote": 'a "b" = c'},
        endpoints=[
            endpoint("ns1", "192.168.20.128/24", "fd00:20::2/64", seq=1, aliases=("web",), gw_priority=3),
            endpoint("ns.2", "192.168.20.129/24", ifname="eth1", seq=4, created_ns=True),
        ],
    )
    b = network(
        "mac",
        [subnet("172.18.0.0/16", "172.18.0.1")],
        driver="macvlan",
        mode="private",
        parent="dm-0123456789ab",
        parent_kind=PARENT_DUMMY,
        internal=True,
        endpoints=[endpoint("ns1", "172.18.0.2/16", seq=2, mac="02:42:ac:12:00:02")],
    )
    state = State.from_networks({})
    state.networks.update({"vlan20": a, "mac": b})
    state.boot_id = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
    return state


@pytest.fixture
def sdir(tmp_path):
    return str(tmp_path / "state")


def net_file(sdir: str, name: str) -> str:
    return os.path.join(sdir, "networks", f"{name}.toml")


def host_file(sdir: str) -> str:
    return os.path.join(sdir, "host.toml")


# --- round trip ---------------------------------------------------------------------


def test_round_trip_one_file_per_network(sdir):
    st = LocalStore(sdir)
    state = sample_state()
    st.save(state)
    loaded = st.load()
    assert loaded.networks == state.networks
    assert loaded.boot_id == state.boot_id
    assert loaded.seq == 4  # derived: the highest attach order held
    assert sorted(os.listdir(os.path.join(sdir, "networks"))) == ["mac.toml", "vlan20.toml"]
    data = tomllib.loads(open(net_file(sdir, "vlan20")).read())
    assert data["schema"] == SCHEMA_VERSION
    assert data["endpoints"]["ns1"]["ipv4"] == "192.168.20.128/24"
    assert tomllib.loads(open(host_file(sdir)).read()) == {"schema": SCHEMA_VERSION, "boot_id": state.boot_id}


def test_save_load_save_is_stable_and_writes_nothing_unchanged(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    first = {n: os.stat(net_file(sdir, n)).st_ino for n in ("vlan20", "mac")}
    st.save(st.load())
    assert {n: os.stat(net_file(sdir, n)).st_ino for n in ("vlan20", "mac")} == first


def test_a_save_writes_only_the_networks_that_changed(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    inodes = {n: os.stat(net_file(sdir, n)).st_ino for n in ("vlan20", "mac")}
    host = os.stat(host_file(sdir)).st_ino
    state = st.load()
    state.networks["mac"] = state.networks["mac"].without_endpoint("ns1")
    st.save(state)
    assert os.stat(net_file(sdir, "vlan20")).st_ino == inodes["vlan20"]
    assert os.stat(net_file(sdir, "mac")).st_ino != inodes["mac"]
    assert os.stat(host_file(sdir)).st_ino == host
    state = st.load()
    del state.networks["vlan20"]
    st.save(state)
    assert not os.path.exists(net_file(sdir, "vlan20"))
    assert not os.path.exists(os.path.join(sdir, "cache", "vlan20.json"))
    assert list(st.load().networks) == ["mac"]


def test_load_missing_store_is_empty_state_and_creates_nothing(sdir):
    state = LocalStore(sdir).load()
    assert state.networks == {} and state.seq == 0 and state.boot_id == ""
    assert not os.path.exists(sdir)


def test_state_next_seq():
    s = State.from_networks({}, seq=7)
    assert s.next_seq() == 8
    assert s.next_seq() == 9


def test_save_creates_private_state_dir(sdir):
    LocalStore(sdir).save(sample_state())
    assert stat.S_IMODE(os.stat(sdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(net_file(sdir, "mac")).st_mode) == 0o600


def test_network_names_lists_without_parsing(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    with open(net_file(sdir, "mac"), "w") as f:
        f.write("[[[ broken")
    assert st.network_names() == ["mac", "vlan20"]


# --- schema, unknown keys, older files ---------------------------------------------------------


def test_newer_schema_is_refused_and_file_untouched(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    path = net_file(sdir, "mac")
    raw = open(path, "rb").read().replace(b"schema = 2", b"schema = 3")
    open(path, "wb").write(raw)
    with pytest.raises(StoreError) as ei:
        st.load()
    msg = str(ei.value)
    assert path in msg and "schema 3" in msg and "upgrade" in msg
    assert open(path, "rb").read() == raw


@pytest.mark.parametrize("schema", ['"1"', "1.0", "[1]", "99"])
def test_bad_host_schema_is_refused(sdir, schema):
    os.makedirs(sdir)
    open(host_file(sdir), "w").write(f"schema = {schema}\n")
    with pytest.raises(StoreError):
        LocalStore(sdir).load()


def test_unknown_keys_survive_a_save_at_every_level(sdir):
    """A newer ipvnet's additions (host, network, subnet, endpoint) are kept by this one."""
    st = LocalStore(sdir)
    st.save(sample_state())
    with open(host_file(sdir), "a") as f:
        f.write('future_flag = "keep me"\n[future_table]\nanswer = 42\n')
    path = net_file(sdir, "vlan20")
    d = tomllib.loads(open(path).read())
    d["vxlan_id"] = 7
    d["subnets"][0]["reserved_tail"] = 8
    d["endpoints"]["ns1"]["qos"] = {"class": "gold", "burst": [1, 2]}
    open(path, "w").write(dumps(d, frozenset({"endpoints"})))
    state = st.load()
    net = state.networks["vlan20"]
    state.networks["vlan20"] = net.with_endpoint(endpoint("ns3", "192.168.20.130/24", seq=9))
    state.boot_id = "changed"
    st.save(state)
    again = tomllib.loads(open(path).read())
    assert again["vxlan_id"] == 7 and again["subnets"][0]["reserved_tail"] == 8
    assert again["endpoints"]["ns1"]["qos"] == {"class": "gold", "burst": [1, 2]}
    assert "ns3" in again["endpoints"]
    host = tomllib.loads(open(host_file(sdir)).read())
    assert host["future_flag"] == "keep me" and host["future_table"] == {"answer": 42}
    assert host["boot_id"] == "changed" and host["schema"] == SCHEMA_VERSION


def test_unknown_keys_cannot_override_known_ones():
    net = network("n", [subnet("10.0.0.0/24")])
    d = net.to_dict()
    d["id"] = net.id
    from ipvnet.model import Network

    loaded = Network.from_dict("n", {**d, "future": 1})
    assert loaded.extra == {"future": 1} and loaded.to_dict()["id"] == net.id


def test_older_network_file_missing_keys_gets_defaults(sdir):
    os.makedirs(os.path.join(sdir, "networks"))
    open(host_file(sdir), "w").write("schema = 2\n")
    open(net_file(sdir, "old"), "w").write(textwrap.dedent(
        """\
        id = "ab"
        [[subnets]]
        subnet = "10.0.0.0/24"
        gateway = "10.0.0.1"
        [endpoints]
        ns1 = { ipv4 = "10.0.0.2/24" }
        """))
    net = LocalStore(sdir).load().networks["old"]
    assert net.driver == "ipvlan" and net.mode == "l2" and net.options["ipvlan_flag"] == "bridge"
    assert net.parent_kind == "existing" and not net.internal and not net.enable_ipv6 and net.enable_ipv4
    ep = net.endpoints["ns1"]
    assert ep.ifname == "eth0" and str(ep.ipv4) == "10.0.0.2/24" and ep.gw_priority == 0


# --- corruption -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"schema = 2\n[options\n", b"this is not toml", b'id = "unterminated\n', b"\xff\xfe\x00garbage",
     b"schema = 2\nschema = 2\n"],
)
def test_corrupt_network_file_names_the_file_and_is_left_unchanged(sdir, raw):
    st = LocalStore(sdir)
    st.save(sample_state())
    path = net_file(sdir, "mac")
    open(path, "wb").write(raw)
    before = os.stat(path)
    with pytest.raises(StoreError) as ei:
        st.load()
    assert path in str(ei.value)
    assert open(path, "rb").read() == raw and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_truncated_file_is_an_error_naming_the_file(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    path = net_file(sdir, "vlan20")
    full = open(path, "rb").read()
    cut = full[: full.index(b"192.168.20.0/24") + 5]  # inside a quoted value, as a torn write would
    open(path, "wb").write(cut)
    with pytest.raises(StoreError) as ei:
        st.load()
    assert path in str(ei.value) and open(path, "rb").read() == cut


@pytest.mark.parametrize(
    "body",
    [
        'driver = "ipvlan"\n',  # no id
        'id = "a"\n[[subnets]]\nsubnet = "10.0.0.1/33"\n',
        'id = "a"\n[endpoints]\nns1 = { ipv4 = "not-an-ip" }\n',
        'id = "a"\n[endpoints]\nns1 = { seq = "x" }\n',
        'id = "a"\nendpoints = 5\n',
    ],
)
def test_invalid_network_entry_is_a_store_error(sdir, body):
    os.makedirs(os.path.join(sdir, "networks"))
    open(host_file(sdir), "w").write("schema = 2\n")
    path = net_file(sdir, "x")
    open(path, "w").write("schema = 2\n" + body)
    with pytest.raises(StoreError) as ei:
        LocalStore(sdir).load()
    assert path in str(ei.value)
    assert open(path).read() == "schema = 2\n" + body


# --- symlinks -----------------------------------------------------------------------------


def test_load_refuses_a_symlinked_network_file(sdir, tmp_path):
    st = LocalStore(sdir)
    st.save(sample_state())
    target = tmp_path / "elsewhere.toml"
    target.write_text('schema = 2\nid = "x"\n')
    os.unlink(net_file(sdir, "mac"))
    os.symlink(target, net_file(sdir, "mac"))
    with pytest.raises(StoreError) as ei:
        st.load()
    assert "symbolic link" in str(ei.value) and net_file(sdir, "mac") in str(ei.value)


def test_save_refuses_to_replace_a_symlink(sdir, tmp_path):
    st = LocalStore(sdir)
    st.save(sample_state())
    target = tmp_path / "victim"
    target.write_bytes(b"precious\n")
    os.unlink(net_file(sdir, "mac"))
    os.symlink(target, net_file(sdir, "mac"))
    state = sample_state()
    state.loaded = {}
    with pytest.raises(StoreError) as ei:
        st.save(state)
    assert "symbolic link" in str(ei.value)
    assert target.read_bytes() == b"precious\n" and os.path.islink(net_file(sdir, "mac"))
    assert not [n for n in os.listdir(os.path.join(sdir, "networks")) if ".tmp." in n]


# --- atomic save ---------------------------------------------------------------------------


def test_save_replaces_by_rename_and_leaves_no_temp_files(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    old_inode = os.stat(net_file(sdir, "mac")).st_ino
    state = st.load()
    state.networks["mac"] = state.networks["mac"].without_endpoint("ns1")
    st.save(state)
    assert os.stat(net_file(sdir, "mac")).st_ino != old_inode
    for d in ("", "networks", "cache"):
        assert not [n for n in os.listdir(os.path.join(sdir, d)) if ".tmp." in n]


def test_save_failure_before_rename_leaves_old_file_and_no_temp(sdir, monkeypatch):
    st = LocalStore(sdir)
    st.save(sample_state())
    before = open(net_file(sdir, "mac"), "rb").read()
    state = st.load()
    state.networks["mac"] = state.networks["mac"].without_endpoint("ns1")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_mod.os, "rename", boom)
    with pytest.raises(StoreError) as ei:
        st.save(state)
    assert net_file(sdir, "mac") in str(ei.value)
    monkeypatch.undo()
    assert open(net_file(sdir, "mac"), "rb").read() == before
    assert not [n for n in os.listdir(os.path.join(sdir, "networks")) if ".tmp." in n]


def test_save_fsyncs_each_file_then_the_directory_once(sdir, monkeypatch):
    st = LocalStore(sdir)
    st.save(sample_state())
    state = st.load()
    for name in ("mac", "vlan20"):
        state.networks[name] = state.networks[name].with_endpoint(endpoint("extra", seq=20))
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(local_mod.os, "fsync", spy)
    st.save(state)
    assert synced == [False, False, True]  # two network files, then their directory


# --- migration from schema 1 ---------------------------------------------------------------


def copy_fixture(sdir: str) -> None:
    shutil.copytree(FIXTURE, sdir)


def test_schema1_store_is_read_as_is_and_migrated_on_the_first_change(sdir):
    copy_fixture(sdir)
    st = LocalStore(sdir)
    before = st.load()
    assert sorted(before.networks) == ["iso", "mac", "vlan20"] and before.seq == 4
    assert before.networks["vlan20"].endpoints["web"].aliases == ("www",)
    assert os.listdir(sdir) != [] and not os.path.exists(host_file(sdir))  # reading migrates nothing
    with st.locked(exclusive=True):
        pass
    assert os.path.exists(host_file(sdir)) and not os.path.exists(os.path.join(sdir, "networks.toml"))
    assert os.path.exists(os.path.join(sdir, "networks.toml.schema1"))
    after = st.load()
    assert after.networks == before.networks and after.boot_id == before.boot_id and after.seq == 4
    assert sorted(os.listdir(os.path.join(sdir, "networks"))) == ["iso.toml", "mac.toml", "vlan20.toml"]


def test_migration_crash_before_the_commit_point_leaves_schema1_whole(sdir, monkeypatch):
    copy_fixture(sdir)
    st = LocalStore(sdir)
    want = st.load().networks
    real = st.write_file

    def crash(path, text, sync_dir=True):
        if path.endswith("host.toml"):
            raise KeyboardInterrupt  # killed just before the commit point
        return real(path, text, sync_dir)

    monkeypatch.setattr(st, "write_file", crash)
    with pytest.raises(KeyboardInterrupt):
        migrate_if_needed(st)
    monkeypatch.undo()
    assert not os.path.exists(host_file(sdir)) and os.path.exists(os.path.join(sdir, "networks.toml"))
    assert st.load().networks == want  # the old layout is still the store
    assert migrate_if_needed(st) and st.load().networks == want  # and a second attempt completes


def test_corrupt_schema1_store_is_not_migrated(sdir):
    os.makedirs(sdir)
    open(os.path.join(sdir, "networks.toml"), "w").write("[[[ broken")
    st = LocalStore(sdir)
    with pytest.raises(StoreError):
        with st.locked(exclusive=True):
            pass
    assert os.listdir(sdir) == ["networks.toml", "lock"] or sorted(os.listdir(sdir)) == ["lock", "networks.toml"]


# --- locking ----------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """\
    import fcntl, os, sys, time
    os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX if sys.argv[2] == "ex" else fcntl.LOCK_SH)
    print("locked", flush=True)
    time.sleep(30)
    """
)


@pytest.fixture
def holder(sdir):
    """Start a python process that holds <dir>/lock (exclusive or shared) until killed."""
    procs = []

    def start(kind: str) -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, os.path.join(sdir, "lock"), kind],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _timed_lock(sdir: str, exclusive: bool, timeout: float = 0.3) -> float:
    t0 = time.monotonic()
    with LocalStore(sdir, lock_timeout=timeout).locked(exclusive):
        pass
    return time.monotonic() - t0


def test_exclusive_lock_held_elsewhere_times_out(sdir, holder):
    holder("ex")
    t0 = time.monotonic()
    with pytest.raises(LockTimeout) as ei:
        with LocalStore(sdir, lock_timeout=0.3).locked(True):
            pytest.fail("got the lock while another process holds it")
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed < 1.0
    assert os.path.join(sdir, "lock") in str(ei.value)
    assert ei.value.exit_code == 7


def test_shared_lock_waits_for_exclusive_holder(sdir, holder):
    holder("ex")
    with pytest.raises(LockTimeout):
        _timed_lock(sdir, exclusive=False)


def test_shared_locks_coexist_but_exclude_writers(sdir, holder):
    holder("sh")
    assert _timed_lock(sdir, exclusive=False) < 0.3
    with pytest.raises(LockTimeout):
        _timed_lock(sdir, exclusive=True)


def test_lock_becomes_free_when_holder_exits(sdir, holder):
    p = holder("ex")
    p.kill()
    p.wait()
    assert _timed_lock(sdir, exclusive=True, timeout=2) < 2


def test_lock_waits_and_succeeds_once_released(sdir, holder):
    p = holder("ex")
    import threading

    threading.Timer(0.2, p.kill).start()
    elapsed = _timed_lock(sdir, exclusive=True, timeout=5)
    assert 0.15 < elapsed < 3


def test_exclusive_lock_is_held_inside_and_released_after(sdir):
    import fcntl

    st = LocalStore(sdir, lock_timeout=0.3)
    with st.locked(True):
        fd = os.open(os.path.join(sdir, "lock"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(os.path.join(sdir, "lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)
    assert stat.S_IMODE(os.stat(os.path.join(sdir, "lock")).st_mode) == 0o600


def test_lock_released_when_body_raises(sdir):
    st = LocalStore(sdir, lock_timeout=0.3)
    with pytest.raises(RuntimeError):
        with st.locked(True):
            raise RuntimeError("boom")
    with st.locked(True):
        pass


def test_shared_lock_on_fresh_host_creates_nothing(sdir):
    with LocalStore(sdir, lock_timeout=0.3).locked(False):
        pass
    assert not os.path.exists(sdir)


def test_lock_file_symlink_is_refused(sdir, tmp_path):
    os.makedirs(sdir)
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.symlink(victim, os.path.join(sdir, "lock"))
    with pytest.raises(StoreError):
        with LocalStore(sdir, lock_timeout=0.3).locked(True):
            pass
    assert victim.read_text() == "x"


# --- environment ------------------------------------------------------------------------------


def test_env_defaults(monkeypatch):
    monkeypatch.delenv("IPVNET_STATE_DIR", raising=False)
    monkeypatch.delenv("IPVNET_LOCK_TIMEOUT", raising=False)
    assert state_dir_from_env() == "/var/lib/ipvnet"
    assert lock_timeout_from_env() == 60.0
    monkeypatch.setenv("IPVNET_STATE_DIR", "/tmp/x")
    monkeypatch.setenv("IPVNET_LOCK_TIMEOUT", "2.5")
    assert state_dir_from_env() == "/tmp/x"
    assert lock_timeout_from_env() == 2.5
    assert LocalStore().dir == "/tmp/x" and LocalStore().lock_timeout == 2.5
    assert LocalStore(lock_timeout=0).lock_timeout == 0
    monkeypatch.setenv("IPVNET_LOCK_TIMEOUT", "soon")
    assert lock_timeout_from_env() == 60.0


# --- the parsed-copy cache ---------------------------------------------------


def _cache(sdir, name="vlan20"):
    return os.path.join(sdir, "cache", f"{name}.json")


def test_cache_is_used_only_while_the_toml_file_is_unchanged(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    head, _, body = open(_cache(sdir)).read().partition("\n")
    cached = json.loads(head)
    cached["data"]["created"] = "from-cache"
    open(_cache(sdir), "w").write(json.dumps(cached) + "\n" + body)
    assert st.load().networks["vlan20"].created == "from-cache"  # same inode, size, mtime: the cache is read
    text = open(net_file(sdir, "vlan20")).read().replace('created = "', 'created = "edited-')
    with open(net_file(sdir, "vlan20"), "w") as f:  # a hand edit in place
        f.write(text)
    assert st.load().networks["vlan20"].created.startswith("edited-")


def test_corrupt_or_foreign_cache_is_ignored(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    want = st.load()
    for junk in ("{", "[]", '{"key": 1}', '{"key": [1,2,3], "data": {}}'):
        open(_cache(sdir), "w").write(junk)
        assert st.load().networks == want.networks


def test_corrupt_toml_is_reported_even_with_an_old_cache(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    with open(net_file(sdir, "vlan20"), "a") as f:
        f.write("[[[ broken")
    with pytest.raises(StoreError):
        st.load()


# --- the TOML writer -------------------------------------------------------------

SCALAR = st.one_of(st.text(), st.integers(-2**63, 2**63 - 1), st.booleans())
KEY = st.text(min_size=1, max_size=12)
VALUE = st.recursive(SCALAR | st.lists(SCALAR, max_size=3),
                     lambda inner: st.dictionaries(KEY, inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEY, VALUE | st.lists(st.dictionaries(KEY, SCALAR, min_size=1, max_size=3), min_size=1,
                                              max_size=2), max_size=5),
       st.dictionaries(KEY, st.dictionaries(KEY, VALUE, max_size=3), max_size=3))
def test_toml_writer_round_trips_through_tomllib(doc, inline_children):
    doc = dict(doc)
    doc["endpoints"] = inline_children
    text = dumps(doc, frozenset({"endpoints"}))
    assert tomllib.loads(text) == doc


def test_toml_writer_writes_one_line_per_namespace(sdir):
    st = LocalStore(sdir)
    st.save(sample_state())
    text = open(net_file(sdir, "vlan20")).read()
    assert '\nns1 = { ifname = "eth0",' in text and '\n"ns.2" = { ifname = "eth1",' in text


def test_an_attach_or_detach_patches_the_namespace_lines_instead_of_rewriting_them(sdir, monkeypatch):
    """Only namespaces came or went: the file is the old text with lines added or dropped
    (no re-rendering of the others), and it reads back exactly as a full render would."""
    st = LocalStore(sdir)
    st.save(sample_state())
    state = st.load()
    net = state.networks["vlan20"]
    state.networks["vlan20"] = net.with_endpoint(endpoint("ns9", "192.168.20.140/24", seq=9)).without_endpoint("ns1")
    from ipvnet.store import local

    rendered = []
    real = local.dumps
    monkeypatch.setattr(local, "dumps", lambda *a, **k: rendered.append(1) or real(*a, **k))
    st.save(state)
    assert rendered == []  # patched, not rendered
    text = open(net_file(sdir, "vlan20")).read()
    assert "\nns9 = { " in text and "\nns1 = " not in text
    monkeypatch.undo()
    assert tomllib.loads(text) == tomllib.loads(real({"schema": SCHEMA_VERSION, **state.networks["vlan20"].to_dict()},
                                                     frozenset({"endpoints"})))
    # anything else changed (here the labels), or a file edited by hand: rendered whole
    state = st.load()
    from ipvnet.record import replace

    state.networks["vlan20"] = replace(state.networks["vlan20"], labels={"x": "y"})
    st.save(state)
    assert tomllib.loads(open(net_file(sdir, "vlan20")).read())["labels"] == {"x": "y"}
    with open(net_file(sdir, "vlan20"), "a") as f:
        f.write("\n[endpoints.extra]\nifname = \"eth0\"\nseq = 30\n")
    state = st.load()
    state.networks["vlan20"] = state.networks["vlan20"].without_endpoint("extra")
    st.save(state)
    assert "extra" not in tomllib.loads(open(net_file(sdir, "vlan20")).read())["endpoints"]


def test_the_cache_is_patched_with_the_file_and_reads_back_as_the_file_does(sdir):
    """An attach and a detach cut and append the cache's namespace lines as they do
    the TOML file's; what the patched cache yields is what parsing the file yields."""
    st = LocalStore(sdir)
    st.save(sample_state())
    state = st.load()
    net = state.networks["vlan20"]
    state.networks["vlan20"] = net.with_endpoint(endpoint("ns9", "192.168.20.140/24", seq=9)).without_endpoint("ns1")
    st.save(state)
    lines = open(_cache(sdir)).read().splitlines()
    assert lines[-1].startswith(f'ns9\t{int(ipaddress.ip_address("192.168.20.140"))}\t\t{{')
    assert not any(x.startswith("ns1\t") for x in lines)
    assert json.loads(lines[0])["data"]["endpoints"] == {}
    state = st.load()  # from the patched cache
    state.networks["vlan20"] = state.networks["vlan20"].without_endpoint("ns.2")
    st.save(state)
    from_cache = LocalStore(sdir).load().networks["vlan20"]
    shutil.rmtree(os.path.join(sdir, "cache"))
    from_file = LocalStore(sdir).load().networks["vlan20"]
    assert from_cache.to_dict() == from_file.to_dict()
    assert sorted(from_file.endpoints) == ["ns9"]


def test_the_cache_keeps_the_address_index_and_top_seq_as_the_members_give_them(sdir):
    """What an attach derives from all members comes back from the cache's first
    line, equal to what walking the members gives; a copy in another format, or
    with lines that do not split, is a miss and the file is parsed instead."""
    st = LocalStore(sdir)
    st.save(sample_state())
    state = st.load()
    net = state.networks["vlan20"]
    net.endpoints.held(), net.endpoints.max_seq()  # known: so the save keeps them
    state.networks["vlan20"] = net.with_endpoint(endpoint("ns9", "192.168.20.140/24", seq=9)).without_endpoint("ns1")
    st.save(state)
    head = json.loads(open(_cache(sdir)).readline())
    assert head["format"] == 3 and head["top"] == 9 and head["layout"] is True
    primed = LocalStore(sdir).load().networks["vlan20"].endpoints
    assert primed.derived()[0] is not None
    walked = Endpoints(dict(primed.raw()))
    assert primed.held() == walked.held() and (4, int(ipaddress.ip_address("192.168.20.140"))) in primed.held()
    assert primed.max_seq() == walked.max_seq() == 9
    for damage in ("the first format", "a line without its tab"):
        text = open(_cache(sdir)).read()
        head, _, body = text.partition("\n")
        if damage == "a line without its tab":
            body = body.replace("\t", " ", 1)
        else:  # no "format" key
            cached = json.loads(head)
            del cached["format"]
            head = json.dumps(cached)
        with open(_cache(sdir), "w") as f:
            f.write(head + "\n" + body)
        again = LocalStore(sdir)
        assert sorted(again.load().networks["vlan20"].endpoints) == sorted(primed)
        assert json.loads(open(_cache(sdir)).readline())["format"] == 3  # rewritten from the file


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True),
                       st.tuples(st.one_of(st.none(), st.integers(1, 2**16)), st.one_of(st.none(), st.integers(1, 2**20)),
                                 st.text(max_size=6)), max_size=8),
       st.data())
@settings(max_examples=100, deadline=None)
def test_copy_lines_round_trip_and_patch_by_offsets(members, data):
    """The copy's member lines give back every entry and the address index the
    entries give; cutting and appending lines by offsets gives the lines of the
    changed map."""
    import ipaddress

    from ipvnet.model import Endpoints
    from ipvnet.store import copyfile

    def entry(v4, v6, note):
        d = {"ifname": "eth0", "seq": 1, "note\t\n": note}  # keys and values JSON must escape
        if v4:
            d["ipv4"] = f"{ipaddress.IPv4Address(0x0A000000 + v4)}/8"
        if v6:
            d["ipv6"] = f"{ipaddress.IPv6Address((0xFD << 120) + v6)}/64"
        return d

    entries = {ns: entry(*m) for ns, m in members.items()}
    raw = b'{"format":3}\n' + copyfile.lines(entries)
    copy = copyfile.Copy({}, raw, raw.find(b"\n") + 1)
    texts, held = copyfile.members(copy)
    assert {ns: json.loads(t) for ns, t in texts.items()} == entries
    assert held == Endpoints(entries).held()
    removed = data.draw(st.lists(st.sampled_from(sorted(entries)), unique=True) if entries else st.just([]))
    added = {f"new{i}": entry(i + 1, None, "") for i in range(data.draw(st.integers(0, 2)))}
    body = b"".join(bytes(p) for p in copyfile.patched(copy, removed, added))
    want = {ns: d for ns, d in entries.items() if ns not in removed} | added
    assert body == copyfile.lines(want)
