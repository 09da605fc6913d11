"""`dlnet status`: one table of the whole network (what `make status` prints)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlnet import day2
from dlnet import status as st
from dlnet.commands.common import ExtraVars, Inventory, Json, emit
from dlnet.errors import DlnetError


def status(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    check: Annotated[bool, typer.Option(help="Exit 1 when any component is down or not synced.")] = False,
    as_json: Json = False,
) -> None:
    """Health of every component: validators, Horizon, PostgreSQL, IPFS, Prometheus."""
    net, settings = day2.load(inventory, extra_vars)
    result = st.gather(net, settings.admin_timeout_seconds)
    emit(as_json, result, st.table(result))
    if check and not result["healthy"]:
        down = [
            e["name"]
            for k in ("validators", "horizon", "postgres", "ipfs", "prometheus")
            for e in result[k]
            if not e["up"] or e.get("synced") is False
        ]
        raise DlnetError(f"status: {net.env} is not healthy — down or not synced: {', '.join(down)} — see the table")
