"""The cluster backend of the store: block claims in etcd (see ipvnet.clusters).

Every claim is one etcd transaction that succeeds only if the block's key
does not exist (create_revision == 0), bound to this host's lease; a release
deletes the key only while it still holds this host's value. So exactly one
host wins a race, and a host never frees a block someone else took over.
etcd failures become one-line errors (exit 10) before anything else changed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ipvnet.clusters import ClusterConfig, Membership, block_from_name, block_name, candidates
from ipvnet.errors import ClusterError, Conflict, InvalidArgument, NotFound, StoreError
from ipvnet.model import IPNetwork

if TYPE_CHECKING:
    from ipvnet.etcd import KV, EtcdClient

CLUSTERS_DIR = "clusters"


@contextlib.contextmanager
def etcd_errors(what: str) -> Iterator[None]:
    """etcd's exceptions as ipvnet's: one line naming what failed and the endpoints."""
    from ipvnet.etcd import EtcdError

    try:
        yield
    except EtcdError as e:
        raise ClusterError(f"{what}: {e}", "check that etcd is up and reachable (`ipvnet cluster status`)") from None


def client(endpoints: tuple[str, ...], timeout: float = 2.0, tls: dict[str, str] | None = None,
           auth: dict[str, str] | None = None) -> EtcdClient:
    from ipvnet.etcd import EtcdClient

    tls, auth = tls or {}, auth or {}
    with etcd_errors("connect to etcd"):
        return EtcdClient(list(endpoints), timeout=timeout, cacert=tls.get("cacert"), cert=tls.get("cert"),
                          key=tls.get("key"), user=auth.get("user"), password=auth.get("password"))


class ClusterBlocks:
    """One cluster, as seen from this host: its blocks, claims and lease."""

    def __init__(self, membership: Membership) -> None:
        self.m = membership
        self.config: ClusterConfig = membership.config
        self._client: EtcdClient | None = None

    @property
    def etcd(self) -> EtcdClient:
        if self._client is None:
            self._client = client(self.m.endpoints, self.m.timeout, self.m.tls, self.m.auth)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- blocks ------------------------------------------------------------

    def holders(self) -> dict[str, KV]:
        """Block name -> its key (value "HOST/NETWORK", lease)."""
        with etcd_errors(f"read the blocks of cluster {self.config.name}"):
            prefix = self.config.key("blocks", "")
            return {kv.key[len(prefix):]: kv for kv in self.etcd.get_prefix(prefix)}

    def used(self) -> set[str]:
        with etcd_errors(f"read the blocks of cluster {self.config.name}"):
            prefix = self.config.key("used", "")
            return {kv.key[len(prefix):] for kv in self.etcd.get_prefix(prefix)}

    def claim_new(self, network: str, version: int, attempts: int = 8) -> IPNetwork:
        """A free block of the cluster's CIDR of VERSION, for NETWORK on this host.
        Losing a race (another host took the block first) moves on to the next."""
        cidr = self.config.cidr(version)
        if cidr is None:
            raise InvalidArgument(f"cluster {self.config.name} has no IPv{version} CIDR")
        for _ in range(attempts):
            held, used = set(self.holders()), self.used()
            block = next(candidates(cidr, self.config.block_size(version), held, used), None)
            if block is None:
                raise Conflict(f"no free /{self.config.block_size(version)} block left in cluster "
                               f"{self.config.name} ({cidr})", "free a dead host's blocks with `ipvnet cluster release`")
            won, _holder = self.claim(block, network)
            if won:
                return block
        raise Conflict(f"could not claim a block of cluster {self.config.name} after {attempts} races",
                       "retry; other hosts are claiming blocks at the same time")

    def claim(self, block: IPNetwork, network: str) -> tuple[bool, str | None]:
        """Claim BLOCK (one transaction); returns (won, the holder's value if lost)."""
        key, name = self.config.key("blocks", block_name(block)), block_name(block)
        put = {"key": key, "value": self.m.value(network), "lease": self.m.lease}
        with etcd_errors(f"claim block {block} of cluster {self.config.name}"):
            won, responses = self.etcd.txn(
                [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}],
                [{"request_put": put}, {"request_put": {"key": self.config.key("used", name), "value": "1"}}],
                [{"request_range": {"key": key}}],
            )
        if won:
            return True, None
        kvs = responses[0].get("response_range", {}).get("kvs", []) if responses else []
        value = kvs[0].value if kvs else None
        return value == self.m.value(network), value  # already ours (a repeated request) counts as won

    def release(self, block: IPNetwork, network: str) -> bool:
        """Free BLOCK if this host still holds it for NETWORK."""
        with etcd_errors(f"release block {block} of cluster {self.config.name}"):
            return self.etcd.delete_if_value(self.config.key("blocks", block_name(block)), self.m.value(network))

    def releaser(self, block: IPNetwork, network: str) -> Callable[[], None]:
        """release() of BLOCK as an undo or after-commit action."""
        def act() -> None:
            self.release(block, network)
        return act

    def mine(self) -> dict[IPNetwork, str]:
        """Blocks this host holds in etcd -> the network it holds each for."""
        out = {}
        for name, kv in self.holders().items():
            host, _, network = kv.value.partition("/")
            if host == self.m.host:
                out[block_from_name(name)] = network
        return out

    # -- the host and its lease ----------------------------------------------

    def register(self) -> int:
        """A new lease and this host's key bound to it; returns the lease."""
        with etcd_errors(f"join cluster {self.config.name}"):
            lease, _ttl = self.etcd.lease_grant(self.m.ttl)
            self.etcd.put(self.config.key("hosts", self.m.host), f'{{"lease":{lease},"ttl":{self.m.ttl}}}', lease)
        self.m.lease = lease
        return lease

    def keepalive(self) -> int:
        """Refresh the lease; 0 when it had expired (its keys are gone)."""
        if not self.m.lease:
            return 0
        with etcd_errors(f"heartbeat of cluster {self.config.name}"):
            return self.etcd.lease_keepalive(self.m.lease)

    def hosts(self) -> dict[str, tuple[int, int]]:
        """Host -> (lease, seconds left)."""
        out = {}
        with etcd_errors(f"read the hosts of cluster {self.config.name}"):
            prefix = self.config.key("hosts", "")
            for kv in self.etcd.get_prefix(prefix):
                out[kv.key[len(prefix):]] = (kv.lease, self.etcd.lease_ttl(kv.lease) if kv.lease else -1)
        return out

    def release_host(self, host: str) -> list[str]:
        """Free every block HOST holds, its host key and its lease (an operator's call for a
        dead host). If it comes back, its heartbeat finds the lease gone, joins again and
        re-claims what is still free."""
        freed = []
        with etcd_errors(f"release host {host} of cluster {self.config.name}"):
            key = self.etcd.get(self.config.key("hosts", host))
            for name, kv in self.holders().items():
                if kv.value.partition("/")[0] == host and self.etcd.delete_if_value(
                        self.config.key("blocks", name), kv.value):
                    freed.append(name)
            self.etcd.delete(self.config.key("hosts", host))
            if key is not None and key.lease:
                self.etcd.lease_revoke(key.lease)
        return freed

    def ensure_host_key(self) -> None:
        """This host's key, bound to its lease (an operator may have deleted it)."""
        with etcd_errors(f"heartbeat of cluster {self.config.name}"):
            key = self.config.key("hosts", self.m.host)
            if self.etcd.get(key) is None:
                self.etcd.put(key, f'{{"lease":{self.m.lease},"ttl":{self.m.ttl}}}', self.m.lease)

    def leave(self) -> None:
        with etcd_errors(f"leave cluster {self.config.name}"):
            if self.m.lease:
                self.etcd.lease_revoke(self.m.lease)  # takes the host key and every block bound to it
            self.etcd.delete(self.config.key("hosts", self.m.host))


