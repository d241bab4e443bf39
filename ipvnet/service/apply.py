"""`ipvnet apply FILE`: make store and kernel match a declarative file, in one
transaction (one lock, one store write), with a savepoint per change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ipvnet.service.attach import attach_in, detach_in
from ipvnet.service.networks import create_in, remove_in

if TYPE_CHECKING:
    from ipvnet.service import Service


def apply(svc: Service, text: str, path: str, prune: bool = False) -> list[Any]:
    """Returns the actions (with dry_run: the ones it would take)."""
    from ipvnet import apply as ap

    files = {f.name: f for f in ap.parse_spec(text, path)}
    with svc.transaction("apply") as tx:
        actions = ap.diff(list(files.values()), tx.state.networks, prune)
        if svc.dry_run:
            return actions
        with svc.progress(len(actions), "apply") as advance:
            for a in actions:
                with tx.step(a.describe(), len(actions)):
                    if a.kind == "rm":
                        remove_in(tx, a.network, force=True)
                    elif a.kind == "detach":
                        detach_in(tx, tx.state.networks[a.network], a.ns)
                    elif a.kind == "create":
                        create_in(tx, files[a.network].spec.validated(), svc.rand.hex(32))
                    else:
                        spec = next(n for n in files[a.network].namespaces if n.ns == a.ns)
                        attach_in(tx, spec, svc.rand)
                advance()
        return actions
