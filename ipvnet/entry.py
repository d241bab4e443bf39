"""The `ipvnet` program's entry point.

Most invocations go to click (ipvnet.cli). The ones a shell loop or a
provisioning script repeats, `attach`, `detach` and `apply` with their plain
options, are parsed here and run without importing click at all (about a
third of a cold start); anything
else, or anything this parser does not recognise (help, `--`, an unknown
option, a malformed value), goes to click, which owns the grammar and the
usage errors. Both paths run the same functions (ipvnet.actions) under the
same error handling, so they print the same lines and exit the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

DEFAULT_STATE_DIR = "/var/lib/ipvnet"
_ATTACH_VALUES = {"--ip": "ip", "--ip6": "ip6", "--ifname": "ifname", "--alias": "aliases", "--gw-priority": "gw_priority",
                  "--mac": "mac"}


def _global(argv: list[str]) -> tuple[str, bool, list[str]] | None:
    """Leading --state-dir DIR / --state-dir=DIR / --debug, and the rest."""
    state_dir, debug, i = os.environ.get("IPVNET_STATE_DIR") or DEFAULT_STATE_DIR, False, 0
    while i < len(argv):
        a = argv[i]
        if a == "--debug":
            debug = True
        elif a.startswith("--state-dir="):
            state_dir = a.split("=", 1)[1]
        elif a == "--state-dir" and i + 1 < len(argv):
            state_dir = argv[i + 1]
            i += 1
        else:
            break
        i += 1
    return (state_dir, debug, argv[i:]) if state_dir else None


def _options(args: list[str], values: dict[str, str], flags: set[str]) -> tuple[dict[str, object], list[str]] | None:
    """Options (--opt V, --opt=V, flags) and positionals; None for anything unexpected."""
    opts: dict[str, object] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, val = a.partition("=")
        if a in flags:
            opts[a[2:].replace("-", "_")] = True
        elif name in values and (eq or i + 1 < len(args)):
            if not eq:
                i += 1
                val = args[i]
            if val.startswith("-") and name != "--gw-priority":
                return None
            key = values[name]
            if key == "aliases":
                opts[key] = (*opts.get(key, ()), val)  # type: ignore[misc]
            else:
                opts[key] = val
        elif a.startswith("-"):
            return None
        else:
            pos.append(a)
        i += 1
    return opts, pos


def fast(argv: list[str]) -> tuple[Callable[[], None], bool] | None:
    """(the action, --debug) when ARGV is a plain attach or detach; else None."""
    g = _global(argv)
    if g is None or not g[2]:
        return None
    state_dir, debug, (cmd, *rest) = g
    from ipvnet import actions

    if cmd == "attach":
        parsed = _options(rest, _ATTACH_VALUES, {"--create", "--dry-run"})
        if parsed is None or len(parsed[1]) < 2:
            return None
        opts, pos = parsed
        try:
            opts["gw_priority"] = int(str(opts.get("gw_priority", 0)))
        except ValueError:
            return None
        return (lambda: actions.attach(state_dir, debug, pos[:-1], pos[-1], **opts)), debug  # type: ignore[arg-type]
    if cmd == "apply":
        parsed = _options(rest, {}, {"--prune", "--dry-run"})
        if parsed is None or len(parsed[1]) != 1:
            return None
        opts, (file,) = parsed
        return (lambda: actions.apply(state_dir, debug, file, bool(opts.get("prune")),
                                      bool(opts.get("dry_run")))), debug
    if cmd == "detach":
        parsed = _options(rest, {}, {"--dry-run"})
        if parsed is None or len(parsed[1]) != 2:
            return None
        opts, (ns, net) = parsed
        return (lambda: actions.detach(state_dir, debug, ns, net, bool(opts.get("dry_run")))), debug
    return None


def guarded(run: Callable[[], object], debug: Callable[[], bool]) -> None:
    """Run a command: every failure becomes one line and an exit status; a
    traceback only with --debug. Exits the process."""
    from ipvnet.errors import ErrorList, IpvnetError

    try:
        rv = run()
    except IpvnetError as e:
        if debug():
            raise
        for line in (e.errors if isinstance(e, ErrorList) else [e]):
            sys.stderr.write(f"Error: {line}\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except BrokenPipeError:
        # `ipvnet network ls | head`: not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - last resort: one line, no traceback
        if debug():
            raise
        sys.stderr.write(f"Error: unexpected {type(e).__name__}: {e} (rerun with --debug for a traceback)\n")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    quick = None if "_IPVNET_COMPLETE" in os.environ else fast(args)
    if quick is not None:
        action, debug = quick
        try:
            guarded(action, lambda: debug)
        except SystemExit as e:
            if argv is not None:
                raise  # called in-process (tests): a normal exit
            # The program itself: its work is done and written (the store and the
            # journal by unbuffered os.write, every descriptor closed); tearing
            # down the interpreter and the modules it loaded would only add time.
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except OSError:
                    pass  # a reader that went away (`| head`): nothing left to tell it
            os._exit(e.code if isinstance(e.code, int) else (0 if e.code is None else 1))
    from ipvnet.cli import main as click_main

    click_main(args)
