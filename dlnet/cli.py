"""The `dlnet` command line: day-2 work on a network described by an inventory.

One error boundary (main): DlnetError -> its message, exit 1; Ctrl-C -> 130; anything else ->
"unexpected error", exit 3, traceback only with DLNET_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Annotated

import typer

from dlnet import keys, preflight, quorum
from dlnet.commands.artifacts import artifacts_app
from dlnet.commands.backup import backup as backup_cmd
from dlnet.commands.backup import restore as restore_cmd
from dlnet.commands.drill import drill as drill_cmd
from dlnet.commands.exporter import exporter as exporter_cmd
from dlnet.commands.load import load as load_cmd
from dlnet.commands.market import market_app
from dlnet.commands.model import model_app
from dlnet.commands.rolling import rolling_gate as rolling_gate_cmd
from dlnet.commands.rolling import rotation_plan as rotation_plan_cmd
from dlnet.commands.root import lock_root as lock_root_cmd
from dlnet.commands.rotate import rotate_app
from dlnet.commands.seed import seed as seed_cmd
from dlnet.commands.status import status as status_cmd
from dlnet.commands.tune import tune as tune_cmd
from dlnet.commands.upgrade import upgrade as upgrade_cmd
from dlnet.config import load_network
from dlnet.errors import DlnetError, InventoryError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Secrets of an environment (generated once, never shown).")
app.add_typer(keys_app, name="keys")
# Day-2 verbs (issue 3), one module each under dlnet/commands/.
app.command("exporter")(exporter_cmd)
app.command("upgrade")(upgrade_cmd)
app.command("status")(status_cmd)
app.command("seed")(seed_cmd)
app.command("lock-root")(lock_root_cmd)
app.command("load")(load_cmd)
app.command("tune")(tune_cmd)
# Backup and restore (issue 12).
app.command("backup")(backup_cmd)
app.command("restore")(restore_cmd)
# Fault acceptance of a deployed network (issue 12).
app.command("drill")(drill_cmd)
# Rolling restarts and key rotation (issue 12).
app.command("rolling-gate")(rolling_gate_cmd)
app.command("rotation-plan")(rotation_plan_cmd)
app.add_typer(rotate_app, name="rotate-key")
app.add_typer(model_app, name="model")
app.add_typer(artifacts_app, name="artifacts")
# The training market (issue 11): dlnet market initiator|partner|validator|demo.
app.add_typer(market_app, name="market")
# Participant services (issue 5): dlnet serve federation|compliance|bridge, dlnet services migrate.
from dlnet.services.cli import serve_app, services_app  # noqa: E402 - registered beside the other sub-apps

app.add_typer(serve_app, name="serve")
app.add_typer(services_app, name="services")

Inventory = Annotated[
    str, typer.Option("--inventory", "-i", envvar="DLNET_INVENTORY", help="Inventory directory, e.g. inventories/local")
]
InventoryJson = Annotated[
    str | None,
    typer.Option("--inventory-json", help="Read the resolved inventory as JSON from this file or - (stdin)."),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ExtraVars = Annotated[
    list[str] | None,
    typer.Option("--extra-vars", "-e", help="Ansible extra vars (key=value), as given to the playbook."),
]


def _emit(as_json: bool, payload: dict[str, object], text: str) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True) if as_json else text)


@app.command()
def check(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    inventory_json: InventoryJson = None,
    reset: Annotated[
        bool, typer.Option("--reset/--no-reset", envvar="DLNET_RESET", help="Allow a changed passphrase (new network).")
    ] = False,
    artifacts: Annotated[bool, typer.Option(help="Check that stellar-core/Horizon binaries are supplied.")] = True,
    as_json: Json = False,
) -> None:
    """Preflight: validate the inventory and the quorum before anything is touched."""
    net = load_network(inventory, extra_vars, inventory_json)
    problems = preflight.check_network(net, reset=reset, check_artifacts=artifacts)
    if problems:
        raise InventoryError(problems)
    analysis = preflight.quorum_gate(net)[1]
    summary = {
        "env": net.env,
        "ok": True,
        "validators": len(net.validators),
        "organisations": len(net.organisations),
        "tolerated_failures": analysis.tolerates if analysis else None,
    }
    _emit(
        as_json,
        summary,
        f"{inventory}: preflight passed ({len(net.validators)} validators, "
        f"{len(net.organisations)} organisations"
        + (f", survives {analysis.tolerates} failed validator(s))" if analysis else ")"),
    )


@app.command("quorum")
def quorum_cmd(inventory: Inventory = "inventories/local", extra_vars: ExtraVars = None, as_json: Json = False) -> None:
    """Show each validator's quorum set (as stellar-core will generate it), whether every two quorums
    intersect, and the smallest set of failures that stops a validator: the verdict of `dlnet check`."""
    net = load_network(inventory, extra_vars)
    if not (net.components.stellar_core and net.validators):
        raise DlnetError(
            f"{inventory}: no validator to analyse — expected dlnet_components.stellar_core on and hosts in group"
            " 'stellar_core', got " + ("stellar_core off" if not net.components.stellar_core else "an empty group")
            + " — switch it on or add validators (see inventories/sample/hosts.yml)"
        )
    problems, analysis = preflight.quorum_gate(net)
    if analysis is None:  # the organisations are wrong: nothing meaningful to analyse
        raise InventoryError([f"{inventory}: {p}" for p in problems])
    qsets = analysis.qsets
    failed, stalled = analysis.breaking or ([], [])
    payload = {
        "qsets": {k: v.to_json() for k, v in qsets.items()},
        "failure_safety": {k: quorum.failure_safety(v) for k, v in qsets.items()},
        "intersection": analysis.intersection,
        "disjoint_quorums": list(analysis.disjoint) if analysis.disjoint else None,
        "tolerates": analysis.tolerates,
        "smallest_breaking_set": failed,
        "stalled_by_it": stalled,
        "ok": not problems,
        "problems": problems,
    }
    lines = [f"{k}: {json.dumps(v.to_json())} (FAILURE_SAFETY {quorum.failure_safety(v)})" for k, v in qsets.items()]
    lines.append(
        "intersection: yes (every two quorums share a validator)"
        if analysis.intersection
        else f"intersection: NO — disjoint quorums {analysis.disjoint[0]} and {analysis.disjoint[1]}"  # type: ignore[index]
    )
    lines.append(
        f"tolerates {analysis.tolerates} failed validator(s); smallest set that stops a validator: {', '.join(failed)}"
        + (f" (then {', '.join(stalled)} stop)" if stalled else "")
    )
    _emit(as_json, payload, "\n".join(lines))
    if problems:
        raise InventoryError([f"{inventory}: {p}" for p in problems])


@keys_app.command("ensure")
def keys_ensure(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    inventory_json: InventoryJson = None,
    as_json: Json = False,
) -> None:
    """Generate missing secrets (validator seeds, swarm key, DB password); report names, never values."""
    net = load_network(inventory, extra_vars, inventory_json)
    created = keys.ensure(net)
    _emit(
        as_json,
        {"changed": bool(created), "created": created, "dir": str(keys.secrets_dir(net.env))},
        f"created: {', '.join(created)}" if created else "all secrets present",
    )


@keys_app.command("rotate")
def keys_rotate(
    validator: Annotated[str, typer.Argument(help="The validator to give a new key (inventory name).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Drop the pending new key instead.")] = False,
    as_json: Json = False,
) -> None:
    """Ask for a new key for one validator (a new seed, 0600; never shown); `make rotate-key` applies it."""
    net = load_network(inventory, extra_vars)
    if cancel:
        dropped = keys.cancel_rotation(net, validator)
        _emit(
            as_json,
            {"changed": dropped, "validator": validator},
            f"{validator}: pending new key dropped (if a validator already named it, `make up` writes the old"
            " one back)"
            if dropped
            else f"{validator}: no new key pending",
        )
        return
    public = keys.request_rotation(net, validator)
    _emit(
        as_json,
        {"changed": True, "validator": validator, "new_public_key": public},
        f"{validator}: new key {public} pending — apply it with `make rotate-key ENV={net.env}`",
    )


@keys_app.command("forget-network")
def keys_forget(inventory: Inventory = "inventories/local", extra_vars: ExtraVars = None) -> None:
    """Forget the deployed passphrase after the ledgers were deleted (make clean does this)."""
    net = load_network(inventory, extra_vars)
    keys.reset_record(net)
    typer.echo(f"{net.env}: deployed-network record removed")


def main(argv: list[str] | None = None) -> int:
    try:
        result = app(args=argv, standalone_mode=False)
        # Under standalone_mode=False click returns typer.Exit's code instead of raising it.
        if isinstance(result, int) and result:
            return result
    except InventoryError as exc:
        for line in exc.problems:
            typer.secho(f"error: {line}", fg="red", err=True)
        return exc.exit_code
    except DlnetError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except (typer.Exit, typer.Abort) as exc:
        return getattr(exc, "exit_code", 1)
    except Exception as exc:  # the one place that catches everything: the CLI's boundary
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        typer.secho(f"unexpected error: {exc!r} (DLNET_DEBUG=1 shows the traceback)", fg="red", err=True)
        if os.environ.get("DLNET_DEBUG"):
            traceback.print_exc(file=sys.stderr)
        return 3
    return 0
