"""`dlnet market initiator|partner|validator|demo`: the training market (paper Sec. 4-6) on the network.

Keys come from the environment's key store (0600, never printed): the initiator is the model's
initiator from `dlnet model register NAME`; partners and validators are `market-NAME-partner-WHO` and
`market-NAME-validator-WHO`, created on first use (fund them, trust DLC/VLM, get KYC approval).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from dlnet import day2
from dlnet import seed as sd
from dlnet.chain import Horizon, InputError, Transactor, check_account_id, parse_amount, parse_asset
from dlnet.commands.common import ExtraVars, Inventory, Json, emit, progress
from dlnet.commands.seed import FunderFile
from dlnet.config import Network
from dlnet.errors import DlnetError
from dlnet.ipfs import Ipfs
from dlnet.keys import secrets_dir

market_app = typer.Typer(no_args_is_help=True, help="The training market: initiator, partners, validators, demo.")
initiator_app = typer.Typer(no_args_is_help=True, help="Model initiator: terms, checkpoints, fusion.")
partner_app = typer.Typer(no_args_is_help=True, help="Data owner / computing partner: train and submit.")
validator_app = typer.Typer(no_args_is_help=True, help="Validating node: evaluate, pay or strike.")
market_app.add_typer(initiator_app, name="initiator")
market_app.add_typer(partner_app, name="partner")
market_app.add_typer(validator_app, name="validator")

Model = Annotated[str, typer.Option("--model", "-m", help="Model name (as given to `dlnet model register`).")]
InitiatorId = Annotated[str, typer.Option("--initiator", help="The model initiator's account id (G...).")]
IpfsApi = Annotated[
    str | None, typer.Option("--ipfs-api", envvar="DLNET_IPFS_API", help="kubo RPC URL (default: the inventory's)")
]
Who = Annotated[str, typer.Option("--name", help="This party's name in the key store (letters, digits, dashes).")]
ComplianceUrl = Annotated[str | None, typer.Option(
    "--compliance", envvar="DLNET_COMPLIANCE_URL",
    help="Compliance service URL: the stake offer goes through its approval (default: the inventory's, when"
         " switched on).")]
BridgeUrl = Annotated[str | None, typer.Option(
    "--bridge", envvar="DLNET_BRIDGE_URL",
    help="Bridge URL: payments go through it (default: the inventory's, when switched on; else direct).")]
BridgeTokenFile = Annotated[Path | None, typer.Option(
    "--bridge-token-file", envvar="DLNET_BRIDGE_TOKEN_FILE", help="File (0600) holding the bridge's API token.")]


class _Ctx:
    def __init__(self, inventory: str, extra_vars: list[str] | None, ipfs_api: str | None) -> None:
        self.net, _ = day2.load(inventory, extra_vars)
        self.h = Horizon(day2.horizon_url(self.net), progress=progress)
        self.tx = Transactor(self.h, self.net.passphrase)
        self.tx.check_network()
        self.ipfs = [Ipfs(u) for u in _ipfs_urls(self.net, ipfs_api)]

    def close(self) -> None:
        self.h.close()
        for i in self.ipfs:
            i.close()


def _ipfs_urls(net: Network, override: str | None) -> list[str]:
    if override:
        return [override]
    if not net.ipfs:
        raise DlnetError(f"{net.inventory or 'inventory'}: no host in group 'ipfs_bootstrap' — expected a kubo node"
                         " to store checkpoints — add one or pass --ipfs-api")
    return [f"http://{n.address}:{n.api_port}" for n in net.ipfs]


def _service_url(net: Network, service: str, override: str | None) -> str | None:
    """The participant service's URL: the option, else the inventory's when it switches the service on."""
    if override:
        if not override.startswith(("http://", "https://")):
            raise InputError(f"--{service}: expected an http(s):// URL, got {override[:80]!r}")
        return override
    if getattr(net.services_enabled, service, False):
        for node in net.services:
            if service in node.ports:
                return f"http://{node.address}:{node.ports[service]}"
    return None


def _token(path: Path | None, what: str) -> str:
    if path is None:
        raise InputError(f"{what}: a bridge is in use, expected its API token — pass --bridge-token-file")
    if not path.is_file():
        raise InputError(f"{what} {path}: no such file — expected a file (0600) holding the bridge's API token")
    if path.stat().st_mode & 0o077:
        raise InputError(f"{what} {path}: readable by others — expected mode 0600 — run chmod 600 {path}")
    return path.read_text().strip()


def _name(who: str) -> str:
    sd.check_model_name(who)
    return who


def _existing_key(env: str, name: str, what: str) -> Any:
    path = secrets_dir(env) / f"{name}.seed"
    if not path.exists():
        raise InputError(f"{what}: no key {path} — expected it from an earlier step — run that step first")
    return sd.keypair(env, name)


def _fraction(value: float, what: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{what}: expected an accuracy between 0 and 1, got {value}")
    return value


# ---- demo ---------------------------------------------------------------------------------------------
@market_app.command("demo")
def demo_cmd(
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    funder_secret_file: FunderFile = None,
    ipfs_api: IpfsApi = None,
    model: Annotated[str, typer.Option(help="Model name for this run.")] = "digits-demo",
    partners: Annotated[int, typer.Option(help="Computing partners (the last --malicious of them cheat).")] = 3,
    malicious: Annotated[int, typer.Option(help="Partners that train on random labels.")] = 1,
    validators: Annotated[int, typer.Option(help="Validating nodes the initiator appoints.")] = 2,
    rounds: Annotated[int, typer.Option(help="Training rounds.")] = 3,
    reward: Annotated[str, typer.Option(help="XLM each validator pays per accepted update.")] = "2",
    stake_base: Annotated[str, typer.Option(help="DLC a partner without strikes stakes.")] = "10",
    penalty_factor: Annotated[str, typer.Option(help="The stake multiplies by this per strike.")] = "2",
    baseline: Annotated[float, typer.Option(help="Benchmark accuracy an update must reach.")] = 0.3,
    plot: Annotated[Path, typer.Option(help="PNG: accuracy per round, stakes, payments.")] = Path(
        "build/market-demo.png"),
    as_json: Json = False,
) -> None:
    """One initiator, partners (some malicious), validators, rounds: on the running network."""
    from dlnet.market import demo

    sd.check_model_name(model)
    opts = demo.Options(model=model, partners=partners, malicious=malicious, validators=validators, rounds=rounds,
                        reward=parse_amount(reward, "--reward"), stake_base=parse_amount(stake_base, "--stake-base"),
                        penalty_factor=parse_amount(penalty_factor, "--penalty-factor"),
                        baseline=_fraction(baseline, "--baseline"))
    opts.check()
    if opts.penalty_factor < 1:
        raise InputError(f"--penalty-factor {penalty_factor}: expected 1 or more (the stake must not shrink)")
    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    try:
        funder, _ = sd.funder_keypair(ctx.net, funder_secret_file)
        dlc_path = secrets_dir(ctx.net.env) / "dlc-issuer.seed"
        dlc_issuer = sd.keypair(ctx.net.env, "dlc-issuer") if dlc_path.exists() else None
        stores = (ctx.ipfs[0], ctx.ipfs[-1])

        def show(r: Any) -> None:
            if not as_json:
                progress(f"round {r.round}: accuracy {r.accuracy:.3f} after fusing {len(r.accepted)} updates;"
                         f" strikes {sorted(r.strikes.values())}")

        report = demo.run(ctx.tx, stores, funder, opts, dlc_issuer, progress, show)
    finally:
        ctx.close()
    report["plot"] = str(demo.plot(report, plot))
    emit(as_json, report, demo.text(report) + f"\nplot: {report['plot']}")


# ---- initiator ------------------------------------------------------------------------------------------
def _initiator(ctx: _Ctx, model: str) -> tuple[Any, Any]:
    from dlnet.market.protocol import Market

    sd.check_model_name(model)
    kp = _existing_key(ctx.net.env, f"model-{model}-initiator", f"unknown model {model!r}")
    return kp, Market.from_chain(ctx.h, kp.public_key, model)


@initiator_app.command("setup")
def initiator_setup(
    model: Model,
    validator: Annotated[list[str], typer.Option("--validator", help="Appointed validator account id (repeat).")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    dlc: Annotated[
        str | None, typer.Option(help="DLC as CODE:ISSUER (default: the network's, from dlnet seed).")
    ] = None,
    reward: Annotated[str, typer.Option(help="XLM per accepted update, per validator.")] = "2",
    stake_base: Annotated[str, typer.Option(help="DLC a partner without strikes stakes.")] = "10",
    penalty_factor: Annotated[str, typer.Option(help="Stake multiplier per strike.")] = "2",
    vlm_per_validator: Annotated[str, typer.Option(help="VLM handed to each validator.")] = "100",
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Publish the model's market terms on the initiator's account and hand VLM to the validators."""
    from dlnet.market import trainer as tr
    from dlnet.market.initiator import Initiator
    from dlnet.market.protocol import Market

    sd.check_model_name(model)
    vals = tuple(check_account_id(v, "--validator") for v in validator)
    amounts = {k: parse_amount(v, f"--{k.replace('_', '-')}") for k, v in
               (("reward", reward), ("stake_base", stake_base), ("penalty_factor", penalty_factor),
                ("vlm_per_validator", vlm_per_validator))}
    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    try:
        kp = _existing_key(ctx.net.env, f"model-{model}-initiator", f"unknown model {model!r}")
        issuer = _existing_key(ctx.net.env, f"model-{model}-issuer", f"unknown model {model!r}").public_key
        iss = ctx.h.account(issuer)
        if sd._data(iss, "dlnet.model") != model:
            raise InputError(f"unknown model {model!r}: not registered on this network — run"
                             f" `dlnet model register {model}` first")
        if dlc is None:
            dkp = _existing_key(ctx.net.env, "dlc-issuer", "--dlc")
            dlc_asset = parse_asset(f"DLC:{dkp.public_key}", "--dlc")
        else:
            dlc_asset = parse_asset(dlc, "--dlc")
        m = Market(model, issuer, kp.public_key, dlc_asset, vals, amounts["reward"], 1, amounts["stake_base"],
                   amounts["penalty_factor"])
        rec = Initiator(ctx.tx, ctx.ipfs[0], kp, m, tr.SHAPES, progress).setup(amounts["vlm_per_validator"])
    finally:
        ctx.close()
    emit(as_json, {"changed": rec is not None, "initiator": kp.public_key, "terms": m.terms()},
         f"market {model}: terms published by {kp.public_key}" if rec else f"market {model}: nothing to do")


