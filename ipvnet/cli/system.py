"""Host-level commands: doctor."""

from __future__ import annotations

import click

from ipvnet.cli.render import echo_json, table


@click.command("doctor")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def doctor(fmt: str) -> None:
    """Report what the kernel supports (netns, ipvlan, macvlan, 8021q, dummy, IPv6) and root.

    Exit status is 0 when everything ipvnet needs is there, 5 otherwise.

    \b
    Examples:
      sudo ipvnet doctor
      ipvnet doctor --format json
    """
    from ipvnet.doctor import probe

    checks = probe()
    if fmt == "json":
        echo_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        table(["CHECK", "OK", "DETAIL"], [[c.name, "yes" if c.ok else "no", c.detail] for c in checks])
    needed = {"root", "netns", "ipvlan", "dummy", "8021q"}
    if not all(c.ok for c in checks if c.name in needed):
        raise SystemExit(5)
