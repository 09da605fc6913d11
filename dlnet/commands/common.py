"""Options and helpers shared by the day-2 verbs (same shapes as cli.py's)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

Inventory = Annotated[
    str,
    typer.Option("--inventory", "-i", envvar="DLNET_INVENTORY", help="Inventory directory, e.g. inventories/local"),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ExtraVars = Annotated[
    list[str] | None,
    typer.Option("--extra-vars", "-e", help="Ansible extra vars (key=value), as given to the playbook."),
]


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True) if as_json else text)


def progress(message: str) -> None:
    """Progress of a wait, on stderr, so --json output on stdout stays parseable."""
    print(message, file=sys.stderr, flush=True)
