"""`dlnet rolling-gate`: the check deploy/rolling-upgrade.yml runs around each validator's restart."""

from __future__ import annotations

from typing import Annotated

import typer

from dlnet import rolling
from dlnet.commands.common import ExtraVars, Inventory, Json, emit
from dlnet.config import load_network

InventoryJson = Annotated[
    str | None,
    typer.Option("--inventory-json", help="Read the resolved inventory as JSON from this file or - (stdin)."),
]


def rolling_gate(
    host: Annotated[str, typer.Option("--host", help="The validator about to be restarted (inventory name).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    inventory_json: InventoryJson = None,
    after: Annotated[
        bool, typer.Option("--after", help="Wait until the host is back: Synced! on the others' ledger.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --after waits before giving up.")] = 180.0,
    as_json: Json = False,
) -> None:
    """Before: exit 1 with one line unless the others are Synced! on one fresh ledger and the quorum holds
    without HOST. --after: wait until HOST is Synced! on the same ledger (number and hash) as the others."""
    net = load_network(inventory, extra_vars, inventory_json)
    verdict = rolling.wait_back(net, host, timeout) if after else rolling.check_before(net, host)
    emit(
        as_json,
        {"host": verdict.host, "ledger": verdict.ledger, "others": verdict.others, "ok": True, "after": after},
        verdict.message,
    )
