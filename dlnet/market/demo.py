"""`dlnet market demo`: the whole market on a running network (paper Sec. 6, Fig. 3).

One initiator, partners (the last `malicious` of them train on random labels), validators, rounds.
Accounts are fresh for every run (created from the funding account; their seeds stay in memory and are
never printed); the model is named like `dlnet model register` names one (issuer data `dlnet.model`,
`dlm.issued`, `vlm.issued`). DLC is the network's own coin when its issuer key is at hand (dlnet seed's
`dlc-issuer` in the environment's key store); otherwise a DLC issuer with the same flags is created for
the run. Without a compliance service, approving a partner's DLC trustline plays its KYC approval; with one
(`Services`), partners submit KYC, the operator approves it (trustline authorized to maintain liabilities
only), and every stake offer goes through its approval; with a bridge, validators pay through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from stellar_sdk import Asset, AuthorizationFlag, Keypair, TrustLineFlags
from stellar_sdk.operation import (
    ChangeTrust,
    CreateAccount,
    ManageData,
    Operation,
    Payment,
    SetOptions,
    SetTrustLineFlags,
)

from dlnet.chain import AUTHORIZED, MAINTAIN, InputError, Transactor, amount_text, asset_text, balance
from dlnet.market import penalties
from dlnet.market import trainer as tr
from dlnet.market.gateways import Compliance, Payer
from dlnet.market.initiator import Initiator, Store
from dlnet.market.partner import Partner
from dlnet.market.protocol import Market
from dlnet.market.validator import Validator
from dlnet.observe import parallel

MAX_SIGNERS = 19  # per transaction besides the source (Stellar allows 20 signatures)


@dataclass
class Options:
    model: str = "digits-demo"
    partners: int = 3
    malicious: int = 1
    validators: int = 2
    rounds: int = 3
    reward: Decimal = Decimal("2")
    stake_base: Decimal = Decimal("10")
    penalty_factor: Decimal = Decimal("2")
    baseline: float = 0.3
    seed: int = 7
    unapproved: int = 0  # extra partners left without KYC approval (their attempts are refused)
    workers: int = 8  # partners (and validators) working at the same time

    def check(self) -> None:
        if not 1 <= self.partners <= 60:
            raise InputError(f"--partners {self.partners}: expected 1 to 60")
        if not 0 <= self.malicious < self.partners:
            raise InputError(f"--malicious {self.malicious}: expected 0 to {self.partners - 1} (one honest partner)")
        if not 1 <= self.validators <= 10:
            raise InputError(f"--validators {self.validators}: expected 1 to 10")
        if not 1 <= self.rounds <= 50:
            raise InputError(f"--rounds {self.rounds}: expected 1 to 50")
        if not 0.0 <= self.baseline <= 1.0:
            raise InputError(f"--baseline {self.baseline}: expected an accuracy between 0 and 1")


@dataclass
class World:
    market: Market
    initiator: Keypair
    issuer: Keypair
    dlc_issuer: Keypair
    validators: list[Keypair]
    partners: list[Keypair]
    malicious: set[str]
    unapproved: list[Keypair] = field(default_factory=list)
    transactions: int = 0


def _chunks(ops: list[tuple[Operation, Keypair]]) -> list[list[tuple[Operation, Keypair]]]:
    out: list[list[tuple[Operation, Keypair]]] = [[]]
    for op, kp in ops:
        signers = {k.public_key for _, k in out[-1]} | {kp.public_key}
        if len(out[-1]) >= 100 or len(signers) > MAX_SIGNERS:
            out.append([])
        out[-1].append((op, kp))
    return [c for c in out if c]


def _run(tx: Transactor, funder: Keypair, ops: list[tuple[Operation, Keypair]], world_tx: list[int]) -> None:
    for chunk in _chunks(ops):
        tx.run(funder, [op for op, _ in chunk], signers=[kp for _, kp in chunk])
        world_tx[0] += 1


@dataclass
class Services:
    """The participant services the demo goes through, where the network runs them (gateways.py)."""

    compliance: Compliance | None = None  # KYC and the approval of every stake offer (DLC regulated)
    admin_token: str | None = None  # the compliance operator's token: approves the partners' KYC
    payer_for: Callable[[Keypair], Payer] | None = None  # the bridge, per validator (it holds their keys)
    validator_keys: list[Keypair] | None = None  # the validators the bridge holds

    @property
    def regulated(self) -> bool:
        return self.compliance is not None


def provision(tx: Transactor, funder: Keypair, opts: Options, dlc_issuer: Keypair | None = None,
              progress: Callable[[str], None] = lambda _m: None, services: Services | None = None) -> World:
    """Fresh accounts, trustlines, KYC approvals, DLC and the model's DLM/VLM for one demo run."""
    opts.check()
    svc = services or Services()
    h = tx.h
    count = [0]
    new_dlc = dlc_issuer is None or h.account(dlc_issuer.public_key) is None
    dlc_kp = Keypair.random() if dlc_issuer is None else dlc_issuer
    issuer, initiator = Keypair.random(), Keypair.random()
    validators = list(svc.validator_keys or [Keypair.random() for _ in range(opts.validators)])
    if len(validators) != opts.validators:
        raise InputError(f"--validators {opts.validators}: the bridge holds {len(validators)} validator keys —"
                         " expected as many")
    partners = [Keypair.random() for _ in range(opts.partners)]
    unapproved = [Keypair.random() for _ in range(opts.unapproved)]
    dlc = Asset("DLC", dlc_kp.public_key)
    if not new_dlc:
        flags = (h.account(dlc_kp.public_key) or {}).get("flags") or {}
        progress(f"demo: using the network's DLC {asset_text(dlc)} (flags {sorted(k for k, v in flags.items() if v)})")
    xlm_need = opts.reward * opts.validators * opts.partners * opts.rounds
    # starting balances cover each account's reserve (base reserve per subentry; 10 XLM at genesis) + fees
    reserve = Decimal(int(h.latest_ledger().get("base_reserve_in_stroops", 100_000_000))) / Decimal(10_000_000)

    def xlm(entries: int, spend: Decimal = Decimal(5)) -> str:
        return amount_text(reserve * (2 + entries) + spend)

    src = funder.public_key
    ops: list[tuple[Operation, Keypair]] = []
    if new_dlc:
        ops.append((CreateAccount(dlc_kp.public_key, xlm(0), source=src), funder))
        ops.append((SetOptions(set_flags=AuthorizationFlag(1 | 2 | 8), source=dlc_kp.public_key), dlc_kp))
    ops.append((CreateAccount(issuer.public_key, xlm(4), source=src), funder))
    ops.append((CreateAccount(initiator.public_key, xlm(14 + opts.validators, xlm_need + 20), source=src), funder))
    vxlm = xlm(4 + opts.partners + opts.unapproved)
    ops += [(CreateAccount(v.public_key, vxlm, source=src), funder) for v in validators]
    ops += [(CreateAccount(p.public_key, xlm(3), source=src), funder) for p in partners + unapproved]
    _run(tx, funder, ops, count)
    dlm, vlm = Asset("DLM", issuer.public_key), Asset("VLM", issuer.public_key)
    ops = [(ChangeTrust(a, source=initiator.public_key), initiator) for a in (dlm, vlm)]
    ops += [(ChangeTrust(a, source=v.public_key), v) for v in validators for a in (dlm, vlm)]
    ops += [(ChangeTrust(a, source=p.public_key), p) for p in partners + unapproved for a in (dlc, vlm)]
    _run(tx, funder, ops, count)
    supply = Decimal(1000) + xlm_need * 2
    ops = [
        (ManageData("dlnet.model", opts.model, source=issuer.public_key), issuer),
        (ManageData("dlnet.initiator", initiator.public_key, source=issuer.public_key), issuer),
        (Payment(initiator.public_key, dlm, amount_text(supply), source=issuer.public_key), issuer),
        (ManageData("dlm.issued", amount_text(supply), source=issuer.public_key), issuer),
        (Payment(initiator.public_key, vlm, amount_text(supply), source=issuer.public_key), issuer),
        (ManageData("vlm.issued", amount_text(supply), source=issuer.public_key), issuer),
    ]
    stake_need = opts.stake_base * opts.penalty_factor ** opts.rounds * 2
    auth_required = new_dlc or bool(((h.account(dlc_kp.public_key) or {}).get("flags") or {}).get("auth_required"))
    if svc.regulated:
        _run(tx, funder, ops, count)
        ops = []
        assert svc.compliance is not None and svc.admin_token is not None, "KYC approval needs the operator token"
        for p in partners:  # KYC through the compliance service: SEP-10, POST /kyc, the operator approves
            svc.compliance.submit_kyc(p, {"first_name": "partner", "last_name": p.public_key[:8]})
            svc.compliance.operator_approve(p.public_key, svc.admin_token)
    for p in partners:  # KYC approval: the compliance service authorizes the DLC trustline
        pay = (Payment(p.public_key, dlc, amount_text(stake_need), source=dlc_kp.public_key), dlc_kp)
        if svc.regulated:  # the issuer's own transfer, authorized for this transaction only
            ops += [(SetTrustLineFlags(p.public_key, dlc, clear_flags=MAINTAIN, set_flags=AUTHORIZED,
                                       source=dlc_kp.public_key), dlc_kp), pay,
                    (SetTrustLineFlags(p.public_key, dlc, clear_flags=AUTHORIZED, set_flags=MAINTAIN,
                                       source=dlc_kp.public_key), dlc_kp)]
            continue
        if auth_required:
            ops.append((SetTrustLineFlags(p.public_key, dlc, set_flags=TrustLineFlags.AUTHORIZED_FLAG,
                                          source=dlc_kp.public_key), dlc_kp))
        ops.append(pay)
    _run(tx, funder, ops, count)
    market = Market(opts.model, issuer.public_key, initiator.public_key, dlc,
                    tuple(v.public_key for v in validators), opts.reward, 1, opts.stake_base, opts.penalty_factor)
    world = World(market, initiator, issuer, dlc_kp, validators, partners,
                  {p.public_key for p in partners[opts.partners - opts.malicious:]}, unapproved)
    world.transactions = count[0]
    return world


