"""A data owner / computing partner (paper Table 2, step by step).

1. find the initiator's offers on Horizon (`/accounts/{id}/offers`): the one selling XLM for the
   model's DLM;
2. fetch the transactions of the offer's ledger and verify the signature of the one carrying the memo
   against the initiator's key from the envelope XDR (protocol.find_memo_tx);
3. download the checkpoint by the CID in the memo and check the bytes against it;
4. train locally on its own data (which never leaves it);
5. upload the learned parameters to IPFS;
6. submit a manage-offer selling its DLC stake for VLM, with the update's CID in the memo — through the
   compliance service's approval where DLC is regulated (gateways.Compliance).
Before anything is touched it checks that it may take part: KYC-approved (its DLC trustline authorized
by the compliance service) and holding the stake its strikes require. It can leave at any round
(`leave`: the stake offer is cancelled) and keeps what it was paid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from stellar_sdk import Asset, Keypair, Price
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageSellOffer

from dlnet.chain import InputError, SubmitFailed, Transactor, amount_text, asset_of, asset_text, balance
from dlnet.market import checkpoint as ck
from dlnet.market import penalties
from dlnet.market.gateways import Compliance
from dlnet.market.initiator import Store, own_offer
from dlnet.market.protocol import Market, MemoTx, find_memo_tx
from dlnet.market.trainer import LocalData, Trainer


@dataclass
class Submitted:
    partner: str
    base_cid: str
    cid: str
    stake: Decimal
    strikes: int
    tx_hash: str
    ledger: int
    samples: int


def stake_price(validators: int, stake: Decimal) -> Price:
    """VLM per DLC for an offer asking one VLM per validator for the whole stake."""
    f = Fraction(validators) / Fraction(str(stake))
    if f.numerator > 2**31 - 1 or f.denominator > 2**31 - 1:
        raise InputError(f"stake {stake}: expected at most 7 decimals and below 2^31 — stake a rounder amount")
    return Price(f.numerator, f.denominator)


class Partner:
    def __init__(self, tx: Transactor, store: Store, kp: Keypair, market: Market, data: LocalData,
                 trainer: Trainer, progress: Callable[[str], None] = lambda _m: None,
                 compliance: Compliance | None = None) -> None:
        self.tx, self.h, self.store, self.kp, self.market = tx, tx.h, store, kp, market
        self.data, self.trainer, self.progress = data, trainer, progress
        self.compliance = compliance  # DLC regulated: the stake offer goes through its approval

    @property
    def id(self) -> str:
        return self.kp.public_key

    def announcement(self) -> MemoTx:
        """Steps 1-2: the initiator's current offer and its verified memo transaction."""
        m = self.market
        offers = self.h.offers(m.initiator)
        ours = [o for o in offers if asset_of(o["selling"]).is_native() and asset_of(o["buying"]) == m.dlm]
        if not ours:
            others = sorted({asset_text(asset_of(o["buying"])) for o in offers})
            raise InputError(
                f"initiator {m.initiator} has no offer paying XLM for DLM of model {m.model!r}"
                + (f" (its offers buy {', '.join(others)}: assets the model did not issue)" if others else "")
                + " — wait for `dlnet market initiator publish`"
            )
        return find_memo_tx(self.h, self.tx.passphrase, ours[0])

    def strikes(self) -> int:
        found = self.h.accounts(list(self.market.validators))
        return penalties.strikes_of(found.values(), self.id)

    def check_ready(self, stake: Decimal) -> dict[str, Any] | None:
        """KYC (DLC trustline authorized) and the stake; InputError before anything is touched."""
        m = self.market
        acc = self.h.account(self.id)
        if acc is None:
            raise InputError(f"partner {self.id} does not exist on the network — expected a funded account")
        line = balance(acc, m.dlc)
        approved = line is not None and (line.get("is_authorized") or line.get("is_authorized_to_maintain_liabilities"))
        if not approved:
            raise InputError(
                f"partner {self.id} is not KYC-approved: its {m.dlc.code} trustline is"
                f" {'missing' if line is None else 'not authorized'} — expected the compliance service's approval"
                " — submit KYC (POST /kyc) and ask an operator to approve it"
            )
        if balance(acc, m.vlm) is None:
            raise InputError(f"partner {self.id} has no VLM trustline for model {m.model!r} — expected"
                             f" ChangeTrust VLM:{m.issuer} to be paid")
        mine = own_offer(self.h.offers(self.id), m.dlc, m.vlm)
        locked = Decimal(mine["amount"]) if mine else Decimal(0)
        free = Decimal(line["balance"]) - Decimal(line.get("selling_liabilities", "0")) + locked
        if free < stake:
            raise InputError(
                f"partner {self.id} holds {amount_text(free)} {m.dlc.code} it can stake — expected at least"
                f" {amount_text(stake)} (required for {self.strikes()} strike(s)) — get more {m.dlc.code}"
            )
        return mine

    def work(self) -> Submitted:
        """One round: steps 1-6."""
        m = self.market
        strikes = self.strikes()
        stake = m.required_stake(strikes)
        self.check_ready(stake)
        ann = self.announcement()
        base = self.store.cat(ann.cid)
        ck.verify(base, ann.cid)
        update = self.trainer(base, self.data)
        cid = self.store.add(update)
        ck.verify(update, cid)
        mine = self.check_ready(stake)  # re-read: the offer id may have changed
        op = ManageSellOffer(m.dlc, m.vlm, amount_text(stake), stake_price(len(m.validators), stake),
                             offer_id=int(mine["id"]) if mine else 0)
        rec = self.stake(op, cid)
        self.progress(f"partner {self.id[:8]}: update {cid} of {ann.cid} staking {amount_text(stake)}"
                      f" {m.dlc.code} in ledger {rec.get('ledger')}")
        return Submitted(self.id, ann.cid, cid, stake, strikes, str(rec["hash"]), int(rec["ledger"]),
                         self.data.samples)

    def stake(self, op: ManageSellOffer, cid: str) -> dict[str, Any]:
        """Submit the stake offer: through the compliance service's approval when DLC is regulated (the
        ledger refuses it otherwise: the trustline is authorized only to maintain liabilities)."""
        memo = HashMemo(ck.cid_to_memo(cid))
        if self.compliance is None:
            return self.tx.run(self.kp, [op], memo=memo)
        for attempt in range(2):
            env = self.compliance.approve(self.tx.build(self.kp, [op], memo=memo), self.market.dlc)
            env.sign(self.kp)
            try:
                return self.tx.submit(env)
            except SubmitFailed as exc:
                if exc.tx_code != "tx_bad_seq" or attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def leave(self) -> dict[str, Any] | None:
        """Cancel the stake offer (amount 0); what was paid stays paid."""
        mine = own_offer(self.h.offers(self.id), self.market.dlc, self.market.vlm)
        if mine is None:
            return None
        op = ManageSellOffer(self.market.dlc, self.market.vlm, "0", Price(1, 1), offer_id=int(mine["id"]))
        return self.tx.run(self.kp, [op])


__all__ = ["Asset", "Partner", "Submitted", "stake_price"]
