"""The service layer: one function per command, each a whole transaction.

Order of effects (crash-safety contract, see README "Reliability"):
lock -> load store -> validate and plan (pure) -> apply to the kernel (undo
on failure) -> hosts files -> write store atomically -> unlock. A failure
before the store write undoes the kernel changes, so kernel and store stay
as they were; `check` reports what a crash (SIGKILL) in between left.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ipvnet import fault, ipam, names, netns
from ipvnet.errors import Conflict, InvalidArgument, IpvnetError, KernelError, NotFound, PermissionDenied
from ipvnet.model import (
    PARENT_DUMMY,
    PARENT_EXISTING,
    PARENT_VLAN,
    Endpoint,
    Network,
    SubnetConfig,
    dummy_parent_name,
    normalize_options,
    parse_key_values,
    parse_parent,
    random_hex,
    validate_ifname,
    validate_name,
)
from ipvnet.plan import (
    Op,
    next_ifname,
    op_to_dict,
    plan_attach,
    plan_create_parent,
    plan_detach,
    plan_host_access,
    plan_remove_parent,
)
from ipvnet.store import Journal, State, Store


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionDenied(f"{what} changes the kernel and needs root", "run it with sudo")


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def host_seed() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(p) as f:
                v = f.read().strip()
                if v:
                    return v
        except OSError:
            continue
    return os.uname().nodename


@dataclass
class Result:
    """What a mutating command did (or would do, with dry_run)."""

    ops: list[Op] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    network: Network | None = None
    endpoint: Endpoint | None = None
    errors: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


Progress = Callable[[int, str], contextlib.AbstractContextManager[Callable[[], None]]]


@contextlib.contextmanager
def no_progress(_total: int, _label: str) -> Iterator[Callable[[], None]]:
    yield lambda: None


class Service:
    def __init__(
        self,
        state_dir: str | None = None,
        dry_run: bool = False,
        trace: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.store = Store(state_dir)
        self.names = names.Names(self.store.dir)
        self.dry_run = dry_run
        self.trace = trace
        self._engine: Any = None
        self._batch: State | None = None
        self._batch_journals: list[Journal] = []
        self._batch_dirty = False
        # Long operations report each step here (a progress bar on a terminal).
        self.progress: Progress = progress or no_progress
        fault.reset()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from ipvnet.engine import Engine

            self._engine = Engine(trace=self.trace)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------

    def read(self) -> State:
        with self.store.locked(exclusive=False):
            return self.store.load()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[State]:
        if not self.dry_run:
            require_root(what)
        if self._batch is not None:
            # Inside batch(): the lock is held and the state loaded once. A
            # failed step must leave the shared state as it found it;
            # networks are immutable, so a shallow copy is a full snapshot.
            state = self._batch
            snapshot = (dict(state.networks), state.seq, state.boot_id)
            try:
                yield state
            except BaseException:
                state.networks, state.seq, state.boot_id = dict(snapshot[0]), snapshot[1], snapshot[2]
                raise
            return
        with self.store.locked(exclusive=True):
            yield self.store.load()

    @contextlib.contextmanager
    def batch(self, what: str) -> Iterator[State]:
        """Many steps under one lock, one store load and one store write.

        Each step still journals and rolls back on its own; the journals of
        completed steps are kept until the single store write, so a crash in
        between is undone by `check --repair` instead of leaking links. The
        store is written even when a step fails: the steps before it are real.
        """
        if not self.dry_run:
            require_root(what)
        with self.store.locked(exclusive=True):
            state = self._batch = self.store.load()
            self._batch_journals = []
            self._batch_dirty = False
            try:
                yield state
            finally:
                self._batch = None
                if self._batch_dirty:
                    self.store.save(state)
                for j in self._batch_journals:
                    j.end()

    def _commit(
        self, state: State, ops: list[Op], after_kernel: Callable[[], None] | None = None, command: str = ""
    ) -> None:
        """Journal, apply ops, then hosts files, then the store; undo the kernel on any failure."""
        if not state.boot_id:
            state.boot_id = boot_id()
        journal = Journal(self.store.dir)
        if ops:
            journal.begin(command, [op_to_dict(op) for op in ops])
            fault.point("journal")
        try:
            with self.progress(len(ops) if len(ops) >= 20 else 0, command) as advance:
                self.engine.run(ops, advance)
            try:
                fault.point("hosts")
                if after_kernel is not None:
                    after_kernel()
                fault.point("store")
                if self._batch is None:
                    self.store.save(state)
            except BaseException:
                self.engine.rollback(ops)
                raise
        except BaseException:
            journal.end()
            raise
        if self._batch is None:
            journal.end()
        else:
            self._batch_journals.append(journal)
            self._batch_dirty = True

    # -- networks ----------------------------------------------------------

    def create_network(
        self,
        name: str,
        driver: str = "ipvlan",
        subnets: tuple[str, ...] = (),
        gateways: tuple[str, ...] = (),
        ip_ranges: tuple[str, ...] = (),
        aux_addresses: tuple[str, ...] = (),
        internal: bool = False,
        ipv6: bool = False,
        options: tuple[str, ...] = (),
        labels: tuple[str, ...] = (),
        ipv4: bool = True,
    ) -> Result:
        validate_name(name, "network name")
        opts = normalize_options(driver, parse_key_values(options, "option"))
        label_map = parse_key_values(labels, "label")
        with self.transaction("network create") as state:
            if name in state.networks:
                raise Conflict(f"network {name!r} already exists", "choose another name or remove it first")
            net_id = random_hex(32)
            others = list(state.networks.values())
            res = Result()
            parent_exists = False
            if "parent" in opts:
                spec = parse_parent(opts["parent"])
                parent = spec.name
                info = self.engine.link(parent)
                parent_exists = info is not None
                if info is None:
                    if spec.base is None:
                        raise NotFound(f"parent interface {parent!r} does not exist", "check the name with `ip link`")
                    if self.engine.link(spec.base) is None:
                        raise NotFound(
                            f"base interface {spec.base!r} for vlan parent {parent!r} does not exist",
                            "check the name with `ip link`",
                        )
                    kind = PARENT_VLAN
                elif any(o.parent == parent and o.parent_kind == PARENT_VLAN for o in others):
                    kind = PARENT_VLAN  # made by ipvnet for another network: shared ownership
                else:
                    kind = PARENT_EXISTING
            else:
                parent = dummy_parent_name(driver, net_id)
                kind = PARENT_DUMMY
                internal = True  # a dummy parent reaches nothing: Docker marks such networks internal
            check_parent_sharing(driver, opts, parent, others)
            l3 = driver == "ipvlan" and opts["ipvlan_mode"] in ("l3", "l3s")
            req = ipam.SubnetRequest(subnets, gateways, ip_ranges, aux_addresses, ipv6, ipv4)
            host_routes: list[Any] = []
            if ipv4 and not any(":" not in s for s in subnets):  # a default v4 pool will be picked
                host_routes = [ipaddress.ip_network(r, strict=False) for r in self.engine.host_routes()]
            sp = ipam.plan_subnets(
                req,
                l3=l3,
                internal=internal,
                other_subnets=[s.subnet for o in others for s in o.subnets],
                host_routes=host_routes,
                host_nameservers=names.host_nameserver_addresses(names.read_host_resolv()),
                ula48=ipam.ula_prefix(host_seed()),
            )
            res.warnings.extend(sp.warnings)
            if l3 and parent_exists:
                res.warnings.extend(self._l3_overlap_warnings(parent, sp.subnets))
            if "host_access" in opts:
                sp.subnets = reserve_host_access(sp.subnets, opts, driver)
            net = Network(
                name=name,
                id=net_id,
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                driver=driver,
                parent=parent,
                parent_kind=kind,
                subnets=tuple(sp.subnets),
                options=opts,
                labels=label_map,
                internal=internal,
                enable_ipv6=sp.enable_ipv6,
                enable_ipv4=sp.enable_ipv4,
            )
            res.network = net
            res.ops = plan_create_parent(net, parent_exists) + plan_host_access(net)
            if self.dry_run:
                return res
            state.networks[name] = net
            self._commit(state, res.ops, command=f"network create {name}")
            return res

    def _l3_overlap_warnings(self, parent: str, subnets: list[SubnetConfig]) -> list[str]:
        """L3 routes between the namespaces and the parent's side: a subnet that
        holds the parent's own address puts the host on both sides of that route."""
        out = []
        for ifname, addr in self.engine.addresses():
            ip = ipaddress.ip_interface(addr).ip
            if ifname != parent or ip.is_link_local:
                continue
            for cfg in subnets:
                if cfg.version == ip.version and ip in cfg.subnet:
                    out.append(f"subnet {cfg.subnet} holds {ip}, an address of parent {parent}: "
                               "in ipvlan l3/l3s mode give namespaces a subnet apart from the host's")
        return out

    def remove_networks(self, names_: tuple[str, ...], force: bool = False) -> Result:
        """Remove each network; keeps going past a failure and reports them all."""
        res = Result()
        for name in names_:
            try:
                r = self._remove_network(name, force)
                res.ops.extend(r.ops)
                res.warnings.extend(r.warnings)
            except IpvnetError as e:
                if len(names_) == 1:
                    raise
                res.errors.append(str(e))
        return res

    def _remove_network(self, name: str, force: bool) -> Result:
        with self.transaction("network rm") as state:
            net = state.network(name)
            res = Result(network=net)
            if net.endpoints and not force:
                raise Conflict(
                    f"network {net.name} has attached namespaces: {', '.join(sorted(net.endpoints))}",
                    "detach them first, or use --force",
                )
            detach_ops: list[Op] = []
            for ns in sorted(net.endpoints, key=lambda n: net.endpoints[n].seq):
                detach_ops.extend(self._plan_detach(state, state.networks[net.name], ns))
            others = [o for o in state.networks.values() if o.name != net.name]
            exists = self.engine.link(net.parent) is not None
            res.ops = detach_ops + plan_remove_parent(net, others, exists)
            if self.dry_run:
                return res
            del state.networks[net.name]

            def names_after() -> None:
                self.names.remove_network(net.name)
                for ns in net.endpoints:
                    self.names.settle_ns(ns, networks_of(state, ns))

            self._commit(state, res.ops, names_after, command=f"network rm {net.name}")
            return res

    def prune(self) -> Result:
        res = Result()
        state = self.read()
        unused = sorted(n.name for n in state.networks.values() if not n.endpoints)
        with self.progress(len(unused), "network prune") as advance:
            for name in unused:
                try:
                    r = self._remove_network(name, force=False)
                except (NotFound, Conflict):
                    continue  # changed under us: not unused any more
                finally:
                    advance()
                res.ops.extend(r.ops)
                res.removed.append(name)
        return res

    # -- attachments -------------------------------------------------------

    def attach(
        self,
        ns: str,
        network: str,
        ip: str | None = None,
        ip6: str | None = None,
        ifname: str | None = None,
        aliases: tuple[str, ...] = (),
        gw_priority: int = 0,
        create: bool = False,
        mac: str | None = None,
        _created_ns: bool = False,
    ) -> Result:
        validate_name(ns, "namespace name")
        if ifname is not None:
            validate_ifname(ifname)
        for a in aliases:
            validate_name(a, "alias")
        with self.transaction("attach") as state:
            net = state.network(network)
            if ns in net.endpoints:
                raise Conflict(f"namespace {ns} is already attached to network {net.name}")
            ns_exists = netns.exists(ns)
            if not ns_exists and not create:
                raise NotFound(
                    f"network namespace {ns!r} does not exist", f"create it with `ip netns add {ns}` or pass --create"
                )
            if net.driver == "macvlan" and net.mode == "passthru" and net.endpoints:
                raise Conflict(
                    f"network {net.name} is macvlan passthru and already has a namespace attached",
                    "passthru allows one link per parent",
                )
            if self.engine.link(net.parent) is None:
                raise KernelError(
                    f"parent link {net.parent} of network {net.name} is missing",
                    "run `ipvnet restore` (after a reboot) or `ipvnet check --repair`",
                )
            existing = attachments_of(state, ns)
            taken = {ep.ifname for _, ep in existing}
            if ns_exists:
                taken |= {li.name for li in self.engine.links(ns)}
            if ifname is not None and ifname in taken:
                raise Conflict(f"interface {ifname} already exists in namespace {ns}", "choose another --ifname")
            v4, v6 = ipam.assign(net, ns, ip, ip6, siblings_of(state, net))
            if mac is not None:
                mac = validate_mac(mac)
            ep = Endpoint(
                ns=ns,
                ifname=next_ifname(taken, ifname),
                endpoint_id=random_hex(32),
                seq=state.seq + 1,
                ipv4=v4,
                ipv6=v6,
                mac=mac or (random_mac() if net.driver == "macvlan" else ""),
                aliases=tuple(aliases),
                gw_priority=gw_priority,
                created_ns=_created_ns or (create and not ns_exists),
            )
            tmp = "ipv" + random_hex(4)
            res = Result(network=net, endpoint=ep)
            res.ops = plan_attach(net, ep, tmp, existing, create_ns=not ns_exists, ipv6_available=ipv6_available())
            if self.dry_run:
                return res
            state.seq += 1
            new_net = net.with_endpoint(ep)
            state.networks[net.name] = new_net

            def after() -> None:
                if not ep.mac:
                    li = self.engine.link(ep.ifname, ns)
                    if li is not None:
                        state.networks[net.name] = new_net.with_endpoint(replace(ep, mac=li.mac))
                final = state.networks[net.name]
                self.names.on_attach(
                    final, final.endpoints[ns], networks_of(state, ns), multi_homed(state, final, exclude=ns)
                )

            try:
                self._commit(state, res.ops, after, command=f"attach {ns} {net.name}")
            except BaseException:
                self.names.sync_network(net)
                self.names.settle_ns(ns, [n for n in networks_of(state, ns) if n.name != net.name])
                raise
            finally:
                self.engine.forget(ns)  # a batch may touch thousands of namespaces: one socket at a time
            res.endpoint = state.networks[net.name].endpoints[ns]
            return res

    def _plan_detach(self, state: State, net: Network, ns: str) -> list[Op]:
        """Plan NS's detach from NET and drop the endpoint from STATE."""
        ep = net.endpoints[ns]
        ns_exists = netns.exists(ns)
        link_exists = ns_exists and self.engine.link(ep.ifname, ns) is not None
        ops = plan_detach(net, ep, attachments_of(state, ns), ns_exists, link_exists)
        state.networks[net.name] = net.without_endpoint(ns)
        return ops

    def detach(self, ns: str, network: str) -> Result:
        validate_name(ns, "namespace name")
        with self.transaction("detach") as state:
            net = state.network(network)
            if ns not in net.endpoints:
                raise NotFound(f"namespace {ns} is not attached to network {net.name}")
            res = Result(network=net, endpoint=net.endpoints[ns])
            res.ops = self._plan_detach(state, net, ns)
            if self.dry_run:
                return res
            after_net = state.networks[net.name]
            self._commit(
                state,
                res.ops,
                lambda: self.names.on_detach(
                    after_net, ns, networks_of(state, ns), multi_homed(state, after_net, exclude=ns)
                ),
                command=f"detach {ns} {net.name}",
            )
            self.engine.forget(ns)
            return res

    def apply(self, text: str, path: str, prune: bool = False) -> list[Any]:
        """Make store and kernel match a declarative file, in one lock; returns the actions."""
        from ipvnet import apply as ap

        specs = {s.name: s for s in ap.parse_spec(text, path)}
        with self.batch("apply") as state:
            actions = ap.diff(list(specs.values()), state.networks, prune)
            if self.dry_run:
                return actions
            done = 0
            with self.progress(len(actions), "apply") as advance:
                for a in actions:
                    try:
                        self._apply_one(a, specs)
                    except IpvnetError as e:
                        e.message = f"{a.describe()}: {e.message}"
                        e.hint = (e.hint + "; " if e.hint else "") + f"{done} of {len(actions)} changes were applied"
                        raise
                    done += 1
                    advance()
            return actions

    def _apply_one(self, a: Any, specs: dict[str, Any]) -> None:
        if a.kind == "rm":
            self._remove_network(a.network, force=True)
        elif a.kind == "detach":
            self.detach(a.ns, a.network)
        elif a.kind == "create":
            sp = specs[a.network]
            self.create_network(
                sp.name, sp.driver, sp.subnets, sp.gateways, sp.ip_ranges, sp.aux_addresses, sp.internal, sp.ipv6,
                tuple(f"{k}={v}" for k, v in sp.options.items()), sp.labels, sp.ipv4,
            )
        else:
            n = next(x for x in specs[a.network].namespaces if x.ns == a.ns)
            self.attach(a.ns, a.network, n.ip, n.ip6, n.ifname, n.aliases, n.gw_priority, create=True)

    def check(self, repair: bool = False) -> tuple[list[Any], list[str]]:
        """Drift between store and kernel; with repair, fix what can be fixed.
        Returns (drift found, repair failures)."""
        from ipvnet import reconcile

        if repair:
            require_root("check --repair")
        with self.store.locked(exclusive=repair):
            state = self.store.load()
            drift = reconcile.find_drift(state, self.engine, Journal(self.store.dir), self.names)
            failures: list[str] = []
            if repair:
                with self.progress(len(drift), "repair") as advance:
                    failures = reconcile.repair(drift, state, self.engine, self.names, advance)
                current = boot_id()
                if state.networks and state.boot_id != current:
                    state.boot_id = current
                    self.store.save(state)
            return drift, failures

    def export_routes(self, network: str | None, aggregate: bool = False) -> list[Any]:
        from ipvnet.routes import export_routes

        state = self.read()
        nets = [state.network(network)] if network else list(state.networks.values())
        host_addrs: dict[str, list[str]] = {}
        for ifname, addr in self.engine.addresses():
            if not ipaddress.ip_interface(addr).ip.is_link_local:
                host_addrs.setdefault(ifname, []).append(addr)
        return export_routes(nets, host_addrs, aggregate)

    def delete_namespace(self, ns: str) -> None:
        """For run-ns --rm: remove a namespace ipvnet made (detach first)."""
        state = self.read()
        for net in networks_of(state, ns):
            try:
                self.detach(ns, net.name)
            except NotFound:
                pass
        self.engine.forget(ns)
        netns.remove(ns)
        self.names.remove_ns(ns)


