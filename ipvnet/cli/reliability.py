"""`check` and `restore`: drift between the store and the kernel."""

from __future__ import annotations

import click

from ipvnet.cli.common import Ctx, pass_ctx
from ipvnet.cli.render import echo_json, table


@click.command("check")
@click.option("--repair", is_flag=True, help="Fix what can be fixed (never deletes what ipvnet did not create).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def check(ctx: Ctx, repair: bool, fmt: str) -> None:
    """Compare the store with the kernel and report drift: missing or stray
    links, lost namespaces, missing addresses and routes, stale hosts files,
    and transactions a killed ipvnet left half-done.

    Exit status: 0 when clean (or everything was repaired), 9 when drift remains.

    \b
    Examples:
      ipvnet check
      ipvnet check --format json | jq '.[].message'
      sudo ipvnet check --repair
    """
    with ctx.service() as svc:
        drift, failures = svc.check(repair)
    rows = [d.as_dict() for d in drift]
    if fmt == "json":
        echo_json(rows)
    elif drift:
        header = ["KIND", "SUBJECT", "PROBLEM", "REPAIRED" if repair else "REPAIR"]
        table(header, [[d.kind, d.subject, d.message,
                        ("no" if not d.fixable or any(f.startswith(d.subject + ":") for f in failures) else "yes")
                        if repair else d.repair] for d in drift])
    else:
        click.echo("no drift: the kernel matches the store")
    for f in failures:
        click.echo(f"Error: repair failed: {f}", err=True)
    unfixable = any(not d.fixable for d in drift)
    if drift and (not repair or failures or unfixable):
        raise SystemExit(9)


@click.command("restore")
@pass_ctx
def restore(ctx: Ctx) -> None:
    """After a reboot: recreate created parents, namespaces and attachments
    from the store, with the same addresses, interface names and routes.

    Idempotent: a second run changes nothing. Addresses stay reserved in the
    store across the reboot, so no other namespace can take them meanwhile.

    \b
    Examples:
      sudo ipvnet restore
      sudo systemctl enable ipvnet-restore.service   # run it at every boot
    """
    with ctx.service() as svc:
        drift, failures = svc.check(repair=True)
    done = [d for d in drift if d.fixable and not any(f.startswith(d.subject + ":") for f in failures)]
    for d in done:
        click.echo(f"restored: {d.message}")
    for d in drift:
        if not d.fixable:
            click.echo(f"Warning: cannot restore: {d.message} ({d.repair})", err=True)
    for f in failures:
        click.echo(f"Error: restore failed: {f}", err=True)
    if not drift:
        click.echo("nothing to restore: the kernel matches the store")
    if failures or any(not d.fixable for d in drift):
        raise SystemExit(9)
