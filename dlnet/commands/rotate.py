"""`dlnet rotate-key plan|finish`: the controller's side of deploy/rotate-key.yml (`make rotate-key`).

`dlnet keys rotate <validator>` asks for a new key (a new seed, 0600, beside the others); the playbook
then asks `plan` for the proven restart order, restarts one validator at a time through the rolling gate,
and calls `finish`, which reads every validator's live quorum set and retires the old key only when all
of them name the new key and none the old. With no rotation pending both say so and change nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from dlnet import keys, rotation
from dlnet.commands.common import ExtraVars, Inventory, emit
from dlnet.config import Network, load_network
from dlnet.day2 import admin_url
from dlnet.errors import DlnetError

rotate_app = typer.Typer(no_args_is_help=True, help="Validator key rotation (deploy/rotate-key.yml).")

InventoryJson = Annotated[
    str | None,
    typer.Option("--inventory-json", help="Read the resolved inventory as JSON from this file or - (stdin)."),
]


@rotate_app.command("plan")
def plan(
    inventory: Inventory = "inventories/local", extra_vars: ExtraVars = None, inventory_json: InventoryJson = None
) -> None:
    """JSON: the validator whose new key is pending, the proven restart order and its public keys."""
    net = load_network(inventory, extra_vars, inventory_json)
    target = keys.pending_rotation(net.env)
    if target is None:
        emit(True, {"pending": None, "order": []}, "")
        return
    proofs = rotation.plan(net, target)
    through_successor = any(p.step.kind == "start" for p in proofs)
    # Without a successor each validator restarts once, in `order`; with one, deploy/rotate-key.yml walks
    # `plan` (kind, host, the identities it names) step by step.
    order = [] if through_successor else [p.step.host for p in proofs]
    restarts = [p.step.host for p in proofs if p.step.kind == "restart" and p.step.host != target]
    half = len(restarts) // 2
    adds, drops = (restarts[:half], restarts[half:]) if through_successor else ([], [])
    tv = next(v for v in net.validators if v.name == target)
    emit(
        True,
        {
            "pending": target,
            "order": order,
            "successor": through_successor,
            "plan": [{"kind": p.step.kind, "host": p.step.host, "names": list(p.step.names)} for p in proofs],
            # The validators that restart adding the successor, then dropping the old key (in this order).
            "add": adds,
            "drop": drops,
            "successor_port_offset": rotation.SUCCESSOR_PORT_OFFSET,
            "successor_name": rotation.successor(target),
            "successor_admin": admin_url(tv.address, tv.http_port + rotation.SUCCESSOR_PORT_OFFSET),
            "old": keys.public_key(net.env, target),
            "new": keys.public_key(net.env, target, new=True),
            "steps": [f"{p.step.action}: then tolerates {p.tolerates_after} more failure(s)" for p in proofs],
        },
        "",
    )


def _keys_in(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_keys_in(v) for v in node.get("v", [])))
    return set()


def live_quorum_keys(net: Network) -> dict[str, tuple[str, set[str]]]:
    """Validator -> (its own node id, every key its live quorum set names), from /quorum?fullkeys=true."""
    out = {}
    with httpx.Client(timeout=net.day2.admin_timeout_seconds, trust_env=False) as client:
        for v in net.validators:
            url = admin_url(v.address, v.http_port) + "/quorum"
            try:
                body = client.get(url, params={"fullkeys": "true"}).json()
            except (httpx.HTTPError, ValueError) as exc:
                raise DlnetError(
                    f"rotate-key: {v.name}: {url} gave no quorum ({type(exc).__name__}) — expected a running"
                    " validator — check it (make status) and run make rotate-key again"
                ) from None
            out[v.name] = (str(body.get("node", "")), _keys_in((body.get("qset") or {}).get("value")))
    return out


@rotate_app.command("finish")
def finish(
    inventory: Inventory = "inventories/local", extra_vars: ExtraVars = None, inventory_json: InventoryJson = None
) -> None:
    """Retire the old key once every validator's live quorum set names the new key and none the old."""
    net = load_network(inventory, extra_vars, inventory_json)
    target = keys.pending_rotation(net.env)
    if target is None:
        emit(True, {"changed": False, "pending": None}, "")
        return
    old, new = keys.public_key(net.env, target), keys.public_key(net.env, target, new=True)
    live = live_quorum_keys(net)
    wrong = []
    for name, (node, named) in live.items():
        if name == target and node != new:
            wrong.append(f"{name} runs as {node[:5]}…, not the new key")
        if name != target and (new not in named or old in named):
            wrong.append(f"{name}'s quorum set names {'the old key' if old in named else 'no new key'}")
    if wrong:
        raise DlnetError(
            f"rotate-key {target}: not every validator runs with the new key ({'; '.join(wrong)}) — the old key is"
            " kept — run make rotate-key again"
        )
    retired = keys.promote(net, target)
    emit(True, {"changed": True, "pending": target, "new": new, "retired": retired}, "")