def attachments_of(state: State, ns: str) -> list[tuple[Network, Endpoint]]:
    return sorted(
        ((n, n.endpoints[ns]) for n in state.networks.values() if ns in n.endpoints), key=lambda p: p[1].seq
    )


def networks_of(state: State, ns: str) -> list[Network]:
    return [n for n, _ in attachments_of(state, ns)]


def siblings_of(state: State, net: Network) -> list[Network]:
    """Other networks on NET's parent: they share one address space."""
    return [o for o in state.networks.values() if o.parent == net.parent and o.name != net.name]


def multi_homed(state: State, net: Network, exclude: str) -> list[tuple[str, list[Network]]]:
    """Members of NET (other than EXCLUDE) that are on other networks too."""
    if len(state.networks) < 2:
        return []
    counts: dict[str, int] = {}
    for n in state.networks.values():
        for ns in n.endpoints:
            counts[ns] = counts.get(ns, 0) + 1
    return [(ns, networks_of(state, ns)) for ns in net.endpoints if ns != exclude and counts.get(ns, 0) > 1]


def check_parent_sharing(driver: str, opts: dict[str, str], parent: str, others: list[Network]) -> None:
    """The kernel keeps one ipvlan mode (and flag) per parent, and a parent
    carries either ipvlan or macvlan links, never both."""
    for o in others:
        if o.parent != parent:
            continue
        if o.driver != driver:
            raise Conflict(
                f"parent {parent} already carries {o.driver} network {o.name}",
                f"a parent takes either ipvlan or macvlan links; use another parent for {driver}",
            )
        if driver == "ipvlan":
            for key in ("ipvlan_mode", "ipvlan_flag"):
                if o.options.get(key) != opts[key]:
                    raise Conflict(
                        f"parent {parent} is used by network {o.name} with {key}={o.options.get(key)}, "
                        f"which conflicts with {key}={opts[key]}",
                        f"the kernel keeps one {key.split('_')[1]} per parent; use {key}={o.options.get(key)} "
                        "or another parent",
                    )
        elif "passthru" in (opts["macvlan_mode"], o.options.get("macvlan_mode")):
            raise Conflict(
                f"parent {parent} is used by network {o.name}; macvlan passthru cannot share a parent",
                "use another parent",
            )


