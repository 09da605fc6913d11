"""The model initiator (paper Sec. 5.1): publishes checkpoints and pays for accepted updates.

Each round it uploads the current checkpoint to IPFS and, in one transaction whose MEMO_HASH is the
checkpoint's CID, (re)sets its two offers: XLM for DLM (the partners' reward, sized for the round) and
DLM for VLM (what validators buy with the VLM it handed them), plus `market.round`. After the round it
reads the validators' decision transactions, downloads every update accepted by all of them (checked
against its CID), and fuses them (fusion.fuse: weighted by sample counts) into the next checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from stellar_sdk import Asset, Keypair, Price
from stellar_sdk.memo import HashMemo
from stellar_sdk.operation import ManageData, ManageSellOffer, PathPaymentStrictReceive, Payment

from dlnet.chain import InputError, Transactor, amount_text, asset_of
from dlnet.market import checkpoint as ck
from dlnet.market import fusion
from dlnet.market.protocol import ROUND_KEY, Market, memo_cid, verify_envelope


class Store(Protocol):
    def add(self, data: bytes) -> str: ...
    def cat(self, cid: str) -> bytes: ...


def own_offer(offers: list[dict[str, Any]], selling: Asset, buying: Asset) -> dict[str, Any] | None:
    for o in offers:
        if asset_of(o["selling"]) == selling and asset_of(o["buying"]) == buying:
            return o
    return None


@dataclass
class Published:
    round: int
    cid: str
    tx_hash: str
    ledger: int
    xlm_offered: Decimal


@dataclass
class Accepted:
    cid: str
    partner: str
    validators: set[str]
    xlm: Decimal
    vlm: Decimal


class Initiator:
    def __init__(self, tx: Transactor, store: Store, kp: Keypair, market: Market,
                 shapes: dict[str, tuple[int, ...]], progress: Callable[[str], None] = lambda _m: None) -> None:
        if kp.public_key != market.initiator:
            raise InputError(f"initiator key {kp.public_key} — expected the model's initiator {market.initiator}")
        self.tx, self.h, self.store, self.kp, self.market = tx, tx.h, store, kp, market
        self.shapes = shapes
        self.progress = progress

    # ---- setup: terms on chain, VLM to the validators it appoints ----------------------------------
    def setup(self, vlm_per_validator: Decimal) -> dict[str, Any] | None:
        acc = self.h.account(self.kp.public_key)
        ops: list[Any] = list(self.market.terms_ops(acc))
        found = self.h.accounts(list(self.market.validators))
        for v in self.market.validators:
            from dlnet.chain import balance

            line = balance(found.get(v), self.market.vlm)
            if line is None:
                raise InputError(f"validator {v} has no VLM trustline for model {self.market.model!r} — it must"
                                 f" trust {self.market.vlm.code}:{self.market.issuer} first")
            if Decimal(line["balance"]) < vlm_per_validator:
                ops.append(Payment(v, self.market.vlm, amount_text(vlm_per_validator - Decimal(line["balance"]))))
        return self.tx.run(self.kp, ops) if ops else None

    # ---- a round's offers, with the checkpoint's CID in the memo -----------------------------------
    def publish(self, checkpoint: bytes, round_: int, partners: int) -> Published:
        ck.loads(checkpoint, self.shapes)
        cid = self.store.add(checkpoint)
        ck.verify(checkpoint, cid)  # what the swarm stored is what we hashed
        m = self.market
        offers = self.h.offers(self.kp.public_key)
        o_xlm = own_offer(offers, Asset.native(), m.dlm)
        o_dlm = own_offer(offers, m.dlm, m.vlm)
        xlm = m.reward * len(m.validators) * max(1, partners)
        ops = [
            ManageSellOffer(Asset.native(), m.dlm, amount_text(xlm), Price(1, m.xlm_per_dlm),
                            offer_id=int(o_xlm["id"]) if o_xlm else 0),
            ManageSellOffer(m.dlm, m.vlm, amount_text(xlm / m.xlm_per_dlm), Price(1, 1),
                            offer_id=int(o_dlm["id"]) if o_dlm else 0),
            ManageData(ROUND_KEY, str(round_)),
        ]
        rec = self.tx.run(self.kp, ops, memo=HashMemo(ck.cid_to_memo(cid)))
        self.progress(f"initiator: round {round_} checkpoint {cid} offered ({amount_text(xlm)} XLM for DLM)"
                      f" in ledger {rec.get('ledger')}")
        return Published(round_, cid, str(rec["hash"]), int(rec["ledger"]), xlm)

    # ---- what the validators accepted ----------------------------------------------------------------
    def accepted(self, since_ledger: int) -> list[Accepted]:
        """Updates paid by validators after `since_ledger`, read from their signed decision transactions."""
        m = self.market
        found: dict[str, Accepted] = {}
        for v in m.validators:
            body = self.h.get(f"/accounts/{v}/transactions", {"order": "desc", "limit": "200"}) or {}
            for t in (body.get("_embedded") or {}).get("records") or []:
                if int(t.get("ledger", 0)) <= since_ledger or not t.get("successful", True):
                    continue
                cid = memo_cid(t)
                if cid is None:
                    continue
                env = verify_envelope(str(t["envelope_xdr"]), self.tx.passphrase, v, str(t["hash"]))
                xlm, vlm, partner = Decimal(0), Decimal(0), None
                for op in env.transaction.operations:
                    if (isinstance(op, Payment) and op.asset.is_native()) or (
                            isinstance(op, PathPaymentStrictReceive) and op.dest_asset.is_native()):
                        xlm += Decimal(op.amount if isinstance(op, Payment) else op.dest_amount)
                        partner = op.destination.account_id
                    elif isinstance(op, Payment) and op.asset == m.vlm:
                        vlm += Decimal(op.amount)
                        partner = partner or op.destination.account_id
                if partner is None:
                    continue  # a refusal (strike), not a payment
                a = found.setdefault(cid, Accepted(cid, partner, set(), Decimal(0), Decimal(0)))
                if xlm:
                    a.validators.add(v)  # the XLM leg is the decision (the VLM may come in its own transaction)
                a.xlm += xlm
                a.vlm += vlm
        return [a for a in found.values() if a.validators == set(m.validators)]

    def fuse(self, since_ledger: int, round_: int) -> tuple[bytes, list[Accepted]]:
        """The next checkpoint: the accepted updates averaged, weighted by their sample counts."""
        accepted = self.accepted(since_ledger)
        updates = []
        for a in accepted:
            data = self.store.cat(a.cid)
            ck.verify(data, a.cid)
            _, meta = ck.loads(data, self.shapes)
            updates.append((data, int(meta.get("samples", "0") or 0)))
        fused = fusion.fuse(updates, self.shapes, {"model": self.market.model, "round": str(round_),
                                                   "format": "dlnet-softmax-v1",
                                                   "parents": ",".join(sorted(a.cid for a in accepted))})
        return fused, accepted
