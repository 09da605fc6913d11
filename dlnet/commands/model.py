"""`dlnet model register NAME`: the per-model DLM and VLM tokens of a model initiator (paper Table 1)."""

from __future__ import annotations

from typing import Annotated

import typer

from dlnet import day2
from dlnet import seed as sd
from dlnet.chain import Horizon, parse_amount
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.commands.seed import FunderFile

model_app = typer.Typer(no_args_is_help=True, help="Models: DLM and VLM tokens issued per model (paper Table 1).")


@model_app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name: lowercase letters, digits, dashes (e.g. mnist-cnn).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    funder_secret_file: FunderFile = None,
    dlm_supply: Annotated[str, typer.Option(help="DLM (model token) supply issued to the initiator.")] = "1000",
    vlm_supply: Annotated[
        str, typer.Option(help="VLM (verified model token) supply issued to the initiator.")
    ] = "1000",
    starting_balance: Annotated[
        str, typer.Option(help="XLM for each account created (the issuer keeps 4 data entries).")
    ] = "100",
    as_json: Json = False,
) -> None:
    """Create the model's issuer and initiator accounts and issue its DLM and VLM to the initiator."""
    sd.check_model_name(name)
    dlm = parse_amount(dlm_supply, "--dlm-supply")
    vlm = parse_amount(vlm_supply, "--vlm-supply")
    parse_amount(starting_balance, "--starting-balance")
    net, _ = day2.load(inventory, extra_vars)
    funder, is_root = sd.funder_keypair(net, funder_secret_file)
    horizon = Horizon(day2.horizon_url(net))
    try:
        chain = sd.Chain(net, horizon, funder, is_root, progress)
        issuer = sd.keypair(net.env, f"model-{name}-issuer")
        initiator = sd.keypair(net.env, f"model-{name}-initiator")
        steps, summary = sd.plan_model(chain, name, issuer, initiator, dlm, vlm, starting_balance)
        chain.check_funding(steps)
        report = sd.Report()
        chain.execute(steps, report)
    finally:
        horizon.close()
    text = (
        f"model {name}: DLM and VLM issued by {summary['issuer']} to {summary['initiator']}"
        if report.transactions
        else f"model {name}: nothing to do — already registered"
    )
    emit(as_json, {**report.to_json(), **summary}, text)
