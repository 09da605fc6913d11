"""A validating node (paper Sec. 5.1): watches the order book, evaluates, pays or strikes.

For every partner offer selling DLC for the model's VLM whose update it has not decided yet, it checks
the update is authentic (the memo transaction is signed by the partner's key, the bytes it downloads
hash to the CID in the memo, the tensors have the model's shapes), that the offer stakes what the
partner's strikes require, and that the update's accuracy on its own benchmark reaches the baseline.
Accept: pay the partner (memo = the update's CID) the reward in XLM by a path payment sending VLM
through the initiator's DLM/VLM and XLM/DLM offers (the offers cross, paper Fig. 3), and one VLM —
through the kit's bridge where the network runs one (gateways.BridgePayer), directly otherwise.
Refuse: one transaction (memo = the update's CID) that records a
strike for the partner (`strikes.<partner>`), which raises the stake it must put up next time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from stellar_sdk import Keypair
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageData

from dlnet.chain import DlnetError, SubmitFailed, Transactor, amount_text, asset_text, codes_text
from dlnet.market import checkpoint as ck
from dlnet.market import penalties
from dlnet.market.gateways import DirectPayer, Payer
from dlnet.market.initiator import Store
from dlnet.market.protocol import ForgedError, Market, MemoTx, decided_cids, find_memo_tx
from dlnet.market.trainer import LocalData

Evaluate = Callable[[bytes, LocalData], float]


@dataclass
class Decision:
    validator: str
    partner: str
    cid: str | None
    accepted: bool
    reason: str
    accuracy: float | None = None
    stake: str = "0"
    strikes: int = 0
    tx_hash: str | None = None
    ledger: int | None = None
    paid_xlm: str = "0"
    extra: dict[str, Any] = field(default_factory=dict)


class Validator:
    def __init__(self, tx: Transactor, store: Store, kp: Keypair, market: Market, benchmark: LocalData,
                 evaluate: Evaluate, shapes: dict[str, tuple[int, ...]], baseline: float = 0.2,
                 progress: Callable[[str], None] = lambda _m: None, payer: Payer | None = None) -> None:
        if kp.public_key not in market.validators:
            raise DlnetError(f"validator {kp.public_key} is not appointed for model {market.model!r} — expected"
                             f" one of {', '.join(market.validators)}")
        self.tx, self.h, self.store, self.kp, self.market = tx, tx.h, store, kp, market
        self.bench, self.evaluate, self.shapes, self.baseline = benchmark, evaluate, shapes, baseline
        self.progress = progress
        self.payer: Payer = payer or DirectPayer(tx, kp)  # the bridge's, where the network runs one

    @property
    def id(self) -> str:
        return self.kp.public_key

    def order_book(self) -> list[dict[str, Any]]:
        """Partners' stake offers: selling DLC, buying this model's VLM."""
        m = self.market
        return list(self.h.records("/offers", {"selling": asset_text(m.dlc), "buying": asset_text(m.vlm)}))

    def judge(self, offer: dict[str, Any], memo: MemoTx, strikes: int) -> tuple[bool, str, float | None]:
        """(accept?, reason, accuracy) for one update; never touches the chain."""
        need = self.market.required_stake(strikes)
        stake = Decimal(offer["amount"])
        if stake < need:
            return False, (f"stake {amount_text(stake)} {self.market.dlc.code} below the"
                           f" {amount_text(need)} required for {strikes} strike(s)"), None
        try:
            data = self.store.cat(memo.cid)
        except DlnetError as exc:
            return False, f"update {memo.cid} not retrievable from IPFS ({str(exc)[:80]})", None
        try:
            ck.verify(data, memo.cid)
            ck.loads(data, self.shapes)
        except ck.CheckpointError as exc:
            return False, str(exc), None
        acc = self.evaluate(data, self.bench)
        if acc < self.baseline:
            return False, f"accuracy {acc:.3f} on the benchmark below the baseline {self.baseline:.3f}", acc
        return True, f"accuracy {acc:.3f} >= baseline {self.baseline:.3f}", acc

    def review(self) -> list[Decision]:
        """Decide every undecided update in the order book (idempotent: decisions are read back)."""
        decided = decided_cids(self.h, self.id)
        me = self.h.account(self.id)
        out = []
        for offer in self.order_book():
            partner = str(offer["seller"])
            try:
                memo = find_memo_tx(self.h, self.tx.passphrase, offer)
            except ForgedError as exc:
                # Cannot be pinned on the seller (it did not sign it): refuse, record nothing.
                out.append(Decision(self.id, partner, None, False, str(exc)))
                continue
            except ck.InputError as exc:
                out.append(Decision(self.id, partner, None, False, str(exc)))
                continue
            if memo.cid in decided:
                continue
            strikes = penalties.strikes_recorded(me, partner)
            ok, reason, acc = self.judge(offer, memo, strikes)
            d = Decision(self.id, partner, memo.cid, ok, reason, acc, str(offer["amount"]), strikes)
            self.decide(d)
            decided.add(memo.cid)
            out.append(d)
            me = self.h.account(self.id) if not ok else me
        return out

    def decide(self, d: Decision) -> None:
        m = self.market
        assert d.cid is not None
        if d.accepted:
            try:
                recs = self.payer.pay(m, d.partner, d.cid)
            except SubmitFailed as exc:
                if any(c in ("op_underfunded", "op_too_few_offers", "op_over_source_max") for c in exc.op_codes):
                    raise DlnetError(
                        f"validator {self.id[:8]}: paying {d.partner} failed ({codes_text(exc.codes)}) — expected the"
                        " initiator's offers to cover the reward and this validator to hold VLM — publish the round"
                        " again (dlnet market initiator publish) or hand the validator VLM"
                    ) from None
                raise
            rec = recs[0]
            d.paid_xlm = amount_text(m.reward)
            d.extra = {"via": self.payer.via, "transactions": [str(r["hash"]) for r in recs]}
        else:
            d.strikes += 1
            rec = self.tx.run(self.kp, [ManageData(penalties.strike_key(d.partner), str(d.strikes))],
                              memo=HashMemo(ck.cid_to_memo(d.cid)))
        d.tx_hash, d.ledger = str(rec["hash"]), int(rec["ledger"] or 0)
        self.progress(f"validator {self.id[:8]}: {'accepted' if d.accepted else 'refused'} {d.cid} of"
                      f" {d.partner[:8]}: {d.reason}" + ("" if d.accepted else f" (strike {d.strikes})")
                      + (f", paid via {self.payer.via}" if d.accepted else ""))
