"""`dlnet seed`: create the DLC issuer and distributor, set flags, authorize, issue; optionally lock root."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dlnet import day2
from dlnet import seed as sd
from dlnet.chain import CoreTx, Horizon
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.errors import DlnetError

FunderFile = Annotated[
    str | None,
    typer.Option(
        "--funder-secret-file",
        envvar="DLNET_FUNDER_SECRET_FILE",
        help="File (0600) with the secret seed of an operator-funded account. Default: the kit's funder"
        " (created by `dlnet lock-root`, which make up runs), else the root account.",
    ),
]


def seed(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    funder_secret_file: FunderFile = None,
    holders: Annotated[
        int | None, typer.Option(help="Holder accounts with an authorized DLC trustline (default: dlnet_dlc.holders).")
    ] = None,
    lock_root: Annotated[bool, typer.Option(help="Set the root account's master weight to 0 after funding.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before locking the root account.")] = False,
    as_json: Json = False,
) -> None:
    """Make the Deep Learning Coin exist: issuer, distributor, flags, authorization, supply (idempotent)."""
    if holders is not None and not 0 <= holders <= 100_000:
        raise DlnetError(f"seed: --holders {holders} — expected 0 to 100000 — pass a sensible number")
    net, settings = day2.load(inventory, extra_vars)
    dlc = settings.dlc
    if holders is not None:
        dlc = dlc.model_copy(update={"holders": holders})
    if "auth_clawback_enabled" in dlc.flags and "auth_revocable" not in dlc.flags:
        raise DlnetError(
            "dlnet_dlc.flags: auth_clawback_enabled needs auth_revocable — expected both or neither —"
            " add auth_revocable to dlnet_dlc.flags"
        )
    home_domain = dlc.home_domain or (net.organisations[0].home_domain if net.organisations else None)
    if not home_domain or len(home_domain) > 32:
        raise DlnetError(
            f"dlnet_dlc.home_domain: {home_domain!r} — expected a domain of at most 32 characters —"
            " set dlnet_dlc.home_domain"
        )
    funder, is_root = sd.funder_keypair(net, funder_secret_file)
    if lock_root and is_root and not yes:
        if not sys.stdin.isatty():
            raise DlnetError(
                "seed: --lock-root makes the root account's remaining lumens unspendable forever —"
                " expected a confirmation — pass --yes (no terminal to ask on)"
            )
        if not typer.confirm(f"Lock the root account {funder.public_key} (master weight 0) after seeding?"):
            raise DlnetError(
                "seed: root lock not confirmed — nothing was done — re-run without --lock-root or answer yes"
            )
    horizon = Horizon(day2.horizon_url(net))
    # Submitted to the validators as `dlnet load` does (answered at once, ledgers fill), confirmed through Horizon.
    core = CoreTx([day2.admin_url(v.address, v.http_port) for v in net.validators])
    try:
        chain = sd.Chain(net, horizon, funder, is_root, progress, core)
        # Read-only: a root that cannot be locked from this funder stops here, before anything is submitted.
        lock = sd.lock_root_step(chain) if lock_root else []
        issuer = sd.keypair(net.env, "dlc-issuer")
        distributor = sd.keypair(net.env, "dlc-distributor")
        holder_kps = sd.holder_keys(net.env, dlc.holders)
        # As many channels as keep every ledger's transaction set full (at least dlnet_dlc.channels).
        lanes = sd.channels_needed(dlc, chain.max_tx_set_size)
        channels = [sd.keypair(net.env, f"dlc-channel-{i}") for i in range(lanes)]
        steps, groups, summary = sd.plan_dlc(chain, dlc, home_domain, issuer, distributor, holder_kps, channels)
        chain.check_funding(steps + [s for g in groups for s in g])
        report = sd.Report()
        chain.execute(steps, report)
        chain.execute_channels(groups, channels, report)
        if lock:
            chain.funder_account = horizon.account(funder.public_key) or chain.funder_account
            chain.execute(lock, report)
            summary["root_locked"] = True
    finally:
        horizon.close()
        core.close()
    payload = {**report.to_json(), **summary}
    if report.transactions:
        text = (
            f"seed: {summary['asset']} — {report.operations} operations in {report.transactions} transactions"
            f" over {len(set(report.ledgers))} ledgers; supply {summary['supply']}, {summary['holders']} holders"
            + (
                f" (holders: {report.holder_operations} operations over {len(set(report.holder_ledgers))} ledgers"
                f" at max tx set size {chain.max_tx_set_size}, {len(channels)} channels)"
                if report.holder_operations
                else ""
            )
            + ("; root locked" if lock_root else "")
        )
    else:
        text = f"seed: nothing to do — {summary['asset']} already as the inventory describes"
    emit(as_json, payload, text)
