"""`dlnet upgrade`: arm one network upgrade on every validator and wait for the ledger to show it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from dlnet import day2
from dlnet import upgrade as up
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.errors import DlnetError


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise DlnetError(
            f"upgrade: --at {text!r} — expected a UTC time like 2026-11-25T22:00:00Z —"
            " or omit --at to use now + lead_seconds"
        ) from None


def upgrade(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    protocol: Annotated[int | None, typer.Option(help="Ledger protocol version to upgrade to.")] = None,
    base_fee: Annotated[int | None, typer.Option(help="Base fee in stroops.")] = None,
    base_reserve: Annotated[int | None, typer.Option(help="Base reserve in stroops.")] = None,
    max_tx_set_size: Annotated[int | None, typer.Option(help="Maximum operations per ledger.")] = None,
    to_latest: Annotated[bool, typer.Option(help="Protocol = the highest every component runs.")] = False,
    at: Annotated[
        str | None, typer.Option(help="Upgrade time, UTC (2026-11-25T22:00:00Z). Default: now + lead.")
    ] = None,
    lead: Annotated[
        int | None,
        typer.Option(envvar="DLNET_UPGRADE_LEAD", help="Seconds from now to the upgrade time (default: inventory)."),
    ] = None,
    deadline: Annotated[
        int | None,
        typer.Option(
            envvar="DLNET_UPGRADE_DEADLINE", help="Seconds to wait for the ledger header (default: inventory)."
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Arm the same upgrade on every validator, confirm each, wait until every ledger header shows it."""
    when = _parse_at(at)
    req = up.Request(protocol, base_fee, base_reserve, max_tx_set_size, to_latest)
    flags_given = to_latest or any(v is not None for v in (protocol, base_fee, base_reserve, max_tx_set_size))
    if flags_given:
        req.check()  # nonsense on the command line stops before the inventory or any validator is read
    net, settings = day2.load(inventory, extra_vars)
    u = settings.upgrade
    if not flags_given:
        req = up.Request(u.protocol, u.base_fee, u.base_reserve, u.max_tx_set_size, False)
    lead_s = u.lead_seconds if lead is None else lead
    deadline_s = u.deadline_seconds if deadline is None else deadline
    if lead_s < 0 or deadline_s < 1:
        raise DlnetError(
            f"upgrade: --lead {lead_s} / --deadline {deadline_s} — expected lead >= 0 and deadline >= 1"
            " seconds — pass sensible values"
        )
    outcome = up.run(
        net,
        req,
        timeout=settings.admin_timeout_seconds,
        lead_seconds=lead_s,
        deadline_seconds=deadline_s,
        at=when,
        horizon_url=day2.horizon_url(net) if net.components.horizon and net.horizon else None,
        progress=progress,
    )
    if not outcome.changed:
        text = "upgrade: nothing to do — every validator's ledger header already shows the requested values"
    else:
        shown = ", ".join(f"{up.NAMES[k]} {v}" for k, v in outcome.values.items())
        where = "in ledger" if outcome.exact else "by ledger"
        text = (
            f"upgrade: {shown} applied {where} {outcome.ledger} (upgradetime {outcome.upgradetime}); "
            f"confirmed on {', '.join(outcome.validators)}"
        )
    if outcome.limit:
        text += f" (--to-latest: {outcome.limit})"
    emit(as_json, outcome.to_json(), text)
