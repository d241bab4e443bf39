"""store.py: TOML round trip, schema, corruption, symlinks, atomic save and locking."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
import tomllib

import pytest

from ipvnet import store as store_mod
from ipvnet.errors import LockTimeout, StoreError
from ipvnet.model import PARENT_DUMMY, PARENT_VLAN
from ipvnet.store import SCHEMA_VERSION, State, Store
from tests.unit.factories import endpoint, network, subnet


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
            endpoint("ns2", "192.168.20.129/24", ifname="eth1", seq=4, created_ns=True),
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
    return State(networks={"vlan20": a, "mac": b}, boot_id="0f1e2d3c-aaaa-bbbb-cccc-000000000001", seq=4)


@pytest.fixture
def sdir(tmp_path):
    return str(tmp_path / "state")


def store_file(sdir: str) -> str:
    return os.path.join(sdir, "networks.toml")


# --- round trip ---------------------------------------------------------------------


def test_round_trip(sdir):
    st = Store(sdir)
    state = sample_state()
    st.save(state)
    loaded = st.load()
    assert loaded.networks == state.networks
    assert loaded.boot_id == state.boot_id
    assert loaded.seq == 4
    assert loaded.extra == {}
    # human-readable TOML with a schema version
    data = tomllib.loads(open(store_file(sdir)).read())
    assert data["schema"] == SCHEMA_VERSION
    assert data["networks"]["vlan20"]["endpoints"]["ns1"]["ipv4"] == "192.168.20.128/24"


def test_save_load_save_is_stable(sdir):
    st = Store(sdir)
    st.save(sample_state())
    first = open(store_file(sdir), "rb").read()
    st.save(st.load())
    assert open(store_file(sdir), "rb").read() == first


def test_load_missing_file_is_empty_state(sdir):
    state = Store(sdir).load()
    assert state.networks == {} and state.seq == 0 and state.boot_id == ""
    assert not os.path.exists(sdir)  # reading creates nothing


def test_empty_state_round_trip(sdir):
    st = Store(sdir)
    st.save(State())
    assert st.load().networks == {}


def test_state_next_seq():
    s = State(seq=7)
    assert s.next_seq() == 8
    assert s.next_seq() == 9
    assert s.to_dict()["seq"] == 9


def test_save_creates_private_state_dir(sdir):
    Store(sdir).save(State())
    assert stat.S_IMODE(os.stat(sdir).st_mode) == 0o700


# --- schema and older files ----------------------------------------------------------


def test_newer_schema_is_refused_and_file_untouched(sdir):
    os.makedirs(sdir)
    raw = b'schema = 2\nseq = 0\n[networks.x]\nid = "00"\nnew_thing = true\n'
    open(store_file(sdir), "wb").write(raw)
    with pytest.raises(StoreError) as ei:
        Store(sdir).load()
    msg = str(ei.value)
    assert store_file(sdir) in msg and "schema 2" in msg and "upgrade" in msg
    assert open(store_file(sdir), "rb").read() == raw


@pytest.mark.parametrize("schema", ['"1"', "1.0", "[1]"])
def test_non_integer_schema_is_refused(sdir, schema):
    os.makedirs(sdir)
    open(store_file(sdir), "w").write(f"schema = {schema}\n")
    with pytest.raises(StoreError):
        Store(sdir).load()


def test_older_file_missing_keys_gets_defaults(sdir):
    os.makedirs(sdir)
    open(store_file(sdir), "w").write(
        textwrap.dedent(
            """\
            [networks.old]
            id = "ab"
            [[networks.old.subnets]]
            subnet = "10.0.0.0/24"
            gateway = "10.0.0.1"
            [networks.old.endpoints.ns1]
            ipv4 = "10.0.0.2/24"
            """
        )
    )
    state = Store(sdir).load()
    assert state.seq == 0 and state.boot_id == ""
    net = state.networks["old"]
    assert net.driver == "ipvlan" and net.mode == "l2" and net.options["ipvlan_flag"] == "bridge"
    assert net.parent_kind == "existing" and not net.internal and not net.enable_ipv6
    ep = net.endpoints["ns1"]
    assert ep.ifname == "eth0" and str(ep.ipv4) == "10.0.0.2/24" and ep.gw_priority == 0


def test_newer_top_level_keys_are_preserved(sdir):
    os.makedirs(sdir)
    open(store_file(sdir), "w").write(
        textwrap.dedent(
            """\
            schema = 1
            seq = 3
            boot_id = "b"
            future_flag = "keep me"

            [future_table]
            answer = 42
            list = [1, 2]

            [networks]
            """
        )
    )
    st = Store(sdir)
    state = st.load()
    assert state.extra == {"future_flag": "keep me", "future_table": {"answer": 42, "list": [1, 2]}}
    state.next_seq()
    st.save(state)
    data = tomllib.loads(open(store_file(sdir)).read())
    assert data["future_flag"] == "keep me"
    assert data["future_table"] == {"answer": 42, "list": [1, 2]}
    assert data["seq"] == 4 and data["schema"] == SCHEMA_VERSION
    assert st.load().extra == state.extra


def test_extra_cannot_override_known_keys():
    state = State(seq=5, extra={"seq": 99, "schema": 99, "networks": "junk"})
    d = state.to_dict()
    assert d["seq"] == 5 and d["schema"] == SCHEMA_VERSION and d["networks"] == {}


# --- corruption -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"schema = 1\n[networks.x\n",
        b"this is not toml",
        b'schema = 1\nseq = 1\nboot_id = "unterminated\n',
        b"\xff\xfe\x00garbage",
        b"schema = 1\nschema = 1\n",
    ],
)
def test_corrupt_file_names_the_file_and_is_left_unchanged(sdir, raw):
    os.makedirs(sdir)
    path = store_file(sdir)
    open(path, "wb").write(raw)
    before = os.stat(path)
    with pytest.raises(StoreError) as ei:
        Store(sdir).load()
    assert path in str(ei.value)
    assert open(path, "rb").read() == raw
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert os.listdir(sdir) == ["networks.toml"]


def test_truncated_file_is_an_error_naming_the_file(sdir):
    st = Store(sdir)
    st.save(sample_state())
    path = store_file(sdir)
    full = open(path, "rb").read()
    # cut inside a quoted value, as a torn write would
    cut = full[: full.index(b"192.168.20.0/24") + 5]
    open(path, "wb").write(cut)
    with pytest.raises(StoreError) as ei:
        st.load()
    assert path in str(ei.value)
    assert open(path, "rb").read() == cut


@pytest.mark.parametrize(
    "body",
    [
        '[networks.x]\ndriver = "ipvlan"\n',  # no id
        '[networks.x]\nid = "a"\n[[networks.x.subnets]]\nsubnet = "10.0.0.1/33"\n',
        '[networks.x]\nid = "a"\n[networks.x.endpoints.ns1]\nipv4 = "not-an-ip"\n',
        '[networks.x]\nid = "a"\n[networks.x.endpoints.ns1]\nseq = "x"\n',
        "networks = 5\n",
        "[networks]\nx = 5\n",
    ],
)
def test_invalid_network_entry_is_a_store_error(sdir, body):
    os.makedirs(sdir)
    path = store_file(sdir)
    open(path, "w").write("schema = 1\n" + body)
    with pytest.raises(StoreError) as ei:
        Store(sdir).load()
    assert path in str(ei.value)
    assert open(path).read() == "schema = 1\n" + body


def test_invalid_top_level_seq_is_a_store_error(sdir):
    os.makedirs(sdir)
    open(store_file(sdir), "w").write('schema = 1\nseq = "abc"\n')
    with pytest.raises(StoreError) as ei:
        Store(sdir).load()
    assert store_file(sdir) in str(ei.value)


# --- symlinks -----------------------------------------------------------------------------


def test_load_refuses_a_symlinked_store(sdir, tmp_path):
    os.makedirs(sdir)
    target = tmp_path / "elsewhere.toml"
    target.write_text("schema = 1\nseq = 77\n")
    os.symlink(target, store_file(sdir))
    with pytest.raises(StoreError) as ei:
        Store(sdir).load()
    assert "symbolic link" in str(ei.value) and store_file(sdir) in str(ei.value)


def test_save_refuses_to_replace_a_symlink(sdir, tmp_path):
    os.makedirs(sdir)
    target = tmp_path / "victim"
    target.write_bytes(b"precious\n")
    os.symlink(target, store_file(sdir))
    with pytest.raises(StoreError) as ei:
        Store(sdir).save(sample_state())
    assert "symbolic link" in str(ei.value)
    assert target.read_bytes() == b"precious\n"
    assert os.path.islink(store_file(sdir))
    assert sorted(os.listdir(sdir)) == ["networks.toml"]  # no temp file left behind


# --- atomic save ---------------------------------------------------------------------------


def test_save_is_atomic_no_temp_files_and_private_mode(sdir):
    st = Store(sdir)
    st.save(sample_state())
    assert sorted(os.listdir(sdir)) == ["networks.cache.json", "networks.toml"]
    assert stat.S_IMODE(os.stat(store_file(sdir)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(sdir, "networks.cache.json")).st_mode) == 0o600
    old_inode = os.stat(store_file(sdir)).st_ino
    state = st.load()
    state.boot_id = "new"
    st.save(state)
    assert sorted(os.listdir(sdir)) == ["networks.cache.json", "networks.toml"]
    assert stat.S_IMODE(os.stat(store_file(sdir)).st_mode) == 0o600
    # replaced by rename (a new inode), not rewritten in place
    assert os.stat(store_file(sdir)).st_ino != old_inode
    assert st.load().boot_id == "new"


def test_save_failure_before_rename_leaves_old_file_and_no_temp(sdir, monkeypatch):
    st = Store(sdir)
    st.save(sample_state())
    before = open(store_file(sdir), "rb").read()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.os, "rename", boom)
    with pytest.raises(StoreError) as ei:
        st.save(State())
    assert store_file(sdir) in str(ei.value)
    monkeypatch.undo()
    assert open(store_file(sdir), "rb").read() == before
    assert sorted(os.listdir(sdir)) == ["networks.cache.json", "networks.toml"]


def test_save_fsyncs_file_and_directory(sdir, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(store_mod.os, "fsync", spy)
    Store(sdir).save(State())
    assert synced == [False, True]  # the temp file, then the directory after the rename


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
    with Store(sdir, lock_timeout=timeout).locked(exclusive):
        pass
    return time.monotonic() - t0


def test_exclusive_lock_held_elsewhere_times_out(sdir, holder):
    holder("ex")
    t0 = time.monotonic()
    with pytest.raises(LockTimeout) as ei:
        with Store(sdir, lock_timeout=0.3).locked(True):
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

    st = Store(sdir, lock_timeout=0.3)
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
    st = Store(sdir, lock_timeout=0.3)
    with pytest.raises(RuntimeError):
        with st.locked(True):
            raise RuntimeError("boom")
    with st.locked(True):
        pass


def test_shared_lock_on_fresh_host_creates_nothing(sdir):
    with Store(sdir, lock_timeout=0.3).locked(False):
        pass
    assert not os.path.exists(sdir)


def test_lock_file_symlink_is_refused(sdir, tmp_path):
    os.makedirs(sdir)
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.symlink(victim, os.path.join(sdir, "lock"))
    with pytest.raises(StoreError):
        with Store(sdir, lock_timeout=0.3).locked(True):
            pass
    assert victim.read_text() == "x"


# --- environment ------------------------------------------------------------------------------


def test_env_defaults(monkeypatch):
    monkeypatch.delenv("IPVNET_STATE_DIR", raising=False)
    monkeypatch.delenv("IPVNET_LOCK_TIMEOUT", raising=False)
    assert store_mod.state_dir_from_env() == "/var/lib/ipvnet"
    assert store_mod.lock_timeout_from_env() == 60.0
    monkeypatch.setenv("IPVNET_STATE_DIR", "/tmp/x")
    monkeypatch.setenv("IPVNET_LOCK_TIMEOUT", "2.5")
    assert store_mod.state_dir_from_env() == "/tmp/x"
    assert store_mod.lock_timeout_from_env() == 2.5
    assert Store().dir == "/tmp/x" and Store().lock_timeout == 2.5
    assert Store(lock_timeout=0).lock_timeout == 0
    monkeypatch.setenv("IPVNET_LOCK_TIMEOUT", "soon")
    assert store_mod.lock_timeout_from_env() == 60.0


# --- the parsed-copy cache ---------------------------------------------------


def _cache(sdir):
    return os.path.join(sdir, "networks.cache.json")


def test_cache_is_used_only_while_the_toml_file_is_unchanged(sdir):
    import json

    st = Store(sdir)
    st.save(sample_state())
    cached = json.loads(open(_cache(sdir)).read())
    cached["data"]["boot_id"] = "from-cache"
    open(_cache(sdir), "w").write(json.dumps(cached))
    assert st.load().boot_id == "from-cache"  # same inode, size, mtime: the cache is read
    text = open(store_file(sdir)).read().replace('boot_id = "', 'boot_id = "edited-')
    with open(store_file(sdir), "w") as f:  # a hand edit in place
        f.write(text)
    assert st.load().boot_id.startswith("edited-")


def test_corrupt_or_foreign_cache_is_ignored(sdir):
    st = Store(sdir)
    st.save(sample_state())
    want = st.load()
    for junk in ("{", "[]", '{"key": 1}', '{"key": [1,2,3], "data": {}}'):
        open(_cache(sdir), "w").write(junk)
        assert st.load().networks.keys() == want.networks.keys()


def test_corrupt_toml_is_reported_even_with_an_old_cache(sdir):
    st = Store(sdir)
    st.save(sample_state())
    with open(store_file(sdir), "a") as f:
        f.write("[[[ broken")
    with pytest.raises(StoreError):
        st.load()
