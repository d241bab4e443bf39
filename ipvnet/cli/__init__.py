"""The command line: click commands only. Each parses, calls one service
function and renders the result; errors become one line and an exit status."""

from __future__ import annotations

import os
import sys

import click

from ipvnet import __version__
from ipvnet.cli.common import Ctx

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--state-dir",
    envvar="IPVNET_STATE_DIR",
    default="/var/lib/ipvnet",
    show_default=True,
    metavar="DIR",
    help="Where the store lives (env IPVNET_STATE_DIR).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and every kernel operation.")
@click.version_option(__version__, "--version", prog_name="ipvnet")
@click.pass_context
def cli(ctx: click.Context, state_dir: str, debug: bool) -> None:
    """Put named network namespaces on ipvlan and macvlan networks, like
    `docker network` does for containers, with no daemon.

    \b
    Examples:
      ipvnet network create -d ipvlan --subnet 192.168.20.0/24 -o parent=eth0.20 vlan20
      ipvnet attach ns1 vlan20
      ipvnet run-ns --net vlan20 --rm -- ping -c1 ns1
    """
    ctx.obj = Ctx(state_dir=state_dir, debug=debug)


from ipvnet.cli import cluster, namespaces, network, reliability, system  # noqa: E402

cli.add_command(network.network)
cli.add_command(cluster.cluster)
for _cmd in (
    namespaces.apply_,
    namespaces.attach,
    namespaces.detach,
    namespaces.run_ns,
    namespaces.exec_,
    reliability.check,
    reliability.restore,
    system.routes,
    system.doctor,
    system.completion,
):
    cli.add_command(_cmd)


def main(argv: list[str] | None = None) -> None:
    """Run the click command line (ipvnet.entry.main sends everything but the
    plain attach/detach here). `--debug` is the group's own option, read from
    the parsed context (a `--debug` after `exec NS --` belongs to the command
    run there)."""
    from ipvnet.entry import guarded

    if "_IPVNET_COMPLETE" in os.environ:  # shell completion: click's own protocol
        cli.main(args=argv, prog_name="ipvnet", complete_var="_IPVNET_COMPLETE")
    box: list[click.Context] = []

    def run() -> object:
        try:
            with cli.make_context("ipvnet", list(sys.argv[1:] if argv is None else argv)) as ctx:
                box.append(ctx)
                return cli.invoke(ctx)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)

    guarded(run, lambda: bool(box) and isinstance(box[0].obj, Ctx) and box[0].obj.debug)
