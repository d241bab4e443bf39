"""Docs generated from the click definitions must match the checked-in files,
and every command must teach by example."""

from __future__ import annotations

import importlib.util
import os

import click

from ipvnet.cli import cli

_spec = importlib.util.spec_from_file_location(
    "gendocs", os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gendocs.py"))
assert _spec is not None and _spec.loader is not None
docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs)


def test_generated_files_are_current():
    assert docs.stale() == [], "run `python scripts/gendocs.py` and commit the result"


def test_every_command_has_examples():
    missing = [" ".join(p) for p, cmd in docs.walk(cli) if "Examples:" not in (cmd.help or "")]
    assert missing == []


def test_man_page_per_command_and_reference_per_command():
    files = docs.generated()
    paths = [p for p, _ in docs.walk(cli)]
    for p in paths:
        page = files[f"man/{'-'.join(p)}.1"]
        assert page.startswith(f'.TH "{"-".join(p).upper()}" "1"')
        assert f"### `{' '.join(p)}`" in files["README.md"]
    assert ".SH EXAMPLES" in files["man/ipvnet-network-create.1"]
    assert "-o parent=eth0.20" in docs.help_text(("ipvnet", "network", "create"), cli.commands["network"].commands["create"])


def test_completion_scripts_name_the_program():
    files = docs.generated()
    assert "_IPVNET_COMPLETE" in files["completions/ipvnet.bash"]
    assert "compdef" in files["completions/_ipvnet"]
    assert "complete" in files["completions/ipvnet.fish"]


def test_seed_use_cases_in_help():
    create = cli.commands["network"].commands["create"].help or ""
    for case in ("VLAN trunk", "isolated", "L3", "dual stack"):
        assert case in create
    assert isinstance(cli, click.Group)
