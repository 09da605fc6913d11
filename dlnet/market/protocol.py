"""What the three roles share: a model's market terms, its assets, and the memo transactions that carry
checkpoint CIDs (found through Horizon and verified against their signer's key from the envelope XDR).

On chain (paper Fig. 3, every step a Stellar operation checkable through Horizon):
- initiator, each round, one transaction with MEMO_HASH = the checkpoint's CID: offers selling XLM for
  DLM (the reward) and DLM for VLM (what validators buy with their VLM), and `market.round`;
- partner: one transaction with MEMO_HASH = its update's CID: an offer selling its DLC stake for one VLM
  per validator;
- validator accepting: one transaction with MEMO_HASH = the update's CID: sells 1 VLM into the partner's
  offer (the partner gets VLM) and returns that share of the stake, buys the reward's DLM with VLM from
  the initiator's offer, sells that DLM into the initiator's XLM offer and pays the XLM to the partner;
- validator refusing: one transaction with MEMO_HASH = the update's CID: `strikes.<partner>` += 1.
The terms live on the initiator's account as data entries (`market.*`), so partners and validators read
them from the chain rather than trusting a config file.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from stellar_sdk import Asset, TransactionEnvelope
from stellar_sdk.operation import ManageBuyOffer, ManageData, ManageSellOffer

from dlnet.chain import (
    Horizon,
    InputError,
    amount_text,
    asset_of,
    asset_text,
    check_account_id,
    parse_amount,
    signed_by,
)
from dlnet.market import checkpoint as ck
from dlnet.market import penalties

TERMS = "market."
ROUND_KEY = "market.round"


class ForgedError(InputError):
    """A memo transaction not signed by the account it claims to come from."""


def _data(account: dict[str, Any] | None, key: str) -> str | None:
    raw = ((account or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw is not None else None


@dataclass(frozen=True)
class Market:
    """One model's market: who issued it, who runs it, who validates, and the prices."""

    model: str
    issuer: str
    initiator: str
    dlc: Asset
    validators: tuple[str, ...]
    reward: Decimal = Decimal("2")  # XLM per accepted update, per validator
    xlm_per_dlm: int = 1
    stake_base: Decimal = penalties.DEFAULT_BASE
    penalty_factor: Decimal = penalties.DEFAULT_FACTOR
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def dlm(self) -> Asset:
        return Asset("DLM", self.issuer)

    @property
    def vlm(self) -> Asset:
        return Asset("VLM", self.issuer)

    @property
    def reward_dlm(self) -> Decimal:
        return Decimal(amount_text(self.reward / self.xlm_per_dlm))

    def required_stake(self, strikes: int) -> Decimal:
        return penalties.required_stake(strikes, self.stake_base, self.penalty_factor)

    def terms(self) -> dict[str, str]:
        """The data entries the initiator keeps on its account."""
        out = {
            "market.model": self.model,
            "market.issuer": self.issuer,
            "market.dlc": asset_text(self.dlc),
            "market.reward": amount_text(self.reward),
            "market.xlm_per_dlm": str(self.xlm_per_dlm),
            "market.stake_base": amount_text(self.stake_base),
            "market.penalty": amount_text(self.penalty_factor),
        }
        out.update({f"market.validator.{i}": v for i, v in enumerate(self.validators)})
        return out

    def terms_ops(self, current: dict[str, Any] | None = None) -> list[ManageData]:
        want = self.terms()
        ops = [ManageData(k, v) for k, v in want.items() if _data(current, k) != v]
        for k in ((current or {}).get("data") or {}):
            if k.startswith("market.validator.") and k not in want:
                ops.append(ManageData(k, None))
        return ops

    @classmethod
    def from_chain(cls, h: Horizon, initiator: str, model: str | None = None) -> Market:
        """The terms an initiator published; InputError for an unknown model or initiator."""
        check_account_id(initiator, "initiator")
        acc = h.account(initiator)
        name = _data(acc, "market.model")
        if acc is None or name is None:
            raise InputError(
                f"unknown model: {initiator} publishes no market (no market.model data entry) — expected a model"
                " initiator — run `dlnet market initiator setup` or check the account id"
            )
        if model is not None and name != model:
            raise InputError(f"unknown model {model!r}: initiator {initiator} runs model {name!r} — check --model")
        issuer = _data(acc, "market.issuer") or ""
        iss = h.account(issuer) if issuer else None
        if _data(iss, "dlnet.model") != name:
            raise InputError(
                f"unknown model {name!r}: its issuer {issuer or '(none)'} does not name it (data entry dlnet.model)"
                f" — expected a model registered with `dlnet model register {name}`"
            )
        from dlnet.chain import parse_asset

        vals = sorted((k, v) for k, v in ((acc.get("data") or {}).items()) if k.startswith("market.validator."))
        return cls(
            model=name,
            issuer=issuer,
            initiator=initiator,
            dlc=parse_asset(_data(acc, "market.dlc") or "", "market.dlc"),
            validators=tuple(base64.b64decode(v).decode() for _, v in vals),
            reward=parse_amount(_data(acc, "market.reward") or "", "market.reward"),
            xlm_per_dlm=int(_data(acc, "market.xlm_per_dlm") or "1"),
            stake_base=parse_amount(_data(acc, "market.stake_base") or "", "market.stake_base"),
            penalty_factor=Decimal(_data(acc, "market.penalty") or "2"),
        )

    @classmethod
    def of_issuer(cls, h: Horizon, issuer: str) -> Market | None:
        """The market of the model `issuer` issued (its `dlnet.initiator` data entry); None if it names none."""
        initiator = _data(h.account(issuer), "dlnet.initiator")
        if initiator is None:
            return None
        m = cls.from_chain(h, initiator)
        return m if m.issuer == issuer else None

    def strikes(self, h: Horizon, partner: str) -> int:
        """`partner`'s strikes as the model's validators recorded them on chain (the highest count)."""
        return penalties.strikes_of(h.accounts(list(self.validators)).values(), partner)

    def check_model_asset(self, asset: Asset, what: str = "asset") -> Asset:
        """Refuse an asset this model did not issue (DLM/VLM of its issuer), or DLC, or XLM."""
        if asset in (self.dlm, self.vlm, self.dlc) or asset.is_native():
            return asset
        raise InputError(
            f"{what}: {asset_text(asset)} was not issued by model {self.model!r} — expected DLM or VLM of"
            f" {self.issuer} (or {asset_text(self.dlc)}, XLM)"
        )