# -- membership files -------------------------------------------------------------


def membership_path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, CLUSTERS_DIR, f"{name}.toml")


def load_membership(state_dir: str, name: str) -> Membership:
    import tomllib

    path = membership_path(state_dir, name)
    try:
        with open(path, "rb") as f:
            return Membership.from_dict(tomllib.load(f))
    except FileNotFoundError:
        raise NotFound(f"this host has not joined cluster {name!r}",
                       f"run `ipvnet cluster join --etcd URL {name}` first") from None
    except (OSError, ValueError, KeyError) as e:
        raise StoreError(f"{path} is unreadable: {e}", "fix it, or leave and join the cluster again") from None


def memberships(state_dir: str) -> list[str]:
    try:
        return sorted(n[:-5] for n in os.listdir(os.path.join(state_dir, CLUSTERS_DIR)) if n.endswith(".toml"))
    except FileNotFoundError:
        return []


def save_membership(state_dir: str, m: Membership) -> None:
    """Written like every store file (temporary file, fsync, rename), mode 0600: it may hold a password."""
    from ipvnet.store.local import dumps, write_atomic

    os.makedirs(os.path.join(state_dir, CLUSTERS_DIR), mode=0o700, exist_ok=True)
    write_atomic(membership_path(state_dir, m.name), dumps(m.to_dict()))


def remove_membership(state_dir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(membership_path(state_dir, name))
