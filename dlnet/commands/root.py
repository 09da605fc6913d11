"""`dlnet lock-root`: make the genesis root account harmless (run by `make up`, idempotent).

The root account's seed is sha256(passphrase) and inventories (the shipped ones included) commit their
passphrase, so anyone who reads the repository could sign for the root. `lock-root` moves the root's
lumens to the kit's funder (a random key in the environment's secrets, 0600) and sets the root's master
weight to 0, in one transaction. A fresh network is at ledger protocol 0, where no transaction applies:
it is first upgraded to the highest protocol every component runs (as `dlnet upgrade --to-latest`).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from dlnet import day2
from dlnet import seed as sd
from dlnet import upgrade as up
from dlnet.chain import Horizon
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.config import load_network
from dlnet.errors import DlnetError

MIN_PROTOCOL = 13  # below it modern transactions fail with tx_not_supported (facts.md 2)


def _wait_protocol(horizon: Horizon, deadline_seconds: float) -> int:
    deadline = time.monotonic() + deadline_seconds
    while True:
        version = int(horizon.root().get("current_protocol_version") or 0)
        if version >= MIN_PROTOCOL or time.monotonic() > deadline:
            return version
        time.sleep(1)


def lock_root(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    inventory_json: Annotated[
        str | None,
        typer.Option("--inventory-json", help="Read the resolved inventory as JSON from this file or - (stdin)."),
    ] = None,
    upgrade_genesis: Annotated[
        bool, typer.Option(help="Upgrade a network still at protocol 0 to the latest protocol first.")
    ] = True,
    as_json: Json = False,
) -> None:
    """Hand the root account's lumens to the kit's funder and lock the root (master weight 0)."""
    net = load_network(inventory, extra_vars, inventory_json)
    settings = net.day2
    url = day2.horizon_url(net)
    upgraded: dict[str, object] = {}
    with Horizon(url) as horizon:
        version = int(horizon.root().get("current_protocol_version") or 0)
        if version < MIN_PROTOCOL:
            if not upgrade_genesis:
                raise DlnetError(
                    f"lock-root: the network runs ledger protocol {version} — expected {MIN_PROTOCOL} or later"
                    " (no transaction applies before) — run `dlnet upgrade --to-latest` or drop --no-upgrade-genesis"
                )
            outcome = up.run(
                net,
                up.Request(to_latest=True),
                timeout=settings.admin_timeout_seconds,
                lead_seconds=settings.upgrade.lead_seconds,
                deadline_seconds=settings.upgrade.deadline_seconds,
                horizon_url=url,
                progress=progress,
            )
            upgraded = outcome.to_json()
            version = _wait_protocol(horizon, settings.upgrade.deadline_seconds)
            if version < MIN_PROTOCOL:
                raise DlnetError(
                    f"lock-root: Horizon {url} still shows protocol {version} after the upgrade — expected"
                    f" {MIN_PROTOCOL} or later — check that Horizon ingests (dlnet status), then re-run"
                )
        report, summary = sd.lock_root(net, horizon, progress)
    payload = {**report.to_json(), **summary, "protocol": version}
    if upgraded:
        payload["upgrade"] = upgraded
        payload["changed"] = True
    if report.transactions:
        text = (
            f"lock-root: root {summary['root']} locked (master weight 0); its lumens went to the kit's funder"
            f" {summary['funder']} (key in the environment's secrets)"
        )
    else:
        text = f"lock-root: nothing to do — root {summary['root']} is already locked"
    emit(as_json, payload, text)