@dataclass
class RoundReport:
    round: int
    checkpoint: str
    publish_tx: str
    offers: list[dict[str, Any]]
    submissions: list[dict[str, Any]]
    refused_before_submit: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    payments: dict[str, str]
    strikes: dict[str, int]
    required_stake: dict[str, str]
    accepted: list[str]
    fused_checkpoint: str
    accuracy: float
    first_ledger: int
    last_ledger: int
    transactions: int
    seconds: float


def run(tx: Transactor, stores: tuple[Store, Store], funder: Keypair, opts: Options,
        dlc_issuer: Keypair | None = None, progress: Callable[[str], None] = lambda _m: None,
        on_round: Callable[[RoundReport], None] = lambda _r: None, services: Services | None = None,
        keys: list[Keypair] | None = None) -> dict[str, Any]:
    """Provision, then `opts.rounds` rounds; returns the report (accounts by public key only). `keys`, when
    given, receives the partners' key pairs (in memory, for callers that act as them afterwards)."""
    opts.check()
    svc = services or Services()
    t0 = time.monotonic()
    world = provision(tx, funder, opts, dlc_issuer, progress, svc)
    if keys is not None:
        keys.extend(world.partners + world.unapproved)
    m = world.market
    data = tr.split(opts.partners + opts.unapproved, opts.validators, seed=opts.seed)
    up, down = stores  # the initiator and validators use one node, partners another: checkpoints travel
    ini = Initiator(tx, up, world.initiator, m, tr.SHAPES, progress)
    ini.setup(Decimal(10) + (m.reward_dlm + 1) * opts.partners * opts.rounds)
    setup_tx = world.transactions + 1
    partners = [Partner(tx, down, kp, m, data.shards[i],
                        tr.malicious_trainer(seed=opts.seed + i) if kp.public_key in world.malicious
                        else tr.make_trainer(), progress, svc.compliance)
                for i, kp in enumerate(world.partners + world.unapproved)]
    validators = [Validator(tx, up, kp, m, data.benchmarks[i], tr.accuracy, tr.SHAPES, opts.baseline, progress,
                            svc.payer_for(kp) if svc.payer_for else None)
                  for i, kp in enumerate(world.validators)]
    current = tr.initial(opts.model, seed=opts.seed)
    initial_acc = tr.accuracy(current, data.test)
    progress(f"demo: initial checkpoint accuracy {initial_acc:.3f} on the held-out set")
    rounds: list[RoundReport] = []
    paid_total: dict[str, Decimal] = {p.id: Decimal(0) for p in partners}
    for r in range(1, opts.rounds + 1):
        t = time.monotonic()
        ntx = 1
        pub = ini.publish(current, r, opts.partners)
        offers = [_offer_view(o) for o in tx.h.offers(m.initiator)]
        subs, refused = [], []

        def attempt(p: Partner) -> Any:
            try:
                return p.work()
            except InputError as exc:
                return exc

        # partners are independent parties (own accounts, own sequence numbers): they work concurrently
        for p, s in zip(partners, parallel([lambda p=p: attempt(p) for p in partners], opts.workers), strict=True):
            if isinstance(s, InputError):
                refused.append({"partner": p.id, "reason": str(s)})
            else:
                subs.append({**asdict(s), "stake": amount_text(s.stake), "malicious": p.id in world.malicious})
                ntx += 1
        offers += [_offer_view(o) for o in validators[0].order_book()]
        decisions = []
        for ds in parallel([v.review for v in validators], opts.workers):  # so do validators
            for d in ds:
                decisions.append(asdict(d))
                ntx += len(d.extra.get("transactions", [])) if d.accepted else 1 if d.tx_hash else 0
        fused, accepted = ini.fuse(pub.ledger, r)
        current = fused
        acc = tr.accuracy(current, data.test)
        payments: dict[str, Decimal] = {}
        for d in decisions:
            if d["accepted"]:
                payments[d["partner"]] = payments.get(d["partner"], Decimal(0)) + Decimal(d["paid_xlm"])
        for k, v_ in payments.items():
            paid_total[k] += v_
        vaccs = tx.h.accounts([v.id for v in validators])
        strikes = {p.id: penalties.strikes_of(vaccs.values(), p.id) for p in partners}
        last = max([pub.ledger] + [s["ledger"] for s in subs] + [d["ledger"] or 0 for d in decisions])
        rep = RoundReport(
            r, pub.cid, pub.tx_hash, offers, subs, refused, decisions,
            {k: amount_text(v_) for k, v_ in payments.items()}, strikes,
            {k: amount_text(m.required_stake(n)) for k, n in strikes.items()},
            [a.cid for a in accepted], ini.store.add(current), acc, pub.ledger, last, ntx, time.monotonic() - t)
        rounds.append(rep)
        on_round(rep)
    # the same epochs on each honest partner's own data alone, for comparison
    local_only = {}
    for i, p in enumerate(partners[: opts.partners]):
        if p.id in world.malicious:
            continue
        c = tr.initial(opts.model, seed=opts.seed)
        train = tr.make_trainer()
        for _ in range(opts.rounds):
            c = train(c, data.shards[i])
        local_only[p.id] = tr.accuracy(c, data.test)
    xlm = {p.id: str(balance(tx.h.account(p.id), Asset.native())["balance"]) for p in partners}  # type: ignore[index]
    return {
        "model": m.model,
        "assets": {"dlc": asset_text(m.dlc), "dlm": asset_text(m.dlm), "vlm": asset_text(m.vlm)},
        "initiator": m.initiator,
        "issuer": m.issuer,
        "validators": list(m.validators),
        "partners": [p.id for p in partners[: opts.partners]],
        "malicious": sorted(world.malicious),
        "unapproved": [kp.public_key for kp in world.unapproved],
        "initial_accuracy": initial_acc,
        "final_accuracy": rounds[-1].accuracy,
        "local_only_accuracy": local_only,
        "paid_xlm": {k: amount_text(v) for k, v in paid_total.items()},
        "xlm_balance": xlm,
        "rounds": [asdict(r) for r in rounds],
        "setup_transactions": setup_tx,
        "seconds": time.monotonic() - t0,
    }


