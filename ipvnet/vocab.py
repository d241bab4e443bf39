"""The one vocabulary table: drivers, their modes and flags, and the `-o` keys.

Parsing (model), netlink encoding (engine), shell completion and the help
texts all read it from here, so a new mode or option is added in one place.
"""

from __future__ import annotations

from ipvnet.record import dataclass

DRIVERS = ("ipvlan", "macvlan")

# Kernel numbers (include/uapi/linux/if_link.h).
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


@dataclass(frozen=True)
class OptionKey:
    """One `-o KEY=VALUE` option: which drivers take it, its choices and default."""

    key: str
    drivers: tuple[str, ...]
    choices: tuple[str, ...] = ()
    default: str | None = None
    metavar: str = ""
    examples: tuple[str, ...] = ()  # completion candidates for free-form values


OPTIONS = (
    OptionKey("parent", DRIVERS, metavar="IF[.VID]"),
    OptionKey("ipvlan_mode", ("ipvlan",), tuple(IPVLAN_MODES), "l2"),
    OptionKey("ipvlan_flag", ("ipvlan",), tuple(IPVLAN_FLAGS), "bridge"),
    OptionKey("macvlan_mode", ("macvlan",), ("bridge", "vepa", "private", "passthru"), "bridge"),
    OptionKey("mtu", DRIVERS, metavar="N", examples=("1500", "9000")),
    OptionKey("host_access", DRIVERS, metavar="IP"),
)
OPTION_BY_KEY = {o.key: o for o in OPTIONS}


def option_keys(driver: str) -> tuple[str, ...]:
    return tuple(o.key for o in OPTIONS if driver in o.drivers)


def option_help() -> str:
    """`-o` help text: every key with its choices, generated from the table."""
    parts = []
    for o in OPTIONS:
        parts.append(f"{o.key}={'|'.join(o.choices) if o.choices else o.metavar}")
    return ", ".join(parts) + "."


def mode_key(driver: str) -> str:
    """The option that holds a driver's mode."""
    return "ipvlan_mode" if driver == "ipvlan" else "macvlan_mode"