@initiator_app.command("publish")
def initiator_publish(
    model: Model,
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    checkpoint: Annotated[Path | None, typer.Option(help="safetensors file (default: a fresh initial model).")] = None,
    round_: Annotated[int, typer.Option("--round", help="Round number.")] = 1,
    partners: Annotated[int, typer.Option(help="Partners the round's reward offer is sized for.")] = 3,
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Upload a checkpoint and offer XLM for DLM with its CID in the memo."""
    from dataclasses import asdict

    from dlnet.market import checkpoint as ck
    from dlnet.market import trainer as tr
    from dlnet.market.initiator import Initiator

    sd.check_model_name(model)
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"--checkpoint {checkpoint}: no such file — expected a safetensors checkpoint")
    data = checkpoint.read_bytes() if checkpoint else tr.initial(model)
    ck.loads(data, tr.SHAPES)  # refuse a file that is not the model's checkpoint before anything is touched
    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    try:
        kp, m = _initiator(ctx, model)
        pub = Initiator(ctx.tx, ctx.ipfs[0], kp, m, tr.SHAPES, progress).publish(data, round_, partners)
    finally:
        ctx.close()
    emit(as_json, {**asdict(pub), "xlm_offered": str(pub.xlm_offered)},
         f"round {pub.round}: checkpoint {pub.cid} offered in ledger {pub.ledger}")


@initiator_app.command("fuse")
def initiator_fuse(
    model: Model,
    since_ledger: Annotated[int, typer.Option(help="Count decisions after this ledger (the round's publish).")],
    out: Annotated[Path, typer.Option(help="Where to write the fused safetensors checkpoint.")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    round_: Annotated[int, typer.Option("--round", help="The round being closed.")] = 1,
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Fuse the updates every validator accepted into the next checkpoint (publish it next)."""
    from dlnet.market import trainer as tr
    from dlnet.market.initiator import Initiator

    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    try:
        kp, m = _initiator(ctx, model)
        fused, accepted = Initiator(ctx.tx, ctx.ipfs[0], kp, m, tr.SHAPES, progress).fuse(since_ledger, round_)
    finally:
        ctx.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(fused)
    emit(as_json, {"out": str(out), "accepted": [a.cid for a in accepted]},
         f"fused {len(accepted)} accepted updates into {out}")


@market_app.command("fetch")
def fetch_cmd(
    cid: Annotated[str, typer.Argument(help="The checkpoint's CIDv0 (Qm..., as in a transaction's MEMO_HASH).")],
    out: Annotated[Path, typer.Option(help="Where to write the verified checkpoint.")],
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Download a checkpoint from the swarm and check its bytes hash to the CID (refuses tampered bytes)."""
    from dlnet.market import checkpoint as ck

    ck.check_cid(cid, "CID")
    net, _ = day2.load(inventory, extra_vars)
    store = Ipfs(_ipfs_urls(net, ipfs_api)[-1])
    try:
        data = store.cat(cid)
    finally:
        store.close()
    ck.verify(data, cid)
    meta = ck.metadata(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    emit(as_json, {"cid": cid, "bytes": len(data), "metadata": meta, "out": str(out)},
         f"{cid}: {len(data)} bytes, verified, written to {out}")


@market_app.command("join")
def join_cmd(
    role: Annotated[str, typer.Argument(help="partner or validator")],
    name: Who,
    initiator: InitiatorId,
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    funder_secret_file: FunderFile = None,
    starting_balance: Annotated[str, typer.Option(help="XLM for the new account.")] = "100",
    as_json: Json = False,
) -> None:
    """Create a partner's or validator's account (from the funder) with the trustlines its role needs.
    A partner still needs KYC approval (its DLC trustline authorized by the compliance service) and DLC."""
    from stellar_sdk import ChangeTrust, CreateAccount

    from dlnet.chain import balance
    from dlnet.market.protocol import Market

    if role not in ("partner", "validator"):
        raise InputError(f"role {role!r}: expected partner or validator")
    check_account_id(initiator, "--initiator")
    parse_amount(starting_balance, "--starting-balance")
    ctx = _Ctx(inventory, extra_vars, None)
    try:
        m = Market.from_chain(ctx.h, initiator) if role == "partner" else None
        if m is None:  # a validator joins before it is appointed: the model is the one whose DLM the initiator holds
            acc = ctx.h.account(initiator)
            model = sd._data(acc, "market.model") or ""
            issuer = sd._data(acc, "market.issuer") or ""
            if not model:
                issuer_acc = None
                for k in ((acc or {}).get("balances") or []):
                    if k.get("asset_code") == "DLM":
                        issuer = k["asset_issuer"]
                        issuer_acc = ctx.h.account(issuer)
                model = sd._data(issuer_acc, "dlnet.model") or ""
            if not model or not issuer:
                raise InputError(f"unknown model: {initiator} holds no model's DLM — expected a model initiator")
            from stellar_sdk import Asset

            assets = [Asset("DLM", issuer), Asset("VLM", issuer)]
        else:
            model, assets = m.model, [m.dlc, m.vlm]
        kp = sd.keypair(ctx.net.env, f"market-{model}-{role}-{_name(name)}")
        funder, _ = sd.funder_keypair(ctx.net, funder_secret_file)
        acc = ctx.h.account(kp.public_key)
        ops: list[Any] = [] if acc else [CreateAccount(kp.public_key, starting_balance, source=funder.public_key)]
        ops += [ChangeTrust(a, source=kp.public_key) for a in assets if balance(acc, a) is None]
        if ops:
            ctx.tx.run(funder, ops, signers=[kp])
    finally:
        ctx.close()
    emit(as_json, {"changed": bool(ops), "account": kp.public_key, "role": role, "model": model},
         f"{role} {name}: {kp.public_key} {'ready' if ops else 'already there'} for model {model}")


# ---- partner / validator ----------------------------------------------------------------------------
@partner_app.command("submit")
def partner_submit(
    initiator: InitiatorId,
    name: Who,
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Expected model name.")] = None,
    shard: Annotated[int, typer.Option(help="Which digits shard is this partner's private data.")] = 0,
    of: Annotated[int, typer.Option(help="How many partners the data set is split across.")] = 3,
    malicious: Annotated[bool, typer.Option(help="Train on random labels (for demos and tests).")] = False,
    compliance: ComplianceUrl = None,
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Find the initiator's offer, verify it, train locally, upload, stake DLC with the update's CID
    (through the compliance service's approval where the network runs one)."""
    from dataclasses import asdict

    from dlnet.market import trainer as tr
    from dlnet.market.partner import Partner
    from dlnet.market.protocol import Market

    check_account_id(initiator, "--initiator")
    if not 0 <= shard < of:
        raise InputError(f"--shard {shard}: expected 0 to {of - 1} (--of {of})")
    _name(name)
    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    gate = None
    try:
        from dlnet.market.gateways import Compliance

        url = _service_url(ctx.net, "compliance", compliance)
        gate = Compliance(url, ctx.net.passphrase) if url else None
        m = Market.from_chain(ctx.h, initiator, model)
        kp = _existing_key(ctx.net.env, f"market-{m.model}-partner-{name}", f"partner {name!r}")
        data = tr.split(of, max(1, len(m.validators))).shards[shard]
        trainer = tr.malicious_trainer() if malicious else tr.make_trainer()
        s = Partner(ctx.tx, ctx.ipfs[-1], kp, m, data, trainer, progress, gate).work()
    finally:
        ctx.close()
        if gate is not None:
            gate.close()
    emit(as_json, {**asdict(s), "stake": str(s.stake)}, f"partner {s.partner}: update {s.cid} staked {s.stake} DLC")


@validator_app.command("review")
def validator_review(
    initiator: InitiatorId,
    name: Who,
    inventory: Inventory = "inventories/local",
    extra_vars: ExtraVars = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Expected model name.")] = None,
    benchmark: Annotated[int, typer.Option(help="Which validator benchmark split is this node's.")] = 0,
    baseline: Annotated[float, typer.Option(help="Benchmark accuracy an update must reach.")] = 0.3,
    bridge: BridgeUrl = None,
    bridge_token_file: BridgeTokenFile = None,
    ipfs_api: IpfsApi = None,
    as_json: Json = False,
) -> None:
    """Decide every undecided update in the order book: pay (offers cross; through the bridge where the
    network runs one) or strike."""
    from dataclasses import asdict

    from dlnet.market import trainer as tr
    from dlnet.market.protocol import Market
    from dlnet.market.validator import Validator

    check_account_id(initiator, "--initiator")
    _fraction(baseline, "--baseline")
    _name(name)
    ctx = _Ctx(inventory, extra_vars, ipfs_api)
    payer = None
    try:
        m = Market.from_chain(ctx.h, initiator, model)
        kp = _existing_key(ctx.net.env, f"market-{m.model}-validator-{name}", f"validator {name!r}")
        if not 0 <= benchmark < max(1, len(m.validators)):
            raise InputError(f"--benchmark {benchmark}: expected 0 to {len(m.validators) - 1}")
        from dlnet.market.gateways import BridgePayer

        url = _service_url(ctx.net, "bridge", bridge)
        if url:
            payer = BridgePayer(url, _token(bridge_token_file, "--bridge-token-file"), kp.public_key)
        bench = tr.split(3, len(m.validators)).benchmarks[benchmark]
        ds = Validator(ctx.tx, ctx.ipfs[0], kp, m, bench, tr.accuracy, tr.SHAPES, baseline, progress,
                       payer).review()
    finally:
        ctx.close()
        if payer is not None:
            payer.close()
    emit(as_json, {"decisions": [asdict(d) for d in ds]},
         "\n".join(f"{d.partner}: {'accepted' if d.accepted else 'refused'} — {d.reason}" for d in ds)
         or "nothing to decide")


__all__ = ["Decimal", "market_app"]
