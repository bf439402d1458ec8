"""`dvd360-eval`: the command-line interface. Each command group lives in its own module."""

from __future__ import annotations

import importlib

import click

from dvd360 import __version__

# (module, attribute) of each command registered on the root group, in help order.
COMMANDS = (
    ("data", "data"),
    ("study", "study"),
    ("score", "score"),
    ("compare", "compare"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dvd360-eval")
def main() -> None:
    """Evaluate and benchmark 360-degree panorama video generators (the 360DVD study)."""


for module_name, attribute in COMMANDS:
    main.add_command(getattr(importlib.import_module(f"dvd360.cli.{module_name}"), attribute))