def reserve_host_access(subnets: list[SubnetConfig], opts: dict[str, str], driver: str) -> list[SubnetConfig]:
    """The host-access address must lie in a subnet and is reserved there
    (as aux-address `host_access`) so IPAM never hands it to a namespace."""
    addr = ipaddress.ip_address(opts["host_access"])
    if driver == "macvlan" and opts.get("macvlan_mode") in ("passthru", "private", "vepa"):
        raise InvalidArgument(
            f"host_access needs macvlan_mode=bridge, not {opts['macvlan_mode']}",
            "only bridge mode lets the host-side link reach its siblings",
        )
    out = []
    found = False
    for cfg in subnets:
        if cfg.version == addr.version and addr in cfg.subnet:
            ipam.check_static_reserved(cfg, addr, "host_access")
            cfg = replace(cfg, aux=cfg.aux + (("host_access", addr),))
            found = True
        out.append(cfg)
    if not found:
        raise InvalidArgument(f"host_access address {addr} is not in a subnet of the network",
                              "pick an unused address inside a --subnet")
    return out


def random_mac() -> str:
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{x:02x}" for x in b)


def validate_mac(mac: str) -> str:
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address {mac!r}", "expected six hex pairs like 02:42:ac:11:00:02")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"MAC address {mac} is a multicast address", "the lowest bit of the first byte must be 0")
    return ":".join(parts)


def ipv6_available() -> bool:
    return os.path.exists("/proc/sys/net/ipv6")
