"""`dlnet load`: offer payments (optionally DEX offers) to the deployed network for a bounded time."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from dlnet import day2
from dlnet import load as ld
from dlnet import seed as sd
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.core_admin import CoreAdmin


def admins_for(net: object, timeout: float) -> list[CoreAdmin]:
    return [
        CoreAdmin(v.name, day2.admin_url(v.address, v.http_port), timeout=max(timeout, 5.0))
        for v in net.validators  # type: ignore[attr-defined]
    ]


def parse_rate(text: str) -> float | None:
    if text.strip().lower() in ("max", "fast"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ld.LoadError(
            f"load: --rate {text!r} — expected tx/s as a number, or `max` — pass e.g. --rate 200"
        ) from None


def load(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    rate: Annotated[str, typer.Option(help="Offered tx/s, or `max`: as fast as they are accepted.")] = "100",
    duration: Annotated[float, typer.Option(help="Seconds of submission (the run stops by itself).")] = 30.0,
    accounts: Annotated[int | None, typer.Option(help="Channel accounts (default: rate x 15).")] = None,
    processes: Annotated[int, typer.Option(help="Signing/submitting processes.")] = 2,
    offers: Annotated[float, typer.Option(help="Share of transactions that are DEX offers (0..1).")] = 0.0,
    max_txs: Annotated[int | None, typer.Option(help="With --rate max: transactions to sign.")] = None,
    via_horizon: Annotated[bool, typer.Option(help="Submit through Horizon instead of the validators.")] = False,
    funder_secret_file: Annotated[
        str | None,
        typer.Option(
            envvar="DLNET_FUNDER_SECRET_FILE", help="0600 file with a funder seed (default: kit funder, else root)."
        ),
    ] = None,
    close_seconds: Annotated[float, typer.Option(help="Expected ledger close time (sizes the channel pool).")] = 5.0,
    as_json: Json = False,
) -> None:
    """Create and fund channel accounts, offer signed payments at a rate, count accepted/refused/applied."""
    plan = ld.Plan(parse_rate(rate), duration, accounts, processes, offers, via_horizon, max_txs)
    plan.check()  # bad input stops before the inventory or any validator is read
    funder = ld.funder_from_file(funder_secret_file) if funder_secret_file else None
    net, settings = day2.load(inventory, extra_vars)
    if funder is None:  # the kit's funder once `dlnet lock-root` ran (make up does), else the root
        funder = sd.funder_keypair(net, None)[0]
    horizon = day2.horizon_url(net) if net.components.horizon and net.horizon else None
    if via_horizon and horizon is None:
        raise ld.LoadError(
            "load: --via-horizon but the inventory deploys no Horizon — expected a horizon host — drop --via-horizon"
        )
    admins = admins_for(net, settings.admin_timeout_seconds)
    started = time.monotonic()
    with ld.Engine(
        net.passphrase,
        admins,
        funder=funder,
        horizon=horizon,
        processes=processes,
        progress=progress,
        ledger_timeout=max(30.0, close_seconds * 6),
    ) as engine:
        n = plan.channels_needed(close_seconds)
        size = engine.check_network().ledger.max_tx_set_size
        engine.fund(n, offers=offers > 0, max_ops_per_ledger=size)
        result = engine.step(
            plan.rate, duration, max_txs=max_txs, offers=offers, via_horizon=via_horizon, on_tick=progress
        )
    payload = {"env": net.env, "channels": n, "seconds": round(time.monotonic() - started, 1), **result.to_json()}
    payload["closes"] = {k: v for k, v in payload["closes"].items()}
    st = result.statuses
    text = (
        f"load: offered {result.submitted} tx in {duration:g}s ({result.offered_tps:g} tx/s"
        f"{'' if plan.rate is None else f' of {plan.rate:g} asked'}); "
        + ", ".join(f"{k} {st.get(k, 0)}" for k in ld.STATUSES)
        + "".join(f", {k} {v}" for k, v in st.items() if k not in ld.STATUSES)
        + (f" (codes: {', '.join(f'{k} {v}' for k, v in result.codes.items())})" if result.codes else "")
        + f"\nload: applied {result.applied_txs if result.applied_txs is not None else '?'} tx in ledgers"
        f" {result.first_ledger + 1}-{result.last_ledger} ({result.applied_tps or '?'} tx/s); close p50"
        f" {result.closes.p50}s p95 {result.closes.p95}s (nomination timeouts"
        f" {'?' if result.closes.nomination_timeouts is None else result.closes.nomination_timeouts} in"
        f" {result.closes.ledgers} ledgers); signing {result.signing_tps_per_core} tx/s per core"
    )
    emit(as_json, payload, text)