# ---- memo transactions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoTx:
    cid: str
    hash: str
    ledger: int
    source: str
    envelope: TransactionEnvelope


def verify_envelope(envelope_xdr: str, passphrase: str, signer: str, tx_hash: str | None = None) -> TransactionEnvelope:
    """The envelope, if its source is `signer` and `signer`'s key signed it; ForgedError otherwise."""
    try:
        env = TransactionEnvelope.from_xdr(envelope_xdr, passphrase)
    except Exception:  # the XDR decoder raises assorted types on garbage
        raise ForgedError("memo transaction: envelope is not a transaction envelope XDR — refused") from None
    src = env.transaction.source.account_id
    if src != signer:
        raise ForgedError(f"memo transaction {env.hash_hex()[:12]}…: source {src} — expected {signer} — refused")
    if tx_hash is not None and env.hash_hex() != tx_hash:
        raise ForgedError(f"memo transaction {tx_hash[:12]}…: the envelope hashes to {env.hash_hex()[:12]}… for"
                          " this network — refused (another network, or altered)")
    if signed_by(env, signer):
        return env
    raise ForgedError(
        f"memo transaction {env.hash_hex()[:12]}…: not signed by {signer}'s key (forged, or signed by another key)"
        " — refused"
    )


def _offers_pair(env: TransactionEnvelope, selling: Asset, buying: Asset) -> bool:
    for op in env.transaction.operations:
        if isinstance(op, ManageSellOffer | ManageBuyOffer) and op.selling == selling and op.buying == buying:
            return True
    return False


def memo_cid(record: dict[str, Any]) -> str | None:
    if record.get("memo_type") != "hash" or not record.get("memo"):
        return None
    return ck.memo_to_cid(base64.b64decode(record["memo"]))


def find_memo_tx(h: Horizon, passphrase: str, offer: dict[str, Any]) -> MemoTx:
    """The transaction that set `offer` with a CID in its memo, verified against the seller's key.

    Paper Table 2: the transactions of the offer's ledger (`last_modified_ledger`); when the offer was
    partly taken since (the ledger holds the taker's transaction), the seller's own recent transactions."""
    seller = str(offer["seller"])
    selling, buying = asset_of(offer["selling"]), asset_of(offer["buying"])
    ledger = int(offer.get("last_modified_ledger") or 0)
    candidates = [t for t in h.ledger_transactions(ledger) if t.get("source_account") == seller] if ledger else []
    if not any(memo_cid(t) for t in candidates):
        recent = h.get(f"/accounts/{seller}/transactions", {"order": "desc", "limit": "50"}) or {}
        candidates = [t for t in (recent.get("_embedded") or {}).get("records") or []
                      if int(t.get("ledger", 0)) <= max(ledger, 1) or not ledger]
    for t in candidates:
        cid = memo_cid(t)
        if cid is None:
            continue
        env = verify_envelope(str(t["envelope_xdr"]), passphrase, seller, str(t["hash"]))
        if _offers_pair(env, selling, buying):
            return MemoTx(cid, str(t["hash"]), int(t["ledger"]), seller, env)
    raise InputError(
        f"offer {offer.get('id')} of {seller}: no transaction with a checkpoint CID in its memo set it"
        f" (looked in ledger {ledger} and the seller's last 50 transactions) — not a market offer"
    )


def decided_cids(h: Horizon, account: str, limit: int = 200) -> set[str]:
    """CIDs named by the memos of `account`'s recent transactions (a validator's decisions)."""
    body = h.get(f"/accounts/{account}/transactions", {"order": "desc", "limit": str(limit)}) or {}
    out = set()
    for t in (body.get("_embedded") or {}).get("records") or []:
        cid = memo_cid(t)
        if cid:
            out.add(cid)
    return out