def _offer_view(o: dict[str, Any]) -> dict[str, Any]:
    from dlnet.chain import asset_of

    return {"id": str(o["id"]), "seller": o["seller"], "selling": asset_text(asset_of(o["selling"])),
            "buying": asset_text(asset_of(o["buying"])), "amount": o["amount"], "price": o.get("price")}


def plot(report: dict[str, Any], path: Path) -> Path:
    """Accuracy per round, stakes and payments per partner per round (the order book as it crossed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = report["rounds"]
    xs = [0] + [r["round"] for r in rounds]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5))
    ax1.plot(xs, [report["initial_accuracy"]] + [r["accuracy"] for r in rounds], "o-", label="fused model")
    for pid, a in report["local_only_accuracy"].items():
        ax1.axhline(a, ls="--", lw=1, color=f"C{report['partners'].index(pid)}", label=f"partner {pid[:6]} alone")
    ax1.set(title="held-out accuracy per round", xlabel="round", ylabel="accuracy", ylim=(0, 1))
    ax1.legend(fontsize=7)
    malicious = set(report["malicious"])
    for i, pid in enumerate(report["partners"]):
        stakes = [float(r["required_stake"].get(pid, 0)) for r in rounds]
        paid = [float(r["payments"].get(pid, 0)) for r in rounds]
        style = "x-" if pid in malicious else "o-"  # colour Ci follows the partner's index in every panel
        tag = " (malicious)" if pid in malicious else ""
        ax2.plot([r["round"] for r in rounds], stakes, style, color=f"C{i}", label=f"{pid[:6]}{tag}")
        ax3.bar([r["round"] + 0.8 * i / max(1, len(report["partners"])) for r in rounds], paid,
                width=0.8 / max(1, len(report["partners"])), color=f"C{i}", label=f"{pid[:6]}{tag}")
    ax2.set(title="DLC stake required next round (strikes)", xlabel="round", ylabel="DLC")
    ax2.legend(fontsize=7)
    ax3.set(title="XLM paid by validators (offers crossed)", xlabel="round", ylabel="XLM")
    ax3.legend(fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.set_xticks(xs if ax is ax1 else xs[1:])
    fig.suptitle(f"dlnet market demo: model {report['model']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def text(report: dict[str, Any]) -> str:
    """The human summary, one block per round."""
    lines = [f"model {report['model']}: initial accuracy {report['initial_accuracy']:.3f}"]
    short = lambda a: a[:8]  # noqa: E731
    for r in report["rounds"]:
        lines.append(f"round {r['round']}: checkpoint {r['checkpoint']} (ledgers {r['first_ledger']}-"
                     f"{r['last_ledger']}, {r['transactions']} transactions, {r['seconds']:.1f}s)")
        for o in r["offers"]:
            lines.append(f"  offer {o['id']} {short(o['seller'])} sells {o['amount']} {o['selling'].split(':')[0]}"
                         f" for {o['buying'].split(':')[0]} at {o['price']}")
        for d in r["decisions"]:
            verdict = "accepted, paid " + d["paid_xlm"] + " XLM + 1 VLM" if d["accepted"] else "refused"
            lines.append(f"  validator {short(d['validator'])}: {short(d['partner'])} {verdict} — {d['reason']}")
        for x in r["refused_before_submit"]:
            lines.append(f"  partner {short(x['partner'])} could not take part: {x['reason']}")
        lines.append("  strikes: " + ", ".join(f"{short(k)}={v} (stake {r['required_stake'][k]})"
                                                for k, v in r["strikes"].items()))
        lines.append(f"  fused {len(r['accepted'])} updates -> {r['fused_checkpoint']}: accuracy {r['accuracy']:.3f}")
    best = max(report["local_only_accuracy"].values(), default=0.0)
    lines.append(f"final accuracy {report['final_accuracy']:.3f} (best honest partner alone {best:.3f});"
                 f" paid: " + ", ".join(f"{short(k)} {v} XLM" for k, v in report["paid_xlm"].items()))
    return "\n".join(lines)
