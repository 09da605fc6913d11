"""`dlnet rolling-gate` (the check deploy/rolling-upgrade.yml runs around each validator's restart) and
`dlnet rotation-plan` (the proven order of a validator key rotation)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlnet import rolling, rotation
from dlnet.commands.common import ExtraVars, Inventory, Json, emit
from dlnet.config import load_network
from dlnet.errors import DlnetError

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
    also: Annotated[
        list[str] | None,
        typer.Option("--also", help="NAME=URL: a node outside the inventory to check too (a rotation's successor)."),
    ] = None,
    without: Annotated[
        list[str] | None, typer.Option("--without", help="A validator stopped on purpose (a retired key).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Before: exit 1 with one line unless the others are Synced! on one fresh ledger and the quorum holds
    without HOST. --after: wait until HOST is Synced! on the same ledger (number and hash) as the others."""
    net = load_network(inventory, extra_vars, inventory_json)
    extra = {}
    for item in also or []:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith("http"):
            raise DlnetError(f"rolling-gate: --also {item!r} — expected NAME=http://ADDRESS:PORT — fix the argument")
        extra[name] = url
    skip = frozenset(without or [])
    verdict = (
        rolling.wait_back(net, host, timeout, extra=extra, without=skip)
        if after
        else rolling.check_before(net, host, extra, skip)
    )
    emit(
        as_json,
        {"host": verdict.host, "ledger": verdict.ledger, "others": verdict.others, "ok": True, "after": after},
        verdict.message,
    )


def rotation_plan(
    validator: Annotated[str, typer.Argument(help="The validator whose key is to be rotated (inventory name).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    as_json: Json = False,
) -> None:
    """The order in which a validator's key can be rotated without halting the network, each step proven
    with the quorum analysis: intersection, every running validator live while the step's node is away,
    and how many further failures each state tolerates. Changes nothing; exit 1 if a step is unsafe."""
    net = load_network(inventory, extra_vars)
    try:
        proofs, refusal = rotation.plan(net, validator), None
    except DlnetError as exc:
        if validator not in {v.name for v in net.validators}:
            raise
        proofs, refusal = rotation.attempt(net, validator), exc
    through_successor = any(p.step.kind == "start" for p in proofs)
    new_key = f"{validator}'s successor (new key)" if through_successor else f"{validator} (new key)"
    rows = [
        {
            "step": i + 1,
            "action": p.step.action,
            "away": (new_key if p.step.away == rotation.successor(validator) else p.step.away),
            "lists": {k: sorted(v) for k, v in sorted(p.step.after.lists.items()) if k in p.step.after.running},
            "intersection": p.intersection,
            "live_while_away": p.live_while_away,
            "live_after": p.live_after,
            "rejoins": p.rejoins,
            "tolerates_after": p.tolerates_after,
            "problems": p.why,
        }
        for i, p in enumerate(proofs)
    ]
    lines = [
        f"{r['step']}. {r['action']}: intersection {'yes' if r['intersection'] else 'NO'}, "
        f"{'live' if r['live_while_away'] else 'STALLS'} while {r['away'] or 'nobody'} is away, "
        f"{'rejoins' if r['rejoins'] else 'CANNOT REJOIN'}, "
        f"then tolerates {r['tolerates_after']} more failure(s)" + (f" — {r['problems']}" if r["problems"] else "")
        for r in rows
    ]
    safe = refusal is None and all(p.safe for p in proofs)
    emit(as_json, {"validator": validator, "safe": safe, "steps": rows}, "\n".join(lines))
    if refusal is not None:
        raise refusal
